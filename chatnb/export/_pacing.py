"""One request budget shared by every worker of an export: the service's documented rate limits.

``shared/reference/limits.md`` (the public "Service limits for Azure Communication Services" page) gives,
for what an export sends:

====================================  ===================  ========  ==========
operation                             scope                per 10 s  per minute
====================================  ===================  ========  ==========
list chat messages                    per user per thread  50        200
list chat messages                    per thread           250       400
get thread / list threads             per user             50        -
====================================  ===================  ========  ==========

The page documents no per-resource limit for Chat (its per-resource limits are the Identity ones, which
an export does not call); a ``"resource"`` scope is supported should one be added to :data:`LIMITS`.

A request holds a slot in each of its windows from the moment it is admitted: while it is in flight it
counts as the newest, and once answered its slot is dated by when the answer came. The service counts
a request when it arrives, which is before the answer, so a request admitted ``window`` seconds after
the answer of the request ``count`` places before it can never be over the limit, however long the
round trips and however many workers share the budget. :meth:`Budget.admit` is sans-I/O: it returns
either a :class:`Slot` or the seconds to wait before asking again; the drivers sleep in their own way.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

__all__ = ["LIMITS", "Budget", "Slot"]

Rules = tuple[tuple[int, float], ...]

#: ``operation -> ((scope, ((count, window seconds), ...)), ...)``
LIMITS: dict[str, tuple[tuple[str, Rules], ...]] = {
    "list-messages": (("user+thread", ((50, 10.0), (200, 60.0))), ("thread", ((250, 10.0), (400, 60.0)))),
    "get-thread": (("user", ((50, 10.0),)),),
}
_IN_FLIGHT = math.inf
_RECHECK = 0.005  # seconds to wait when only requests still in flight stand in the way


class Slot:
    """A request admitted by a :class:`Budget`: call :meth:`done` when its answer (or error) came."""

    def __init__(self, entries: list[list[float]], clock: Callable[[], float]) -> None:
        self._entries = entries
        self._clock = clock

    def done(self) -> None:
        now = self._clock()
        for entry in self._entries:
            if entry[0] == _IN_FLIGHT:
                entry[0] = now


class Budget:
    """Sliding windows of the documented limits, shared by the threads or tasks of one export.

    Args:
        clock: monotonic seconds (injectable for tests).
        limits: replaces :data:`LIMITS`.
        user: the caller's identity, the key of the per-user scopes (one budget serves one user).
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        limits: dict[str, tuple[tuple[str, Rules], ...]] | None = None,
        user: str = "",
    ) -> None:
        self.clock = clock
        self.limits = LIMITS if limits is None else limits
        self.user = user
        self._windows: dict[tuple[str, str, str], list[list[float]]] = {}
        self._lock = threading.Lock()
        self.admitted = 0
        self.waits = 0

    def _key(self, scope: str, thread: str | None) -> str:
        if scope == "user":
            return self.user
        if scope == "thread":
            return thread or ""
        if scope == "user+thread":
            return f"{self.user}\n{thread}"
        return ""

    def admit(self, operation: str, thread: str | None = None) -> Slot | float:
        """A slot for one request of ``operation`` (on ``thread``), or the seconds to wait first."""
        now = self.clock()
        with self._lock:
            wait = 0.0
            chosen: list[list[list[float]]] = []
            for scope, rules in self.limits[operation]:
                key = (operation, scope, self._key(scope, thread))
                history = self._windows.setdefault(key, [])
                longest = max(w for _, w in rules)
                history[:] = [e for e in history if e[0] == _IN_FLIGHT or now - e[0] < longest]
                history.sort(key=lambda e: e[0], reverse=True)
                for count, window in rules:
                    if len(history) >= count:
                        held = history[count - 1][0]
                        wait = max(wait, _RECHECK if held == _IN_FLIGHT else held + window - now)
                chosen.append(history)
            if wait > 0:
                self.waits += 1
                return wait
            entries = []
            for history in chosen:
                entry = [_IN_FLIGHT]
                history.insert(0, entry)
                entries.append(entry)
            self.admitted += 1
            return Slot(entries, self.clock)
