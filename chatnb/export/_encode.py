"""Rows of an export as Arrow tables, CSV text and JSON Lines: the encodings the writers share."""

from __future__ import annotations

import json
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from .. import frames
from ._cells import guard_formulas

__all__ = [
    "ARROW_SCHEMA",
    "PARQUET_OPTIONS",
    "PARQUET_SCHEMA",
    "encode_csv",
    "encode_jsonl",
    "iso_times",
    "to_arrow",
]

_COLUMNS: dict[str, str] = {**frames.MESSAGE_COLUMNS, "thread_id": "string", "thread_topic": "string"}
_TS = pa.timestamp("ns", tz="UTC")
_ARROW_TYPES: dict[str, pa.DataType] = {
    "sequence_id": pa.int64(),
    "created_on": _TS,
    "edited_on": _TS,
    "deleted_on": _TS,
    "metadata": pa.map_(pa.string(), pa.string()),
    "participant_ids": pa.list_(pa.string()),
}
ARROW_SCHEMA = pa.schema([(name, _ARROW_TYPES.get(name, pa.string())) for name in _COLUMNS])
PARQUET_SCHEMA = pa.schema([f for f in ARROW_SCHEMA if f.name != "thread_id"])
_TIMES = ("created_on", "edited_on", "deleted_on")
PARQUET_OPTIONS: dict[str, Any] = {
    "compression": "zstd",
    # dictionaries only where values repeat: ids, versions, texts and times are (nearly) all different,
    # and a dictionary of them costs time and space for nothing
    "use_dictionary": ["type", "sender_id", "sender_display_name", "topic", "initiator_id", "thread_topic"],
}
"""How the export writes Parquet (``pyarrow.parquet.ParquetWriter`` options)."""


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


def _json_cell(value: Any) -> Any:
    if value is None or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, np.ndarray):
        value = value.tolist()
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def iso_times(column: pd.Series) -> np.ndarray[Any, Any]:
    """RFC 3339 text of a UTC datetime column (``None`` for NaT): microseconds, or nanoseconds if needed."""
    values: np.ndarray[Any, np.dtype[np.datetime64]] = column.to_numpy(dtype="datetime64[ns]")
    ns = values.view("int64")
    unit: Literal["us", "ns"] = "us" if bool((ns[~np.isnat(values)] % 1000 == 0).all()) else "ns"
    out: np.ndarray[Any, Any] = np.char.add(np.datetime_as_string(values, unit=unit), "Z").astype(object)
    out[np.isnat(values)] = None
    return out


def encode_csv(frame: pd.DataFrame, *, header: bool, guard: bool) -> bytes:
    """CSV rows (and the header line if ``header``); ``guard`` neutralises spreadsheet formulas."""
    columns: dict[str, pa.Array] = {}
    for name in _COLUMNS:
        col = frame[name]
        if name in _TIMES:
            columns[name] = pa.array(iso_times(col), type=pa.string())
        elif name in ("metadata", "participant_ids"):
            columns[name] = pa.array([_json_cell(v) for v in col.tolist()], type=pa.string())
        elif name == "sequence_id":
            columns[name] = pa.array(col.to_numpy())
        elif guard:
            values = [None if v is None or v is pd.NA else guard_formulas(str(v)) for v in col.tolist()]
            columns[name] = pa.array(values, type=pa.string())
        else:
            columns[name] = pa.Array.from_pandas(col, type=pa.string())
    sink = pa.BufferOutputStream()
    options = pacsv.WriteOptions(include_header=header, quoting_style="needed")
    pacsv.write_csv(pa.table(columns), sink, options)
    return bytes(sink.getvalue())


def encode_jsonl(frame: pd.DataFrame) -> bytes:
    """JSON Lines, one object per row."""
    text = frame.to_json(orient="records", lines=True, date_format="iso", date_unit="ns", force_ascii=False)
    if text and not text.endswith("\n"):
        text += "\n"
    return text.encode()
