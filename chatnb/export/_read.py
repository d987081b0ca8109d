"""Reading an export back into one DataFrame with the export's columns and dtypes.

>>> chatnb.export_history(chat_client, "export/", incremental=True, progress=False)
ExportResult(...)
>>> chatnb.read_export("export/")                 # every row written, all runs
>>> chatnb.read_export("export/", latest=True)    # one row per message: its latest version

Parquet is read as a Hive-partitioned dataset (``thread_id`` comes back from the folder names), CSV and
JSON Lines file by file; HTML transcripts are read from their ``data-*`` attributes (``content`` is then
the text shown, and ``metadata``/``topic``/participants are not recovered).
"""

from __future__ import annotations

import io
import json
import os
import re
from html.parser import HTMLParser
from typing import Any
from urllib.parse import unquote

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .. import frames
from ._cells import unguard_formulas
from ._state import ExportState
from ._store import Store, open_store
from ._writers import EXPORT_COLUMNS

__all__ = ["detect_format", "own_files", "read_export", "read_files"]

_PATTERNS = {
    "parquet": re.compile(r"part-r\d{4}-\d{5}\.parquet\Z|part-c\d{5}\.parquet\Z"),
    "jsonl": re.compile(r"messages(?:-r\d{4}-\d{5})?\.jsonl\Z"),
    "csv": re.compile(r"messages(?:-r\d{4}-\d{5})?\.csv\Z"),
    "html": re.compile(r"transcript(?:-r\d{4})?\.html\Z"),
    "markdown": re.compile(r"transcript(?:-r\d{4})?\.md\Z"),
}
_STRING_COLUMNS = [n for n, d in EXPORT_COLUMNS.items() if d == "string"]


def _thread_of(rel: str) -> str | None:
    for part in rel.split("/"):
        if part.startswith("thread_id="):
            return unquote(part[len("thread_id=") :], errors="surrogatepass")
    return None


def own_files(store: Store, fmt: str) -> list[str]:
    pattern = _PATTERNS[fmt]
    return sorted(
        rel
        for rel in store.files("")
        if not any(p.startswith(".") for p in rel.split("/")) and pattern.match(rel.rsplit("/", 1)[-1])
    )


def detect_format(store: Store) -> str:
    """The most faithful format present: Parquet, JSON Lines, CSV, then HTML."""
    for fmt in ("parquet", "jsonl", "csv", "html"):
        if own_files(store, fmt):
            return fmt
    what = (
        "only Markdown transcripts, which are not read back"
        if own_files(store, "markdown")
        else "no export files"
    )
    raise ValueError(f"{store.url} holds {what}")


