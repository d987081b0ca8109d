"""The driver of ``export_history``, for the sync clients (``chatnb``) and the async ones (``chatnb.aio``):
written once, async, in ``chatnb/export/_aio.py``; ``chatnb/export/_sync.py`` is generated from it
(``scripts/unasync.py``). See :mod:`chatnb.export`.

>>> async with ChatClient(endpoint, credential) as chat:
...     await export_history(chat, "export/", incremental=True)

Only the sending differs between the two: listing, filtering, writing and the state are the shared logic
of :mod:`chatnb.export._job`. Threads are exported ``concurrency`` at a time (tasks in the chatnb.aio
export, threads in the sync one: :func:`chatnb.aio._flavour.run_concurrently`); within a thread the next
page is fetched while the current one is written, and pages stay in the service's order. ``on_page`` is
called from worker threads. With ``pace=True`` every request first takes a slot of one shared
:class:`~chatnb.export._pacing.Budget`.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from .._core import LinkTrail
from .._text import repair_value
from ..aio._flavour import Prefetcher, offload_whole, require_client, run_concurrently
from ..paging import MessagePage
from ._common import (
    DEFAULT_CONCURRENCY,
    DEFAULT_LOOKBACK,
    RETRYABLE,
    STALE_LINK,
    THREAD_ERRORS,
    THREADS_PAGE,
    continued,
    first_listing,
    make_bar,
    make_result,
    merge,
    prepare,
    retry_delay,
    thread_client,
)
from ._job import ExportJob, ThreadRun
from ._pacing import Budget, Slot
from ._result import ExportError, ExportProgress, ExportResult, ThreadExport, ThreadFailure

__all__ = ["export_history"]


async def _admit(budget: Budget | None, operation: str, thread_id: str | None) -> Slot | None:
    """A slot of the shared budget for one request (``None`` without pacing), waiting for it if needed."""
    if budget is None:
        return None
    while True:
        slot = budget.admit(operation, thread_id)
        if isinstance(slot, Slot):
            return slot
        await asyncio.sleep(slot)


async def _fetch(tc: Any, listing: dict[str, Any], budget: Budget | None, max_retries: int) -> MessagePage:
    """One page: paced, and asked again (same request) when throttled beyond the client's retries."""
    attempt = 0
    while True:
        slot = await _admit(budget, "list-messages", tc.thread_id)
        pages = tc.iter_message_pages(**listing)
        try:
            try:
                page: MessagePage = await anext(pages)
            finally:
                await pages.aclose()
                if slot is not None:
                    slot.done()  # when the answer came: the service saw the request before that
            return page
        except RETRYABLE as exc:
            delay = retry_delay(exc, attempt)
            if attempt >= max_retries or delay is None:
                raise
            await asyncio.sleep(delay)
            attempt += 1


async def _export_run(
    tc: Any, job: ExportJob, run: ThreadRun, budget: Budget | None, retries: int
) -> ThreadExport:
    """List the pages of one run and feed them to it. The next page is fetched while the current one
    is written, so the service and the writing work at the same time."""
    if run.listing_done:
        return await offload_whole(run.finish)
    try:
        listing = first_listing(job, run) if run.link is None else continued(run.link)
        page = await _fetch(tc, listing, budget, retries)
    except STALE_LINK:
        if run.link is None:
            raise
        run.restart()  # the saved continuation expired: list again, skipping what was written
        page = await _fetch(tc, first_listing(job, run), budget, retries)
    if page.continuation_token is None:  # the listing's only page: nothing to fetch ahead
        return await offload_whole(run.feed_last, page)
    trail = LinkTrail()  # each page is its own listing call: the loop check of Sender.pages, across them
    async with Prefetcher() as prefetch:
        while True:
            token = page.continuation_token
            if token is not None:
                trail.follow(token)
            ahead = None if token is None else prefetch.start(_fetch, tc, continued(token), budget, retries)
            try:
                more = await offload_whole(run.feed, page)
            except BaseException:
                if ahead is not None:
                    await ahead.cancel()
                raise
            if ahead is None:
                break
            if not more:
                await ahead.cancel()
                break
            page = await ahead.result()
    return await offload_whole(run.finish)


async def _export_thread(
    job: ExportJob, client: Any, thread_id: str, topic: str, budget: Budget | None, retries: int
) -> ThreadExport:
    """Export one thread: finish an interrupted run first, then catch up with what changed since."""
    tc = thread_client(client, thread_id)
    total = None
    while True:
        run = await offload_whole(job.start_thread, thread_id, topic)
        try:
            total = merge(total, await _export_run(tc, job, run, budget, retries))
        except BaseException:
            run.abort()
            raise
        if not run.result.resumed:
            return total


async def _targets(
    chat: Any, wanted: list[str] | None, budget: Budget | None
) -> list[tuple[str, str | None]]:
    """``(thread id, topic)`` of the threads to export: every live thread of the user (listed with
    their topics, one paced request per page) or the ones asked for (topics fetched by the workers)."""
    if wanted is not None:
        return [(t, None) for t in wanted]
    found: list[tuple[str, str | None]] = []
    items = chat.iter_chat_threads(results_per_page=THREADS_PAGE)
    try:
        index = 0
        while True:
            slot = None
            if index % THREADS_PAGE == 0:  # the next item may need the next page: one request
                slot = await _admit(budget, "get-thread", None)
            try:
                item = await anext(items, None)
            finally:
                if slot is not None:
                    slot.done()
            if item is None:
                break
            index += 1
            if item.deleted_on is None:
                found.append((str(item.id), item.topic or ""))
    finally:
        await items.aclose()
    return found


