"""uvicorn's httptools HTTP/1.1 protocol with the connection bounds uvicorn lacks.

uvicorn closes idle keep-alive connections, but not a connection that never finishes its request head
(slowloris) nor one that goes quiet right after the TLS handshake, and it buffers a request head of any
size. :class:`GuardedProtocol` adds, from :class:`~chatnb.emulator.bounds.ServerLimits`:

- a request-head deadline (``header_timeout``) from the handshake, or from the first byte after an
  idle pause; a connection that misses it is closed (with a 408 if it had started a request);
- a request-head size cap (``max_head_bytes``): 431 with the ACS error body, and closed;
- a connection cap (``max_connections``, lowered to what the open-file limit leaves room for): at the
  cap a new connection displaces the one that has waited longest for a request head, or, when every
  connection is busy serving a request, is refused with 503 and closed;
- a drain budget (``drain_bytes``, ``header_timeout``): after an early answer such as a 413, the rest of
  the body is read and discarded so the client can read the answer, up to the budget; then closed.

Rejections carry the ACS error body and close the connection the way nginx's lingering close does: what
the client still sends is read and discarded (up to ``drain_bytes``) until it has been quiet for
:data:`LINGER_S`, so that closing with unread data (a TCP reset) cannot destroy the answer before the
client reads it. :class:`BoundedServer` is uvicorn's server with the TLS handshake
deadline (``handshake_timeout``) on its listening sockets and a prompt shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import resource
import socket
from collections.abc import Callable, Iterator
from http import HTTPStatus
from typing import Any, ClassVar

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .. import location as _location
from ..location import LocationError, PortInUse
from .bounds import ServerLimits
from .errors import HeadersTooLarge, RequestTimeout, ServiceError, ServiceUnavailable
from .stream import EVENTS_PATH

__all__ = [
    "LINGER_S",
    "BoundedServer",
    "GuardedProtocol",
    "bind_listener",
    "connection_cap",
    "protocol_class",
]

_FD_RESERVE = 64  # files the process needs besides its connections: the database, logs, the listeners
LINGER_S = 1.0


def bind_listener(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port``.

    Raises:
        PortInUse: if another program holds the port; LocationError: if ``host`` is not this machine's.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            holder = _location.find(f"https://{f'[{host}]' if ':' in host else host}:{port}")
            who = "another program"
            if holder is not None:
                who = f"the chatnb emulator of {holder.get('location') or 'memory'} (pid {holder['pid']})"
            raise PortInUse(f"port {port} on {host} is in use by {who}; choose another port") from None
        reason = exc.strerror or str(exc)
        raise LocationError(
            f"cannot listen on {host}:{port}: {reason} (use an address of this machine, such as 127.0.0.1)"
        ) from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def connection_cap(limits: ServerLimits) -> int:
    """``max_connections``, lowered so the connections leave the process some files of its own."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return limits.max_connections
    return max(1, min(limits.max_connections, soft - _FD_RESERVE))


