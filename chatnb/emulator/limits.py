"""Opt-in throttling and fault injection for the emulator, as one small ASGI middleware.

Both switches are off by default; a plain :class:`~chatnb.emulator.Emulator` never answers 429 or 503.

**Rate limits** (``Emulator(rate_limits=True)``, ``chatnb serve --rate-limits``) enforce the documented
limits of the real service (``shared/reference/limits.md``): each Chat operation is counted per user, per
thread or per user and thread, over a 10-second and, where documented, a 1-minute sliding window; the
Identity operations are counted per resource over 30 seconds. One row of the table is one counter, so
sending, editing and deleting messages share the "10 per 10 s per thread" budget, as do get-thread and
list-threads per user. A request over a limit is answered ``429`` with the ACS error body, ``Retry-After``
(whole seconds, rounded up) and ``retry-after-ms``, before any handler runs; only admitted requests are
counted. A Chat request is attributed to a user only when its bearer token verifies; anything else is
left to the handler, which answers 401.

**Fault injection** (``Emulator(faults=FaultPlan(rate=0.2))``, ``chatnb serve --faults 0.2``) answers a
share of the Chat, Identity and event-stream requests with 429 or 503 (and a small ``Retry-After``) or
delays them, chosen with a seeded random generator so a run can be replayed. Faults are decided before the
handler runs, so a request answered with an injected error never changed anything; a delayed request is
then served normally.
"""

from __future__ import annotations

import asyncio
import math
import random
import re
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from .bounds import ASGIApp, Receive, Scope, Send, reply
from .errors import ServiceError, ServiceUnavailable, TooManyRequests
from .tokens import TokenIssuer

__all__ = ["CHAT_LIMITS", "IDENTITY_LIMITS", "FaultInjector", "FaultPlan", "LimitsMiddleware", "RateLimiter"]


#: ``bucket -> (scope, ((count, window seconds), ...))``; scope is "user", "thread", "user+thread" or
#: "resource". Straight from the table of ``limits.md``.
CHAT_LIMITS: dict[str, tuple[str, tuple[tuple[int, float], ...]]] = {
    "create-thread/user": ("user", ((10, 10.0),)),
    "delete-thread/user": ("user", ((10, 10.0),)),
    "update-thread/thread": ("thread", ((5, 10.0),)),
    "participants/thread": ("thread", ((10, 10.0), (30, 60.0))),
    "get-thread/user": ("user", ((50, 10.0),)),
    "get-message/user+thread": ("user+thread", ((50, 10.0),)),
    "get-message/thread": ("thread", ((250, 10.0),)),
    "list-messages/user+thread": ("user+thread", ((50, 10.0), (200, 60.0))),
    "list-messages/thread": ("thread", ((250, 10.0), (400, 60.0))),
    "read-receipts/user+thread": ("user+thread", ((5, 10.0),)),
    "read-receipts/thread": ("thread", ((100, 10.0),)),
    "list-participants/user+thread": ("user+thread", ((10, 10.0),)),
    "list-participants/thread": ("thread", ((250, 10.0),)),
    "message-write/thread": ("thread", ((10, 10.0), (30, 60.0))),
    "send-read-receipt/user+thread": ("user+thread", ((10, 10.0), (30, 60.0))),
    "typing/user+thread": ("user+thread", ((5, 10.0), (15, 60.0))),
    "typing/thread": ("thread", ((10, 10.0), (30, 60.0))),
}
IDENTITY_LIMITS: dict[str, tuple[str, tuple[tuple[int, float], ...]]] = {
    "create-identity": ("resource", ((1000, 30.0),)),
    "delete-identity": ("resource", ((500, 30.0),)),
    "issue-token": ("resource", ((1000, 30.0),)),
    "revoke-tokens": ("resource", ((500, 30.0),)),
}

