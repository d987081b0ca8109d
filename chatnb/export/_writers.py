"""Output files of an export: Parquet parts, CSV and JSON Lines files, HTML and Markdown transcripts.

Layout (Hive-style, readable by pandas, pyarrow, DuckDB and Spark)::

    OUT/thread_id=<id>/[month=YYYY-MM/]part-r0001-00001.parquet   (parquet)
    OUT/thread_id=<id>/[month=YYYY-MM/]messages.csv | messages.jsonl
    OUT/thread_id=<id>/[month=YYYY-MM/]transcript.html | transcript.md   (first run; later -r0002...)

The thread id is percent-encoded in the folder name (``:`` is not allowed in Windows paths); the Hive
readers decode it. A name that would be too long for a file system (ids of more than about 200
characters) is shortened stably: its start, ``~`` and a hash of the whole id; the Parquet files of such a
folder carry the full id in their metadata (``chatnb.thread_id``), which :func:`chatnb.read_export` uses.
Parquet files leave out ``thread_id`` because the folder carries it (Hive readers refuse a column that is
also a partition key); CSV and JSON Lines rows carry it.

On stores without append (object stores: ``abfs://``, ``s3://``...), CSV and JSON Lines are written as
numbered parts like Parquet (``messages-r0001-00001.csv``, each with its header).

A writer commits what it wrote (flush, ``fsync``, rename of a finished part; on object stores, closing
the object) and reports the committed files with their sizes; the export records them in its state.
:func:`recover` removes whatever was written past the last commit, so a killed export leaves no partial
or duplicate row behind.
"""

from __future__ import annotations

import hashlib
import os
import re
from typing import Any
from urllib.parse import quote

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .. import frames
from ._batch import Batch
from ._encode import ARROW_SCHEMA, PARQUET_OPTIONS, PARQUET_SCHEMA, encode_csv, encode_jsonl
from ._store import Pending, Store, parts_of

__all__ = [
    "ARROW_SCHEMA",
    "EXPORT_COLUMNS",
    "FORMATS",
    "ExportFileError",
    "Writer",
    "check_own_path",
    "part_writer",
    "recover",
    "thread_dir",
]

FORMATS = ("parquet", "csv", "jsonl", "html", "markdown")
EXPORT_COLUMNS: dict[str, str] = {**frames.MESSAGE_COLUMNS, "thread_id": "string", "thread_topic": "string"}
_MAX_NAME = 200  # bytes of a folder name; file systems allow 255
_PARQUET_BUFFER = 1 << 16  # bytes a Parquet file gathers before they go to its file (one write)

_NAME = (
    r"part-r\d{4}-\d{5}\.parquet|messages(?:-r\d{4}-\d{5})?\.(?:csv|jsonl)|transcript(?:-r\d{4})?\.(?:html|md)"
    r"|\.transcript-r\d{4}(?:-\d{5}\.(?:html|md))?\.spool"
)
# Every file an export writes matches this; recover() touches nothing else.
_OWN_FILE = re.compile(rf"(?:{_NAME})\Z|\.(?:{_NAME})\.tmp\Z")
_OWN_DIRS = re.compile(r"month=\d{4}-\d{2}\Z")


class ExportFileError(RuntimeError):
    """A committed file of the export is missing or was changed outside the export."""


def thread_dir(thread_id: str) -> str:
    """The folder of a thread: ``thread_id=<percent-encoded id>``, shortened stably when too long."""
    encoded = quote(thread_id, safe="@._-", errors="surrogatepass")
    name = "thread_id=" + encoded
    if len(name) <= _MAX_NAME:
        return name
    digest = hashlib.sha256(thread_id.encode("utf-8", "surrogatepass")).hexdigest()[:24]
    head = encoded[:120].rsplit("%", 1)[0] if "%" in encoded[117:120] else encoded[:120]
    return f"thread_id={head}~{digest}"


