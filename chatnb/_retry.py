"""The one backoff policy, and when a request is retried.

:class:`Backoff` is the only backoff formula in chatnb: ``initial * 2**attempt`` capped at ``maximum``,
optionally jittered, never below a floor the server asked for. Everything that waits before trying again
uses it: the request retries of every client, the poller and the export (through :class:`RetryPolicy`),
the event stream's and the poller's reconnects, the export's extra page retries and the credentials'
background token refresh after a failure.
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import httpx

__all__ = ["Backoff", "RetryPolicy", "parse_retry_after"]


def parse_retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds a response asks to wait: ``retry-after-ms``, ``x-ms-retry-after-ms``, or ``Retry-After``
    in seconds or as an HTTP-date. ``None`` when it does not say (or says nonsense)."""
    for name in ("retry-after-ms", "x-ms-retry-after-ms"):
        value = headers.get(name)
        if value is not None:
            try:
                return max(0.0, float(value) / 1000)
            except ValueError:
                pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff: attempt ``n`` (from 0) waits ``initial * 2**n`` seconds, capped at ``maximum``.

    With ``jitter`` each wait is a random 50-100 % of that (loops that many clients run at once, such
    as reconnects, then do not come back in step).

    >>> Backoff(0.5, 3).delay(2)
    2.0
    """

    initial: float = 0.5
    maximum: float = 30.0
    jitter: bool = False

    def delay(self, attempt: int, floor: float | None = None) -> float:
        """Seconds to wait before retry number ``attempt + 1``; never less than ``floor`` (what the
        server asked for: a ``Retry-After``, the event stream's ``retry:`` field), when given."""
        step: float = min(self.maximum, self.initial * 2.0 ** min(attempt, 30))
        if self.jitter:
            step *= 0.5 + random.random() / 2
        return step if floor is None else max(step, floor)


@dataclass(frozen=True)
class RetryPolicy:
    """When to retry: only 429 and 503 (nothing else is retried), at most ``max_retries`` times.

    The wait honours the response's ``Retry-After`` (seconds or HTTP-date); without one it backs off
    exponentially, ``backoff_factor * 2**n`` capped at ``backoff_max`` (:class:`Backoff`). A retry that
    would take the total wait past ``max_total_wait`` is not made: the 429/503 is raised as
    ``RateLimitError`` / ``ServiceUnavailableError`` with its ``retry_after``.

    >>> ChatClient(endpoint, credential, retry_policy=RetryPolicy(max_retries=0))  # never retry
    """

    max_retries: int = 6
    backoff_factor: float = 0.5
    backoff_max: float = 30.0
    max_total_wait: float = 120.0
    statuses: frozenset[int] = field(default=frozenset({429, 503}))

    @property
    def backoff(self) -> Backoff:
        """The backoff used when a response does not say how long to wait."""
        return Backoff(self.backoff_factor, self.backoff_max)

    def next_delay(self, response: httpx.Response, retries: int, waited: float) -> float | None:
        """Seconds to wait before retrying ``response``'s request, or ``None`` to stop and return it."""
        if response.status_code not in self.statuses or retries >= self.max_retries:
            return None
        delay = parse_retry_after(response.headers)
        if delay is None:
            delay = self.backoff.delay(retries)
        if waited + delay > self.max_total_wait:
            return None
        return delay
