"""Export chat history to Parquet, CSV, JSON Lines or an HTML transcript: streamed, incremental, resumable.

>>> import chatnb
>>> chatnb.export_history(chat_client, "export/", threads=[thread_id], format="parquet")
>>> chatnb.export_history(chat_client, "export/", incremental=True)     # every thread; then only news
>>> chatnb.read_export("export/", latest=True)                          # back into a DataFrame

Rows have the columns of ``ChatThreadClient.list_messages`` (see :mod:`chatnb.frames`) plus ``thread_id``
and ``thread_topic`` (the thread's topic at export time; ``topic`` stays the new topic of a
``topicUpdated`` system message). The export lists one page at a time and writes each page before it
asks for the next, so memory stays bounded however long the history; files are laid out Hive-style,
``OUT/thread_id=<id>/[month=YYYY-MM/]...`` (see :mod:`chatnb._export_writers`).

**Filters.** ``since`` / ``until`` keep messages created in ``[since, until)``; ``min_sequence_id`` /
``max_sequence_id`` keep a range of sequence ids; system messages (topic and membership changes) and
deleted messages are left out unless ``include_system`` / ``include_deleted``.

**Incremental export** (``incremental=True``): a state file in ``OUT`` records per thread the
high-water mark (time of the latest change exported, and the last sequence id); the next run lists only
what changed since, minus a small ``lookback`` window, and de-duplicates by message id and version. An
edit or a delete since the last run comes out as a new row for the same message id with a higher
``version`` (and ``edited_on`` / ``deleted_on``); a message deleted after it was exported comes out as a
row with ``deleted_on`` set and no content even without ``include_deleted``. To get the current state of
each message, keep the row with the highest ``version`` per ``(thread_id, id)`` and drop deleted ones
(``read_export(out, latest=True)``). An interrupted export (killed, or stopped by an error) resumes
where it stopped on the next incremental run: the state is saved each time written rows are committed
(every ``batch_rows`` messages, a few pages; for Parquet when a part of ``rows_per_file`` rows is
complete), and anything written after the last save is removed first, so no row is lost or duplicated.
Without ``incremental`` an export starts over and replaces the thread's files.

**Speed.** The next page is requested while the current batch is written (a helper thread; in the
async export the event loop fetches while a worker thread writes), and pages are converted and written
a few thousand rows at a time.

**Throttling.** 429/503 answers are retried by the client, honouring ``Retry-After``; if the client
gives up, the export waits and asks again for the same page (up to ``max_retries`` times). ``pace=True``
keeps to the service's documented limits for listing messages (50 pages per 10 s and 200 a minute, per
user and thread) so that it is not throttled at all.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from ._export_job import ExportJob, ExportProgress, ExportResult, Options, Pacer, ThreadExport, ThreadRun
from ._export_read import read_export
from ._export_state import STATE_NAME
from ._export_writers import EXPORT_COLUMNS, FORMATS
from ._time import to_datetime
from .errors import BadRequestError, RateLimitError, ServiceUnavailableError, TransportError
from .paging import MessagePage

__all__ = [
    "EXPORT_COLUMNS",
    "ExportProgress",
    "ExportResult",
    "ThreadExport",
    "export_history",
    "read_export",
]

DEFAULT_LOOKBACK = timedelta(minutes=2)
_RETRYABLE = (RateLimitError, ServiceUnavailableError, TransportError)


def _time_ns(value: Any, name: str) -> int | None:
    if value is None:
        return None
    if not isinstance(value, (str, datetime, pd.Timestamp)):
        raise TypeError(f"{name} must be a datetime or an ISO 8601 string, not {type(value).__name__}")
    try:
        ts = pd.Timestamp(value)
    except ValueError:
        raise ValueError(f"{name} is not a date-time: {value!r}") from None
    if pd.isna(ts):
        raise ValueError(f"{name} is not a date-time: {value!r}")
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return int(ts.as_unit("ns").value)


def _seq(value: Any, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be at least 1")
    return value


def make_options(
    *,
    format: str,
    partition_by: str | None,
    since: Any,
    until: Any,
    min_sequence_id: Any,
    max_sequence_id: Any,
    include_system: bool,
    include_deleted: bool,
    incremental: bool,
    lookback: timedelta,
    results_per_page: int,
    rows_per_file: int,
    batch_rows: int = 2000,
) -> Options:
    """Check the arguments of an export (``ValueError``/``TypeError`` before any request)."""
    if format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {format!r}")
    if partition_by not in (None, "month"):
        raise ValueError(f"partition_by must be None or 'month', not {partition_by!r}")
    since_ns, until_ns = _time_ns(since, "since"), _time_ns(until, "until")
    if since_ns is not None and until_ns is not None and since_ns >= until_ns:
        raise ValueError("since must be before until")
    min_seq, max_seq = _seq(min_sequence_id, "min_sequence_id"), _seq(max_sequence_id, "max_sequence_id")
    if min_seq is not None and max_seq is not None and min_seq > max_seq:
        raise ValueError("min_sequence_id must not be above max_sequence_id")
    if not isinstance(lookback, timedelta) or lookback < timedelta(0):
        raise ValueError("lookback must be a non-negative timedelta")
    if isinstance(results_per_page, bool) or not isinstance(results_per_page, int) or results_per_page < 1:
        raise ValueError("results_per_page must be a positive int (the service caps it at 200)")
    for name, value in (("rows_per_file", rows_per_file), ("batch_rows", batch_rows)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int")
    return Options(
        fmt=format,
        by_month=partition_by == "month",
        since_ns=since_ns,
        until_ns=until_ns,
        min_seq=min_seq,
        max_seq=max_seq,
        include_system=bool(include_system),
        include_deleted=bool(include_deleted),
        incremental=bool(incremental),
        lookback_us=int(lookback / timedelta(microseconds=1)),
        page_size=min(results_per_page, 200),
        rows_per_file=rows_per_file,
        batch_rows=batch_rows,
    )


def thread_ids(threads: Any) -> list[str] | None:
    """``threads`` as a list of ids (``None`` or ``"all"``: every thread of the user)."""
    if threads is None or threads == "all":
        return None
    if isinstance(threads, str):
        threads = [threads]
    if not isinstance(threads, Sequence) or not all(isinstance(t, str) and t.strip() for t in threads):
        raise ValueError("threads must be a thread id, a list of thread ids, or None for every thread")
    return list(dict.fromkeys(threads))


def make_bar(progress: bool) -> Any:
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=0, unit="msg", desc="export", dynamic_ncols=True)


def first_listing(job: ExportJob, run: ThreadRun) -> dict[str, Any]:
    """The ``iter_message_pages`` arguments of a run's listing from its first page."""
    start = None if run.start_time_us is None else to_datetime(run.start_time_us)
    return {"results_per_page": job.options.page_size, "start_time": start}


