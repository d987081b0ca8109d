"""The emulator's SQLite database: schema, the records read from it, and the plumbing under
:class:`~chatnb.emulator.store.Store` (one connection, ``BEGIN IMMEDIATE`` transactions, message ids).

One connection, in WAL mode with ``synchronous=NORMAL``: a committed transaction survives the process
being killed. Times are integers (microseconds since the epoch); the HTTP layer renders them.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._time import now_us

__all__ = ["Database", "Message", "Participant", "Thread"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    id TEXT PRIMARY KEY,
    created_on INTEGER NOT NULL,
    generation INTEGER NOT NULL DEFAULT 0,
    deleted_on INTEGER
);
CREATE TABLE IF NOT EXISTS threads (
    id TEXT PRIMARY KEY,
    topic TEXT NOT NULL,
    created_on INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    deleted_on INTEGER,
    metadata TEXT,
    retention TEXT,
    last_seq INTEGER NOT NULL DEFAULT 0,
    last_message_on INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS participants (
    thread_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    display_name TEXT,
    share_history_time INTEGER,
    metadata TEXT,
    joined_event INTEGER NOT NULL DEFAULT 0,
    UNIQUE (thread_id, user_id)
);
CREATE INDEX IF NOT EXISTS participants_by_user ON participants (user_id, thread_id);
CREATE TABLE IF NOT EXISTS past_participants (
    thread_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    share_history_time INTEGER,
    joined_event INTEGER NOT NULL,
    left_event INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS past_participants_by_thread ON past_participants (thread_id, user_id);
CREATE TABLE IF NOT EXISTS messages (
    thread_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    id TEXT NOT NULL,
    type TEXT NOT NULL,
    version TEXT NOT NULL,
    content TEXT,
    system TEXT,
    sender_id TEXT,
    sender_display_name TEXT,
    created_on INTEGER NOT NULL,
    edited_on INTEGER,
    deleted_on INTEGER,
    updated_on INTEGER NOT NULL,
    metadata TEXT,
    PRIMARY KEY (thread_id, seq)
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS messages_by_id ON messages (thread_id, id);
CREATE TABLE IF NOT EXISTS read_receipts (
    thread_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    message_id TEXT NOT NULL,
    message_seq INTEGER NOT NULL,
    read_on INTEGER NOT NULL,
    PRIMARY KEY (thread_id, user_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS idempotency (
    user_id TEXT NOT NULL,
    request_id TEXT NOT NULL,
    thread_id TEXT NOT NULL,
    PRIMARY KEY (user_id, request_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    thread_id TEXT NOT NULL,
    type TEXT NOT NULL,
    created_on INTEGER NOT NULL,
    visible_from INTEGER,
    payload TEXT NOT NULL
);
"""


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


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _dumps(value: Any) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"))


_MESSAGE_COLUMNS = (
    "thread_id, seq, id, type, version, content, system, sender_id, sender_display_name, "
    "created_on, edited_on, deleted_on, metadata"
)


def _message(row: tuple[Any, ...]) -> Message:
    (thread_id, seq, id_, type_, version, content, system, sender, name, created, edited, deleted, meta) = row
    return Message(
        thread_id,
        seq,
        id_,
        type_,
        version,
        content,
        _loads(system),
        sender,
        name,
        created,
        edited,
        deleted,
        _loads(meta),
    )


def _thread(row: tuple[Any, ...]) -> Thread:
    id_, topic, created_on, created_by, deleted_on, metadata, retention, last_message_on = row
    return Thread(
        id_, topic, created_on, created_by, deleted_on, _loads(metadata), _loads(retention), last_message_on
    )


class Database:
    """The database at ``path`` (``None``: in memory), opened and brought to the schema; the base of
    :class:`~chatnb.emulator.store.Store`."""

    def __init__(self, path: str | Path | None, resource_id: str) -> None:
        self.resource_id = resource_id
        self.path = None if path is None else Path(path)
        self._db = sqlite3.connect(
            ":memory:" if path is None else str(path),
            isolation_level=None,
            check_same_thread=False,
        )
        self._lock = threading.RLock()
        self._listeners: list[Callable[[int], None]] = []
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA busy_timeout=5000")
            self._db.executescript(_SCHEMA)
            self._users: dict[str, int | None] = {
                uid: (None if deleted is not None else gen)
                for uid, gen, deleted in self._db.execute("SELECT id, generation, deleted_on FROM users")
            }
            (last,) = self._db.execute("SELECT MAX(CAST(version AS INTEGER)) FROM messages").fetchone()
            self._last_id_ms = int(last or 0)
            (last_event,) = self._db.execute("SELECT MAX(id) FROM events").fetchone()
            self.last_event_id = int(last_event or 0)
        self._pending_events = False

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def add_listener(self, listener: Callable[[int], None]) -> None:
        """Call ``listener(last_event_id)`` after every commit that appended events."""
        self._listeners.append(listener)

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            last_event_id = self.last_event_id
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                self.last_event_id = last_event_id  # the rolled-back ids will be handed out again
                self._pending_events = False
                raise
            self._db.execute("COMMIT")
            if self._pending_events:
                self._pending_events = False
                for listener in self._listeners:
                    listener(self.last_event_id)

    def _next_id(self) -> str:
        self._last_id_ms = max(now_us() // 1000, self._last_id_ms + 1)
        return str(self._last_id_ms)

    def oldest_event_id(self) -> int:
        (oldest,) = self._db.execute("SELECT MIN(id) FROM events").fetchone()
        return int(oldest or self.last_event_id + 1)

    def integrity_check(self) -> str:
        (result,) = self._db.execute("PRAGMA integrity_check").fetchone()
        return str(result)
