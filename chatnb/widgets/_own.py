"""What a ``ChatView`` does with the reader's own messages: edit and delete them from the transcript, and
show a composer's messages as they are sent (a bubble at once, its status, then the message itself).

A mixin of :class:`~chatnb.widgets.ChatView` (it uses the view's transcript, worker and error line).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from ._live import describe_error
from ._outbox import Outbox, Outgoing
from ._transcript import Transcript, TranscriptItem
from ._worker import Job, Worker

__all__ = ["OwnMessages"]


class OwnMessages:
    """Edit, delete and follow-the-outbox for a transcript view."""

    _transcript: Transcript
    _worker: Worker
    _outboxes: list[Outbox]
    thread_client: Any
    error: str
    _emit: Callable[[dict[str, Any] | None], None]  # the view's: one delta to the browser, in order

    def edit(self, message_id: str, text: str) -> Job | None:
        """Edit your own message (what its Edit button does); ``None`` if it is not yours or not held."""
        item = self._transcript.get(message_id)
        if item is None or item.system or item.deleted_on or item.sender_id != self._transcript.user_id:
            return None
        if not text.strip():
            raise ValueError("an edited message cannot be empty: delete it instead")
        self._emit(self._transcript.update(message_id, content=text, status="saving", error=""))
        return self._worker.run(
            self.thread_client.update_message,
            message_id,
            text,
            on_done=lambda _: self._settled(message_id, edited=True),
            on_error=lambda exc: self._undo(item, "Could not edit the message. ", exc),
        )

    def delete(self, message_id: str) -> Job | None:
        """Delete your own message (what its Delete button does); ``None`` if it is not yours or not held."""
        item = self._transcript.get(message_id)
        if item is None or item.system or item.deleted_on or item.sender_id != self._transcript.user_id:
            return None
        self._emit(self._transcript.update(message_id, status="deleting", error=""))
        return self._worker.run(
            self.thread_client.delete_message,
            message_id,
            on_done=lambda _: self._settled(message_id, deleted=True),
            on_error=lambda exc: self._undo(item, "Could not delete the message. ", exc),
        )

    def _settled(self, message_id: str, *, edited: bool = False, deleted: bool = False) -> None:
        now = datetime.now(timezone.utc)
        with self._transcript.lock:
            current = self._transcript.get(message_id)
            if current is None:
                return
            fields: dict[str, Any] = {"status": ""}
            if edited and current.edited_on is None:
                fields["edited_on"] = now
            if deleted and current.deleted_on is None:
                fields.update(deleted_on=now, content="")
            self._emit(self._transcript.update(message_id, **fields))

    def _undo(self, item: TranscriptItem, what: str, exc: Exception) -> None:
        with self._transcript.lock:
            self._emit(self._transcript.upsert(item))
        self.error = what + describe_error(exc)

    # -- sending (through a composer's outbox) ----------------------------------------------------

    def follow(self, outbox: Outbox) -> None:
        """Show ``outbox``'s messages (a :class:`MessageComposer`'s) as they are sent: a bubble at once,
        with its status, replaced by the message itself once the service has it."""
        self._outboxes.append(outbox)
        outbox.listen(self._outgoing)

    def _pending_for(self, content: str) -> str | None:
        """The oldest "sending" bubble with ``content`` (its message's echo may beat the send's answer)."""
        for outbox in self._outboxes:
            for entry in outbox.pending():
                held = self._transcript.get(entry.local_id)
                if entry.content == content and held is not None and held.status == "sending":
                    return entry.local_id
        return None

    def _outgoing(self, entry: Outgoing) -> None:
        with self._transcript.lock:
            if entry.state == "sent" and entry.message_id:
                name = entry.display_name or ""
                real = TranscriptItem(
                    entry.message_id, entry.message_type, self._transcript.user_id, name, entry.content,
                    entry.created_on,
                )  # fmt: skip
                self._emit(self._transcript.replace(entry.local_id, real))
                return
            status = "failed" if entry.state == "failed" else "sending"
            pending = TranscriptItem(
                entry.local_id, entry.message_type, self._transcript.user_id, entry.display_name or "",
                entry.content, entry.created_on, status=status, error=entry.error,
            )  # fmt: skip
            self._emit(self._transcript.upsert(pending))
