"""Access tokens: what chatnb reads from a JWT, and what both credentials (sync and async) share.

>>> token_expiry(token)        # the 'exp' claim, a tz-aware UTC datetime
>>> token_user_id(token)       # '8:acs:...', the user the token was issued to

Nothing here verifies a signature: the service does that. These helpers only read the claims a client
needs (when to refresh, who it is), and their errors never show the token.

Every token is cleaned where a credential gets it (built, refreshed, or asked with ``get_token()``):
surrounding whitespace (a trailing newline from a file or a pipe) is stripped, and a token with any other
character a bearer token cannot hold (RFC 6750: letters, digits, ``-._~+/``, then ``=``) is refused with a
``ValueError`` that does not show it, before it could reach a header.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from ._time import parse_rfc3339
from .models import AccessToken

__all__ = [
    "REFRESH_WINDOW",
    "clean_token",
    "coerce_access_token",
    "first_token",
    "refresh_mode",
    "seconds_left",
    "token_expiry",
    "token_getter",
    "token_text",
    "token_user_id",
    "wrap_credential",
]

REFRESH_WINDOW = timedelta(minutes=10)

_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")


def clean_token(token: str) -> str:
    """``token`` without surrounding whitespace.

    Raises:
        ValueError: if it is empty, or holds a character a bearer token cannot (a control character, a
            space, a quote, non-ASCII...): the message does not show the token.
    """
    text = token.strip()
    if not text:
        raise ValueError("the access token is empty")
    if _B64TOKEN.fullmatch(text) is None:
        raise ValueError(
            "the access token holds characters a bearer token cannot have (RFC 6750: letters, digits, "
            "'-._~+/', then '='), so it cannot be sent in a header; the token is not shown"
        )
    return text


def _claims(token: object) -> dict[str, Any]:
    if not isinstance(token, str):
        raise ValueError("the access token is not a string")
    parts = token.split(".")
    if len(parts) < 2:
        raise ValueError("the access token is not a JWT (expected header.payload.signature)")
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise ValueError("the access token's payload is not readable JSON") from None
    if not isinstance(claims, dict):
        raise ValueError("the access token's payload is not a JSON object")
    return claims


def token_expiry(token: str) -> datetime:
    """The ``exp`` claim of a JWT access token, as a tz-aware UTC datetime.

    Raises:
        ValueError: if ``token`` is not a JWT with a numeric ``exp`` (the message never shows the token).
    """
    try:
        exp = _claims(token)["exp"]
    except (ValueError, KeyError):
        raise ValueError("the access token's payload has no readable 'exp' claim") from None
    if isinstance(exp, bool) or not isinstance(exp, int | float):
        raise ValueError("the access token's 'exp' claim is not a number")
    return datetime.fromtimestamp(exp, timezone.utc)


def token_user_id(token: str) -> str:
    """The raw ACS id (``8:acs:...``) of the user an access token was issued to (its ``skypeid`` claim).

    Raises:
        ValueError: if ``token`` names no ACS user (the message never shows the token).
    """
    try:
        user = _claims(token)["skypeid"]
    except (ValueError, KeyError):
        raise ValueError("the access token names no ACS user (no readable 'skypeid' claim)") from None
    if not isinstance(user, str | int) or isinstance(user, bool) or not str(user):
        raise ValueError("the access token names no ACS user (no readable 'skypeid' claim)")
    return "8:" + str(user).removeprefix("8:")


def coerce_access_token(value: object) -> AccessToken:
    """A refresher's result as an :class:`AccessToken`.

    Accepts our ``AccessToken``, a token string, or an object with ``.token`` and ``.expires_on`` (an
    epoch number, a datetime, or the RFC 3339 string the official identity SDK returns). The token is
    cleaned (:func:`clean_token`).

    Raises:
        TypeError: for anything else. ValueError: for a token string that is not a JWT with ``exp``, or
            that a header cannot carry.
    """
    if isinstance(value, str):
        cleaned = clean_token(value)
        return AccessToken(cleaned, token_expiry(cleaned))
    token = getattr(value, "token", None)
    expires = getattr(value, "expires_on", None)
    if not isinstance(token, str):
        raise TypeError(
            f"a token refresher must return an AccessToken or a token string, not {type(value).__name__}"
        )
    text = clean_token(token)
    if isinstance(value, AccessToken) and text == value.token:
        return value
    if isinstance(expires, datetime):
        when = expires if expires.tzinfo else expires.replace(tzinfo=timezone.utc)
    elif isinstance(expires, int | float) and not isinstance(expires, bool):
        when = datetime.fromtimestamp(expires, timezone.utc)
    elif isinstance(expires, str):
        when = parse_rfc3339(expires)
    else:
        when = token_expiry(text)
    return AccessToken(text, when)


def token_getter(credential: object) -> Callable[..., Any]:
    """The ``get_token`` method of ``credential`` (sync or async).

    Raises:
        TypeError: if it has none.
    """
    get = getattr(credential, "get_token", None)
    if not callable(get):
        raise TypeError(f"credential must have get_token(), not {type(credential).__name__}")
    return get  # type: ignore[no-any-return]


def token_text(result: object) -> str:
    """The token string of a credential, or of what its ``get_token()`` returned (a string, or anything
    with a string ``.token``), cleaned (:func:`clean_token`).

    Raises:
        TypeError: if it holds no token string. ValueError: for a token a header cannot carry.
    """
    token = result if isinstance(result, str) else getattr(result, "token", None)
    if not isinstance(token, str):
        raise TypeError("credential.get_token() returned no token")
    return clean_token(token)


def seconds_left(token: AccessToken) -> float:
    """Seconds until ``token`` expires (negative once it has)."""
    return token.expires_on.timestamp() - time.time()


def first_token(token: object, token_refresher: object, proactive_refresh: bool) -> AccessToken:
    """Check the arguments of a credential (sync or async) and read the token's expiry.

    Raises:
        TypeError: for a token that is not a string, or a refresher that is not callable.
        ValueError: for a token that is not a JWT with ``exp`` or that a header cannot carry
            (:func:`clean_token`), or ``proactive_refresh`` without refresher.
    """
    if not isinstance(token, str):
        raise TypeError("token must be a string")
    if token_refresher is not None and not callable(token_refresher):
        raise TypeError("token_refresher must be callable")
    if proactive_refresh and token_refresher is None:
        raise ValueError("proactive_refresh=True needs a token_refresher")
    text = clean_token(token)
    return AccessToken(text, token_expiry(text))


def refresh_mode(proactive: bool, refresher: object) -> str:
    """How a credential refreshes, for its repr: ``proactive``, ``on demand`` or ``none``."""
    return "proactive" if proactive else ("on demand" if refresher else "none")


def wrap_credential(credential: object, wrap: Callable[[str], Any]) -> Any:
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
