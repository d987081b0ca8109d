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

from ..credential import REFRESH_WINDOW, _remaining, coerce_access_token, token_expiry
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
        if not isinstance(token, str):
            raise TypeError("token must be a string")
        if token_refresher is not None and not callable(token_refresher):
            raise TypeError("token_refresher must be callable")
        if proactive_refresh and token_refresher is None:
            raise ValueError("proactive_refresh=True needs a token_refresher")
        self._token = AccessToken(token, token_expiry(token))
        self._refresher = token_refresher
        self._proactive = proactive_refresh
        self._lock: asyncio.Lock | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    def __repr__(self) -> str:
        refresh = "proactive" if self._proactive else ("on demand" if self._refresher else "none")
        expires = self._token.expires_on.isoformat()
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
