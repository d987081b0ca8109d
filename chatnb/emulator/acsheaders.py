"""The response headers the real service sends, as the recorded traffic shows them
(``shared/reference/recordings-python-sdk*/``: every answer of the Chat and Identity APIs has them).

- ``api-supported-versions``: the API's versions, oldest first, comma-separated;
- ``MS-CV``: a correlation vector, ``<22 base64 characters>.0``, new for every request;
- ``x-processing-time``: how long the emulator took, ``<ms>ms``;
- ``Strict-Transport-Security: max-age=2592000`` over HTTPS;
- ``x-ms-client-request-id``, echoed when the request asks for it (``x-ms-return-client-request-id:
  true``, as the Python identity SDK sends).

And none the recordings lack: no ``Location`` on 201 answers (none of the recorded create-thread and
send-message answers has one; no official SDK reads it), no ``Server``. The emulator's own ``/chatnb/``
endpoints get ``MS-CV`` and ``x-processing-time`` only.
"""

from __future__ import annotations

import base64
import os
import time
from collections.abc import MutableMapping
from typing import Any

from .bounds import ASGIApp, Receive, Scope, Send
from .http import CHAT_API_VERSIONS, IDENTITY_API_VERSIONS

__all__ = ["ACSHeaders", "supported_versions"]

_CHAT = ", ".join(sorted(CHAT_API_VERSIONS)).encode()
_IDENTITY = ", ".join(sorted(IDENTITY_API_VERSIONS)).encode()
_HSTS = b"max-age=2592000"


def supported_versions(path: str) -> bytes | None:
    """The ``api-supported-versions`` value for a request path, or ``None`` outside the ACS APIs."""
    if path.startswith("/chat/") or path == "/chat":
        return _CHAT
    if path.startswith(("/identities", "/teamsUser", "/access/")):
        return _IDENTITY
    return None


def _correlation_vector() -> bytes:
    return base64.b64encode(os.urandom(16))[:22] + b".0"


class ACSHeaders:
    """Adds the service's response headers to every HTTP answer of ``app``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        path: str = scope.get("path", "")
        versions = supported_versions(path)
        echo: bytes | None = None
        request_headers = dict(scope.get("headers", ()))
        if request_headers.get(b"x-ms-return-client-request-id", b"").lower() == b"true":
            echo = request_headers.get(b"x-ms-client-request-id")

        async def add_headers(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                present = {name.lower() for name, _ in headers}
                elapsed = f"{(time.perf_counter() - started) * 1000:.0f}ms".encode()
                extra = [(b"ms-cv", _correlation_vector()), (b"x-processing-time", elapsed)]
                if versions is not None:
                    extra.append((b"api-supported-versions", versions))
                    if scope.get("scheme") == "https":
                        extra.append((b"strict-transport-security", _HSTS))
                if echo and len(echo) <= 256:
                    extra.append((b"x-ms-client-request-id", echo))
                headers += [(k, v) for k, v in extra if k not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, add_headers)
