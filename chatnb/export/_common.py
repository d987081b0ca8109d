"""What the sync and async export drivers share: argument checks, the listing's arguments, retries."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from .._retry import MAX_SERVER_WAIT, Backoff
from .._time import to_datetime
from ..errors import BadRequestError, ChatError, RateLimitError, ServiceUnavailableError, TransportError
from ._job import ExportJob, Options, ThreadRun
from ._result import ExportResult, ThreadExport, ThreadFailure
from ._store import LocalStore, Store, open_store
from ._writers import FORMATS, ExportFileError

__all__ = [
    "DEFAULT_CONCURRENCY",
    "DEFAULT_LOOKBACK",
    "PAGE_BACKOFF",
    "RETRYABLE",
    "STALE_LINK",
    "THREADS_PAGE",
    "THREAD_ERRORS",
    "continued",
    "first_listing",
    "make_bar",
    "make_options",
    "make_result",
    "merge",
    "parse_formats",
    "prepare",
    "retry_delay",
    "thread_client",
    "thread_ids",
]

DEFAULT_LOOKBACK = timedelta(minutes=2)
DEFAULT_CONCURRENCY = 8
"""Threads exported at once by default: round trips overlap, while the documented limits (per user and
thread, per thread) leave threads independent of each other; eight connections are a polite load."""
RETRYABLE = (RateLimitError, ServiceUnavailableError, TransportError)
THREAD_ERRORS = (ChatError, OSError, ExportFileError)
"""What makes one thread fail without stopping the others (service errors, files that cannot be written)."""
THREADS_PAGE = 200


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


def parse_formats(format: Any) -> list[str]:
    """``format`` as a list of formats: one name, a comma-separated string, or a list of names.

    Raises:
        ValueError: for an unknown or missing format.
    """
    names = format.split(",") if isinstance(format, str) else format
    if not isinstance(names, Sequence) or not all(isinstance(n, str) for n in names):
        raise ValueError(f"format must be one of {', '.join(FORMATS)} or a list of them, not {format!r}")
    formats = list(dict.fromkeys(n.strip() for n in names if n.strip()))
    bad = [n for n in formats if n not in FORMATS]
    if bad or not formats:
        raise ValueError(f"format must be one of {', '.join(FORMATS)} (or several), not {format!r}")
    return formats


def make_options(
    *,
    format: Any,
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
    csv_formulas: str = "escape",
) -> Options:
    """Check the arguments of an export (``ValueError``/``TypeError`` before any request)."""
    formats = parse_formats(format)
    if csv_formulas not in ("escape", "keep"):
        raise ValueError(f"csv_formulas must be 'escape' or 'keep', not {csv_formulas!r}")
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
        formats=formats,
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
        csv_guard=csv_formulas == "escape",
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


PAGE_BACKOFF = Backoff(0.5, 30.0)
"""How long the export waits before asking again for a page the client gave up on."""


def retry_delay(exc: Exception, attempt: int) -> float | None:
    """Seconds to wait before asking again for a page after ``exc``: its ``retry_after`` when it has
    one, else :data:`PAGE_BACKOFF`; ``None`` (do not ask again: raise ``exc``) when the service asked for
    longer than chatnb waits (:data:`~chatnb._retry.MAX_SERVER_WAIT`)."""
    after = getattr(exc, "retry_after", None)
    if isinstance(after, (int, float)) and after >= 0:
        return float(after) if after <= MAX_SERVER_WAIT else None
    return PAGE_BACKOFF.delay(attempt)


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


def thread_client(client: Any, thread_id: str) -> Any:
    if hasattr(client, "get_chat_thread_client"):
        return client.get_chat_thread_client(thread_id)
    return client


def merge(total: ThreadExport | None, part: ThreadExport) -> ThreadExport:
    """Add up the runs of one thread in one call (a resumed run, then the run that catches up)."""
    if total is None:
        return part
    total.pages += part.pages
    total.listed += part.listed
    total.written += part.written
    total.files = part.files
    return total


def prepare(
    client: Any,
    out: str | os.PathLike[str],
    threads: Any,
    args: dict[str, Any],
    require_client: Callable[[Any, str], None],
) -> tuple[Options, list[str] | None, Any, Store]:
    """Check the arguments; the options, the thread ids (``None``: all), the chat client and the store.

    ``require_client(chat, "export_history")`` checks the client's flavour (sync or chatnb.aio) before
    anything is created.
    """
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
        csv_formulas=args["csv_formulas"],
    )
    concurrency = args["concurrency"]
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ValueError("concurrency must be a positive int")
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
    require_client(chat, "export_history")
    if wanted is None and own_thread is not None:
        wanted = [own_thread]
    store = open_store(out, args["storage_options"])
    return opts, wanted, chat, store


def make_result(
    store: Store, opts: Options, outcomes: list[ThreadExport | ThreadFailure | None], elapsed: float
) -> ExportResult:
    """The :class:`ExportResult` of the threads' outcomes (in the order they were asked for)."""
    out: Path | str = store.root if isinstance(store, LocalStore) else store.url
    done = [o for o in outcomes if isinstance(o, ThreadExport)]
    failed = [o for o in outcomes if isinstance(o, ThreadFailure)]
    return ExportResult(out, opts.fmt, done, elapsed, formats=list(opts.formats), failed=failed)
