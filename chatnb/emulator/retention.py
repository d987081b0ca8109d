"""The retention policy of the 2025-03-15 Chat API, applied by the emulator's clock.

A thread created (or updated) with ``{"kind": "threadCreationDate", "deleteThreadAfterDays": N}`` is
deleted once ``N`` days have passed since its creation by the emulator's clock
(:mod:`chatnb.emulator.clock`); ``{"kind": "none"}`` (the default) keeps it. As "Chat concepts: chat data"
says, the policy in effect counts (an update during the retention period changes it), and a thread deleted
by policy is gone as if deleted through the API: it answers 404, leaves its members' listings, and
publishes ``chatThreadDeleted`` (on the event stream and to Event Grid) with no ``deletedBy``.

:class:`RetentionSweeper` finds and deletes such threads: at once whenever a manual clock is advanced (so
``Emulator.advance(timedelta(days=31))`` returns with the sweep done), and every :data:`SWEEP_INTERVAL_S`
seconds while the emulator serves (for the system clock).
"""

from __future__ import annotations

import asyncio
import logging

from .clock import Clock
from .errors import StorageUnavailable
from .store import Store

__all__ = ["SWEEP_INTERVAL_S", "RetentionSweeper"]

SWEEP_INTERVAL_S = 60.0
DAY_US = 86_400 * 1_000_000
log = logging.getLogger("chatnb.emulator")


class RetentionSweeper:
    """Deletes the threads whose retention period has passed.

    Args:
        store: the emulator's store.
        clock: its clock; a manual one triggers a sweep on every advance.
    """

    def __init__(self, store: Store, clock: Clock) -> None:
        self.store = store
        self.clock = clock
        self.deleted = 0
        clock.add_listener(self._on_advance)

    def __repr__(self) -> str:
        return f"<RetentionSweeper {self.deleted} threads deleted>"

    def _on_advance(self, now_us: int) -> None:
        self.sweep(now_us)

    def due(self, now_us: int | None = None) -> list[str]:
        """The ids of the live threads whose retention period has passed at ``now_us`` (default: now)."""
        now = self.clock.now_us() if now_us is None else now_us
        rows = self.store.query(
            "SELECT id FROM threads WHERE deleted_on IS NULL AND retention IS NOT NULL "
            "AND json_extract(retention, '$.kind') = 'threadCreationDate' "
            "AND created_on + json_extract(retention, '$.deleteThreadAfterDays') * ? <= ?",
            (DAY_US, now),
        )
        return [str(r[0]) for r in rows]

    def sweep(self, now_us: int | None = None) -> list[str]:
        """Delete every thread :meth:`due` at ``now_us``; their ids.

        Raises:
            StorageUnavailable: if the database is not available now (the next sweep tries again).
        """
        deleted = []
        for thread_id in self.due(now_us):
            if self.store.delete_thread(thread_id, None):
                deleted.append(thread_id)
        self.deleted += len(deleted)
        if deleted:
            log.info("retention policy: deleted %d threads", len(deleted))
        return deleted

    async def run(self, interval: float = SWEEP_INTERVAL_S) -> None:
        """Sweep every ``interval`` seconds, in a worker thread, until cancelled."""
        while True:
            try:
                await asyncio.to_thread(self.sweep)
            except StorageUnavailable as exc:
                log.warning("retention sweep skipped: %s", exc)
            await asyncio.sleep(interval)
