"""The emulator's SQLite schema, created if missing when a database is opened.

Times are integers (microseconds since the epoch). ``messages`` are keyed by thread and sequence number
(ids are epoch-millisecond strings, unique per thread); ``events`` is the journal the event stream
serves, bounded by :data:`~chatnb.emulator.store.EVENT_JOURNAL_SIZE`; ``participants.joined_event`` and
``past_participants`` say which journal entries a user may see; ``idempotency`` maps a user's
``repeatability-request-id`` to the thread it created.
"""

from __future__ import annotations

__all__ = ["SCHEMA"]

SCHEMA = """
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
