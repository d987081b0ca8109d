"""The emulator's ASGI application: routes, middleware and the error path.

Handlers are thin: they validate input, check who may do what (:mod:`.auth`), and call the store. Every
error leaves as the ACS error body with its status; nothing a client sends produces a 500. The middleware,
outermost first: :class:`~chatnb.emulator.acsheaders.ACSHeaders` (the service's response headers),
:class:`~chatnb.emulator.bounds.RequestGuard` (body cap, and a 500 that keeps the connection for an
emulator bug), then the opt-in rate limits and fault injection
(:class:`~chatnb.emulator.limits.LimitsMiddleware`).
"""

from __future__ import annotations

import logging

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Route

from . import chat, identity, manage, messages, stream
from .acsheaders import ACSHeaders
from .bounds import RequestGuard
from .coverage import not_implemented_routes
from .errors import BadRequest, MethodNotAllowed, NotFound, ServiceError, error_body
from .http import json_response
from .limits import FaultInjector, LimitsMiddleware, RateLimiter
from .state import EmulatorState, state_of

__all__ = ["create_app", "routes"]

log = logging.getLogger("chatnb.emulator")


def _allowed_methods(routes: list[BaseRoute], request: Request) -> list[str]:
    """The methods the routes serve at the request's path."""
    allowed: set[str] = set()
    for route in routes:
        if isinstance(route, Route) and route.methods:
            match, _ = route.matches({**request.scope, "method": next(iter(route.methods))})
            if match is Match.FULL:
                allowed |= route.methods
    return sorted(allowed)


async def _on_service_error(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, ServiceError):  # pragma: no cover - Starlette routes only ServiceErrors here
        raise exc
    if state_of(request).debug:
        log.info("%s %s -> %s %s", request.method, request.url.path, exc.status, exc.code)
    return json_response(exc.body(), exc.status, exc.headers)


async def _on_http_error(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, HTTPException):  # pragma: no cover - Starlette routes only HTTPExceptions here
        raise exc
    path = request.url.path[:200]
    err: ServiceError
    if exc.status_code == 404:
        err = NotFound(f"No operation at {request.method} {path}.", code="UnknownOperation")
    elif exc.status_code == 405:
        allow = _allowed_methods(request.app.routes, request)
        err = MethodNotAllowed(
            f"{request.method} is not allowed on {path}; use {', '.join(allow)}.", allow=allow
        )
    else:
        err = BadRequest(str(exc.detail)[:200])
        return json_response(err.body(), exc.status_code)
    return await _on_service_error(request, err)


async def _on_unexpected(request: Request, exc: Exception) -> Response:
    """The last resort (the guard answers first): a generic 500, no stack trace, no request data."""
    log.exception("emulator bug while serving %s %s", request.method, request.url.path)
    return json_response(error_body("InternalError", "The emulator failed unexpectedly."), 500)


def routes() -> list[BaseRoute]:
    """Every route the emulator serves (what ``chatnb serve --list-operations`` tabulates)."""
    return [
        *identity.routes(),
        *chat.routes(),
        *messages.routes(),
        *stream.routes(),
        *manage.routes(),
        *not_implemented_routes(),
    ]


def create_app(
    state: EmulatorState,
    *,
    limiter: RateLimiter | None = None,
    faults: FaultInjector | None = None,
) -> Starlette:
    """The ASGI application serving the Identity and Chat APIs and the event stream over ``state``.

    Args:
        limiter: enforce the real service's rate limits with it.
        faults: inject faults drawn from it.
    """
    middleware = [Middleware(ACSHeaders), Middleware(RequestGuard, limits=state.limits)]
    if limiter is not None or faults is not None:
        middleware.append(Middleware(LimitsMiddleware, issuer=state.issuer, limiter=limiter, faults=faults))
    app = Starlette(
        routes=routes(),
        middleware=middleware,
        exception_handlers={
            ServiceError: _on_service_error,
            HTTPException: _on_http_error,
            Exception: _on_unexpected,
        },
    )
    app.router.redirect_slashes = False  # the service answers 404, not a redirect, for a trailing slash
    app.state.emulator = state
    return app
