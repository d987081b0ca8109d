"""The real-time methods of ChatClient (sync and async) against the real emulator."""

from __future__ import annotations

import threading

import pytest

from chatnb import ChatClient, ChatParticipant, CommunicationTokenCredential, CommunicationUserIdentifier, aio
from chatnb.emulator import Emulator
from chatnb.events import ChatMessageReceivedEvent, Event
from chatnb.realtime import EventStream
from tests.support.clients import new_user_token
from tests.support.events import collect_until
from tests.support.waiting import async_wait_until, wait_until


def messages(events: list[Event]) -> list[str | None]:
    return [e.message for e in events if isinstance(e, ChatMessageReceivedEvent)]


async def test_async_client_handlers_and_iterator(emulator: Emulator) -> None:
    (_, a_token), (b, b_token) = new_user_token(emulator), new_user_token(emulator)
    async with (
        aio.ChatClient(emulator.endpoint, aio.CommunicationTokenCredential(a_token)) as ann,
        aio.ChatClient(emulator.endpoint, aio.CommunicationTokenCredential(b_token)) as bob,
    ):
        handled: list[Event] = []

        async def on_message(event: ChatMessageReceivedEvent) -> None:
            handled.append(event)

        bob.on("chatMessageReceived", on_message)
        stream = bob.events()  # starts the notifications on first use
        created = await ann.create_chat_thread("async", [ChatParticipant(CommunicationUserIdentifier(b))])
        thread = ann.get_chat_thread_client(created.chat_thread.id)
        first = await anext(stream)
        assert first.kind == "realTimeNotificationConnected" and bob.realtime.active_mode == "push"
        await thread.send_message("one", sender_display_name="Ann")
        await thread.send_message("two", sender_display_name="Ann")
        seen = [await anext(stream) for _ in range(2)]
        assert [e.kind for e in seen] == ["chatMessageReceived"] * 2
        assert messages(seen) == messages(handled) == ["one", "two"]
        bob.off("chatMessageReceived", on_message)
        await thread.send_message("three")
        assert messages([await anext(stream)]) == ["three"]
        assert len(handled) == 2
    assert not bob.realtime.running  # closing the client stopped them
    assert [e.kind async for e in stream] == ["realTimeNotificationDisconnected"]


def test_sync_client_in_a_script_runs_a_background_thread(emulator: Emulator) -> None:
    (_, a_token), (b, b_token) = new_user_token(emulator), new_user_token(emulator)
    with (
        ChatClient(emulator.endpoint, CommunicationTokenCredential(a_token)) as ann,
        ChatClient(emulator.endpoint, CommunicationTokenCredential(b_token)) as bob,
    ):
        got: list[tuple[str, str | None]] = []
        bob.on("chatMessageReceived", lambda e: got.append((threading.current_thread().name, e.message)))
        bob.start_realtime_notifications()  # returns once connected
        assert bob.realtime.connected and bob.realtime.active_mode == "push"
        thread = ann.get_chat_thread_client(
            ann.create_chat_thread("sync", [ChatParticipant(CommunicationUserIdentifier(b))]).chat_thread.id
        )
        for text in ("one", "two", "three"):
            thread.send_message(text)
        wait_until(lambda: len(got) == 3, "three messages handled", 10)
        bob.stop_realtime_notifications()
        assert got == [("chatnb-realtime", "one"), ("chatnb-realtime", "two"), ("chatnb-realtime", "three")]
        assert not any(t.name == "chatnb-realtime" and t.is_alive() for t in threading.enumerate())
        with pytest.raises(RuntimeError, match="async for"):
            bob.events()  # no running loop here: handlers only


async def test_sync_client_in_a_notebook_cell_uses_the_kernel_loop(emulator: Emulator) -> None:
    (_, a_token), (b, b_token) = new_user_token(emulator), new_user_token(emulator)
    with (
        ChatClient(emulator.endpoint, CommunicationTokenCredential(a_token)) as ann,
        ChatClient(emulator.endpoint, CommunicationTokenCredential(b_token)) as bob,
    ):
        thread = ann.get_chat_thread_client(
            ann.create_chat_thread("cell", [ChatParticipant(CommunicationUserIdentifier(b))]).chat_thread.id
        )
        got: list[tuple[str, str | None]] = []
        bob.on("chatMessageReceived", lambda e: got.append((threading.current_thread().name, e.message)))
        bob.start_realtime_notifications()  # a cell: returns at once, the stream is a task on this loop
        assert not bob.realtime.connected
        thread.send_message("sent in the same cell, before the stream connected")
        stream = bob.events()
        await async_wait_until(lambda: len(got) == 1, "the message handled", 10)
        assert got == [
            (threading.current_thread().name, "sent in the same cell, before the stream connected")
        ]
        thread.send_message("next cell")
        seen = [await anext(stream) for _ in range(3)]
        assert [e.kind for e in seen] == [
            "realTimeNotificationConnected",
            "chatMessageReceived",
            "chatMessageReceived",
        ]
        assert messages(seen) == ["sent in the same cell, before the stream connected", "next cell"]
        bob.stop_realtime_notifications()
        assert [e.kind async for e in stream] == ["realTimeNotificationDisconnected"]
        assert not bob.realtime.running


