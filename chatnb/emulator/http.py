"""Request helpers every handler uses: JSON answers, api-versions, bodies, query parameters, paging links.

Nothing here knows the store or the caller; the functions take what they need and raise
:class:`~chatnb.emulator.errors.ServiceError` subclasses for a client's mistakes.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from .._time import parse_rfc3339_us
from .bounds import buffered_body
from .errors import BadRequest

__all__ = [
    "CHAT_API_VERSIONS",
    "IDENTITY_API_VERSIONS",
    "MAX_INT",
    "api_version",
    "empty_response",
    "int_param",
    "json_response",
    "link",
    "page_response",
    "page_size",
    "raw_target",
    "read_json",
    "read_object",
    "start_time",
    "sync_state",
]

CHAT_API_VERSIONS = frozenset(
    {
        "2020-09-21-preview2",
        "2020-11-01-preview3",
        "2021-01-27-preview4",
        "2021-03-01-preview5",
        "2021-03-07",
        "2021-04-05-preview6",
        "2021-09-07",
        "2023-07-01-preview",
        "2023-11-07",
        "2024-03-07",
        "2024-09-01",
        "2025-03-15",
    }
)
IDENTITY_API_VERSIONS = frozenset(
    {
        "2020-07-20-preview2",
        "2021-02-22-preview1",
        "2021-03-07",
        "2021-10-31-preview",
        "2022-06-01",
        "2022-10-01",
        "2023-08-01",
        "2023-10-01",
        "2025-06-30",
        "2026-09-23",
    }
)
MAX_INT = 2**63 - 1  # SQLite's INTEGER
MAX_PAGE_SIZE = 200
DEFAULT_PAGE_SIZE = 100
_BAD_SYNC_STATE = "syncState is not a continuation token of this service."
_HEX = re.compile(r"[0-9a-f]{1,256}")
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        json.dumps(body, separators=(",", ":"), ensure_ascii=False),
        status_code=status,
        headers=headers,
        media_type="application/json; charset=utf-8",
    )


def empty_response(status: int) -> Response:
    return Response(status_code=status)


def api_version(
    request: Request, known: frozenset[str], *, continuation: bool = False, loose: bool = False
) -> str:
    """The request's api-version.

    A continuation request (one following a ``nextLink``) is never refused for its api-version: a
    missing or unknown one is read as the newest stable version; so is an unknown one when ``loose``
    (``chatnb serve --loose``).

    Raises:
        BadRequest: if it is missing, or not one the emulator knows: ``UnsupportedApiVersion`` with the
            service's own message (except on a continuation request, or when ``loose``).
    """
    version = request.query_params.get("api-version")
    newest = max(v for v in known if "preview" not in v)
    if (continuation or loose) and (version is None or version not in known):
        return newest
    if version is None:
        raise BadRequest("The api-version query parameter is required.", code="MissingApiVersionParameter")
    if version not in known:
        supported = ", ".join(sorted(v for v in known if "preview" not in v))
        raise BadRequest(
            f"The HTTP resource that matches the request URI '{request.url.path[:120]}' does not support "
            f"the API version '{version[:40]}'. (The chatnb emulator supports api-version {supported}; "
            "`chatnb serve --loose` accepts any.)",
            code="UnsupportedApiVersion",
            target="api-version",
        )
    return version


# -- bodies ------------------------------------------------------------------------------------


def read_json(request: Request, *, required: bool = True) -> Any:
    """The request's JSON body (``None`` when empty and not required); its size was capped on arrival.

    Raises:
        BadRequest: if the body is missing or not JSON.
    """
    raw = buffered_body(request.scope)
    if not raw.strip():
        if required:
            raise BadRequest("The request body is required.", code="MissingRequestBody")
        return None
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise BadRequest(
            f"The request body is not valid JSON: {str(exc)[:120]}", code="InvalidJson"
        ) from None
    if _SURROGATE_ESCAPE.search(raw) and _has_lone_surrogate(body):
        raise BadRequest(
            "The request body is not valid JSON: a \\u escape encodes an unpaired UTF-16 surrogate.",
            code="InvalidJson",
        )
    return body


def _has_lone_surrogate(value: Any) -> bool:
    """Whether a parsed JSON value holds a string that is not valid Unicode (it cannot be stored)."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    except RecursionError:  # too deep to re-encode: refuse rather than risk storing it
        return True
    return False


