"""HMAC-SHA256 request signing of ACS, shared by the client (which signs) and the emulator (which verifies).

``StringToSign = METHOD + "\\n" + PATH_AND_QUERY + "\\n" + X_MS_DATE + ";" + HOST + ";" + CONTENT_HASH``,
signed with the base64-decoded access key; ``PATH_AND_QUERY`` is the request-target as sent.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from email.utils import formatdate

__all__ = ["content_hash", "hmac_headers", "sign_request"]


def content_hash(body: bytes) -> str:
    """``base64(sha256(body))``, the ``x-ms-content-sha256`` header value."""
    return base64.b64encode(hashlib.sha256(body).digest()).decode()


def sign_request(key: bytes, method: str, path_and_query: str, date: str, host: str, body: bytes) -> str:
    """The ``Signature`` of a request."""
    to_sign = f"{method.upper()}\n{path_and_query}\n{date};{host};{content_hash(body)}"
    return base64.b64encode(hmac.new(key, to_sign.encode(), hashlib.sha256).digest()).decode()


def hmac_headers(key: bytes, method: str, path_and_query: str, host: str, body: bytes) -> dict[str, str]:
    """The ``x-ms-date``, ``x-ms-content-sha256`` and ``Authorization`` headers of a signed request."""
    date = formatdate(usegmt=True)
    signature = sign_request(key, method, path_and_query, date, host, body)
    return {
        "x-ms-date": date,
        "x-ms-content-sha256": content_hash(body),
        "Authorization": "HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature="
        + signature,
    }
