"""``chatnb.aio.export_history``: the export over the async clients (same options, same files, same state).

>>> from chatnb.aio import ChatClient, export_history
>>> async with ChatClient(endpoint, credential) as chat:
...     await export_history(chat, "export/", incremental=True)

Only the sending differs from :func:`chatnb.export_history`; listing, filtering, writing and the state
are the shared logic of :mod:`chatnb.export._job`. Pages are written in a worker thread
(``asyncio.to_thread``) while the event loop fetches the next one, so ``on_page`` is called from that
worker thread.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

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
    attempt = 0
    while True:
        if pacer is not None:
            wait = pacer.delay()
            if wait > 0:
                await asyncio.sleep(wait)
        pages = tc.iter_message_pages(**listing)
        try:
            try:
                page: MessagePage = await pages.__anext__()
            finally:
                await pages.aclose()
                if pacer is not None:
                    pacer.sent()
            return page
        except RETRYABLE as exc:
            if attempt >= max_retries:
                raise
            await asyncio.sleep(retry_delay(exc, attempt))
            attempt += 1


async def _export_run(job: ExportJob, tc: Any, run: ThreadRun, pace: bool, max_retries: int) -> ThreadExport:
    """List the pages of one run and feed them to it (async): pages are written in a worker thread while
    the event loop fetches the next one."""
    if run.listing_done:
        return await asyncio.to_thread(run.finish)
    pacer = job.pacers.setdefault(run.thread_id, Pacer()) if pace else None
    try:
        listing = first_listing(job, run) if run.link is None else continued(run.link)
        page = await _fetch(tc, listing, pacer, max_retries)
    except STALE_LINK:
        if run.link is None:
            raise
        run.restart()
        page = await _fetch(tc, first_listing(job, run), pacer, max_retries)
    while True:
        token = page.continuation_token
        ahead = None
        if token is not None:
            ahead = asyncio.ensure_future(_fetch(tc, continued(token), pacer, max_retries))
        try:
            more = await asyncio.to_thread(run.feed, page)
        except BaseException:
            if ahead is not None:
                ahead.cancel()
                await asyncio.gather(ahead, return_exceptions=True)
            raise
        if ahead is None:
            break
        if not more:
            ahead.cancel()
            await asyncio.gather(ahead, return_exceptions=True)
            break
        page = await ahead
    return await asyncio.to_thread(run.finish)


async def _export_thread(
    job: ExportJob, client: Any, thread_id: str, topic: str, pace: bool, max_retries: int
) -> ThreadExport:
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
    """The async twin of :func:`chatnb.export_history`, over a :class:`chatnb.aio.ChatClient` (or
    ``ChatThreadClient``); same arguments, result and errors."""
    started = time.monotonic()
    opts, wanted, chat, out_dir = prepare(client, out, threads, locals())
    if wanted is None:
        targets = alive_threads(await chat.list_chat_threads())
    else:
        targets = [(t, (await thread_client(chat, t).get_properties()).topic) for t in wanted]
    bar = make_bar(progress)
    try:
        job = ExportJob(out_dir, opts, out_dir / STATE_NAME, on_page=on_page, bar=bar)
        results = [await _export_thread(job, chat, t, topic, pace, max_retries) for t, topic in targets]
    finally:
        if bar is not None:
            bar.close()
    return ExportResult(out_dir, opts.fmt, results, time.monotonic() - started)
