"""The export's logic, shared by the sync and async drivers: what to list, what to write, what to record.

Nothing here sends a request. For each thread, :meth:`ExportJob.start_thread` recovers the output from
the last committed state and returns a :class:`ThreadRun`; the driver lists pages (from
``ThreadRun.link`` if it resumes, else from the start) and feeds each to :meth:`ThreadRun.feed`, which
filters, de-duplicates, writes and commits it; :meth:`ThreadRun.finish` closes the run.

**Why resuming needs care.** The service lists newest first. A run therefore cannot move the thread's
high-water mark as it goes: after the first page it has the newest messages but not the older ones. The
watermark of a run (the latest change time on its *first* page: anything changed later was not in the
listing's view) becomes the thread's watermark only when the run has walked down to the oldest page.
Until then the state keeps the run itself: the continuation link of the next page and the lowest
sequence id written, so a resumed run continues below it, and a row listed twice (a retried or
restarted listing) is never written twice. A run interrupted and resumed later first finishes that
listing; the next run picks up what changed since its watermark.

**Incremental runs** list the changes since ``watermark - lookback`` (``startTime`` matches messages
created, edited or deleted since then). The overlap is de-duplicated with the ``recent`` map of the
state (message id -> version of the rows handled inside the look-back window): a row whose version was
already exported is skipped; an edited or deleted message comes out again as a new row with its new
``version``, ``edited_on`` or ``deleted_on``. Readers keep, per message id, the row with the highest
``version`` (:func:`chatnb.read_export` does with ``latest=True``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..paging import MessagePage
from ._batch import NAT, Batch
from ._group import WriterGroup
from ._result import ExportProgress, ThreadExport
from ._state import ExportState, RunState, ThreadState
from ._store import Store
from ._writers import recover

__all__ = ["ExportCancelled", "ExportJob", "Options", "ThreadRun"]

_NS_PER_US = 1000


class ExportCancelled(Exception):
    """A worker's thread was stopped because the export stops (another thread raised, or Ctrl-C)."""


def _batch_of(pages: list[MessagePage], result: ThreadExport) -> Batch:
    """One batch of ``pages``; lone surrogates (which no format can write) are replaced and counted."""
    try:
        return Batch.of(pages)
    except UnicodeEncodeError:
        result.repaired += sum(page.repair_text() for page in pages)
        return Batch.of(pages)


@dataclass
class Options:
    formats: list[str]
    by_month: bool
    since_ns: int | None
    until_ns: int | None
    min_seq: int | None
    max_seq: int | None
    include_system: bool
    include_deleted: bool
    incremental: bool
    lookback_us: int
    page_size: int
    rows_per_file: int
    batch_rows: int = 2000
    csv_guard: bool = True

    @property
    def fmt(self) -> str:
        """The format (the formats joined with ``+`` when there are several)."""
        return "+".join(self.formats)

    def state_key(self) -> dict[str, Any]:
        """The settings an incremental run must share with the runs before it."""
        key: dict[str, Any] = {
            "format": self.formats[0] if len(self.formats) == 1 else sorted(self.formats),
            "partition_by": "month" if self.by_month else None,
            "since_ns": self.since_ns,
            "until_ns": self.until_ns,
            "min_sequence_id": self.min_seq,
            "max_sequence_id": self.max_seq,
            "include_system": self.include_system,
            "include_deleted": self.include_deleted,
        }
        if "csv" in self.formats:
            key["csv_formulas"] = "escape" if self.csv_guard else "keep"
        return key


class ExportJob:
    """One call of ``export_history``: the options, the state and the counters across threads.

    Workers exporting threads at the same time share it: the state takes snapshots under its own lock,
    and the counters, the progress bar and ``on_page`` are updated under :attr:`lock`.
    """

    def __init__(
        self,
        store: Store,
        options: Options,
        *,
        on_page: Callable[[ExportProgress], None] | None,
        bar: Any,
    ) -> None:
        self.store = store
        self.options = options
        self.on_page = on_page
        self.bar = bar
        self.lock = threading.Lock()
        key = options.state_key()
        if options.incremental:
            self.state = ExportState.load(store, key)
        else:
            try:
                self.state = ExportState.load(store, key)
            except ValueError:
                old = ExportState.thread_ids_of_any(store)
                self.state = ExportState(store, key)
                self.state.save(force=True)  # before the files it no longer names are removed
                for thread_id in old:
                    recover(store, thread_id, {})
        self.total_pages = 0
        self.total_written = 0
        self.stopping = threading.Event()  # set when the export stops: workers end at their next page

    def start_thread(self, thread_id: str, topic: str) -> ThreadRun:
        """Recover the thread's files to the last commit and set up the run to do (or finish)."""
        ts = self.state.thread(thread_id)
        if not self.options.incremental and (ts.files or ts.run is not None or ts.runs):
            ts = ThreadState()  # saved before its files are removed: the state never names a missing file
            self.state.put(thread_id, ts)
            self.state.save(force=True)
        elif not self.options.incremental:
            ts = ThreadState()
        recover(self.store, thread_id, ts.files)
        return ThreadRun(self, thread_id, topic, ts)

    def progress(self, run: ThreadRun, listed: int, written: int) -> None:
        """Count a page in the totals, the bar and ``on_page``."""
        with self.lock:
            self.total_pages += 1
            self.total_written += written
            total_pages, total_written = self.total_pages, self.total_written
            if self.bar is not None:
                self.bar.update(listed)
                self.bar.set_postfix(pages=total_pages, written=total_written, refresh=False)
        if self.on_page is not None:
            r = run.result
            self.on_page(
                ExportProgress(run.thread_id, r.pages, r.listed, r.written, total_pages, total_written)
            )


