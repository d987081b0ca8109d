"""The records the emulator's database holds, and their row and JSON-column codecs.

A record is what a query returns (frozen dataclasses); the codecs turn a ``SELECT`` row into one and a
Python value into the JSON text stored in a ``TEXT`` column. Times are integers (microseconds since the
epoch); :mod:`chatnb.emulator.wire` renders them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

__all__ = [
    "MESSAGE_COLUMNS",
    "PARTICIPANT_COLUMNS",
    "THREAD_COLUMNS",
    "Message",
    "Participant",
    "Thread",
    "dumps",
    "loads",
    "message_from_row",
    "participant_from_row",
    "thread_from_row",
]


@dataclass(frozen=True, slots=True)
class Thread:
    id: str
    topic: str
    created_on: int
    created_by: str
    deleted_on: int | None
    metadata: dict[str, str] | None
    retention: dict[str, Any] | None
    last_message_on: int


@dataclass(frozen=True, slots=True)
class Participant:
    user_id: str
    display_name: str | None = None
    share_history_time: int | None = None
    metadata: dict[str, str] | None = None

    def to_json(self) -> dict[str, Any]:
        """The stored form inside system messages and events."""
        return {
            "id": self.user_id,
            "displayName": self.display_name,
            "shareHistoryTime": self.share_history_time,
            "metadata": self.metadata,
        }


@dataclass(frozen=True, slots=True)
class Message:
    thread_id: str
    seq: int
    id: str
    type: str
    version: str
    content: str | None
    system: dict[str, Any] | None
    sender_id: str | None
    sender_display_name: str | None
    created_on: int
    edited_on: int | None
    deleted_on: int | None
    metadata: dict[str, str] | None


THREAD_COLUMNS = "id, topic, created_on, created_by, deleted_on, metadata, retention, last_message_on"
PARTICIPANT_COLUMNS = "user_id, display_name, share_history_time, metadata"
MESSAGE_COLUMNS = (
    "thread_id, seq, id, type, version, content, system, sender_id, sender_display_name, "
    "created_on, edited_on, deleted_on, metadata"
)


def loads(text: str | None) -> Any:
    """The value of a JSON column (``None`` for SQL ``NULL``)."""
    return None if text is None else json.loads(text)


def dumps(value: Any) -> str | None:
    """The JSON column text of ``value`` (``None`` stays SQL ``NULL``)."""
    return None if value is None else json.dumps(value, separators=(",", ":"))


def thread_from_row(row: tuple[Any, ...]) -> Thread:
    """A :class:`Thread` from a row of :data:`THREAD_COLUMNS`."""
    id_, topic, created_on, created_by, deleted_on, metadata, retention, last_message_on = row
    return Thread(
        id_, topic, created_on, created_by, deleted_on, loads(metadata), loads(retention), last_message_on
    )


def participant_from_row(row: tuple[Any, ...]) -> Participant:
    """A :class:`Participant` from a row of :data:`PARTICIPANT_COLUMNS`."""
    return Participant(row[0], row[1], row[2], loads(row[3]))


def message_from_row(row: tuple[Any, ...]) -> Message:
    """A :class:`Message` from a row of :data:`MESSAGE_COLUMNS`."""
    (thread_id, seq, id_, type_, version, content, system, sender, name, created, edited, deleted, meta) = row
    return Message(
        thread_id,
        seq,
        id_,
        type_,
        version,
        content,
        loads(system),
        sender,
        name,
        created,
        edited,
        deleted,
        loads(meta),
    )
