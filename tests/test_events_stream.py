"""Push mode against the real emulator: every event type once and in order, visibility, drops, restarts."""

from __future__ import annotations

import asyncio
import base64
import ssl
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import pytest

from chatnb._signing import hmac_headers
from chatnb._time import format_rfc3339, to_us
from chatnb.credential import CommunicationTokenCredential
from chatnb.emulator import Emulator
from chatnb.errors import AuthenticationError
from chatnb.events import (
    ChatEvent,
    ChatMessageEditedEvent,
    ChatMessageReceivedEvent,
    ChatThreadCreatedEvent,
    Event,
    ParticipantsRemovedEvent,
    ReadReceiptReceivedEvent,
    RealTimeNotificationConnected,
    RealTimeNotificationDisconnected,
    TypingIndicatorReceivedEvent,
)
from chatnb.models import CommunicationUserIdentifier
from chatnb.realtime import EventStream, RealtimeNotifications, RealtimeWarning, StreamUnavailable
from tests.support.events import Actor, Sentinels, collect_until, kinds
from tests.support.relay import Relay
from tests.support.waiting import async_wait_until, clock_tick


def chat_events(events: list[Event]) -> list[ChatEvent]:
    return [e for e in events if isinstance(e, ChatEvent)]


async def test_every_event_type_in_order_exactly_once(
    emulator: Emulator, actors: tuple[Actor, Actor, Actor]
) -> None:
    a, b, c = actors
    engine = RealtimeNotifications(emulator.endpoint, b.token, mode="push")
    handled: list[Event] = []
    engine.on("chatMessageReceived", handled.append)

    async def async_handler(event: Event) -> None:
        await asyncio.sleep(0)  # a handler that really awaits (what is under test), not a wait
        handled.append(event)

    engine.on("chatThreadDeleted", async_handler)
    stream = engine.events()
    await engine.start()
    assert engine.active_mode == "push" and engine.connected
    other = await a.create_thread("not Bob's", (c, None))  # Bob must see nothing of this thread
    thread = await a.create_thread("Lunch", (b, None))
    await a.send(other, "secret")
    message = await a.send(thread, "hello Bob")
    await a.edit(thread, message, "hello, Bob")
    await c.typing(other)
    await a.typing(thread)
    await b.read(thread, message)
    await a.topic(thread, "Dinner")
    await a.add(thread, c)
    await a.remove(thread, c)
    await a.delete(thread, message)
    await a.delete_thread(other)
    await a.delete_thread(thread)
    events = await collect_until(stream, lambda es: "chatThreadDeleted" in kinds(es))
    events += await Sentinels.by(a, b).collect(stream)  # anything late (a duplicate, the other thread)
    await engine.stop()
    events += [e async for e in stream]  # the iterator ends with the stop, after the final Disconnected
    assert kinds(events) == [
        "realTimeNotificationConnected",
        "chatThreadCreated",
        "chatMessageReceived",
        "chatMessageEdited",
        "typingIndicatorReceived",
        "readReceiptReceived",
        "chatThreadPropertiesUpdated",
        "participantsAdded",
        "participantsRemoved",
        "chatMessageDeleted",
        "chatThreadDeleted",
        "realTimeNotificationDisconnected",
    ]
    chat = chat_events(events)
    assert {e.thread_id for e in chat} == {thread}
    assert all(e.recipient == CommunicationUserIdentifier(b.id) for e in chat)
    ids = [int(e.event_id or 0) for e in chat]
    assert ids == sorted(set(ids))  # journal ids: increasing, no duplicates
    created, received, edited, typing, receipt = chat[:5]
    assert isinstance(created, ChatThreadCreatedEvent) and created.topic == "Lunch"
    assert {p.identifier.raw_id for p in created.participants} == {a.id, b.id}
    assert isinstance(received, ChatMessageReceivedEvent)
    assert (received.id, received.message, received.sender_display_name) == (message, "hello Bob", "Ann")
    assert received.sender == CommunicationUserIdentifier(a.id)
    assert received.created_on is not None and received.created_on.tzinfo == timezone.utc
    assert abs(received.created_on - datetime.now(timezone.utc)) < timedelta(minutes=1)
    assert isinstance(edited, ChatMessageEditedEvent) and edited.message == "hello, Bob"
    assert edited.version != received.version
    assert isinstance(typing, TypingIndicatorReceivedEvent) and typing.sender_display_name == "Ann"
    assert isinstance(receipt, ReadReceiptReceivedEvent) and receipt.chat_message_id == message
    assert [e.kind for e in handled] == ["chatMessageReceived", "chatThreadDeleted"]
    assert handled[0] is received