def _normalize(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with every export column, in order, with the export's dtypes."""
    n = len(frame)
    data: dict[str, Any] = {}
    for name, dtype in EXPORT_COLUMNS.items():
        col = frame[name] if name in frame else pd.Series([None] * n, index=frame.index, dtype=object)
        if dtype == "string":
            data[name] = col.astype("string")
        elif dtype == "int64":
            data[name] = col.astype("int64")
        elif dtype.startswith("datetime64"):
            data[name] = pd.to_datetime(col, utc=True, format="ISO8601").dt.as_unit("ns")
        else:
            data[name] = col.astype(object)
    out: pd.DataFrame = pd.DataFrame(data, index=frame.index)
    return out


def _map_cell(value: Any) -> Any:
    if value is None:
        return None
    return dict(value)


def _list_cell(value: Any) -> Any:
    if value is None:
        return None
    return [str(v) for v in value]


def _read_parquet(store: Store, rels: list[str]) -> pd.DataFrame:
    tables = []
    for rel in rels:
        table = pq.read_table(io.BytesIO(store.read(rel)))
        meta = table.schema.metadata or {}
        thread_id = meta.get(b"chatnb.thread_id", b"").decode("utf-8", "surrogatepass") or _thread_of(rel)
        if "thread_id" not in table.column_names:
            table = table.append_column("thread_id", pa.array([thread_id] * table.num_rows, type=pa.string()))
        tables.append(table.replace_schema_metadata(None))
    if not tables:
        empty: pd.DataFrame = pd.DataFrame()
        return empty
    table = pa.concat_tables(tables, promote_options="default")
    frame: pd.DataFrame = table.to_pandas(
        types_mapper={pa.string(): pd.StringDtype(), pa.large_string(): pd.StringDtype()}.get
    )
    if len(frame):
        frame["metadata"] = [_map_cell(v) for v in frame["metadata"]]
        frame["participant_ids"] = [_list_cell(v) for v in frame["participant_ids"]]
    return frame


def _json_cell(value: Any) -> Any:
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return None
    return json.loads(value)


def _csv_guarded(store: Store) -> bool:
    """Whether the export's CSV cells were written with formulas escaped (the default, and the only way
    without a state that says otherwise)."""
    options = ExportState.saved_of_any(store).get("options")
    if not isinstance(options, dict):
        return True
    return bool(options.get("csv_formulas", "keep") == "escape")


def _read_csv(store: Store, rels: list[str]) -> pd.DataFrame:
    parts = []
    guarded = _csv_guarded(store)
    for rel in rels:
        frame = pd.read_csv(io.BytesIO(store.read(rel)), dtype=str, keep_default_na=False, na_values=[""])
        frame["metadata"] = frame["metadata"].map(_json_cell)
        frame["participant_ids"] = frame["participant_ids"].map(_json_cell)
        if guarded:
            for name in _STRING_COLUMNS:
                if name in frame:
                    frame[name] = frame[name].map(lambda v: unguard_formulas(v) if isinstance(v, str) else v)
        parts.append(frame)
    out: pd.DataFrame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    return out


def _read_jsonl(store: Store, rels: list[str]) -> pd.DataFrame:
    rows: list[dict[str, Any]] = []
    for rel in rels:
        text = store.read(rel).decode("utf-8")
        rows.extend(json.loads(line) for line in text.splitlines() if line.strip())
    out: pd.DataFrame = pd.DataFrame.from_records(rows) if rows else pd.DataFrame()
    return out


class _TranscriptParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.rows: list[dict[str, Any]] = []
        self._depth = 0
        self._in_body = 0
        self._text: list[str] = []
        self.thread_id: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "main" and a.get("data-thread"):
            self.thread_id = a["data-thread"]
        if tag == "article" and "data-id" in a:
            self.rows.append(
                {
                    "id": a.get("data-id"),
                    "type": a.get("data-type"),
                    "sequence_id": a.get("data-seq"),
                    "version": a.get("data-version"),
                    "sender_id": a.get("data-sender"),
                    "sender_display_name": a.get("data-sender-name"),
                    "created_on": a.get("data-created"),
                    "edited_on": a.get("data-edited"),
                    "deleted_on": a.get("data-deleted"),
                }
            )
        elif tag == "div" and a.get("class") == "body" and self.rows:
            self._in_body, self._text = 1, []
        elif self._in_body and tag not in ("br", "img", "hr", "wbr"):
            self._in_body += 1

    def handle_endtag(self, tag: str) -> None:
        if self._in_body:
            self._in_body -= 1
            if not self._in_body:
                row = self.rows[-1]
                system = row["type"] in ("topicUpdated", "participantAdded", "participantRemoved")
                row["content"] = None if row["deleted_on"] or system else "".join(self._text)

    def handle_data(self, data: str) -> None:
        if self._in_body:
            self._text.append(data)


def _read_html(store: Store, rels: list[str]) -> pd.DataFrame:
    parts = []
    for rel in rels:
        parser = _TranscriptParser()
        parser.feed(store.read(rel).decode("utf-8"))
        frame = pd.DataFrame.from_records(parser.rows)
        if len(frame):
            frame["thread_id"] = parser.thread_id or _thread_of(rel)
        parts.append(frame)
    out: pd.DataFrame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    return out


def _version_key(versions: pd.Series) -> pd.Series:
    numeric = pd.to_numeric(versions, errors="coerce")
    return numeric if numeric.notna().all() else versions.astype(str)


def read_export(
    path: str | os.PathLike[str],
    *,
    format: str | None = None,
    latest: bool = False,
    storage_options: dict[str, Any] | None = None,
) -> pd.DataFrame:
    """Every row of the export in ``path`` (all runs), ordered by thread, sequence id and version.

    Args:
        path: the export's output directory, or its fsspec URL (``abfs://...``).
        format: ``"parquet"``, ``"csv"``, ``"jsonl"`` or ``"html"``; by default the most faithful one
            present (an export of several formats holds the same rows in each).
        latest: keep one row per ``(thread_id, id)``: the one with the highest ``version`` (edits and
            deletes of incremental runs are later rows of the same message id).
        storage_options: options of the fsspec file system of ``path``.

    Raises:
        ValueError: if ``path`` holds no export (or only Markdown transcripts, which are for people).
    """
    store = open_store(path, storage_options, create=False)
    fmt = format or detect_format(store)
    return read_files(store, fmt, own_files(store, fmt), latest=latest)


_READERS = {"parquet": _read_parquet, "csv": _read_csv, "jsonl": _read_jsonl, "html": _read_html}


def read_files(store: Store, fmt: str, rels: list[str], *, latest: bool) -> pd.DataFrame:
    """The rows of the export files ``rels`` of format ``fmt`` (see :func:`read_export`).

    Raises:
        ValueError: for a format that is not read back.
    """
    if fmt not in _READERS:
        raise ValueError(f"format must be one of {', '.join(_READERS)}, not {fmt!r}")
    frame = _READERS[fmt](store, rels)
    if frame.empty:
        return frames.empty_frame(EXPORT_COLUMNS)
    frame = _normalize(frame)
    frame = frame.assign(_v=_version_key(frame["version"]))
    frame = frame.sort_values(["thread_id", "sequence_id", "_v"], kind="stable")
    if latest:
        frame = frame.drop_duplicates(["thread_id", "id"], keep="last")
    out: pd.DataFrame = frame.drop(columns="_v").reset_index(drop=True)
    return out
