"""``MessageComposer``: write and send messages to one thread.

>>> composer = MessageComposer(thread)          # or MessageComposer(user, thread_id)
>>> composer                                     # Enter sends, Shift+Enter starts a new line
>>> await composer.send("hi")                    # the same from code; the result is the message id

An anywidget (``chatnb.js``): a multi-line box that grows with its text, a Send button, and (with
``show_options``) the display name and a text/html choice. The browser sends the text *with* the request
to send it, so what goes out is exactly what was in the box (no race with the box's value), and names the
request, so a message goes out once however the request arrives (:mod:`._outbox`). The box clears at
once and the next message can be written while one is being sent; each message's status shows on its
bubble in a :class:`ChatView` that follows the composer (as in :class:`ChatPanel`), and in the
composer's own status line otherwise ("Not sent" with a Retry button when it fails). While the user
types, a typing notification goes out at most every ``typing_interval`` seconds.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import traitlets as t

from . import _html
from ._base import ChatWidget
from ._outbox import Outbox, Outgoing
from ._target import resolve_target
from ._worker import Job, Worker

__all__ = ["TYPING_INTERVAL_S", "MessageComposer"]

HERE = Path(__file__).parent
TYPING_INTERVAL_S = 8.0
"""The JavaScript SDK sends a typing notification at most every 8 seconds; so do we."""


class MessageComposer(ChatWidget):
    """Compose and send messages to a thread.

    Args:
        target: a thread client; or a chat client or ``session.user(...)`` followed by ``thread``.
        display_name: the sender display name (by default the user's, or the thread client's).
        message_type: ``"text"`` or ``"html"``.
        show_options: show the display name field and the text/html choice.
        typing_interval: seconds between typing notifications while typing (``0`` turns them off).
        placeholder: the empty box's hint.
        settle: ignored (the ipywidgets composer waited for the box's value to arrive before sending).

    Attributes:
        outbox: what was sent and how it went (:class:`~chatnb.widgets._outbox.Outbox`).
        last_message_id: the id of the last message sent (``None`` before).
        last_error: the last error (``None`` after a successful send).
    """

    _esm = HERE / "chatnb.js"
    snapshot_kind = "composer"
    _kind = t.Unicode("composer").tag(sync=True)
    display_name = t.Unicode("").tag(sync=True)
    message_type = t.Unicode("text").tag(sync=True)
    show_options = t.Bool(True).tag(sync=True)
    show_status = t.Bool(True).tag(sync=True)
    typing_interval = t.Float(TYPING_INTERVAL_S).tag(sync=True)
    placeholder = t.Unicode("Message (Enter sends, Shift+Enter: new line)").tag(sync=True)
    state = t.Dict().tag(sync=True)  # the last send: {"state", "text", "id"}

    def __init__(
        self,
        target: Any,
        thread: Any = None,
        *,
        display_name: str | None = None,
        message_type: str = "text",
        show_options: bool = True,
        typing_interval: float = TYPING_INTERVAL_S,
        placeholder: str | None = None,
        settle: float | None = None,
        **kwargs: Any,
    ) -> None:
        del settle  # accepted for old callers: the text now travels with the request to send it
        if message_type not in ("text", "html"):
            raise ValueError("message_type must be 'text' or 'html'")
        if typing_interval < 0:
            raise ValueError("typing_interval must not be negative")
        found = resolve_target("MessageComposer", target, thread)
        self.thread_client = found.thread_client
        self.typing_sent = 0
        self.last_message_id: str | None = None
        self.last_error: Exception | None = None
        self._last_typing = float("-inf")
        self._typing_lock = threading.Lock()
        if placeholder is not None:
            kwargs["placeholder"] = placeholder
        super().__init__(
            display_name=display_name if display_name is not None else found.display_name or "",
            message_type=message_type,
            show_options=show_options,
            typing_interval=float(typing_interval),
            **kwargs,
        )
        self.add_class("chatnb-composer")
        self._worker = Worker(self.thread_client)
        self.outbox = Outbox(self.thread_client, self._worker)
        self.outbox.listen(self._outgoing)
        self.on_msg(self._on_front_end)

    @t.validate("message_type")
    def _valid_type(self, proposal: Any) -> str:
        if proposal["value"] not in ("text", "html"):
            raise t.TraitError("message_type must be 'text' or 'html'")
        return str(proposal["value"])

    @property
    def sent(self) -> int:
        """How many messages the service accepted."""
        return self.outbox.sent

    # -- sending ----------------------------------------------------------------------------------

    def send(self, text: str, *, local_id: str | None = None) -> Job:
        """Send ``text`` as the composer would (its current display name and type): a :class:`Job` whose
        result is the new message's id. Errors are shown in the widget (and raised by the job).

        Raises:
            ValueError: for empty text.
        """
        name = self.display_name.strip() or None
        self._last_typing = float("-inf")  # the next keystroke starts a new typing period
        return self.outbox.send(text, message_type=self.message_type, display_name=name, local_id=local_id)

    def retry(self, local_id: str | None = None) -> Job | None:
        """Send the last failed message (or the one named) again."""
        local_id = local_id or self.state.get("id", "")
        return self.outbox.retry(local_id) if local_id else None

    def _outgoing(self, entry: Outgoing) -> None:
        if entry.state == "sent":
            self.last_message_id, self.last_error = entry.message_id, None
            text = f"Sent · message id {entry.message_id}"
        elif entry.state == "failed":
            self.last_error = entry.exception
            text = f"Not sent. {entry.error}"
        else:
            text = "Sending…"
        self.state = {"state": entry.state, "text": text, "id": entry.local_id}

    def _on_front_end(self, _: Any, content: dict[str, Any], buffers: Any) -> None:
        op = content.get("op")
        if op == "send":
            text = content.get("text")
            if isinstance(text, str) and text.strip():
                self.send(text, local_id=str(content.get("local") or "") or None)
            else:
                self.state = {"state": "failed", "text": "Nothing to send: write a message first.", "id": ""}
        elif op == "typing":
            self.notify_typing()
        elif op == "retry":
            self.retry(str(content.get("id", "")) or None)

    # -- typing notifications ---------------------------------------------------------------------

    def notify_typing(self) -> Job | None:
        """Tell the others you are typing, unless that was done less than ``typing_interval`` ago."""
        if not self.typing_interval:
            return None
        now = time.monotonic()
        with self._typing_lock:
            if now - self._last_typing < self.typing_interval:
                return None
            self._last_typing = now
            self.typing_sent += 1
        return self._worker.run(
            self.thread_client.send_typing_notification,
            sender_display_name=self.display_name.strip() or None,
            on_error=lambda exc: None,  # a lost typing notification is not worth a message
        )

    # -- static rendering and lifecycle -----------------------------------------------------------

    def snapshot_body(self) -> str:
        name = self.display_name or "you"
        return f"<p><i>Message box (writing as {_html.esc(name)}): live in a running notebook.</i></p>"

    def snapshot_title(self) -> str:
        return "Composer (a static snapshot)"

    def __repr__(self) -> str:
        thread_id = getattr(getattr(self, "thread_client", None), "thread_id", "")
        return f"<MessageComposer {thread_id} sent={self.sent if hasattr(self, 'outbox') else 0}>"
