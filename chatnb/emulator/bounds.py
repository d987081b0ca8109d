"""The emulator's resource bounds, and the ASGI guard every request passes first.

:class:`ServerLimits` gathers every bound on what a client can make the server hold: bytes (request
head and body, the database), time (TLS handshake, request head, body, idle keep-alive, storage waits)
and connections (in all, and event streams per user). The HTTP protocol
(:mod:`chatnb.emulator.protocol`) enforces the connection-level ones; :class:`RequestGuard`, the
outermost ASGI middleware, the request-level ones:

- the body is read here, streamed and counted, before anything else looks at the request (rate limits,
  authentication, handlers): a declared ``Content-Length`` over ``max_body_bytes`` is refused at once and
  a chunked body as soon as it passes the cap (413, the ACS error body); a body that is not complete
  within ``body_timeout`` gets 408. Handlers find the whole body in the scope (:func:`buffered_body`).
- an exception that escapes the application is logged and answered 500 with the ACS error body, and the
  keep-alive connection stays usable (Starlette's own error middleware re-raises, and uvicorn then drops
  the connection).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from .._timeout import bounded
from .errors import PayloadTooLarge, RequestTimeout, ServiceError

__all__ = [
    "BODY_KEY",
    "ASGIApp",
    "Receive",
    "RequestGuard",
    "Scope",
    "Send",
    "ServerLimits",
    "buffered_body",
    "reply",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

BODY_KEY = "chatnb.body"
log = logging.getLogger("chatnb.emulator")


@dataclass(frozen=True)
class ServerLimits:
    """Bounds on what one client can make the emulator hold. Sizes in bytes, times in seconds.

    Args:
        max_body_bytes: largest request body (413 above it).
        max_head_bytes: largest request line plus headers (431 above it).
        header_timeout: time a connection has to send a complete request head, from the end of the TLS
            handshake or from its first byte after an idle keep-alive pause (then 408 and closed).
        body_timeout: time a request has to send its whole body once its head is in (408).
        handshake_timeout: time a client has to complete the TLS handshake.
        keep_alive_timeout: time an idle keep-alive connection is kept open.
        drain_bytes: request-body bytes still read and discarded after an early answer (such as a 413),
            so that the client can read that answer; then the connection is closed.
        max_connections: open connections; at the cap a new connection displaces the one that has waited
            longest for a request head (an idle or unfinished one), or is refused with 503 if there is
            none. Never more than the process's open-file limit leaves room for.
        max_streams_per_user: event streams one user may hold open at once (429 beyond).
        storage_timeout: longest wait for the database before a 503 with ``Retry-After``.
        max_database_bytes: largest the database may grow (writes beyond answer 503); ``None``: no cap.
    """

    max_body_bytes: int = 1024 * 1024
    max_head_bytes: int = 32 * 1024
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    handshake_timeout: float = 10.0
    keep_alive_timeout: int = 30
    drain_bytes: int = 8 * 1024 * 1024
    max_connections: int = 512
    max_streams_per_user: int = 16
    storage_timeout: float = 2.0
    max_database_bytes: int | None = None

    def __post_init__(self) -> None:
        numbers = {k: v for k, v in vars(self).items() if v is not None}
        bad = [
            k for k, v in numbers.items() if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0
        ]
        if bad:
            raise ValueError(f"ServerLimits.{bad[0]} must be a positive number, not {numbers[bad[0]]!r}")


def buffered_body(scope: Scope) -> bytes:
    """The request body :class:`RequestGuard` read.

    Raises:
        RuntimeError: if the request did not pass through the guard.
    """
    body = scope.get(BODY_KEY)
    if not isinstance(body, bytes):
        raise RuntimeError("the request body was not read by RequestGuard")
    return body


async def reply(send: Send, error: ServiceError, headers: dict[str, str] | None = None) -> None:
    """Answer with ``error``'s ACS error body and status."""
    body = json.dumps(error.body()).encode()
    raw = [
        (b"content-type", b"application/json; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        *((k.lower().encode(), v.encode("latin-1")) for k, v in {**error.headers, **(headers or {})}.items()),
    ]
    await send({"type": "http.response.start", "status": error.status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class RequestGuard:
    """Reads and caps the body before ``app`` runs, and answers what ``app`` fails to answer."""

    def __init__(self, app: ASGIApp, *, limits: ServerLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            body = await self._read_body(scope, receive)
        except ServiceError as error:
            await reply(send, error)
            return
        if body is None:
            return  # the client went away before its body was in; nothing would read the answer
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if delivered:
                return await receive()  # what follows the body: http.disconnect
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app({**scope, BODY_KEY: body}, replay, watch)
        except Exception:
            log.exception("emulator bug while serving %s %s", scope.get("method"), scope.get("path"))
            if not started:  # a generic message: no stack trace, no request data
                await reply(send, ServiceError("The emulator failed unexpectedly."))

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes | None:
        cap = self.limits.max_body_bytes
        too_large = PayloadTooLarge(f"The request body is over {cap} bytes.")
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.strip().isdigit() and int(value) > cap:
                raise too_large
        deadline = time.monotonic() + self.limits.body_timeout
        chunks: list[bytes] = []
        size = 0
        while True:
            try:
                message = await bounded(max(0.0, deadline - time.monotonic()), receive())
            except asyncio.TimeoutError:
                raise RequestTimeout(
                    f"The request body did not arrive within {self.limits.body_timeout:g} s."
                ) from None
            if message["type"] != "http.request":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > cap:
                raise too_large
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)
