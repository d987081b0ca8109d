"""chatnb.widgets driven from Python and from a stand-in browser, without a kernel, against the real
emulator and real-time events.

Every wait is on a condition (``EventLog.wait_for``, a widget's :class:`~chatnb.widgets.Job`, or a message
the widget sends), never a sleep. Views share the chat client of the event log a test waits on and are
built before it: a chat client calls its handlers in the order they were registered, so once the log has
seen an event, the views have too.
"""

from __future__ import annotations

import gc
import sys
from typing import Any

import pytest

import chatnb
from chatnb.emulator import Emulator
from chatnb.events import ChatMessageReceivedEvent
from chatnb.widgets import EVENT_COLUMNS, ChatPanel, ChatView, EventLog, MessageComposer, ParticipantList
from chatnb.widgets._worker import flush
from tests.support.clients import text_of
from tests.support.widgets import Chat, FrontEnd, load_job

WAIT = 30.0


def closing(*parts: Any) -> None:
    for part in parts:
        part.close()


def contents(thread: chatnb.ChatThreadClient) -> list[str]:
    frame = thread.list_messages()
    return [str(c) for c in frame[frame["type"].isin(["text", "html"])]["content"]]


def test_composer_sends_from_the_browser_and_from_code_and_the_log_sees_both(
    chat: Chat, front: FrontEnd
) -> None:
    log = EventLog(chat.geeta, thread_id=chat.thread_id)
    composer = MessageComposer(chat.jack, chat.thread_id)
    assert composer.display_name == "Jack"  # the user's name, by default
    mark = front.mark()
    front.say(composer, {"op": "send", "text": "Hello <b>Geeta</b>\nsecond line", "local": "local-x-1"})
    events = log.wait_for(1, event_type="chatMessageReceived", timeout=WAIT)
    first = front.wait(lambda: composer.last_message_id)  # the event may come before the send's answer
    assert first == events[0].id and composer.last_error is None
    assert [s["state"]["state"] for s in front.states(composer, mark) if "state" in s] == ["sending", "sent"]
    second = composer.send("and again, from code").result(WAIT)
    assert second not in (None, first) and composer.sent == 2
    with pytest.raises(ValueError, match="empty"):
        composer.send("   ")

    assert contents(chat.thread(chat.geeta)) == ["Hello <b>Geeta</b>\nsecond line", "and again, from code"]
    events = log.wait_for(2, event_type="chatMessageReceived", timeout=WAIT)
    assert [e.id for e in events] == [first, second]
    assert {e.sender_display_name for e in events} == {"Jack"}

    frame = log.to_dataframe()
    assert list(frame.columns) == list(EVENT_COLUMNS)
    assert {c: str(t) for c, t in frame.dtypes.items()} == EVENT_COLUMNS
    received = frame[frame["kind"] == "chatMessageReceived"]
    assert list(received["summary"]) == ["Hello <b>Geeta</b> second line", "and again, from code"]
    assert log.rows[0].kind == "chatMessageReceived"  # newest first

    def rows() -> list[str]:
        ops = front.custom(log)
        return [
            c["row"]["sum"] for c in ops if c["op"] == "row" and c["row"]["kind"] == "chatMessageReceived"
        ]

    assert front.wait(lambda: len(rows()) == 2) and rows() == list(received["summary"])
    closing(log, composer)


def test_composer_errors_are_shown_not_raised_and_html_is_sent(chat: Chat, front: FrontEnd) -> None:
    composer = MessageComposer(chat.thread(chat.jack), display_name="J.", message_type="html")
    front.say(composer, {"op": "send", "text": "   ", "local": "local-y-1"})
    assert "Nothing to send" in composer.state["text"] and composer.last_message_id is None
    message_id = composer.send("<p><b>bold</b></p>").result(WAIT)
    message = chat.thread(chat.geeta).get_message(message_id)
    assert str(message.type) == "html" and message.sender_display_name == "J."
    front.set(composer, message_type="text")  # the text/html switch in the browser
    assert composer.message_type == "text"
    with pytest.raises(ValueError, match="message_type"):
        MessageComposer(chat.thread(chat.jack), message_type="markdown")

    other = chat.session.user("Sam").create_thread("Not Jack's")
    stranger = MessageComposer(chat.jack.thread(other.thread_id))
    front.say(stranger, {"op": "send", "text": "let me in", "local": "local-y-2"})
    front.wait(lambda: stranger.state.get("state") == "failed")
    assert "Not sent" in stranger.state["text"] and "403" in stranger.state["text"]
    assert "Traceback" not in stranger.state["text"] and stranger.last_message_id is None
    assert isinstance(stranger.last_error, chatnb.ChatError)
    closing(composer, stranger)


