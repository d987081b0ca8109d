"""The deadline of one attempt for the sync flavour: every socket operation waits at most what is left.

httpx's timeouts are per operation: a read may wait ``read`` seconds, and the next one as long again, so a
server that drips a byte a second keeps a ``timeout=2`` request going for as long as it likes. The async
flavour bounds an attempt with ``asyncio.timeout`` (:func:`chatnb.aio._flavour.within`); a sync call
cannot be cancelled from outside, so here the bound is applied where the waiting happens. :func:`within`
runs an attempt under its deadline (:func:`deadline`: a context variable, so per thread), and the transport of
the sync clients (:func:`default_transport`) connects, reads and writes through a network backend that
never waits past it. Past the deadline an operation raises ``httpcore``'s timeout, which httpx turns into
``httpx.ReadTimeout`` (``ConnectTimeout``, ``WriteTimeout``) and the sender into a
:class:`~chatnb.TransportError` naming the budget.

A transport given by the caller (``transport=...``) is used as it is, and so is the one httpx makes for
a proxy of the environment (``HTTPS_PROXY``): only per-operation timeouts there.
"""

from __future__ import annotations

import contextlib
import ssl
import time
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeVar

import httpcore
import httpx

from ._transport import deadline_message

__all__ = ["deadline", "default_transport", "within"]

T = TypeVar("T")


@dataclass(frozen=True)
class _Deadline:
    end: float  # time.monotonic()
    seconds: float  # the budget, for the message


_DEADLINE: ContextVar[_Deadline | None] = ContextVar("chatnb_deadline", default=None)


@contextlib.contextmanager
def deadline(seconds: float | None) -> Iterator[None]:
    """Socket operations inside end within ``seconds`` from now (``None``: no deadline); a deadline
    already set (an enclosing ``deadline``) is only ever shortened."""
    if seconds is None:
        yield
        return
    mine = _Deadline(time.monotonic() + seconds, seconds)
    current = _DEADLINE.get()
    token = _DEADLINE.set(mine if current is None or mine.end < current.end else current)
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def within(seconds: float | None, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``function(*args, **kwargs)`` (one attempt: connect, send, read the answer) with every socket
    operation of the sync clients' transport ended by the deadline ``seconds`` from now (``None``: no
    deadline).

    Raises:
        httpx.ReadTimeout (ConnectTimeout, WriteTimeout): once the deadline passes.
    """
    with deadline(seconds):
        return function(*args, **kwargs)


def _bounded(timeout: float | None, expired: type[Exception]) -> float | None:
    """``timeout`` (httpx's for this operation) cut to what is left of the deadline.

    Raises:
        expired: if the deadline has passed.
    """
    current = _DEADLINE.get()
    if current is None:
        return timeout
    left = current.end - time.monotonic()
    if left <= 0:
        raise expired(deadline_message(current.seconds))
    return left if timeout is None or left < timeout else timeout


def _bounded_call(
    operation: Callable[[float | None], T], timeout: float | None, expired: type[Exception]
) -> T:
    """``operation(timeout)`` with ``timeout`` cut to the deadline; a timeout after the deadline passed
    says so."""
    try:
        return operation(_bounded(timeout, expired))
    except expired:
        _bounded(0.0, expired)  # past the deadline: raise with its message
        raise


class _Stream(httpcore.NetworkStream):
    """A network stream whose every read and write ends by the deadline."""

    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return _bounded_call(lambda t: self._stream.read(max_bytes, t), timeout, httpcore.ReadTimeout)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        _bounded_call(lambda t: self._stream.write(buffer, t), timeout, httpcore.WriteTimeout)

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        return _Stream(
            _bounded_call(
                lambda t: self._stream.start_tls(ssl_context, server_hostname, t),
                timeout,
                httpcore.ConnectTimeout,
            )
        )

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _Backend(httpcore.NetworkBackend):
    """httpcore's sync backend, its connections bounded by the deadline."""

    def __init__(self) -> None:
        self._backend = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        stream = _bounded_call(
            lambda t: self._backend.connect_tcp(host, port, t, local_address, socket_options),
            timeout,
            httpcore.ConnectTimeout,
        )
        return _Stream(stream)

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        stream = _bounded_call(
            lambda t: self._backend.connect_unix_socket(path, t, socket_options),
            timeout,
            httpcore.ConnectTimeout,
        )
        return _Stream(stream)

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


def default_transport(verify: bool | ssl.SSLContext, limits: httpx.Limits) -> httpx.HTTPTransport:
    """The transport of a sync client, poller or stream: httpx's, over the deadline-bounded backend."""
    context = httpx.create_ssl_context(verify=verify)
    transport = httpx.HTTPTransport(verify=context, limits=limits)
    # httpx builds its connection pool without a way to choose the network backend: build it again,
    # with the same settings as httpx.HTTPTransport, over the deadline-bounded one. Checked, so that an
    # httpx that keeps its pool elsewhere fails here rather than silently losing the deadline.
    if not isinstance(getattr(transport, "_pool", None), httpcore.ConnectionPool):
        raise RuntimeError(
            f"httpx {httpx.__version__} keeps its connection pool elsewhere: chatnb needs httpx<1"
        )
    transport._pool = httpcore.ConnectionPool(
        ssl_context=context,
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        network_backend=_Backend(),
    )
    return transport
