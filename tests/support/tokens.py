"""JWTs for tests: a well-formed fake one, and the payload of a real one read the way the SDK reads it."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

__all__ = ["fake_jwt", "jwt_payload"]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def fake_jwt(seconds: float, **claims: Any) -> str:
    """A well-formed but unsigned-by-anyone JWT expiring in ``seconds`` (the emulator rejects it)."""
    payload = {"skypeid": "acs:fake", "exp": int(time.time() + seconds), **claims}
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    return f"{header}.{_b64(json.dumps(payload).encode())}.{_b64(b'not-a-signature')}"


def jwt_payload(token: str) -> dict[str, Any]:
    """The payload of a JWT, decoded the strict way the Python SDK does (standard base64 alphabet)."""
    part = token.split(".")[1]
    payload: dict[str, Any] = json.loads(base64.b64decode(part + "==").decode("ascii"))
    return payload
