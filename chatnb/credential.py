"""``CommunicationTokenCredential``: a user's access token, refreshed before it expires.

>>> credential = CommunicationTokenCredential(token)                       # fixed token
>>> credential = CommunicationTokenCredential(token, token_refresher=fetch)   # refreshed on demand
>>> credential.get_token().expires_on
datetime.datetime(2026, ..., tzinfo=datetime.timezone.utc)

With a ``token_refresher`` (a callable returning a fresh token: an :class:`~chatnb.AccessToken`, a token
string, or anything with ``.token`` and ``.expires_on`` such as the official SDK's tokens), ``get_token``
refreshes when the token is within 10 minutes of expiring. With ``proactive_refresh=True`` a background
timer refreshes 10 minutes before expiry; close the credential (or use it as a context manager) when done.
The credential is thread-safe, and neither its repr nor its errors show the token.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from ._time import parse_rfc3339
from .models import AccessToken

__all__ = [
    "REFRESH_WINDOW",
    "CommunicationTokenCredential",
    "as_credential",
    "coerce_access_token",
    "first_token",
    "refresh_mode",
    "token_expiry",
]

REFRESH_WINDOW = timedelta(minutes=10)


def token_expiry(token: str) -> datetime:
    """The ``exp`` claim of a JWT access token, as a tz-aware UTC datetime.

    Raises:
        ValueError: if ``token`` is not a JWT with a numeric ``exp`` (the message never shows the token).
    """
    parts = token.split(".")
    if len(parts) < 2:
        raise ValueError("the access token is not a JWT (expected header.payload.signature)")
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
        exp = payload["exp"]
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise ValueError("the access token's payload has no readable 'exp' claim") from None
    if isinstance(exp, bool) or not isinstance(exp, int | float):
        raise ValueError("the access token's 'exp' claim is not a number")
    return datetime.fromtimestamp(exp, timezone.utc)


def coerce_access_token(value: object) -> AccessToken:
    """A refresher's result as an :class:`AccessToken`.

    Accepts our ``AccessToken``, a token string, or an object with ``.token`` and ``.expires_on`` (an
    epoch number, a datetime, or the RFC 3339 string the official identity SDK returns).
    """
    if isinstance(value, AccessToken):
        return value
    if isinstance(value, str):
        return AccessToken(value, token_expiry(value))
    token = getattr(value, "token", None)
    expires = getattr(value, "expires_on", None)
    if not isinstance(token, str):
        raise TypeError(
            f"a token refresher must return an AccessToken or a token string, not {type(value).__name__}"
        )
    if isinstance(expires, datetime):
        when = expires if expires.tzinfo else expires.replace(tzinfo=timezone.utc)
    elif isinstance(expires, int | float) and not isinstance(expires, bool):
        when = datetime.fromtimestamp(expires, timezone.utc)
    elif isinstance(expires, str):
        when = parse_rfc3339(expires)
    else:
        when = token_expiry(token)
    return AccessToken(token, when)


def _remaining(token: AccessToken) -> float:
    return token.expires_on.timestamp() - time.time()


def first_token(token: object, token_refresher: object, proactive_refresh: bool) -> AccessToken:
    """Check the arguments of a credential (sync or async) and read the token's expiry.

    Raises:
        TypeError: for a token that is not a string, or a refresher that is not callable.
        ValueError: for a token that is not a JWT with ``exp``, or ``proactive_refresh`` without refresher.
    """
    if not isinstance(token, str):
        raise TypeError("token must be a string")
    if token_refresher is not None and not callable(token_refresher):
        raise TypeError("token_refresher must be callable")
    if proactive_refresh and token_refresher is None:
        raise ValueError("proactive_refresh=True needs a token_refresher")
    return AccessToken(token, token_expiry(token))


def refresh_mode(proactive: bool, refresher: object) -> str:
    """How a credential refreshes, for its repr: ``proactive``, ``on demand`` or ``none``."""
    return "proactive" if proactive else ("on demand" if refresher else "none")


def as_credential(credential: object, wrap: Callable[[str], Any]) -> Any:
    """A client's ``credential`` argument: a token string wrapped with ``wrap`` (the credential class of
    the client's flavour), or an object with ``get_token()``.

    Raises:
        TypeError: for anything else.
    """
    if isinstance(credential, str):
        return wrap(credential)
    if credential is None or not callable(getattr(credential, "get_token", None)):
        raise TypeError("credential must be a CommunicationTokenCredential")
    return credential


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
        self._refresher = token_refresher
        self._proactive = proactive_refresh
        self._lock = threading.RLock()
        self._timer: threading.Timer | None = None
        self._closed = False
        if proactive_refresh:
            self._schedule()

    def __repr__(self) -> str:
        expires = self._token.expires_on.isoformat()
        refresh = refresh_mode(self._proactive, self._refresher)
        return f"<CommunicationTokenCredential expires_on={expires} refresh={refresh}>"

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        """The current token, refreshed first if it expires within 10 minutes and a refresher is set.

        Raises:
            RuntimeError: if a proactively refreshing credential was closed.
            ValueError: if the refresher returns an expired token.
        """
        if self._closed and self._proactive:
            raise RuntimeError("this CommunicationTokenCredential was closed")
        token = self._token
        if self._refresher is None or _remaining(token) > REFRESH_WINDOW.total_seconds():
            return token
        with self._lock:
            if _remaining(self._token) <= REFRESH_WINDOW.total_seconds():
                self._refresh()
            return self._token

    def _refresh(self) -> None:
        assert self._refresher is not None
        fresh = coerce_access_token(self._refresher())
        if _remaining(fresh) <= 0:
            raise ValueError("the token returned by token_refresher has already expired")
        self._token = fresh
        if self._proactive:
            self._schedule()

    def _schedule(self) -> None:
        if self._closed:
            return
        if self._timer is not None:
            self._timer.cancel()
        remaining = _remaining(self._token)
        window = REFRESH_WINDOW.total_seconds()
        delay = remaining - window if remaining > window else max(remaining / 2, 1.0)
        self._timer = threading.Timer(min(delay, threading.TIMEOUT_MAX), self._background_refresh)
        self._timer.daemon = True
        self._timer.start()

    def _background_refresh(self) -> None:
        with self._lock:
            if self._closed:
                return
            try:
                self._refresh()
            except Exception:  # the next get_token() refreshes on demand and reports the failure
                self._timer = None

    def close(self) -> None:
        """Stop proactive refreshing."""
        with self._lock:
            self._closed = True
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

    def __enter__(self) -> CommunicationTokenCredential:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
