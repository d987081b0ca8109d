"""The sans-I/O core: builds every request, parses every response, decides every retry.

Nothing here sends anything. An operation is a :class:`Call` (one ``httpx.Request`` plus the function
that turns its response into a result or raises the typed error) or a :class:`Paged` listing (the first
request, and how to turn each page into items, the next request, models and a DataFrame). The sync
client (:mod:`chatnb.client`) and the async one (:mod:`chatnb.aio`) only authorise and send these, so the
two behave the same by construction.

This module holds what every API family shares: retries, transport settings, argument checks, ``Call``,
``Paged`` and response parsing. The request builders are per family: :mod:`chatnb._chat_ops` (Chat:
``ChatOperations``, ``ThreadOperations``) and :mod:`chatnb._identity_ops` (Identity:
``IdentityOperations``).
"""

from __future__ import annotations

import email.utils
import json
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Generic, TypeVar
from urllib.parse import urlsplit

import httpx
import pandas as pd

from ._time import format_rfc3339, parse_rfc3339, to_us
from .errors import ChatError, error_from_response
from .paging import MessagePage

__all__ = [
    "CHAT_API_VERSION",
    "DEFAULT_PAGE_SIZE",
    "IDENTITY_API_VERSION",
    "METADATA_API_VERSION",
    "Call",
    "Json",
    "Paged",
    "RetryPolicy",
    "message_page",
    "normalize_endpoint",
    "parse_connection_string",
    "parse_retry_after",
    "resolve_timeout",
    "resolve_verify",
]

CHAT_API_VERSION = "2024-03-07"
METADATA_API_VERSION = "2025-03-15"
IDENTITY_API_VERSION = "2023-10-01"
DEFAULT_PAGE_SIZE = 200
DEFAULT_TIMEOUT = 30.0
USER_AGENT = "chatnb/0.1.0 (+httpx)"

T = TypeVar("T")
M = TypeVar("M")
Json = dict[str, Any]


# -- retries -----------------------------------------------------------------------------------


def parse_retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds a response asks to wait: ``retry-after-ms``, ``x-ms-retry-after-ms``, or ``Retry-After``
    in seconds or as an HTTP-date. ``None`` when it does not say (or says nonsense)."""
    for name in ("retry-after-ms", "x-ms-retry-after-ms"):
        value = headers.get(name)
        if value is not None:
            try:
                return max(0.0, float(value) / 1000)
            except ValueError:
                pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


@dataclass(frozen=True)
class RetryPolicy:
    """When to retry: only 429 and 503 (nothing else is retried), at most ``max_retries`` times.

    The wait honours the response's ``Retry-After`` (seconds or HTTP-date); without one it backs off
    exponentially, ``backoff_factor * 2**n`` capped at ``backoff_max``. A retry that would take the total
    wait past ``max_total_wait`` is not made: the 429/503 is raised as ``RateLimitError`` /
    ``ServiceUnavailableError`` with its ``retry_after``.

    >>> ChatClient(endpoint, credential, retry_policy=RetryPolicy(max_retries=0))  # never retry
    """

    max_retries: int = 6
    backoff_factor: float = 0.5
    backoff_max: float = 30.0
    max_total_wait: float = 120.0
    statuses: frozenset[int] = field(default=frozenset({429, 503}))

    def next_delay(self, response: httpx.Response, retries: int, waited: float) -> float | None:
        """Seconds to wait before retrying ``response``'s request, or ``None`` to stop and return it."""
        if response.status_code not in self.statuses or retries >= self.max_retries:
            return None
        delay = parse_retry_after(response.headers)
        if delay is None:
            delay = min(self.backoff_max, self.backoff_factor * (2**retries))
        if waited + delay > self.max_total_wait:
            return None
        return delay


# -- transport settings ------------------------------------------------------------------------


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


# -- argument checks ---------------------------------------------------------------------------


