"""The Markdown transcript of an export: one ``transcript.md`` per thread (and month, when partitioned).

Each message is a line naming the sender and the time (and whether it was edited or deleted) followed
by its text as a block quote; system messages (topic changes, participants added or removed) are one
line in italics. The text is inert: every character Markdown would act on is escaped (no links, images,
HTML, headings, lists or emphasis come from a message), line breaks are kept, and ``html`` messages are
reduced to their text. Like the HTML transcript, messages are spooled page by page and assembled oldest
first (:mod:`chatnb.export._transcripts`).
"""

from __future__ import annotations

import html
import re

import nh3
import pandas as pd

from ._html import message_rows, system_text

__all__ = ["PAGE_TAIL", "escape", "page_head", "render_rows"]

_SYSTEM_TYPES = frozenset({"topicUpdated", "participantAdded", "participantRemoved"})
_INLINE = re.compile(r"([\\`*_{}\[\]<>#|~&!])")
_LINE_START = re.compile(r"^(\s*)([-+=])|^(\s*\d+)([.)])")


def escape(text: str) -> str:
    """``text`` as literal Markdown: what it says, nothing it would do."""
    lines = []
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        line = _INLINE.sub(r"\\\1", line)
        lines.append(_LINE_START.sub(lambda m: f"{m[1] or m[3]}\\{m[2] or m[4]}", line, count=1))
    return "\n".join(lines)


def _quote(text: str) -> str:
    """A block quote of ``text`` keeping its line breaks."""
    lines = escape(text).split("\n")
    return "\n".join(
        f"> {line}\\" if i < len(lines) - 1 and line else f"> {line}" for i, line in enumerate(lines)
    )


def render_rows(frame: pd.DataFrame) -> str:
    """The Markdown of ``frame``'s rows (export columns, in the frame's order)."""
    out: list[str] = []
    for row in message_rows(frame):
        when = (row.created or "")[:19].replace("T", " ") + " UTC"
        if row.kind in _SYSTEM_TYPES:
            line = system_text(row.kind, row.initiator, row.topic, row.ids, escape)
            out.append(f"*{line}* · {when}\n\n")
            continue
        tags = " · deleted" if row.deleted else " · edited" if row.edited else ""
        head = f"**{escape(row.name or row.sender or 'unknown')}** · {when}{tags}"
        if row.deleted:
            body = "> *message deleted*"
        else:
            text = row.content or ""
            if row.kind.lower() == "html":
                text = html.unescape(nh3.clean(text, tags=set()))
            body = _quote(text)
        out.append(f"{head}\n{body}\n\n")
    return "".join(out)


def page_head(*, thread_id: str, topic: str, note: str) -> str:
    """The transcript up to its first message."""
    return f"# {escape(topic or thread_id)}\n\nThread {escape(thread_id)} · {escape(note)}\n\n---\n\n"


PAGE_TAIL = ""