def check_own_path(rel: str, thread_id: str) -> None:
    """Check that ``rel`` (from a state file) is a file of the export's own naming in the thread's folder.

    Raises:
        ValueError: for anything else (``..``, an absolute path, another folder or name).
    """
    try:
        parts = parts_of(rel)
    except OSError:
        parts = []
    ok = (
        len(parts) in (2, 3)
        and parts[0] == thread_dir(thread_id)
        and all(_OWN_DIRS.match(p) for p in parts[1:-1])
        and bool(_OWN_FILE.match(parts[-1]))
    )
    if not ok:
        raise ValueError(f"names {rel!r}, which is not a file of thread {thread_id!r} in the export")


class Writer:
    """Writes one thread's rows of one run, in one format, into its partition files.

    ``files`` (shared by the writers of a run) maps the committed files, relative to the export's root,
    to their committed sizes; ``parts`` counts the part files this run has started.
    """

    fmt = ""

    def __init__(
        self,
        store: Store,
        thread_id: str,
        *,
        run: int,
        by_month: bool,
        files: dict[str, int],
        parts: int = 0,
        rows_per_file: int = 100_000,
        csv_guard: bool = True,
        fmt: str = "",
    ) -> None:
        self.fmt = fmt or self.fmt
        self.store = store
        self.thread_id = thread_id
        self.base = thread_dir(thread_id)
        self.run = run
        self.by_month = by_month
        self.files = files
        self.parts = parts
        self.rows_per_file = rows_per_file
        self.csv_guard = csv_guard
        self.uncommitted_rows = 0

    def rel(self, month: str | None, name: str) -> str:
        return f"{self.base}/month={month}/{name}" if month is not None else f"{self.base}/{name}"

    def write(self, batch: Batch) -> None:
        """Write rows of the thread (a :class:`~chatnb.export._batch.Batch` from ``take``)."""
        if not len(batch):
            return
        self.uncommitted_rows += len(batch)
        if self.by_month:
            for month, rows in batch.months():
                self._write(month, rows)
        else:
            self._write(None, batch)

    def _write(self, month: str | None, batch: Batch) -> None:
        raise NotImplementedError

    def should_commit(self) -> bool:
        """Whether to commit now (append formats: after every batch; parts: when one is full)."""
        return True

    def commit(self) -> None:
        """Make everything written so far durable and record it in ``files``."""
        self.uncommitted_rows = 0

    def finish(self, topic: str) -> None:
        """End of the run: commit, and write what can only be written at the end."""
        self.commit()

    def close(self) -> None:
        """Release open files without committing (after an error)."""

    def cleanup(self) -> None:
        """After the run's end is saved in the state: remove what only the run needed."""


