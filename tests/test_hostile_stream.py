"""The event stream against a hostile server (issue 13, item 6, and the stream's part of items 7 and 8).

The SSE decoder caps lines (:data:`~chatnb._sse.MAX_LINE`, 1 MiB) and events
(:data:`~chatnb._sse.MAX_EVENT`, 4 MiB) and keeps only the unfinished line, so a line of 32 MB without a
newline is refused after its first MiB and the connection dropped (and made again); a payload that does
not decode is skipped as a DecodingError, not the end of the stream; a ``retry:`` field or a
``Retry-After`` of years is cut to :data:`~chatnb._retry.MAX_SERVER_WAIT`. The servers are real
(:class:`hostile.HostileServer`); the decoder's own bounds are also checked on their own, fed in chunks.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import pytest

import chatnb
from chatnb._retry import MAX_SERVER_WAIT, Backoff
from chatnb._sse import MAX_EVENT, MAX_LINE, SSEDecoder, ascii_int
from chatnb._stream import EventStream
from chatnb.events import (
    ChatMessageReceivedEvent,
    RealTimeNotificationConnected,
    RealTimeNotificationDisconnected,
)
from tests.support.events import of
from tests.support.hostile import JSON, Conn, HostileServer, Request, sse_response_head
from tests.support.tokens import fake_jwt

CHUNK = 64 * 1024
HANG = 10.0
CONNECTED = b'retry: 200\nid: 5\nevent: realTimeNotificationConnected\ndata: {"lastEventId": 5}\n\n'
MESSAGE = (
    b'id: 6\nevent: chatMessageReceived\ndata: {"threadId": "19:t@thread.v2", "id": "1", "version": "1",'
    b' "message": "still here", "createdOn": "2024-05-01T12:00:00Z"}\n\n'
)


# -- the decoder on its own ------------------------------------------------------------------------


def test_a_line_without_a_newline_is_refused_after_its_cap() -> None:
    decoder = SSEDecoder()
    fed = 0
    with pytest.raises(chatnb.RefusedAnswerError) as info:
        while fed < 4 * MAX_LINE:  # a decoder without the cap would take all 4 MiB (and 32 MB, and more)
            decoder.feed("a" * CHUNK)
            fed += CHUNK
    assert fed <= MAX_LINE  # refused by the chunk that went over, not later
    assert isinstance(info.value, chatnb.DecodingError)
    assert f"a line over {MAX_LINE:,} characters" in str(info.value)


def test_an_event_over_its_cap_is_refused_though_each_line_is_within_its_own() -> None:
    decoder = SSEDecoder()
    line = "data: " + "x" * (CHUNK - 10) + "\n"
    sent = 0
    with pytest.raises(chatnb.RefusedAnswerError) as info:
        while sent < 2 * MAX_EVENT:
            assert decoder.feed(line) == []
            sent += len(line)
    assert MAX_EVENT - CHUNK < sent <= MAX_EVENT + CHUNK
    assert f"an event over {MAX_EVENT:,} characters" in str(info.value)


def test_the_caps_are_exact_and_split_lines_count_whole() -> None:
    decoder = SSEDecoder(max_line=12, max_event=20)
    assert decoder.feed("data: 12345") == []  # 11 characters of a line, no newline yet
    assert decoder.feed("6\n\n")[0].data == "123456"  # 12: at the cap, taken
    decoder.feed("data: 1234")
    with pytest.raises(chatnb.RefusedAnswerError):
        decoder.feed("567\n")  # 13 characters, though no piece of it was
    events = SSEDecoder(max_line=40, max_event=20)
    events.feed("data: 123456\ndata: 1234567\n")  # 7 + 8 characters of data (with the newlines)
    with pytest.raises(chatnb.RefusedAnswerError):
        events.feed("data: 123456\n")  # 22 in all: over 20


def test_fields_a_server_can_make_huge_or_strange_are_bounded() -> None:
    decoder = SSEDecoder()
    decoder.feed("retry: " + "9" * 5000 + "\n")  # more digits than int() reads by default
    assert decoder.retry is not None and decoder.retry >= 10**15
    decoder.feed("retry: \u00b2\n")  # a Unicode digit is not a digit of the retry field
    assert decoder.retry >= 10**15
    assert decoder.feed("id: \u00b2\nevent: x\ndata: y\n\n")[0].id == "\u00b2"  # kept, but not a number:
    assert ascii_int("\u00b2") is None and ascii_int("9" * 19) is None and ascii_int("42") == 42


def test_backoff_caps_what_a_server_asks() -> None:
    assert Backoff().delay(0, floor=99_999_999) == MAX_SERVER_WAIT == 60.0
    assert Backoff(jitter=True).delay(5, floor=1e12) == 60.0
    assert Backoff(0.5, 30, floor_cap=2.0).delay(0, floor=10) == 2.0
    assert Backoff().delay(0, floor=3.0) == 3.0  # within the cap: honoured


# -- the stream against real servers ---------------------------------------------------------------


def stream_of(server: HostileServer, **kwargs: Any) -> EventStream:
    return EventStream(server.url, fake_jwt(3600), backoff=kwargs.pop("backoff", (0.01, 0.02)), **kwargs)


async def test_a_32_mb_line_drops_the_connection_after_its_first_mib() -> None:
    sizes: list[int] = []

    async def answers(request: Request, conn: Conn) -> None:
        if conn.server.connections > 1:  # the reconnect: a good stream
            await conn.send(sse_response_head() + CONNECTED + MESSAGE)
            await conn.hold()
            return
        await conn.send(sse_response_head() + CONNECTED)
        for _ in range(32 * 1024 * 1024 // CHUNK):
            if not await conn.send(b"a" * CHUNK):
                break
        sizes.append(conn.sent)
        conn.server.note("first", True)

    with HostileServer(answers) as server:
        events = stream_of(server).__aiter__()
        try:
            got = [await asyncio.wait_for(events.__anext__(), HANG) for _ in range(4)]
        finally:
            await events.aclose()
        assert await server.until(lambda s: s.notes.get("first", False))
    kinds = [type(event) for event in got]
    assert kinds == [
        RealTimeNotificationConnected,
        RealTimeNotificationDisconnected,
        RealTimeNotificationConnected,
        ChatMessageReceivedEvent,
    ]
    assert f"a line over {MAX_LINE:,} characters" in of(RealTimeNotificationDisconnected, got[1:2])[0].reason
    assert sizes[0] < 8 * 1024 * 1024  # the client hung up long before the 32 MB (socket buffers aside)
    assert of(ChatMessageReceivedEvent, got[3:4])[0].message == "still here"


async def test_an_undecodable_payload_is_skipped_as_a_decoding_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    nested = b"[" * 100_000  # within the line cap; deeper than Python's JSON decoder can recurse
    bad = (
        b"id: 6\nevent: chatMessageReceived\ndata: " + nested + b"\n\n"
        b'id: 7\nevent: chatMessageReceived\ndata: {"createdOn": "not a time"}\n\n'
        b"id: 8\nevent: chatMessageReceived\ndata: not json\n\n"
    )

    async def answers(request: Request, conn: Conn) -> None:
        await conn.send(sse_response_head() + CONNECTED + bad + MESSAGE.replace(b"id: 6", b"id: 9"))
        await conn.hold()

    caplog.set_level(logging.WARNING, logger="chatnb.realtime")
    with HostileServer(answers) as server:
        stream = stream_of(server)
        events = stream.__aiter__()
        try:
            got = [await asyncio.wait_for(events.__anext__(), HANG) for _ in range(2)]
        finally:
            await events.aclose()
    assert isinstance(got[0], RealTimeNotificationConnected)
    assert isinstance(got[1], ChatMessageReceivedEvent) and got[1].message == "still here"
    assert stream.undecodable == 3 and stream.last_event_id == 9
    warned = [r.getMessage() for r in caplog.records if "not the JSON expected" in r.getMessage()]
    assert len(warned) == 3 and all("chatMessageReceived" in w for w in warned)


async def drain(events: Any) -> None:
    async for _ in events:
        pass


class _Waits(logging.Handler):
    """Collects the event stream's "retry in" log lines and says when one came."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.came = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())
        if "retry in" in record.getMessage():
            self.came.set()


