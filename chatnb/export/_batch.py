"""A batch of listed messages in the shapes the export needs, built straight from the wire JSON.

The export used to turn every batch into the DataFrame of ``list_messages`` (:mod:`chatnb.frames`), filter
it with pandas and convert the rows it kept to Arrow for Parquet. A :class:`Batch` skips the DataFrame: it
takes the columns' values from :func:`chatnb.frames.message_values` (the very values the frame is made
of, in the frame's order) and converts them to Arrow arrays and NumPy once. What the export filters on
(sequence ids, times, types) is NumPy; Parquet gets an Arrow table of the rows kept; the writers that
render rows (CSV, JSON Lines, HTML, Markdown) get the DataFrame of exactly those rows, built only when one
asks (:meth:`Batch.frame`).

Both conversions keep the frame's meaning. Text goes to Arrow as it is; a value that is not text (a
hostile answer's number) goes through pandas' ``"string"`` conversion, as in the frame. Times in strict
RFC 3339 form (what the service sends) are parsed by Arrow, which agrees with pandas on those; anything
else is left to ``pandas.to_datetime(..., format="ISO8601")``, as in the frame. A lone surrogate in a text
column raises ``UnicodeEncodeError`` when the batch is built, as building the frame does, so the caller
repairs the pages (:meth:`~chatnb.MessagePage.repair_text`) and builds it again.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .. import frames
from ..paging import MessagePage

__all__ = ["NAT", "SYSTEM_TYPES", "Batch"]

NAT = np.iinfo(np.int64).min
"""A missing time (NaT) among int64 nanoseconds."""

_TS = pa.timestamp("ns", tz="UTC")
_TIMES = ("created_on", "edited_on", "deleted_on")
_TEXTS = tuple(name for name, dtype in frames.MESSAGE_COLUMNS.items() if dtype == "string")
SYSTEM_TYPES = ("topicUpdated", "participantAdded", "participantRemoved")
_SYSTEM = pa.array(SYSTEM_TYPES)


def _texts(values: list[Any]) -> pa.Array:
    try:
        return pa.array(values, type=pa.string())
    except pa.ArrowException:  # not all text: what the frame's "string" column makes of it
        return pa.array(pd.array(values, dtype="string"), type=pa.string())


def _nanoseconds(values: list[Any]) -> np.ndarray[Any, Any]:
    """Times (wire text) as int64 nanoseconds since the epoch, :data:`NAT` where missing."""
    if all(v is None for v in values):
        return np.full(len(values), NAT, dtype=np.int64)
    text = frames.service_times(values)
    if text is not None:
        with contextlib.suppress(pa.ArrowException):  # in the form, but not a time (a 13th month)
            parsed: np.ndarray[Any, Any] = text.cast(_TS).cast(pa.int64()).fill_null(NAT).to_numpy()
            return parsed
    fallback: np.ndarray[Any, Any] = frames.wire_times(values).asi8.copy()
    return fallback


def _pick(values: np.ndarray[Any, Any], rows: np.ndarray[Any, Any] | None) -> np.ndarray[Any, Any]:
    return values if rows is None else values[rows]


class _Columns:
    """The columns of every message listed in a batch (the rows a :class:`Batch` selects from)."""

    __slots__ = ("_arrow", "items", "objects", "seq", "texts", "times")

    def __init__(self, pages: Sequence[MessagePage]) -> None:
        wire: Sequence[Any] = pages[0].wire if len(pages) == 1 else [m for p in pages for m in p.wire]
        self.items, self.seq, values = frames.message_values(wire)
        self.texts = {name: _texts(values[name]) for name in _TEXTS}
        self.times = {name: _nanoseconds(values[name]) for name in _TIMES}
        self.objects = {"metadata": values["metadata"], "participant_ids": values["participant_ids"]}
        self._arrow: dict[str, pa.Array] = {}

    def arrow(self, field: pa.Field, thread: tuple[str, str]) -> pa.Array:
        """The column of ``field`` (export columns: see :mod:`chatnb.export._encode`) for every row."""
        name = field.name
        if name in ("thread_id", "thread_topic"):
            value = thread[0] if name == "thread_id" else thread[1]
            return pa.repeat(pa.scalar(value, field.type), len(self.seq))
        column = self._arrow.get(name)
        if column is None:
            column = self._arrow[name] = self._convert(field)
        return column

    def _convert(self, field: pa.Field) -> pa.Array:
        name = field.name
        if name in self.texts:
            return self.texts[name]
        if name in self.times:
            ns = self.times[name]
            return pa.array(ns, mask=ns == NAT).view(field.type)
        if name == "sequence_id":
            return pa.array(self.seq, type=field.type)
        values = self.objects[name]
        if all(v is None for v in values):
            return pa.nulls(len(values), type=field.type)
        if name == "participant_ids":
            values = [None if v is None else list(v) for v in values]
        return pa.array(values, type=field.type)


class Batch:
    """Messages oldest first (ascending ``sequence_id``), as NumPy and Arrow, and as a frame on demand.

    A batch of the rows to write (:meth:`take`) selects them from the columns of the whole batch; Arrow
    takes them from each column once, when a table is built.

    Attributes:
        seq: the sequence ids (int64).
        created_ns, edited_ns, deleted_ns: the times in int64 nanoseconds, :data:`NAT` where missing.
        thread_id, topic: the thread's, once the rows are to be written (:meth:`take`).
    """

    def __init__(
        self,
        columns: _Columns,
        rows: np.ndarray[Any, Any] | None = None,
        thread: tuple[str, str] = ("", ""),
    ) -> None:
        self._columns = columns
        self._rows = rows  # indices into the columns; None: every row
        self.thread_id, self.topic = thread
        self.seq = _pick(columns.seq, rows)
        self.created_ns, self.edited_ns, self.deleted_ns = (_pick(columns.times[n], rows) for n in _TIMES)
        self._frame: pd.DataFrame | None = None
        self._months: list[tuple[str, Batch | None]] | None = None

    @classmethod
    def of(cls, pages: Sequence[MessagePage]) -> Batch:
        """The messages of ``pages``.

        Raises:
            UnicodeEncodeError: a text holds a lone surrogate (repair the pages, then build it again).
        """
        return cls(_Columns(pages))

    def __len__(self) -> int:
        return len(self.seq)

    def change_ns(self) -> np.ndarray[Any, Any]:
        """When each message last changed: its deletion, edit or creation."""
        latest: np.ndarray[Any, Any] = np.maximum(
            np.maximum(self.created_ns, self.edited_ns), self.deleted_ns
        )
        return latest

    def _text(self, name: str) -> pa.Array:
        column = self._columns.texts[name]
        return column if self._rows is None else column.take(pa.array(self._rows))

    def is_system(self) -> np.ndarray[Any, Any]:
        """Which messages are system messages (topic updated, participants added or removed)."""
        found = pc.is_in(self._text("type"), value_set=_SYSTEM).fill_null(False)
        flags: np.ndarray[Any, Any] = found.to_numpy(zero_copy_only=False)
        return flags

    def values(self, name: str, rows: np.ndarray[Any, Any] | None = None) -> list[Any]:
        """A text column's values (``None`` where missing), of every row or of ``rows`` (indices)."""
        column = self._text(name)
        found: list[Any] = (column if rows is None else column.take(pa.array(rows))).to_pylist()
        return found

    def take(self, keep: np.ndarray[Any, Any], thread_id: str, topic: str) -> Batch:
        """The rows where ``keep`` is true, to be written for the thread ``thread_id``."""
        if bool(keep.all()):
            return Batch(self._columns, self._rows, (thread_id, topic))
        rows = np.flatnonzero(keep)
        return Batch(self._columns, rows if self._rows is None else self._rows[rows], (thread_id, topic))

    def months(self) -> list[tuple[str, Batch]]:
        """The rows by month of creation (``YYYY-MM``, UTC), in order."""
        if self._months is None:  # the writers of a run share the split (never the batch itself: no cycle)
            months = self.created_ns.view("datetime64[ns]").astype("datetime64[M]")
            keys = np.datetime_as_string(months, unit="M")
            if len(keys) and bool((keys == keys[0]).all()):
                self._months = [(str(keys[0]), None)]
            else:
                self._months = [
                    (str(key), self.take(keys == key, self.thread_id, self.topic))
                    for key in sorted(set(keys))
                ]
        return [(key, self if rows is None else rows) for key, rows in self._months]

    def table(self, schema: pa.Schema) -> pa.Table:
        """The rows as an Arrow table of ``schema`` (export columns: see :mod:`chatnb.export._encode`)."""
        thread = (self.thread_id, self.topic)
        arrays = [self._columns.arrow(field, thread) for field in schema]
        table = pa.Table.from_arrays(arrays, schema=schema)
        rows = self._rows
        if rows is None:
            return table
        if len(rows) and rows[-1] - rows[0] + 1 == len(rows):  # a run of rows (the usual case): no copy
            return table.slice(int(rows[0]), len(rows))
        return table.take(pa.array(rows))

    def frame(self) -> pd.DataFrame:
        """The rows as the frame of ``list_messages`` with ``thread_id`` and ``thread_topic`` added."""
        if self._frame is None:
            items = self._columns.items
            frame = frames.messages_frame(items if self._rows is None else [items[i] for i in self._rows])
            n = len(frame)
            frame["thread_id"] = pd.array([self.thread_id] * n, dtype="string")
            frame["thread_topic"] = pd.array([self.topic] * n, dtype="string")
            self._frame = frame
        return self._frame
