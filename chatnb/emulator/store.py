"""The emulator's state and every change to it: users, threads, participants, messages, read receipts and
the event journal.

Every change runs in one ``BEGIN IMMEDIATE`` transaction that also appends the change to the event
journal, so an acknowledged write and its event are committed together. The database itself (schema,
records, connection, transactions) is :mod:`chatnb.emulator.db`.

The store does not check permissions; :mod:`chatnb.emulator.chat` does, before it calls in.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from typing import Any

from .._time import now_us
from .db import _MESSAGE_COLUMNS, Database, Message, Participant, Thread, _dumps, _loads, _message, _thread

__all__ = ["Message", "Participant", "Store", "Thread"]

MAX_THREAD_PARTICIPANTS = 250
EVENT_JOURNAL_SIZE = 100_000


class Store(Database):
    """The emulator's persistent state. ``path=None`` keeps everything in memory."""

    # -- the event journal ----------------------------------------------------------------------

    def _emit(
        self,
        db: sqlite3.Connection,
        thread_id: str,
        type_: str,
        payload: dict[str, Any],
        created_on: int,
        visible_from: int | None = None,
    ) -> None:
        cur = db.execute(
            "INSERT INTO events (thread_id, type, created_on, visible_from, payload) VALUES (?, ?, ?, ?, ?)",
            (thread_id, type_, created_on, visible_from, _dumps(payload)),
        )
        self.last_event_id = int(cur.lastrowid or 0)
        self._pending_events = True
        if self.last_event_id % 1000 == 0:
            db.execute("DELETE FROM events WHERE id <= ?", (self.last_event_id - EVENT_JOURNAL_SIZE,))

    # -- users ----------------------------------------------------------------------------------

    def create_user(self) -> str:
        user_id = f"8:acs:{self.resource_id}_{uuid.uuid4()}"
        with self._tx() as db:
            db.execute("INSERT INTO users (id, created_on) VALUES (?, ?)", (user_id, now_us()))
        self._users[user_id] = 0
        return user_id

    def user_generation(self, user_id: str) -> int | None:
        """The user's token generation, or ``None`` for an unknown or deleted user."""
        return self._users.get(user_id)

    def revoke_tokens(self, user_id: str) -> None:
        with self._tx() as db:
            db.execute("UPDATE users SET generation = generation + 1 WHERE id = ?", (user_id,))
        gen = self._users.get(user_id)
        if gen is not None:
            self._users[user_id] = gen + 1

    def delete_user(self, user_id: str) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE users SET deleted_on = ? WHERE id = ? AND deleted_on IS NULL",
                (now_us(), user_id),
            )
        if user_id in self._users:
            self._users[user_id] = None

    # -- threads --------------------------------------------------------------------------------

    def create_thread(
        self,
        creator: str,
        topic: str,
        participants: list[Participant],
        *,
        request_id: str | None,
        metadata: dict[str, str] | None = None,
        retention: dict[str, Any] | None = None,
    ) -> Thread:
        """Create a thread with its creator and ``participants``; replay a repeated ``request_id``."""
        with self._tx() as db:
            if request_id:
                row = db.execute(
                    "SELECT thread_id FROM idempotency WHERE user_id = ? AND request_id = ?",
                    (creator, request_id),
                ).fetchone()
                if row is not None:
                    thread = self.get_thread(row[0])
                    assert thread is not None
                    return thread
            now = now_us()
            thread_id = f"19:{uuid.uuid4().hex}{uuid.uuid4().hex[:11]}1@thread.v2"
            members = [Participant(creator)] if all(p.user_id != creator for p in participants) else []
            members += participants
            db.execute(
                "INSERT INTO threads (id, topic, created_on, created_by, metadata, retention, "
                "last_message_on) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (thread_id, topic, now, creator, _dumps(metadata), _dumps(retention), now),
            )
            if request_id:
                db.execute(
                    "INSERT INTO idempotency (user_id, request_id, thread_id) VALUES (?, ?, ?)",
                    (creator, request_id, thread_id),
                )
            self._emit(
                db,
                thread_id,
                "chatThreadCreated",
                {
                    "createdOn": now,
                    "createdBy": creator,
                    "properties": {"topic": topic, "metadata": metadata},
                    "participants": [p.to_json() for p in members],
                },
                now,
            )
            self._insert_participants(db, thread_id, members)
            self._system_message(db, thread_id, "participantAdded", now, creator, participants=members)
            self._system_message(db, thread_id, "topicUpdated", now, creator, topic=topic)
        thread = self.get_thread(thread_id)
        assert thread is not None
        return thread

    def get_thread(self, thread_id: str) -> Thread | None:
        row = self._db.execute(
            "SELECT id, topic, created_on, created_by, deleted_on, metadata, retention, "
            "last_message_on FROM threads WHERE id = ?",
            (thread_id,),
        ).fetchone()
        return None if row is None else _thread(row)

    def list_threads(
        self, user_id: str, *, start_time: int | None, after: tuple[int, str] | None, limit: int
    ) -> list[Thread]:
        """The user's threads, most recently active first, after the ``(last_message_on, id)`` cursor."""
        sql = (
            "SELECT t.id, t.topic, t.created_on, t.created_by, t.deleted_on, t.metadata, "
            "t.retention, t.last_message_on FROM participants p JOIN threads t ON t.id = p.thread_id "
            "WHERE p.user_id = ?"
        )
        args: list[Any] = [user_id]
        if start_time is not None:
            sql += " AND t.last_message_on >= ?"
            args.append(start_time)
        if after is not None:
            sql += " AND (t.last_message_on < ? OR (t.last_message_on = ? AND t.id > ?))"
            args += [after[0], after[0], after[1]]
        sql += " ORDER BY t.last_message_on DESC, t.id LIMIT ?"
        args.append(limit)
        return [_thread(r) for r in self._db.execute(sql, args)]

    def update_thread(
        self,
        thread_id: str,
        initiator: str,
        *,
        topic: str | None,
        metadata: dict[str, str] | None,
        retention: dict[str, Any] | None,
    ) -> None:
        with self._tx() as db:
            now = now_us()
            sets, args = [], []
            if metadata is not None:
                sets.append("metadata = ?")
                args.append(_dumps(metadata))
            if retention is not None:
                sets.append("retention = ?")
                args.append(_dumps(retention))
            if topic is not None:
                sets.append("topic = ?")
                args.append(topic)
            if sets:
                db.execute(f"UPDATE threads SET {', '.join(sets)} WHERE id = ?", (*args, thread_id))
            if topic is not None:
                self._system_message(db, thread_id, "topicUpdated", now, initiator, topic=topic)
            thread = self.get_thread(thread_id)
            assert thread is not None
            self._emit(
                db,
                thread_id,
                "chatThreadPropertiesUpdated",
                {
                    "updatedOn": now,
                    "updatedBy": initiator,
                    "properties": {"topic": thread.topic, "metadata": thread.metadata},
                },
                now,
            )

    def delete_thread(self, thread_id: str, initiator: str) -> None:
        with self._tx() as db:
            now = now_us()
            cur = db.execute(
                "UPDATE threads SET deleted_on = ? WHERE id = ? AND deleted_on IS NULL",
                (now, thread_id),
            )
            if cur.rowcount:
                self._emit(
                    db, thread_id, "chatThreadDeleted", {"deletedOn": now, "deletedBy": initiator}, now
                )

    # -- participants ---------------------------------------------------------------------------

    def participant(self, thread_id: str, user_id: str) -> Participant | None:
        row = self._db.execute(
            "SELECT user_id, display_name, share_history_time, metadata FROM participants "
            "WHERE thread_id = ? AND user_id = ?",
            (thread_id, user_id),
        ).fetchone()
        return None if row is None else Participant(row[0], row[1], row[2], _loads(row[3]))

    def participant_count(self, thread_id: str) -> int:
        (n,) = self._db.execute(
            "SELECT COUNT(*) FROM participants WHERE thread_id = ?", (thread_id,)
        ).fetchone()
        return int(n)

    def joined_event(self, thread_id: str, user_id: str) -> int | None:
        row = self._db.execute(
            "SELECT joined_event FROM participants WHERE thread_id = ? AND user_id = ?",
            (thread_id, user_id),
        ).fetchone()
        return None if row is None else int(row[0])

    def list_participants(self, thread_id: str, *, skip: int, limit: int) -> list[Participant]:
        rows = self._db.execute(
            "SELECT user_id, display_name, share_history_time, metadata FROM participants "
            "WHERE thread_id = ? ORDER BY rowid LIMIT ? OFFSET ?",
            (thread_id, limit, skip),
        )
        return [Participant(r[0], r[1], r[2], _loads(r[3])) for r in rows]

    def _insert_participants(
        self, db: sqlite3.Connection, thread_id: str, participants: list[Participant]
    ) -> None:
        db.executemany(
            "INSERT INTO participants (thread_id, user_id, display_name, share_history_time, "
            "metadata, joined_event) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (thread_id, user_id) DO UPDATE SET display_name = excluded.display_name, "
            "share_history_time = excluded.share_history_time, metadata = excluded.metadata",
            [
                (
                    thread_id,
                    p.user_id,
                    p.display_name,
                    p.share_history_time,
                    _dumps(p.metadata),
                    self.last_event_id,
                )
                for p in participants
            ],
        )

    def add_participants(self, thread_id: str, initiator: str, participants: list[Participant]) -> None:
        with self._tx() as db:
            now = now_us()
            self._emit(
                db,
                thread_id,
                "participantsAdded",
                {
                    "addedOn": now,
                    "addedBy": initiator,
                    "participantsAdded": [p.to_json() for p in participants],
                },
                now,
            )
            self._insert_participants(db, thread_id, participants)
            self._system_message(db, thread_id, "participantAdded", now, initiator, participants=participants)

    def remove_participant(self, thread_id: str, initiator: str, user_id: str) -> bool:
        with self._tx() as db:
            removed = self.participant(thread_id, user_id)
            joined = self.joined_event(thread_id, user_id)
            if removed is None or joined is None:
                return False
            now = now_us()
            db.execute("DELETE FROM participants WHERE thread_id = ? AND user_id = ?", (thread_id, user_id))
            db.execute(
                "DELETE FROM read_receipts WHERE thread_id = ? AND user_id = ?",
                (thread_id, user_id),
            )
            self._system_message(db, thread_id, "participantRemoved", now, initiator, participants=[removed])
            self._emit(
                db,
                thread_id,
                "participantsRemoved",
                {
                    "removedOn": now,
                    "removedBy": initiator,
                    "participantsRemoved": [removed.to_json()],
                },
                now,
            )
            # the journal still shows the removed user what happened while they were a member
            db.execute(
                "INSERT INTO past_participants (thread_id, user_id, share_history_time, joined_event, "
                "left_event) VALUES (?, ?, ?, ?, ?)",
                (thread_id, user_id, removed.share_history_time, joined, self.last_event_id),
            )
            return True

    # -- messages -------------------------------------------------------------------------------

    def _system_message(
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
        system: dict[str, Any] = {"initiator": initiator}
        if topic is not None:
            system["topic"] = topic
        if participants is not None:
            system["participants"] = [p.to_json() for p in participants]
        self._insert_message(db, thread_id, type_, now, None, None, None, system, None)

    def _insert_message(
        self,
        db: sqlite3.Connection,
        thread_id: str,
        type_: str,
        now: int,
        sender: str | None,
        display_name: str | None,
        content: str | None,
        system: dict[str, Any] | None,
        metadata: dict[str, str] | None,
    ) -> tuple[str, int]:
        (seq,) = db.execute(
            "UPDATE threads SET last_seq = last_seq + 1, last_message_on = ? WHERE id = ? RETURNING last_seq",
            (now, thread_id),
        ).fetchone()
        message_id = self._next_id()
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
                _dumps(system),
                sender,
                display_name,
                now,
                now,
                _dumps(metadata),
            ),
        )
        return message_id, seq

    def send_message(
        self,
        thread_id: str,
        sender: str,
        *,
        type_: str,
        content: str,
        display_name: str | None,
        metadata: dict[str, str] | None,
    ) -> str:
        with self._tx() as db:
            now = now_us()
            message_id, _ = self._insert_message(
                db, thread_id, type_, now, sender, display_name, content, None, metadata
            )
            self._emit(
                db,
                thread_id,
                "chatMessageReceived",
                {
                    "id": message_id,
                    "type": type_,
                    "version": message_id,
                    "createdOn": now,
                    "sender": sender,
                    "senderDisplayName": display_name,
                    "message": content,
                    "metadata": metadata,
                },
                now,
                visible_from=now,
            )
        return message_id

    def get_message(self, thread_id: str, message_id: str) -> Message | None:
        row = self._db.execute(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE thread_id = ? AND id = ?",
            (thread_id, message_id),
        ).fetchone()
        return None if row is None else _message(row)

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
        sql = f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE thread_id = ?"
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
        return [_message(r) for r in self._db.execute(sql, args)]

    def update_message(
        self,
        message: Message,
        *,
        content: str | None,
        metadata: dict[str, str] | None,
    ) -> None:
        with self._tx() as db:
            now = now_us()
            version = self._next_id()
            new_content = message.content if content is None else content
            db.execute(
                "UPDATE messages SET content = ?, metadata = ?, version = ?, edited_on = ?, "
                "updated_on = ? WHERE thread_id = ? AND seq = ?",
                (
                    new_content,
                    _dumps(metadata),
                    version,
                    now,
                    now,
                    message.thread_id,
                    message.seq,
                ),
            )
            self._emit(
                db,
                message.thread_id,
                "chatMessageEdited",
                {
                    "id": message.id,
                    "type": message.type,
                    "version": version,
                    "createdOn": message.created_on,
                    "editedOn": now,
                    "sender": message.sender_id,
                    "senderDisplayName": message.sender_display_name,
                    "message": new_content,
                    "metadata": metadata,
                },
                now,
                visible_from=message.created_on,
            )

    def delete_message(self, message: Message) -> None:
        with self._tx() as db:
            now = now_us()
            version = self._next_id()
            cur = db.execute(
                "UPDATE messages SET deleted_on = ?, updated_on = ?, version = ?, content = NULL "
                "WHERE thread_id = ? AND seq = ? AND deleted_on IS NULL",
                (now, now, version, message.thread_id, message.seq),
            )
            if cur.rowcount:
                self._emit(
                    db,
                    message.thread_id,
                    "chatMessageDeleted",
                    {
                        "id": message.id,
                        "type": message.type,
                        "version": version,
                        "createdOn": message.created_on,
                        "deletedOn": now,
                        "sender": message.sender_id,
                        "senderDisplayName": message.sender_display_name,
                    },
                    now,
                    visible_from=message.created_on,
                )

    # -- typing and read receipts ---------------------------------------------------------------

    def typing(self, thread_id: str, sender: str, display_name: str | None) -> None:
        with self._tx() as db:
            now = now_us()
            self._emit(
                db,
                thread_id,
                "typingIndicatorReceived",
                {
                    "sender": sender,
                    "senderDisplayName": display_name,
                    "version": str(now // 1000),
                    "receivedOn": now,
                },
                now,
            )

    def send_read_receipt(self, message: Message, reader: str) -> None:
        with self._tx() as db:
            now = now_us()
            db.execute(
                "INSERT INTO read_receipts (thread_id, user_id, message_id, message_seq, read_on) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (thread_id, user_id) DO UPDATE SET "
                "message_id = excluded.message_id, message_seq = excluded.message_seq, "
                "read_on = excluded.read_on WHERE excluded.message_seq >= read_receipts.message_seq",
                (message.thread_id, reader, message.id, message.seq, now),
            )
            participant = self.participant(message.thread_id, reader)
            self._emit(
                db,
                message.thread_id,
                "readReceiptReceived",
                {
                    "sender": reader,
                    "senderDisplayName": participant.display_name if participant else None,
                    "chatMessageId": message.id,
                    "readOn": now,
                },
                now,
                visible_from=message.created_on,
            )

    def list_read_receipts(self, thread_id: str, *, skip: int, limit: int) -> list[tuple[str, str, int]]:
        """``(reader, message id, read_on)`` rows, the latest receipt of each reader."""
        rows = self._db.execute(
            "SELECT user_id, message_id, read_on FROM read_receipts WHERE thread_id = ? "
            "ORDER BY read_on DESC, user_id LIMIT ? OFFSET ?",
            (thread_id, limit, skip),
        )
        return [(r[0], r[1], int(r[2])) for r in rows]

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
        visible = (
            "e.id >= {m}.joined_event AND (e.visible_from IS NULL OR {m}.share_history_time IS NULL "
            "OR e.visible_from >= {m}.share_history_time)"
        )
        with self._lock:
            high_water = self.last_event_id
            rows = self._db.execute(
                "SELECT e.id, e.type, e.thread_id, e.payload FROM events e "
                "WHERE e.id > ? AND e.id <= ? AND ("
                "  EXISTS (SELECT 1 FROM participants p WHERE p.thread_id = e.thread_id "
                f"         AND p.user_id = ? AND {visible.format(m='p')})"
                "  OR EXISTS (SELECT 1 FROM past_participants h WHERE h.thread_id = e.thread_id "
                f"         AND h.user_id = ? AND e.id <= h.left_event AND {visible.format(m='h')})"
                ") ORDER BY e.id LIMIT ?",
                (after, high_water, user_id, user_id, limit),
            ).fetchall()
        events = [(int(r[0]), r[1], r[2], json.loads(r[3])) for r in rows]
        upto = high_water if len(events) < limit else events[-1][0]
        return events, upto
