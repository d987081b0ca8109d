"""One line per real-time event, for the event log: who, which message, and a short summary."""

from __future__ import annotations

from typing import Any

from ..events import Event
from ._live import raw_id

__all__ = ["describe_event", "participant_names"]

_SUMMARY_CHARS = 160


def _short(text: str | None) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= _SUMMARY_CHARS else text[: _SUMMARY_CHARS - 1] + "…"


def participant_names(participants: Any) -> str:
    """``"Jack, Geeta"`` (display names, else raw ids) for a sequence of participants."""
    return ", ".join(getattr(p, "display_name", None) or raw_id(p) for p in participants or ())


def describe_event(event: Event) -> dict[str, str]:
    """The event log's columns for ``event`` (``kind``, ``thread_id``, ``sender_id``,
    ``sender_display_name``, ``message_id``, ``summary``, ``event_id``), all strings."""
    kind = event.kind
    get = getattr
    who = (
        get(event, "sender", None)
        or get(event, "added_by", None)
        or get(event, "removed_by", None)
        or get(event, "updated_by", None)
        or get(event, "created_by", None)
        or get(event, "deleted_by", None)
    )
    name = get(event, "sender_display_name", None) or get(who, "display_name", None) or ""
    message_id = ""
    if kind == "chatMessageReceived":
        message_id, summary = event.id, _short(event.message)  # type: ignore[attr-defined]
    elif kind == "chatMessageEdited":
        message_id, summary = event.id, "edited: " + _short(event.message)  # type: ignore[attr-defined]
    elif kind == "chatMessageDeleted":
        message_id, summary = event.id, "message deleted"  # type: ignore[attr-defined]
    elif kind == "typingIndicatorReceived":
        summary = "is typing"
    elif kind == "readReceiptReceived":
        message_id = event.chat_message_id  # type: ignore[attr-defined]
        summary = f"read message {message_id}"
    elif kind in ("chatThreadCreated", "chatThreadPropertiesUpdated"):
        topic = get(event, "topic", None)
        summary = f"topic: {_short(topic)}" if topic is not None else "properties updated"
        if kind == "chatThreadCreated":
            summary = f"thread created, {summary}"
    elif kind == "chatThreadDeleted":
        summary = "thread deleted"
    elif kind == "participantsAdded":
        summary = "added " + participant_names(get(event, "participants_added", ()))
    elif kind == "participantsRemoved":
        summary = "removed " + participant_names(get(event, "participants_removed", ()))
    elif kind == "realTimeNotificationConnected":
        summary = f"connected ({get(event, 'mode', 'push')})"
        if get(event, "journal_gap", False):
            summary += ", some earlier events were no longer available"
    elif kind == "realTimeNotificationDisconnected":
        summary = "disconnected" + (
            f": {_short(get(event, 'reason', ''))}" if get(event, "reason", "") else ""
        )
    else:
        summary = kind
    return {
        "kind": kind,
        "thread_id": str(get(event, "thread_id", "") or ""),
        "sender_id": raw_id(get(who, "identifier", who)),
        "sender_display_name": str(name),
        "message_id": str(message_id or ""),
        "summary": summary,
        "event_id": str(event.event_id or ""),
    }