def _text(value: object, name: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, not {type(value).__name__}")
    if not value.strip():
        raise ValueError(f"{name} must not be empty")
    return value


def _optional_text(value: object, name: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise TypeError(f"{name} must be a string, not {type(value).__name__}")
    return value


def _metadata(value: object, name: str = "metadata") -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise TypeError(f"{name} must be a dict of str to str")
    return dict(value)


def _count(value: object, name: str, minimum: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}")
    return value


def _start_time(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            return format_rfc3339(to_us(parse_rfc3339(value)))
        except ValueError:
            raise ValueError(f"start_time is not an RFC 3339 date-time: {value!r}") from None
    if not isinstance(value, datetime):
        raise TypeError(f"start_time must be a datetime, not {type(value).__name__}")
    return format_rfc3339(to_us(value))


# -- requests and responses ---------------------------------------------------------------------


def _check(response: httpx.Response) -> None:
    if not response.is_success:
        raise error_from_response(response, parse_retry_after(response.headers))


def _json(response: httpx.Response) -> Json:
    _check(response)
    if not response.content:
        return {}
    body = response.json()
    if not isinstance(body, dict):
        raise ChatError(f"the service sent a {type(body).__name__} where a JSON object was expected")
    return body


def _nothing(response: httpx.Response) -> None:
    _check(response)


@dataclass(frozen=True)
class Call(Generic[T]):
    """One request and the parser of its response."""

    request: httpx.Request
    parse: Callable[[httpx.Response], T]


@dataclass(frozen=True)
class Paged(Generic[M]):
    """A listing: its first request; each page gives wire items and the next request (from
    ``nextLink``, used verbatim: it already carries the api-version and continuation)."""

    request: httpx.Request
    model: Callable[[Json], M]
    frame: Callable[[list[Json]], pd.DataFrame]

    def page(self, response: httpx.Response) -> tuple[list[Json], httpx.Request | None]:
        body = _json(response)
        items = body.get("value")
        if not isinstance(items, list):
            raise ChatError("the service sent a listing page without a 'value' array")
        link = body.get("nextLink")
        if not link:
            return items, None
        return items, self.follow(str(link))

    def follow(self, link: str) -> httpx.Request:
        """The request for ``link`` (a ``nextLink``: absolute, or relative to the first request)."""
        url = httpx.URL(link)
        if not url.is_absolute_url:
            url = self.request.url.join(link)
        headers = {k: v for k, v in self.request.headers.items() if k.lower() in ("accept", "user-agent")}
        return httpx.Request("GET", url, headers=headers)

    def resume(self, continuation_token: object) -> Paged[M]:
        """This listing continued from ``continuation_token`` (the ``nextLink`` of an earlier page of
        the same listing: same endpoint and path) instead of from its first page.

        Raises:
            TypeError, ValueError: if the token is not a string, or points elsewhere (a token is sent
                with the credential, so it must not lead to another host or resource).
        """
        if not isinstance(continuation_token, str):
            raise TypeError(f"continuation_token must be a string, not {type(continuation_token).__name__}")
        if not continuation_token.strip():
            raise ValueError("continuation_token must not be empty (the last page has None: nothing more)")
        try:
            request = self.follow(continuation_token)
        except httpx.InvalidURL:
            raise ValueError("continuation_token is not a link of this listing") from None
        if _resource(request.url) != _resource(self.request.url):
            raise ValueError("continuation_token is not a link of this listing (another endpoint or thread)")
        return Paged(request, self.model, self.frame)


def _resource(url: httpx.URL) -> tuple[str, str, int | None, str]:
    return url.scheme, url.host, url.port, url.path


def message_page(items: list[Json], next_request: httpx.Request | None) -> MessagePage:
    """A :class:`~chatnb.MessagePage` of one answer of a message listing."""
    return MessagePage(items, None if next_request is None else str(next_request.url))


class _Requests:
    def __init__(self, endpoint: str, api_version: str) -> None:
        self.endpoint = normalize_endpoint(endpoint)
        self.api_version = api_version

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        api_version: str | None = None,
    ) -> httpx.Request:
        query = {k: v for k, v in (params or {}).items() if v is not None}
        query["api-version"] = api_version or self.api_version
        all_headers = {"Accept": "application/json", "User-Agent": USER_AGENT, **(headers or {})}
        content = None
        if body is not None:
            content = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
            all_headers["Content-Type"] = "application/json"
        return httpx.Request(method, self.endpoint + path, params=query, content=content, headers=all_headers)

    def _modern(self, needed: bool) -> str:
        return max(self.api_version, METADATA_API_VERSION) if needed else self.api_version