async def test_share_history_time_hides_older_messages(
    emulator: Emulator, actors: tuple[Actor, Actor, Actor]
) -> None:
    a, b, _ = actors
    thread = await a.create_thread("history")
    old = await a.send(thread, "before Bob")
    share = format_rfc3339(to_us(clock_tick()))
    engine = RealtimeNotifications(emulator.endpoint, b.token, mode="push")
    stream = engine.events()
    await engine.start()
    await a.add(thread, b, share)
    new = await a.send(thread, "after Bob joined")
    await a.edit(thread, old, "old, edited")  # an older message: not Bob's to see
    await a.read(thread, old)
    await a.delete(thread, old)
    await a.edit(thread, new, "new, edited")
    events = await collect_until(stream, lambda es: "chatMessageEdited" in kinds(es))
    events += await Sentinels.by(a, b).collect(stream)  # nothing more of the older message
    await engine.stop()
    assert kinds(chat_events(events)) == ["participantsAdded", "chatMessageReceived", "chatMessageEdited"]
    assert [getattr(e, "id", None) for e in chat_events(events)[1:]] == [new, new]


async def test_a_removed_user_still_gets_what_happened_before_the_removal(
    emulator: Emulator, actors: tuple[Actor, Actor, Actor]
) -> None:
    a, b, _ = actors
    thread = await a.create_thread("leaving", (b, None))
    stream = EventStream(emulator.endpoint, b.token)
    iterator = aiter(stream)
    assert isinstance(await anext(iterator), RealTimeNotificationConnected)
    first = await a.send(thread, "one")
    assert isinstance(received := await anext(iterator), ChatMessageReceivedEvent) and received.id == first
    await iterator.aclose()  # offline while...
    missed = await a.send(thread, "two")
    await a.remove(thread, b)
    await a.send(thread, "three, after Bob left")
    resumed = aiter(EventStream(emulator.endpoint, b.token, last_event_id=stream.last_event_id))
    events = await collect_until(resumed, lambda es: "participantsRemoved" in kinds(es), 10)
    await resumed.aclose()
    assert kinds(events) == ["realTimeNotificationConnected", "chatMessageReceived", "participantsRemoved"]
    assert isinstance(events[1], ChatMessageReceivedEvent) and events[1].id == missed
    assert isinstance(events[2], ParticipantsRemovedEvent)
    assert events[2].participants_removed[0].identifier.raw_id == b.id


async def test_a_cut_in_a_burst_of_500_loses_and_duplicates_nothing(
    emulator: Emulator, actors: tuple[Actor, Actor, Actor]
) -> None:
    a, b, _ = actors
    thread = await a.create_thread("burst", (b, None))
    relay = Relay("127.0.0.1", urlsplit(emulator.endpoint).port or 443)
    via = await relay.start()
    engine = RealtimeNotifications(
        via, b.token, mode="push", connection_verify=ssl.create_default_context(cafile=str(emulator.ca_cert))
    )
    stream = engine.events()
    await engine.start()
    received: list[str] = []
    seen: list[Event] = []
    cuts = 0

    async def consume() -> None:
        nonlocal cuts
        async for event in stream:
            seen.append(event)
            if isinstance(event, ChatMessageReceivedEvent):
                received.append(event.message or "")
                if len(received) in (120, 330):  # cut for real, in the middle of the burst
                    relay.cut()
                    cuts += 1
                if len(received) == 500:
                    return

    consumer = asyncio.create_task(consume())
    sent = [await a.send(thread, f"m{i}") for i in range(500)]
    await asyncio.wait_for(consumer, 30)
    # The marker comes after the last cut, on a new connection: nothing comes twice before it.
    late = await Sentinels.by(a, b).collect(stream)
    seen += late
    received += [e.message or "" for e in late if isinstance(e, ChatMessageReceivedEvent)]
    await engine.stop()
    await relay.aclose()
    assert len(sent) == 500 and cuts == 2
    assert received == [f"m{i}" for i in range(500)]  # every message once, in order
    assert relay.connections >= 3  # it really reconnected after each cut
    assert kinds(seen).count("realTimeNotificationDisconnected") >= 2
    assert kinds(seen).count("realTimeNotificationConnected") >= 3


