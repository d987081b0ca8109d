"""DataFrames of listings, built column-wise straight from the wire JSON; owns column order and dtypes.

Every ``list_*`` method returns one of these frames. Columns and dtypes are stable: an empty listing is
an empty frame with the same columns and dtypes. Text columns use pandas' nullable ``"string"`` dtype
(missing = ``<NA>``), timestamps are ``datetime64[ns, UTC]`` (missing = ``NaT``), dict/list columns are
``object``.

Messages (:func:`messages_frame`, ordered chronologically: ascending ``sequence_id``):

=================== =================== ===================================================
column              dtype               meaning
=================== =================== ===================================================
id                  string              message id
type                string              text, html, topicUpdated, participantAdded/Removed
sequence_id         int64               position in the thread
version             string              changes on every edit
content             string              text of text/html messages; <NA> once deleted
sender_id           string              raw id of the sender (<NA> for system messages)
sender_display_name string
created_on          datetime64[ns, UTC]
edited_on           datetime64[ns, UTC] NaT unless edited
deleted_on          datetime64[ns, UTC] NaT unless deleted
metadata            object              dict of str, or None
topic               string              the new topic (topicUpdated)
participant_ids     object              list of raw ids (participantAdded/Removed), or None
initiator_id        string              who changed the topic / membership
=================== =================== ===================================================

:func:`message_values` gives what these columns hold before pandas converts them (in the frame's row
order), for code that stores them otherwise: the export builds Arrow arrays from them.

Participants (:func:`participants_frame`): ``id`` string, ``display_name`` string,
``share_history_time`` datetime64[ns, UTC], ``metadata`` object.

Read receipts (:func:`read_receipts_frame`): ``sender_id`` string, ``chat_message_id`` string,
``read_on`` datetime64[ns, UTC].

Threads (:func:`threads_frame`): ``id`` string, ``topic`` string, ``last_message_received_on`` and
``deleted_on`` datetime64[ns, UTC].
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "MESSAGE_COLUMNS",
    "PARTICIPANT_COLUMNS",
    "READ_RECEIPT_COLUMNS",
    "RFC3339",
    "THREAD_COLUMNS",
    "empty_frame",
    "message_values",
    "messages_frame",
    "participants_frame",
    "read_receipts_frame",
    "service_times",
    "threads_frame",
    "wire_times",
]

_TIME = "datetime64[ns, UTC]"

MESSAGE_COLUMNS: dict[str, str] = {
    "id": "string",
    "type": "string",
    "sequence_id": "int64",
    "version": "string",
    "content": "string",
    "sender_id": "string",
    "sender_display_name": "string",
    "created_on": _TIME,
    "edited_on": _TIME,
    "deleted_on": _TIME,
    "metadata": "object",
    "topic": "string",
    "participant_ids": "object",
    "initiator_id": "string",
}
PARTICIPANT_COLUMNS: dict[str, str] = {
    "id": "string",
    "display_name": "string",
    "share_history_time": _TIME,
    "metadata": "object",
}
READ_RECEIPT_COLUMNS: dict[str, str] = {
    "sender_id": "string",
    "chat_message_id": "string",
    "read_on": _TIME,
}
THREAD_COLUMNS: dict[str, str] = {
    "id": "string",
    "topic": "string",
    "last_message_received_on": _TIME,
    "deleted_on": _TIME,
}

Items = Sequence[Mapping[str, Any]]


def empty_frame(columns: Mapping[str, str]) -> pd.DataFrame:
    """An empty frame with ``columns`` (name -> dtype)."""
    frame: pd.DataFrame = pd.DataFrame({name: _empty(dtype) for name, dtype in columns.items()})
    return frame


def _empty(dtype: str) -> Any:
    if dtype == _TIME:
        return pd.DatetimeIndex([], tz="UTC").as_unit("ns")
    if dtype == "string":
        return pd.array([], dtype="string")
    return np.array([], dtype=dtype)


def _strings(values: list[Any]) -> Any:
    return pd.array(values, dtype="string")


#: The time form the service writes (RFC 3339 with a zone): a list of only these parses in one call.
RFC3339 = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:\d{2})$"


def service_times(values: Sequence[Any]) -> pa.StringArray | None:
    """``values`` as Arrow text if every one is a time in the service's form (:data:`RFC3339`) or
    ``None``; else ``None`` (the list must be read a value at a time)."""
    try:
        text = pa.array(values, type=pa.string())
    except (pa.ArrowException, UnicodeEncodeError):  # not all text (or a lone surrogate)
        return None
    return text if pc.all(pc.match_substring_regex(text, RFC3339)).as_py() is not False else None


def wire_times(values: Sequence[Any]) -> pd.DatetimeIndex:
    """Wire times (text, or ``None`` for none) as UTC nanoseconds; a time without a zone is UTC.

    A list of times in the service's form (:data:`RFC3339`) is parsed in one call. Any other list is
    parsed a value at a time, with the same rules and errors: pandas 2 applies the UTC offset of one value
    of a list to the times without a zone that follow it (``["...+05:30", "... 00:00:03"]`` made the second
    one 5 h 30 earlier), which pandas 3 does not.

    Raises:
        ValueError: for a value pandas cannot read as a time.
    """
    index: pd.DatetimeIndex
    if all(v is None for v in values):
        index = pd.DatetimeIndex([pd.NaT] * len(values), tz="UTC")
    elif service_times(values) is not None:
        index = pd.DatetimeIndex(pd.to_datetime(list(values), utc=True, format="ISO8601"))
    else:
        each = [pd.to_datetime([v], utc=True, format="ISO8601")[0] for v in values]
        index = pd.DatetimeIndex(each, tz="UTC")
    in_ns: pd.DatetimeIndex = index.as_unit("ns")
    return in_ns


def _objects(values: list[Any]) -> np.ndarray[Any, Any]:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def _raw_id(identifier: Any) -> str | None:
    if not identifier:
        return None
    raw = identifier.get("rawId")
    if raw is None:
        user = identifier.get("communicationUser")
        raw = user.get("id") if user else None
    return raw  # type: ignore[no-any-return]


def _frame(columns: Mapping[str, str], data: dict[str, Any]) -> pd.DataFrame:
    frame: pd.DataFrame = pd.DataFrame({name: data[name] for name in columns}, copy=False)
    return frame


def message_values(items: Items) -> tuple[Items, np.ndarray[Any, Any], dict[str, list[Any]]]:
    """What the columns of :func:`messages_frame` hold, before they become pandas columns.

    For code that stores them otherwise (the export writes Arrow straight from them).

    Args:
        items: wire ``ChatMessage`` dicts, in any order.

    Returns:
        The items in ascending ``sequence_id`` (the order of the frame's rows), their sequence ids
        (int64), and every other column of :data:`MESSAGE_COLUMNS` as a list: the wire's text of the
        time columns, the values (or ``None``) of the others.
    """
    n = len(items)
    seq = np.fromiter((int(m["sequenceId"]) for m in items), dtype=np.int64, count=n)
    if n > 1 and not bool((seq[1:] >= seq[:-1]).all()):
        if bool((seq[1:] <= seq[:-1]).all()):  # the service lists newest first
            items, seq = items[::-1], seq[::-1].copy()
        else:
            order = np.argsort(seq, kind="stable")
            items, seq = [items[i] for i in order], seq[order]
    contents = [m.get("content") or {} for m in items]
    get = dict.get
    values = {
        "id": [m["id"] for m in items],
        "type": [m.get("type") for m in items],
        "version": [m.get("version") for m in items],
        "content": [get(c, "message") for c in contents],
        "sender_id": [_raw_id(m.get("senderCommunicationIdentifier")) for m in items],
        "sender_display_name": [m.get("senderDisplayName") for m in items],
        "created_on": [m.get("createdOn") for m in items],
        "edited_on": [m.get("editedOn") for m in items],
        "deleted_on": [m.get("deletedOn") for m in items],
        "metadata": [m.get("metadata") for m in items],
        "topic": [get(c, "topic") for c in contents],
        "participant_ids": [
            [_raw_id(p.get("communicationIdentifier")) for p in c["participants"]]
            if "participants" in c
            else None
            for c in contents
        ],
        "initiator_id": [_raw_id(get(c, "initiatorCommunicationIdentifier")) for c in contents],
    }
    return items, seq, values


_CONVERT = {"string": _strings, _TIME: wire_times, "object": _objects}


def messages_frame(items: Items) -> pd.DataFrame:
    """Messages (wire ``ChatMessage`` dicts, any order) as a frame in ascending ``sequence_id``."""
    if not items:
        return empty_frame(MESSAGE_COLUMNS)
    _, seq, values = message_values(items)
    data = {name: _CONVERT[MESSAGE_COLUMNS[name]](v) for name, v in values.items()}
    data["sequence_id"] = seq
    return _frame(MESSAGE_COLUMNS, data)


def participants_frame(items: Items) -> pd.DataFrame:
    """Participants (wire ``ChatParticipant`` dicts) in the service's order."""
    if not items:
        return empty_frame(PARTICIPANT_COLUMNS)
    data = {
        "id": _strings([_raw_id(p.get("communicationIdentifier")) for p in items]),
        "display_name": _strings([p.get("displayName") for p in items]),
        "share_history_time": wire_times([p.get("shareHistoryTime") for p in items]),
        "metadata": _objects([p.get("metadata") for p in items]),
    }
    return _frame(PARTICIPANT_COLUMNS, data)


def read_receipts_frame(items: Items) -> pd.DataFrame:
    """Read receipts (wire ``ChatMessageReadReceipt`` dicts) in the service's order."""
    if not items:
        return empty_frame(READ_RECEIPT_COLUMNS)
    data = {
        "sender_id": _strings([_raw_id(r.get("senderCommunicationIdentifier")) for r in items]),
        "chat_message_id": _strings([r.get("chatMessageId") for r in items]),
        "read_on": wire_times([r.get("readOn") for r in items]),
    }
    return _frame(READ_RECEIPT_COLUMNS, data)


def threads_frame(items: Items) -> pd.DataFrame:
    """Threads (wire ``ChatThreadItem`` dicts) in the service's order (most recently active first)."""
    if not items:
        return empty_frame(THREAD_COLUMNS)
    data = {
        "id": _strings([t["id"] for t in items]),
        "topic": _strings([t.get("topic") for t in items]),
        "last_message_received_on": wire_times([t.get("lastMessageReceivedOn") for t in items]),
        "deleted_on": wire_times([t.get("deletedOn") for t in items]),
    }
    return _frame(THREAD_COLUMNS, data)
