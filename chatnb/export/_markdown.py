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

from ._html import isos, texts

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


def _system_line(kind: str, initiator: str | None, topic: str | None, ids: object) -> str:
    who = escape(initiator or "someone")
    if kind == "topicUpdated":
        return f"*{who} changed the topic to “{escape(topic or '')}”*"
    names = ", ".join(escape(str(p)) for p in (ids if isinstance(ids, (list, tuple)) else ()))
    verb = "added" if kind == "participantAdded" else "removed"
    return f"*{who} {verb} {names}*"


def render_rows(frame: pd.DataFrame) -> str:
    """The Markdown of ``frame``'s rows (export columns, in the frame's order)."""
    out: list[str] = []
    rows = zip(
        texts(frame["type"]),
        texts(frame["content"]),
        texts(frame["sender_id"]),
        texts(frame["sender_display_name"]),
        isos(frame["created_on"]),
        isos(frame["edited_on"]),
        isos(frame["deleted_on"]),
        texts(frame["topic"]),
        [list(v) if v is not None and not isinstance(v, float) else None for v in frame["participant_ids"]],
        texts(frame["initiator_id"]),
        strict=True,
    )
    for kind, content, sender, name, created, edited, deleted, topic, ids, initiator in rows:
        kind = kind or ""
        when = (created or "")[:19].replace("T", " ") + " UTC"
        if kind in _SYSTEM_TYPES:
            out.append(f"{_system_line(kind, initiator, topic, ids)} · {when}\n\n")
            continue
        tags = " · deleted" if deleted else " · edited" if edited else ""
        head = f"**{escape(name or sender or 'unknown')}** · {when}{tags}"
        if deleted:
            body = "> *message deleted*"
        else:
            text = content or ""
            if kind.lower() == "html":
                text = html.unescape(nh3.clean(text, tags=set()))
            body = _quote(text)
        out.append(f"{head}\n{body}\n\n")
    return "".join(out)


def page_head(*, thread_id: str, topic: str, note: str) -> str:
    """The transcript up to its first message."""
    return f"# {escape(topic or thread_id)}\n\nThread {escape(thread_id)} · {escape(note)}\n\n---\n\n"


PAGE_TAIL = ""
