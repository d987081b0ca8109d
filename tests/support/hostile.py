"""Hostile and broken servers for the client tests: a raw HTTP/1.1 server on a free loopback port whose
answers a test writes byte by byte.

:class:`HostileServer` runs an asyncio server in a thread of its own (so that sync and async clients can
talk to it), parses each request's head and body, records it (:attr:`HostileServer.requests`), and hands
it with the connection (:class:`Conn`) to the test's handler, which answers as it likes: a nextLink to
another origin, a page of 10,000 items, a body dripped a byte at a time, an event stream of keep-alives
only, a line of 32 MB without a newline, ``Retry-After: 99999999``... Anything the handler notes goes in
:attr:`HostileServer.notes`, and :meth:`HostileServer.wait` waits for a condition on what it saw (never a
sleep). Leaving the ``with`` block closes every connection and stops the thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chatnb.emulator.certs import ensure_certificate

__all__ = [
    "Conn",
    "HostileServer",
    "Request",
    "chat_client",
    "head",
    "message_item",
    "page_of",
    "sse_response_head",
    "thread_item",
    "thread_properties",
    "tls_pair",
]

HEAD_LIMIT = 64 * 1024


@dataclass
class Request:
    """One request as the server read it (header names lower-cased)."""

    method: str
    target: str
    headers: dict[str, str]
    body: bytes = b""

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]


class Conn:
    """The connection a request came on: write to it, or drip to it; knows when the client left."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: HostileServer
    ) -> None:
        self._reader = reader
        self._writer = writer
        self.server = server
        self.sent = 0
        """Bytes written (and drained) before the client went away."""
        self.gone = False

    async def send(self, data: bytes) -> bool:
        """Write ``data``; ``False`` once the client has closed the connection."""
        if self.gone:
            return False
        try:
            self._writer.write(data)
            await self._writer.drain()
        except (ConnectionError, OSError):
            self.gone = True
            return False
        self.sent += len(data)
        return True

    async def drip(self, data: bytes, interval: float, step: int = 1) -> int:
        """Write ``data`` ``step`` bytes at a time, ``interval`` seconds apart, until done or the client
        leaves; the bytes written."""
        written = 0
        for start in range(0, len(data), step):
            if not await self.send(data[start : start + step]):
                break
            written += min(step, len(data) - start)
            await asyncio.sleep(interval)
        return written

    async def respond(
        self, status: int, body: bytes = b"", headers: dict[str, str] | None = None, *, close: bool = True
    ) -> bool:
        """A whole answer (``Connection: close`` unless ``close=False``: then :meth:`next_request`)."""
        return await self.send(head(status, headers, len(body), close=close) + body)

    async def next_request(self) -> Request | None:
        """The next request on this (kept-alive) connection, recorded; ``None`` if the client closed it."""
        request = await _read_request(self._reader)
        if request is not None:
            self.server.record(request)
        return request

    async def hold(self) -> None:
        """Keep the connection open until the client closes it (or the server stops)."""
        with contextlib.suppress(ConnectionError, OSError):
            while await self._reader.read(65536):
                pass
        self.gone = True


REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 429: "Too Many Requests", 503: "Unavailable"}


def head(
    status: int, headers: dict[str, str] | None = None, length: int | None = None, *, close: bool = True
) -> bytes:
    """A status line and headers (``Connection: close`` unless ``close=False``; ``Content-Length`` when
    ``length`` is given)."""
    lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}"]
    if close:
        lines.append("Connection: close")
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if length is not None:
        lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


JSON = {"Content-Type": "application/json"}


def page_of(items: list[Any], next_link: str | None = None) -> bytes:
    """A listing page's JSON body."""
    body: dict[str, Any] = {"value": items}
    if next_link is not None:
        body["nextLink"] = next_link
    return json.dumps(body).encode()


def message_item(seq: int) -> dict[str, Any]:
    """A text message as the service lists it."""
    sender = {"rawId": "8:acs:someone", "communicationUser": {"id": "8:acs:someone"}}
    return {
        "id": str(1000 + seq),
        "type": "text",
        "sequenceId": str(seq),
        "version": str(1000 + seq),
        "content": {"message": f"message {seq}"},
        "senderDisplayName": "Someone",
        "createdOn": "2024-05-01T12:00:00Z",
        "senderCommunicationIdentifier": sender,
    }


def thread_item(n: int) -> dict[str, Any]:
    """A thread as ``GET /chat/threads`` lists it."""
    return {
        "id": f"19:t{n}@thread.v2",
        "topic": f"topic {n}",
        "lastMessageReceivedOn": "2024-05-01T12:00:00Z",
    }


