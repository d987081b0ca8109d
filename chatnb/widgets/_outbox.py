"""A composer's outbox: each message sent exactly once, in order, off the kernel's loop, with its status.

The browser names every message it asks to send (a ``local-…`` id made when Enter is pressed); the outbox
sends a name once, whichever thread the request arrives on and however often (a double click, a resent
comm message, two views of one composer), so there is no check-then-set race to lose. Listeners (the
composer's status line, a :class:`~chatnb.widgets.ChatView` that follows the composer) hear every change:
``sending``, then ``sent`` (with the message id) or ``failed`` (with the error; :meth:`Outbox.retry`
sends it again).
"""

from __future__ import annotations

import concurrent.futures
import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from ._live import describe_error
from ._worker import Job, Worker, relay

__all__ = ["Outbox", "Outgoing"]

_counter = itertools.count(1)


@dataclass
class Outgoing:
    """A message on its way: its local id, what is sent, and where it stands."""

    local_id: str
    content: str
    message_type: str
    display_name: str | None
    created_on: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    state: str = "sending"  # "sending" | "sent" | "failed"
    message_id: str | None = None
    error: str = ""
    exception: Exception | None = None
    job: Job = field(default_factory=lambda: Job(concurrent.futures.Future()))  # of the latest attempt


class Outbox:
    """Sends messages to ``thread_client``'s thread on ``worker``.

    Attributes:
        sent: how many messages the service accepted.
    """

    def __init__(self, thread_client: Any, worker: Worker) -> None:
        self.thread_client = thread_client
        self.worker = worker
        self.sent = 0
        self._entries: dict[str, Outgoing] = {}
        self._listeners: list[Callable[[Outgoing], None]] = []
        self._lock = threading.RLock()

    def listen(self, listener: Callable[[Outgoing], None]) -> None:
        with self._lock:
            self._listeners.append(listener)

    def unlisten(self, listener: Callable[[Outgoing], None]) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def get(self, local_id: str) -> Outgoing | None:
        return self._entries.get(local_id)

    def pending(self) -> list[Outgoing]:
        """The messages being sent now, oldest first."""
        with self._lock:
            return [e for e in self._entries.values() if e.state == "sending"]

    def send(
        self,
        content: str,
        *,
        message_type: str = "text",
        display_name: str | None = None,
        local_id: str | None = None,
    ) -> Job:
        """Send ``content`` once: a second request with the same ``local_id`` gets the first one's job.

        Raises:
            ValueError: for empty content or an unknown message type.
        """
        if not isinstance(content, str) or not content.strip():
            raise ValueError("nothing to send: the message is empty")
        if message_type not in ("text", "html"):
            raise ValueError("message_type must be 'text' or 'html'")
        with self._lock:
            local_id = local_id or f"local-{next(_counter)}"
            entry = self._entries.get(local_id)
            if entry is not None:
                return entry.job  # the same request again: the same message, sent once
            entry = Outgoing(local_id, content, message_type, display_name)
            self._entries[local_id] = entry
        return self._start(entry)

    def retry(self, local_id: str) -> Job | None:
        """Send a failed message again (what its Retry button does); ``None`` unless it failed."""
        with self._lock:
            entry = self._entries.get(local_id)
            if entry is None or entry.state != "failed":
                return None
            entry.state, entry.error, entry.exception = "sending", "", None
            entry.job = Job(concurrent.futures.Future())
        return self._start(entry)

    def _start(self, entry: Outgoing) -> Job:
        # Listeners are called with no lock held here: they take their own (a view's), and a real-time
        # handler holding that one may ask this outbox what is pending.
        job = entry.job
        self._notify(entry)
        attempt = self.worker.run(
            self.thread_client.send_message,
            entry.content,
            chat_message_type=entry.message_type,
            sender_display_name=entry.display_name,
            on_done=lambda result: self._sent(entry, result),
            on_error=lambda exc: self._failed(entry, exc),
        )
        attempt.future.add_done_callback(lambda done: relay(done, job.future))
        return job

    def _sent(self, entry: Outgoing, result: Any) -> str:
        with self._lock:
            entry.state, entry.message_id = "sent", str(result.id)
            self.sent += 1
        self._notify(entry)
        return entry.message_id

    def _failed(self, entry: Outgoing, exc: Exception) -> None:
        with self._lock:
            entry.state, entry.error, entry.exception = "failed", describe_error(exc), exc
        self._notify(entry)

    def _notify(self, entry: Outgoing) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            listener(entry)