def read_object(request: Request, *, required: bool = True) -> dict[str, Any]:
    """The request's JSON object body (``{}`` when empty and not required).

    Raises:
        BadRequest: if the body is missing, not JSON or not an object (``null`` included).
    """
    if not required and not buffered_body(request.scope).strip():
        return {}
    body = read_json(request)
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object.", code="InvalidRequestBody")
    return body


def raw_target(request: Request) -> str:
    """The request-target as sent: still percent-encoded, with its query."""
    path = request.scope.get("raw_path") or request.url.path.encode()
    query = request.scope.get("query_string", b"")
    target = path.decode("latin-1")
    return f"{target}?{query.decode('latin-1')}" if query else target


# -- query parameters --------------------------------------------------------------------------


def int_param(request: Request, name: str, default: int, minimum: int, maximum: int | None) -> int:
    """An integer query parameter, at least ``minimum``; values above ``maximum`` are lowered to it.

    Raises:
        BadRequest: if it is not an integer or below ``minimum``.
    """
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{name} must be an integer, not {raw[:20]!r}.", target=name) from None
    if value < minimum:
        raise BadRequest(f"{name} must be at least {minimum}.", target=name)
    return min(value, MAX_INT if maximum is None else maximum)


def page_size(request: Request) -> int:
    """``maxPageSize``: 1 to 200, 100 when absent."""
    return int_param(request, "maxPageSize", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE)


def start_time(request: Request) -> int | None:
    """``startTime`` in microseconds, or ``None``.

    Raises:
        BadRequest: if it is not an RFC 3339 date-time.
    """
    raw = request.query_params.get("startTime")
    if raw is None or raw in ("", "0"):
        return None
    try:
        return parse_rfc3339_us(raw.replace(" ", "+"))
    except ValueError:
        raise BadRequest(
            f"startTime is not an RFC 3339 date-time: {raw[:40]!r}.", target="startTime"
        ) from None


def sync_state(request: Request, parts: int) -> tuple[int, ...] | None:
    """The hex integers of a ``syncState`` continuation token, or ``None`` on a first page.

    Every part is plain lowercase hex as this service writes it (no sign, prefix, space or ``_``); the
    first two (times and sequence ids) fit SQLite's INTEGER.

    Raises:
        BadRequest: for anything else.
    """
    raw = request.query_params.get("syncState")
    if raw is None:
        return None
    fields = raw.split(".")
    if len(fields) != parts or not all(_HEX.fullmatch(f) for f in fields):
        raise BadRequest(_BAD_SYNC_STATE, target="syncState")
    values = tuple(int(f, 16) for f in fields)
    if any(v > MAX_INT for v in values[:2]):
        raise BadRequest(_BAD_SYNC_STATE, target="syncState")
    return values


# -- links -------------------------------------------------------------------------------------


def link(base: str, request: Request, query: str = "", *, child: str | None = None) -> str:
    """An absolute link to this request's path (or its ``child``) with ``query``, under ``base``.

    ``base`` is the emulator's configured endpoint: the request's ``Host`` header never goes into it.
    """
    path = (request.scope.get("raw_path") or request.url.path.encode()).decode("latin-1")
    if child is not None:
        path = f"{path.rstrip('/')}/{child}"
    return f"{base}{path}?{query}" if query else f"{base}{path}"


def page_response(
    items: list[Any], next_query: dict[str, Any] | None, request: Request, *, base: str
) -> Response:
    """A page ``{"value": items, "nextLink"?}``; ``nextLink`` is this path with ``next_query``."""
    body: dict[str, Any] = {"value": items}
    if next_query is not None:
        body["nextLink"] = link(base, request, urlencode(next_query))
    return json_response(body)
