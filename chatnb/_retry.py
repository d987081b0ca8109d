"""The one backoff policy, and when a request is retried.

:class:`Backoff` is the only backoff formula in chatnb: ``initial * 2**attempt`` capped at ``maximum``,
optionally jittered, never below a floor the server asked for. Everything that waits before trying again
uses it: the request retries of every client, the poller and the export (through :class:`RetryPolicy`),
the event stream's and the poller's reconnects, the export's extra page retries and the credentials'
background token refresh after a failure.

A server can ask for a wait (``Retry-After``, ``retry-after-ms``, the event stream's ``retry:`` field), and
chatnb honours it, up to :data:`MAX_SERVER_WAIT` (60 s): a request is not retried after a longer wait
(its ``RateLimitError`` / ``ServiceUnavailableError`` says what was asked and the cap), and a reconnect
loop waits the cap at most. ``Retry-After: 99999999`` never puts anything to sleep for years.
"""

from __future__ import annotations

import email.utils
import math
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import httpx

__all__ = ["MAX_SERVER_WAIT", "Backoff", "RetryPolicy", "parse_retry_after", "seconds_text"]

MAX_SERVER_WAIT = 60.0
"""The longest chatnb waits because a server asked (``Retry-After``, ``retry-after-ms``, ``retry:``)."""


def seconds_text(seconds: float) -> str:
    """``seconds`` for a message: ``0.25``, ``60``, ``99,999,999``."""
    return f"{seconds:,.0f}" if seconds >= 1000 else f"{seconds:.3g}"


def _seconds(text: str, scale: float = 1.0) -> float | None:
    try:
        value = float(text) / scale
    except ValueError:
        return None
    return max(0.0, value) if math.isfinite(value) else None


def parse_retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds a response asks to wait: ``retry-after-ms``, ``x-ms-retry-after-ms``, or ``Retry-After``
    in seconds or as an HTTP-date. ``None`` when it does not say (or says nonsense: ``inf``, ``nan``).

    This is what the server asked, which may be far more than chatnb waits: what waits caps it at
    :data:`MAX_SERVER_WAIT` (:meth:`Backoff.delay`, :meth:`RetryPolicy.next_delay`)."""
    for name in ("retry-after-ms", "x-ms-retry-after-ms"):
        value = headers.get(name)
        if value is not None:
            seconds = _seconds(value, 1000)
            if seconds is not None:
                return seconds
    value = headers.get("retry-after")
    if value is None:
        return None
    seconds = _seconds(value)
    if seconds is not None:
        return seconds
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff: attempt ``n`` (from 0) waits ``initial * 2**n`` seconds, capped at ``maximum``.

    With ``jitter`` each wait is a random 50-100 % of that (loops that many clients run at once, such
    as reconnects, then do not come back in step). What a server asks for (``floor``) is honoured up to
    ``floor_cap`` (:data:`MAX_SERVER_WAIT`).

    >>> Backoff(0.5, 3).delay(2)
    2.0
    >>> Backoff(0.5, 3).delay(0, floor=99999999)
    60.0
    """

    initial: float = 0.5
    maximum: float = 30.0
    jitter: bool = False
    floor_cap: float = MAX_SERVER_WAIT

    def delay(self, attempt: int, floor: float | None = None) -> float:
        """Seconds to wait before retry number ``attempt + 1``; never less than ``floor`` (what the
        server asked for: a ``Retry-After``, the event stream's ``retry:`` field) when given, up to
        ``floor_cap``."""
        step: float = min(self.maximum, self.initial * 2.0 ** min(attempt, 30))
        if self.jitter:
            step *= 0.5 + random.random() / 2
        return step if floor is None else max(step, min(floor, self.floor_cap))


@dataclass(frozen=True)
class RetryPolicy:
    """When to retry: only 429 and 503 (nothing else is retried), at most ``max_retries`` times.

    The wait honours the response's ``Retry-After`` (seconds or HTTP-date); without one it backs off
    exponentially, ``backoff_factor * 2**n`` capped at ``backoff_max`` (:class:`Backoff`). A retry that
    would take the total wait past ``max_total_wait`` is not made, nor one after a ``Retry-After`` longer
    than ``max_server_wait`` (60 s): the 429/503 is raised as ``RateLimitError`` /
    ``ServiceUnavailableError`` with its ``retry_after`` (and, for a wait too long, a message naming the
    wait asked and the cap).

    >>> ChatClient(endpoint, credential, retry_policy=RetryPolicy(max_retries=0))  # never retry
    """

    max_retries: int = 6
    backoff_factor: float = 0.5
    backoff_max: float = 30.0
    max_total_wait: float = 120.0
    statuses: frozenset[int] = field(default=frozenset({429, 503}))
    max_server_wait: float = MAX_SERVER_WAIT

    @property
    def backoff(self) -> Backoff:
        """The backoff used when a response does not say how long to wait."""
        return Backoff(self.backoff_factor, self.backoff_max)

    def next_delay(self, response: httpx.Response, retries: int, waited: float) -> float | None:
        """Seconds to wait before retrying ``response``'s request, or ``None`` to stop and return it."""
        if response.status_code not in self.statuses or retries >= self.max_retries:
            return None
        asked = parse_retry_after(response.headers)
        if asked is None:
            delay = self.backoff.delay(retries)
            return None if waited + delay > self.max_total_wait else delay
        return None if asked > self.longest_wait(waited) else asked

    def longest_wait(self, waited: float) -> float:
        """The longest wait a server can ask for before the next retry, after ``waited`` seconds of
        waiting: what is left of ``max_total_wait``, and never more than ``max_server_wait``."""
        return max(0.0, min(self.max_server_wait, self.max_total_wait - waited))

    def refused_wait(self, response: httpx.Response, waited: float) -> str | None:
        """Why ``response`` (a 429/503) is not retried when it asks for a wait longer than
        :meth:`longest_wait` allows (the note its error carries: the wait asked and the caps), else
        ``None``."""
        if response.status_code not in self.statuses:
            return None
        asked = parse_retry_after(response.headers)
        if asked is None or asked <= self.longest_wait(waited):
            return None
        return (
            f"the service asked to wait {seconds_text(asked)} s, longer than chatnb waits: at most "
            f"{seconds_text(self.max_server_wait)} s a wait, {seconds_text(self.max_total_wait)} s in all "
            "(RetryPolicy); try again later"
        )
