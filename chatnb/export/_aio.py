"""The driver of ``export_history``, for the sync clients (``chatnb``) and the async ones (``chatnb.aio``):
written once, async, in ``chatnb/export/_aio.py``; ``chatnb/export/_sync.py`` is generated from it
(``scripts/unasync.py``). See :mod:`chatnb.export`.

>>> async with ChatClient(endpoint, credential) as chat:
...     await export_history(chat, "export/", incremental=True)

Only the sending differs between the two: listing, filtering, writing and the state are the shared logic
of :mod:`chatnb.export._job`. The next page is fetched while the current one is written: the sync export
fetches in a helper thread; the chatnb.aio one writes in a worker thread while the event loop fetches,
so its ``on_page`` is called from that worker thread.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from .._core import LinkTrail
from ..aio._flavour import Prefetcher, offload, require_client
from ..paging import MessagePage
from ._common import (
    DEFAULT_LOOKBACK,
    RETRYABLE,
    STALE_LINK,
    alive_threads,
    continued,
    first_listing,
    make_bar,
    merge,
    prepare,
    retry_delay,
    thread_client,
)
from ._job import ExportJob, ExportProgress, ExportResult, Pacer, ThreadExport, ThreadRun
from ._state import STATE_NAME

__all__ = ["export_history"]


async def _fetch(tc: Any, listing: dict[str, Any], pacer: Pacer | None, max_retries: int) -> MessagePage:
    """One page: paced, and asked again (same request) when throttled beyond the client's retries."""
    attempt = 0
    while True:
        if pacer is not None:
            wait = pacer.delay()
            if wait > 0:
                await asyncio.sleep(wait)
        pages = tc.iter_message_pages(**listing)
        try:
            try:
                page: MessagePage = await anext(pages)
            finally:
                await pages.aclose()
                if pacer is not None:
                    pacer.sent()  # when the answer came: the service saw the request before that
            return page
        except RETRYABLE as exc:
            delay = retry_delay(exc, attempt)
            if attempt >= max_retries or delay is None:
                raise
            await asyncio.sleep(delay)
            attempt += 1


async def _export_run(job: ExportJob, tc: Any, run: ThreadRun, pace: bool, max_retries: int) -> ThreadExport:
    """List the pages of one run and feed them to it. The next page is fetched while the current one
    is written, so the service and the writing work at the same time."""
    if run.listing_done:
        return await offload(run.finish)
    pacer = job.pacers.setdefault(run.thread_id, Pacer()) if pace else None
    try:
        listing = first_listing(job, run) if run.link is None else continued(run.link)
        page = await _fetch(tc, listing, pacer, max_retries)
    except STALE_LINK:
        if run.link is None:
            raise
        run.restart()  # the saved continuation expired: list again, skipping what was written
        page = await _fetch(tc, first_listing(job, run), pacer, max_retries)
    trail = LinkTrail()  # each page is its own listing call: the loop check of Sender.pages, across them
    async with Prefetcher() as prefetch:
        while True:
            token = page.continuation_token
            if token is not None:
                trail.follow(token)
            ahead = (
                None if token is None else prefetch.start(_fetch, tc, continued(token), pacer, max_retries)
            )
            try:
                more = await offload(run.feed, page)
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
    return await offload(run.finish)


async def _export_thread(
    job: ExportJob, client: Any, thread_id: str, topic: str, pace: bool, max_retries: int
) -> ThreadExport:
    """Export one thread: finish an interrupted run first, then catch up with what changed since."""
    tc = thread_client(client, thread_id)
    total = None
    while True:
        run = job.start_thread(thread_id, topic)
        try:
            total = merge(total, await _export_run(job, tc, run, pace, max_retries))
        except BaseException:
            run.abort()
            raise
        if not run.result.resumed:
            return total


async def export_history(
    client: Any,
    out: str | os.PathLike[str],
    *,
    threads: str | Sequence[str] | None = None,
    format: str = "parquet",
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
    results_per_page: int = 200,
    rows_per_file: int = 100_000,
    batch_rows: int = 2000,
    max_retries: int = 5,
    progress: bool = True,
    on_page: Callable[[ExportProgress], None] | None = None,
) -> ExportResult:
    """Export the history of one thread, several, or every thread the user is in, into ``out``.

    Args:
        client: a :class:`~chatnb.aio.ChatClient` (or a :class:`~chatnb.aio.ChatThreadClient` for its
            thread).
        out: the output directory (created if needed); the export owns the files it writes there.
        threads: a thread id or a list of them; ``None`` (or ``"all"``) exports every thread of the user.
        format: ``"parquet"`` (default), ``"csv"``, ``"jsonl"`` or ``"html"``.
        since, until: keep messages created at or after ``since`` and before ``until`` (datetimes or
            ISO 8601 strings; naive ones are UTC).
        min_sequence_id, max_sequence_id: keep this range of sequence ids (both inclusive).
        include_system: also export system messages (topic updated, participants added/removed).
        include_deleted: also export messages that were already deleted when first listed.
        partition_by: ``"month"`` adds ``month=YYYY-MM`` folders (by creation month, UTC).
        incremental: continue from the state of the previous export into ``out`` (see the module doc).
        lookback: how far before the high-water mark an incremental run lists again (default 2 min).
        pace: stay within the service's list-messages limits instead of running into 429s.
        results_per_page: page size (the service allows at most 200).
        rows_per_file: rows per Parquet part file (also how often a Parquet export commits).
        batch_rows: messages gathered (a few pages) before they are written together, and the
            state saved; a resumed export lists at most this many messages again.
        max_retries: how many more times to ask for a page after the client gave up on 429/503/network.
        progress: show a tqdm progress bar (messages and pages).
        on_page: called with an :class:`ExportProgress` after each page is written.

    Returns:
        An :class:`ExportResult`: rows written, pages listed and files, per thread.

    Raises:
        ValueError, TypeError: for bad arguments, before any request; ValueError also when an
            incremental export finds a state made with other settings. TypeError also for a client of
            the other flavour (a chatnb.aio client for the sync export, a sync one for the chatnb.aio one).
        chatnb.ChatError: service errors (a thread that does not exist, no permission, throttling that
            outlasts the retries...). The state keeps what was committed; run again to resume.
    """
    started = time.monotonic()
    opts, wanted, chat, out_dir = prepare(client, out, threads, locals(), require_client)
    if wanted is None:
        targets = alive_threads(await chat.list_chat_threads())
    else:
        targets = []
        for thread_id in wanted:
            properties = await thread_client(chat, thread_id).get_properties()
            targets.append((thread_id, properties.topic))
    bar = make_bar(progress)
    try:
        job = ExportJob(out_dir, opts, out_dir / STATE_NAME, on_page=on_page, bar=bar)
        results = [await _export_thread(job, chat, t, topic, pace, max_retries) for t, topic in targets]
    finally:
        if bar is not None:
            bar.close()
    return ExportResult(out_dir, opts.fmt, results, time.monotonic() - started)