def test_typing_is_throttled_and_shown_to_the_other_user(chat: Chat, front: FrontEnd) -> None:
    geeta_view = ChatView(chat.geeta, chat.thread_id)
    log = EventLog(chat.geeta, thread_id=chat.thread_id, events=["typingIndicatorReceived"])
    composer = MessageComposer(chat.jack, chat.thread_id, typing_interval=60)
    for _ in range(4):  # the browser throttles too; the kernel holds the line whatever it is sent
        front.say(composer, {"op": "typing"})
    assert composer.typing_sent == 1
    (typing,) = log.wait_for(1, timeout=WAIT)
    assert typing.sender_display_name == "Jack"
    assert geeta_view.typing == ["Jack"]
    assert MessageComposer(chat.jack, chat.thread_id, typing_interval=0).notify_typing() is None
    closing(geeta_view, log, composer)


def test_chat_view_follows_edits_deletes_and_who_has_seen_what(chat: Chat, front: FrontEnd) -> None:
    jack_thread, _geeta_thread = chat.thread(chat.jack), chat.thread(chat.geeta)
    jack_view = ChatView(chat.jack, chat.thread_id)
    geeta_view = ChatView(chat.geeta, chat.thread_id, send_read_receipts=True)
    jack_log = EventLog(chat.jack, thread_id=chat.thread_id)
    load_job(jack_view).result(WAIT)
    flush()  # its opening messages are out
    load_job(geeta_view).result(WAIT)
    assert [i.system for i in jack_view.items] == [True, True]  # participantAdded, topicUpdated
    assert jack_view.user_id == chat.jack.id and jack_view.title == ""

    first = jack_thread.send_message("<i>first</i>").id
    jack_log.wait_for(1, event_type="chatMessageReceived", timeout=WAIT)
    assert [i.content for i in jack_view.items if not i.system] == ["<i>first</i>"]
    front.wait(lambda: any(i.id == first for i in geeta_view.items))  # on Geeta's own stream
    front.say(geeta_view, {"op": "seen", "id": first})  # Geeta's browser shows it
    jack_log.wait_for(1, event_type="readReceiptReceived", timeout=WAIT)
    assert jack_view.read_by(first) == ["Geeta"]
    assert jack_view.receipts[chat.geeta.id]["k"] == int(first)

    jack_thread.update_message(first, "first, edited")
    jack_log.wait_for(1, event_type="chatMessageEdited", timeout=WAIT)
    (item,) = [i for i in jack_view.items if i.id == first]
    assert item.content == "first, edited" and item.edited_on is not None
    jack_thread.delete_message(first)
    jack_log.wait_for(1, event_type="chatMessageDeleted", timeout=WAIT)
    (item,) = [i for i in jack_view.items if i.id == first]
    assert item.deleted_on is not None and item.content == ""
    closing(jack_view, geeta_view, jack_log)


