"""The emulator's push channel: a Server-Sent Events decoder and :class:`EventStream`, which reads
``GET /chatnb/events`` and survives drops. It sends through the one sender
(:class:`chatnb.aio._sender.Sender`) and waits with the one backoff (:class:`chatnb._retry.Backoff`).
The engine that uses it is :mod:`chatnb.realtime`.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass

import httpx

from ._core import RetryPolicy, normalize_endpoint, resolve_verify
from ._retry import Backoff, parse_retry_after
from .aio._sender import Auth, BearerAuth, Sender, open_http
from .errors import StreamUnavailable, TransportError, error_from_response
from .events import Event, RealTimeNotificationConnected, RealTimeNotificationDisconnected, parse_event

__all__ = [
    "STREAM_API_VERSION",
    "EventStream",
    "SSEDecoder",
    "SSEMessage",
    "as_backoff",
    "open_sender",
    "stream_request",
]

log = logging.getLogger("chatnb.realtime")

STREAM_API_VERSION = "2024-03-07"


# -- Server-Sent Events ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SSEMessage:
    """One dispatched SSE event: its type (``"message"`` by default), data and the last event id."""

    event: str
    data: str
    id: str | None


class SSEDecoder:
    """An incremental ``text/event-stream`` decoder following the WHATWG HTML rules.

    Lines end in CRLF, LF or CR; ``:`` starts a comment; a blank line dispatches the event (not when it
    has no data); ``id`` persists across events (and is ignored if it contains NUL); ``retry`` sets
    :attr:`retry` (milliseconds). A partial event at the end of the stream is dropped.
    """

    def __init__(self) -> None:
        self._buffer = ""
        self._started = False
        self._data: list[str] = []
        self._event = ""
        self.last_event_id: str | None = None
        self.retry: int | None = None

    def feed(self, text: str) -> list[SSEMessage]:
        if not self._started and text:
            self._started = True
            text = text.removeprefix("\ufeff")
        self._buffer += text
        out: list[SSEMessage] = []
        start = 0
        buf = self._buffer
        while True:
            cr, lf = buf.find("\r", start), buf.find("\n", start)
            if cr < 0 and lf < 0:
                break
            end = lf if cr < 0 or (0 <= lf < cr) else cr
            if buf[end] == "\r":
                if end + 1 == len(buf):  # CR at the end: wait to see whether LF follows
                    break
                nxt = end + 2 if buf[end + 1] == "\n" else end + 1
            else:
                nxt = end + 1
            message = self._line(buf[start:end])
            if message is not None:
                out.append(message)
            start = nxt
        self._buffer = buf[start:]
        return out

    def _line(self, line: str) -> SSEMessage | None:
        if not line:
            if not self._data:
                self._event = ""
                return None
            message = SSEMessage(self._event or "message", "\n".join(self._data), self.last_event_id)
            self._data, self._event = [], ""
            return message
        if line.startswith(":"):
            return None
        field, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if field == "event":
            self._event = value
        elif field == "data":
            self._data.append(value)
        elif field == "id":
            if "\0" not in value:
                self.last_event_id = value
        elif field == "retry" and value.isdigit():
            self.retry = int(value)
        return None


# -- what the poller shares ----------------------------------------------------------------------


def open_sender(
    endpoint: str,
    auth: Auth,
    connection_verify: bool | str | ssl.SSLContext | None,
    transport: httpx.AsyncBaseTransport | None,
    read_timeout: float | None = 30.0,
    retry_policy: RetryPolicy | None = None,
    limit: object = None,
) -> Sender:
    """A :class:`Sender` over a new ``httpx.AsyncClient`` trusting what the chatnb clients trust (the
    emulator's CA by default), authorised by ``auth``; close its ``http`` when done."""
    verify = resolve_verify(normalize_endpoint(endpoint), connection_verify)
    http = open_http(verify, httpx.Timeout(10.0, read=read_timeout), transport)
    return Sender(http, auth, retry_policy or RetryPolicy(), limit=limit)


def as_backoff(backoff: Backoff | tuple[float, float]) -> Backoff:
    """A reconnect loop's backoff: a :class:`Backoff`, or ``(initial, maximum)`` seconds (jittered)."""
    if isinstance(backoff, Backoff):
        return backoff
    initial, maximum = backoff
    return Backoff(initial, maximum, jitter=True)


def stream_request(url: str, last_event_id: int | None) -> httpx.Request:
    """The ``GET`` of the event stream at ``url``, resuming after ``last_event_id`` if given."""
    headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = str(last_event_id)
    return httpx.Request("GET", url, headers=headers)


# -- push: the emulator's event stream -------------------------------------------------------------


class EventStream:
    """The emulator's event stream as an async iterator of events, surviving drops.

    Yields :class:`RealTimeNotificationConnected` on every (re)connection and
    :class:`RealTimeNotificationDisconnected` on every drop, and each chat event once, in journal order.
    Between attempts it waits the backoff, and never less than what the server asked for: the
    ``Retry-After`` of a refused connect, else the stream's ``retry:`` field (its reconnection time).

    Args:
        endpoint: the emulator's endpoint.
        credential: a ``CommunicationTokenCredential`` (or token string); asked on every connect.
        last_event_id: resume after this journal id (``None``: from now).
        connection_verify, transport: TLS trust and an optional ``httpx.AsyncBaseTransport``.
        backoff: the reconnect delays, a :class:`~chatnb._retry.Backoff` or ``(initial, maximum)``
            seconds (jittered). By default 0.2 to 10 s, never below the server's ``retry:``; a backoff
            given explicitly is used as it is (the server's ``retry:`` is then ignored).
        read_timeout: seconds without a byte (the emulator sends a heartbeat every 15 s) before the
            connection is considered dead.

    Raises (from iteration):
        StreamUnavailable: the endpoint serves no event stream.
        AuthenticationError / ForbiddenError: the token is refused again and again, or lacks chat scope.
    """

    def __init__(
        self,
        endpoint: str,
        credential: object,
        *,
        last_event_id: str | int | None = None,
        connection_verify: bool | str | ssl.SSLContext | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        backoff: Backoff | tuple[float, float] | None = None,
        read_timeout: float = 45.0,
        max_auth_failures: int = 3,
    ) -> None:
        self.url = f"{normalize_endpoint(endpoint)}/chatnb/events?api-version={STREAM_API_VERSION}"
        self._endpoint = endpoint
        self._credential = credential
        self._verify = connection_verify
        self._transport = transport
        self._backoff = as_backoff(backoff or (0.2, 10.0))
        self._honour_retry_field = backoff is None
        self._read_timeout = read_timeout
        self._max_auth_failures = max_auth_failures
        self.last_event_id: int | None = None if last_event_id is None else int(last_event_id)
        self.retry_field: float | None = None
        """The server's reconnection time (its ``retry:`` field), in seconds, once it sent one."""
        self.connected = False
        self.reconnects = 0
        self.duplicates = 0

    def __aiter__(self) -> AsyncGenerator[Event, None]:
        return self._run()

    async def _run(self) -> AsyncGenerator[Event, None]:
        attempt = auth_failures = 0
        sender = open_sender(
            self._endpoint, BearerAuth(self._credential), self._verify, self._transport, self._read_timeout
        )
        async with sender.http:
            while True:
                reason = "the server ended the stream"
                asked: float | None = None
                try:
                    async with sender.stream(stream_request(self.url, self.last_event_id)) as response:
                        status = response.status_code
                        content_type = response.headers.get("content-type", "")
                        if status == 200 and content_type.startswith("text/event-stream"):
                            auth_failures = 0
                            async for event in self._read(response):
                                if isinstance(event, RealTimeNotificationConnected):
                                    attempt = 0
                                yield event
                        else:
                            await response.aread()
                            reason = f"HTTP {status}"
                            if status == 401:
                                auth_failures += 1
                                if auth_failures >= self._max_auth_failures:
                                    raise error_from_response(response)
                            elif status == 403:
                                raise error_from_response(response)
                            elif status in (429, 503) or status >= 500:
                                asked = parse_retry_after(response.headers)
                            else:
                                raise StreamUnavailable(
                                    f"{self._endpoint} serves no event stream (HTTP {status})"
                                )
                except TransportError as exc:  # no response: the sender says so with the httpx cause
                    reason = _reason(exc.__cause__ or exc)
                except httpx.TransportError as exc:  # the connection broke while the body was read
                    reason = _reason(exc)
                if self.connected:
                    self.connected = False
                    yield RealTimeNotificationDisconnected(reason=reason)
                # What the server asked for is a minimum (a server answering 503 with "Retry-After: 0"
                # again and again must not turn the reconnect loop into a busy loop): the Retry-After of
                # this refusal, else the stream's standing reconnection time (its retry: field).
                floor = asked if asked is not None or not self._honour_retry_field else self.retry_field
                delay = self._backoff.delay(attempt, floor)
                log.log(
                    logging.INFO if attempt == 0 else logging.DEBUG,
                    "event stream: %s; retry in %.2fs",
                    reason,
                    delay,
                )
                attempt += 1
                self.reconnects += 1
                await asyncio.sleep(delay)

    async def _read(self, response: httpx.Response) -> AsyncIterator[Event]:
        decoder = SSEDecoder()
        gap = False
        async for chunk in response.aiter_text():
            messages = decoder.feed(chunk)
            if decoder.retry is not None:
                self.retry_field = decoder.retry / 1000
            for message in messages:
                if message.event == "journalGap":
                    gap = True
                    log.warning(
                        "event stream: the server no longer holds some missed events: %s", message.data
                    )
                    continue
                if message.event == RealTimeNotificationConnected.kind:
                    resumed = message.id if message.id and message.id.isdigit() else None
                    if resumed is not None:
                        self.last_event_id = int(resumed)  # below ours only if the journal was reset
                    self.connected = True
                    yield RealTimeNotificationConnected(last_event_id=resumed, mode="push", journal_gap=gap)
                    continue
                event_id = int(message.id) if message.id and message.id.isdigit() else None
                if event_id is not None:
                    if self.last_event_id is not None and event_id <= self.last_event_id:
                        self.duplicates += 1
                        continue
                    self.last_event_id = event_id
                try:
                    yield parse_event(message.event, message.data, event_id=event_id)
                except ValueError as exc:
                    log.debug("event stream: skipping %s event: %s", message.event, exc)


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
