"""The Identity API: users and access tokens, authenticated by HMAC request signing.

Handlers are plain functions: Starlette runs them in worker threads, off the event loop.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .._time import format_rfc3339
from .auth import verify_identity_request
from .errors import BadRequest, NotFound
from .http import IDENTITY_API_VERSIONS, api_version, empty_response, json_response, read_object
from .state import state_of
from .tokens import KNOWN_SCOPES

__all__ = ["routes"]

DEFAULT_TOKEN_MINUTES = 1440


def _scopes(value: Any, target: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise BadRequest(f"{target} must be an array of scope names.", target=target)
    unknown = [s for s in value if s not in KNOWN_SCOPES]
    if unknown:
        raise BadRequest(
            f"Unknown scope {unknown[0][:40]!r}; known scopes: {', '.join(sorted(KNOWN_SCOPES))}.",
            code="InvalidScope",
            target=target,
        )
    return list(dict.fromkeys(value))


def _expires_in(body: dict[str, Any]) -> int:
    minutes = body.get("expiresInMinutes", DEFAULT_TOKEN_MINUTES)
    if isinstance(minutes, bool) or not isinstance(minutes, int) or not 60 <= minutes <= 1440:
        raise BadRequest(  # the real service's code and target, with the allowed range added
            f"ExpiresInMinutes value {str(minutes)[:20]} is invalid. It must be an integer from 60 to 1440.",
            code="ValidationError",
            target="ExpiresInMinutes",
        )
    return minutes * 60


def _token(request: Request, user_id: str, scopes: list[str], expires_in_s: int) -> dict[str, str]:
    state = state_of(request)
    generation = state.store.user_generation(user_id)
    if generation is None:
        raise NotFound(f"Identity {user_id[:120]!r} does not exist.", code="IdentityNotFound")
    token, exp = state.issuer.issue(user_id, scopes, generation, expires_in_s)  # by the emulator's clock
    expires_on = format_rfc3339(exp * 1_000_000).replace("Z", "+00:00")
    return {"token": token, "expiresOn": expires_on}


def _existing_user(request: Request) -> str:
    user_id: str = request.path_params["user_id"]
    if state_of(request).store.user_generation(user_id) is None:
        raise NotFound(f"Identity {user_id[:120]!r} does not exist.", code="IdentityNotFound")
    return user_id


def create_user(request: Request) -> Response:
    api_version(request, IDENTITY_API_VERSIONS, loose=state_of(request).loose)
    verify_identity_request(request)
    body = read_object(request, required=False)
    scopes = body.get("createTokenWithScopes")
    if scopes is not None:
        scopes = _scopes(scopes, "createTokenWithScopes")
    expires_in = _expires_in(body)
    user_id = state_of(request).store.create_user()
    out: dict[str, Any] = {"identity": {"id": user_id}}
    if scopes:
        out["accessToken"] = _token(request, user_id, scopes, expires_in)
    return json_response(out, 201)


def issue_token(request: Request) -> Response:
    api_version(request, IDENTITY_API_VERSIONS, loose=state_of(request).loose)
    verify_identity_request(request)
    body = read_object(request)
    if "scopes" not in body:
        raise BadRequest("scopes is required.", code="ValidationError", target="scopes")
    scopes = _scopes(body["scopes"], "scopes")
    if not scopes:
        raise BadRequest("scopes must name at least one scope.", target="scopes")
    expires_in = _expires_in(body)
    user_id = _existing_user(request)
    return json_response(_token(request, user_id, scopes, expires_in))


def revoke_tokens(request: Request) -> Response:
    api_version(request, IDENTITY_API_VERSIONS, loose=state_of(request).loose)
    verify_identity_request(request)
    state_of(request).store.revoke_tokens(_existing_user(request))
    return empty_response(204)


def delete_user(request: Request) -> Response:
    api_version(request, IDENTITY_API_VERSIONS, loose=state_of(request).loose)
    verify_identity_request(request)
    state_of(request).store.delete_user(request.path_params["user_id"])
    return empty_response(204)


def routes() -> list[Route]:
    """The Identity API's routes, named by their operation ids (the 2026-09-23 swagger's)."""
    u = "/identities/{user_id}"
    return [
        Route("/identities", create_user, methods=["POST"], name="IdentityOperations_Create"),
        Route(
            f"{u}/:issueAccessToken",
            issue_token,
            methods=["POST"],
            name="IdentityOperations_IssueAccessToken",
        ),
        Route(
            f"{u}/:revokeAccessTokens",
            revoke_tokens,
            methods=["POST"],
            name="IdentityOperations_RevokeAccessTokens",
        ),
        Route(u, delete_user, methods=["DELETE"], name="IdentityOperations_Delete"),
    ]