async def test_restarting_the_emulator_on_the_same_location_loses_nothing(tmp_path: Path) -> None:
    first = Emulator(location=tmp_path).start()
    port = first.port
    a, b = Actor(first, "Ann"), Actor(first, "Bob")
    thread = await a.create_thread("restart", (b, None))
    engine = RealtimeNotifications(first.endpoint, b.token, mode="push")
    stream = engine.events()
    await engine.start()
    for i in range(20):
        await a.send(thread, f"before {i}")
    events = await collect_until(stream, lambda es: kinds(es).count("chatMessageReceived") == 20)
    await asyncio.to_thread(first.stop)  # the stream drops; the engine keeps retrying
    second = Emulator(location=tmp_path, port=port).start()
    try:
        await a.http.aclose()
        a.http = httpx.AsyncClient(
            base_url=second.endpoint.rstrip("/"),
            verify=ssl.create_default_context(cafile=str(second.ca_cert)),
            headers={"Authorization": f"Bearer {a.token}"},
        )
        for i in range(20):
            await a.send(thread, f"after {i}")
        events += await collect_until(stream, lambda es: kinds(es).count("chatMessageReceived") == 20)
        await engine.stop()
    finally:
        await a.aclose()
        await b.aclose()
        second.stop()
    messages = [e.message for e in events if isinstance(e, ChatMessageReceivedEvent)]
    assert messages == [f"before {i}" for i in range(20)] + [f"after {i}" for i in range(20)]
    assert "realTimeNotificationDisconnected" in kinds(events)


async def test_a_failing_handler_is_reported_once_and_the_stream_goes_on(
    emulator: Emulator, actors: tuple[Actor, Actor, Actor]
) -> None:
    a, b, _ = actors
    thread = await a.create_thread("handlers", (b, None))
    engine = RealtimeNotifications(emulator.endpoint, b.token)
    calls: list[str] = []

    def broken(event: ChatMessageReceivedEvent) -> None:
        calls.append(event.message or "")
        raise RuntimeError("boom")

    good: list[str] = []
    engine.on("chatMessageReceived", broken)
    engine.on("chatMessageReceived", lambda e: good.append(e.message))
    stream = engine.events()
    await engine.start()
    with pytest.warns(RealtimeWarning, match="boom") as caught:
        for text in ("one", "two", "three"):
            await a.send(thread, text)
        await collect_until(stream, lambda es: len(chat_events(es)) == 3)
    await engine.stop()
    assert len(caught) == 1  # once per handler
    assert calls == good == ["one", "two", "three"]
    engine.off("chatMessageReceived", broken)
    assert engine._handlers["chatMessageReceived"] != [broken]
    with pytest.raises(ValueError, match="unknown event"):
        engine.on("messageReceived", print)
    with pytest.raises(TypeError):
        engine.on("chatMessageReceived", "print")  # type: ignore[arg-type]


async def test_the_token_is_refreshed_when_the_stream_ends_at_expiry(
    emulator: Emulator, actors: tuple[Actor, Actor, Actor]
) -> None:
    a, b, _ = actors
    thread = await a.create_thread("tokens", (b, None))
    issued: list[str] = []

    def short_token() -> str:
        token, _ = emulator.state.issuer.issue(b.id, ["chat"], 0, 2)  # expires in 2 s
        issued.append(token)
        return token

    credential = CommunicationTokenCredential(short_token(), token_refresher=short_token)
    engine = RealtimeNotifications(emulator.endpoint, credential, mode="push")
    stream = engine.events()
    await engine.start()
    await a.send(thread, "early")
    # Until the first token expired (2 s: the deadline under test) and the emulator closed the stream.
    events = await collect_until(stream, lambda es: "realTimeNotificationDisconnected" in kinds(es))
    await a.send(thread, "late")
    await collect_until(stream, lambda es: kinds(es).count("chatMessageReceived") == 2, into=events)
    await engine.stop()
    assert [e.message for e in events if isinstance(e, ChatMessageReceivedEvent)] == ["early", "late"]
    assert "realTimeNotificationDisconnected" in kinds(events)
    assert len(set(issued)) >= 2


