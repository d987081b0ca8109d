"""Bulk seeding of an emulator store, for benchmarks and tests that need long or old histories.

Sending 200,000 messages over HTTP takes minutes; :func:`seed_messages` inserts them straight into the
store in one transaction (tens of thousands a second), with the creation times you choose (so a history
can span months). Seeded messages are ordinary rows: listing, editing and deleting them over HTTP works
as for sent ones. They append no events to the journal (nothing was "sent").

>>> store = Store(path, resource_id)            # or emulator.store, before or while it serves
>>> thread = store.create_thread(user, "Archive", [], request_id=None)
>>> seed_messages(store, thread.id, user, ((t0 + i * 60_000_000, f"message {i}") for i in range(200_000)))
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import islice

from .records import dumps
from .store import Store

__all__ = ["seed_messages"]


def seed_messages(
    store: Store,
    thread_id: str,
    sender: str,
    messages: Iterable[tuple[int, str]],
    *,
    display_name: str | None = None,
    type_: str = "text",
    metadata: dict[str, str] | None = None,
    batch: int = 20_000,
) -> int:
    """Append ``(created_on microseconds, content)`` messages from ``sender`` to ``thread_id``.

    Sequence ids follow the thread's last one, in the order given (give increasing times for a
    realistic history). Returns how many were inserted.
    """
    meta = dumps(metadata)
    count = 0
    it = iter(messages)
    while True:
        chunk = list(islice(it, batch))
        if not chunk:
            return count
        with store.transaction() as db:
            (last_seq,) = db.execute("SELECT last_seq FROM threads WHERE id = ?", (thread_id,)).fetchone()
            rows = []
            for i, (created, content) in enumerate(chunk, start=1):
                message_id = store.next_id()
                rows.append(
                    (
                        thread_id,
                        last_seq + i,
                        message_id,
                        type_,
                        message_id,
                        content,
                        sender,
                        display_name,
                        created,
                        created,
                        meta,
                    )
                )
            db.executemany(
                "INSERT INTO messages (thread_id, seq, id, type, version, content, sender_id, "
                "sender_display_name, created_on, updated_on, metadata) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            db.execute(
                "UPDATE threads SET last_seq = ?, last_message_on = MAX(last_message_on, ?) WHERE id = ?",
                (last_seq + len(chunk), chunk[-1][0], thread_id),
            )
        count += len(chunk)
