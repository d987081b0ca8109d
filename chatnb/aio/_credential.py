"""The async ``CommunicationTokenCredential``: ``await credential.get_token()``.

The refresher may be a coroutine function or a plain callable. With ``proactive_refresh=True`` a task on
the running loop refreshes 10 minutes before expiry; ``await credential.close()`` (or ``async with``)
stops it.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import Callable
from typing import Any

from ..credential import REFRESH_WINDOW, _remaining, coerce_access_token, first_token, refresh_mode
from ..models import AccessToken

__all__ = ["CommunicationTokenCredential"]


class CommunicationTokenCredential:
    """A user's access token for the async clients, optionally refreshed (see the sync twin)."""

    def __init__(
        self,
        token: str,
        *,
        token_refresher: Callable[[], Any] | None = None,
        proactive_refresh: bool = False,
    ) -> None:
        self._token = first_token(token, token_refresher, proactive_refresh)
        self._refresher = token_refresher
        self._proactive = proactive_refresh
        self._lock: asyncio.Lock | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    def __repr__(self) -> str:
        expires = self._token.expires_on.isoformat()
        refresh = refresh_mode(self._proactive, self._refresher)
        return f"<CommunicationTokenCredential (async) expires_on={expires} refresh={refresh}>"

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        """The current token, refreshed first if it expires within 10 minutes and a refresher is set."""
        if self._closed and self._proactive:
            raise RuntimeError("this CommunicationTokenCredential was closed")
        if self._proactive and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._refresh_loop())
        if self._refresher is None or _remaining(self._token) > REFRESH_WINDOW.total_seconds():
            return self._token
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if _remaining(self._token) <= REFRESH_WINDOW.total_seconds():
                await self._refresh()
            return self._token

    async def _refresh(self) -> None:
        assert self._refresher is not None
        result = self._refresher()
        if inspect.isawaitable(result):
            result = await result
        fresh = coerce_access_token(result)
        if _remaining(fresh) <= 0:
            raise ValueError("the token returned by token_refresher has already expired")
        self._token = fresh

    async def _refresh_loop(self) -> None:
        window = REFRESH_WINDOW.total_seconds()
        while not self._closed:
            remaining = _remaining(self._token)
            await asyncio.sleep(remaining - window if remaining > window else max(remaining / 2, 1.0))
            try:
                await self._refresh()
            except Exception:  # get_token() refreshes on demand and reports the failure
                return

    async def close(self) -> None:
        """Stop proactive refreshing."""
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def __aenter__(self) -> CommunicationTokenCredential:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
