"""The emulator's push channel: :class:`EventStream`, which reads ``GET /chatnb/events`` through the
bounded Server-Sent Events decoder (:mod:`chatnb._sse`) and survives drops. It sends through the one
sender (:class:`chatnb.aio._sender.Sender`) and waits with the one backoff (:class:`chatnb._retry.Backoff`).
The engine that uses it is :mod:`chatnb.realtime`.

What the stream does not take from a server: a line or an event over the decoder's caps, a connection
that does not open with ``realTimeNotificationConnected`` within ``timeout`` seconds (one that sends only
keep-alives), a wait (``Retry-After``, ``retry:``) longer than :data:`~chatnb._retry.MAX_SERVER_WAIT`.
The first two drop the connection (the stream reconnects, with a growing backoff); the wait is cut to the
cap. An event whose payload does not decode is skipped (logged as a :class:`~chatnb.DecodingError`).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import AsyncGenerator, AsyncIterator
from typing import cast

import httpx

from ._core import RetryPolicy, normalize_endpoint, resolve_verify
from ._retry import Backoff, parse_retry_after, seconds_text
from ._sse import MAX_EVENT, MAX_LINE, SSEDecoder, SSEMessage, ascii_int
from ._timeout import bounded
from .aio._sender import Auth, BearerAuth, Sender, open_http
from .errors import (
    DecodingError,
    RefusedAnswerError,
    StreamUnavailable,
    TransportError,
    error_from_response,
    refused_answer,
    safe_reason,
)
from .events import (
    EVENT_NAMES,
    Event,
    RealTimeNotificationConnected,
    RealTimeNotificationDisconnected,
    parse_event,
)

__all__ = [
    "MAX_EVENT",
    "MAX_LINE",
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


# -- what the poller shares ----------------------------------------------------------------------


def open_sender(
    endpoint: str,
    auth: Auth,
    connection_verify: bool | str | ssl.SSLContext | None,
    transport: httpx.AsyncBaseTransport | None,
    timeout: httpx.Timeout,
    retry_policy: RetryPolicy | None = None,
    limit: object = None,
) -> Sender:
    """A :class:`Sender` over a new ``httpx.AsyncClient`` trusting what the chatnb clients trust (the
    emulator's CA by default), authorised by ``auth``, each attempt within ``timeout``
    (:func:`~chatnb._transport.attempt_budget`); close its ``http`` when done."""
    verify = resolve_verify(normalize_endpoint(endpoint), connection_verify)
    http = open_http(verify, timeout, transport)
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
        timeout: seconds from a connect to its ``realTimeNotificationConnected`` event (the answer's
            headers included): a connection that does not get there (a server sending only keep-alives)
            is dropped, and the stream reconnects.
        max_auth_failures: 401 answers in a row before the refusal is raised.

    A line or an event over the decoder's caps (:data:`~chatnb._sse.MAX_LINE`,
    :data:`~chatnb._sse.MAX_EVENT`) drops the connection too; waits asked by the server are cut to
    :data:`~chatnb._retry.MAX_SERVER_WAIT`.

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
        timeout: float | None = 10.0,
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
        self._timeout = timeout
        self._max_auth_failures = max_auth_failures
        self.last_event_id: int | None = None if last_event_id is None else int(last_event_id)
        self.retry_field: float | None = None
        """The server's reconnection time (its ``retry:`` field), in seconds, once it sent one."""
        self.connected = False
        self.reconnects = 0
        self.duplicates = 0
        self.undecodable = 0
        """Events skipped because their payload did not decode."""

    def __aiter__(self) -> AsyncGenerator[Event, None]:
        return self._run()

    async def _run(self) -> AsyncGenerator[Event, None]:
        attempt = auth_failures = refusals = 0
        timeout = httpx.Timeout(self._timeout, read=self._read_timeout)
        sender = open_sender(
            self._endpoint, BearerAuth(self._credential), self._verify, self._transport, timeout
        )
        loop = asyncio.get_running_loop()
        async with sender.http:
            while True:
                reason = "the server ended the stream"
                asked: float | None = None
                refused = False
                until = None if self._timeout is None else loop.time() + self._timeout
                try:
                    request = stream_request(self.url, self.last_event_id)
                    async with sender.stream(request, budget=self._timeout) as response:
                        status = response.status_code
                        content_type = response.headers.get("content-type", "")
                        if status == 200 and content_type.startswith("text/event-stream"):
                            auth_failures = 0
                            async for event in self._read(response, until):
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
                    reason = safe_reason(exc.__cause__ or exc)
                except httpx.TransportError as exc:  # the connection broke while the body was read
                    reason = safe_reason(exc)
                except RefusedAnswerError as exc:  # over a cap, or no connected event in time: drop it
                    reason, refused = str(exc), True
                    log.warning("event stream: %s; reconnecting", reason)
                if self.connected:
                    self.connected = False
                    yield RealTimeNotificationDisconnected(reason=reason)
                # a server that breaks the stream's bounds again and again gets a growing backoff, even
                # though each of its connections may have opened with a connected event
                refusals = refusals + 1 if refused else 0
                attempt = max(attempt, refusals)
                # What the server asked for is a minimum (a server answering 503 with "Retry-After: 0"
                # again and again must not turn the reconnect loop into a busy loop): the Retry-After of
                # this refusal, else the stream's standing reconnection time (its retry: field); never
                # more than the backoff's cap (MAX_SERVER_WAIT).
                floor = asked if asked is not None or not self._honour_retry_field else self.retry_field
                if floor is not None and floor > self._backoff.floor_cap:
                    log.warning(
                        "event stream: the server asked to wait %s s before reconnecting; chatnb waits at "
                        "most %s s",
                        seconds_text(floor),
                        seconds_text(self._backoff.floor_cap),
                    )
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

    async def _chunks(self, response: httpx.Response, until: float | None) -> AsyncIterator[str]:
        """The text of ``response`` as it comes; until the connected event (``self.connected``), the
        whole of it by the loop time ``until`` (``None``: no limit).

        Raises:
            RefusedAnswerError: no connected event by ``until``.
        """
        loop = asyncio.get_running_loop()
        chunks = cast(AsyncGenerator[str, None], response.aiter_text())  # httpx's is a generator
        try:
            while True:
                try:
                    if self.connected or until is None:
                        chunk = await chunks.__anext__()
                    else:
                        chunk = await bounded(max(0.0, until - loop.time()), chunks.__anext__())
                except StopAsyncIteration:
                    return
                except asyncio.TimeoutError:
                    raise refused_answer(
                        None,
                        f"the event stream sent no {RealTimeNotificationConnected.kind} event within "
                        f"{self._timeout or 0:g} s of connecting (nothing else, or only keep-alives)",
                    ) from None
                yield chunk
        finally:
            await chunks.aclose()

    async def _read(self, response: httpx.Response, until: float | None) -> AsyncIterator[Event]:
        decoder = SSEDecoder()
        gap = False
        async for chunk in self._chunks(response, until):
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
                    resumed = ascii_int(message.id)
                    if resumed is not None:
                        self.last_event_id = resumed  # below ours only if the journal was reset
                    self.connected = True
                    yield RealTimeNotificationConnected(
                        last_event_id=None if resumed is None else str(resumed), mode="push", journal_gap=gap
                    )
                    continue
                event_id = ascii_int(message.id)
                if event_id is not None:
                    if self.last_event_id is not None and event_id <= self.last_event_id:
                        self.duplicates += 1
                        continue
                    self.last_event_id = event_id
                event = self._event(message, event_id)
                if event is not None:
                    yield event

    def _event(self, message: SSEMessage, event_id: int | None) -> Event | None:
        """The event of ``message``, or ``None`` to skip it: an unknown type (a newer emulator's) is
        skipped quietly, a payload that does not decode is logged as a :class:`~chatnb.DecodingError`."""
        if message.event not in EVENT_NAMES:
            log.debug("event stream: skipping an event of unknown type %.100r", message.event)
            return None
        try:
            return parse_event(message.event, message.data, event_id=event_id)
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError, RecursionError) as exc:
            self.undecodable += 1
            error = DecodingError(
                f"the event stream sent a {message.event} event whose payload is not the JSON expected "
                f"({type(exc).__name__}); skipped"
            )
            log.warning("event stream: %s", error)
            return None
