"""Output files of an export: Parquet parts, CSV and JSON Lines files, HTML transcripts.

Layout (Hive-style, readable by pandas, pyarrow, DuckDB and Spark)::

    OUT/thread_id=<id>/[month=YYYY-MM/]part-r0001-00001.parquet   (parquet)
    OUT/thread_id=<id>/[month=YYYY-MM/]messages.csv | messages.jsonl
    OUT/thread_id=<id>/[month=YYYY-MM/]transcript.html             (first run; later runs -r0002...)

The thread id is percent-encoded in the folder name (``:`` is not allowed in Windows paths); the Hive
readers decode it. Parquet files leave out ``thread_id`` because the folder carries it (Hive readers
refuse a column that is also a partition key); CSV and JSON Lines rows carry it.

A writer commits what it wrote (flush, ``fsync``, rename of a finished Parquet part) and reports the
committed files with their sizes; the export records them in its state. :func:`recover` removes whatever
was written past the last commit, so a killed export leaves no partial or duplicate row behind.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from .. import frames
from ._html import assemble, render_rows

__all__ = [
    "ARROW_SCHEMA",
    "EXPORT_COLUMNS",
    "FORMATS",
    "Writer",
    "make_writer",
    "recover",
    "thread_dir",
]

FORMATS = ("parquet", "csv", "jsonl", "html")
EXPORT_COLUMNS: dict[str, str] = {**frames.MESSAGE_COLUMNS, "thread_id": "string", "thread_topic": "string"}

_TS = pa.timestamp("ns", tz="UTC")
_ARROW_TYPES: dict[str, pa.DataType] = {
    "sequence_id": pa.int64(),
    "created_on": _TS,
    "edited_on": _TS,
    "deleted_on": _TS,
    "metadata": pa.map_(pa.string(), pa.string()),
    "participant_ids": pa.list_(pa.string()),
}
ARROW_SCHEMA = pa.schema([(name, _ARROW_TYPES.get(name, pa.string())) for name in EXPORT_COLUMNS])
_PARQUET_SCHEMA = pa.schema([f for f in ARROW_SCHEMA if f.name != "thread_id"])

# Every file an export writes matches one of these; recover() touches nothing else.
_OWN_FILE = re.compile(
    r"(part-r\d{4}-\d{5}\.parquet|messages\.csv|messages\.jsonl|transcript(-r\d{4})?\.html"
    r"|\.part-r\d{4}-\d{5}\.parquet\.tmp|\.transcript-r\d{4}\.spool|\.transcript.*\.html\.tmp)\Z"
)


def thread_dir(thread_id: str) -> str:
    """The folder of a thread: ``thread_id=<percent-encoded id>``."""
    return "thread_id=" + quote(thread_id, safe="@._-")


def _months(frame: pd.DataFrame) -> Iterator[tuple[str | None, pd.DataFrame]]:
    created = frame["created_on"]
    keys = created.dt.strftime("%Y-%m").to_numpy()
    if len(keys) and (keys == keys[0]).all():
        yield str(keys[0]), frame
        return
    for key in sorted(set(keys)):
        yield str(key), frame[keys == key]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Writer:
    """Writes one thread's rows of one run into its partition files.

    ``files`` maps the committed files (relative to the output directory) to their committed sizes.
    """

    ext = ""

    def __init__(
        self,
        out: Path,
        thread_id: str,
        *,
        run: int,
        by_month: bool,
        files: dict[str, int],
        parts: int = 0,
    ) -> None:
        self.out = out
        self.thread_id = thread_id
        self.base = thread_dir(thread_id)
        self.run = run
        self.by_month = by_month
        self.files = dict(files)
        self.parts = parts
        self.uncommitted_rows = 0

    def _rel(self, month: str | None, name: str) -> str:
        return f"{self.base}/month={month}/{name}" if month is not None else f"{self.base}/{name}"

    def write(self, frame: pd.DataFrame) -> None:
        """Write rows (export columns) of one page."""
        if frame.empty:
            return
        self.uncommitted_rows += len(frame)
        if self.by_month:
            for month, rows in _months(frame):
                self._write(month, rows)
        else:
            self._write(None, frame)

    def _write(self, month: str | None, frame: pd.DataFrame) -> None:
        raise NotImplementedError

    def should_commit(self) -> bool:
        """Whether to commit after this page (append formats: always; Parquet: when a part is full)."""
        return True

    def commit(self) -> None:
        """Make everything written so far durable and record it in ``files``."""
        self.uncommitted_rows = 0

    def finish(self, topic: str) -> None:
        """End of the run: commit, and write what can only be written at the end."""
        self.commit()

    def close(self) -> None:
        """Release open files without committing (after an error)."""


class _AppendWriter(Writer):
    """CSV and JSON Lines: one file per partition, appended to run after run (and the base of the HTML
    writer, which appends to spool files)."""

    name = ""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._open: dict[str, Any] = {}

    def _handle(self, rel: str) -> Any:
        fh = self._open.get(rel)
        if fh is None:
            path = self.out / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            fh = path.open("ab")
            self._open[rel] = fh
        return fh

    def _write(self, month: str | None, frame: pd.DataFrame) -> None:
        rel = self._rel(month, self.name)
        fh = self._handle(rel)
        fh.write(self._encode(frame, header=fh.tell() == 0))

    def _encode(self, frame: pd.DataFrame, *, header: bool) -> bytes:
        raise NotImplementedError

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


def _json_cell(value: Any) -> Any:
    if value is None or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, np.ndarray):
        value = value.tolist()
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


class _CsvWriter(_AppendWriter):
    ext = "csv"
    name = "messages.csv"

    def _encode(self, frame: pd.DataFrame, *, header: bool) -> bytes:
        columns: dict[str, pa.Array] = {}
        for name in EXPORT_COLUMNS:
            col = frame[name]
            if name in ("created_on", "edited_on", "deleted_on"):
                columns[name] = pa.array(_iso(col), type=pa.string())
            elif name in ("metadata", "participant_ids"):
                columns[name] = pa.array([_json_cell(v) for v in col.tolist()], type=pa.string())
            elif name == "sequence_id":
                columns[name] = pa.array(col.to_numpy())
            else:
                columns[name] = pa.Array.from_pandas(col, type=pa.string())
        sink = pa.BufferOutputStream()
        options = pacsv.WriteOptions(include_header=header, quoting_style="needed")
        pacsv.write_csv(pa.table(columns), sink, options)
        return bytes(sink.getvalue())


def _iso(column: pd.Series) -> np.ndarray[Any, Any]:
    """RFC 3339 text of a UTC datetime column (``None`` for NaT): microseconds, or nanoseconds if needed."""
    values: np.ndarray[Any, np.dtype[np.datetime64]] = column.to_numpy(dtype="datetime64[ns]")
    ns = values.view("int64")
    unit: Literal["us", "ns"] = "us" if bool((ns[~np.isnat(values)] % 1000 == 0).all()) else "ns"
    out: np.ndarray[Any, Any] = np.char.add(np.datetime_as_string(values, unit=unit), "Z").astype(object)
    out[np.isnat(values)] = None
    return out


class _JsonlWriter(_AppendWriter):
    ext = "jsonl"
    name = "messages.jsonl"

    def _encode(self, frame: pd.DataFrame, *, header: bool) -> bytes:
        text = frame.to_json(
            orient="records", lines=True, date_format="iso", date_unit="ns", force_ascii=False
        )
        if text and not text.endswith("\n"):
            text += "\n"
        return text.encode()


def to_arrow(frame: pd.DataFrame, schema: pa.Schema = ARROW_SCHEMA) -> pa.Table:
    """Rows in export columns as an Arrow table of ``schema``."""
    arrays = []
    for field in schema:
        col = frame[field.name]
        if field.name in ("metadata", "participant_ids"):
            values = [None if v is None or v is pd.NA else v for v in col.tolist()]
            if field.name == "participant_ids":
                values = [None if v is None else list(v) for v in values]
            arrays.append(pa.array(values, type=field.type))
        else:
            arrays.append(pa.Array.from_pandas(col, type=field.type))
    return pa.Table.from_arrays(arrays, schema=schema)


class _ParquetWriter(Writer):
    """Parquet: numbered part files, written through a hidden temporary file and renamed when full."""

    ext = "parquet"

    def __init__(self, *args: Any, rows_per_file: int, row_group_rows: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.rows_per_file = rows_per_file
        self.row_group_rows = row_group_rows
        self._writers: dict[str | None, tuple[pq.ParquetWriter, Path, str]] = {}
        self._buffers: dict[str | None, list[pa.Table]] = {}
        self._buffered: dict[str | None, int] = {}

    def _write(self, month: str | None, frame: pd.DataFrame) -> None:
        table = to_arrow(frame, _PARQUET_SCHEMA)
        self._buffers.setdefault(month, []).append(table)
        self._buffered[month] = self._buffered.get(month, 0) + table.num_rows
        if self._buffered[month] >= self.row_group_rows:
            self._flush(month)

    def _flush(self, month: str | None) -> None:
        tables = self._buffers.pop(month, [])
        self._buffered.pop(month, None)
        if not tables:
            return
        entry = self._writers.get(month)
        if entry is None:
            self.parts += 1
            rel = self._rel(month, f"part-r{self.run:04d}-{self.parts:05d}.parquet")
            final = self.out / rel
            final.parent.mkdir(parents=True, exist_ok=True)
            tmp = final.with_name("." + final.name + ".tmp")
            writer = pq.ParquetWriter(tmp, _PARQUET_SCHEMA, compression="zstd")
            entry = (writer, tmp, rel)
            self._writers[month] = entry
        entry[0].write_table(pa.concat_tables(tables), row_group_size=max(self.row_group_rows, 1))

    def should_commit(self) -> bool:
        return self.uncommitted_rows >= self.rows_per_file

    def commit(self) -> None:
        for month in list(self._buffers):
            self._flush(month)
        dirs = set()
        for writer, tmp, rel in self._writers.values():
            writer.close()
            with tmp.open("rb+") as fh:
                os.fsync(fh.fileno())
            final = self.out / rel
            os.replace(tmp, final)
            self.files[rel] = final.stat().st_size
            dirs.add(final.parent)
        for d in dirs:
            _fsync_dir(d)
        self._writers.clear()
        super().commit()

    def close(self) -> None:
        for writer, tmp, _ in self._writers.values():
            try:
                writer.close()
            finally:
                tmp.unlink(missing_ok=True)
        self._writers.clear()
        self._buffers.clear()
        self._buffered.clear()


class _HtmlWriter(_AppendWriter):
    """HTML: page fragments spooled per partition, assembled into a transcript at the end of the run."""

    ext = "html"

    def __init__(self, *args: Any, html_pages: dict[str, list[int]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.html_pages = html_pages

    def _spool_rel(self, month: str | None) -> str:
        return self._rel(month, f".transcript-r{self.run:04d}.spool")

    def _write(self, month: str | None, frame: pd.DataFrame) -> None:
        rel = self._spool_rel(month)
        fh = self._handle(rel)
        fh.write(render_rows(frame).encode())
        self.html_pages.setdefault(rel, []).append(fh.tell())

    def finish(self, topic: str) -> None:
        super().finish(topic)  # commit and close the spools
        name = "transcript.html" if self.run == 1 else f"transcript-r{self.run:04d}.html"
        for rel, ends in sorted(self.html_pages.items()):
            spool = self.out / rel
            target_rel = rel.rsplit("/", 1)[0] + "/" + name
            count = len(ends)
            note = f"export run {self.run}, {count} page{'s' if count != 1 else ''} of messages"
            size = assemble(
                spool, ends, self.out / target_rel, thread_id=self.thread_id, topic=topic, title_note=note
            )
            self.files[target_rel] = size
        for rel in list(self.html_pages):
            self.files.pop(rel, None)

    def cleanup_spools(self) -> None:
        for rel in self.html_pages:
            (self.out / rel).unlink(missing_ok=True)


def make_writer(
    fmt: str,
    out: Path,
    thread_id: str,
    *,
    run: int,
    by_month: bool,
    files: dict[str, int],
    parts: int,
    rows_per_file: int,
    html_pages: dict[str, list[int]],
) -> Writer:
    common: dict[str, Any] = {"run": run, "by_month": by_month, "files": files, "parts": parts}
    if fmt == "parquet":
        return _ParquetWriter(
            out, thread_id, rows_per_file=rows_per_file, row_group_rows=min(rows_per_file, 20_000), **common
        )
    if fmt == "csv":
        return _CsvWriter(out, thread_id, **common)
    if fmt == "jsonl":
        return _JsonlWriter(out, thread_id, **common)
    if fmt == "html":
        return _HtmlWriter(out, thread_id, html_pages=html_pages, **common)
    raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")


def recover(out: Path, thread_id: str, files: dict[str, int]) -> None:
    """Undo what was written for ``thread_id`` after the last commit recorded in ``files``.

    Files of the export's own naming that ``files`` does not list are removed; committed append files
    longer than their committed size are truncated back to it.

    Raises:
        RuntimeError: if a committed file is missing or shorter than committed (it was lost or
            changed outside the export; the thread must be exported again from scratch).
    """
    base = out / thread_dir(thread_id)
    if base.is_dir():
        for path in sorted(base.rglob("*")):
            if not path.is_file() or not _OWN_FILE.match(path.name):
                continue
            rel = path.relative_to(out).as_posix()
            if rel not in files:
                path.unlink()
            elif path.stat().st_size > files[rel]:
                with path.open("rb+") as fh:
                    fh.truncate(files[rel])
    for rel, size in files.items():
        path = out / rel
        if not path.is_file() or path.stat().st_size < size:
            raise RuntimeError(
                f"{path} is missing or shorter than the export state says; it was changed outside the "
                "export. Export this thread again into a new directory (or without incremental)."
            )