async def export_history(
    client: Any,
    out: str | os.PathLike[str],
    *,
    threads: str | Sequence[str] | None = None,
    format: str | Sequence[str] = "parquet",
    since: datetime | str | None = None,
    until: datetime | str | None = None,
    min_sequence_id: int | None = None,
    max_sequence_id: int | None = None,
    include_system: bool = False,
    include_deleted: bool = False,
    partition_by: str | None = None,
    incremental: bool = False,
    lookback: timedelta = DEFAULT_LOOKBACK,
    pace: bool = False,
    concurrency: int = DEFAULT_CONCURRENCY,
    results_per_page: int = 200,
    rows_per_file: int = 100_000,
    batch_rows: int = 2000,
    max_retries: int = 5,
    csv_formulas: str = "escape",
    storage_options: dict[str, Any] | None = None,
    progress: bool = True,
    on_page: Callable[[ExportProgress], None] | None = None,
) -> ExportResult:
    """Export the history of one thread, several, or every thread the user is in, into ``out``.

    Args:
        client: a :class:`~chatnb.aio.ChatClient` (or a :class:`~chatnb.aio.ChatThreadClient` for its
            thread).
        out: the output directory (created 0700 if needed), or an fsspec URL (``abfs://container/path``,
            ``s3://...``, ``memory://...``; needs ``chatnb[cloud]``); the export owns the files it writes.
        threads: a thread id or a list of them; ``None`` (or ``"all"``) exports every thread of the user.
        format: ``"parquet"`` (default), ``"csv"``, ``"jsonl"``, ``"html"`` or ``"markdown"``, or several
            (a list, or comma-separated): one listing, each format written from it.
        since, until: keep messages created at or after ``since`` and before ``until`` (datetimes or
            ISO 8601 strings; naive ones are UTC).
        min_sequence_id, max_sequence_id: keep this range of sequence ids (both inclusive).
        include_system: also export system messages (topic updated, participants added/removed).
        include_deleted: also export messages that were already deleted when first listed.
        partition_by: ``"month"`` adds ``month=YYYY-MM`` folders (by creation month, UTC).
        incremental: continue from the state of the previous export into ``out`` (see the module doc).
        lookback: how far before the high-water mark an incremental run lists again (default 2 min).
        pace: keep every request within the service's documented limits, across all workers, instead
            of running into 429s.
        concurrency: how many threads are exported at once (default 8).
        results_per_page: page size (the service allows at most 200).
        rows_per_file: rows per part file (Parquet; CSV and JSON Lines on object stores); also how often
            such an export commits.
        batch_rows: messages gathered (a few pages) before they are written and committed together.
            The state is saved after commits at most once a second (and always when the export ends),
            so a killed export lists again what it committed in its last second, at most.
        max_retries: how many more times to ask for a page after the client gave up on 429/503/network.
        csv_formulas: ``"escape"`` (default) prefixes ``'`` to CSV cells a spreadsheet would run as a
            formula (see :mod:`chatnb.export._cells`); ``"keep"`` writes them as they are.
        storage_options: options of the fsspec file system of ``out`` (credentials, endpoints).
        progress: show a tqdm progress bar (messages and pages).
        on_page: called with an :class:`ExportProgress` after each page is written.

    Returns:
        An :class:`ExportResult`: rows written, pages listed and files, per thread.

    Raises:
        ValueError, TypeError: for bad arguments, before any request; ValueError also when an
            incremental export finds a state made with other settings, or one changed outside chatnb.
            TypeError also for a client of the other flavour (a chatnb.aio client for the sync export,
            a sync one for the chatnb.aio one).
        ExportError: after every thread was tried, if some could not be exported (a service error, a
            file that cannot be written): its ``result`` lists them in ``failed``; the state keeps what
            was committed, and the next run tries them again.
        chatnb.ChatError: if the threads of the user cannot be listed.
    """
    started = time.monotonic()
    opts, wanted, chat, store = prepare(client, out, threads, locals(), require_client)
    budget = Budget() if pace else None
    targets = await _targets(chat, wanted, budget)
    bar = make_bar(progress)
    outcomes: list[ThreadExport | ThreadFailure | None] = [None] * len(targets)
    job: ExportJob | None = None
    try:
        job = await offload_whole(ExportJob, store, opts, on_page=on_page, bar=bar)

        async def export_one(index: int) -> None:
            thread_id, topic = targets[index]
            try:
                if topic is None:
                    slot = await _admit(budget, "get-thread", None)
                    try:
                        topic = (await thread_client(chat, thread_id).get_properties()).topic or ""
                    finally:
                        if slot is not None:
                            slot.done()
                topic = repair_value(topic)[0]
                outcomes[index] = await _export_thread(job, chat, thread_id, topic, budget, max_retries)
            except THREAD_ERRORS as exc:
                outcomes[index] = ThreadFailure(thread_id, topic or "", exc)

        await run_concurrently(export_one, range(len(targets)), concurrency, job.stopping.set)
    finally:
        if bar is not None:
            bar.close()
        if job is not None:  # the saves are coalesced: write the last snapshots, however the export ended
            await offload_whole(job.state.flush)
    result = make_result(store, opts, outcomes, time.monotonic() - started)
    if result.failed:
        raise ExportError(result) from result.failed[0].error
    return result