class _AppendWriter(Writer):
    """CSV and JSON Lines in a local folder: one file per partition, appended to run after run."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._open: dict[str, Any] = {}

    def _write(self, month: str | None, batch: Batch) -> None:
        rel = self.rel(month, f"messages.{self.fmt}")
        fh = self._open.get(rel)
        if fh is None:
            fh = self._open[rel] = self.store.open_append(rel)  # type: ignore[attr-defined]
        fh.write(self._encode(batch.frame(), header=fh.tell() == 0))

    def _encode(self, frame: pd.DataFrame, *, header: bool) -> bytes:
        if self.fmt == "csv":
            return encode_csv(frame, header=header, guard=self.csv_guard)
        return encode_jsonl(frame)

    def commit(self) -> None:
        for rel, fh in self._open.items():
            fh.flush()
            os.fsync(fh.fileno())
            self.files[rel] = fh.tell()
        super().commit()

    def finish(self, topic: str) -> None:
        self.commit()
        self.close()

    def close(self) -> None:
        for fh in self._open.values():
            fh.close()
        self._open.clear()


class _ParquetSink:
    """A Parquet file being written to ``fh`` (a file object of the store) through a buffer of its own.

    Written to a Python file object directly, pyarrow calls its ``write`` for every piece of the file
    (tens of calls for a small file, each taking the GIL back from the other workers); the buffer hands
    ``fh`` a few large writes instead. :meth:`close` ends the file and leaves all of it in ``fh``.
    """

    def __init__(self, fh: Any, thread_id: str) -> None:
        self._out = pa.BufferedOutputStream(pa.PythonFile(fh, mode="w"), buffer_size=_PARQUET_BUFFER)
        schema = PARQUET_SCHEMA.with_metadata({"chatnb.thread_id": thread_id})
        self._writer = pq.ParquetWriter(self._out, schema, **PARQUET_OPTIONS)

    def write(self, table: pa.Table, *, row_group_size: int) -> None:
        self._writer.write_table(table, row_group_size=row_group_size)

    def close(self) -> None:
        self._writer.close()
        self._out.flush()  # not close(): that would close fh, which the store commits or discards


class _PartWriter(Writer):
    """Numbered part files per partition (Parquet anywhere; CSV and JSON Lines on object stores), each
    written under its final name's hidden twin (or, on object stores, as an object that appears whole
    when closed) and committed when it holds ``rows_per_file`` rows or the run ends."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pending: dict[str | None, tuple[Pending, str, Any]] = {}

    def _name(self) -> str:
        if self.fmt == "parquet":
            return f"part-r{self.run:04d}-{self.parts:05d}.parquet"
        return f"messages-r{self.run:04d}-{self.parts:05d}.{self.fmt}"

    def _write(self, month: str | None, batch: Batch) -> None:
        entry = self._pending.get(month)
        if entry is None:
            self.parts += 1
            rel = self.rel(month, self._name())
            pending = self.store.create(rel)
            sink = _ParquetSink(pending.fh, self.thread_id) if self.fmt == "parquet" else None
            entry = self._pending[month] = (pending, rel, sink)
        pending, rel, sink = entry
        if sink is not None:
            sink.write(batch.table(PARQUET_SCHEMA), row_group_size=max(min(self.rows_per_file, 20_000), 1))
        elif self.fmt == "csv":
            pending.fh.write(encode_csv(batch.frame(), header=pending.fh.tell() == 0, guard=self.csv_guard))
        else:
            pending.fh.write(encode_jsonl(batch.frame()))

    def should_commit(self) -> bool:
        return self.uncommitted_rows >= self.rows_per_file

    def commit(self) -> None:
        for pending, rel, sink in self._pending.values():
            if sink is not None:
                sink.close()
            self.files[rel] = pending.commit()
        self._pending.clear()
        super().commit()

    def close(self) -> None:
        for pending, _, sink in self._pending.values():
            try:
                if sink is not None:
                    sink.close()
            finally:
                pending.discard()
        self._pending.clear()


def part_writer(fmt: str, store: Store) -> type[Writer]:
    """The writer class of a data format (``parquet``, ``csv``, ``jsonl``) on ``store``."""
    if fmt == "parquet" or not store.local:
        return _PartWriter
    return _AppendWriter


def recover(store: Store, thread_id: str, files: dict[str, int]) -> None:
    """Undo what was written for ``thread_id`` after the last commit recorded in ``files``.

    Files of the export's own naming that ``files`` does not list are removed (a link is removed itself,
    never what it points to); committed append files longer than their committed size are truncated
    back to it. Nothing else in the folder is touched.

    Raises:
        ExportFileError: if a committed file is missing, shorter than committed, or (on a store without
            truncation) longer: it was lost or changed outside the export.
        UnsafePathError: if the thread's folder, or a folder or file in it, is a symbolic link.
    """
    base = thread_dir(thread_id)
    present = store.files(base)
    for rel, size in sorted(present.items()):
        if not _OWN_FILE.match(rel.rsplit("/", 1)[-1]):
            continue
        if rel not in files or size < 0:
            store.remove(rel)
        elif size > files[rel] and store.local:
            store.truncate(rel, files[rel])  # type: ignore[attr-defined]
    for rel, size in files.items():
        now = store.size(rel)
        if now is None or now < size or (now > size and not store.local):
            raise ExportFileError(
                f"{store.display(rel)} is missing or shorter than the export state says (or, on an object "
                "store, not of its size); it was changed "
                "outside the export. Export this thread again into a new directory (or without incremental)."
            )