def _raw_response(error: ServiceError) -> bytes:
    body = json.dumps(error.body()).encode()
    head = [
        f"HTTP/1.1 {error.status} {HTTPStatus(error.status).phrase}",
        "content-type: application/json; charset=utf-8",
        f"content-length: {len(body)}",
        *(f"{k}: {v}" for k, v in error.headers.items()),
        "connection: close",
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


class GuardedProtocol(HttpToolsProtocol):
    """One HTTP/1.1 connection, bounded in time, size and number (see the module docstring).

    ``limits``, ``cap`` and ``live`` (the open connections of every listener the class serves, HTTPS and
    HTTP alike) are set on the subclass :func:`protocol_class` makes for an emulator.
    """

    limits: ClassVar[ServerLimits] = ServerLimits()
    cap: ClassVar[int] = ServerLimits.max_connections
    live: ClassVar[set[GuardedProtocol]] = set()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # "head": waiting for a request head; "busy": serving one; "drain": discarding the rest of a body
        # answered early; "closing": rejected, discarding everything until quiet
        self._phase = "head"
        self._waiting_since = 0.0
        self._head_bytes = 0
        self._timer: asyncio.TimerHandle | None = None
        self._drained = 0

    # -- connection --------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.live.add(self)
        if len(self.live) > self.cap and not self._evict_one():
            self._reject(
                ServiceUnavailable(
                    "The emulator is at its connection limit; retry later.", headers={"Retry-After": "1"}
                )
            )
            return
        self._await_head(arm=True)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()
        self.live.discard(self)
        super().connection_lost(exc)

    def _evict_one(self) -> bool:
        """Close the connection that has waited longest for a request head; ``False`` if none waits."""
        waiting = [c for c in self.live if c is not self and c._phase == "head"]
        if not waiting:
            return False
        oldest = min(waiting, key=lambda c: c._waiting_since)
        oldest._close()
        oldest.live.discard(oldest)
        return True

    def _reject(self, error: ServiceError) -> None:
        """Answer ``error`` and close, lingering until the client is quiet."""
        if self.transport.is_closing():
            return
        self.transport.write(_raw_response(error))
        self._phase, self._drained = "closing", 0
        self._linger()

    def _linger(self) -> None:
        self._cancel_timer()
        self._timer = self.loop.call_later(LINGER_S, self._close)

    def _close(self) -> None:
        """Close now. Not the graceful TLS close, which would wait up to 30 s for the client's
        ``close_notify`` and keep the file open meanwhile: an answer sent earlier is already with the
        kernel, which still delivers it."""
        self._cancel_timer()
        if not self.transport.is_closing():
            self.transport.abort()

    def timeout_keep_alive_handler(self) -> None:
        self._close()

    # -- timers ------------------------------------------------------------------------------------

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _arm(self) -> None:
        self._cancel_timer()
        self._timer = self.loop.call_later(self.limits.header_timeout, self._on_timeout)

    def _on_timeout(self) -> None:
        self._timer = None
        if self._phase == "head" and self._head_bytes:
            self._reject(
                RequestTimeout(f"The request head did not arrive within {self.limits.header_timeout:g} s.")
            )
        else:
            self._close()

    def _await_head(self, *, arm: bool) -> None:
        """Wait for a request head: with its deadline running (``arm``) or from the first byte on."""
        self._phase, self._head_bytes = "head", 0
        self._waiting_since = self.loop.time()
        if arm:
            self._arm()
        else:
            self._cancel_timer()

    # -- parsing -----------------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self._phase == "closing":
            self._drained += len(data)
            if self._drained > self.limits.drain_bytes:
                self._close()
            else:
                self._linger()
            return
        if self._phase == "head" and self._timer is None:
            self._arm()  # the first byte after an idle keep-alive pause starts the head's deadline
        super().data_received(data)
        if self._phase == "head" and not self.transport.is_closing():  # a head still incomplete
            self._head_bytes += len(data)
            if self._head_bytes > self.limits.max_head_bytes:
                self._reject(HeadersTooLarge(f"The request head is over {self.limits.max_head_bytes} bytes."))

    def on_headers_complete(self) -> None:
        # a head that arrived whole in one read was never counted in data_received: count it here
        size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
        if size > self.limits.max_head_bytes:
            self._reject(HeadersTooLarge(f"The request head is over {self.limits.max_head_bytes} bytes."))
            return
        self._phase = "busy"
        self._cancel_timer()
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if self._phase == "closing":
            return
        if self._phase == "drain":
            self._drained += len(body)
            if self._drained > self.limits.drain_bytes:
                self._close()
            return
        super().on_body(body)

    def on_message_complete(self) -> None:
        if self._phase == "closing":
            return
        if self._phase == "drain":
            self._await_head(arm=False)
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.transport.is_closing() or not self.cycle.response_complete:
            return  # closed, or a pipelined request is being served
        if self.cycle.more_body:  # answered before the whole body arrived: discard the rest, briefly
            self._phase, self._drained = "drain", 0
            self._arm()
        else:
            self._await_head(arm=False)  # uvicorn's keep-alive timer watches the idle connection


def protocol_class(limits: ServerLimits) -> type[GuardedProtocol]:
    """A :class:`GuardedProtocol` subclass bound to ``limits``, for ``uvicorn.Config(http=...)``."""
    bound = {"limits": limits, "cap": connection_cap(limits), "live": set()}
    return type("BoundedProtocol", (GuardedProtocol,), bound)


class BoundedServer(uvicorn.Server):
    """uvicorn's server with a TLS handshake deadline and a prompt, quiet shutdown.

    The listening sockets get ``ssl_handshake_timeout`` (uvicorn leaves asyncio's 60 s): a client that
    connects and never completes the handshake holds its file for ``handshake_timeout`` at most.

    At shutdown, idle keep-alive connections are aborted at once: a graceful TLS close waits for the
    client's ``close_notify``, which the SDKs' pooled connections never send, so every stop used to sit
    out the whole grace period and then log "Cancel 0 running task(s)". The emulator's own event streams
    end too (a stream outliving its server is expected; clients reconnect). Requests in flight keep
    uvicorn's grace period, and its error if they overrun it. Signals are not captured here:
    :meth:`Emulator.serve_forever` handles them, so nothing is re-raised after a clean shutdown.
    """

    def __init__(self, config: uvicorn.Config, handshake_timeout: float) -> None:
        super().__init__(config)
        self.handshake_timeout = handshake_timeout

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        if not sockets:  # pragma: no cover - the emulator always passes its bound sockets
            await super().startup(sockets)
            return
        await self.lifespan.startup()
        config = self.config
        loop = asyncio.get_running_loop()

        make: Callable[..., asyncio.Protocol] = config.http_protocol_class

        def protocol() -> asyncio.Protocol:
            return make(
                config=config, server_state=self.server_state, app_state=self.lifespan.state, _loop=loop
            )

        handshake = self.handshake_timeout if config.ssl else None
        self.servers = [
            await loop.create_server(
                protocol, sock=sock, ssl=config.ssl, backlog=config.backlog, ssl_handshake_timeout=handshake
            )
            for sock in sockets
        ]
        self.started = True

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()
        for connection in list(self.server_state.connections):
            transport = getattr(connection, "transport", None)
            cycle = getattr(connection, "cycle", None)
            if transport is None or transport.is_closing():
                continue
            if cycle is None or cycle.response_complete:
                if transport.get_write_buffer_size() == 0:
                    transport.abort()
            elif cycle.scope.get("path") == EVENTS_PATH:
                transport.abort()
        await super().shutdown(sockets)
