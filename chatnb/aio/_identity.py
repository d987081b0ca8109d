"""Async ``CommunicationIdentityClient``: the arguments and methods of
:class:`chatnb.CommunicationIdentityClient`, as coroutines."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx

from .. import _core
from .._core import RetryPolicy
from .._identity_ops import IdentityOperations
from ..models import AccessToken, CommunicationTokenScope, CommunicationUserIdentifier
from ._client import _AsyncBase

__all__ = ["CommunicationIdentityClient"]


class CommunicationIdentityClient(_AsyncBase):
    """Creates and deletes users, issues and revokes their tokens (async)."""

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
        self._ops = IdentityOperations(endpoint, credential, api_version)
        self.api_version = api_version
        self._setup(
            endpoint,
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

    async def _authorize(self, request: httpx.Request) -> None:
        self._ops.sign(request)

    async def create_user(self) -> CommunicationUserIdentifier:
        return await self._send(self._ops.create_user())

    async def create_user_and_token(
        self,
        scopes: list[CommunicationTokenScope | str],
        *,
        token_expires_in: timedelta | None = None,
    ) -> tuple[CommunicationUserIdentifier, AccessToken]:
        return await self._send(self._ops.create_user_and_token(scopes, token_expires_in))

    async def get_token(
        self,
        user: CommunicationUserIdentifier | str,
        scopes: list[CommunicationTokenScope | str],
        *,
        token_expires_in: timedelta | None = None,
    ) -> AccessToken:
        return await self._send(self._ops.get_token(user, scopes, token_expires_in))

    async def revoke_tokens(self, user: CommunicationUserIdentifier | str) -> None:
        return await self._send(self._ops.revoke_tokens(user))

    async def delete_user(self, user: CommunicationUserIdentifier | str) -> None:
        return await self._send(self._ops.delete_user(user))
