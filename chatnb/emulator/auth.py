"""Authentication as ACS does it: HMAC-SHA256 request signing for Identity, bearer JWTs for Chat.

The HMAC string-to-sign is ``METHOD\\nPATH_AND_QUERY\\nX_MS_DATE;HOST;CONTENT_HASH`` over the raw request
target, as both official SDKs compute it. Access tokens are HS256 JWTs signed with the resource's access
key; their payload mimics a real ACS token (``skypeid``, ``scp``, ``exp``...) and is kept free of ``-`` and
``_`` because the Python SDK decodes it with the standard base64 alphabet.
"""

from __future__ import annotations

import base64
import hmac
import json
import re
import secrets
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

import jwt

from .._signing import content_hash, sign_request
from .errors import Unauthorized

__all__ = [
    "CHAT_SCOPES",
    "KNOWN_SCOPES",
    "TokenClaims",
    "TokenIssuer",
    "verify_hmac",
]

KNOWN_SCOPES = frozenset({"chat", "voip", "chat.join", "chat.join.limited", "voip.join"})
CHAT_SCOPES = frozenset({"chat", "chat.join", "chat.join.limited"})
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


@dataclass(frozen=True, slots=True)
class TokenClaims:
    """What a verified access token says."""

    user_id: str
    generation: int
    expires_at: int
    scopes: frozenset[str]


class TokenIssuer:
    """Issues and verifies the resource's access tokens.

    ``resource_id`` is the GUID in every user id (``8:acs:<resource_id>_<user guid>``).
    """

    def __init__(self, key: bytes, resource_id: str) -> None:
        self._key = key
        self.resource_id = resource_id
        self._cache: dict[str, TokenClaims] = {}

    def issue(self, user_id: str, scopes: list[str], generation: int, expires_in_s: int) -> tuple[str, int]:
        """A signed token for ``user_id`` and its expiry (Unix seconds)."""
        now = int(time.time())
        exp = now + expires_in_s
        payload: dict[str, object] = {
            "skypeid": user_id.removeprefix("8:"),
            "scp": 1792,
            "csi": str(now),
            "exp": exp,
            "rgn": "emu",
            "acsScope": ",".join(scopes),
            "resourceId": self.resource_id,
            "resourceLocation": "unitedstates",
            "iat": now,
            "gen": generation,
            "jti": secrets.token_hex(8),
        }
        for pad in range(64):
            payload["pad"] = "x" * pad
            raw = json.dumps(payload, separators=(",", ":")).encode()
            if not re.search(rb"[-_]", base64.urlsafe_b64encode(raw)):
                break
        return jwt.encode(payload, self._key, algorithm="HS256"), exp

    def verify(self, token: str) -> TokenClaims:
        """The claims of a token signed with this resource's key and not yet expired.

        Revocation and deleted users are checked by the caller, which knows the user's generation.

        Raises:
            Unauthorized: if the token is malformed, forged or expired.
        """
        claims = self._cache.get(token)
        if claims is None:
            try:
                payload = jwt.decode(
                    token,
                    self._key,
                    algorithms=["HS256"],
                    options={"require": ["exp", "skypeid"]},
                )
                claims = TokenClaims(
                    user_id="8:" + str(payload["skypeid"]),
                    generation=int(payload.get("gen", 0)),
                    expires_at=int(payload["exp"]),
                    scopes=frozenset(str(payload.get("acsScope", "")).split(",")),
                )
            except jwt.ExpiredSignatureError:
                raise Unauthorized("The access token has expired.") from None
            except (jwt.InvalidTokenError, ValueError, TypeError):
                raise Unauthorized("The access token is not valid.") from None
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[token] = claims
        if claims.expires_at <= time.time():
            raise Unauthorized("The access token has expired.")
        return claims
