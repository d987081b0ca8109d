"""Client resilience (issue 8, item 5): the clients and the event stream against an emulator that fails
on purpose, and against no emulator at all.

Everything talks real HTTPS to a running :class:`~chatnb.emulator.Emulator` whose opt-in fault injection
(:class:`~chatnb.emulator.FaultPlan`) answers a seeded share of the requests with 429 or 503 (with a small
``Retry-After``) or delays them, before any handler runs. Attempts are counted twice: by the client
(httpx event hooks on its own connection pool) and by the emulator (``fault_injector.seen``); the two
must agree, so every injected error was seen and absorbed by a retry. What was written is checked in the
emulator's store, not through the (faulted) API.

- Every operation of the sync and async clients (threads, messages, participants, typing, read receipts,
  identity) completes under faults, nothing is written twice, and every retry was an injected error.
- The retry bounds hold: with every request failing, a call gives up after ``max_retries + 1`` attempts
  (or once the ``max_total_wait`` budget would be exceeded) with a typed error carrying the status, code
  and message of the last answer.
- The event stream (push and polling) delivers every event exactly once, in order, while the emulator
  faults its connects and its API calls; push reconnects honour ``Retry-After`` and still back off.
- With the emulator gone, calls fail at once with a :class:`~chatnb.TransportError` naming the endpoint
  (and no secret); the stream reports one disconnection, retries with bounded backoff, and catches up
  when an emulator is back on the same location and port. (Push mode surviving a restart with events
  sent on both sides of it is covered by ``test_events_stream.py::
  test_restarting_the_emulator_on_the_same_location_loses_nothing``; here it is the outage itself.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import socket
import ssl
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

import chatnb
import chatnb.aio
from chatnb._core import RetryPolicy, parse_retry_after
from chatnb._polling import Poller
from chatnb.emulator import Emulator, FaultPlan, RateLimiter
from chatnb.events import (
    ChatMessageEditedEvent,
    ChatMessageReceivedEvent,
    Event,
    RealTimeNotificationDisconnected,
)
from chatnb.models import ChatParticipant
from chatnb.realtime import EventStream, RealtimeNotifications
from tests.support.clients import aw, collect, new_user_token
from tests.support.events import Actor, Sentinels, collect_until, is_sentinel, kinds
from tests.support.relay import Relay
from tests.support.tokens import fake_jwt
from tests.support.waiting import async_wait_until

#: The fault plan of the "everything still works" tests: 30 % of the requests get a fault, a third of
#: them each a 429, a 503 or a 50 ms delay; errors ask for a Retry-After of 0-100 ms.
FAULTS = FaultPlan(rate=0.3, statuses=(429, 503), delay=0.05, retry_after=0.1, seed=2024)
#: Generous: a call is expected to finish in well under a second; this only catches a hang.
PROMPT = 10.0


# -- counting attempts -------------------------------------------------------------------------


@dataclass
class Attempts:
    """What one client sent and got back, from httpx event hooks on its connection pool."""

    requests: Counter[str] = field(default_factory=Counter)  # "METHOD /path" -> attempts
    statuses: Counter[int] = field(default_factory=Counter)
    retry_after: list[float] = field(default_factory=list)  # of each 429/503, in order

    def _request(self, request: httpx.Request) -> None:
        self.requests[f"{request.method} {request.url.path}"] += 1

    def _response(self, response: httpx.Response) -> None:
        self.statuses[response.status_code] += 1
        if response.status_code in (429, 503):
            wait = parse_retry_after(response.headers)
            assert wait is not None, response.headers  # the emulator always says how long
            self.retry_after.append(wait)

    def watch(self, client: Any) -> Any:
        """Hook into ``client``'s ``httpx.Client`` / ``httpx.AsyncClient``; returns ``client``."""
        http = client.http_client
        if isinstance(http, httpx.AsyncClient):

            async def on_request(request: httpx.Request) -> None:
                self._request(request)

            async def on_response(response: httpx.Response) -> None:
                self._response(response)

            http.event_hooks = {"request": [on_request], "response": [on_response]}
        else:
            http.event_hooks = {"request": [self._request], "response": [self._response]}
        return client

    @property
    def total(self) -> int:
        return sum(self.requests.values())

    @property
    def errors(self) -> int:
        return self.statuses[429] + self.statuses[503]


