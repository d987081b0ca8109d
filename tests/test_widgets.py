"""chatnb.widgets driven from Python, without a kernel, against the real emulator and real-time events.

Every wait is on a condition (``EventLog.wait_for``), never a sleep. Views share the chat client of the
event log a test waits on and are built before it: a chat client calls its handlers in the order they were
registered, so once the log has seen an event, the views have too.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import chatnb
from chatnb.emulator import Emulator
from chatnb.widgets import EVENT_COLUMNS, ChatPanel, ChatView, EventLog, MessageComposer, ParticipantList

WAIT = 30.0


@dataclass
class Chat:
    session: chatnb.Session
    jack: chatnb.User
    geeta: chatnb.User
    thread_id: str

    def thread(self, user: chatnb.User) -> chatnb.ChatThreadClient:
        return user.thread(self.thread_id)


@pytest.fixture
def chat(emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Chat]:
    """Jack and Geeta (new users) in a new thread, through ``chatnb.connect``."""
    monkeypatch.setenv("CHATNB_HOME", str(tmp_path))
    session = chatnb.connect(emulator.connection_string)
    jack, geeta = session.user("Jack"), session.user("Geeta")
    thread = jack.create_thread("Widgets", participants=[geeta])
    yield Chat(session, jack, geeta, thread.thread_id)
    for user in session.users.values():
        user.chat_client.stop_realtime_notifications()
    session.close()


def closing(*parts: Any) -> None:
    for part in parts:
        part.close()


def submit(text_widget: Any) -> None:
    """What the browser sends when Enter is pressed in a Text widget: a custom ``submit`` message."""
    text_widget._handle_msg(
        {"content": {"data": {"method": "custom", "content": {"event": "submit"}}}, "buffers": []}
    )


def contents(thread: chatnb.ChatThreadClient) -> list[str]:
    frame = thread.list_messages()
    return [str(c) for c in frame[frame["type"].isin(["text", "html"])]["content"]]


def test_composer_sends_on_button_and_enter_and_the_log_sees_both(chat: Chat) -> None:
    log = EventLog(chat.geeta.chat_client, thread_id=chat.thread_id)
    composer = MessageComposer(chat.thread(chat.jack))
    busy: list[bool] = []
    composer.send_button.observe(lambda change: busy.append(change["new"]), "disabled")

    composer.text.value = "Hello <b>Geeta</b>"
    composer.send_button.click()
    first = composer.last_message_id
    assert first is not None and composer.last_error is None
    assert busy == [True, False]  # disabled while sending, enabled again
    assert composer.text.value == "" and not composer.text.disabled
    assert (
        f'data-message-id="{first}"' in composer.status.value and "chatnb-status-ok" in composer.status.value
    )

    composer.text.value = "and again, with Enter"
    submit(composer.text)
    assert composer.last_message_id not in (None, first) and composer.sent == 2

    assert contents(chat.thread(chat.geeta)) == ["Hello <b>Geeta</b>", "and again, with Enter"]
    events = log.wait_for(2, event_type="chatMessageReceived", timeout=WAIT)
    assert [e.message for e in events] == ["Hello <b>Geeta</b>", "and again, with Enter"]
    assert [e.id for e in events] == [first, composer.last_message_id]
    assert {e.sender_display_name for e in events} == {"Jack"}

    frame = log.to_dataframe()
    assert list(frame.columns) == list(EVENT_COLUMNS)
    assert {c: str(t) for c, t in frame.dtypes.items()} == EVENT_COLUMNS
    received = frame[frame["kind"] == "chatMessageReceived"]
    assert list(received["summary"]) == ["Hello <b>Geeta</b>", "and again, with Enter"]
    assert log.rows[0].kind == "chatMessageReceived"  # newest first
    html = log.table_html.value
    assert html.count('data-kind="chatMessageReceived"') == 2
    assert "Hello &lt;b&gt;Geeta&lt;/b&gt;" in html and "<b>Geeta</b>" not in html
    closing(log, composer)


def test_composer_shows_errors_inline_and_sends_html(chat: Chat, emulator: Emulator) -> None:
    composer = MessageComposer(chat.thread(chat.jack), display_name="J.", message_type="html")
    composer.text.value = "   "
    composer.send_button.click()
    assert "Nothing to send" in composer.status.value and composer.last_message_id is None

    composer.text.value = "<p><b>bold</b></p>"
    composer.send_button.click()
    message = chat.thread(chat.geeta).get_message(composer.last_message_id or "")
    assert str(message.type) == "html" and message.sender_display_name == "J."

    other = chat.session.user("Sam").create_thread("Not Jack's")
    stranger = MessageComposer(chat.jack.thread(other.thread_id))
    stranger.text.value = "let me in"
    stranger.send_button.click()
    status = stranger.status.value
    assert "chatnb-status-error" in status and "Not sent" in status and "403" in status
    assert "Traceback" not in status and stranger.last_message_id is None
    assert isinstance(stranger.last_error, chatnb.ChatError)
    assert stranger.text.value == "let me in" and not stranger.text.disabled  # kept for a retry
    closing(composer, stranger)


def test_typing_is_throttled_and_shown_to_the_other_user(chat: Chat) -> None:
    geeta_view = ChatView(chat.thread(chat.geeta), chat_client=chat.geeta.chat_client)
    log = EventLog(chat.geeta.chat_client, thread_id=chat.thread_id, events=["typingIndicatorReceived"])
    composer = MessageComposer(chat.thread(chat.jack), typing_interval=60)
    for partial in ("H", "He", "Hel", "Hell"):
        composer.text.value = partial
    assert composer.typing_sent == 1
    (typing,) = log.wait_for(1, timeout=WAIT)
    assert typing.sender_display_name == "Jack"
    assert geeta_view.typing == ["Jack"]
    geeta_view.refresh()
    assert "Jack is typing" in geeta_view.typing_html.value
    closing(geeta_view, log, composer)


def test_chat_view_bubbles_live_edits_deletes_and_read_state(chat: Chat) -> None:
    jack_thread, geeta_thread = chat.thread(chat.jack), chat.thread(chat.geeta)
    jack_view = ChatView(jack_thread, chat_client=chat.jack.chat_client)
    geeta_view = ChatView(geeta_thread, chat_client=chat.geeta.chat_client, send_read_receipts=True)
    jack_log = EventLog(chat.jack.chat_client, thread_id=chat.thread_id)

    assert [i.system for i in jack_view.items] == [True, True]  # participantAdded, topicUpdated
    first = jack_thread.send_message("<i>first</i>").id
    jack_log.wait_for(1, event_type="chatMessageReceived", timeout=WAIT)
    jack_view.refresh()
    assert [i.content for i in jack_view.items if not i.system] == ["<i>first</i>"]
    assert f'chatnb-own" data-id="{first}"' in jack_view.html.value.replace(" chatnb-read", "")
    assert "&lt;i&gt;first&lt;/i&gt;" in jack_view.html.value  # a text message is not interpreted
    assert "Jack set the topic to “Widgets”" in jack_view.html.value  # a system message

    jack_log.wait_for(1, event_type="readReceiptReceived", timeout=WAIT)  # Geeta's view marked it read
    geeta_view.refresh()  # it had the message before it sent the receipt
    assert f'chatnb-msg chatnb-other" data-id="{first}"' in geeta_view.html.value
    assert jack_view.read_by(first) == ["Geeta"]
    jack_view.refresh()
    assert "Read by Geeta" in jack_view.html.value

    jack_thread.update_message(first, "first, edited")
    jack_log.wait_for(1, event_type="chatMessageEdited", timeout=WAIT)
    (item,) = [i for i in jack_view.items if i.id == first]
    assert item.content == "first, edited" and item.edited_on is not None
    jack_view.refresh()
    assert "first, edited" in jack_view.html.value and "edited" in jack_view.html.value

    html_id = geeta_thread.send_message(
        '<b>bold</b><img src="https://127.0.0.1:9/x.png" onerror="alert(1)"><script>alert(2)</script>',
        chat_message_type="html",
    ).id
    jack_thread.delete_message(first)
    jack_log.wait_for(1, event_type="chatMessageDeleted", timeout=WAIT)
    jack_view.refresh()
    page = jack_view.html.value
    assert "This message was deleted" in page and "first, edited" not in page
    assert f'chatnb-msg chatnb-other" data-id="{html_id}"' in page
    assert "<b>bold</b>" in page and "onerror" not in page and "<script" not in page
    closing(jack_view, geeta_view, jack_log)


def test_participant_list_adds_and_removes_live(chat: Chat) -> None:
    jack_list = ParticipantList(
        chat.thread(chat.jack), resolve=chat.session.user, chat_client=chat.jack.chat_client
    )
    geeta_list = ParticipantList(chat.thread(chat.geeta), chat_client=chat.geeta.chat_client)
    geeta_log = EventLog(chat.geeta.chat_client, thread_id=chat.thread_id)
    assert sorted(jack_list.participants.values()) == ["Geeta", "Jack"]
    assert "(you)" in jack_list.rows.children[0].children[1].value  # yourself first

    jack_list.add_field.value = "Sam"
    jack_list.add_button.click()
    sam = chat.session.user("Sam")
    assert sam.id in set(chat.thread(chat.jack).list_participants()["id"])
    assert "Added Sam" in jack_list.status.value and jack_list.add_field.value == ""
    geeta_log.wait_for(1, event_type="participantsAdded", timeout=WAIT)
    assert geeta_list.participants[sam.id] == "Sam"
    geeta_list.refresh()
    assert len(geeta_list.rows.children) == 3

    jack_list.remove_button(sam.id).click()
    assert sam.id not in set(chat.thread(chat.jack).list_participants()["id"])
    geeta_log.wait_for(1, event_type="participantsRemoved", timeout=WAIT)
    assert sam.id not in geeta_list.participants
    geeta_list.refresh()
    assert len(geeta_list.rows.children) == 2
    assert all(sam.id not in row.children[1].value for row in geeta_list.rows.children)

    bare = ParticipantList(chat.thread(chat.geeta))
    bare.add("nobody")
    assert "not an ACS user id" in bare.status.value
    closing(jack_list, geeta_list, geeta_log, bare)


def test_event_log_filter_pause_clear_and_bound(chat: Chat) -> None:
    kinds = ["chatMessageReceived", "typingIndicatorReceived"]
    log = EventLog(chat.jack.chat_client, thread_id=chat.thread_id, max_events=3, events=kinds)
    thread = chat.thread(chat.jack)
    log.paused = True
    for i in range(4):
        thread.send_message(f"m{i}")
    log.wait_for(4, event_type="chatMessageReceived", timeout=WAIT)
    assert "No events yet" in log.table_html.value  # paused: the table did not move
    assert [r.summary for r in log.rows] == ["m3", "m2", "m1"]  # bounded, newest first
    log.paused = False
    assert log.table_html.value.count('data-kind="chatMessageReceived"') == 3

    chat.thread(chat.geeta).send_typing_notification()
    log.wait_for(1, event_type="typingIndicatorReceived", timeout=WAIT)
    log.filter.value = "typingIndicatorReceived"
    assert log.table_html.value.count("chatnb-event-row") == 1
    assert "1 of 3 events" in log.counter.value

    log.clear_button.click()
    assert log.rows == [] and "No events yet" in log.table_html.value
    with pytest.raises(TimeoutError, match="chatMessageReceived"):
        log.wait_for(1, event_type="chatMessageReceived", timeout=0.2)
    with pytest.raises(ValueError):
        log.wait_for(0)
    closing(log)


async def test_enter_waits_for_the_browser_to_finish_sending_the_text(chat: Chat) -> None:
    """The front end may send "submit" before the last keystrokes' update (it holds updates back while
    one is unanswered): Enter then waits until the text has been quiet for ``settle`` seconds."""
    composer = MessageComposer(chat.thread(chat.jack), typing_interval=0, settle=0.2)
    composer.text.set_state({"value": "typed fa"})  # as the browser sends it
    submit(composer.text)
    assert composer.sent == 0 and composer.pending_send is not None  # not with a half-sent text
    composer.text.set_state({"value": "typed fast"})  # the update the browser held back
    await composer.pending_send
    assert composer.sent == 1 and composer.text.value == ""
    message = chat.thread(chat.geeta).get_message(composer.last_message_id or "")
    assert message.content is not None and message.content.message == "typed fast"
    composer.text.value = "from code"  # not from the browser: no need to wait
    composer.send_button.click()
    assert composer.sent == 2
    closing(composer)


async def test_async_wait_for_with_the_sync_client_on_a_running_loop(chat: Chat) -> None:
    """In a notebook the sync client's events arrive on the running loop; ``await`` waits for them."""
    log = EventLog(chat.geeta.chat_client, thread_id=chat.thread_id)
    chat.thread(chat.jack).send_message("on the loop")
    (event,) = await log.wait_for_async(1, event_type="chatMessageReceived", timeout=WAIT)
    assert event.message == "on the loop"
    chat.geeta.chat_client.stop_realtime_notifications()  # the stream lives on this test's loop
    await log.wait_for_async(1, event_type="realTimeNotificationDisconnected", timeout=WAIT)
    closing(log)


