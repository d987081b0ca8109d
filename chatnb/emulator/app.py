"""The emulator's ASGI application: routing, api-versions, authentication and the error path.

Handlers are thin: they validate input, check who may do what, and call the store. Every error leaves
as the ACS error body with its status; nothing a client sends produces a 500.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from .auth import TokenIssuer, verify_hmac
from .errors import BadRequest, NotFound, PayloadTooLarge, ServiceError, Unauthorized
from .store import Store

__all__ = ["CHAT_API_VERSIONS", "IDENTITY_API_VERSIONS", "EmulatorState", "create_app"]

log = logging.getLogger("chatnb.emulator")

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
MAX_BODY_BYTES = 1024 * 1024


@dataclass
class EmulatorState:
    """What the handlers share: the store, the token issuer and the emulator's switches."""

    store: Store
    issuer: TokenIssuer
    access_key: bytes = field(repr=False)
    check_hmac_date: bool = True
    debug: bool = False
    extras: dict[str, Any] = field(default_factory=dict)


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        json.dumps(body, separators=(",", ":"), ensure_ascii=False),
        status_code=status,
        headers=headers,
        media_type="application/json; charset=utf-8",
    )


def empty_response(status: int) -> Response:
    return Response(status_code=status)


def api_version(request: Request, known: frozenset[str], *, continuation: bool = False) -> str:
    """The request's api-version.

    A continuation request (one following a ``nextLink``) is never refused for its api-version: a
    missing or unknown one is read as the newest stable version.

    Raises:
        BadRequest: if it is missing or not one the emulator knows (except on a continuation request).
    """
    version = request.query_params.get("api-version")
    if continuation and (version is None or version not in known):
        return max(v for v in known if "preview" not in v)
    if version is None:
        raise BadRequest("The api-version query parameter is required.", code="MissingApiVersionParameter")
    if version not in known:
        supported = ", ".join(sorted(v for v in known if "preview" not in v))
        raise BadRequest(
            f"Unsupported api-version {version[:40]!r}. Supported versions: {supported}.",
            code="UnsupportedApiVersion",
            target="api-version",
        )
    return version


async def read_json(request: Request, *, required: bool = True) -> Any:
    """The request's JSON body (``None`` when empty and not required).

    Raises:
        BadRequest: if the body is missing or not JSON.
        PayloadTooLarge: if the body is over 1 MiB.
    """
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"The request body is over {MAX_BODY_BYTES} bytes.")
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"The request body is over {MAX_BODY_BYTES} bytes.")
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


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _has_lone_surrogate(value: Any) -> bool:
    """Whether a parsed JSON value holds a string that is not valid Unicode (it cannot be stored)."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    except RecursionError:  # too deep to re-encode: refuse rather than risk storing it
        return True
    return False


async def read_object(request: Request, *, required: bool = True) -> dict[str, Any]:
    """The request's JSON object body (``{}`` when empty and not required).

    Raises:
        BadRequest: if the body is missing, not JSON or not an object (``null`` included).
    """
    if not required and not (await request.body()).strip():
        return {}
    body = await read_json(request)
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object.", code="InvalidRequestBody")
    return body


def raw_target(request: Request) -> str:
    """The request-target as sent: still percent-encoded, with its query."""
    path = request.scope.get("raw_path") or request.url.path.encode()
    query = request.scope.get("query_string", b"")
    target = path.decode("latin-1")
    return f"{target}?{query.decode('latin-1')}" if query else target


def self_link(request: Request, query: str) -> str:
    """An absolute link to this request's path with ``query``, as real ACS builds ``nextLink``."""
    host = request.headers.get("host") or f"{request.url.hostname}:{request.url.port}"
    path = (request.scope.get("raw_path") or request.url.path.encode()).decode("latin-1")
    return f"{request.url.scheme}://{host}{path}?{query}"


def state_of(request: Request) -> EmulatorState:
    state: EmulatorState = request.app.state.emulator
    return state


async def verify_identity_request(request: Request) -> None:
    state = state_of(request)
    body = await request.body()
    verify_hmac(
        state.access_key,
        method=request.method,
        path_and_query=raw_target(request),
        headers={k.lower(): v for k, v in request.headers.items()},
        body=body,
        scheme=request.url.scheme,
        check_date=state.check_hmac_date,
    )


async def _on_service_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ServiceError)
    if state_of(request).debug:
        log.info("%s %s -> %s %s", request.method, request.url.path, exc.status, exc.code)
    return json_response(exc.body(), exc.status, exc.headers)


async def _on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        err: ServiceError = NotFound(
            f"No operation at {request.method} {request.url.path[:200]}.", code="UnknownOperation"
        )
    elif exc.status_code == 405:
        err = BadRequest(
            f"{request.method} is not allowed on {request.url.path[:200]}.",
            code="MethodNotAllowed",
        )
        return json_response(err.body(), 405)
    else:
        err = BadRequest(str(exc.detail)[:200])
        return json_response(err.body(), exc.status_code)
    return json_response(err.body(), err.status)


async def _on_unexpected(request: Request, exc: Exception) -> Response:
    log.exception("emulator bug while serving %s %s", request.method, request.url.path)
    return json_response(
        {"error": {"code": "InternalError", "message": "The emulator failed unexpectedly."}}, 500
    )


def create_app(state: EmulatorState) -> Starlette:
    """The ASGI application serving the Identity and Chat APIs over ``state``."""
    from . import chat, events, identity

    routes = [*identity.routes(), *chat.routes(), *events.routes()]
    app = Starlette(
        routes=routes,
        exception_handlers={
            ServiceError: _on_service_error,
            HTTPException: _on_http_error,
            Exception: _on_unexpected,
        },
    )
    app.router.redirect_slashes = False  # the service answers 404, not a redirect, for a trailing slash
    app.state.emulator = state
    return app


def bearer_token(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("The request has no bearer access token.")
    return token.strip()
