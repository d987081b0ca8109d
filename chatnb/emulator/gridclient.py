"""The HTTP/1.1 client of Event Grid delivery: asyncio streams, httptools' parser (uvicorn's, already here),
pooled keep-alive connections, TLS by the system's trust store.

Why not httpx: delivery shares the emulator's process (and its GIL) with the API, so every CPU cycle a
delivery takes is one a request waits for. A message to a thread of 50 members is 50 deliveries; on the
2-core machines CI runs on, ``httpx.AsyncClient`` spent about 2 ms of CPU on each, and the API's send
latency doubled while delivering (``bench/bench_eventgrid.py`` measured it). This client only writes a
request and parses an answer, for a few tens of microseconds.

What it does not do, on purpose: follow redirects (Event Grid does not), decode compressed answers (only
a handshake's answer is read), proxies, HTTP/2. An answer's body is read up to :data:`MAX_BODY_BYTES` and
dropped beyond (the connection is then closed rather than reused).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httptools

__all__ = ["MAX_BODY_BYTES", "Answer", "WebhookClient", "WebhookError"]

MAX_BODY_BYTES = 64 * 1024
_Key = tuple[str, str, int]
_UNSAFE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


class WebhookError(OSError):
    """No valid HTTP answer: the connection failed, closed early, or the answer did not parse."""


@dataclass
class Answer:
    """A webhook's answer: status, headers (lower-case names) and up to :data:`MAX_BODY_BYTES` of body."""

    status: int
    headers: dict[str, str]
    body: bytes


@dataclass
class _Reading:
    """The parser callbacks' state for one answer."""

    headers: dict[str, str] = field(default_factory=dict)
    body: bytearray = field(default_factory=bytearray)
    size: int = 0
    done: bool = False
    name: bytes = b""

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_body(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if len(self.body) < MAX_BODY_BYTES:
            self.body += chunk[: MAX_BODY_BYTES - len(self.body)]

    def on_message_complete(self) -> None:
        self.done = True


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


class WebhookClient:
    """Sends requests to webhooks over pooled keep-alive connections.

    Args:
        headers: sent with every request (``User-Agent``...).
        max_idle: idle connections kept per host.
    """

    def __init__(self, *, headers: dict[str, str] | None = None, max_idle: int = 32) -> None:
        self.headers = dict(headers or {})
        self.max_idle = max_idle
        self._idle: dict[_Key, list[_Connection]] = {}
        self._tls: ssl.SSLContext | None = None

    async def _connect(self, key: _Key) -> _Connection:
        scheme, host, port = key
        if scheme == "https" and self._tls is None:
            self._tls = ssl.create_default_context()
        try:
            reader, writer = await asyncio.open_connection(
                host, port, ssl=self._tls if scheme == "https" else None, limit=2**20
            )
        except (OSError, ssl.SSLError) as exc:
            raise WebhookError(f"cannot connect to {host}:{port}: {exc}") from exc
        return _Connection(reader, writer)

    async def request(
        self, method: str, url: str, headers: dict[str, str] | None = None, body: bytes = b""
    ) -> Answer:
        """``method url`` with ``headers`` and ``body``; the answer (cancel it for a deadline).

        Raises:
            WebhookError: for a URL that is not http(s), a failed connection or an answer that does not
                parse.
        """
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise WebhookError(f"not an http(s) URL: {url[:100]!r}")
        key = (parts.scheme, parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        host = parts.netloc.rsplit("@", 1)[-1]
        lines = [f"{method} {target} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}"]
        lines += [f"{k}: {v}" for k, v in {**self.headers, **(headers or {})}.items()]
        if any(_UNSAFE.search(line) for line in lines):  # never a second header or request smuggled in
            raise WebhookError("a request line or header holds a control character")
        raw = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
        idle = self._idle.get(key) or []
        while idle:  # a kept connection the server may have closed meanwhile: try it, then a new one
            connection = idle.pop()
            try:
                return await self._exchange(key, connection, raw, reused=True)
            except _Stale:
                continue
        return await self._exchange(key, await self._connect(key), raw, reused=False)

    async def _exchange(self, key: _Key, connection: _Connection, raw: bytes, *, reused: bool) -> Answer:
        reading = _Reading()
        parser = httptools.HttpResponseParser(reading)
        keep = False
        try:
            connection.writer.write(raw)
            await connection.writer.drain()
            received = 0
            while not reading.done:
                data = await connection.reader.read(65536)
                if not data:
                    if reused and not received:
                        raise _Stale
                    raise WebhookError("the webhook closed the connection before answering in full")
                received += len(data)
                parser.feed_data(data)
            keep = parser.should_keep_alive() and reading.size <= MAX_BODY_BYTES
            return Answer(parser.get_status_code(), reading.headers, bytes(reading.body))
        except (ConnectionError, httptools.HttpParserError) as exc:
            if reused and isinstance(exc, ConnectionError):
                raise _Stale from exc
            raise WebhookError(f"the webhook's answer failed: {type(exc).__name__}") from exc
        finally:
            if keep and len(self._idle.setdefault(key, [])) < self.max_idle:
                self._idle[key].append(connection)
            else:
                connection.close()

    async def aclose(self) -> None:
        """Close every idle connection."""
        for connections in self._idle.values():
            for connection in connections:
                connection.close()
        self._idle.clear()


class _Stale(Exception):
    """A reused connection turned out closed before any answer: send on a new one."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