async def test_widgets_over_the_async_client(emulator: Emulator, chat: Chat) -> None:
    from chatnb.aio import ChatClient, CommunicationTokenCredential

    token = chat.geeta.credential.get_token().token
    async with ChatClient(emulator.endpoint, CommunicationTokenCredential(token)) as client:
        await client.start_realtime_notifications()  # returns once connected
        thread = client.get_chat_thread_client(chat.thread_id)
        view = ChatView(thread, chat_client=client)  # "me" is read from the async credential
        people = ParticipantList(thread, chat_client=client)
        log = EventLog(client, thread_id=chat.thread_id)
        composer = MessageComposer(thread, display_name="Geeta")
        await view.load_task
        await people.load_task
        assert view.user_id == chat.geeta.id and sorted(people.participants.values()) == ["Geeta", "Jack"]

        composer.text.value = "async hello"
        task = composer.send()
        assert composer.sending and composer.send_button.disabled  # until the request completes
        await task
        assert composer.last_message_id and not composer.sending
        (event,) = await log.wait_for(1, event_type="chatMessageReceived", timeout=WAIT)
        assert event.message == "async hello" and event.id == composer.last_message_id
        view.refresh()
        assert f'chatnb-own" data-id="{event.id}"' in view.html.value
        await client.stop_realtime_notifications()
        closing(log, view, people, composer)


