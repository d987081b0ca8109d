"""Request builders of the Identity API: :class:`IdentityOperations` (users and access tokens). A request is
signed with the resource's access key (HMAC-SHA256), or carries a Microsoft Entra ID token from a
``TokenCredential`` asked for :data:`ENTRA_SCOPE` (:func:`entra_credential`), as the official SDK does
for a resource with local authentication disabled."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from datetime import timedelta
from urllib.parse import quote

import httpx

from ._core import IDENTITY_API_VERSION, Call, Json, RequestBuilder, parse_empty, parse_json
from ._signing import hmac_headers
from ._time import parse_rfc3339
from .models import AccessToken, CommunicationTokenScope, CommunicationUserIdentifier, as_identifier

__all__ = ["ENTRA_SCOPE", "EntraCredential", "IdentityOperations", "entra_credential"]

ENTRA_SCOPE = "https://communication.azure.com//.default"
"""The scope of an Entra ID token for the Identity API (the official SDKs ask for it, double slash too)."""


class EntraCredential:
    """A ``TokenCredential`` (``get_token(*scopes) -> AccessToken``: azure-identity's, or any static one)
    asked for :data:`ENTRA_SCOPE`: ``get_token()`` returns what ``credential.get_token(ENTRA_SCOPE)`` does
    (an awaitable for an async credential; the chatnb.aio client awaits it, and runs a sync one in a
    worker thread)."""

    def __init__(self, credential: object) -> None:
        self.credential = credential

    def __repr__(self) -> str:
        return f"<EntraCredential {type(self.credential).__name__}>"

    def get_token(self) -> object:
        get = getattr(self.credential, "get_token")  # noqa: B009 - checked callable by entra_credential
        return get(ENTRA_SCOPE)


def entra_credential(credential: object) -> EntraCredential | None:
    """``credential`` as an :class:`EntraCredential` if it is a ``TokenCredential`` (it has ``get_token``
    and is neither a key string nor an ``AzureKeyCredential``-like object with ``.key``), else ``None``."""
    if isinstance(credential, str) or hasattr(credential, "key"):
        return None
    return EntraCredential(credential) if callable(getattr(credential, "get_token", None)) else None


def _scopes(scopes: object) -> list[str]:
    if isinstance(scopes, str):
        scopes = [scopes]
    if not isinstance(scopes, Iterable):
        raise TypeError("scopes must be a list of scope names, like ['chat']")
    out: list[str] = []
    for scope in scopes:
        try:
            out.append(CommunicationTokenScope(scope).value)
        except ValueError:
            known = ", ".join(s.value for s in CommunicationTokenScope)
            raise ValueError(f"unknown token scope {scope!r}; known scopes: {known}") from None
    if not out:
        raise ValueError("scopes must name at least one scope, like ['chat']")
    return out


def _expires_in_minutes(value: object) -> int | None:
    if value is None:
        return None
    if not isinstance(value, timedelta):
        raise TypeError("token_expires_in must be a datetime.timedelta")
    minutes = int(value.total_seconds() // 60)
    if not 60 <= minutes <= 1440:
        raise ValueError("token_expires_in must be from 1 hour to 24 hours")
    return minutes


def _user_id(user: object) -> str:
    return as_identifier(user).raw_id


def _access_token(body: Json) -> AccessToken:
    return AccessToken(str(body["token"]), parse_rfc3339(str(body["expiresOn"])))


class IdentityOperations(RequestBuilder):
    """Operations of ``CommunicationIdentityClient``; :meth:`sign` HMAC-signs a request with the access key
    (``access_key=None``: the requests carry an Entra ID token instead, and are not signed)."""

    def __init__(self, endpoint: str, access_key: object, api_version: str = IDENTITY_API_VERSION) -> None:
        super().__init__(endpoint, api_version)
        self._key: bytes | None = None
        if access_key is None:
            return
        key = getattr(access_key, "key", access_key)  # AzureKeyCredential-like objects
        if not isinstance(key, str) or not key.strip():
            raise TypeError("credential must be the resource's access key (a base64 string)")
        try:
            self._key = base64.b64decode(key.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("the access key is not base64") from None

    def __repr__(self) -> str:
        return f"<IdentityOperations {self.endpoint}>"

    def sign(self, request: httpx.Request) -> None:
        """Add the HMAC-SHA256 headers to ``request`` (again on every attempt: they carry the time).

        Raises:
            RuntimeError: if the operations have no access key (an Entra ID client).
        """
        if self._key is None:
            raise RuntimeError("this identity client authenticates with Entra ID, not an access key")
        target = request.url.raw_path.decode("ascii")
        host = request.headers.get("host") or request.url.netloc.decode("ascii")
        request.headers.update(hmac_headers(self._key, request.method, target, host, request.content))

    def create_user(self) -> Call[CommunicationUserIdentifier]:
        request = self.request("POST", "/identities", body={})
        return Call(request, lambda r: CommunicationUserIdentifier(str(parse_json(r)["identity"]["id"])))

    def create_user_and_token(
        self, scopes: object, token_expires_in: object = None
    ) -> Call[tuple[CommunicationUserIdentifier, AccessToken]]:
        body: Json = {"createTokenWithScopes": _scopes(scopes)}
        minutes = _expires_in_minutes(token_expires_in)
        if minutes is not None:
            body["expiresInMinutes"] = minutes

        def parse(response: httpx.Response) -> tuple[CommunicationUserIdentifier, AccessToken]:
            out = parse_json(response)
            return CommunicationUserIdentifier(str(out["identity"]["id"])), _access_token(out["accessToken"])

        return Call(self.request("POST", "/identities", body=body), parse)

    def get_token(self, user: object, scopes: object, token_expires_in: object = None) -> Call[AccessToken]:
        path = "/identities/" + quote(_user_id(user), safe="") + "/:issueAccessToken"
        body: Json = {"scopes": _scopes(scopes)}
        minutes = _expires_in_minutes(token_expires_in)
        if minutes is not None:
            body["expiresInMinutes"] = minutes
        return Call(self.request("POST", path, body=body), lambda r: _access_token(parse_json(r)))

    def revoke_tokens(self, user: object) -> Call[None]:
        path = "/identities/" + quote(_user_id(user), safe="") + "/:revokeAccessTokens"
        return Call(self.request("POST", path, body={}), parse_empty)

    def delete_user(self, user: object) -> Call[None]:
        path = "/identities/" + quote(_user_id(user), safe="")
        return Call(self.request("DELETE", path), parse_empty)
