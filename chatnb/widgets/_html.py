"""Safe HTML for the widgets: escaping, sanitising chat ``html`` messages, the shared stylesheet.

ipywidgets' ``HTML`` widget assigns its value to ``innerHTML`` without sanitising it, so an ``<img
onerror=...>`` in a chat message would run script in the notebook page. Everything the widgets render goes
through here: text is escaped, and ``html`` messages are cleaned with nh3 (an allow-list of formatting
tags; no ``<script>``/``<style>``, no event-handler or ``style`` attributes, links and images only to
``http``/``https``/``mailto`` URLs, relative URLs dropped so a message cannot reach the Jupyter server).

>>> render_content("<b>hi</b>", "text")
'&lt;b&gt;hi&lt;/b&gt;'
>>> render_content('<b onclick="x()">hi</b><script>alert(1)</script>', "html")
'<b>hi</b>'
"""

from __future__ import annotations

import html
from datetime import datetime

import nh3

__all__ = ["CSS", "esc", "format_time", "render_content", "sanitize_html", "style_tag"]

_URL_SCHEMES = {"http", "https", "mailto"}
_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "code", "del", "div", "em", "h1", "h2", "h3", "h4", "h5", "h6",
    "hr", "i", "img", "ins", "kbd", "li", "mark", "ol", "p", "pre", "q", "s", "small", "span", "strike",
    "strong", "sub", "sup", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "u", "ul",
}  # fmt: skip
_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title", "width", "height"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan", "scope"},
    "ol": {"start"},
}


def esc(value: object) -> str:
    """``value`` as text safe inside HTML elements and quoted attributes (``None`` is empty)."""
    return "" if value is None else html.escape(str(value), quote=True)


def sanitize_html(content: str) -> str:
    """Clean an ``html`` chat message: formatting tags only, no script, handlers or unsafe URLs."""
    return nh3.clean(
        content,
        tags=_TAGS,
        clean_content_tags={"script", "style"},
        attributes=_ATTRIBUTES,
        url_schemes=_URL_SCHEMES,
        url_relative="deny",
        link_rel="noopener noreferrer nofollow",
        set_tag_attribute_values={"a": {"target": "_blank"}},
    )


def render_content(content: str | None, message_type: object) -> str:
    """A message's content as HTML: sanitised if its type is ``html``, else escaped (newlines kept)."""
    if not content:
        return ""
    if str(message_type).lower() == "html":
        return sanitize_html(content)
    return esc(content).replace("\n", "<br>")


def format_time(value: datetime | None) -> str:
    """``HH:MM`` in the kernel's local time zone (empty for ``None``)."""
    if value is None:
        return ""
    return value.astimezone().strftime("%H:%M")


# Every class is prefixed ``chatnb-``; the widgets add ``chatnb-*`` classes to their ipywidgets too.
CSS = """
.chatnb-transcript{display:flex;flex-direction:column-reverse;gap:4px;max-height:360px;overflow-y:auto;
  padding:6px;border:1px solid #d0d7de;border-radius:6px;background:#f6f8fa;font-size:13px;min-height:60px}
.chatnb-msg{display:flex;flex-direction:column;max-width:75%}
.chatnb-msg.chatnb-own{align-self:flex-end;align-items:flex-end}
.chatnb-msg.chatnb-other{align-self:flex-start;align-items:flex-start}
.chatnb-msg.chatnb-system{align-self:center;align-items:center;max-width:90%;color:#57606a;font-size:12px;
  font-style:italic}
.chatnb-meta{font-size:11px;color:#57606a;margin:0 6px}
.chatnb-bubble{padding:6px 10px;border-radius:12px;word-wrap:break-word;overflow-wrap:anywhere;
  line-height:1.35}
.chatnb-own .chatnb-bubble{background:#0969da;color:#fff;border-bottom-right-radius:3px}
.chatnb-own .chatnb-bubble a{color:#fff}
.chatnb-other .chatnb-bubble{background:#fff;color:#1f2328;border:1px solid #d0d7de;
  border-bottom-left-radius:3px}
.chatnb-deleted .chatnb-bubble{background:transparent;color:#57606a;font-style:italic;
  border:1px dashed #d0d7de}
.chatnb-receipt{font-size:11px;color:#57606a;margin:0 6px}
.chatnb-typing{font-size:12px;color:#57606a;font-style:italic;min-height:18px;padding:0 6px}
.chatnb-empty{color:#57606a;font-style:italic;align-self:center}
.chatnb-status{font-size:12px;min-height:18px}
.chatnb-status-ok{color:#1a7f37}
.chatnb-status-error{color:#cf222e}
.chatnb-status-busy{color:#57606a}
.chatnb-events{max-height:260px;overflow-y:auto;border:1px solid #d0d7de;border-radius:6px}
.chatnb-events table{border-collapse:collapse;width:100%;font-size:12px;table-layout:fixed}
.chatnb-events th{position:sticky;top:0;background:#f6f8fa;text-align:left;padding:3px 6px}
.chatnb-events th.chatnb-when{width:64px}
.chatnb-events th.chatnb-kind{width:190px}
.chatnb-events th.chatnb-from{width:80px}
.chatnb-events td{border-top:1px solid #eaeef2;padding:3px 6px;vertical-align:top;overflow-wrap:anywhere}
.chatnb-events td.chatnb-kind{font-family:monospace;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.chatnb-events td.chatnb-when{white-space:nowrap;color:#57606a}
.chatnb-events td.chatnb-from{overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.chatnb-count{font-size:12px;color:#57606a;white-space:nowrap;padding:0 6px}
.chatnb-people{font-size:13px}
.chatnb-person-name{font-weight:600}
.chatnb-person-id{font-size:11px;color:#57606a;font-family:monospace}
.chatnb-heading{font-weight:600;font-size:13px}
"""


def style_tag() -> str:
    """The stylesheet as a ``<style>`` element (an ``HTML`` widget holding it styles the whole page)."""
    return f"<style>{CSS}</style>"
