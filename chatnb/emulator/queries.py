"""What the emulator reads from its database: threads, participants, messages, read receipts, events.

Every read goes through :meth:`~chatnb.emulator.db.Database.query`: inside a transaction it sees the
transaction's changes, elsewhere it uses the read connection and never waits for a writer. Reads do not
check permissions; :mod:`chatnb.emulator.auth` does, before a handler calls in.
"""

from __future__ import annotations

import json
from typing import Any

from .db import Database
from .records import (
    MESSAGE_COLUMNS,
    PARTICIPANT_COLUMNS,
    THREAD_COLUMNS,
    Message,
    Participant,
    Thread,
    message_from_row,
    participant_from_row,
    thread_from_row,
)

__all__ = ["Queries"]

_EVENT_VISIBLE = (
    "e.id >= {m}.joined_event AND (e.visible_from IS NULL OR {m}.share_history_time IS NULL "
    "OR e.visible_from >= {m}.share_history_time)"
)


class Queries(Database):
    """The read side of :class:`~chatnb.emulator.store.Store`."""

    def user_generation(self, user_id: str) -> int | None:
        """The user's token generation, or ``None`` for an unknown or deleted user."""
        return self._users.get(user_id)

    def get_thread(self, thread_id: str) -> Thread | None:
        row = self.query_one(f"SELECT {THREAD_COLUMNS} FROM threads WHERE id = ?", (thread_id,))
        return None if row is None else thread_from_row(row)

    def list_threads(
        self, user_id: str, *, start_time: int | None, after: tuple[int, str] | None, limit: int
    ) -> list[Thread]:
        """The user's threads, most recently active first, after the ``(last_message_on, id)`` cursor."""
        columns = ", ".join(f"t.{c.strip()}" for c in THREAD_COLUMNS.split(","))
        sql = f"SELECT {columns} FROM participants p JOIN threads t ON t.id = p.thread_id WHERE p.user_id = ?"
        args: list[Any] = [user_id]
        if start_time is not None:
            sql += " AND t.last_message_on >= ?"
            args.append(start_time)
        if after is not None:
            sql += " AND (t.last_message_on < ? OR (t.last_message_on = ? AND t.id > ?))"
            args += [after[0], after[0], after[1]]
        sql += " ORDER BY t.last_message_on DESC, t.id LIMIT ?"
        args.append(limit)
        return [thread_from_row(r) for r in self.query(sql, args)]

    def idempotent_thread(self, user_id: str, request_id: str) -> str | None:
        """The id of the thread ``user_id`` created with ``repeatability-request-id: request_id``."""
        row = self.query_one(
            "SELECT thread_id FROM idempotency WHERE user_id = ? AND request_id = ?", (user_id, request_id)
        )
        return None if row is None else str(row[0])

    # -- participants ---------------------------------------------------------------------------

    def participant(self, thread_id: str, user_id: str) -> Participant | None:
        row = self.query_one(
            f"SELECT {PARTICIPANT_COLUMNS} FROM participants WHERE thread_id = ? AND user_id = ?",
            (thread_id, user_id),
        )
        return None if row is None else participant_from_row(row)

    def participant_count(self, thread_id: str) -> int:
        (n,) = self.query_one("SELECT COUNT(*) FROM participants WHERE thread_id = ?", (thread_id,))
        return int(n)

    def joined_event(self, thread_id: str, user_id: str) -> int | None:
        row = self.query_one(
            "SELECT joined_event FROM participants WHERE thread_id = ? AND user_id = ?",
            (thread_id, user_id),
        )
        return None if row is None else int(row[0])

    def list_participants(self, thread_id: str, *, skip: int, limit: int) -> list[Participant]:
        rows = self.query(
            f"SELECT {PARTICIPANT_COLUMNS} FROM participants WHERE thread_id = ? "
            "ORDER BY rowid LIMIT ? OFFSET ?",
            (thread_id, limit, skip),
        )
        return [participant_from_row(r) for r in rows]

    # -- messages and read receipts -------------------------------------------------------------

    def get_message(self, thread_id: str, message_id: str) -> Message | None:
        row = self.query_one(
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE thread_id = ? AND id = ?", (thread_id, message_id)
        )
        return None if row is None else message_from_row(row)

    def list_messages(
        self,
        thread_id: str,
        *,
        visible_from: int | None,
        start_time: int | None,
        before_seq: int | None,
        limit: int,
    ) -> list[Message]:
        """Messages newest first, below ``before_seq``, changed at or after ``start_time``."""
        sql = f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE thread_id = ?"
        args: list[Any] = [thread_id]
        if before_seq is not None:
            sql += " AND seq < ?"
            args.append(before_seq)
        if visible_from is not None:
            sql += " AND created_on >= ?"
            args.append(visible_from)
        if start_time is not None:
            sql += " AND updated_on >= ?"
            args.append(start_time)
        sql += " ORDER BY seq DESC LIMIT ?"
        args.append(limit)
        return [message_from_row(r) for r in self.query(sql, args)]

    def list_read_receipts(
        self, thread_id: str, *, skip: int, limit: int, visible_from: int | None = None
    ) -> list[tuple[str, str, int]]:
        """``(reader, message id, read_on)`` rows, the latest receipt of each reader.

        ``visible_from`` (a ``shareHistoryTime``) leaves out receipts of messages created before it, as
        :meth:`list_messages` leaves out the messages.
        """
        sql = (
            "SELECT r.user_id, r.message_id, r.read_on FROM read_receipts r JOIN messages m "
            "ON m.thread_id = r.thread_id AND m.seq = r.message_seq WHERE r.thread_id = ?"
        )
        args: list[Any] = [thread_id]
        if visible_from is not None:
            sql += " AND m.created_on >= ?"
            args.append(visible_from)
        sql += " ORDER BY r.read_on DESC, r.user_id LIMIT ? OFFSET ?"
        args += [limit, skip]
        return [(r[0], r[1], int(r[2])) for r in self.query(sql, args)]

    # -- events ---------------------------------------------------------------------------------

    def events_for(
        self, user_id: str, *, after: int, limit: int = 500
    ) -> tuple[list[tuple[int, str, str, dict[str, Any]]], int]:
        """The user's events after event ``after``, and the journal id the scan covered up to.

        Rows are ``(event id, type, thread id, payload)``. A user sees the events of a thread from the one
        that made them a participant up to the one that removed them (so a reconnecting client that was
        removed meanwhile still gets what happened before), and message events only for messages their
        ``shareHistoryTime`` lets them see.
        """
        high_water = self.last_event_id
        rows = self.query(
            "SELECT e.id, e.type, e.thread_id, e.payload FROM events e "
            "WHERE e.id > ? AND e.id <= ? AND ("
            "  EXISTS (SELECT 1 FROM participants p WHERE p.thread_id = e.thread_id "
            f"         AND p.user_id = ? AND {_EVENT_VISIBLE.format(m='p')})"
            "  OR EXISTS (SELECT 1 FROM past_participants h WHERE h.thread_id = e.thread_id "
            f"         AND h.user_id = ? AND e.id <= h.left_event AND {_EVENT_VISIBLE.format(m='h')})"
            ") ORDER BY e.id LIMIT ?",
            (after, high_water, user_id, user_id, limit),
        )
        events = [(int(r[0]), r[1], r[2], json.loads(r[3])) for r in rows]
        upto = high_water if len(events) < limit else events[-1][0]
        return events, upto

    # -- what Event Grid delivery reads -----------------------------------------------------------

    def journal_after(self, after: int, limit: int = 500) -> list[tuple[Any, ...]]:
        """``(event id, type, thread id, created_on, visible_from, payload)`` of the journal entries after
        ``after``, oldest first."""
        rows = self.query(
            "SELECT id, type, thread_id, created_on, visible_from, payload FROM events WHERE id > ? "
            "ORDER BY id LIMIT ?",
            (after, limit),
        )
        return [(int(r[0]), r[1], r[2], int(r[3]), r[4], json.loads(r[5])) for r in rows]

    def recipients(self, thread_id: str, event_id: int, visible_from: int | None) -> list[str]:
        """The users who see journal entry ``event_id`` of ``thread_id``: the members of that moment (one
        the entry added is, one it removed still is) whose ``shareHistoryTime`` lets them see it."""
        visible = _EVENT_VISIBLE.replace("e.id", "?").replace("e.visible_from", "?")
        sql = (
            f"SELECT p.user_id FROM participants p WHERE p.thread_id = ? AND {visible.format(m='p')} "
            f"UNION SELECT h.user_id FROM past_participants h WHERE h.thread_id = ? AND ? <= h.left_event "
            f"AND {visible.format(m='h')}"
        )
        seen = (event_id, visible_from, visible_from)
        args = (thread_id, *seen, thread_id, event_id, *seen)
        return sorted({str(r[0]) for r in self.query(sql, args)})
