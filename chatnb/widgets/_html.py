"""Safe HTML for the widgets: escaping, links, sanitising chat ``html`` messages, static snapshots.

Message content is rendered to HTML here, in the kernel, and the front ends insert it as given: text is
escaped (``http``/``https`` URLs become links), and ``html`` messages are cleaned with nh3 (an allow-list
of formatting tags; no ``<script>``/``<style>``, no event-handler or ``style`` attributes, links only to
``http``/``https``/``mailto`` URLs, relative URLs dropped so a message cannot reach the Jupyter server).
Images are never shown: a chat message must not make the reader's browser fetch anything, so an absolute
image URL becomes a link saying ``[image: alt]`` (one the reader may choose to follow).

>>> render_content("<b>hi</b> see https://example.org/x.", "text")
'&lt;b&gt;hi&lt;/b&gt; see <a href="https://example.org/x" target="_blank" rel="noopener noreferrer nofollow">https://example.org/x</a>.'
>>> render_content('<b onclick="x()">hi</b><script>alert(1)</script>', "html")
'<b>hi</b>'
"""

from __future__ import annotations

import html
import re
from datetime import datetime, timezone

import nh3

__all__ = [
    "SNAPSHOT_CSS",
    "esc",
    "linkify",
    "render_content",
    "sanitize_html",
    "snapshot",
    "time_tag",
]

_URL_SCHEMES = {"http", "https", "mailto"}
_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "code", "del", "div", "em", "h1", "h2", "h3", "h4", "h5", "h6",
    "hr", "i", "img", "ins", "kbd", "li", "mark", "ol", "p", "pre", "q", "s", "small", "span", "strike",
    "strong", "sub", "sup", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "u", "ul",
}  # fmt: skip
_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan", "scope"},
    "ol": {"start"},
}
_LINK_ATTRS = 'target="_blank" rel="noopener noreferrer nofollow"'
_URL = re.compile(r"https?://[^\s<>\"'`]+", re.IGNORECASE)
_TRAILING = ".,;:!?)]}'\""
_IMG = re.compile(r"<img\b([^>]*)>", re.IGNORECASE)
_ATTR = re.compile(r'([a-zA-Z-]+)="([^"]*)"')


def esc(value: object) -> str:
    """``value`` as text safe inside HTML elements and quoted attributes (``None`` is empty)."""
    return "" if value is None else html.escape(str(value), quote=True)


def linkify(text: str) -> str:
    """Plain text as HTML: escaped, newlines as ``<br>``, ``http(s)`` URLs as links (new tab, no referrer)."""
    parts: list[str] = []
    last = 0
    for match in _URL.finditer(text):
        url = match.group(0).rstrip(_TRAILING)
        end = match.start() + len(url)
        if len(url) <= len("https://"):
            continue
        parts.append(esc(text[last : match.start()]))
        parts.append(f'<a href="{esc(url)}" {_LINK_ATTRS}>{esc(url)}</a>')
        last = end
    parts.append(esc(text[last:]))
    return "".join(parts).replace("\r\n", "\n").replace("\n", "<br>")


def _image_as_link(match: re.Match[str]) -> str:
    attrs = dict(_ATTR.findall(match.group(1)))  # nh3's output: every value double-quoted and escaped
    src, label = attrs.get("src", ""), attrs.get("alt") or attrs.get("title") or ""
    if not src:
        return ""
    text = f"[image: {label}]" if label else "[image]"
    return f'<a href="{src}" class="chatnb-image-link" {_LINK_ATTRS}>{text}</a>'


def sanitize_html(content: str) -> str:
    """Clean an ``html`` chat message: formatting tags only, no script, handlers, unsafe URLs or images
    (an absolute image URL becomes a link to it)."""
    cleaned: str = nh3.clean(
        content,
        tags=_TAGS,
        clean_content_tags={"script", "style"},
        attributes=_ATTRIBUTES,
        url_schemes=_URL_SCHEMES,
        url_relative="deny",
        link_rel="noopener noreferrer nofollow",
        set_tag_attribute_values={"a": {"target": "_blank"}},
    )
    return _IMG.sub(_image_as_link, cleaned)


def render_content(content: str | None, message_type: object) -> str:
    """A message's content as HTML: sanitised if its type is ``html``, else escaped with links."""
    if not content:
        return ""
    if str(message_type).lower() == "html":
        return sanitize_html(content)
    return linkify(content)


def time_tag(value: datetime | None, fmt: str = "%Y-%m-%d %H:%M UTC") -> str:
    """A ``<time>`` element in UTC (the kernel's time zone is nobody's in particular; empty for ``None``).

    Front ends re-render times in the reader's time zone; snapshots keep UTC, said so.
    """
    if value is None:
        return ""
    utc = value.astimezone(timezone.utc)
    return f'<time datetime="{utc.strftime("%Y-%m-%dT%H:%M:%SZ")}">{utc.strftime(fmt)}</time>'


# Static snapshots (text/html beside the widget view): readable with no CSS at all (GitHub strips it), and
# a little nicer where styles survive (nbviewer, nbconvert). Colours follow JupyterLab when present.
SNAPSHOT_CSS = """
.chatnb-snapshot{font-family:var(--jp-ui-font-family,system-ui,sans-serif);font-size:13px;
  color:var(--jp-ui-font-color1,#1f2328);border:1px solid var(--jp-border-color2,#d0d7de);border-radius:6px;
  padding:6px 10px;max-width:760px}
.chatnb-snapshot-note{font-size:12px;color:var(--jp-ui-font-color2,#57606a);margin:0 0 6px}
.chatnb-snapshot-msg{margin:4px 0}
.chatnb-snapshot-msg.chatnb-own{text-align:right}
.chatnb-snapshot-msg.chatnb-system{text-align:center;font-style:italic;color:var(--jp-ui-font-color2,#57606a)}
.chatnb-snapshot time{font-size:11px;color:var(--jp-ui-font-color2,#57606a)}
.chatnb-snapshot table{border-collapse:collapse;font-size:12px}
.chatnb-snapshot td,.chatnb-snapshot th{text-align:left;padding:2px 6px;vertical-align:top}
"""


def snapshot(kind: str, title: str, body: str) -> str:
    """A static snapshot of a widget: a titled, read-only block (``kind`` names its ``chatnb-snapshot-*``
    class). ``body`` must already be safe HTML."""
    return (
        f'<div class="chatnb-snapshot chatnb-snapshot-{esc(kind)}"><style>{SNAPSHOT_CSS}</style>'
        f'<p class="chatnb-snapshot-note">{esc(title)}</p>{body}</div>'
    )