def continued(token: str) -> dict[str, Any]:
    """The ``iter_message_pages`` arguments of a listing continued from ``token``."""
    return {"continuation_token": token}


# a saved continuation link the service no longer accepts (400), or one of another endpoint (ValueError)
STALE_LINK = (BadRequestError, ValueError)


def retry_delay(exc: Exception, attempt: int) -> float:
    after = getattr(exc, "retry_after", None)
    if isinstance(after, (int, float)) and after >= 0:
        return float(after)
    return min(30.0, 0.5 * 2.0**attempt)


def _chat_client(client: Any) -> tuple[Any, str | None]:
    """The ``ChatClient`` to use, and the thread id when given a ``ChatThreadClient``."""
    chat = getattr(client, "chat_client", None)
    if chat is not None and not callable(chat):
        client = chat
    if hasattr(client, "get_chat_thread_client"):
        return client, None
    if hasattr(client, "thread_id") and hasattr(client, "iter_message_pages"):
        return client, client.thread_id
    raise TypeError("client must be a chatnb ChatClient or ChatThreadClient")


def _thread_client(client: Any, thread_id: str) -> Any:
    if hasattr(client, "get_chat_thread_client"):
        return client.get_chat_thread_client(thread_id)
    return client


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
        except _RETRYABLE as exc:
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


def merge(total: ThreadExport | None, part: ThreadExport) -> ThreadExport:
    """Add up the runs of one thread in one call (a resumed run, then the run that catches up)."""
    if total is None:
        return part
    total.pages += part.pages
    total.listed += part.listed
    total.written += part.written
    total.files = part.files
    return total


def _export_thread(
    job: ExportJob, client: Any, thread_id: str, topic: str, pace: bool, max_retries: int
) -> ThreadExport:
    """Export one thread: finish an interrupted run first, then catch up with what changed since."""
    tc = _thread_client(client, thread_id)
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


def alive_threads(listing: pd.DataFrame) -> list[tuple[str, str]]:
    """``(id, topic)`` of the threads of a ``list_chat_threads`` frame that are not deleted."""
    alive = listing[listing["deleted_on"].isna()]
    return [(str(t), str(p)) for t, p in zip(alive["id"], alive["topic"].fillna(""), strict=True)]


def prepare(
    client: Any, out: str | os.PathLike[str], threads: Any, args: dict[str, Any]
) -> tuple[Options, list[str] | None, Any, Path]:
    """Check the arguments; the options, the thread ids (``None``: all), the chat client and ``out``."""
    opts = make_options(
        format=args["format"],
        partition_by=args["partition_by"],
        since=args["since"],
        until=args["until"],
        min_sequence_id=args["min_sequence_id"],
        max_sequence_id=args["max_sequence_id"],
        include_system=args["include_system"],
        include_deleted=args["include_deleted"],
        incremental=args["incremental"],
        lookback=args["lookback"],
        results_per_page=args["results_per_page"],
        rows_per_file=args["rows_per_file"],
        batch_rows=args["batch_rows"],
    )
    if (
        isinstance(args["max_retries"], bool)
        or not isinstance(args["max_retries"], int)
        or args["max_retries"] < 0
    ):
        raise ValueError("max_retries must be a non-negative int")
    if args["on_page"] is not None and not callable(args["on_page"]):
        raise TypeError("on_page must be callable")
    wanted = thread_ids(threads)
    chat, own_thread = _chat_client(client)
    if wanted is None and own_thread is not None:
        wanted = [own_thread]
    out_dir = Path(out).expanduser().resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    return opts, wanted, chat, out_dir


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
        targets = [(t, _thread_client(chat, t).get_properties().topic) for t in wanted]
    bar = make_bar(progress)
    try:
        job = ExportJob(out_dir, opts, out_dir / STATE_NAME, on_page=on_page, bar=bar)
        results = [_export_thread(job, chat, t, topic, pace, max_retries) for t, topic in targets]
    finally:
        if bar is not None:
            bar.close()
    return ExportResult(out_dir, opts.fmt, results, time.monotonic() - started)
