"""``CommunicationTokenCredential``: a user's access token, refreshed before it expires.

>>> credential = CommunicationTokenCredential(token)                       # fixed token
>>> credential = CommunicationTokenCredential(token, token_refresher=fetch)   # refreshed on demand
>>> token = await credential.get_token()
>>> token.expires_on
datetime.datetime(2026, ..., tzinfo=datetime.timezone.utc)

With a ``token_refresher`` (a callable returning a fresh token: an :class:`~chatnb.AccessToken`, a token
string, or anything with ``.token`` and ``.expires_on`` such as the official SDK's tokens), ``get_token``
refreshes when the token is within 10 minutes of expiring. The chatnb.aio credential also takes a
coroutine function, and runs a plain refresher in a worker thread so that the event loop goes on.

With ``proactive_refresh=True`` a background job (a thread for the sync credential, a task on the
running loop for the chatnb.aio one) refreshes 10 minutes before expiry. A failed background refresh is
logged (without the token) and tried again with a growing backoff (:class:`~chatnb._retry.Backoff`);
``get_token`` still refreshes on demand. Close the credential (or use it as a context manager) when done.
The credential is safe to share (threads or tasks), and neither its repr nor its errors show the token.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from .._retry import Backoff
from .._tokens import (
    REFRESH_WINDOW,
    coerce_access_token,
    first_token,
    refresh_mode,
    seconds_left,
    token_expiry,
    token_user_id,
)
from ..models import AccessToken
from ._flavour import Background, Lock, call_refresher, check_refresher

__all__ = ["REFRESH_BACKOFF", "CommunicationTokenCredential", "token_expiry", "token_user_id"]

log = logging.getLogger("chatnb.credential")

REFRESH_BACKOFF = Backoff(initial=1.0, maximum=60.0, jitter=True)
"""How long a proactive refresh waits before trying again after a failure."""


class CommunicationTokenCredential:
    """A user's access token for the Chat API, optionally refreshed.

    Args:
        token: the access token (a JWT, as ``CommunicationIdentityClient.get_token`` issues).
        token_refresher: a callable returning a fresh token; called when the token is within 10 minutes
            of expiry.
        proactive_refresh: refresh in the background before expiry (needs ``token_refresher``).

    Raises:
        TypeError: if ``token`` is not a string.
        ValueError: if it is not a JWT with ``exp``, or ``proactive_refresh`` lacks a refresher.
    """

    def __init__(
        self,
        token: str,
        *,
        token_refresher: Callable[[], Any] | None = None,
        proactive_refresh: bool = False,
    ) -> None:
        self._token = first_token(token, token_refresher, proactive_refresh)
        check_refresher(token_refresher)
        self._refresher = token_refresher
        self._proactive = proactive_refresh
        self._lock = Lock()
        self._closed = False
        self._background = (
            Background(self._refresh_loop, "chatnb-token-refresh") if proactive_refresh else None
        )
        if self._background is not None:
            self._background.start()

    def __repr__(self) -> str:
        expires = self._token.expires_on.isoformat()
        refresh = refresh_mode(self._proactive, self._refresher)
        return f"<aio.CommunicationTokenCredential expires_on={expires} refresh={refresh}>"

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        """The current token, refreshed first if it expires within 10 minutes and a refresher is set.

        Raises:
            RuntimeError: if a proactively refreshing credential was closed.
            ValueError: if the refresher returns an expired token. Whatever the refresher raises.
        """
        if self._closed and self._proactive:
            raise RuntimeError("this CommunicationTokenCredential was closed")
        if self._background is not None:
            self._background.start()
        if self._refresher is None or seconds_left(self._token) > REFRESH_WINDOW.total_seconds():
            return self._token
        async with self._lock:
            if seconds_left(self._token) <= REFRESH_WINDOW.total_seconds():
                await self._refresh(self._refresher)
            return self._token

    async def refresh(self) -> bool:
        """Refresh the token now, whatever its expiry says (the chat client calls it once after a 401: the
        service ended the token early, by its clock or a revocation); ``False`` without a refresher.

        Raises:
            ValueError: if the refresher returns an expired token. Whatever the refresher raises.
        """
        if self._refresher is None:
            return False
        async with self._lock:
            await self._refresh(self._refresher)
        return True

    async def _refresh(self, refresher: Callable[[], Any]) -> None:
        fresh = coerce_access_token(await call_refresher(refresher))
        if seconds_left(fresh) <= 0:
            raise ValueError("the token returned by token_refresher has already expired")
        self._token = fresh

    def _next_refresh(self) -> float:
        """Seconds until the background job refreshes: 10 minutes before expiry, or half the time left
        once that has passed."""
        remaining, window = seconds_left(self._token), REFRESH_WINDOW.total_seconds()
        return remaining - window if remaining > window else max(remaining / 2, 1.0)

    async def _refresh_loop(self) -> None:
        background, refresher = self._background, self._refresher
        if background is None or refresher is None:  # not proactive: nothing to do
            return
        failures, delay = 0, self._next_refresh()
        while not self._closed:
            await background.sleep(delay)
            async with self._lock:
                if self._closed:
                    return
                if seconds_left(self._token) <= REFRESH_WINDOW.total_seconds():  # else refreshed meanwhile
                    try:
                        await self._refresh(refresher)
                    except Exception as exc:  # the refresher failed: log it, try again after a backoff
                        delay = REFRESH_BACKOFF.delay(failures)
                        failures += 1
                        self._log_failure(exc, failures, delay)
                        continue
                    if failures:
                        log.info("background token refresh succeeded after %d failed attempts", failures)
                    failures = 0
            delay = self._next_refresh()

    def _log_failure(self, exc: Exception, failures: int, delay: float) -> None:
        reason = str(exc).replace(self._token.token, "<token>")
        log.log(
            logging.WARNING if failures == 1 else logging.INFO,
            "background token refresh failed (%s%s); trying again in %.1f s (failure %d)",
            type(exc).__name__,
            f": {reason}" if reason else "",
            delay,
            failures,
        )

    async def close(self) -> None:
        """Stop proactive refreshing."""
        self._closed = True
        if self._background is not None:
            await self._background.stop()

    async def __aenter__(self) -> CommunicationTokenCredential:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