async def test_revoked_tokens_stop_the_stream_with_an_error(emulator: Emulator) -> None:
    b = Actor(emulator, "Bob")
    engine = RealtimeNotifications(emulator.endpoint, b.token, mode="push")
    events: list[Event] = []
    engine.on("realTimeNotificationDisconnected", events.append)
    await engine.start()
    path = f"/identities/{quote(b.id, safe='')}/:revokeAccessTokens?api-version=2023-10-01"
    headers = hmac_headers(
        base64.b64decode(emulator.access_key), "POST", path, urlsplit(emulator.endpoint).netloc, b""
    )
    assert (await b.http.post(path, headers=headers)).status_code == 204
    await async_wait_until(lambda: not engine.running, "the stream stopped", 10)
    await b.aclose()
    assert isinstance(engine.error, AuthenticationError)
    assert isinstance(events[0], RealTimeNotificationDisconnected)


async def test_an_endpoint_without_the_stream_is_reported(emulator: Emulator) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:  # not an emulator
        assert scope["type"] == "http"
        await send(
            {"type": "http.response.start", "status": 404, "headers": [(b"content-type", b"text/plain")]}
        )
        await send({"type": "http.response.body", "body": b"no such thing"})

    transport = httpx.ASGITransport(app)  # type: ignore[arg-type]
    stream = EventStream("https://acs.example", "t.o.k", transport=transport)
    with pytest.raises(StreamUnavailable, match="HTTP 404"):
        await anext(aiter(stream))
    engine = RealtimeNotifications("https://acs.example", "t.o.k", mode="push", transport=transport)
    with pytest.raises(StreamUnavailable):
        await engine.start()


async def test_the_wire_gives_every_event_an_id_and_reports_journal_gaps(
    fresh_emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chatnb.emulator import store as store_module

    monkeypatch.setattr(store_module, "EVENT_JOURNAL_SIZE", 100)  # trimmed every 1000 events
    a, b = Actor(fresh_emulator, "Ann"), Actor(fresh_emulator, "Bob")
    thread = await a.create_thread("gaps", (b, None))
    for _ in range(1000):
        fresh_emulator.store.typing(thread, a.id, "Ann")
    assert fresh_emulator.store.oldest_event_id() == 901

    async def raw(last_event_id: int) -> list[dict[str, str]]:
        """The first blocks of a stream resumed after ``last_event_id``, as field dicts."""
        blocks: list[dict[str, str]] = []
        headers = {"Accept": "text/event-stream", "Last-Event-ID": str(last_event_id)}
        async with b.http.stream("GET", "/chatnb/events?api-version=2024-03-07", headers=headers) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            text = ""
            async for chunk in response.aiter_text():
                text += chunk
                blocks = [
                    dict(line.split(": ", 1) for line in block.splitlines() if not line.startswith(":"))
                    for block in text.split("\n\n")[:-1]
                ]
                if sum("event" in block for block in blocks) >= 5:
                    break
        return blocks

    trimmed = await raw(1)
    assert trimmed[0] == {"retry": "1000"}
    events = trimmed[1:]
    assert all("id" in block and "event" in block for block in events)
    assert events[0]["event"] == "journalGap" and '"oldestEventId": 901' in events[0]["data"]
    assert events[1]["event"] == "realTimeNotificationConnected" and events[1]["id"] == "1"
    assert [block["id"] for block in events[2:]] == ["901", "902", "903"]
    beyond = await raw(5000)  # a journal this one never reached (say, a wiped location)
    assert beyond[1]["event"] == "journalGap" and '"resumedAfter": 0' in beyond[1]["data"]
    assert [block["id"] for block in beyond[3:]] == ["901", "902", "903"]
    iterator = aiter(EventStream(fresh_emulator.endpoint, b.token, last_event_id=1))
    connected = await anext(iterator)
    await iterator.aclose()
    assert isinstance(connected, RealTimeNotificationConnected) and connected.journal_gap
    await a.aclose()
    await b.aclose()
