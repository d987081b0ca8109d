"""The sans-I/O core: builds every request, parses every response, decides every retry.

Nothing here sends anything. An operation is a :class:`Call` (one ``httpx.Request`` plus the function
that turns its response into a result or raises the typed error) or a :class:`Paged` listing (the first
request, and how to turn each page into items, the next request, models and a DataFrame). The sync
client (:mod:`chatnb.client`) and the async one (:mod:`chatnb.aio`) only authorise and send these, so the
two behave the same by construction.

This module holds what every API family shares: retries, transport settings (from
:mod:`chatnb._transport`), argument checks, ``Call``, ``Paged`` and response parsing, and what chatnb
accepts of a listing: a page holds at most its page size (:data:`MAX_PAGE_SIZE`), a ``nextLink`` leads
only to the endpoint's scheme, host and port (the token goes with it), and never to a page the listing
has already asked for (:class:`LinkTrail`); anything else is a :class:`~chatnb.RefusedAnswerError`.

The request builders are per family: :mod:`chatnb._chat_ops` (Chat:
``ChatOperations``, ``ThreadOperations``) and :mod:`chatnb._identity_ops` (Identity:
``IdentityOperations``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

import httpx
import pandas as pd

from ._retry import RetryPolicy, parse_retry_after
from ._time import format_rfc3339, parse_rfc3339, to_us
from ._transport import (
    DEFAULT_TIMEOUT,
    attempt_budget,
    normalize_endpoint,
    parse_connection_string,
    resolve_timeout,
    resolve_verify,
)
from .errors import decoding_error, error_from_response, refused_answer
from .paging import MessagePage

__all__ = [
    "CHAT_API_VERSION",
    "DEFAULT_PAGE_SIZE",
    "DEFAULT_TIMEOUT",
    "IDENTITY_API_VERSION",
    "MAX_PAGE_SIZE",
    "METADATA_API_VERSION",
    "Call",
    "Json",
    "LinkTrail",
    "Paged",
    "RequestBuilder",
    "RetryPolicy",
    "attempt_budget",
    "check_count",
    "check_metadata",
    "check_optional_text",
    "check_start_time",
    "check_text",
    "message_page",
    "normalize_endpoint",
    "page_limit",
    "parse_connection_string",
    "parse_empty",
    "parse_json",
    "parse_retry_after",
    "resolve_timeout",
    "resolve_verify",
]

CHAT_API_VERSION = "2024-03-07"
METADATA_API_VERSION = "2025-03-15"
IDENTITY_API_VERSION = "2023-10-01"
DEFAULT_PAGE_SIZE = 200
MAX_PAGE_SIZE = 200
"""The most items the service puts in one page (its documented ``maxPageSize`` limit)."""
USER_AGENT = "chatnb/0.1.0 (+httpx)"

T = TypeVar("T")
M = TypeVar("M")
Json = dict[str, Any]


# -- argument checks ---------------------------------------------------------------------------


def check_text(value: object, name: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, not {type(value).__name__}")
    if not value.strip():
        raise ValueError(f"{name} must not be empty")
    return value


def check_optional_text(value: object, name: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise TypeError(f"{name} must be a string, not {type(value).__name__}")
    return value


def check_metadata(value: object, name: str = "metadata") -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise TypeError(f"{name} must be a dict of str to str")
    return dict(value)


def check_count(value: object, name: str, minimum: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}")
    return value


def check_start_time(value: object) -> str | None:
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


def parse_json(response: httpx.Response) -> Json:
    """The JSON object of a success ``response`` (``{}`` for an empty body).

    Raises:
        APIError: for an error status. DecodingError: for a body that is not a JSON object.
    """
    _check(response)
    if not response.content:
        return {}
    try:
        body = response.json()
    except (ValueError, RecursionError) as exc:  # not JSON, not UTF-8, or nested beyond Python's stack
        raise decoding_error(
            response.request, f"not JSON ({type(exc).__name__})", response.status_code
        ) from None
    if not isinstance(body, dict):
        what = f"a {type(body).__name__} where a JSON object was expected"
        raise decoding_error(response.request, what, response.status_code)
    return body


def parse_empty(response: httpx.Response) -> None:
    """Check a ``response`` whose body does not matter (``204 No Content`` and friends).

    Raises:
        APIError: for an error status.
    """
    _check(response)


_WRONG_SHAPE = (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError, RecursionError)


def _decode(request: httpx.Request, parse: Callable[[Any], T], value: Any) -> T:
    """``parse(value)``, where a body of the wrong shape is a :class:`~chatnb.DecodingError` (named by
    the exception type and a missing key only: the value may be chat content)."""
    try:
        return parse(value)
    except _WRONG_SHAPE as exc:
        detail = f"missing {exc}" if isinstance(exc, KeyError) else type(exc).__name__
        raise decoding_error(request, f"a field is missing or of the wrong type ({detail})") from None


@dataclass(frozen=True)
class Call(Generic[T]):
    """One request and the parser of its response."""

    request: httpx.Request
    parse: Callable[[httpx.Response], T]

    def result(self, response: httpx.Response) -> T:
        """The parsed ``response``.

        Raises:
            APIError: for an error status. DecodingError: for a success body of the wrong shape.
        """
        return _decode(self.request, self.parse, response)


@dataclass(frozen=True)
class Paged(Generic[M]):
    """A listing: its first request; each page gives wire items and the next request (from
    ``nextLink``, used verbatim: it already carries the api-version and continuation)."""

    request: httpx.Request
    model: Callable[[Json], M]
    frame: Callable[[list[Json]], pd.DataFrame]

    def page(self, response: httpx.Response) -> tuple[list[Json], httpx.Request | None]:
        """One answer of the listing: its items (JSON objects) and the request of the next page.

        Raises:
            APIError: for an error status. DecodingError: for a page without a ``value`` array of
                objects, or with a ``nextLink`` that is not a link. RefusedAnswerError: for a page of
                more items than its page size (:func:`page_limit`), or a ``nextLink`` to another scheme,
                host or port than the endpoint's (nothing is sent there).
        """
        body = parse_json(response)
        items = body.get("value")
        if not isinstance(items, list):
            raise decoding_error(
                response.request, "a listing page without a 'value' array", response.status_code
            )
        limit = page_limit(response.request)
        if len(items) > limit:
            problem = f"a page of {len(items)} items, over its page size {limit}"
            raise refused_answer(response.request, problem)
        if not all(isinstance(item, dict) for item in items):
            raise decoding_error(response.request, "a listing page whose items are not all JSON objects")
        link = body.get("nextLink")
        if not link:
            return items, None
        if not isinstance(link, str):
            raise decoding_error(response.request, "a 'nextLink' that is not a string")
        try:
            following = self.follow(link)
        except httpx.InvalidURL:
            raise decoding_error(response.request, "a 'nextLink' that is not a URL") from None
        if _origin(following.url) != _origin(self.request.url):
            raise refused_answer(
                response.request,
                f"its nextLink leads to {_origin_text(following.url)}, not to the endpoint "
                f"{_origin_text(self.request.url)} (chatnb sends the token only to the endpoint)",
            )
        return items, following

    def to_model(self, item: Json) -> M:
        """One item of a page as its model.

        Raises:
            DecodingError: for an item without a required field (or with one of the wrong type).
        """
        return _decode(self.request, self.model, item)

    def models(self, items: list[Json]) -> list[M]:
        """The items of a page as models (see :meth:`to_model`)."""
        return [self.to_model(item) for item in items]

    def to_frame(self, items: list[Json]) -> pd.DataFrame:
        """The listing's items as its DataFrame.

        Raises:
            DecodingError: for an item with a field of the wrong type.
        """
        return _decode(self.request, self.frame, items)

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


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return url.scheme, url.host, url.port or _DEFAULT_PORTS.get(url.scheme)


def _origin_text(url: httpx.URL) -> str:
    scheme, host, port = _origin(url)
    return f"{scheme}://{host[:100]}:{port}"


def _resource(url: httpx.URL) -> tuple[tuple[str, str, int | None], str]:
    return _origin(url), url.path


def page_limit(request: httpx.Request) -> int:
    """The most items an answer to the listing ``request`` may hold: the ``maxPageSize`` it asked for
    (its ``nextLink`` carries it), never more than :data:`MAX_PAGE_SIZE`."""
    try:
        asked = int(request.url.params.get("maxPageSize", MAX_PAGE_SIZE))
    except ValueError:
        return MAX_PAGE_SIZE
    return asked if 1 <= asked <= MAX_PAGE_SIZE else MAX_PAGE_SIZE


class LinkTrail:
    """The pages a listing has asked for. Asking for one again is a loop (a server that sends the same
    ``nextLink`` again, or a cycle of them), which would go on for ever: it is refused. One entry a
    page (its link)."""

    def __init__(self, first: httpx.Request | None = None) -> None:
        self._seen: set[str] = set()
        if first is not None:
            self._seen.add(str(first.url))

    def follow(self, link: httpx.Request | str, answered: httpx.Request | None = None) -> None:
        """Note that the listing goes on at ``link`` (the request of the next page, or its URL), which
        the answer to ``answered`` gave.

        Raises:
            RefusedAnswerError: if the listing has asked for that page before.
        """
        key = str(link.url) if isinstance(link, httpx.Request) else link
        if key in self._seen:
            raise refused_answer(
                answered,
                f"a nextLink leads back to a page this listing already had, after {len(self._seen)} pages "
                "(a paging loop)",
            )
        self._seen.add(key)


def message_page(items: list[Json], next_request: httpx.Request | None) -> MessagePage:
    """A :class:`~chatnb.MessagePage` of one answer of a message listing."""
    return MessagePage(items, None if next_request is None else str(next_request.url))


class RequestBuilder:
    """Builds the requests of one API family at ``endpoint`` (JSON bodies, ``api-version``)."""

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
        """A request to ``path`` (parameters that are ``None`` are left out)."""
        query = {k: v for k, v in (params or {}).items() if v is not None}
        query["api-version"] = api_version or self.api_version
        all_headers = {"Accept": "application/json", "User-Agent": USER_AGENT, **(headers or {})}
        content = None
        if body is not None:
            content = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
            all_headers["Content-Type"] = "application/json"
        return httpx.Request(method, self.endpoint + path, params=query, content=content, headers=all_headers)

    def modern(self, needed: bool) -> str:
        """The API version of a request that needs the 2025-03-15 features (metadata, retention) when
        ``needed``."""
        return max(self.api_version, METADATA_API_VERSION) if needed else self.api_version