def thread_properties(thread_id: str) -> dict[str, Any]:
    """``GET /chat/threads/{id}``'s answer."""
    creator = {"rawId": "8:acs:someone", "communicationUser": {"id": "8:acs:someone"}}
    return {
        "id": thread_id,
        "topic": "hostile",
        "createdOn": "2024-05-01T12:00:00Z",
        "createdByCommunicationIdentifier": creator,
    }


def chat_client(flavour: str, endpoint: str, token: object, **kwargs: Any) -> Any:
    """A ``chatnb.ChatClient`` (``flavour="sync"``) or a ``chatnb.aio.ChatClient`` (``"async"``)."""
    import chatnb
    import chatnb.aio

    cls = chatnb.aio.ChatClient if flavour == "async" else chatnb.ChatClient
    return cls(endpoint, token, **kwargs)


def sse_response_head() -> bytes:
    """The head of an event-stream answer (no length: the body goes on until the connection closes)."""
    return head(200, {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})


Handler = Callable[[Request, Conn], Awaitable[None]]


@dataclass
class _State:
    requests: list[Request] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)
    connections: int = 0
    errors: list[BaseException] = field(default_factory=list)


class HostileServer:
    """A scripted HTTP/1.1 server on ``host`` (a free port), plain or TLS (``tls``: a server context).

    Args:
        handler: ``await handler(request, conn)`` answers each request; the connection closes after it.
        host: the loopback address to listen on (``127.0.0.2`` is another host than ``127.0.0.1``).
        tls: a server ``ssl.SSLContext`` (:func:`tls_pair`), for ``https``.
    """

    def __init__(
        self, handler: Handler, *, host: str = "127.0.0.1", tls: ssl.SSLContext | None = None
    ) -> None:
        self.handler = handler
        self.host = host
        self.tls = tls
        self.port = 0
        self._state = _State()
        self._changed = threading.Condition()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    @property
    def requests(self) -> list[Request]:
        with self._changed:
            return list(self._state.requests)

    @property
    def notes(self) -> dict[str, Any]:
        with self._changed:
            return dict(self._state.notes)

    @property
    def connections(self) -> int:
        with self._changed:
            return self._state.connections

    def record(self, request: Request) -> None:
        with self._changed:
            self._state.requests.append(request)
            self._changed.notify_all()

    def note(self, name: str, value: Any) -> None:
        """Record ``name = value`` (from a handler) and wake :meth:`wait`."""
        with self._changed:
            self._state.notes[name] = value
            self._changed.notify_all()

    def wait(self, predicate: Callable[[HostileServer], bool], timeout: float = 10.0) -> bool:
        """Wait until ``predicate(self)`` holds (re-checked on every request, connection and note)."""
        with self._changed:
            return self._changed.wait_for(lambda: predicate(self), timeout)

    async def until(self, predicate: Callable[[HostileServer], bool], timeout: float = 10.0) -> bool:
        """:meth:`wait`, from a coroutine (the wait runs in a worker thread)."""
        return await asyncio.to_thread(self.wait, predicate, timeout)

    # -- running --------------------------------------------------------------------------------

    def __enter__(self) -> HostileServer:
        self._thread = threading.Thread(target=self._run, name="hostile-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the hostile server did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(stop.set)
        if self._thread is not None:
            self._thread.join(10)

    def _run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        server = await asyncio.start_server(self._connection, self.host, 0, ssl=self.tls)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        async with server:
            await self._stop.wait()
            server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        with self._changed:
            self._state.connections += 1
            self._changed.notify_all()
        conn = Conn(reader, writer, self)
        try:
            request = await _read_request(reader)
            if request is None:
                return
            self.record(request)
            await self.handler(request, conn)
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError, OSError):
            pass
        except asyncio.CancelledError:
            pass
        except Exception as exc:  # a bug in a handler: the test sees it in errors
            with self._changed:
                self._state.errors.append(exc)
                self._changed.notify_all()
        finally:
            with contextlib.suppress(Exception):
                writer.close()
            if task is not None:
                self._tasks.discard(task)

    @property
    def errors(self) -> list[BaseException]:
        with self._changed:
            return list(self._state.errors)


async def _read_request(reader: asyncio.StreamReader) -> Request | None:
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        return None
    if len(raw) > HEAD_LIMIT:
        return None
    lines = raw.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0") or 0)
    body = await reader.readexactly(length) if length else b""
    return Request(method, target, headers, body)


def tls_pair(directory: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server TLS context for 127.0.0.1 (a self-signed certificate made in ``directory``) and the
    client context that trusts it."""
    cert, key = ensure_certificate(directory)
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert, key)
    client = ssl.create_default_context(cafile=str(cert))
    return server, client