def clients(flavour: str, emu: Emulator, attempts: Attempts) -> tuple[Any, Any]:
    """``(identity client class, chat client class)`` of ``flavour`` and a watched identity client."""
    if flavour == "sync":
        identity: Any = chatnb.CommunicationIdentityClient.from_connection_string(emu.connection_string)
        return attempts.watch(identity), chatnb.ChatClient
    identity = chatnb.aio.CommunicationIdentityClient.from_connection_string(emu.connection_string)
    return attempts.watch(identity), chatnb.aio.ChatClient


def stored(emu: Emulator, thread_id: str) -> list[Any]:
    """The thread's messages as the emulator's store holds them (not through the faulted API), oldest
    first."""
    rows = emu.store.list_messages(thread_id, visible_from=None, start_time=None, before_seq=None, limit=999)
    return rows[::-1]


def stored_texts(emu: Emulator, thread_id: str) -> list[str]:
    """The contents of the thread's text messages in the store, oldest first ('' when deleted)."""
    return [m.content or "" for m in stored(emu, thread_id) if m.type == "text"]


# -- 1. every operation under faults -----------------------------------------------------------


@pytest.mark.parametrize("flavour", ["sync", "async"])
async def test_every_operation_completes_under_faults_and_writes_once(flavour: str) -> None:
    n = 12
    attempts = Attempts()
    with Emulator(faults=FAULTS) as emu:
        identity, Chat = clients(flavour, emu, attempts)
        ann, ann_token = await aw(identity.create_user_and_token(["chat"]))
        bob = await aw(identity.create_user())
        bob_token = await aw(identity.get_token(bob, ["chat"]))
        cy, _ = await aw(identity.create_user_and_token(["chat"]))
        chat = attempts.watch(Chat(emu.endpoint, ann_token.token))
        bob_chat = attempts.watch(Chat(emu.endpoint, bob_token.token))
        try:
            created = await aw(chat.create_chat_thread("Faults", [ChatParticipant(bob, "Bob")]))
            assert created.errors is None
            thread_id = created.chat_thread.id
            others = [(await aw(chat.create_chat_thread(f"Other {i}"))).chat_thread.id for i in range(2)]
            thread = chat.get_chat_thread_client(thread_id)

            ids = [(await aw(thread.send_message(f"m{i}", sender_display_name="Ann"))).id for i in range(n)]
            assert len(set(ids)) == n
            got = await aw(thread.get_message(ids[3]))
            assert got.content.message == "m3" and got.sender_display_name == "Ann"
            await aw(thread.update_message(ids[4], "m4 edited"))
            await aw(thread.delete_message(ids[5]))
            await aw(thread.update_topic("Faults, renamed"))
            assert (await aw(thread.get_properties())).topic == "Faults, renamed"

            # Listings of several pages, each page a request of its own that may be faulted.
            frame = await aw(thread.list_messages(results_per_page=4))
            texts = frame[frame["type"] == "text"]
            assert texts["id"].tolist() == ids  # every message once, oldest first
            assert texts["content"].tolist()[4] == "m4 edited" and texts["deleted_on"].notna().sum() == 1
            newest_first = [m.id for m in await collect(thread.iter_messages(results_per_page=3))]
            assert [i for i in newest_first if i in ids] == ids[::-1]

            await aw(thread.add_participants([ChatParticipant(cy, "Cy")]))
            people = await aw(thread.list_participants(results_per_page=1))
            assert sorted(people["id"]) == sorted([ann.raw_id, bob.raw_id, cy.raw_id])
            await aw(thread.remove_participant(cy))
            people = await aw(thread.list_participants(results_per_page=1))
            assert sorted(people["id"]) == sorted([ann.raw_id, bob.raw_id])
            await aw(thread.send_typing_notification(sender_display_name="Ann"))

            bob_thread = bob_chat.get_chat_thread_client(thread_id)
            await aw(bob_thread.send_read_receipt(ids[-1]))
            receipts = await aw(thread.list_read_receipts(results_per_page=1))
            assert receipts[["sender_id", "chat_message_id"]].values.tolist() == [[bob.raw_id, ids[-1]]]

            threads = await aw(chat.list_chat_threads(results_per_page=1))
            assert sorted(threads["id"]) == sorted([thread_id, *others])
            await aw(chat.delete_chat_thread(others[0]))
            with pytest.raises(chatnb.NotFoundError):
                await aw(chat.get_chat_thread_client(others[0]).get_properties())

            await aw(identity.revoke_tokens(cy))
            await aw(identity.delete_user(cy))
        finally:
            for client in (chat, bob_chat, identity):
                await aw(client.close())

        # Nothing was written twice: the store holds each message, system message and member once.
        expected = [f"m{i}" for i in range(n)]
        expected[4:6] = ["m4 edited", ""]
        assert stored_texts(emu, thread_id) == expected
        system = Counter(m.type for m in stored(emu, thread_id) if m.type != "text")
        assert system == Counter({"participantAdded": 2, "topicUpdated": 2, "participantRemoved": 1})
        assert sorted(p.user_id for p in emu.store.list_participants(thread_id, skip=0, limit=100)) == sorted(
            [ann.raw_id, bob.raw_id]
        )
        assert len(emu.store.list_threads(ann.raw_id, start_time=None, after=None, limit=100)) == 3
        assert len(emu.store.list_read_receipts(thread_id, skip=0, limit=100)) == 1

        # Every injected error reached the client and was retried; the client and server counts agree.
        injector = emu.fault_injector
        assert injector is not None
        assert attempts.total == injector.seen
        assert attempts.statuses[429] == injector.injected["429"] > 0
        assert attempts.statuses[503] == injector.injected["503"] > 0
        assert injector.injected["delay"] > 0
        assert all(0 <= wait <= FAULTS.retry_after for wait in attempts.retry_after)
        # Nothing else went wrong: the only error status besides the injected ones is the 404 asked for
        # (the deleted thread), which was not retried.
        assert set(attempts.statuses) <= {200, 201, 204, 404, 429, 503}
        assert attempts.statuses[404] == 1
        print(
            f"\n[{flavour}] {attempts.total} attempts, {injector.seen - attempts.errors} answered, "
            f"{attempts.errors} injected errors retried ({dict(injector.injected)})"
        )


