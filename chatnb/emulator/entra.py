"""Microsoft Entra ID on the Identity API: ``chatnb serve --oauth basic`` (Azurite's name and meaning).

A resource with local authentication disabled accepts ``Authorization: Bearer <Entra ID access token>``
on the Identity API instead of the access key's HMAC signature: what ``CommunicationIdentityClient(endpoint,
DefaultAzureCredential())`` sends, a token asked for the scope :data:`ENTRA_SCOPE`. With ``oauth="basic"``
the emulator accepts such a token after checking, as Azurite's basic OAuth does:

- its audience (``aud``): ``https://communication.azure.com`` (with or without the trailing ``/``);
- its issuer's form (``iss``): ``https://sts.windows.net/<tenant>/`` (v1 tokens) or
  ``https://login.microsoftonline.com/<tenant>/v2.0`` (v2), the tenant a GUID;
- its expiry (``exp``) and not-before (``nbf``), by the machine's clock (Entra ID issued it by that
  clock, not the emulator's), with 5 minutes of leeway for ``nbf``.

**The signature is not checked**: the emulator cannot reach Entra ID's keys, and a local test would not
have a token they sign. So anyone who can reach the emulator can forge a token; that is why it is off by
default (the Identity API then accepts HMAC only, and a bearer token gets 401 saying so) and why a bearer
token is refused over plain HTTP (as azure-core's bearer-token policy refuses to send one). HMAC-signed
requests keep working either way.
"""

from __future__ import annotations

import re
import time
from typing import Any

import jwt

from .errors import Unauthorized

__all__ = ["ENTRA_AUDIENCES", "ENTRA_SCOPE", "OAUTH_MODES", "verify_entra_token"]

ENTRA_SCOPE = "https://communication.azure.com//.default"
ENTRA_AUDIENCES = frozenset({"https://communication.azure.com", "https://communication.azure.com/"})
OAUTH_MODES = ("basic",)
_GUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_ISSUER = re.compile(rf"https://sts\.windows\.net/{_GUID}/|https://login\.microsoftonline\.com/{_GUID}/v2\.0")
_NBF_LEEWAY_S = 300


def verify_entra_token(
    token: str, *, oauth: str | None, scheme: str, now: float | None = None
) -> dict[str, Any]:
    """The claims of an Entra ID access token the Identity API accepts (see the module docstring).

    Raises:
        Unauthorized: if OAuth is off, the request is plain HTTP, or the token is not a JWT, has another
            audience, an issuer not of Entra ID's form, has expired or is not yet valid.
    """
    if oauth not in OAUTH_MODES:
        raise Unauthorized(
            "This emulator's Identity API accepts the access key's HMAC signature only; start it with "
            "`chatnb serve --oauth basic` (or Emulator(oauth='basic')) to accept Entra ID bearer tokens."
        )
    if scheme != "https":
        raise Unauthorized("Entra ID bearer tokens are accepted over HTTPS only, not plain HTTP.")
    try:
        claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    except jwt.InvalidTokenError:
        raise Unauthorized("The bearer token is not a JWT (an Entra ID access token).") from None
    except (ValueError, TypeError):
        raise Unauthorized("The bearer token is not a JWT (an Entra ID access token).") from None
    audiences = claims.get("aud")
    audiences = [audiences] if isinstance(audiences, str) else audiences
    if not isinstance(audiences, list) or not ENTRA_AUDIENCES & {a for a in audiences if isinstance(a, str)}:
        raise Unauthorized(
            f"The bearer token's audience {str(claims.get('aud'))[:80]!r} is not "
            f"https://communication.azure.com (ask Entra ID for the scope {ENTRA_SCOPE!r})."
        )
    issuer = claims.get("iss")
    if not isinstance(issuer, str) or not _ISSUER.fullmatch(issuer):
        raise Unauthorized(
            f"The bearer token's issuer {str(issuer)[:100]!r} is not of Entra ID's form "
            "(https://sts.windows.net/<tenant>/ or https://login.microsoftonline.com/<tenant>/v2.0)."
        )
    current = time.time() if now is None else now
    exp, nbf = claims.get("exp"), claims.get("nbf")
    if isinstance(exp, bool) or not isinstance(exp, (int, float)):
        raise Unauthorized("The bearer token has no expiry (exp).")
    if exp <= current:
        raise Unauthorized("The bearer token has expired.")
    if isinstance(nbf, (int, float)) and not isinstance(nbf, bool) and nbf > current + _NBF_LEEWAY_S:
        raise Unauthorized("The bearer token is not valid yet (nbf).")
    return claims
