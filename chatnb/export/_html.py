"""The HTML transcript of an export: one self-contained page per thread (and month, when partitioned).

Messages render as ``<article>`` elements carrying their fields in ``data-*`` attributes (id, sequence
id, version, type, sender, times), so a transcript can be read back by a machine too. Text content is
escaped; ``html`` messages are sanitised with nh3 (no scripts, event handlers or ``javascript:`` links);
system messages (topic changes, participants added or removed) are shown as such. The page has no
external resource, and its Content-Security-Policy blocks any (remote images in html messages included).

The service lists newest first, so the export spools each page's fragment (already in chronological
order) and writes the transcript reading the fragments back in reverse (:mod:`chatnb.export._transcripts`).
"""

from __future__ import annotations

import html
from collections.abc import Iterator
from typing import Any, NamedTuple

import nh3
import numpy as np
import pandas as pd

__all__ = ["PAGE_TAIL", "Row", "isos", "message_rows", "page_head", "render_rows", "system_text", "texts"]

_SYSTEM_TYPES = frozenset({"topicUpdated", "participantAdded", "participantRemoved"})

_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;background:#f5f6f8;color:#1d1f23}
header.top{background:#2b3a67;color:#fff;padding:1rem 1.5rem}
header.top h1{margin:0 0 .3rem;font-size:1.3rem}
header.top p{margin:0;font-size:.85rem;opacity:.85}
main{max-width:52rem;margin:0 auto;padding:1rem}
article.msg{background:#fff;border-radius:8px;padding:.5rem .8rem;margin:.4rem 0;box-shadow:0 1px 2px #0002}
article.msg header{font-size:.8rem;color:#555;display:flex;gap:.6rem;flex-wrap:wrap}
article.msg .who{font-weight:600;color:#2b3a67}
article.msg .body{white-space:pre-wrap;overflow-wrap:anywhere;margin-top:.2rem}
article.html .body{white-space:normal}
article.system{background:transparent;box-shadow:none;text-align:center;color:#666;font-size:.85rem}
article.deleted .body{color:#888;font-style:italic}
.tag{font-size:.7rem;border:1px solid #bbb;border-radius:4px;padding:0 .3rem}
"""
_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


def isos(column: pd.Series) -> list[str | None]:
    """A datetime column as RFC 3339 strings (``None`` for NaT)."""
    values = column.to_numpy(dtype="datetime64[us]")
    return [None if v == "NaT" else v + "Z" for v in np.datetime_as_string(values, unit="us").tolist()]


def texts(column: pd.Series) -> list[str | None]:
    return [None if v is None or v is pd.NA or v != v else str(v) for v in column.tolist()]


def _attr(name: str, value: str | None) -> str:
    return "" if value is None else f' data-{name}="{html.escape(value, quote=True)}"'


def system_text(kind: str, initiator: str | None, topic: str | None, ids: Any, escape: Any) -> str:
    """What a system message says (topic changed, participants added or removed), escaped by ``escape``."""
    who = escape(initiator or "someone")
    if kind == "topicUpdated":
        return f"{who} changed the topic to “{escape(topic or '')}”"
    names = ", ".join(escape(str(p)) for p in (ids if isinstance(ids, (list, tuple, np.ndarray)) else ()))
    verb = "added" if kind == "participantAdded" else "removed"
    return f"{who} {verb} {names}"


class Row(NamedTuple):
    """The fields of one exported message that the transcripts show."""

    id: str | None
    kind: str
    seq: int
    version: str | None
    content: str | None
    sender: str | None
    name: str | None
    created: str | None
    edited: str | None
    deleted: str | None
    topic: str | None
    ids: Any
    initiator: str | None


def message_rows(frame: pd.DataFrame) -> Iterator[Row]:
    """``frame``'s rows (export columns, in the frame's order) as :class:`Row` s, text as ``str``."""
    columns = zip(
        texts(frame["id"]),
        texts(frame["type"]),
        frame["sequence_id"].tolist(),
        texts(frame["version"]),
        texts(frame["content"]),
        texts(frame["sender_id"]),
        texts(frame["sender_display_name"]),
        isos(frame["created_on"]),
        isos(frame["edited_on"]),
        isos(frame["deleted_on"]),
        texts(frame["topic"]),
        frame["participant_ids"].tolist(),
        texts(frame["initiator_id"]),
        strict=True,
    )
    for values in columns:
        yield Row(values[0], values[1] or "", *values[2:])


def render_rows(frame: pd.DataFrame) -> str:
    """The ``<article>`` elements of ``frame``'s rows (export columns, in the frame's order)."""
    parts: list[str] = []
    for row in message_rows(frame):
        id_, kind, seq, version, content, sender, name, created, edited, deleted, topic, ids, initiator = row
        system = kind in _SYSTEM_TYPES
        classes = ["msg", "system" if system else kind.lower()]
        if deleted:
            classes.append("deleted")
        if edited:
            classes.append("edited")
        if system:
            body = system_text(kind, initiator, topic, ids, html.escape)
        elif deleted:
            body = "message deleted"
        elif kind.lower() == "html":
            body = nh3.clean(content or "")
        else:
            body = html.escape(content or "", quote=False)
        attrs = (
            _attr("id", id_)
            + _attr("seq", str(int(seq)))
            + _attr("version", version)
            + _attr("type", kind)
            + _attr("sender", sender)
            + _attr("sender-name", name)
            + _attr("created", created)
            + _attr("edited", edited)
            + _attr("deleted", deleted)
        )
        head = ""
        if not system:
            tags = ' <span class="tag">edited</span>' if edited and not deleted else ""
            tags += ' <span class="tag">deleted</span>' if deleted else ""
            shown = (created or "")[:19].replace("T", " ")
            who = html.escape(name or sender or "unknown")
            when = f'<time datetime="{created or ""}">{shown} UTC</time>'
            head = f'<header><span class="who">{who}</span>{when}{tags}</header>'
        parts.append(
            f'<article class="{" ".join(classes)}" id="m-{html.escape(id_ or "")}"{attrs}>'
            f'{head}<div class="body">{body}</div></article>\n'
        )
    return "".join(parts)


def page_head(*, thread_id: str, topic: str, note: str) -> str:
    """The transcript page up to its first message (``<main>`` carries the thread id for readers)."""
    title = html.escape(topic or thread_id)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{title}</title><style>{_STYLE}</style></head>\n<body>"
        f'<header class="top"><h1>{title}</h1><p>thread <code>{html.escape(thread_id)}</code> · '
        f'{html.escape(note)}</p></header>\n<main data-thread="{html.escape(thread_id, quote=True)}">\n'
    )


PAGE_TAIL = "</main>\n</body></html>\n"
