"""Authentication of a request, as ACS does it, and who may do what on a thread.

Identity requests are signed with HMAC-SHA256: the string-to-sign is
``METHOD\\nPATH_AND_QUERY\\nX_MS_DATE;HOST;CONTENT_HASH`` over the raw request target, as both official
SDKs compute it. Chat requests carry a bearer access token (:mod:`chatnb.emulator.tokens`) that must be
live: signed with the resource key, unexpired, of a user that exists, not revoked, with a chat scope.

Who may do what: every thread operation needs the caller to be a participant (403 otherwise, 404 for a
thread that does not exist or was deleted); a participant sees no message created before their
``shareHistoryTime``; ``chat.join`` tokens may not create, update or delete threads, and
``chat.join.limited`` tokens may not add or remove participants either.
"""

from __future__ import annotations

import hmac
import re
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

from starlette.requests import Request

from .._signing import content_hash, sign_request
from .bounds import buffered_body
from .entra import verify_entra_token
from .errors import Forbidden, NotFound, Unauthorized
from .http import CHAT_API_VERSIONS, api_version, raw_target
from .records import Message, Participant, Thread
from .state import state_of
from .tokens import CHAT_SCOPES, TokenIssuer

__all__ = [
    "MODERN_VERSION",
    "Caller",
    "TokenIssuer",
    "authenticate",
    "bearer_token",
    "member_thread",
    "verify_hmac",
    "verify_identity_request",
    "visible_message",
]

MODERN_VERSION = "2025-03-15"
_AUTH_RE = re.compile(r"HMAC-SHA256 SignedHeaders=([^&]+)&Signature=(.+)")
_MAX_CLOCK_SKEW_S = 15 * 60


def verify_hmac(
    key: bytes,
    *,
    method: str,
    path_and_query: str,
    headers: dict[str, str],
    body: bytes,
    scheme: str,
    check_date: bool = True,
) -> None:
    """Check an Identity request's HMAC signature.

    Raises:
        Unauthorized: if the header is missing or malformed, the body hash or the signature does not
            match, or ``x-ms-date`` is more than 15 minutes away from now.
    """
    match = _AUTH_RE.fullmatch(headers.get("authorization", ""))
    if match is None:
        raise Unauthorized("The request has no valid HMAC-SHA256 Authorization header.")
    signed = match.group(1).lower().split(";")
    if signed != ["x-ms-date", "host", "x-ms-content-sha256"]:
        raise Unauthorized("SignedHeaders must be x-ms-date;host;x-ms-content-sha256.")
    date = headers.get("x-ms-date") or headers.get("date", "")
    declared_hash = headers.get("x-ms-content-sha256", "")
    if not hmac.compare_digest(declared_hash, content_hash(body)):
        raise Unauthorized("x-ms-content-sha256 does not match the request body.")
    if check_date:
        try:
            skew = abs(parsedate_to_datetime(date).timestamp() - time.time())
        except (TypeError, ValueError):
            raise Unauthorized("x-ms-date is missing or not an RFC 1123 date.") from None
        if skew > _MAX_CLOCK_SKEW_S:
            raise Unauthorized("x-ms-date is more than 15 minutes away from the server's clock.")
    host = headers.get("host", "")
    hosts = [host]
    if ":" not in host:  # a client may sign the default port that the Host header leaves out
        hosts.append(f"{host}:{443 if scheme == 'https' else 80}")
    given = match.group(2)
    for candidate in hosts:
        expected = sign_request(key, method, path_and_query, date, candidate, body)
        if hmac.compare_digest(expected, given):
            return
    raise Unauthorized("The HMAC signature does not match; check the access key.")


def verify_identity_request(request: Request) -> None:
    """Check an Identity request's HMAC signature with the resource's access key, or, with OAuth on, its
    Entra ID bearer token (:mod:`chatnb.emulator.entra`).

    Raises:
        Unauthorized: as :func:`verify_hmac` and :func:`~chatnb.emulator.entra.verify_entra_token`.
    """
    state = state_of(request)
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        verify_entra_token(token.strip(), oauth=state.oauth, scheme=request.url.scheme)
        return
    verify_hmac(
        state.access_key,
        method=request.method,
        path_and_query=raw_target(request),
        headers={k.lower(): v for k, v in request.headers.items()},
        body=buffered_body(request.scope),
        scheme=request.url.scheme,
        check_date=state.check_hmac_date,
    )


def bearer_token(request: Request) -> str:
    """The request's bearer token.

    Raises:
        Unauthorized: if there is none.
    """
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("The request has no bearer access token.")
    return token.strip()


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling a Chat operation, with what scopes, at which api-version."""

    user_id: str
    scopes: frozenset[str]
    version: str
    generation: int = 0
    expires_at: int = 0

    @property
    def modern(self) -> bool:
        return self.version >= MODERN_VERSION

    def require_scope(self, action: str, *, limited_ok: bool = False, join_ok: bool = False) -> None:
        """Raises: Forbidden: if the token's scopes do not allow ``action``."""
        if "chat" in self.scopes:
            return
        if join_ok and "chat.join" in self.scopes:
            return
        if limited_ok and self.scopes & {"chat.join", "chat.join.limited"}:
            return
        raise Forbidden(f"The access token's scopes do not allow {action}.")


def authenticate(request: Request, *, continuation: bool = False) -> Caller:
    """The caller of a Chat request.

    Raises:
        BadRequest: for a missing or unsupported api-version.
        Unauthorized: for a missing, malformed, forged, expired or revoked token, or a deleted user.
        Forbidden: for a token without a chat scope.
    """
    state = state_of(request)
    version = api_version(request, CHAT_API_VERSIONS, continuation=continuation, loose=state.loose)
    claims = state.issuer.verify(bearer_token(request))
    generation = state.store.user_generation(claims.user_id)
    if generation is None:
        raise Unauthorized("The identity of this access token does not exist or was deleted.")
    if claims.generation != generation:
        raise Unauthorized("The access token has been revoked.")
    if not claims.scopes & CHAT_SCOPES:
        raise Forbidden("The access token has no chat scope.")
    return Caller(claims.user_id, claims.scopes, version, claims.generation, claims.expires_at)


def member_thread(request: Request, caller: Caller) -> tuple[Thread, Participant]:
    """The thread of the request's path and the caller's membership of it.

    Raises:
        NotFound: if the thread does not exist or was deleted.
        Forbidden: if the caller is not a participant.
    """
    thread_id: str = request.path_params["thread_id"]
    store = state_of(request).store
    thread = store.get_thread(thread_id)
    if thread is None or thread.deleted_on is not None:
        raise NotFound(f"Chat thread {thread_id[:120]!r} does not exist.", code="ThreadNotFound")
    me = store.participant(thread_id, caller.user_id)
    if me is None:
        raise Forbidden("The caller is not a participant of this chat thread.")
    return thread, me


def visible_message(
    request: Request, thread: Thread, me: Participant, message_id: str | None = None
) -> Message:
    """The message of the request's path (or ``message_id``) if ``me`` may see it.

    Raises:
        NotFound: if it does not exist or was created before ``me``'s ``shareHistoryTime``.
    """
    message_id = message_id or request.path_params["message_id"]
    message = state_of(request).store.get_message(thread.id, message_id)
    if message is None or (me.share_history_time is not None and message.created_on < me.share_history_time):
        raise NotFound(f"Chat message {message_id[:60]!r} does not exist.", code="MessageNotFound")
    return message
