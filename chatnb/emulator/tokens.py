"""Access tokens as ACS issues them: HS256 JWTs signed with the resource's access key.

Their payload mimics a real ACS token (``skypeid``, ``scp``, ``exp``...) and is kept free of ``-`` and
``_`` because the Python SDK decodes it with the standard base64 alphabet.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
from dataclasses import dataclass

import jwt

from .clock import Clock
from .errors import Unauthorized

__all__ = ["CHAT_SCOPES", "KNOWN_SCOPES", "TokenClaims", "TokenIssuer"]

KNOWN_SCOPES = frozenset({"chat", "voip", "chat.join", "chat.join.limited", "voip.join"})
CHAT_SCOPES = frozenset({"chat", "chat.join", "chat.join.limited"})


@dataclass(frozen=True, slots=True)
class TokenClaims:
    """What a verified access token says."""

    user_id: str
    generation: int
    expires_at: int
    scopes: frozenset[str]


class TokenIssuer:
    """Issues and verifies the resource's access tokens.

    ``resource_id`` is the GUID in every user id (``8:acs:<resource_id>_<user guid>``). Tokens are issued
    and expire by ``clock`` (the emulator's: :mod:`chatnb.emulator.clock`).
    """

    def __init__(self, key: bytes, resource_id: str, clock: Clock | None = None) -> None:
        self._key = key
        self.resource_id = resource_id
        self.clock = clock or Clock()
        self._cache: dict[str, TokenClaims] = {}

    def issue(self, user_id: str, scopes: list[str], generation: int, expires_in_s: int) -> tuple[str, int]:
        """A signed token for ``user_id`` and its expiry (Unix seconds)."""
        now = int(self.clock.now())
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
                    # expiry is checked below, by the emulator's clock, not PyJWT's (the system's)
                    options={"require": ["exp", "skypeid"], "verify_exp": False, "verify_iat": False},
                )
                claims = TokenClaims(
                    user_id="8:" + str(payload["skypeid"]),
                    generation=int(payload.get("gen", 0)),
                    expires_at=int(payload["exp"]),
                    scopes=frozenset(str(payload.get("acsScope", "")).split(",")),
                )
            except (jwt.InvalidTokenError, ValueError, TypeError):
                raise Unauthorized("The access token is not valid.") from None
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[token] = claims
        if claims.expires_at <= self.clock.now():
            raise Unauthorized("The access token has expired.")
        return claims
