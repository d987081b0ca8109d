"""The emulator's clock: the system's, or a manual one that only moves when told to.

Everything the service decides by time follows it: the ``createdOn``/``editedOn``... of what it stores,
message ids and versions (epoch milliseconds), the issue and expiry of access tokens (so an event stream
ends when its token expires by this clock), ``shareHistoryTime`` comparisons (they compare stored times),
the retention policy (:mod:`chatnb.emulator.retention`) and the ``eventTime`` of Event Grid events.

- ``Clock("system")`` (the default) is the machine's time; it cannot be advanced.
- ``Clock("manual")`` starts at the machine's time when it is made and then stands still: only
  :meth:`Clock.advance` moves it, forward. ``Emulator(clock="manual")`` and ``chatnb serve --clock
  manual`` use one; ``Emulator.advance(timedelta(days=31))`` or ``POST /chatnb/clock/:advance`` moves it.

What does not follow it, on purpose: the ``x-ms-date`` check of HMAC-signed requests and the expiry of
Entra ID tokens (both come from clients and Entra ID, which keep the machine's time), rate-limit windows,
timeouts, and Event Grid's retry waits (real waits, compressible with ``retry_scale``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta

from .._time import now_us

__all__ = ["CLOCK_MODES", "Clock", "ClockError"]

CLOCK_MODES = ("system", "manual")


class ClockError(ValueError):
    """The clock cannot do what was asked (advance a system clock, or go backwards)."""


class Clock:
    """Microseconds since the epoch, from the system or set by hand.

    Args:
        mode: ``"system"`` or ``"manual"``.
        start_us: where a manual clock starts (default: now).

    Raises:
        ValueError: for an unknown mode.
    """

    def __init__(self, mode: str = "system", *, start_us: int | None = None) -> None:
        if mode not in CLOCK_MODES:
            raise ValueError(f"clock must be 'system' or 'manual', not {mode!r}")
        self.mode = mode
        self._now = now_us() if start_us is None else int(start_us)
        self._lock = threading.Lock()
        self._listeners: list[Callable[[int], None]] = []

    def __repr__(self) -> str:
        return f"<Clock {self.mode} {self.now_us()}>"

    @property
    def manual(self) -> bool:
        return self.mode == "manual"

    def now_us(self) -> int:
        """The current time in microseconds since the epoch."""
        return self._now if self.mode == "manual" else now_us()

    def now(self) -> float:
        """The current time in seconds since the epoch."""
        return self.now_us() / 1_000_000

    def add_listener(self, listener: Callable[[int], None]) -> None:
        """Call ``listener(now_us)`` after every :meth:`advance` (in the thread that advanced)."""
        self._listeners.append(listener)

    def advance(self, delta: timedelta | float) -> int:
        """Move a manual clock forward by ``delta`` (a ``timedelta`` or seconds); the new time.

        Raises:
            ClockError: if the clock is the system's, or ``delta`` is negative.
        """
        seconds = delta.total_seconds() if isinstance(delta, timedelta) else float(delta)
        if self.mode != "manual":
            raise ClockError("the emulator's clock is the system's; start it with clock='manual' to move it")
        if not seconds >= 0:
            raise ClockError(f"the clock only moves forward, not by {seconds:g} s")
        with self._lock:
            self._now += round(seconds * 1_000_000)
            now = self._now
        for listener in self._listeners:
            listener(now)
        return now
