"""The emulator's SQLite database: connections, transactions and the row-level writes under
:class:`~chatnb.emulator.store.Store` (the tables are :mod:`chatnb.emulator.schema`'s).

WAL mode with ``synchronous=NORMAL``: a committed transaction survives the process being killed. Writes go
through one connection, one ``BEGIN IMMEDIATE`` transaction at a time; a database on disk also has a
second, read-only connection, so reads go on while a write waits for a lock another process holds (an
in-memory database has the one connection for both). Every wait for the database is bounded by
``busy_timeout``: a lock that is not granted in time, a full disk or database, and an I/O error raise
:class:`~chatnb.emulator.errors.StorageUnavailable` (answered 503 with ``Retry-After``), and the
transaction is rolled back. Nothing here runs on the event loop: the handlers call in from worker threads.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .clock import Clock
from .errors import StorageUnavailable
from .records import Participant, dumps
from .schema import SCHEMA

__all__ = ["Database", "storage_error"]

# SQLite's primary result codes of the failures a retry can outlive, with what to tell the client
_TRANSIENT = {
    5: "the database is locked by another process",  # SQLITE_BUSY
    6: "the database is locked",  # SQLITE_LOCKED
    8: "the database is read-only",  # SQLITE_READONLY
    10: "a disk I/O error occurred",  # SQLITE_IOERR
    13: "the database or the disk is full",  # SQLITE_FULL
    14: "the database file cannot be opened",  # SQLITE_CANTOPEN
}
_TRANSIENT_TEXT = {
    "database is locked": 5,
    "database table is locked": 6,
    "readonly database": 8,
    "disk i/o error": 10,
    "database or disk is full": 13,
    "unable to open database": 14,
}


def storage_error(exc: sqlite3.Error) -> StorageUnavailable | None:
    """The 503 to answer for ``exc`` if it is a transient storage failure, else ``None`` (a bug)."""
    code = getattr(exc, "sqlite_errorcode", None)
    primary = None if code is None else code & 0xFF
    if primary is None:  # Python 3.10 has no error codes: recognise SQLite's messages
        text = str(exc).lower()
        primary = next((c for phrase, c in _TRANSIENT_TEXT.items() if phrase in text), None)
    if primary not in _TRANSIENT:
        return None
    return StorageUnavailable(f"Storage is unavailable: {_TRANSIENT[primary]}; retry later.")


@contextmanager
def _storage_errors() -> Iterator[None]:
    try:
        yield
    except sqlite3.Error as exc:
        error = storage_error(exc)
        if error is None:
            raise
        raise error from exc


class Database:
    """The database at ``path`` (``None``: in memory), opened and brought to the schema.

    Args:
        busy_timeout: the longest a call waits for the database (seconds) before it raises
            :class:`~chatnb.emulator.errors.StorageUnavailable`.
        max_bytes: the largest the database may grow; a write beyond it raises ``StorageUnavailable``.
        clock: the emulator's clock (:mod:`chatnb.emulator.clock`): every stored time is its time.
    """

    def __init__(
        self,
        path: str | Path | None,
        resource_id: str,
        *,
        busy_timeout: float = 2.0,
        max_bytes: int | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.resource_id = resource_id
        self.clock = clock or Clock()
        self.path = None if path is None else Path(path)
        self.busy_timeout = busy_timeout
        self._writer = self._connect()
        self._write_lock = threading.RLock()
        self._local = threading.local()
        self._listeners: list[Callable[[int], None]] = []
        self._in_flight = 0
        self._in_flight_lock = threading.Lock()
        with self._write_lock, _storage_errors():
            self._writer.execute("PRAGMA journal_mode=WAL")
            self._writer.execute("PRAGMA synchronous=NORMAL")
            self._writer.executescript(SCHEMA)
            if max_bytes is not None:
                (page_size,) = self._writer.execute("PRAGMA page_size").fetchone()
                self._writer.execute(f"PRAGMA max_page_count = {max(1, max_bytes // int(page_size))}")
            self._users: dict[str, int | None] = {
                uid: (None if deleted is not None else gen)
                for uid, gen, deleted in self._writer.execute("SELECT id, generation, deleted_on FROM users")
            }
            (last,) = self._writer.execute("SELECT MAX(CAST(version AS INTEGER)) FROM messages").fetchone()
            self._last_id_ms = int(last or 0)
            (last_event,) = self._writer.execute("SELECT MAX(id) FROM events").fetchone()
        self.last_event_id = int(last_event or 0)  # the newest committed event
        self._tx_event_id = self.last_event_id  # the newest event of the open transaction
        self._tx_events = False
        if self.path is None:
            self._reader, self._read_lock = self._writer, self._write_lock
        else:
            self._reader = self._connect()
            self._reader.execute("PRAGMA query_only=1")
            self._read_lock = threading.RLock()

    def _connect(self) -> sqlite3.Connection:
        target = ":memory:" if self.path is None else str(self.path)
        conn = sqlite3.connect(target, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
        return conn

    def close(self) -> None:
        with self._write_lock, self._read_lock:
            if self._reader is not self._writer:
                self._reader.close()
            self._writer.close()

    def add_listener(self, listener: Callable[[int], None]) -> None:
        """Call ``listener(last_event_id)`` after every commit that appended events."""
        self._listeners.append(listener)

    # -- transactions and reads -----------------------------------------------------------------

    @property
    def writes_in_flight(self) -> int:
        """How many write transactions are waiting for the database or running now."""
        return self._in_flight

    def _count_write(self, delta: int) -> None:
        with self._in_flight_lock:
            self._in_flight += delta

    def _acquire(self, lock: threading.RLock, deadline: float) -> None:
        if not lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
            raise StorageUnavailable("Storage is unavailable: the database is busy; retry later.")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction on the write connection, committed on success.

        Reads made in it (through :meth:`query`) see its changes. Listeners hear of its events after
        the commit.

        Raises:
            StorageUnavailable: if the database is not available within ``busy_timeout`` (locked, full,
                failing); the transaction is rolled back.
        """
        deadline = time.monotonic() + self.busy_timeout
        self._count_write(1)
        try:
            self._acquire(self._write_lock, deadline)
        except BaseException:
            self._count_write(-1)
            raise
        try:
            db = self._writer
            remaining_ms = max(1, int((deadline - time.monotonic()) * 1000))
            with _storage_errors():
                db.execute(f"PRAGMA busy_timeout = {remaining_ms}")
                db.execute("BEGIN IMMEDIATE")
            self._tx_event_id, self._tx_events = self.last_event_id, False
            self._local.tx = db
            try:
                with _storage_errors():
                    yield db
                    db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        db.execute("ROLLBACK")
                raise
            finally:
                self._local.tx = None
            self.last_event_id = self._tx_event_id
            if self._tx_events:
                for listener in self._listeners:
                    listener(self.last_event_id)
        finally:
            self._write_lock.release()
            self._count_write(-1)

    def query(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        """All rows of a ``SELECT``: inside a transaction on its connection, else on the read one.

        Raises:
            StorageUnavailable: if the database is not readable within ``busy_timeout``.
        """
        tx: sqlite3.Connection | None = getattr(self._local, "tx", None)
        if tx is not None:
            return tx.execute(sql, args).fetchall()
        self._acquire(self._read_lock, time.monotonic() + self.busy_timeout)
        try:
            with _storage_errors():
                return self._reader.execute(sql, args).fetchall()
        finally:
            self._read_lock.release()

    def query_one(self, sql: str, args: Sequence[Any] = ()) -> Any:
        """The first row of a ``SELECT``, or ``None``."""
        rows = self.query(sql, args)
        return rows[0] if rows else None

    def next_id(self) -> str:
        """A new message id or version: epoch milliseconds, strictly increasing (call in a transaction)."""
        self._last_id_ms = max(self.clock.now_us() // 1000, self._last_id_ms + 1)
        return str(self._last_id_ms)

    def oldest_event_id(self) -> int:
        (oldest,) = self.query_one("SELECT MIN(id) FROM events")
        return int(oldest or self.last_event_id + 1)

    def integrity_check(self) -> str:
        (result,) = self.query_one("PRAGMA integrity_check")
        return str(result)

    # -- row-level writes (inside a transaction) ------------------------------------------------

    def note_event(self, event_id: int) -> None:
        """Record that the open transaction appended journal entry ``event_id``; listeners hear of it
        once the transaction commits."""
        self._tx_event_id, self._tx_events = event_id, True

    def insert_message(
        self,
        db: sqlite3.Connection,
        thread_id: str,
        type_: str,
        now: int,
        *,
        sender: str | None = None,
        display_name: str | None = None,
        content: str | None = None,
        system: dict[str, Any] | None = None,
        metadata: dict[str, str] | None = None,
    ) -> tuple[str, int]:
        """Append a message to a thread; its id and sequence number."""
        (seq,) = db.execute(
            "UPDATE threads SET last_seq = last_seq + 1, last_message_on = ? WHERE id = ? RETURNING last_seq",
            (now, thread_id),
        ).fetchone()
        message_id = self.next_id()
        db.execute(
            "INSERT INTO messages (thread_id, seq, id, type, version, content, system, sender_id, "
            "sender_display_name, created_on, updated_on, metadata) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                thread_id,
                seq,
                message_id,
                type_,
                message_id,
                content,
                dumps(system),
                sender,
                display_name,
                now,
                now,
                dumps(metadata),
            ),
        )
        return message_id, seq

    def insert_system_message(
        self,
        db: sqlite3.Connection,
        thread_id: str,
        type_: str,
        now: int,
        initiator: str,
        *,
        topic: str | None = None,
        participants: list[Participant] | None = None,
    ) -> None:
        """Append a ``topicUpdated`` / ``participantAdded`` / ``participantRemoved`` system message."""
        system: dict[str, Any] = {"initiator": initiator}
        if topic is not None:
            system["topic"] = topic
        if participants is not None:
            system["participants"] = [p.to_json() for p in participants]
        self.insert_message(db, thread_id, type_, now, system=system)

    def upsert_participants(
        self, db: sqlite3.Connection, thread_id: str, participants: list[Participant], joined_event: int
    ) -> None:
        """Add ``participants`` to a thread (or update them), members from event ``joined_event`` on."""
        db.executemany(
            "INSERT INTO participants (thread_id, user_id, display_name, share_history_time, "
            "metadata, joined_event) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (thread_id, user_id) DO UPDATE SET display_name = excluded.display_name, "
            "share_history_time = excluded.share_history_time, metadata = excluded.metadata",
            [
                (thread_id, p.user_id, p.display_name, p.share_history_time, dumps(p.metadata), joined_event)
                for p in participants
            ],
        )