# -- 1b. the retry bounds ------------------------------------------------------------------------


def always_failing(status: int, retry_after: float = 0.02) -> Emulator:
    """An emulator answering every Chat request with ``status`` (Identity still works, to get a user)."""
    plan = FaultPlan(rate=1.0, statuses=(status,), retry_after=retry_after, seed=5, prefixes=("/chat/",))
    return Emulator(faults=plan)


@pytest.mark.parametrize(
    ("flavour", "status", "policy", "error"),
    [
        ("sync", 429, None, chatnb.RateLimitError),
        ("async", 429, None, chatnb.RateLimitError),
        ("sync", 503, RetryPolicy(max_retries=2), chatnb.ServiceUnavailableError),
        ("async", 503, RetryPolicy(max_retries=0), chatnb.ServiceUnavailableError),
    ],
)
async def test_a_call_that_always_fails_gives_up_after_max_attempts(
    flavour: str, status: int, policy: RetryPolicy | None, error: type[chatnb.APIError]
) -> None:
    attempts = Attempts()
    retries = (policy or RetryPolicy()).max_retries
    with always_failing(status) as emu:
        user, token = new_user_token(emu)
        Chat: Any = chatnb.ChatClient if flavour == "sync" else chatnb.aio.ChatClient
        chat = attempts.watch(Chat(emu.endpoint, token, retry_policy=policy))
        started = time.monotonic()
        try:
            with pytest.raises(error) as info:
                await aw(chat.create_chat_thread("never"))
        finally:
            await aw(chat.close())
        elapsed = time.monotonic() - started
        assert emu.fault_injector is not None
        assert emu.fault_injector.seen == retries + 1  # counted by the server...
        assert attempts.requests == Counter({"POST /chat/threads": retries + 1})  # ...and by the client
        assert emu.store.list_threads(user, start_time=None, after=None, limit=10) == []
    exc = info.value
    assert exc.status_code == status
    assert exc.code == ("TooManyRequests" if status == 429 else "ServiceUnavailable")
    assert "injected fault" in exc.message.lower()
    assert exc.retry_after is not None and 0 <= exc.retry_after <= 0.02
    assert str(status) in str(exc) and exc.code in str(exc) and "/chat/threads" in str(exc)
    assert token not in str(exc) and token not in repr(exc)
    if status == 503:
        assert isinstance(exc, chatnb.ServerError)
    assert elapsed < PROMPT


