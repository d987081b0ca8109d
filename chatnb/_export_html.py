"""The HTML transcript of an export: one self-contained page per thread (and month, when partitioned).

Messages render as ``<article>`` elements carrying their fields in ``data-*`` attributes (id, sequence
id, version, type, sender, times), so a transcript can be read back by a machine too. Text content is
escaped; ``html`` messages are sanitised with nh3 (no scripts, event handlers or ``javascript:`` links);
system messages (topic changes, participants added or removed) are shown as such. The page has no
external resource, and its Content-Security-Policy blocks any (remote images in html messages included).

The service lists newest first, so the export spools each page's fragment (already in chronological
order) to a file and :func:`assemble` writes the transcript reading the fragments back in reverse.
"""

from __future__ import annotations

import html
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nh3
import pandas as pd

__all__ = ["assemble", "render_rows"]

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


def _iso(value: Any) -> str | None:
    if value is None or value is pd.NaT or (isinstance(value, float) and value != value):
        return None
    ts = pd.Timestamp(value)
    if pd.isna(ts):
        return None
    return str(ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))


def _text(value: Any) -> str | None:
    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return None
    return str(value)


def _attr(name: str, value: str | None) -> str:
    return "" if value is None else f' data-{name}="{html.escape(value, quote=True)}"'


def _system_body(row: dict[Any, Any], who: str) -> str:
    kind = row["type"]
    if kind == "topicUpdated":
        return f"{who} changed the topic to “{html.escape(_text(row['topic']) or '')}”"
    ids = row["participant_ids"]
    names = ", ".join(html.escape(str(p)) for p in (ids if ids is not None else ()))
    verb = "added" if kind == "participantAdded" else "removed"
    return f"{who} {verb} {names}"


def render_rows(frame: pd.DataFrame) -> str:
    """The ``<article>`` elements of ``frame``'s rows (export columns, in the frame's order)."""
    parts: list[str] = []
    for row in frame.to_dict("records"):
        kind = _text(row["type"]) or ""
        system = kind in _SYSTEM_TYPES
        deleted = _iso(row["deleted_on"])
        edited = _iso(row["edited_on"])
        created = _iso(row["created_on"])
        sender = _text(row["sender_id"])
        name = _text(row["sender_display_name"])
        who_raw = name or sender or _text(row["initiator_id"]) or "system"
        who = html.escape(who_raw)
        classes = ["msg", "system" if system else kind.lower()]
        if deleted:
            classes.append("deleted")
        if edited:
            classes.append("edited")
        if system:
            body = _system_body(row, html.escape(_text(row["initiator_id"]) or "someone"))
        elif deleted:
            body = "message deleted"
        elif kind.lower() == "html":
            body = nh3.clean(_text(row["content"]) or "")
        else:
            body = html.escape(_text(row["content"]) or "", quote=False)
        attrs = (
            _attr("id", _text(row["id"]))
            + _attr("seq", str(int(row["sequence_id"])))
            + _attr("version", _text(row["version"]))
            + _attr("type", kind)
            + _attr("sender", sender)
            + _attr("sender-name", name)
            + _attr("created", created)
            + _attr("edited", edited)
            + _attr("deleted", deleted)
        )
        shown = (created or "")[:19].replace("T", " ")
        tags = ""
        if edited and not deleted:
            tags += ' <span class="tag">edited</span>'
        if deleted:
            tags += ' <span class="tag">deleted</span>'
        head = "" if system else f'<header><span class="who">{who}</span>'
        if not system:
            head += f'<time datetime="{created or ""}">{shown} UTC</time>{tags}</header>'
        parts.append(
            f'<article class="{" ".join(classes)}" id="m-{html.escape(_text(row["id"]) or "")}"{attrs}>'
            f'{head}<div class="body">{body}</div></article>\n'
        )
    return "".join(parts)


def _chunks(spool: Path, ends: list[int]) -> Iterator[bytes]:
    """The spooled page fragments, last page first (that is, oldest messages first)."""
    with spool.open("rb") as fh:
        for i in range(len(ends) - 1, -1, -1):
            start = ends[i - 1] if i else 0
            fh.seek(start)
            yield fh.read(ends[i] - start)


def assemble(
    spool: Path, ends: list[int], target: Path, *, thread_id: str, topic: str, title_note: str
) -> int:
    """Write the transcript ``target`` from the page fragments in ``spool`` (atomically); its size."""
    title = html.escape(topic or thread_id)
    head = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{title}</title><style>{_STYLE}</style></head>\n<body>"
        f'<header class="top"><h1>{title}</h1><p>thread <code>{html.escape(thread_id)}</code> · '
        f"{html.escape(title_note)}</p></header>\n<main>\n"
    )
    tmp = target.with_name("." + target.name + ".tmp")
    with tmp.open("wb") as out:
        out.write(head.encode())
        if ends:
            for chunk in _chunks(spool, ends):
                out.write(chunk)
        out.write(b"</main>\n</body></html>\n")
        out.flush()
        os.fsync(out.fileno())
        size = out.tell()
    os.replace(tmp, target)
    return size
