"""Safe rendering and the event table model of chatnb.widgets (no emulator needed)."""

from __future__ import annotations

import threading
from datetime import datetime, timezone

import pytest

from chatnb.events import Event, parse_event
from chatnb.widgets import EventTable
from chatnb.widgets._describe import describe_event
from chatnb.widgets._html import esc, linkify, render_content, sanitize_html, time_tag
from chatnb.widgets._live import default_display_name, raw_id, token_user_id
from chatnb.widgets._table import matcher, row_wire, rows_html

JACK = "8:acs:resource_jack"
THREAD = "19:abc@thread.v2"


def received(i: int, text: str = "hi", thread: str = THREAD) -> Event:
    return parse_event(
        "chatMessageReceived",
        {
            "threadId": thread,
            "id": str(1700000000000 + i),
            "message": text,
            "type": "text",
            "sender": {"rawId": JACK, "communicationUser": {"id": JACK}},
            "senderDisplayName": "Jack",
            "createdOn": "2026-01-02T03:04:05Z",
        },
        event_id=i,
    )


@pytest.mark.parametrize(
    ("dangerous", "forbidden"),
    [
        pytest.param("<script>alert(1)</script>ok", "<script", id="script"),
        pytest.param('<img src="https://x.test/a.png" onerror="alert(1)">', "onerror", id="handler"),
        pytest.param('<a href="javascript:alert(1)">x</a>', "javascript:", id="js-url"),
        pytest.param('<a href="JaVaScRiPt:alert(1)">x</a>', "alert", id="js-url-case"),
        pytest.param('<svg onload="alert(1)"><circle/></svg>', "onload", id="svg"),
        pytest.param('<iframe src="https://evil.test"></iframe>', "<iframe", id="iframe"),
        pytest.param("<style>body{display:none}</style>x", "display:none", id="style"),
        pytest.param('<p style="background:url(javascript:alert(1))">x</p>', "style=", id="style-attr"),
        pytest.param('<a href="/logout">x</a>', "/logout", id="relative-url"),
        pytest.param('<img src="data:image/svg+xml,<svg onload=alert(1)>">', "data:", id="data-url"),
        pytest.param('<form action="https://x.test"><input name="q"></form>', "<input", id="form"),
    ],
)
def test_html_messages_are_sanitised(dangerous: str, forbidden: str) -> None:
    cleaned = render_content(dangerous, "html")
    assert forbidden.lower() not in cleaned.lower()


def test_html_formatting_survives_sanitising() -> None:
    cleaned = sanitize_html('<p><b>bold</b> <i>it</i> <a href="https://learn.microsoft.com">docs</a></p>')
    assert "<b>bold</b>" in cleaned and "<i>it</i>" in cleaned
    assert 'href="https://learn.microsoft.com"' in cleaned and 'target="_blank"' in cleaned
    assert "noopener" in cleaned


def test_text_messages_are_escaped_not_interpreted() -> None:
    assert render_content('<img src=x onerror="alert(1)">\nline 2', "text") == (
        "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;<br>line 2"
    )
    assert render_content("<b>x</b>", "Text") == "&lt;b&gt;x&lt;/b&gt;"
    assert render_content(None, "text") == ""
    assert esc(None) == "" and esc("a\"'<") == "a&quot;&#x27;&lt;"


def test_urls_in_text_become_links_and_nothing_else_does() -> None:
    html = linkify("see https://example.org/a?b=1&c=2, or http://x.test/(y). not javascript:alert(1)")
    assert (
        '<a href="https://example.org/a?b=1&amp;c=2" target="_blank" rel="noopener noreferrer nofollow">'
        in html
    )
    assert (
        'href="http://x.test/(y)"' not in html and 'href="http://x.test/(y"' in html
    )  # closing ")." left out
    assert "javascript:alert(1)" in html and 'href="javascript' not in html
    assert linkify('"><script>https://a.test/"onload=x') == (
        '&quot;&gt;&lt;script&gt;<a href="https://a.test/" target="_blank" '
        'rel="noopener noreferrer nofollow">https://a.test/</a>&quot;onload=x'
    )


def test_images_in_html_messages_become_links_and_are_never_fetched() -> None:
    cleaned = sanitize_html('<p>cat: <img src="https://cats.test/a.png" alt="a &quot;cat&quot;"></p>')
    assert "<img" not in cleaned
    assert '<a href="https://cats.test/a.png" class="chatnb-image-link"' in cleaned
    assert "[image: a &quot;cat&quot;]" in cleaned
    assert "<img" not in sanitize_html('<img src="/files/secret.png">')  # relative: dropped
    assert sanitize_html('<img src="data:image/png;base64,AAAA">') == ""


def test_times_in_snapshots_are_utc_time_elements() -> None:
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    assert time_tag(when) == '<time datetime="2026-01-02T03:04:05Z">2026-01-02 03:04 UTC</time>'
    assert time_tag(None) == ""


def test_the_one_place_the_widgets_read_a_display_name_and_a_token() -> None:
    class Thread:
        default_display_name = None
        _default_display_name = "Jack"  # a private attribute is never read

    assert default_display_name(Thread()) is None
    Thread.default_display_name = "Geeta"  # type: ignore[assignment]
    assert default_display_name(Thread()) == "Geeta"
    with pytest.raises(ValueError):
        token_user_id("not a token")


