"""The HTTP/1.1 client of Event Grid delivery: asyncio streams, httptools' parser (uvicorn's, already here),
pooled keep-alive connections, TLS by the system's trust store.

Why not httpx, although delivery has a process of its own (:mod:`~chatnb.emulator.gridworker`): that
process makes 50 requests for each message to a thread of 50 members, on cores it shares with the API
and the webhook, and ``httpx.AsyncClient`` cannot keep up. ``bench/bench_eventgrid.py`` runs delivery
through both, side by side, every time (the same contract on httpx: one pooled client, no redirects, no
environment proxies, the system's trust store, at most 64 KiB of an answer streamed). Three runs on 2
cores, December 2026 (httpx 0.28.1, httpcore 1.0.9; the figures are gridclient / httpx):

- deliveries/s, a burst of 10,000: 1,136-1,953 / 151-180 (288 with ``sniffio`` installed: without it,
  which anyio 4.11+ no longer brings, httpcore tries to import it at every lock, encode/httpcore#1103);
- so at 500 deliveries/s (10 messages/s to 50 members) httpx falls behind: send -> webhook p50 6.9-8.2 ms
  / 5.5-9.4 s, growing for as long as the rate lasts;
- the API's send latency meanwhile, p50: 4.2-5.3 ms / 6.2-8.3 ms (3.4-5.6 ms with no Event Grid).

A profile puts httpx's time in httpcore's pool (which looks at every pooled connection for every request)
and anyio's stream wrappers; this client writes a request and feeds an answer to the parser.

What it does not do, on purpose: follow redirects (Event Grid does not), decode compressed answers (only
a handshake's answer is read), proxies, HTTP/2. Nothing an answer holds stays unbounded: a head over
:data:`MAX_HEAD_BYTES` is an error; a body is read up to :data:`MAX_BODY_BYTES` and no further (the
connection is then closed rather than reused). A URL's non-ASCII characters go percent-encoded (UTF-8),
its host by IDNA; no request line or header carries a control character.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import httptools

__all__ = ["MAX_BODY_BYTES", "MAX_HEAD_BYTES", "Answer", "WebhookClient", "WebhookError"]

MAX_BODY_BYTES = 64 * 1024
MAX_HEAD_BYTES = 64 * 1024
_Key = tuple[str, str, int]
_UNSAFE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_NON_ASCII = re.compile(r"[^\x00-\x7f]+")
_UNSAFE_URL = re.compile(r"[\x00-\x20\x7f]")  # urlsplit would quietly drop CR, LF and tab: refuse them


def _ascii(text: str) -> str:
    """``text`` with its non-ASCII characters percent-encoded as UTF-8 (as browsers send them)."""
    return _NON_ASCII.sub(lambda m: quote(m.group()), text)


class WebhookError(OSError):
    """No valid HTTP answer: the connection failed, closed early, or the answer did not parse."""


@dataclass
class Answer:
    """A webhook's answer: status, headers (lower-case names) and up to :data:`MAX_BODY_BYTES` of body."""

    status: int
    headers: dict[str, str]
    body: bytes


class _Reading:
    """One answer being parsed: httptools' parser and the state its callbacks keep."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.headers: dict[str, str] = {}
        self.body = bytearray()
        self.size = 0
        self.head_done = self.done = self.keep_alive = False

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self.head_done = True
        # asked now: once the message is complete the parser has reset what it knew (its Content-Length)
        self.keep_alive = self.parser.should_keep_alive()

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
        if _UNSAFE_URL.search(url):
            raise WebhookError("the URL holds a space or a control character")
        try:  # the host as DNS knows it (IDNA), the port a number
            parts = urlsplit(url)
            hostname, port = (parts.hostname or "").encode("idna").decode("ascii"), parts.port
        except ValueError as exc:  # UnicodeError is one
            raise WebhookError(f"not a valid URL (host or port): {url[:100]!r}") from exc
        if parts.scheme not in ("http", "https") or not hostname:
            raise WebhookError(f"not an http(s) URL: {url[:100]!r}")
        key = (parts.scheme, hostname, port or (443 if parts.scheme == "https" else 80))
        target = _ascii(parts.path or "/") + (f"?{_ascii(parts.query)}" if parts.query else "")
        host = (f"[{hostname}]" if ":" in hostname else hostname) + (f":{port}" if port else "")
        lines = [f"{method} {target} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}"]
        lines += [f"{k}: {v}" for k, v in {**self.headers, **(headers or {})}.items()]
        if any(_UNSAFE.search(line) for line in lines):  # never a second header or request smuggled in
            raise WebhookError("a request line or header holds a control character")
        try:
            raw = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
        except UnicodeEncodeError as exc:
            raise WebhookError("a header holds a character beyond latin-1") from exc
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
        keep, received = False, 0
        try:
            connection.writer.write(raw)
            await connection.writer.drain()
            while not reading.done and reading.size <= MAX_BODY_BYTES:  # beyond: not read, not reused
                if not reading.head_done and received > MAX_HEAD_BYTES:
                    raise WebhookError(f"the webhook's answer has a head over {MAX_HEAD_BYTES} bytes")
                data = await connection.reader.read(65536)
                if not data:
                    if reused and not received:
                        raise _Stale
                    raise WebhookError("the webhook closed the connection before answering in full")
                received += len(data)
                reading.parser.feed_data(data)
            keep = reading.done and reading.keep_alive
            return Answer(reading.parser.get_status_code(), reading.headers, bytes(reading.body))
        except WebhookError:
            raise
        except (OSError, httptools.HttpParserError) as exc:  # OSError: ConnectionError, ssl.SSLError...
            if reused and not received and isinstance(exc, ConnectionError):
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