def test_sync_client_can_be_forced_to_poll(emulator: Emulator) -> None:
    (_, a_token), (b, b_token) = new_user_token(emulator), new_user_token(emulator)
    with (
        ChatClient(emulator.endpoint, CommunicationTokenCredential(a_token)) as ann,
        ChatClient(emulator.endpoint, CommunicationTokenCredential(b_token)) as bob,
    ):
        thread = ann.get_chat_thread_client(
            ann.create_chat_thread("polled", [ChatParticipant(CommunicationUserIdentifier(b))]).chat_thread.id
        )
        got: list[str | None] = []
        bob.on("chatMessageReceived", lambda e: got.append(e.message))
        with pytest.raises(ValueError, match="poll_interval"):
            bob.start_realtime_notifications(mode="poll", poll_interval=0)
        bob.start_realtime_notifications(mode="poll", poll_interval=0.1)
        assert bob.realtime.active_mode == "poll"
        thread.send_message("polled one")
        thread.send_message("polled two")
        wait_until(lambda: len(got) == 2, "two messages handled", 10)
    assert got == ["polled one", "polled two"]
    assert not bob.realtime.running  # close() stopped the background thread


async def test_a_handler_may_stop_the_notifications(emulator: Emulator) -> None:
    (_, a_token), (b, b_token) = new_user_token(emulator), new_user_token(emulator)
    async with (
        aio.ChatClient(emulator.endpoint, aio.CommunicationTokenCredential(a_token)) as ann,
        aio.ChatClient(emulator.endpoint, aio.CommunicationTokenCredential(b_token)) as bob,
    ):
        got: list[str | None] = []

        async def once(event: ChatMessageReceivedEvent) -> None:
            got.append(event.message)
            await bob.stop_realtime_notifications()

        bob.on("chatMessageReceived", once)
        await bob.start_realtime_notifications()
        created = await ann.create_chat_thread("stop", [ChatParticipant(CommunicationUserIdentifier(b))])
        thread = ann.get_chat_thread_client(created.chat_thread.id)
        await thread.send_message("stop now")
        await async_wait_until(lambda: not bob.realtime.running, "the notifications stopped", 10)
        # Another stream of Bob's is the sentinel: once it has the message, Bob's subscribers all had it.
        watcher = aiter(EventStream(emulator.endpoint, b_token))
        assert (await anext(watcher)).kind == "realTimeNotificationConnected"
        await thread.send_message("not delivered")
        late = await collect_until(watcher, lambda es: messages(es) == ["not delivered"])
        await watcher.aclose()
        assert messages(late) == ["not delivered"]
        assert got == ["stop now"]


def test_a_handler_on_the_background_thread_may_stop_the_notifications(emulator: Emulator) -> None:
    (_, a_token), (b, b_token) = new_user_token(emulator), new_user_token(emulator)
    with (
        ChatClient(emulator.endpoint, CommunicationTokenCredential(a_token)) as ann,
        ChatClient(emulator.endpoint, CommunicationTokenCredential(b_token)) as bob,
    ):
        got: list[str | None] = []

        def once(event: ChatMessageReceivedEvent) -> None:
            got.append(event.message)
            bob.stop_realtime_notifications()

        bob.on("chatMessageReceived", once)
        bob.start_realtime_notifications()
        thread = ann.get_chat_thread_client(
            ann.create_chat_thread("stop", [ChatParticipant(CommunicationUserIdentifier(b))]).chat_thread.id
        )
        thread.send_message("stop now")
        wait_until(lambda: not bob.realtime.running, "the notifications stopped", 10)
        bob.off("chatMessageReceived", once)
        bob.on("chatMessageReceived", lambda e: got.append(e.message))
        bob.start_realtime_notifications()  # again, on a fresh thread
        thread.send_message("after a restart")
        wait_until(lambda: len(got) == 2, "two messages handled", 10)
    assert got == ["stop now", "after a restart"]
    assert sum(t.name == "chatnb-realtime" and t.is_alive() for t in threading.enumerate()) == 0
