"""Entra ID access tokens for the tests (unsigned by Entra ID: the emulator's ``--oauth basic`` does not
check signatures) and a static ``TokenCredential`` that hands one out."""

from __future__ import annotations

import time
import uuid
from typing import Any, NamedTuple

import jwt

__all__ = ["AUDIENCE", "SCOPE", "StaticCredential", "entra_token"]

AUDIENCE = "https://communication.azure.com"
SCOPE = "https://communication.azure.com//.default"
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"


def entra_token(**claims: Any) -> str:
    """A v1 Entra ID access token for ACS, valid an hour; ``claims`` override or add (``None`` removes)."""
    now = int(time.time())
    payload: dict[str, Any] = {
        "aud": AUDIENCE,
        "iss": f"https://sts.windows.net/{TENANT}/",
        "iat": now,
        "nbf": now,
        "exp": now + 3600,
        "oid": str(uuid.uuid4()),
        "tid": TENANT,
    }
    payload.update(claims)
    payload = {k: v for k, v in payload.items() if v is not None}
    return jwt.encode(payload, "not-entra-id's-key-the-emulator-does-not-check-it", algorithm="HS256")


class Token(NamedTuple):
    """What ``TokenCredential.get_token`` returns (azure-core's ``AccessToken`` has the same shape)."""

    token: str
    expires_on: int


class StaticCredential:
    """A ``TokenCredential`` with one fixed token; ``scopes`` records what every call asked for."""

    def __init__(self, token: str | None = None) -> None:
        self.token = token or entra_token()
        self.scopes: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str, **kwargs: Any) -> Token:
        self.scopes.append(scopes)
        return Token(self.token, int(time.time()) + 3600)