async def test_a_wait_beyond_the_budget_is_not_made() -> None:
    """Retry-Afters of up to 2 s against a 0.5 s budget: the client stops before overspending it."""
    attempts = Attempts()
    budget = 0.5
    with always_failing(503, retry_after=2.0) as emu:
        _, token = new_user_token(emu)
        policy = RetryPolicy(max_retries=50, max_total_wait=budget)
        async with chatnb.aio.ChatClient(emu.endpoint, token, retry_policy=policy) as chat:
            attempts.watch(chat)
            with pytest.raises(chatnb.ServiceUnavailableError) as info:
                await chat.list_chat_threads()
    asked = attempts.retry_after
    assert len(asked) == attempts.total < 50
    waited = sum(asked[:-1])  # the client waited each Retry-After it was given, but the last
    assert waited <= budget < waited + asked[-1]
    assert info.value.retry_after == asked[-1]


async def test_the_client_paces_itself_to_the_emulators_rate_limits() -> None:
    """``rate_limits=True`` with a tighter message limit (5 per 0.5 s per thread): 12 concurrent sends are
    throttled by the limiter's own 429s, wait its Retry-After, and each lands exactly once."""
    limiter = RateLimiter(limits={"message-write/thread": ("thread", ((5, 0.5),))})
    attempts = Attempts()
    with Emulator(rate_limits=limiter) as emu:
        _, token = new_user_token(emu)
        async with chatnb.aio.ChatClient(emu.endpoint, token) as chat:
            attempts.watch(chat)
            thread = chat.get_chat_thread_client((await chat.create_chat_thread("paced")).chat_thread.id)
            results = await asyncio.gather(*(thread.send_message(f"m{i}") for i in range(12)))
        assert len({r.id for r in results}) == 12
        assert sorted(stored_texts(emu, thread.thread_id)) == sorted(f"m{i}" for i in range(12))
    sends = attempts.requests[f"POST /chat/threads/{thread.thread_id}/messages"]
    assert sends - 12 == attempts.statuses[429] == limiter.rejected["message-write/thread"] > 0
    assert all(0 < wait <= 0.5 for wait in attempts.retry_after)


# -- 2. the event stream under faults --------------------------------------------------------------