_T = r"/chat/threads/(?P<thread>[^/]+)"
# (method, path pattern, buckets). The first match wins.
_ROUTES: tuple[tuple[str, re.Pattern[str], tuple[str, ...]], ...] = tuple(
    (method, re.compile(pattern + r"/?\Z"), buckets)
    for method, pattern, buckets in (
        ("POST", r"/chat/threads", ("create-thread/user",)),
        ("GET", r"/chat/threads", ("get-thread/user",)),
        ("GET", _T, ("get-thread/user",)),
        ("PATCH", _T, ("update-thread/thread",)),
        ("DELETE", _T, ("delete-thread/user",)),
        ("POST", _T + r"/messages", ("message-write/thread",)),
        ("GET", _T + r"/messages", ("list-messages/user+thread", "list-messages/thread")),
        ("GET", _T + r"/messages/[^/]+", ("get-message/user+thread", "get-message/thread")),
        ("PATCH", _T + r"/messages/[^/]+", ("message-write/thread",)),
        ("DELETE", _T + r"/messages/[^/]+", ("message-write/thread",)),
        ("GET", _T + r"/participants", ("list-participants/user+thread", "list-participants/thread")),
        ("POST", _T + r"/participants/:(?:add|remove)", ("participants/thread",)),
        ("POST", _T + r"/typing", ("typing/user+thread", "typing/thread")),
        ("POST", _T + r"/readReceipts", ("send-read-receipt/user+thread",)),
        ("GET", _T + r"/readReceipts", ("read-receipts/user+thread", "read-receipts/thread")),
        ("POST", r"/identities", ("create-identity",)),
        ("DELETE", r"/identities/[^/]+", ("delete-identity",)),
        ("POST", r"/identities/[^/]+/:issueAccessToken", ("issue-token",)),
        ("POST", r"/identities/[^/]+/:revokeAccessTokens", ("revoke-tokens",)),
    )
)
_FAULT_PREFIXES = ("/chat/", "/identities", "/chatnb/events")


def _classify(method: str, path: str) -> tuple[tuple[str, ...], str | None]:
    """The rate-limit buckets of a request and the thread id it names (``((), None)`` if unlimited)."""
    path = path if path == "/" else path.rstrip("/") or "/"
    for route_method, pattern, buckets in _ROUTES:
        if method != route_method:
            continue
        match = pattern.match(path)
        if match is not None:
            return buckets, match.groupdict().get("thread")
    return (), None


