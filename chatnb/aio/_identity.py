"""``CommunicationIdentityClient``: ACS users and their access tokens, authenticated with the access key
(HMAC-signed) or with Microsoft Entra ID (a ``TokenCredential``, for resources with local auth disabled:
``CommunicationIdentityClient(endpoint, DefaultAzureCredential())`` with azure-identity's credential).

>>> identity = CommunicationIdentityClient.from_connection_string(connection_string)
>>> user, token = await identity.create_user_and_token(["chat"])
>>> token.expires_on                      # a tz-aware datetime (the official SDK gives a string)
>>> credential = CommunicationTokenCredential(
...     token.token, token_refresher=lambda: identity.get_token(user, ["chat"]))
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx

from .. import _core
from .._core import RetryPolicy
from .._identity_ops import IdentityOperations, entra_credential
from ..models import AccessToken, CommunicationTokenScope, CommunicationUserIdentifier
from ._sender import Auth, BearerAuth, ClientBase, HmacAuth

__all__ = ["CommunicationIdentityClient"]


class CommunicationIdentityClient(ClientBase):
    """Creates and deletes users, issues and revokes their tokens.

    Args:
        endpoint: the resource endpoint.
        credential: the resource's access key (base64), an object with a ``.key`` such as
            ``azure.core.credentials.AzureKeyCredential``, or a ``TokenCredential`` (``get_token(*scopes)``:
            azure-identity's ``DefaultAzureCredential``, or a static one) for Microsoft Entra ID: every
            request then carries a token for ``https://communication.azure.com//.default``.
        connection_verify, timeout, transport, retry_policy: as for :class:`~chatnb.ChatClient`.
        api_version: the Identity API version (default ``2023-10-01``, as the official SDK).

    Raises:
        TypeError, ValueError: for a missing or non-base64 key, or a bad endpoint.
    """

    def __init__(
        self,
        endpoint: str,
        credential: str | Any,
        *,
        connection_verify: Any = None,
        timeout: float | httpx.Timeout | None = _core.DEFAULT_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
        retry_policy: RetryPolicy | None = None,
        api_version: str = _core.IDENTITY_API_VERSION,
    ) -> None:
        entra = entra_credential(credential)
        self._ops = IdentityOperations(endpoint, None if entra else credential, api_version)
        self.api_version = api_version
        auth: Auth = BearerAuth(entra) if entra else HmacAuth(self._ops)
        self._setup(
            endpoint,
            auth,
            connection_verify=connection_verify,
            timeout=timeout,
            transport=transport,
            retry_policy=retry_policy,
        )

    @classmethod
    def from_connection_string(cls, conn_str: str, **kwargs: Any) -> CommunicationIdentityClient:
        """A client for ``endpoint=https://...;accesskey=...``; keyword arguments go to the constructor."""
        endpoint, key = _core.parse_connection_string(conn_str)
        return cls(endpoint, key, **kwargs)

    def __repr__(self) -> str:
        return f"<aio.CommunicationIdentityClient {self.endpoint}>"

    async def create_user(self) -> CommunicationUserIdentifier:
        """A new user."""
        return await self._sender.call(self._ops.create_user())

    async def create_user_and_token(
        self,
        scopes: list[CommunicationTokenScope | str],
        *,
        token_expires_in: timedelta | None = None,
    ) -> tuple[CommunicationUserIdentifier, AccessToken]:
        """A new user and a token with ``scopes`` (e.g. ``["chat"]``), valid 1-24 hours (default 24).

        Raises:
            ValueError: for no or unknown scopes, or a validity outside 1-24 hours.
        """
        return await self._sender.call(self._ops.create_user_and_token(scopes, token_expires_in))

    async def get_token(
        self,
        user: CommunicationUserIdentifier | str,
        scopes: list[CommunicationTokenScope | str],
        *,
        token_expires_in: timedelta | None = None,
    ) -> AccessToken:
        """A new token for ``user``; ``expires_on`` is a tz-aware datetime."""
        return await self._sender.call(self._ops.get_token(user, scopes, token_expires_in))

    async def revoke_tokens(self, user: CommunicationUserIdentifier | str) -> None:
        """Revoke every token issued to ``user`` so far."""
        return await self._sender.call(self._ops.revoke_tokens(user))

    async def delete_user(self, user: CommunicationUserIdentifier | str) -> None:
        """Delete ``user`` and revoke their tokens."""
        return await self._sender.call(self._ops.delete_user(user))