async def test_polling_delivers_every_event_once_under_faults(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="chatnb.realtime")
    with Emulator(faults=FAULTS) as emu:
        with chatnb.CommunicationIdentityClient.from_connection_string(emu.connection_string) as identity:
            _, ann_token = identity.create_user_and_token(["chat"])
            bob, bob_token = identity.create_user_and_token(["chat"])
        async with chatnb.aio.ChatClient(emu.endpoint, ann_token.token) as chat:
            first = chat.get_chat_thread_client(
                (await chat.create_chat_thread("polled", [ChatParticipant(bob)])).chat_thread.id
            )
            engine = RealtimeNotifications(emu.endpoint, bob_token.token, mode="poll", poll_interval=0.1)
            stream = engine.events()
            await engine.start()
            second = chat.get_chat_thread_client(
                (await chat.create_chat_thread("created later", [ChatParticipant(bob)])).chat_thread.id
            )
            sent: dict[str, list[str]] = {first.thread_id: [], second.thread_id: []}
            for i in range(8):
                for thread in (first, second):
                    result = await thread.send_message(f"{thread.thread_id[-6:]} {i}")
                    sent[thread.thread_id].append(result.id)
            ids = sent[first.thread_id]
            await first.update_message(ids[2], "edited")
            await first.delete_message(ids[3])
            await first.update_topic("renamed")
            await first.send_read_receipt(ids[-1])
            expected = Counter(
                {
                    "chatThreadCreated": 1,
                    "chatMessageReceived": 16,
                    "chatMessageEdited": 1,
                    "chatMessageDeleted": 1,
                    "chatThreadPropertiesUpdated": 1,
                    "readReceiptReceived": 1,
                }
            )

            def done(events: list[Event]) -> bool:
                seen = Counter(kinds(events))
                return all(seen[k] >= n for k, n in expected.items())

            async def create(topic: str) -> str:
                return (await chat.create_chat_thread(topic, [ChatParticipant(bob)])).chat_thread.id

            async def send(thread_id: str, text: str) -> object:
                return await chat.get_chat_thread_client(thread_id).send_message(text)

            events = await collect_until(stream, done)
            # Eight more rounds under faults: nothing may come twice.
            events += await Sentinels(create, send).collect(stream, 9)
            await engine.stop()
            events += [e async for e in stream]
        injected = dict(emu.fault_injector.injected) if emu.fault_injector else {}
    counted = Counter(k for k in kinds(events) if not k.startswith("realTimeNotification"))
    assert counted == expected, counted
    for thread_id, message_ids in sent.items():
        got = [e.id for e in events if isinstance(e, ChatMessageReceivedEvent) and e.thread_id == thread_id]
        assert got == message_ids  # each once, in order
    edited = [e for e in events if isinstance(e, ChatMessageEditedEvent)]
    assert [(e.id, e.message) for e in edited] == [(ids[2], "edited")]
    assert engine.error is None
    # The poller's requests met faults too, and retried them rather than dropping the connection.
    assert injected.get("429", 0) + injected.get("503", 0) > 0
    assert kinds(events).count("realTimeNotificationConnected") == 1
    print(f"\n[poll] {sum(counted.values())} events once each; faults injected: {injected}")