async def test_a_retry_field_of_years_is_cut_to_the_cap() -> None:
    """The default backoff honours the server's ``retry:`` field: a field asking for three years is a
    reconnect in 60 s (the wait is stopped as soon as it is logged)."""

    async def answers(request: Request, conn: Conn) -> None:
        await conn.send(
            sse_response_head() + b"retry: 99999999999\n\n" + CONNECTED.replace(b"retry: 200\n", b"")
        )

    waits = _Waits()
    logger = logging.getLogger("chatnb.realtime")
    logger.addHandler(waits)
    old_level = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        with HostileServer(answers) as server:
            stream = EventStream(server.url, fake_jwt(3600))  # the default backoff: retry: is honoured
            events = stream.__aiter__()
            reader = asyncio.ensure_future(drain(events))
            try:
                assert await asyncio.to_thread(waits.came.wait, HANG)
            finally:
                reader.cancel()
                await asyncio.gather(reader, return_exceptions=True)
                await events.aclose()
    finally:
        logger.removeHandler(waits)
        logger.setLevel(old_level)
    assert stream.retry_field == 99_999_999.999  # what the server asked
    assert any("asked to wait 100,000,000 s" in line and "at most 60 s" in line for line in waits.lines)
    assert next(line for line in waits.lines if "retry in" in line).endswith("retry in 60.00s")


async def test_a_retry_after_of_years_on_connect_is_cut_to_the_cap() -> None:
    async def answers(request: Request, conn: Conn) -> None:
        if conn.server.connections == 1:
            await conn.respond(503, b"{}", {**JSON, "Retry-After": "99999999"})
            return
        await conn.send(sse_response_head() + CONNECTED)
        await conn.hold()

    with HostileServer(answers) as server:
        stream = stream_of(server, backoff=Backoff(0.01, 0.02, floor_cap=0.05))
        events = stream.__aiter__()
        try:
            first = await asyncio.wait_for(events.__anext__(), HANG)
        finally:
            await events.aclose()
        assert server.connections == 2
    assert isinstance(first, RealTimeNotificationConnected)
