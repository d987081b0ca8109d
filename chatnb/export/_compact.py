"""Compacting an export: one file per thread with the latest version of each message.

>>> chatnb.export_history(chat_client, "lake/", incremental=True, progress=False)
ExportResult(...)
>>> chatnb.compact_export("lake/", "lake-compact/")       # chatnb compact lake/ --out lake-compact/

An incremental export keeps history: every run adds files, and an edited or deleted message comes out
again as a new row with a higher ``version``. Compaction reads an export (any store, thread by thread,
so memory holds one thread at a time) and writes a new one beside it, in the same Hive-style layout,
with one file per thread (``thread_id=<id>/part-c00001.parquet``, ``messages.csv`` or
``messages.jsonl``) holding one row per message: its latest version, in sequence order. Messages whose
latest version is a deletion are kept as that deletion (``deleted_on`` set, no content) unless
``drop_deleted``. The source is not changed, so incremental runs go on into it as before.
"""

from __future__ import annotations

import os
import time
from typing import Any

import pandas as pd

from ._encode import PARQUET_OPTIONS, PARQUET_SCHEMA, encode_csv, encode_jsonl, to_arrow
from ._read import detect_format, own_files, read_files
from ._result import ExportResult, ThreadExport
from ._store import LocalStore, Store, open_store
from ._writers import thread_dir

__all__ = ["compact_export"]

_NAMES = {"parquet": "part-c00001.parquet", "csv": "messages.csv", "jsonl": "messages.jsonl"}


def _write(store: Store, rel: str, fmt: str, frame: pd.DataFrame, thread_id: str) -> int:
    pending = store.create(rel)
    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            schema = PARQUET_SCHEMA.with_metadata({"chatnb.thread_id": thread_id})
            writer = pq.ParquetWriter(pending.fh, schema, **PARQUET_OPTIONS)
            writer.write_table(to_arrow(frame, PARQUET_SCHEMA), row_group_size=20_000)
            writer.close()
        elif fmt == "csv":
            pending.fh.write(encode_csv(frame, header=True, guard=True))
        else:
            pending.fh.write(encode_jsonl(frame))
    except BaseException:
        pending.discard()
        raise
    return pending.commit()


def compact_export(
    path: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    *,
    format: str | None = None,
    drop_deleted: bool = False,
    storage_options: dict[str, Any] | None = None,
) -> ExportResult:
    """Write a compacted copy of the export in ``path`` into ``dest``: one file per thread, the latest
    version of each message.

    Args:
        path: the export (a folder or an fsspec URL).
        dest: where the compacted export goes (a new or empty folder, or an fsspec URL).
        format: which of the export's formats to read and write (``"parquet"``, ``"csv"``, ``"jsonl"``);
            by default the most faithful one present.
        drop_deleted: leave out messages whose latest version is a deletion.
        storage_options: options of the fsspec file systems of ``path`` and ``dest``.

    Returns:
        An :class:`ExportResult` with one :class:`ThreadExport` per thread (rows written and its file).

    Raises:
        ValueError: if ``path`` holds no export of a format that can be compacted, ``dest`` is ``path``
            or already holds files.
    """
    started = time.monotonic()
    source = open_store(path, storage_options, create=False)
    fmt = format or detect_format(source)
    if fmt not in _NAMES:
        raise ValueError(f"format must be one of {', '.join(_NAMES)} to compact, not {fmt!r}")
    target = open_store(dest, storage_options)
    if target.url.rstrip("/") == source.url.rstrip("/"):
        raise ValueError("dest must be another directory than the export")
    if any(not rel.startswith(".") for rel in target.files("")):
        raise ValueError(f"{target.url} already holds files: compact into a new or empty directory")
    by_thread: dict[str, list[str]] = {}
    for rel in own_files(source, fmt):
        by_thread.setdefault(rel.split("/", 1)[0], []).append(rel)
    done = []
    for _, rels in sorted(by_thread.items()):
        frame = read_files(source, fmt, rels, latest=True)
        if drop_deleted:
            frame = frame[frame["deleted_on"].isna()]
        if frame.empty:
            continue
        thread_id = str(frame["thread_id"].iloc[0])
        rel = f"{thread_dir(thread_id)}/{_NAMES[fmt]}"
        _write(target, rel, fmt, frame.reset_index(drop=True), thread_id)
        topic = str(frame["thread_topic"].iloc[-1]) if frame["thread_topic"].notna().any() else ""
        done.append(ThreadExport(thread_id, topic, listed=len(frame), written=len(frame), files=[rel]))
    out = target.root if isinstance(target, LocalStore) else target.url
    return ExportResult(out, fmt, done, time.monotonic() - started, formats=[fmt])