def test_widgets_of_a_bare_thread_client_share_one_stream_closed_with_the_last(chat: Chat) -> None:
    thread = chat.thread(chat.jack)
    view, people = ChatView(thread), ParticipantList(thread)
    shared = view.chat_client
    assert people.chat_client is shared and shared is not chat.jack.chat_client
    assert shared.realtime.running and view.user_id == chat.jack.id
    view.close()
    assert shared.realtime.running  # the participant list still uses it
    people.close()
    people.close()  # closing twice is harmless
    assert not shared.realtime.running
    again = ChatView(thread)
    assert again.chat_client is not shared  # a new one for the next widget
    again.close()
    assert not again.chat_client.realtime.running
    mine = EventLog(chat.jack.chat_client)
    mine.close()
    assert chat.jack.chat_client.realtime.running  # a client you passed in is left alone


def test_chat_panel_puts_it_together(chat: Chat) -> None:
    jack_panel = ChatPanel(chat.jack, chat.thread_id)
    geeta_panel = ChatPanel(chat.geeta, chat.thread_id)
    assert "chatnb-panel-jack" in jack_panel._dom_classes and "chatnb-panel-geeta" in geeta_panel._dom_classes
    jack_panel.composer.text.value = "from the panel"
    submit(jack_panel.composer.text)
    assert geeta_panel.event_log is not None
    geeta_panel.event_log.wait_for(1, event_type="chatMessageReceived", timeout=WAIT)
    geeta_panel.view.refresh()
    assert "from the panel" in geeta_panel.view.html.value
    assert sorted(geeta_panel.participants.participants.values()) == ["Geeta", "Jack"]
    with pytest.raises(ValueError):
        ChatPanel(chat.jack)
    closing(jack_panel, geeta_panel)
