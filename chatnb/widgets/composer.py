"""``MessageComposer``: a text box and a Send button for one thread.

>>> composer = MessageComposer(thread, display_name="Jack")
>>> composer                       # type, press Enter (or click Send)
>>> composer.text.value = "hi"; composer.send_button.click()   # the same from code
>>> composer.last_message_id

Enter sends (the text box's ``submit`` message; ipywidgets 8 deprecated ``on_submit`` but its front end
still sends it). While the user types, a typing notification goes out at most every
``typing_interval`` seconds. During a send the box and button are disabled; afterwards the status line
shows the new message's id, or the error in one readable line (never a traceback).

Why Enter and Send wait a moment after the last keystroke: while a value update is awaiting the kernel's
reply, the ipywidgets front end holds back the next ones, but it sends the ``submit`` (or ``click``) custom
message at once. Typing fast and pressing Enter can therefore deliver "submit" before the last
characters: the message would go out cut short, and the box would then be refilled by the late update.
So a send asked for within ``settle`` seconds of the browser's last value update waits until updates have
been quiet that long (on the kernel's loop, without blocking it). ``send()`` from code is immediate.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import ipywidgets as widgets

from . import _html
from ._live import call, describe_error

__all__ = ["ComposerText", "MessageComposer", "when_settled"]

TYPING_INTERVAL_S = 8.0
"""The JavaScript SDK sends a typing notification at most every 8 seconds; so do we."""
SETTLE_S = 0.3
"""Quiet time after the browser's last value update before Enter or Send sends (see the module doc)."""


def when_settled(text: ComposerText, settle: float, action: Callable[[], Any]) -> asyncio.Future[None] | None:
    """Call ``action`` now, or, if the browser updated ``text`` less than ``settle`` seconds ago and a loop
    is running, once its updates have been quiet that long; then the returned future completes after
    ``action`` (and after the task it returns, for an async client)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    if loop is None or text.frontend_updated_at + settle <= time.monotonic():
        action()
        return None
    pending: asyncio.Future[None] = loop.create_future()

    def finish(_: object = None) -> None:
        if not pending.done():
            pending.set_result(None)

    def check() -> None:
        wait = text.frontend_updated_at + settle - time.monotonic()
        if wait > 0:  # more typing arrived meanwhile: wait for quiet again
            loop.call_later(wait, check)
            return
        try:
            result = action()
        except BaseException:
            finish()
            raise
        if isinstance(result, asyncio.Future):
            result.add_done_callback(finish)
        else:
            finish()

    loop.call_later(text.frontend_updated_at + settle - time.monotonic(), check)
    return pending


class ComposerText(widgets.Text):  # type: ignore[misc]
    """A ``Text`` that notes when the browser last sent its value (``frontend_updated_at``, monotonic)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.frontend_updated_at = float("-inf")

    def set_state(self, sync_data: dict[str, Any]) -> None:
        if "value" in sync_data:
            self.frontend_updated_at = time.monotonic()
        super().set_state(sync_data)