def test_participant_list_adds_and_removes_live(chat: Chat, front: FrontEnd) -> None:
    jack_list = ParticipantList(chat.jack, chat.thread_id)  # names typed become users of the session
    geeta_list = ParticipantList(chat.thread(chat.geeta), chat_client=chat.geeta.chat_client)
    geeta_log = EventLog(chat.geeta.chat_client, thread_id=chat.thread_id)
    load_job(jack_list).result(WAIT)
    flush()  # its opening messages are out
    assert sorted(jack_list.participants.values()) == ["Geeta", "Jack"]
    assert jack_list.people[0] == {"id": chat.jack.id, "name": "Jack", "you": True}  # yourself first

    front.say(jack_list, {"op": "add", "text": "Sam"})
    geeta_log.wait_for(1, event_type="participantsAdded", timeout=WAIT)
    sam = chat.session.user("Sam")
    assert sam.id in set(chat.thread(chat.jack).list_participants()["id"])
    front.wait(lambda: jack_list.status.get("text") == "Added Sam.")
    assert geeta_list.participants[sam.id] == "Sam" and len(geeta_list.people) == 3

    front.say(jack_list, {"op": "remove", "id": sam.id})
    geeta_log.wait_for(1, event_type="participantsRemoved", timeout=WAIT)
    assert sam.id not in set(chat.thread(chat.jack).list_participants()["id"])
    assert sam.id not in geeta_list.participants and len(geeta_list.people) == 2

    bare = ParticipantList(chat.thread(chat.geeta))
    assert bare.add("nobody") is None
    assert "not an ACS user id" in bare.status["text"]
    closing(jack_list, geeta_list, geeta_log, bare)


def test_event_log_filter_pause_clear_bound_and_quiet_by_default(chat: Chat, front: FrontEnd) -> None:
    kinds = ["chatMessageReceived", "typingIndicatorReceived"]
    log = EventLog(chat.jack.chat_client, thread_id=chat.thread_id, max_events=3, events=kinds)
    thread = chat.thread(chat.jack)
    front.set(log, paused=True)  # the Pause button
    mark = front.mark()
    for i in range(4):
        thread.send_message(f"m{i}")
    log.wait_for(4, event_type="chatMessageReceived", timeout=WAIT)
    assert flush() and not [
        c for c in front.custom(log, mark) if c["op"] == "row"
    ]  # paused: the table did not move
    assert [r.summary for r in log.rows] == ["m3", "m2", "m1"]  # bounded, newest first
    mark = front.mark()
    front.set(log, paused=False)
    rows = front.wait_op(log, "rows", mark)["rows"]
    assert [r["sum"] for r in rows] == ["m3", "m2", "m1"] and log.total == 3

    mark = front.mark()
    chat.thread(chat.geeta).send_typing_notification()
    log.wait_for(1, event_type="typingIndicatorReceived", timeout=WAIT)
    assert flush() and not [
        c for c in front.custom(log, mark) if c["op"] == "row"
    ]  # typing: collected, not shown
    mark = front.mark()
    front.set(log, kind_filter="typingIndicatorReceived")
    rows = front.wait_op(log, "rows", mark)["rows"]
    assert [r["kind"] for r in rows] == ["typingIndicatorReceived"]

    front.say(log, {"op": "clear"})
    assert log.rows == [] and log.total == 0
    with pytest.raises(TimeoutError, match="chatMessageReceived"):
        log.wait_for(1, event_type="chatMessageReceived", timeout=0.2)
    with pytest.raises(ValueError):
        log.wait_for(0)
    with pytest.raises(ValueError, match="unknown event"):
        EventLog(chat.jack, events=["messageReceived"])
    closing(log)


async def test_async_wait_for_with_the_sync_client_on_a_running_loop(chat: Chat) -> None:
    """In a notebook the sync client's events arrive on the running loop; ``await`` waits for them."""
    log = EventLog(chat.geeta.chat_client, thread_id=chat.thread_id)
    chat.thread(chat.jack).send_message("on the loop")
    (event,) = await log.wait_for_async(1, event_type="chatMessageReceived", timeout=WAIT)
    assert isinstance(event, ChatMessageReceivedEvent) and event.message == "on the loop"
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
        view.follow(composer.outbox)
        await load_job(view)
        await load_job(people)
        assert view.user_id == chat.geeta.id and sorted(people.participants.values()) == ["Geeta", "Jack"]

        message_id = await composer.send("async hello")
        assert composer.last_message_id == message_id
        (event,) = await log.wait_for(1, event_type="chatMessageReceived", timeout=WAIT)
        assert event.message == "async hello" and event.id == message_id
        (mine,) = [i for i in view.items if not i.system]
        assert mine.id == message_id and mine.sender_id == chat.geeta.id and not mine.status
        job = view.edit(message_id, "async hello, edited")
        assert job is not None
        with pytest.raises(RuntimeError, match="await it"):
            job.result(1)  # on the loop it needs: waiting would hang the loop, so it says so
        with pytest.raises(RuntimeError, match="load_older"):
            view.load_all()
        await job
        assert text_of(chat.thread(chat.jack).get_message(message_id)) == "async hello, edited"
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


