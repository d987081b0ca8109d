"""``chatnb.export_history``: the export over the sync clients (see :mod:`chatnb.export`)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
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


def _fetch(tc: Any, listing: dict[str, Any], pacer: Pacer | None, max_retries: int) -> MessagePage:
    """One page: paced, and asked again (same request) when throttled beyond the client's retries."""
    attempt = 0
    while True:
        if pacer is not None:
            wait = pacer.delay()
            if wait > 0:
                time.sleep(wait)
        pages = tc.iter_message_pages(**listing)
        try:
            try:
                page: MessagePage = next(pages)
            finally:
                pages.close()
                if pacer is not None:
                    pacer.sent()  # when the answer came: the service saw the request before that
            return page
        except RETRYABLE as exc:
            if attempt >= max_retries:
                raise
            time.sleep(retry_delay(exc, attempt))
            attempt += 1


def _export_run(job: ExportJob, tc: Any, run: ThreadRun, pace: bool, max_retries: int) -> ThreadExport:
    """List the pages of one run and feed them to it (sync). The next page is fetched in a helper
    thread while the current one is written, so the service and the writing work at the same time."""
    if run.listing_done:
        return run.finish()
    pacer = job.pacers.setdefault(run.thread_id, Pacer()) if pace else None
    try:
        listing = first_listing(job, run) if run.link is None else continued(run.link)
        page = _fetch(tc, listing, pacer, max_retries)
    except STALE_LINK:
        if run.link is None:
            raise
        run.restart()  # the saved continuation expired: list again, skipping what was written
        page = _fetch(tc, first_listing(job, run), pacer, max_retries)
    with ThreadPoolExecutor(1, thread_name_prefix="chatnb-export") as pool:
        while True:
            token = page.continuation_token
            ahead = None if token is None else pool.submit(_fetch, tc, continued(token), pacer, max_retries)
            try:
                more = run.feed(page)
            except BaseException:
                if ahead is not None:
                    ahead.cancel()
                raise
            if ahead is None:
                break
            if not more:
                ahead.cancel()
                break
            page = ahead.result()
    return run.finish()


def _export_thread(
    job: ExportJob, client: Any, thread_id: str, topic: str, pace: bool, max_retries: int
) -> ThreadExport:
    """Export one thread: finish an interrupted run first, then catch up with what changed since."""
    tc = thread_client(client, thread_id)
    total = None
    while True:
        run = job.start_thread(thread_id, topic)
        try:
            total = merge(total, _export_run(job, tc, run, pace, max_retries))
        except BaseException:
            run.abort()
            raise
        if not run.result.resumed:
            return total


def export_history(
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
        client: a :class:`~chatnb.ChatClient` (or a :class:`~chatnb.ChatThreadClient` for its thread).
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
            incremental export finds a state made with other settings.
        chatnb.ChatError: service errors (a thread that does not exist, no permission, throttling that
            outlasts the retries...). The state keeps what was committed; run again to resume.
    """
    started = time.monotonic()
    opts, wanted, chat, out_dir = prepare(client, out, threads, locals())
    if wanted is None:
        listing = chat.list_chat_threads()
        targets = alive_threads(listing)
    else:
        targets = [(t, thread_client(chat, t).get_properties().topic) for t in wanted]
    bar = make_bar(progress)
    try:
        job = ExportJob(out_dir, opts, out_dir / STATE_NAME, on_page=on_page, bar=bar)
        results = [_export_thread(job, chat, t, topic, pace, max_retries) for t, topic in targets]
    finally:
        if bar is not None:
            bar.close()
    return ExportResult(out_dir, opts.fmt, results, time.monotonic() - started)
