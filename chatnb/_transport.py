"""Transport settings of every client, the poller and the event stream: the endpoint, TLS trust, the
timeout, and the deadline of one attempt.

A client's ``timeout`` is the whole budget of one attempt (connecting, sending, and reading the answer to
its last byte), not a limit per read: :func:`attempt_budget` says how long, and the one sender
(:mod:`chatnb.aio._sender`) enforces it, so a server that drips a byte every second cannot stretch a
``timeout=2`` call. A retry after a 429/503 is a new attempt with a new budget (the waits between them
are the retry policy's).
"""

from __future__ import annotations

import ssl
from pathlib import Path
from urllib.parse import urlsplit

import httpx

__all__ = [
    "DEFAULT_TIMEOUT",
    "attempt_budget",
    "deadline_message",
    "normalize_endpoint",
    "parse_connection_string",
    "resolve_timeout",
    "resolve_verify",
]

DEFAULT_TIMEOUT = 30.0


def normalize_endpoint(endpoint: object) -> str:
    """``endpoint`` with a scheme (https by default) and without a trailing slash.

    Raises:
        TypeError, ValueError: if it is not a URL string with a host.
    """
    if not isinstance(endpoint, str):
        raise TypeError(f"endpoint must be a URL string, not {type(endpoint).__name__}")
    text = endpoint.strip()
    if not text:
        raise ValueError("endpoint must not be empty")
    if "://" not in text:
        text = "https://" + text
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"endpoint is not an http(s) URL: {endpoint!r}")
    return f"{parts.scheme}://{parts.netloc}{parts.path}".rstrip("/")


def resolve_verify(endpoint: str, connection_verify: object) -> bool | ssl.SSLContext:
    """What httpx should verify TLS with.

    ``True`` (the system's trust store), ``False``, a CA bundle path or an ``ssl.SSLContext``; ``None``
    means: the certificate of the chatnb emulator serving ``endpoint`` on this machine (any location, in
    memory too: the registry of :mod:`chatnb.location`), else the system's trust store. Unless it is an
    ``SSLContext``, a certificate failure against a local endpoint names the PEM to use.

    Raises:
        ValueError: if the path is not a file; TypeError: for anything else.
    """
    if connection_verify is False or isinstance(connection_verify, ssl.SSLContext):
        return connection_verify
    from .location import trust

    if connection_verify is None or connection_verify is True:
        return trust(endpoint, system=connection_verify is True)
    if isinstance(connection_verify, str | Path):
        path = Path(connection_verify).expanduser()
        if not path.is_file():
            raise ValueError(f"connection_verify: no CA bundle at {str(path)!r}")
        return trust(endpoint, path)
    raise TypeError("connection_verify must be True, False, a CA bundle path or an ssl.SSLContext")


def resolve_timeout(timeout: object) -> httpx.Timeout:
    """``timeout`` (seconds, an ``httpx.Timeout`` or ``None``) as an ``httpx.Timeout``.

    Raises:
        TypeError, ValueError: for anything else, or a number that is not positive.
    """
    if isinstance(timeout, httpx.Timeout):
        return timeout
    if timeout is None or (isinstance(timeout, int | float) and not isinstance(timeout, bool)):
        if timeout is not None and timeout <= 0:
            raise ValueError("timeout must be positive")
        return httpx.Timeout(timeout)
    raise TypeError("timeout must be a number of seconds, an httpx.Timeout or None")


def parse_connection_string(connection_string: object) -> tuple[str, str]:
    """``(endpoint, access_key)`` of ``endpoint=...;accesskey=...``.

    Raises:
        ValueError: if either part is missing (the message never repeats the key).
    """
    if not isinstance(connection_string, str):
        raise TypeError("the connection string must be a string")
    parts: dict[str, str] = {}
    for segment in connection_string.split(";"):
        name, sep, value = segment.partition("=")
        if sep:
            parts[name.strip().lower()] = value.strip()
    endpoint, key = parts.get("endpoint"), parts.get("accesskey")
    if not endpoint or not key:
        raise ValueError("a connection string looks like 'endpoint=https://...;accesskey=<base64 key>'")
    return endpoint, key


def attempt_budget(timeout: httpx.Timeout | dict[str, float | None]) -> float | None:
    """Seconds one attempt may take in all under ``timeout`` (an ``httpx.Timeout``, or the dict of a
    request's ``timeout`` extension): its longest part (a number ``t`` gives ``httpx.Timeout(t)``: ``t``).
    ``None`` (no deadline) when reads are unbounded (``timeout=None``)."""
    parts = timeout if isinstance(timeout, dict) else timeout.as_dict()
    if parts.get("read") is None:
        return None
    return max(value for value in parts.values() if value is not None)


def deadline_message(seconds: float) -> str:
    """What a timeout error says when an attempt used up its budget."""
    return f"no complete answer within the {seconds:g} s timeout (the budget of the whole attempt)"
