"""Export chat history to Parquet, CSV, JSON Lines or an HTML transcript: streamed, incremental, resumable.

>>> import chatnb
>>> chatnb.export_history(chat_client, "export/", threads=[thread_id], format="parquet")
>>> chatnb.export_history(chat_client, "export/", incremental=True)     # every thread; then only news
>>> chatnb.read_export("export/", latest=True)                          # back into a DataFrame

Rows have the columns of ``ChatThreadClient.list_messages`` (see :mod:`chatnb.frames`) plus ``thread_id``
and ``thread_topic`` (the thread's topic at export time; ``topic`` stays the new topic of a
``topicUpdated`` system message). The export lists one page at a time and writes each page before it
asks for the next, so memory stays bounded however long the history; files are laid out Hive-style,
``OUT/thread_id=<id>/[month=YYYY-MM/]...`` (see :mod:`chatnb.export._writers`).

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

from typing import TYPE_CHECKING

from .. import _lazy

if TYPE_CHECKING:
    from ._compact import compact_export
    from ._read import read_export
    from ._result import ExportError, ExportProgress, ExportResult, ThreadExport, ThreadFailure
    from ._sync import export_history
    from ._writers import EXPORT_COLUMNS, FORMATS

__all__ = [
    "EXPORT_COLUMNS",
    "FORMATS",
    "ExportError",
    "ExportProgress",
    "ExportResult",
    "ThreadExport",
    "ThreadFailure",
    "compact_export",
    "export_history",
    "read_export",
]

# imported on first use (PEP 562): the ``chatnb export`` command line (``._cli``) is part of ``chatnb``'s
# parser, which must not load pandas and pyarrow for ``chatnb serve``
_LAZY: dict[str, str] = {
    "EXPORT_COLUMNS": "._writers",
    "FORMATS": "._writers",
    "ExportError": "._result",
    "ExportProgress": "._result",
    "ExportResult": "._result",
    "ThreadExport": "._result",
    "ThreadFailure": "._result",
    "compact_export": "._compact",
    "export_history": "._sync",
    "read_export": "._read",
}


__getattr__, __dir__ = _lazy.lazy_attributes(__name__, globals(), _LAZY)