def test_event_table_is_bounded_newest_first_and_counts_since_clear() -> None:
    table = EventTable(max_events=3)
    for i in range(5):
        table.add(received(i, f"m{i}"))
    assert [r.summary for r in table.rows()] == ["m4", "m3", "m2"]
    assert table.received == 5 and len(table) == 3
    table.clear()
    assert table.rows() == [] and table.received == 0


def test_event_table_filters_by_thread_but_keeps_connection_events() -> None:
    table = EventTable()
    assert table.add(received(1, thread="19:other@thread.v2"), thread_id=THREAD) is None
    assert table.add(received(2), thread_id=THREAD) is not None
    assert table.add(parse_event("realTimeNotificationConnected", {}), thread_id=THREAD) is not None
    assert [r.kind for r in table.rows()] == ["realTimeNotificationConnected", "chatMessageReceived"]


def test_event_table_wakes_a_watcher_on_the_nth_matching_event() -> None:
    table = EventTable()
    woken = threading.Event()
    table.add(received(1))
    waiter = table.watch(3, matcher("chatMessageReceived", None), woken.set)
    table.add(parse_event("typingIndicatorReceived", {"threadId": THREAD, "sender": JACK}))
    table.add(received(2))
    assert not woken.is_set() and waiter.count == 2
    table.add(received(3))
    assert woken.is_set()
    already = threading.Event()
    table.watch(1, matcher(None, lambda e: getattr(e, "message", "") == "hi"), already.set)
    assert already.is_set()
    with pytest.raises(ValueError, match="unknown event"):
        matcher("messageReceived", None)


def test_rows_render_escaped_with_kind_selectors() -> None:
    table = EventTable()
    table.add(received(1, "<img src=x onerror=alert(1)>"))
    html = rows_html(table.rows(), 10)
    assert 'data-kind="chatMessageReceived"' in html and "UTC</time>" in html
    assert "<img" not in html and "&lt;img" in html


@pytest.mark.parametrize(
    ("name", "payload", "summary"),
    [
        ("chatMessageEdited", {"id": "5", "message": "new"}, "edited: new"),
        ("chatMessageDeleted", {"id": "5"}, "message deleted"),
        ("typingIndicatorReceived", {"sender": JACK}, "is typing"),
        ("readReceiptReceived", {"sender": JACK, "chatMessageId": "5"}, "read message 5"),
        ("chatThreadPropertiesUpdated", {"properties": {"topic": "Lunch"}}, "topic: Lunch"),
        ("chatThreadDeleted", {}, "thread deleted"),
        (
            "participantsAdded",
            {"participantsAdded": [{"communicationIdentifier": {"rawId": JACK}, "displayName": "Jack"}]},
            "added Jack",
        ),
        (
            "participantsRemoved",
            {"participantsRemoved": [{"communicationIdentifier": {"rawId": JACK}}]},
            None,
        ),
    ],
)
def test_every_event_kind_has_a_summary(name: str, payload: dict[str, object], summary: str | None) -> None:
    info = describe_event(parse_event(name, {"threadId": THREAD, **payload}))
    assert info["kind"] == name and info["thread_id"] == THREAD
    assert info["summary"] == (summary if summary is not None else f"removed {JACK}")


def test_raw_id_of_identifiers_participants_and_strings() -> None:
    event = received(1)
    assert raw_id(event.sender) == JACK  # type: ignore[attr-defined]
    assert raw_id(None) == "" and raw_id("8:acs:x") == "8:acs:x"


def test_event_rows_go_to_the_browser_with_epoch_times() -> None:
    table = EventTable()
    row = table.add(received(1, "hello"))
    assert row is not None
    wire = row_wire(row)
    assert wire["kind"] == "chatMessageReceived" and wire["from"] == "Jack" and wire["sum"] == "hello"
    assert wire["at"] == int(row.received_at.timestamp() * 1000)


def test_widgets_all_is_complete() -> None:
    import inspect

    import chatnb.widgets
    from chatnb.widgets import (
        _base,
        _describe,
        _history,
        _html,
        _live,
        _outbox,
        _own,
        _table,
        _target,
        _transcript,
        _worker,
        chat_view,
        composer,
        event_log,
        panel,
        participants,
    )

    for module in (
        chatnb.widgets,
        _base,
        _describe,
        _history,
        _html,
        _live,
        _outbox,
        _own,
        _table,
        _target,
        _transcript,
        _worker,
        chat_view,
        composer,
        event_log,
        panel,
        participants,
    ):
        exported = module.__all__  # ruff (RUF022) keeps it sorted
        assert len(set(exported)) == len(exported), module.__name__
        for name in exported:
            assert getattr(module, name) is not None
        defined = {
            name
            for name, value in vars(module).items()
            if not name.startswith("_")
            and (inspect.isclass(value) or inspect.isfunction(value))
            and value.__module__ == module.__name__
        }
        assert defined <= set(exported), (module.__name__, defined - set(exported))