class Recording(httpx.AsyncBaseTransport):
    """Real HTTPS (``verify``) that notes the status and Retry-After of every answer."""

    def __init__(self, verify: ssl.SSLContext) -> None:
        self.inner = httpx.AsyncHTTPTransport(verify=verify)
        self.answers: list[tuple[int, float | None]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        self.answers.append((response.status_code, parse_retry_after(response.headers)))
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


#: What the stream and the poller log before each reconnect wait.
RETRY_LOG = re.compile(r"(?:event stream|polling): (.+); retry in (\d+\.\d+)s")


def logged_waits(records: list[logging.LogRecord]) -> list[tuple[str, float]]:
    """``(reason, seconds)`` of each reconnect wait logged in ``records``."""
    found = (RETRY_LOG.match(r.getMessage()) for r in records)
    return [(m[1], float(m[2])) for m in found if m]


async def test_push_delivers_every_event_once_while_connects_are_faulted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Half of the stream's connects are refused (429/503, Retry-After up to 0.2 s) or delayed, and the
    connection is cut three times, each time with messages sent while it is down: every message arrives
    once, in order."""
    caplog.set_level(logging.DEBUG, logger="chatnb.realtime")
    plan = FaultPlan(
        rate=0.5, statuses=(429, 503), delay=0.05, retry_after=0.2, seed=8, prefixes=("/chatnb/events",)
    )
    per_batch, cuts = 10, 3

    def received(events: list[Event]) -> int:
        return sum(isinstance(e, ChatMessageReceivedEvent) for e in events)

    with Emulator(faults=plan) as emu:
        a, b = Actor(emu, "Ann"), Actor(emu, "Bob")
        thread = await a.create_thread("faulted stream", (b, None))
        relay = Relay("127.0.0.1", emu.port)
        via = await relay.start()
        recording = Recording(ssl.create_default_context(cafile=str(emu.ca_cert)))
        engine = RealtimeNotifications(via, b.token, mode="push", transport=recording)
        stream = engine.events()
        try:
            await engine.start()
            events: list[Event] = []
            sent: list[str] = []
            for batch in range(cuts + 1):
                # Sent while the stream is down or refused: it must catch up with Last-Event-ID.
                sent += [await a.send(thread, f"m{batch}.{i}") for i in range(per_batch)]

                def caught_up(events: list[Event], total: int = len(sent)) -> bool:
                    return received(events) >= total

                await collect_until(stream, caught_up, into=events)
                if batch < cuts:
                    relay.cut()  # for real
            events += await Sentinels.by(a, b).collect(stream)  # nothing may come twice
            await engine.stop()
            events += [e async for e in stream]
        finally:
            await engine.stop()
            await relay.aclose()
            await a.aclose()
            await b.aclose()
        assert emu.fault_injector is not None
        injected = dict(emu.fault_injector.injected)
    got = [e.id for e in events if isinstance(e, ChatMessageReceivedEvent)]
    assert got == sent  # every message once, in order
    # One disconnection per cut (and the final stop), however many connects were refused in between.
    assert kinds(events).count("realTimeNotificationConnected") == cuts + 1
    assert kinds(events).count("realTimeNotificationDisconnected") == cuts + 1
    # Some connects really were refused, and each refusal was waited out: at least its Retry-After.
    refused = [wait for status, wait in recording.answers if status in (429, 503)]
    assert refused and injected.get("429", 0) + injected.get("503", 0) == len(refused)
    waits = [wait for reason, wait in logged_waits(caplog.records) if reason.startswith("HTTP")]
    assert len(waits) == len(refused)
    slack = 0.005  # the log rounds to 0.01 s
    assert all(wait >= (asked or 0) - slack for wait, asked in zip(waits, refused, strict=True))
    assert all(wait <= 10.0 for wait in waits)  # bounded by the stream's backoff cap
    print(f"\n[push] {len(sent)} messages once each; {len(refused)} connects refused; faults: {injected}")


async def test_a_stream_refused_again_and_again_backs_off_despite_retry_after_zero(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Every connect answered 503 with ``Retry-After: 0``: the stream still waits its own backoff (it
    used to reconnect at once, some 400 times a second) and the backoff stays bounded."""
    caplog.set_level(logging.DEBUG, logger="chatnb.realtime")
    plan = FaultPlan(rate=1.0, statuses=(503,), retry_after=0.0, seed=3, prefixes=("/chatnb/events",))
    initial, cap = 0.02, 0.16
    with Emulator(faults=plan) as emu:
        _, token = new_user_token(emu)
        stream = EventStream(emu.endpoint, token, backoff=(initial, cap))
        waits = await retry_waits(stream, caplog, 7)
        assert emu.fault_injector is not None
        assert 7 <= emu.fault_injector.seen <= 9  # one attempt per wait (the last may be in flight)
    assert all(reason == "HTTP 503" for reason, _ in waits)
    assert_backoff(waits, initial, cap)


def assert_backoff(waits: list[tuple[str, float]], initial: float, cap: float) -> None:
    """Each wait is the backoff of its attempt, ``initial * 2**k`` capped at ``cap``, less its jitter
    (50-100 %); the log rounds to 0.01 s."""
    for k, (_, wait) in enumerate(waits):
        step = min(cap, initial * 2**k)
        assert step / 2 - 0.005 <= wait <= step + 0.005, (k, waits)


async def retry_waits(
    source: Any, caplog: pytest.LogCaptureFixture, count: int, timeout: float = 15.0
) -> list[tuple[str, float]]:
    """Iterate ``source`` until it has logged ``count`` reconnect waits; ``(reason, seconds)`` of each."""
    mark = len(caplog.records)
    iterator = source.__aiter__()
    task = asyncio.ensure_future(_drain(iterator))

    def logged() -> bool:
        assert not task.done(), task
        return len(logged_waits(caplog.records[mark:])) >= count

    await async_wait_until(logged, f"{count} logged reconnect waits", timeout)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await iterator.aclose()
    return logged_waits(caplog.records[mark:])[:count]


async def _drain(iterator: Any) -> None:
    async for _ in iterator:
        pass


# -- 3. the server is gone ---------------------------------------------------------------------------


@pytest.mark.parametrize("flavour", ["sync", "async"])
async def test_calls_fail_promptly_with_a_transport_error_when_the_emulator_is_gone(flavour: str) -> None:
    attempts = Attempts()
    emu = Emulator().start()
    try:
        identity, Chat = clients(flavour, emu, attempts)
        user, token = await aw(identity.create_user_and_token(["chat"]))
        chat = attempts.watch(Chat(emu.endpoint, token.token))
        thread = chat.get_chat_thread_client((await aw(chat.create_chat_thread("soon gone"))).chat_thread.id)
        await aw(thread.send_message("while it was there"))  # pooled keep-alive connections now exist
    finally:
        emu.stop()
    host = emu.endpoint.removeprefix("https://").rstrip("/")
    calls = [
        ("GET", "/chat/threads", lambda: chat.list_chat_threads()),
        ("POST", "/messages", lambda: thread.send_message("into the void")),
        ("GET", "/participants", lambda: thread.list_participants()),
        ("POST", "/identities", lambda: identity.create_user()),
        ("POST", ":issueAccessToken", lambda: identity.get_token(user, ["chat"])),
    ]
    try:
        for method, path, call in calls:
            before = attempts.total
            started = time.monotonic()
            with pytest.raises(chatnb.TransportError) as info:
                await aw(call())
            elapsed = time.monotonic() - started
            exc = info.value
            text = str(exc)
            assert f"no response from {method} https://{host}/" in text and path in text, text
            assert exc.method == method and exc.url is not None and host in exc.url
            assert isinstance(exc.__cause__, httpx.TransportError)
            assert not isinstance(exc, chatnb.APIError)
            for secret in (token.token, emu.access_key, "api-version"):
                assert secret not in text and secret not in repr(exc)
            assert attempts.total - before == 1  # no response, nothing to honour: not retried
            assert elapsed < PROMPT
    finally:
        for client in (chat, identity):
            await aw(client.close())


async def test_a_server_that_never_answers_times_out_as_a_transport_error() -> None:
    """A port that accepts connections but never answers (a hung server): the client's timeout ends it."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        endpoint = f"https://127.0.0.1:{listener.getsockname()[1]}"
        token = fake_jwt(seconds=3600)
        async with chatnb.aio.ChatClient(endpoint, token, connection_verify=False, timeout=0.3) as chat:
            started = time.monotonic()
            with pytest.raises(chatnb.TransportError) as info:
                await chat.list_chat_threads()
            elapsed = time.monotonic() - started
    assert isinstance(info.value.__cause__, httpx.TimeoutException)
    assert endpoint in str(info.value) and "Timeout" in str(info.value) and token not in str(info.value)
    assert elapsed < PROMPT


BACKOFF = (0.02, 0.16)  # initial and largest reconnect wait of the outage tests


async def outage(
    tmp_path: Path, source_of: Any, caplog: pytest.LogCaptureFixture, markers: int = 1
) -> tuple[list[Event], list[str], list[tuple[str, float]], str]:
    """Run an event source through an outage: 3 messages; the emulator stops and the source makes 7
    reconnect attempts; a new emulator serves the same location on the same port and 3 more messages are
    sent at once (before the source is back).

    ``source_of(endpoint, token, verify)`` makes the source; it ends with ``markers`` sentinels (see
    :class:`~tests.support.events.Sentinels`). Returns the events (without the sentinels), the message ids
    sent, the logged ``(reason, wait)`` of the 7 attempts and the reader's token.
    """
    caplog.set_level(logging.DEBUG, logger="chatnb.realtime")
    first = Emulator(location=tmp_path).start()
    verify = ssl.create_default_context(cafile=str(first.ca_cert))  # the location keeps its certificate
    a, b = Actor(first, "Ann"), Actor(first, "Bob")
    await b.aclose()
    thread = await a.create_thread("outage", (b, None))
    iterator = source_of(first.endpoint, b.token, verify).__aiter__()
    events: list[Event] = []
    sent: list[str] = []
    second: Emulator | None = None

    def received() -> int:
        return sum(isinstance(e, ChatMessageReceivedEvent) for e in events)

    async def until(condition: Any, what: str) -> None:
        def met() -> bool:
            assert not reader.done(), (what, kinds(events))
            return bool(condition())

        await async_wait_until(met, what, 20)

    reader = asyncio.ensure_future(collect_until(iterator, lambda es: False, 60, into=events))
    try:
        await until(lambda: bool(events), "the connection")  # a stream starts from its connection
        sent += [await a.send(thread, f"before {i}") for i in range(3)]
        await until(lambda: received() == 3, "the first messages")
        await a.aclose()
        mark = len(caplog.records)
        await asyncio.to_thread(first.stop)
        await until(lambda: len(logged_waits(caplog.records[mark:])) >= 7, "7 reconnect attempts")
        second = Emulator(location=tmp_path, port=first.port).start()
        a.http = httpx.AsyncClient(
            base_url=second.endpoint.rstrip("/"),
            verify=verify,
            headers={"Authorization": f"Bearer {a.token}"},
        )
        sent += [await a.send(thread, f"after {i}") for i in range(3)]
        await until(lambda: received() == 6, "the messages sent after the restart")
        await Sentinels.by(a, b).settle(events, markers)  # a little longer: nothing may come twice
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, AssertionError):
            await reader
        await iterator.aclose()
        await a.aclose()
        first.stop()
        if second is not None:
            second.stop()
    scenario = [e for e in events if not is_sentinel(e)]
    return scenario, sent, logged_waits(caplog.records[mark:])[:7], b.token


def assert_outage_survived(
    events: list[Event], sent: list[str], waits: list[tuple[str, float]], token: str
) -> None:
    got = [e.id for e in events if isinstance(e, ChatMessageReceivedEvent)]
    assert got == sent  # before and after the outage, each once, in order
    # One disconnection for the whole outage, however many attempts failed; connected again after it.
    assert kinds(events).count("realTimeNotificationDisconnected") == 1
    assert kinds(events).count("realTimeNotificationConnected") == 2
    gone = next(e for e in events if isinstance(e, RealTimeNotificationDisconnected))
    assert gone.reason and token not in gone.reason
    assert all(not reason.startswith("HTTP") and token not in reason for reason, _ in waits), waits
    # It kept retrying, with a backoff that grows and stays bounded.
    assert_backoff(waits, *BACKOFF)


async def test_push_reports_the_outage_retries_with_bounded_backoff_and_catches_up(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def source(endpoint: str, token: str, verify: ssl.SSLContext) -> EventStream:
        return EventStream(endpoint, token, connection_verify=verify, backoff=BACKOFF)

    assert_outage_survived(*await outage(tmp_path, source, caplog))


async def test_polling_reports_the_outage_retries_with_bounded_backoff_and_catches_up(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def source(endpoint: str, token: str, verify: ssl.SSLContext) -> Poller:
        return Poller(endpoint, token, interval=0.05, connection_verify=verify, backoff=BACKOFF)

    assert_outage_survived(*await outage(tmp_path, source, caplog, markers=7))  # six more rounds
