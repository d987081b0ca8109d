"""What a widget was given: a thread client, a chat client and a thread, or a ``session.user(...)``.

Every widget takes the same first arguments, so ``ChatView(user, thread_id)``, ``EventLog(user)``,
``ParticipantList(thread_client)`` and ``ChatPanel(chat_client, thread_id)`` all work. Arguments are
checked before any widget is made, so a mistake raises one clear ``TypeError``/``ValueError`` (and no
half-built widget is left for the garbage collector to complain about).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ._live import default_display_name, own_user_id

__all__ = ["Target", "resolve_target"]


@dataclass(frozen=True)
class Target:
    """The clients and identity a widget works with."""

    thread_client: Any  # None for an event log without a thread
    chat_client: Any  # None: the widget uses the one shared per credential
    user_id: str
    display_name: str | None
    resolve: Callable[[str], Any] | None  # a name typed in a participant box -> a user (session.user)
    user: Any | None

    @property
    def thread_id(self) -> str | None:
        return None if self.thread_client is None else str(self.thread_client.thread_id)


def _is_user(value: Any) -> bool:
    return all(hasattr(value, a) for a in ("chat_client", "identifier", "thread", "session"))


def _is_chat_client(value: Any) -> bool:
    return hasattr(value, "get_chat_thread_client") and not hasattr(value, "thread_id")


def _is_thread_client(value: Any) -> bool:
    return hasattr(value, "thread_id") and hasattr(value, "send_message")


def resolve_target(
    widget: str, target: Any, thread: Any = None, *, chat_client: Any = None, need_thread: bool = True
) -> Target:
    """Sort out ``widget``'s arguments.

    Args:
        widget: the widget's class name, for error messages.
        target: a thread client; a chat client (with ``thread``); or a ``session.user(...)`` (with
            ``thread``).
        thread: a thread id or thread client, with a chat client or a user.
        chat_client: whose real-time events to follow, if not the user's (or the shared one).
        need_thread: whether the widget needs a thread (the event log does not).

    Raises:
        TypeError: for something that is none of these.
        ValueError: for a missing thread, or one too many.
    """
    usage = (
        f"{widget}(thread_client), {widget}(user, thread_id) or {widget}(chat_client, thread_id)"
        if need_thread
        else f"{widget}(chat_client), {widget}(user) or {widget}(thread_client)"
    )
    if isinstance(thread, bool) or (
        thread is not None and not isinstance(thread, str) and not _is_thread_client(thread)
    ):
        raise TypeError(f"{usage}: the thread must be an id or a thread client, not {type(thread).__name__}")
    if isinstance(thread, str) and not thread.strip():
        raise ValueError(f"{usage}: the thread id is empty")
    if _is_user(target):
        if thread is None and need_thread:
            raise ValueError(f"{usage}: give the thread (its id or a thread client) after the user")
        thread_client = target.thread(thread) if isinstance(thread, str) else thread
        return Target(
            thread_client,
            chat_client or target.chat_client,
            target.id,
            target.name,
            target.session.user,
            target,
        )
    if _is_chat_client(target):
        if thread is None and need_thread:
            raise ValueError(f"{usage}: give the thread (its id or a thread client) after the chat client")
        thread_client = target.get_chat_thread_client(thread) if isinstance(thread, str) else thread
        return Target(thread_client, chat_client or target, own_user_id(target) or "", None, None, None)
    if _is_thread_client(target):
        if thread is not None:
            raise ValueError(f"{usage}: a thread client is the thread; give no second argument")
        return Target(
            target, chat_client, own_user_id(target) or "", default_display_name(target), None, None
        )
    raise TypeError(f"{usage}: got {type(target).__name__}")