class RateLimiter:
    """Sliding-window counters of the documented limits.

    Args:
        clock: monotonic seconds; injectable so that tests can step through the windows.
        limits: ``bucket -> (scope, ((count, window), ...))`` replacing some of the documented Chat and
            Identity limits (:data:`CHAT_LIMITS`, :data:`IDENTITY_LIMITS`).
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        limits: dict[str, tuple[str, tuple[tuple[int, float], ...]]] | None = None,
    ) -> None:
        self.clock = clock
        self.limits = {**CHAT_LIMITS, **IDENTITY_LIMITS, **(limits or {})}
        self._windows: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()
        self._checks = 0
        self.rejected: Counter[str] = Counter()

    def __repr__(self) -> str:
        return f"<RateLimiter {len(self.limits)} limits, {sum(self.rejected.values())} rejected>"

    @staticmethod
    def _key(scope: str, user: str | None, thread: str | None) -> str:
        if scope == "user":
            return user or ""
        if scope == "thread":
            return thread or ""
        if scope == "user+thread":
            return f"{user}\n{thread}"
        return ""

    def acquire(self, buckets: Iterable[str], *, user: str | None, thread: str | None) -> float | None:
        """Count one request in every bucket, or return the seconds to wait if any limit is reached.

        A rejected request is counted nowhere.
        """
        now = self.clock()
        with self._lock:
            self._checks += 1
            if self._checks % 4096 == 0:
                self._forget(now)
            windows: list[deque[float]] = []
            wait = 0.0
            for bucket in buckets:
                scope, rules = self.limits[bucket]
                key = (bucket, self._key(scope, user, thread))
                history = self._windows.get(key)
                if history is None:
                    history = self._windows[key] = deque(maxlen=max(n for n, _ in rules))
                for count, window in rules:
                    if len(history) >= count and now - history[-count] < window:
                        wait = max(wait, history[-count] + window - now)
                        self.rejected[bucket] += 1
                windows.append(history)
            if wait > 0:
                return wait
            for history in windows:
                history.append(now)
            return None

    def _forget(self, now: float) -> None:
        longest = max((w for _, rules in self.limits.values() for _, w in rules), default=0.0)
        stale = [key for key, history in self._windows.items() if not history or now - history[-1] > longest]
        for key in stale:
            del self._windows[key]


@dataclass(frozen=True)
class FaultPlan:
    """Which requests the emulator fails on purpose.

    Args:
        rate: share of requests (0 to 1) that get a fault.
        statuses: statuses a faulted request may be answered with (429 and 503 by default); empty for
            delays only.
        delay: seconds a delayed request waits before it is served; 0 for no delays. When positive, a
            delay is one more kind of fault, as likely as each status.
        retry_after: largest ``Retry-After`` of an injected error, in seconds; each error draws one
            uniformly from 0 to this (sent rounded up in ``Retry-After``, exactly in ``retry-after-ms``).
        seed: seed of the random generator; the same seed and request order give the same faults.
        prefixes: path prefixes that may be faulted (the Chat and Identity APIs and the event stream).
    """

    rate: float = 0.1
    statuses: tuple[int, ...] = (429, 503)
    delay: float = 0.0
    retry_after: float = 1.0
    seed: int | None = None
    prefixes: tuple[str, ...] = field(default=_FAULT_PREFIXES)

    def __post_init__(self) -> None:
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"rate must be from 0 to 1, not {self.rate!r}")
        if any(s not in (429, 503) for s in self.statuses):
            raise ValueError(f"statuses may only be 429 and 503, not {self.statuses!r}")
        if self.delay < 0 or self.retry_after < 0:
            raise ValueError("delay and retry_after must not be negative")
        if not self.statuses and self.delay == 0:
            raise ValueError("a fault plan needs statuses or a delay")


class FaultInjector:
    """Draws the faults of a :class:`FaultPlan`; ``injected`` counts them by kind (``"429"``, ``"delay"``)."""

    def __init__(self, plan: FaultPlan) -> None:
        self.plan = plan
        self._random = random.Random(plan.seed)
        self._kinds: list[int | str] = [*plan.statuses, *(["delay"] if plan.delay > 0 else [])]
        self._lock = threading.Lock()
        self.seen = 0
        self.injected: Counter[str] = Counter()

    def __repr__(self) -> str:
        return f"<FaultInjector {self.plan!r} seen={self.seen} injected={dict(self.injected)}>"

    def applies_to(self, path: str) -> bool:
        return path.startswith(self.plan.prefixes)

    def draw(self) -> tuple[int | str, float] | None:
        """``None``, or the fault of the next request: ``(status, retry_after)`` or ``("delay", seconds)``."""
        with self._lock:
            self.seen += 1
            if self._random.random() >= self.plan.rate:
                return None
            kind = self._random.choice(self._kinds)
            self.injected[str(kind)] += 1
            if kind == "delay":
                return kind, self.plan.delay
            return kind, round(self._random.uniform(0.0, self.plan.retry_after), 3)


def _bearer(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            text = value.decode("latin-1")
            kind, _, token = text.partition(" ")
            return token.strip() if kind.lower() == "bearer" and token.strip() else None
    return None


class LimitsMiddleware:
    """Answers throttled and faulted requests before ``app`` sees them; passes the rest through."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        issuer: TokenIssuer,
        limiter: RateLimiter | None = None,
        faults: FaultInjector | None = None,
    ) -> None:
        self.app = app
        self.issuer = issuer
        self.limiter = limiter
        self.faults = faults

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        if self.faults is not None and self.faults.applies_to(path):
            fault = self.faults.draw()
            if fault is not None:
                kind, seconds = fault
                if kind == "delay":
                    await asyncio.sleep(seconds)
                else:
                    cls = TooManyRequests if kind == 429 else ServiceUnavailable
                    message = "Injected fault: the emulator was asked to fail this request; retry later."
                    await _reply(send, cls(message, code=cls.default_code), seconds)
                    return
        if self.limiter is not None:
            wait = self._throttle(self.limiter, scope, path)
            if wait is not None:
                error = TooManyRequests(
                    "Rate limit exceeded: too many requests for this operation; retry after the "
                    "Retry-After interval.",
                    code="TooManyRequests",
                )
                await _reply(send, error, wait)
                return
        await self.app(scope, receive, send)

    def _throttle(self, limiter: RateLimiter, scope: Scope, path: str) -> float | None:
        buckets, thread = _classify(scope.get("method", "GET"), path)
        if not buckets:
            return None
        user = None
        if path.startswith("/chat/"):
            token = _bearer(scope)
            if token is None:
                return None
            try:
                user = self.issuer.verify(token).user_id
            except ServiceError:
                return None  # the handler answers 401
        return limiter.acquire(buckets, user=user, thread=thread)


async def _reply(send: Send, error: ServiceError, retry_after: float) -> None:
    waits = {"Retry-After": str(math.ceil(retry_after)), "retry-after-ms": str(math.ceil(retry_after * 1000))}
    await reply(send, error, waits)