class ThreadRun:
    """One run over one thread's listing (new, or resumed from the state)."""

    def __init__(self, job: ExportJob, thread_id: str, topic: str, ts: ThreadState) -> None:
        self.job = job
        self.thread_id = thread_id
        self.topic = topic
        self.ts = ts
        opts = job.options
        self.result = ThreadExport(thread_id, topic, resumed=ts.run is not None)
        self.prev_watermark = ts.watermark
        self.prev_cutoff = None if ts.watermark is None else ts.watermark - opts.lookback_us
        if ts.run is None:
            start = ts.watermark - opts.lookback_us if ts.watermark is not None else None
            since_us = None if opts.since_ns is None else opts.since_ns // _NS_PER_US
            if since_us is not None:
                start = since_us if start is None else max(start, since_us)
            ts.run = RunState(number=ts.runs + 1, start_time=start)
        self.run: RunState = ts.run
        self.writer = WriterGroup(
            opts.formats,
            job.store,
            thread_id,
            run=self.run.number,
            by_month=opts.by_month,
            files=ts.files,
            parts=self.run.parts,
            rows_per_file=opts.rows_per_file,
            spools=self.run.html_pages,
            csv_guard=opts.csv_guard,
        )
        self._counted = False
        self._looked: Batch | None = None  # the batch of the only pending page, if it was looked into
        self._pending: list[MessagePage] = []
        self._pending_rows = 0
        self._next_link: str | None = self.run.next_link

    @property
    def start_time_us(self) -> int | None:
        return self.run.start_time

    @property
    def link(self) -> str | None:
        """Where a resumed run continues (the next page's link), or ``None`` to list from the start."""
        return self.run.next_link

    @property
    def listing_done(self) -> bool:
        """Whether the listing was complete already (the run was stopped while finishing)."""
        return self.run.listing_done

    def feed(self, page: MessagePage) -> bool:
        """Take one page of the listing (the service's order: newest first); ``False`` once the listing
        is done.

        Pages are gathered until ``batch_rows`` messages (or the end of the listing), then filtered,
        written and committed together (one :class:`~chatnb.export._batch.Batch` of all of them): the
        conversions work much faster on a few thousand rows than on a page of 200, and a resumed export
        repeats at most one batch of listing. A page's own batch is only built when it is looked into:
        the first page of a run, and every page with ``min_sequence_id``.
        """
        if self.job.stopping.is_set():
            raise ExportCancelled("the export was stopped")
        opts = self.job.options
        run = self.run
        n = len(page)
        next_link = page.continuation_token
        more = next_link is not None
        looks = not run.first_page_done or opts.min_seq is not None or (self.job.bar and not self._counted)
        looked = _batch_of([page], self.result) if n > 0 and looks else None
        if looked is not None:
            if not run.first_page_done:
                # the watermark is the newest change on the *first* page: what the listing could see
                run.watermark = int(looked.change_ns().max()) // _NS_PER_US
            if not self._counted:
                self._counted = True
                if self.job.bar is not None:
                    low = opts.min_seq or 1
                    top = int(looked.seq.max())
                    with self.job.lock:
                        self.job.bar.total = (self.job.bar.total or 0) + max(top - low + 1, n)
                        self.job.bar.refresh()
            if opts.min_seq is not None and int(looked.seq.min()) <= opts.min_seq:
                more = False  # listed newest first: nothing further down is in range
        self._pending.append(page)
        self._pending_rows += n
        self._looked = looked if len(self._pending) == 1 else None
        run.first_page_done = True
        self._next_link = next_link if more else None
        self.result.pages += 1
        self.result.listed += n
        written = 0
        if not more or self._pending_rows >= opts.batch_rows:
            written = self._process()
            if more and self.writer.should_commit():
                self._commit()
        self.job.progress(self, n, written)
        return more

    def feed_last(self, page: MessagePage) -> ThreadExport:
        """Take the listing's last page (one without a continuation link) and :meth:`finish` the run."""
        self.feed(page)
        return self.finish()

    def _process(self) -> int:
        """Filter, de-duplicate and write the gathered pages; advance the run's position past them.

        Returns the rows written."""
        opts = self.job.options
        run = self.run
        pending, self._pending = self._pending, []
        pages, rows, self._pending_rows = len(pending), self._pending_rows, 0
        written = 0
        if rows:
            # one page already looked into (the first of a run) has its batch: no need to build it again
            batch = self._looked if self._looked is not None else _batch_of(pending, self.result)
            n = len(batch)
            seq = batch.seq
            created = batch.created_ns
            change_us = batch.change_ns() // _NS_PER_US
            keep = np.ones(n, dtype=bool)
            if n > 1:
                keep[1:] = seq[1:] != seq[:-1]  # a message listed twice in one batch
            if run.low_seq is not None:
                keep &= seq < run.low_seq
            if opts.min_seq is not None:
                keep &= seq >= opts.min_seq
            if opts.max_seq is not None:
                keep &= seq <= opts.max_seq
            if opts.since_ns is not None:
                keep &= created >= opts.since_ns
            if opts.until_ns is not None:
                keep &= created < opts.until_ns
            if not opts.include_system:
                keep &= ~batch.is_system()
            keep, handled = self._dedupe(batch, keep, created // _NS_PER_US)
            self._remember(batch, handled, change_us)
            written = int(keep.sum())
            if written:
                self.writer.write(batch.take(keep, self.thread_id, self.topic))
                top = int(seq[keep].max())
                run.high_seq = top if run.high_seq is None else max(run.high_seq, top)
            low = int(seq.min())
            run.low_seq = low if run.low_seq is None else min(run.low_seq, low)
            run.listed += n
        self._looked = None
        run.pages += pages
        run.written += written
        run.next_link = self._next_link
        run.listing_done = self._next_link is None
        self.result.written += written
        return written

    def _dedupe(
        self, batch: Batch, keep: np.ndarray[Any, Any], created_us: np.ndarray[Any, Any]
    ) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        """Drop rows already exported in this version and deleted rows not to be written.

        Returns the rows to write and the rows handled (written, or deliberately not written because
        they are deleted), which the ``recent`` map remembers.
        """
        opts = self.job.options
        recent = self.ts.recent
        handled = keep.copy()
        deleted = batch.deleted_ns != NAT
        idx = np.flatnonzero(keep)
        if recent and len(idx):
            ids = batch.values("id", idx)
            versions = batch.values("version", idx)
            for i, id_, version in zip(idx.tolist(), ids, versions, strict=True):
                seen = recent.get(id_)
                if seen is not None and seen[0] == version:
                    keep[i] = False
                    handled[i] = False
        if not opts.include_deleted:
            drop = keep & deleted
            if drop.any():
                if self.prev_cutoff is not None:
                    rows = np.flatnonzero(drop)
                    for i, id_ in zip(rows.tolist(), batch.values("id", rows), strict=True):
                        if id_ in recent or created_us[i] < self.prev_cutoff:
                            drop[i] = False  # was exported alive: write the deletion
                keep &= ~drop
        return keep, handled

    def _remember(self, batch: Batch, handled: np.ndarray[Any, Any], change_us: np.ndarray[Any, Any]) -> None:
        if self.run.watermark is None or not handled.any():
            return
        cutoff = self.run.watermark - self.job.options.lookback_us
        sel = handled & (change_us >= cutoff)
        if not sel.any():
            return
        rows = np.flatnonzero(sel)
        ids, versions = batch.values("id", rows), batch.values("version", rows)
        for id_, version, t in zip(ids, versions, change_us[rows].tolist(), strict=True):
            self.run.recent[str(id_)] = [str(version), int(t)]

    def _commit(self) -> None:
        self.writer.commit()
        self.ts.files = dict(self.writer.files)
        self.run.parts = self.writer.parts
        self.job.state.put(self.thread_id, self.ts)
        self.job.state.save()

    def restart(self) -> None:
        """The saved continuation link was refused: list again from the start, below ``low_seq``."""
        self.run.next_link = None

    def finish(self) -> ThreadExport:
        """The listing is complete: commit, advance the thread's watermark and close the run."""
        opts = self.job.options
        run, ts = self.run, self.ts
        self.writer.finish(self.topic)
        ts.files = dict(self.writer.files)
        if run.watermark is not None:
            ts.watermark = run.watermark if ts.watermark is None else max(ts.watermark, run.watermark)
        if ts.watermark is not None:
            cutoff = ts.watermark - opts.lookback_us
            merged = {k: v for k, v in ts.recent.items() if v[1] >= cutoff}
            merged.update({k: v for k, v in run.recent.items() if v[1] >= cutoff})
            ts.recent = merged
        if run.high_seq is not None:
            ts.last_sequence_id = max(run.high_seq, ts.last_sequence_id or 0)
        ts.runs = run.number
        ts.run = None
        self.job.state.put(self.thread_id, ts)
        self.job.state.save()
        self.job.state.after_save(self.writer.cleanup)  # what only the run needed, once the state is saved
        self.result.files = sorted(ts.files)
        return self.result

    def abort(self) -> None:
        """After an error: release files; the state keeps the last commit."""
        self.writer.close()
