"""Reading an export back into one DataFrame with the export's columns and dtypes.

>>> chatnb.read_export("export/")                 # every row written, all runs
>>> chatnb.read_export("export/", latest=True)    # one row per message: its latest version

Parquet is read as a Hive-partitioned dataset (``thread_id`` comes back from the folder names), CSV and
JSON Lines file by file; HTML transcripts are read from their ``data-*`` attributes (``content`` is then
the text shown, and ``metadata``/``topic``/participants are not recovered).
"""

from __future__ import annotations

import json
import os
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds

from .. import frames
from ._writers import EXPORT_COLUMNS

__all__ = ["read_export"]


def _thread_of(path: Path, root: Path) -> str | None:
    for part in path.relative_to(root).parts:
        if part.startswith("thread_id="):
            return unquote(part[len("thread_id=") :])
    return None


def _own_files(root: Path, pattern: str) -> list[Path]:
    return sorted(
        p for p in root.rglob(pattern) if not any(s.startswith(".") for s in p.relative_to(root).parts)
    )


def _detect(root: Path) -> str:
    found = [
        fmt
        for fmt, pattern in (
            ("parquet", "*.parquet"),
            ("csv", "messages.csv"),
            ("jsonl", "messages.jsonl"),
            ("html", "transcript*.html"),
        )
        if _own_files(root, pattern)
    ]
    if len(found) != 1:
        if not found:
            raise ValueError(f"{root} holds no export files (export_history writes them)")
        raise ValueError(f"{root} holds files of several formats ({', '.join(found)}); pass format=")
    return found[0]


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


def _read_parquet(root: Path) -> pd.DataFrame:
    dataset = ds.dataset(root, format="parquet", partitioning="hive")
    table = dataset.to_table()
    if "thread_id" in table.column_names:
        col = table.column("thread_id")
        if pa.types.is_dictionary(col.type):
            table = table.set_column(
                table.column_names.index("thread_id"), "thread_id", col.cast(pa.string())
            )
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


def _read_csv(root: Path) -> pd.DataFrame:
    parts = []
    for path in _own_files(root, "messages.csv"):
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
        frame["metadata"] = frame["metadata"].map(_json_cell)
        frame["participant_ids"] = frame["participant_ids"].map(_json_cell)
        parts.append(frame)
    out: pd.DataFrame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    return out


def _read_jsonl(root: Path) -> pd.DataFrame:
    rows: list[dict[str, Any]] = []
    for path in _own_files(root, "messages.jsonl"):
        with path.open(encoding="utf-8") as fh:
            rows.extend(json.loads(line) for line in fh if line.strip())
    out: pd.DataFrame = pd.DataFrame.from_records(rows) if rows else pd.DataFrame()
    return out


class _TranscriptParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.rows: list[dict[str, Any]] = []
        self._depth = 0
        self._in_body = 0
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
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


def _read_html(root: Path) -> pd.DataFrame:
    parts = []
    for path in _own_files(root, "transcript*.html"):
        parser = _TranscriptParser()
        parser.feed(path.read_text(encoding="utf-8"))
        frame = pd.DataFrame.from_records(parser.rows)
        if len(frame):
            frame["thread_id"] = _thread_of(path, root)
        parts.append(frame)
    out: pd.DataFrame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    return out


def _version_key(versions: pd.Series) -> pd.Series:
    numeric = pd.to_numeric(versions, errors="coerce")
    return numeric if numeric.notna().all() else versions.astype(str)


def read_export(
    path: str | os.PathLike[str], *, format: str | None = None, latest: bool = False
) -> pd.DataFrame:
    """Every row of the export in ``path`` (all runs), ordered by thread, sequence id and version.

    Args:
        path: the export's output directory.
        format: ``"parquet"``, ``"csv"``, ``"jsonl"`` or ``"html"``; found from the files by default.
        latest: keep one row per ``(thread_id, id)``: the one with the highest ``version`` (edits and
            deletes of incremental runs are later rows of the same message id).

    Raises:
        ValueError: if ``path`` is not a folder, holds no export, or files of several formats and no
            ``format``.
    """
    root = Path(path).expanduser()
    if not root.is_dir():
        raise ValueError(
            f"no export at {root}: {'it is a file' if root.exists() else 'the folder does not exist'}"
        )
    fmt = format or _detect(root)
    readers = {"parquet": _read_parquet, "csv": _read_csv, "jsonl": _read_jsonl, "html": _read_html}
    if fmt not in readers:
        raise ValueError(f"format must be one of {', '.join(readers)}, not {fmt!r}")
    frame = readers[fmt](root)
    if frame.empty:
        return frames.empty_frame(EXPORT_COLUMNS)
    frame = _normalize(frame)
    frame = frame.assign(_v=_version_key(frame["version"]))
    frame = frame.sort_values(["thread_id", "sequence_id", "_v"], kind="stable")
    if latest:
        frame = frame.drop_duplicates(["thread_id", "id"], keep="last")
    out: pd.DataFrame = frame.drop(columns="_v").reset_index(drop=True)
    return out
