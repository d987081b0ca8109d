"""Simulated distance: an ASGI middleware that delays every HTTP exchange as a network would.

``Emulator(latency_ms=50, latency_jitter_ms=10)`` and ``chatnb serve --latency-ms 50
--latency-jitter-ms 10`` give each request a round trip of 50 to 60 ms: half of it before the request
reaches the application (and the rate limiter, which counts arrivals as the real service does), half
before the response's first bytes leave (its status line and headers; for the event stream, before the
stream opens). The waits are ``asyncio.sleep``: the event loop serves other requests meanwhile, as
requests in flight on a real network do not hold up each other.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import Any

__all__ = ["LatencyMiddleware"]

Scope = dict[str, Any]
Receive = Callable[[], Any]
Send = Callable[[dict[str, Any]], Any]
ASGIApp = Callable[[Scope, Receive, Send], Any]


class LatencyMiddleware:
    """Delays every HTTP request and its response by ``latency_ms`` plus up to ``jitter_ms`` in all.

    Args:
        app: the ASGI application to wrap.
        latency_ms: the round trip's fixed part, in milliseconds.
        jitter_ms: each round trip adds a random 0 to ``jitter_ms`` milliseconds on top.
        seed: seed of the jitter's random generator (``None``: unseeded).

    Raises:
        ValueError: for a negative latency or jitter.
    """

    def __init__(self, app: ASGIApp, *, latency_ms: float, jitter_ms: float = 0.0, seed: int | None = None):
        if latency_ms < 0 or jitter_ms < 0:
            raise ValueError("latency_ms and latency_jitter_ms must not be negative")
        self.app = app
        self.latency = latency_ms / 1000
        self.jitter = jitter_ms / 1000
        self._random = random.Random(seed)

    def round_trip(self) -> float:
        """The seconds one exchange is delayed in all (fixed part plus jitter)."""
        return self.latency + (self._random.uniform(0.0, self.jitter) if self.jitter else 0.0)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        half = self.round_trip() / 2
        await asyncio.sleep(half)  # the request's way to the service
        delayed = False

        async def send_later(message: dict[str, Any]) -> None:
            nonlocal delayed
            if not delayed and message["type"] == "http.response.start":
                delayed = True
                await asyncio.sleep(half)  # the response's way back
            await send(message)

        await self.app(scope, receive, send_later)