@pytest.mark.parametrize("kind", ["user", "chat_client", "thread_client"])
def test_every_widget_takes_a_user_a_chat_client_or_a_thread_client(chat: Chat, kind: str) -> None:
    args: dict[str, tuple[Any, ...]] = {
        "user": (chat.jack, chat.thread_id),
        "chat_client": (chat.jack.chat_client, chat.thread_id),
        "thread_client": (chat.thread(chat.jack),),
    }
    made = [cls(*args[kind]) for cls in (ChatView, MessageComposer, ParticipantList, ChatPanel)]
    log = EventLog(args[kind][0])  # the log takes the first argument alone
    assert {w.thread_client.thread_id for w in made} == {chat.thread_id}
    assert made[0].user_id == chat.jack.id and made[2].user_id == chat.jack.id
    assert log.chat_client is not None and log.thread_id == (
        chat.thread_id if kind == "thread_client" else None
    )
    closing(*made, log)


def test_wrong_arguments_raise_one_clear_error_and_nothing_is_left_half_built(
    chat: Chat, monkeypatch: pytest.MonkeyPatch
) -> None:
    gc.collect()  # earlier tests' garbage first
    unraisable: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    with pytest.raises(ValueError, match=r"ChatPanel\(user, thread_id\).*give the thread"):
        ChatPanel(chat.jack)
    with pytest.raises(TypeError, match=r"EventLog\(chat_client\), EventLog\(user\).*got int"):
        EventLog(42)
    with pytest.raises(TypeError, match="the thread must be an id or a thread client, not int"):
        ChatView(chat.jack, 5)
    with pytest.raises(ValueError, match="a thread client is the thread"):
        MessageComposer(chat.thread(chat.jack), chat.thread_id)
    with pytest.raises(ValueError, match="the thread id is empty"):
        ParticipantList(chat.jack.chat_client, " ")
    with pytest.raises(ValueError, match="max_messages"):
        ChatView(chat.jack, chat.thread_id, max_messages=0)
    gc.collect()
    from_widgets = [u for u in unraisable if "widget" in f"{u.object!r} {u.err_msg}".lower()]
    assert from_widgets == []  # no "Exception ignored in Widget.__del__"


def test_chat_panel_puts_it_together(chat: Chat, front: FrontEnd) -> None:
    jack_panel = ChatPanel(chat.jack, chat.thread_id)
    geeta_panel = ChatPanel(chat.geeta, chat.thread_id)
    assert "chatnb-panel-jack" in jack_panel._dom_classes and "chatnb-panel-geeta" in geeta_panel._dom_classes
    assert jack_panel.view.title == "Jack · chat" and not jack_panel.composer.show_status
    front.say(jack_panel.composer, {"op": "send", "text": "from the panel", "local": "local-p-1"})
    assert geeta_panel.event_log is not None
    (event,) = geeta_panel.event_log.wait_for(1, event_type="chatMessageReceived", timeout=WAIT)
    assert event.message == "from the panel"
    assert [i.content for i in geeta_panel.view.items if not i.system] == ["from the panel"]
    front.wait(lambda: [i.id for i in jack_panel.view.items if not i.system] == [event.id])  # bubble: sent
    load_job(geeta_panel.participants).result(WAIT)
    assert sorted(geeta_panel.participants.participants.values()) == ["Geeta", "Jack"]
    closing(jack_panel, geeta_panel)