class MessageComposer(widgets.VBox):  # type: ignore[misc]
    """Compose and send messages to ``thread_client``'s thread.

    Args:
        thread_client: a :class:`chatnb.ChatThreadClient` (or :class:`chatnb.aio.ChatThreadClient`).
        display_name: the sender display name; shown in an editable field when ``show_options``.
        message_type: ``"text"`` or ``"html"``.
        show_options: show the display name field and the text/html choice.
        typing_interval: seconds between typing notifications while typing (``0`` turns them off).
        settle: quiet time after the browser's last keystroke before Enter or Send sends.

    Attributes:
        text, send_button, name_field, type_choice, status: the ipywidgets it is made of.
        last_message_id: the id of the last message sent (``None`` before).
        last_error: the last error (``None`` after a successful send).
    """

    def __init__(
        self,
        thread_client: Any,
        *,
        display_name: str | None = None,
        message_type: str = "text",
        show_options: bool = True,
        typing_interval: float = TYPING_INTERVAL_S,
        settle: float = SETTLE_S,
        placeholder: str = "Type a message and press Enter",
        **kwargs: Any,
    ) -> None:
        if message_type not in ("text", "html"):
            raise ValueError("message_type must be 'text' or 'html'")
        if typing_interval < 0:
            raise ValueError("typing_interval must not be negative")
        self.thread_client = thread_client
        self.typing_interval = float(typing_interval)
        self.last_message_id: str | None = None
        self.last_error: Exception | None = None
        self.sent = 0
        self.typing_sent = 0
        self._last_typing = float("-inf")
        self._sending = False
        self.settle = float(settle)
        self.pending_send: asyncio.Future[None] | None = None
        if display_name is None:
            display_name = getattr(thread_client, "_default_display_name", None)

        self.text = ComposerText(
            value="", placeholder=placeholder, continuous_update=True, layout=widgets.Layout(flex="1 1 auto")
        )
        self.text.add_class("chatnb-composer-input")
        self.send_button = widgets.Button(description="Send", icon="paper-plane", button_style="primary")
        self.send_button.add_class("chatnb-composer-send")
        self.name_field = widgets.Text(
            value=display_name or "", placeholder="display name", layout=widgets.Layout(width="180px")
        )
        self.name_field.add_class("chatnb-composer-name")
        self.type_choice = widgets.ToggleButtons(
            options=["text", "html"], value=message_type, style={"button_width": "52px"}
        )
        self.type_choice.add_class("chatnb-composer-type")
        self.status = widgets.HTML(value='<div class="chatnb-status"></div>')
        self.status.add_class("chatnb-composer-status")

        rows: list[widgets.Widget] = [
            widgets.HTML(_html.style_tag()),
            widgets.HBox([self.text, self.send_button], layout=widgets.Layout(width="100%")),
        ]
        if show_options:
            rows.append(widgets.HBox([self.name_field, self.type_choice]))
        rows.append(self.status)
        super().__init__(rows, **kwargs)
        self.add_class("chatnb-composer")

        self.send_button.on_click(lambda _: self.request_send())
        self.text.on_msg(self._on_text_msg)
        self.text.observe(self._on_typing, "value")

    # -- sending ----------------------------------------------------------------------------------

    @property
    def display_name(self) -> str | None:
        name = self.name_field.value.strip()
        return name or None

    @property
    def message_type(self) -> str:
        return str(self.type_choice.value)

    def _on_text_msg(self, _: Any, content: dict[str, Any], buffers: Any) -> None:
        if content.get("event") == "submit":
            self.request_send()

    def request_send(self) -> None:
        """Send once the text box has settled (what Enter and the Send button do; see the module doc).

        Immediate unless the browser updated the text less than ``settle`` seconds ago and a loop is
        running to wait on; then ``pending_send`` is a future that completes after the send.
        """
        if self._sending or (self.pending_send is not None and not self.pending_send.done()):
            return
        self.pending_send = when_settled(self.text, self.settle, self.send)

    def send(self) -> Any:
        """Send what is in the text box (what Enter and the Send button do).

        Returns the ``SendChatMessageResult`` (sync client), the scheduled task (async client), or
        ``None`` if there was nothing to send. Errors are shown in the status line, not raised.
        """
        content = self.text.value
        if self._sending:
            return None
        if not content.strip():
            self._show("Nothing to send: type a message first.", "error")
            return None
        self._set_busy(True)
        self._show("Sending…", "busy")
        return call(
            self.thread_client.send_message,
            content,
            chat_message_type=self.message_type,
            sender_display_name=self.display_name,
            on_done=self._sent,
            on_error=self._failed,
        )

    def _sent(self, result: Any) -> Any:
        self.last_message_id = str(result.id)
        self.last_error = None
        self.sent += 1
        self.text.value = ""
        self._last_typing = float("-inf")  # the next keystroke starts a new typing period
        self._set_busy(False)
        self._show(f"Sent · message id {_html.esc(result.id)}", "ok", message_id=str(result.id))
        return result

    def _failed(self, exc: Exception) -> None:
        self.last_error = exc
        self._set_busy(False)
        self._show("Not sent. " + describe_error(exc), "error")

    def _set_busy(self, busy: bool) -> None:
        self._sending = busy
        self.text.disabled = busy
        self.send_button.disabled = busy

    @property
    def sending(self) -> bool:
        """Whether a send is in progress (the box and button are disabled meanwhile)."""
        return self._sending

    def _show(self, text: str, kind: str, *, message_id: str | None = None) -> None:
        data = f' data-message-id="{_html.esc(message_id)}"' if message_id else ""
        body = text if kind == "ok" else _html.esc(text)
        self.status.value = f'<div class="chatnb-status chatnb-status-{kind}"{data}>{body}</div>'

    # -- typing notifications ---------------------------------------------------------------------

    def _on_typing(self, change: dict[str, Any]) -> None:
        if self._sending or not self.typing_interval or not str(change["new"]).strip():
            return
        now = time.monotonic()
        if now - self._last_typing < self.typing_interval:
            return
        self._last_typing = now
        self.typing_sent += 1
        call(
            self.thread_client.send_typing_notification,
            sender_display_name=self.display_name,
            on_done=lambda _: None,
            on_error=lambda exc: self._show("Typing notification failed. " + describe_error(exc), "error"),
        )

    def __repr__(self) -> str:
        return f"<MessageComposer {getattr(self.thread_client, 'thread_id', '')} sent={self.sent}>"
