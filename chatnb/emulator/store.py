"""The emulator's state and every change to it: users, threads, participants, messages, read receipts and
the event journal.

Every change runs in one ``BEGIN IMMEDIATE`` transaction that also appends the change to the event
journal, so an acknowledged write and its event are committed together. The database (schema,
connections, transactions, row-level writes) is :mod:`chatnb.emulator.db`, the reads are
:mod:`chatnb.emulator.queries` and the records :mod:`chatnb.emulator.records`.

The store does not check permissions; :mod:`chatnb.emulator.auth` does, before a handler calls in.
"""

from __future__ import annotations

import sqlite3
import uuid
from typing import Any

from .queries import Queries
from .records import Message, Participant, Thread, dumps

__all__ = ["EVENT_JOURNAL_SIZE", "MAX_THREAD_PARTICIPANTS", "Message", "Participant", "Store", "Thread"]

MAX_THREAD_PARTICIPANTS = 250
EVENT_JOURNAL_SIZE = 100_000


class Store(Queries):
    """The emulator's persistent state. ``path=None`` keeps everything in memory."""

    def emit(
        self,
        db: sqlite3.Connection,
        thread_id: str,
        type_: str,
        payload: dict[str, Any],
        created_on: int,
        visible_from: int | None = None,
    ) -> int:
        """Append an event to the journal, which keeps the newest :data:`EVENT_JOURNAL_SIZE` events."""
        cur = db.execute(
            "INSERT INTO events (thread_id, type, created_on, visible_from, payload) VALUES (?, ?, ?, ?, ?)",
            (thread_id, type_, created_on, visible_from, dumps(payload)),
        )
        event_id = int(cur.lastrowid or 0)
        self.note_event(event_id)
        if event_id % 1000 == 0:
            db.execute("DELETE FROM events WHERE id <= ?", (event_id - EVENT_JOURNAL_SIZE,))
        return event_id

    # -- users ----------------------------------------------------------------------------------

    def create_user(self) -> str:
        user_id = f"8:acs:{self.resource_id}_{uuid.uuid4()}"
        with self.transaction() as db:
            db.execute("INSERT INTO users (id, created_on) VALUES (?, ?)", (user_id, self.clock.now_us()))
        self._users[user_id] = 0
        return user_id

    def revoke_tokens(self, user_id: str) -> None:
        with self.transaction() as db:
            db.execute("UPDATE users SET generation = generation + 1 WHERE id = ?", (user_id,))
        gen = self._users.get(user_id)
        if gen is not None:
            self._users[user_id] = gen + 1

    def delete_user(self, user_id: str) -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE users SET deleted_on = ? WHERE id = ? AND deleted_on IS NULL",
                (self.clock.now_us(), user_id),
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
        """Create a thread with its creator and ``participants``; replay a repeated ``request_id``.

        A ``request_id`` the creator used before returns the thread that request created, whatever this
        request's body says (the real service does so: see :mod:`chatnb.emulator.chat`).
        """
        with self.transaction() as db:
            replayed = None if not request_id else self.idempotent_thread(creator, request_id)
            thread_id = replayed or f"19:{uuid.uuid4().hex}{uuid.uuid4().hex[:11]}1@thread.v2"
            if replayed is None:
                self._insert_thread(db, thread_id, creator, topic, participants, metadata, retention)
                if request_id:
                    db.execute(
                        "INSERT INTO idempotency (user_id, request_id, thread_id) VALUES (?, ?, ?)",
                        (creator, request_id, thread_id),
                    )
            thread = self.get_thread(thread_id)
        if thread is None:
            raise RuntimeError(f"thread {thread_id} vanished in its own transaction")
        return thread

    def _insert_thread(
        self,
        db: sqlite3.Connection,
        thread_id: str,
        creator: str,
        topic: str,
        participants: list[Participant],
        metadata: dict[str, str] | None,
        retention: dict[str, Any] | None,
    ) -> None:
        now = self.clock.now_us()
        members = [Participant(creator)] if all(p.user_id != creator for p in participants) else []
        members += participants
        db.execute(
            "INSERT INTO threads (id, topic, created_on, created_by, metadata, retention, "
            "last_message_on) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (thread_id, topic, now, creator, dumps(metadata), dumps(retention), now),
        )
        created = self.emit(
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
        self.upsert_participants(db, thread_id, members, created)
        self.insert_system_message(db, thread_id, "participantAdded", now, creator, participants=members)
        self.insert_system_message(db, thread_id, "topicUpdated", now, creator, topic=topic)

    def update_thread(
        self,
        thread_id: str,
        initiator: str,
        *,
        topic: str | None,
        metadata: dict[str, str] | None,
        retention: dict[str, Any] | None,
    ) -> None:
        with self.transaction() as db:
            now = self.clock.now_us()
            sets, args = [], []
            if metadata is not None:
                sets.append("metadata = ?")
                args.append(dumps(metadata))
            if retention is not None:
                sets.append("retention = ?")
                args.append(dumps(retention))
            if topic is not None:
                sets.append("topic = ?")
                args.append(topic)
            if sets:
                db.execute(f"UPDATE threads SET {', '.join(sets)} WHERE id = ?", (*args, thread_id))
            if topic is not None:
                self.insert_system_message(db, thread_id, "topicUpdated", now, initiator, topic=topic)
            thread = self.get_thread(thread_id)
            properties = {} if thread is None else {"topic": thread.topic, "metadata": thread.metadata}
            self.emit(
                db,
                thread_id,
                "chatThreadPropertiesUpdated",
                {"updatedOn": now, "updatedBy": initiator, "properties": properties},
                now,
            )

    def delete_thread(self, thread_id: str, initiator: str | None) -> bool:
        """Delete a thread (``initiator`` ``None``: by its retention policy); whether it was live."""
        with self.transaction() as db:
            now = self.clock.now_us()
            cur = db.execute(
                "UPDATE threads SET deleted_on = ? WHERE id = ? AND deleted_on IS NULL",
                (now, thread_id),
            )
            if cur.rowcount:
                self.emit(db, thread_id, "chatThreadDeleted", {"deletedOn": now, "deletedBy": initiator}, now)
            return bool(cur.rowcount)

    # -- participants ---------------------------------------------------------------------------

    def add_participants(self, thread_id: str, initiator: str, participants: list[Participant]) -> None:
        with self.transaction() as db:
            now = self.clock.now_us()
            added = self.emit(
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
            self.upsert_participants(db, thread_id, participants, added)
            self.insert_system_message(
                db, thread_id, "participantAdded", now, initiator, participants=participants
            )

    def remove_participant(self, thread_id: str, initiator: str, user_id: str) -> bool:
        with self.transaction() as db:
            removed = self.participant(thread_id, user_id)
            joined = self.joined_event(thread_id, user_id)
            if removed is None or joined is None:
                return False
            now = self.clock.now_us()
            db.execute("DELETE FROM participants WHERE thread_id = ? AND user_id = ?", (thread_id, user_id))
            db.execute("DELETE FROM read_receipts WHERE thread_id = ? AND user_id = ?", (thread_id, user_id))
            self.insert_system_message(
                db, thread_id, "participantRemoved", now, initiator, participants=[removed]
            )
            left = self.emit(
                db,
                thread_id,
                "participantsRemoved",
                {"removedOn": now, "removedBy": initiator, "participantsRemoved": [removed.to_json()]},
                now,
            )
            # the journal still shows the removed user what happened while they were a member
            db.execute(
                "INSERT INTO past_participants (thread_id, user_id, share_history_time, joined_event, "
                "left_event) VALUES (?, ?, ?, ?, ?)",
                (thread_id, user_id, removed.share_history_time, joined, left),
            )
            return True

    # -- messages -------------------------------------------------------------------------------

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
        with self.transaction() as db:
            now = self.clock.now_us()
            message_id, _ = self.insert_message(
                db,
                thread_id,
                type_,
                now,
                sender=sender,
                display_name=display_name,
                content=content,
                metadata=metadata,
            )
            self.emit(
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

    def update_message(
        self, message: Message, *, content: str | None, metadata: dict[str, str] | None
    ) -> None:
        with self.transaction() as db:
            now = self.clock.now_us()
            version = self.next_id()
            new_content = message.content if content is None else content
            db.execute(
                "UPDATE messages SET content = ?, metadata = ?, version = ?, edited_on = ?, "
                "updated_on = ? WHERE thread_id = ? AND seq = ?",
                (new_content, dumps(metadata), version, now, now, message.thread_id, message.seq),
            )
            self.emit(
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
        with self.transaction() as db:
            now = self.clock.now_us()
            version = self.next_id()
            cur = db.execute(
                "UPDATE messages SET deleted_on = ?, updated_on = ?, version = ?, content = NULL "
                "WHERE thread_id = ? AND seq = ? AND deleted_on IS NULL",
                (now, now, version, message.thread_id, message.seq),
            )
            if cur.rowcount:
                self.emit(
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
        with self.transaction() as db:
            now = self.clock.now_us()
            self.emit(
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
        with self.transaction() as db:
            now = self.clock.now_us()
            db.execute(
                "INSERT INTO read_receipts (thread_id, user_id, message_id, message_seq, read_on) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (thread_id, user_id) DO UPDATE SET "
                "message_id = excluded.message_id, message_seq = excluded.message_seq, "
                "read_on = excluded.read_on WHERE excluded.message_seq >= read_receipts.message_seq",
                (message.thread_id, reader, message.id, message.seq, now),
            )
            participant = self.participant(message.thread_id, reader)
            self.emit(
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
