"""Poll mode against the real emulator: the same events as push, without duplicates, typing announced."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest

from chatnb import _polling
from chatnb.emulator import Emulator
from chatnb.events import (
    ChatEvent,
    ChatMessageReceivedEvent,
    ChatThreadCreatedEvent,
    ChatThreadPropertiesUpdatedEvent,
    Event,
    ParticipantsAddedEvent,
    ParticipantsRemovedEvent,
    ReadReceiptReceivedEvent,
)
from chatnb.realtime import EventIterator, RealtimeNotifications
from tests.support.events import Actor, Sentinels, collect_until, kinds


def chat(events: list[Event]) -> list[ChatEvent]:
    return [e for e in events if isinstance(e, ChatEvent)]


def summary(event: Event) -> tuple[Any, ...]:
    """What push and poll must agree on."""
    if isinstance(event, ParticipantsAddedEvent):
        return (event.kind, [p.identifier for p in event.participants_added], event.added_by)
    if isinstance(event, ParticipantsRemovedEvent):
        return (event.kind, [p.identifier for p in event.participants_removed], event.removed_by)
    if isinstance(event, ChatThreadPropertiesUpdatedEvent):
        return (event.kind, event.topic, event.updated_by)
    if isinstance(event, ReadReceiptReceivedEvent):
        return (event.kind, event.sender, event.chat_message_id)
    return (
        event.kind,
        getattr(event, "id", None),
        getattr(event, "message", None),
        getattr(event, "sender", None),
    )


class Watch:
    """An engine and the events it has produced so far."""

    def __init__(self, engine: RealtimeNotifications) -> None:
        self.engine = engine
        self.events: list[Event] = []
        self.stream: EventIterator = engine.events()

    async def until(self, kind: str, count: int) -> None:
        def done(more: list[Event]) -> bool:
            return kinds(self.events + more).count(kind) >= count

        if not done([]):
            self.events += await collect_until(self.stream, done, 10)


async def test_polling_gives_the_same_events_as_push(
    emulator: Emulator,
    actors: tuple[Actor, Actor, Actor],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a, b, c = actors
    thread = await a.create_thread("same events", (b, None))
    before = await a.send(thread, "history: not an event")
    monkeypatch.setattr(_polling, "_typing_announced", False)
    caplog.set_level(logging.WARNING, logger="chatnb.realtime")
    push = Watch(RealtimeNotifications(emulator.endpoint, b.token, mode="push"))
    poll = Watch(RealtimeNotifications(emulator.endpoint, b.token, mode="poll", poll_interval=0.1))
    await push.engine.start()
    await poll.engine.start()
    assert (push.engine.active_mode, poll.engine.active_mode) == ("push", "poll")
    steps = 0

    async def step(kind: str) -> None:
        nonlocal steps
        steps += 1
        await poll.until(kind, kinds(poll.events).count(kind) + 1)

    first = await a.send(thread, "first")
    await step("chatMessageReceived")
    await a.edit(thread, first, "first, edited")
    await step("chatMessageEdited")
    await a.typing(thread)  # push only
    second = await b.send(thread, "second")
    await step("chatMessageReceived")
    await a.read(thread, second)
    await step("readReceiptReceived")
    await a.topic(thread, "renamed")
    await step("chatThreadPropertiesUpdated")
    await a.add(thread, c)
    await step("participantsAdded")
    await a.remove(thread, c)
    await step("participantsRemoved")
    await a.delete(thread, first)
    await step("chatMessageDeleted")
    await b.edit(thread, second, "second, edited")
    await step("chatMessageEdited")
    await b.delete(thread, second)
    await step("chatMessageDeleted")
    await push.until("chatMessageDeleted", 2)
    sentinels = Sentinels.by(a, b)
    poll.events += await sentinels.collect(poll.stream, 6)  # five more rounds: nothing may be reported twice
    push.events += await sentinels.drain(push.stream)
    await push.engine.stop()
    await poll.engine.stop()
    push.events += [e async for e in push.stream]
    poll.events += [e async for e in poll.stream]
    expected = [summary(e) for e in chat(push.events) if e.kind != "typingIndicatorReceived"]
    assert "typingIndicatorReceived" in kinds(push.events)
    assert [summary(e) for e in chat(poll.events)] == expected
    assert len(expected) == steps
    assert before not in [getattr(e, "id", None) for e in poll.events]
    assert all(e.thread_id == thread and e.recipient is not None for e in chat(poll.events))
    assert kinds(poll.events)[0] == "realTimeNotificationConnected"
    assert kinds(poll.events)[-1] == "realTimeNotificationDisconnected"
    second_poller = RealtimeNotifications(emulator.endpoint, b.token, mode="poll", poll_interval=0.1)
    await second_poller.start()
    await second_poller.stop()
    announcements = [r for r in caplog.records if "typingIndicatorReceived" in r.getMessage()]
    assert len(announcements) == 1  # announced once


async def test_polling_a_burst_reports_each_message_once_in_order(
    emulator: Emulator, actors: tuple[Actor, Actor, Actor]
) -> None:
    a, b, _ = actors
    thread = await a.create_thread("burst", (b, None))
    watch = Watch(RealtimeNotifications(emulator.endpoint, b.token, mode="poll", poll_interval=0.1))
    await watch.engine.start()
    for i in range(450):
        await a.send(thread, f"m{i}")
    await watch.until("chatMessageReceived", 450)
    watch.events += await Sentinels.by(a, b).collect(watch.stream, 5)  # four more rounds
    await watch.engine.stop()
    watch.events += [e async for e in watch.stream]
    messages = [e.message for e in watch.events if isinstance(e, ChatMessageReceivedEvent)]
    assert messages == [f"m{i}" for i in range(450)]


async def test_polling_sees_threads_come_and_go(
    emulator: Emulator, actors: tuple[Actor, Actor, Actor]
) -> None:
    a, b, c = actors
    older = await a.create_thread("older", (c, None))
    watch = Watch(RealtimeNotifications(emulator.endpoint, b.token, mode="poll", poll_interval=0.1))
    await watch.engine.start()
    fresh = await a.create_thread("fresh", (b, None))
    await watch.until("chatThreadCreated", 1)
    await a.send(older, "before Bob joined")
    await a.add(older, b)
    await watch.until("participantsAdded", 1)
    await a.send(older, "after Bob joined")
    await watch.until("chatMessageReceived", 1)
    await a.remove(older, b)
    await watch.until("participantsRemoved", 1)
    await a.delete_thread(fresh)
    await watch.until("chatThreadDeleted", 1)
    watch.events += await Sentinels.by(a, b).collect(watch.stream, 4)  # three more rounds
    await watch.engine.stop()
    events = chat(watch.events)
    assert kinds(events) == [
        "chatThreadCreated",
        "participantsAdded",
        "chatMessageReceived",
        "participantsRemoved",
        "chatThreadDeleted",
    ]
    created, added, received, removed, deleted = events
    assert isinstance(created, ChatThreadCreatedEvent) and created.thread_id == fresh
    assert created.topic == "fresh" and {p.identifier.raw_id for p in created.participants} == {a.id, b.id}
    assert isinstance(added, ParticipantsAddedEvent) and added.thread_id == older
    assert [p.identifier.raw_id for p in added.participants_added] == [b.id]
    assert added.added_by is not None and added.added_by.identifier.raw_id == a.id
    assert isinstance(received, ChatMessageReceivedEvent) and received.message == "after Bob joined"
    assert isinstance(removed, ParticipantsRemovedEvent) and removed.thread_id == older
    assert [p.identifier.raw_id for p in removed.participants_removed] == [b.id]
    assert deleted.thread_id == fresh


async def test_auto_mode_polls_an_endpoint_without_the_stream(
    emulator: Emulator, actors: tuple[Actor, Actor, Actor]
) -> None:
    a, b, _ = actors
    thread = await a.create_thread("no stream here", (b, None))

    async def like_real_acs(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/chatnb/events":
            await send({"type": "http.response.start", "status": 404, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        await emulator.app(scope, receive, send)

    transport = httpx.ASGITransport(like_real_acs)  # type: ignore[arg-type]
    watch = Watch(
        RealtimeNotifications("https://acs.example", b.token, poll_interval=0.1, transport=transport)
    )
    await watch.engine.start()
    assert watch.engine.active_mode == "poll"
    await a.send(thread, "polled")
    await watch.until("chatMessageReceived", 1)
    await watch.engine.stop()
    assert [e.message for e in watch.events if isinstance(e, ChatMessageReceivedEvent)] == ["polled"]
