"""Overall deadlines against a server that drips (issue 13, item 5).

A client's ``timeout`` is the budget of a whole attempt, not a limit per read. The hostile server sends a
byte every :data:`DRIP` seconds, always sooner than the client's :data:`BUDGET`, so a per-read timeout
never fires: only a deadline ends the call. What the server managed to send before the client hung up is
the measure (a client without a deadline reads the whole answer): no test here times the client, beyond
a generous bound that only catches a hang.

The sync clients get their deadline from their own transport (every socket operation waits at most what
is left: :mod:`chatnb._deadline`), the async ones from the event loop; both are run, on a fresh and on a
kept-alive connection, for the chat client, the identity client, the poller, the export and
``start_realtime_notifications()`` against an event stream of keep-alives only.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

import chatnb
import chatnb.aio
from chatnb._polling import Poller
from chatnb._stream import EventStream
from chatnb._timeout import bounded
from chatnb.export import ExportError
from tests.support.clients import aw
from tests.support.hostile import (
    JSON,
    Conn,
    HostileServer,
    Request,
    chat_client,
    head,
    page_of,
    sse_response_head,
    thread_properties,
)
from tests.support.tokens import fake_jwt

FLAVOURS = [pytest.param("sync", id="sync"), pytest.param("async", id="async")]
DRIP = 0.1  # seconds between two bytes of a dripped answer
BUDGET = 0.8  # the client's timeout: 8 drips (a stalled drip is not mistaken for it)
BODY = page_of([]).rstrip(b"}") + b" " * 36 + b"}"  # 48 bytes: about 5 s at one byte per DRIP
HANG = 10.0  # only catches a hang: far more than BUDGET
THREAD = "19:t0@thread.v2"


class Dripper:
    """A handler that drips answers (the whole of them, or only the body) and counts what each sent."""

    def __init__(self, *, headers_too: bool = False, keep_first: bool = False) -> None:
        self.headers_too = headers_too
        self.keep_first = keep_first  # answer the first request at once, on a kept-alive connection
        self.dripped: list[int] = []  # body bytes each dripped answer got out before the client left

    async def __call__(self, request: Request, conn: Conn) -> None:
        if self.keep_first:
            await conn.respond(200, page_of([]), JSON, close=False)
            next_request = await conn.next_request()
            if next_request is None:
                return
        if self.headers_too:
            sent = await conn.drip(head(200, JSON, len(BODY)) + BODY, DRIP)
        else:
            await conn.send(head(200, JSON, len(BODY)))
            sent = await conn.drip(BODY, DRIP)
        self.dripped.append(sent)
        conn.server.note("drips", len(self.dripped))

    def whole(self) -> int:
        return len(BODY) + (len(head(200, JSON, len(BODY))) if self.headers_too else 0)


async def ended(server: HostileServer, dripper: Dripper, count: int = 1) -> list[int]:
    """What the first ``count`` dripped answers sent, once they have ended (the client hung up)."""
    assert await server.until(lambda s: s.notes.get("drips", 0) >= count, HANG + 5)
    return dripper.dripped[:count]


def assert_deadline(error: BaseException, budget: float = BUDGET) -> None:
    assert isinstance(error, chatnb.TransportError), repr(error)
    assert isinstance(error.__cause__, httpx.TimeoutException)
    assert f"within the {budget:g} s timeout" in str(error)


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize(
    "dripper",
    [
        pytest.param({}, id="body-dripped"),
        pytest.param({"headers_too": True}, id="headers-dripped"),
        pytest.param({"headers_too": True, "keep_first": True}, id="kept-alive-connection"),
    ],
)
async def test_a_dripping_server_cannot_stretch_a_call_past_its_timeout(flavour: str, dripper: Any) -> None:
    drip = Dripper(**dripper)
    with HostileServer(drip) as server:
        chat = chat_client(flavour, server.url, fake_jwt(3600), timeout=BUDGET)
        try:
            if drip.keep_first:
                await aw(chat.list_chat_threads())  # the connection the dripped answer comes on
            started = time.monotonic()
            with pytest.raises(chatnb.TransportError) as info:
                await aw(chat.list_chat_threads())
            elapsed = time.monotonic() - started
        finally:
            await aw(chat.close())
        (sent,) = await ended(server, drip)
        assert server.connections == 1  # the kept-alive case did reuse its connection
    assert_deadline(info.value)
    assert sent < drip.whole() // 2  # the client hung up after a few bytes, not after all of them
    assert elapsed < HANG


@pytest.mark.parametrize("flavour", FLAVOURS)
async def test_the_identity_client_has_the_same_deadline(flavour: str) -> None:
    drip = Dripper()
    key = base64.b64encode(b"k" * 32).decode()
    with HostileServer(drip) as server:
        module = chatnb.aio if flavour == "async" else chatnb
        identity = module.CommunicationIdentityClient(server.url, key, timeout=BUDGET)
        try:
            with pytest.raises(chatnb.TransportError) as info:
                await aw(identity.create_user())
        finally:
            await aw(identity.close())
        (sent,) = await ended(server, drip)
    assert_deadline(info.value)
    assert sent < len(BODY) // 2 and key not in str(info.value)


async def test_the_poller_fails_a_dripping_round_and_makes_it_again() -> None:
    drip = Dripper()
    with HostileServer(drip) as server:
        poller = Poller(server.url, fake_jwt(3600, skypeid="acs:me"), timeout=BUDGET, backoff=(0.01, 0.02))
        events = poller.__aiter__()
        reader = asyncio.ensure_future(events.__anext__())
        try:
            sent = await ended(server, drip, count=2)  # the round failed, and was made again
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
            await events.aclose()
    assert all(n < len(BODY) // 2 for n in sent)


async def test_a_cancellation_that_comes_as_the_awaited_answer_does_is_never_lost() -> None:
    """Every bounded wait (the client's attempts, the emulator's, the widgets') lets a cancellation
    through: ``asyncio.wait_for`` of Python 3.10 and 3.11 let the answer win, and a poller being stopped
    as a round's answer came polled on (on CI's Python 3.10)."""
    answer: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    attempt = asyncio.ensure_future(bounded(60.0, answer))
    await asyncio.sleep(0)  # the attempt waits for its answer
    answer.set_result("the answer")  # the answer and the stop, in one turn of the loop
    attempt.cancel()
    with pytest.raises(asyncio.CancelledError):
        await attempt


async def test_a_cancellation_that_comes_as_the_deadline_passes_is_never_lost() -> None:
    """The deadline and a stop in one turn of the loop: the stop wins (``async-timeout`` on Python 3.10
    made it a TimeoutError, and a stream stopped as its connect deadline passed reconnected)."""
    loop = asyncio.get_running_loop()
    attempt = asyncio.ensure_future(bounded(0.01, loop.create_future()))
    await asyncio.sleep(0)  # the attempt waits, its deadline 10 ms away
    loop.call_later(0.02, attempt.cancel)  # the stop, due just after the deadline
    time.sleep(0.05)  # hold the loop: both are due when it next looks, the deadline first
    with pytest.raises(asyncio.CancelledError):
        await attempt


@pytest.mark.parametrize("flavour", FLAVOURS)
async def test_the_export_has_the_same_deadline(tmp_path: Path, flavour: str) -> None:
    drip = Dripper()

    async def answers(request: Request, conn: Conn) -> None:
        if request.path.endswith("/messages"):
            await drip(request, conn)
        else:
            await conn.respond(200, json.dumps(thread_properties(THREAD)).encode(), JSON)

    with HostileServer(answers) as server:
        chat = chat_client(flavour, server.url, fake_jwt(3600), timeout=BUDGET)
        export = chatnb.aio.export_history if flavour == "async" else chatnb.export_history
        try:
            with pytest.raises(ExportError) as info:  # the thread's failure, reported at the end
                thread = chat.get_chat_thread_client(THREAD)
                await aw(export(thread, tmp_path / "out", format="jsonl", max_retries=0, progress=False))
        finally:
            await aw(chat.close())
        (sent,) = await ended(server, drip)
    (error,) = info.value.errors
    assert_deadline(error)
    assert sent < len(BODY) // 2


# -- an event stream of keep-alives only ----------------------------------------------------------


async def keep_alives(request: Request, conn: Conn) -> None:
    """An event stream that never says it is connected: a comment every 0.1 s (under any read
    timeout), for as long as the client listens."""
    if request.path != "/chatnb/events":
        await conn.respond(404, b"{}", JSON)
        return
    await conn.send(sse_response_head())
    while await conn.send(b": keep-alive\n\n"):
        await asyncio.sleep(0.1)


def test_sync_start_realtime_notifications_in_a_running_loop_returns_within_its_timeout() -> None:
    """In a notebook cell (a thread with a running loop) the sync client takes the stream's position
    first: against keep-alives only, that now ends within the timeout instead of never."""
    returned = threading.Event()
    failures: list[BaseException] = []

    def kernel(url: str) -> None:
        async def cell() -> None:
            chat = chatnb.ChatClient(url, fake_jwt(3600))
            try:
                chat.start_realtime_notifications(timeout=BUDGET)
                returned.set()
            finally:
                chat.close()

        try:
            asyncio.run(cell())
        except BaseException as exc:
            failures.append(exc)

    with HostileServer(keep_alives) as server:
        thread = threading.Thread(target=kernel, args=(server.url,), name="kernel", daemon=True)
        thread.start()
        assert returned.wait(HANG), "start_realtime_notifications() did not return"
        thread.join(HANG)
        assert not thread.is_alive()
        assert server.requests and server.requests[0].path == "/chatnb/events"
    assert failures == []


async def test_an_event_stream_of_keep_alives_only_is_dropped_and_reconnected(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="chatnb.realtime")
    with HostileServer(keep_alives) as server:
        stream = EventStream(server.url, fake_jwt(3600), timeout=BUDGET, backoff=(0.01, 0.02))
        events = stream.__aiter__()
        reader = asyncio.ensure_future(events.__anext__())
        try:
            assert await server.until(lambda s: s.connections >= 3, HANG)  # dropped, again and again
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
            await events.aclose()
    assert not stream.connected and stream.reconnects >= 2  # never connected: no event was yielded
    dropped = [r.getMessage() for r in caplog.records if "realTimeNotificationConnected" in r.getMessage()]
    assert dropped and f"within {BUDGET:g} s of connecting" in dropped[0]


@pytest.mark.parametrize("flavour", FLAVOURS)
async def test_start_realtime_notifications_returns_within_its_timeout_against_keep_alives(
    flavour: str,
) -> None:
    with HostileServer(keep_alives) as server:
        chat = chat_client(flavour, server.url, fake_jwt(3600), timeout=BUDGET)
        try:
            started = time.monotonic()
            if flavour == "async":
                await chat.start_realtime_notifications(mode="push", timeout=BUDGET)
            else:  # a script: the stream runs in a thread of its own
                await asyncio.to_thread(chat.start_realtime_notifications, mode="push", timeout=BUDGET)
            elapsed = time.monotonic() - started
            assert not chat.realtime.connected
        finally:
            await aw(chat.close())
    assert elapsed < HANG
