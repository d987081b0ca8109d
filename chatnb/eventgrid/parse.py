"""Event Grid deliveries of ACS chat events, turned into :mod:`chatnb.events` objects.

For users who route real ACS events to a webhook (Azure Functions, a small Starlette app...):
:func:`parse_event_grid` takes the delivered body, in the Event Grid schema or the CloudEvents 1.0
schema, one event or a batch, and returns the same event classes the live stream yields. Both the
per-recipient events (``ChatMessageReceived``, ``ChatThreadCreatedWithUser``,
``ChatParticipantAddedToThreadWithUser``...) and the per-thread ones (``ChatMessageReceivedInThread``,
``ChatThreadCreated``, ``ChatThreadParticipantAdded``...) are understood; the per-thread ones have no
``recipient``. Other event types (SMS, calling...) are skipped.

Event Grid validates a webhook before delivering to it. In the Event Grid schema it posts a
``Microsoft.EventGrid.SubscriptionValidationEvent``, which parses into a
:class:`SubscriptionValidationEvent` whose ``response`` is the JSON body to answer with. In the
CloudEvents schema it sends an ``OPTIONS`` request instead; answer it with :func:`webhook_handshake_headers`.

>>> for event in parse_event_grid(body):          # the body of the POST Event Grid made
...     if isinstance(event, SubscriptionValidationEvent):
...         print(event.response)                  # a new subscription: answer with this JSON body
...     else:
...         print(event.kind, event.thread_id)
{'validationResponse': '...'}
chatMessageReceived 19:...@thread.v2
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from ..events import (
    ChatMessageDeletedEvent,
    ChatMessageEditedEvent,
    ChatMessageReceivedEvent,
    ChatThreadCreatedEvent,
    ChatThreadDeletedEvent,
    ChatThreadEventProperties,
    ChatThreadPropertiesUpdatedEvent,
    Event,
    ParticipantsAddedEvent,
    ParticipantsRemovedEvent,
    parse_identifier,
    parse_metadata,
    parse_participant,
    parse_participants,
    parse_text,
    parse_time,
)

__all__ = [
    "EVENT_GRID_TYPES",
    "SubscriptionValidationEvent",
    "parse_event_grid",
    "webhook_handshake_headers",
]

log = logging.getLogger("chatnb.eventgrid")

_PREFIX = "Microsoft.Communication."
_VALIDATION = "Microsoft.EventGrid.SubscriptionValidationEvent"


@dataclass(frozen=True, slots=True, kw_only=True)
class SubscriptionValidationEvent(Event):
    """Event Grid asks the webhook to prove it wants the events: answer with ``response``."""

    kind: ClassVar[str] = "subscriptionValidation"
    validation_code: str
    validation_url: str | None = None

    @property
    def response(self) -> dict[str, str]:
        """The JSON body that completes the handshake: ``{"validationResponse": code}``."""
        return {"validationResponse": self.validation_code}


def webhook_handshake_headers(request_headers: Mapping[str, str]) -> dict[str, str]:
    """The response headers of the CloudEvents webhook handshake (the ``OPTIONS`` request).

    Raises:
        ValueError: if the request has no ``WebHook-Request-Origin`` header.
    """
    lowered = {k.lower(): v for k, v in request_headers.items()}
    origin = lowered.get("webhook-request-origin")
    if not origin:
        raise ValueError("not a CloudEvents webhook handshake: no WebHook-Request-Origin header")
    return {"WebHook-Allowed-Origin": origin, "WebHook-Allowed-Rate": "*"}


def _message_common(data: dict[str, Any]) -> dict[str, Any]:
    type_ = parse_text(data.get("type")) or "text"
    return {
        "id": str(data.get("messageId", "")),
        "type": type_.lower() if type_.lower() in ("text", "html") else type_,
        "version": parse_text(data.get("version")) or "",
        "created_on": parse_time(data.get("composeTime")),
        "sender": parse_identifier(data.get("senderCommunicationIdentifier") or data.get("senderId")),
        "sender_display_name": parse_text(data.get("senderDisplayName")),
        "metadata": parse_metadata(data.get("metadata")),
    }


def _received(common: dict[str, Any], data: dict[str, Any]) -> Event:
    return ChatMessageReceivedEvent(
        **common, **_message_common(data), message=parse_text(data.get("messageBody"))
    )


def _edited(common: dict[str, Any], data: dict[str, Any]) -> Event:
    return ChatMessageEditedEvent(
        **common,
        **_message_common(data),
        message=parse_text(data.get("messageBody")),
        edited_on=parse_time(data.get("editTime")),
    )


def _deleted(common: dict[str, Any], data: dict[str, Any]) -> Event:
    return ChatMessageDeletedEvent(
        **common, **_message_common(data), deleted_on=parse_time(data.get("deleteTime"))
    )


def _thread_properties(data: dict[str, Any]) -> ChatThreadEventProperties:
    props = data.get("properties")
    props = props if isinstance(props, dict) else {}
    metadata = parse_metadata(data.get("metadata")) or parse_metadata(props.get("metadata"))
    return ChatThreadEventProperties(parse_text(props.get("topic")), metadata)


def _by(data: dict[str, Any], role: str) -> Any:
    return data.get(f"{role}CommunicationIdentifier") or data.get(role)


def _thread_created(common: dict[str, Any], data: dict[str, Any]) -> Event:
    return ChatThreadCreatedEvent(
        **common,
        version=parse_text(data.get("version")) or "",
        created_on=parse_time(data.get("createTime")),
        created_by=parse_participant(_by(data, "createdBy")),
        properties=_thread_properties(data),
        participants=parse_participants(data.get("participants") or data.get("members")),
    )


def _thread_updated(common: dict[str, Any], data: dict[str, Any]) -> Event:
    return ChatThreadPropertiesUpdatedEvent(
        **common,
        version=parse_text(data.get("version")) or "",
        updated_on=parse_time(data.get("editTime")),
        updated_by=parse_participant(_by(data, "editedBy")),
        properties=_thread_properties(data),
    )


def _thread_deleted(common: dict[str, Any], data: dict[str, Any]) -> Event:
    return ChatThreadDeletedEvent(
        **common,
        version=parse_text(data.get("version")) or "",
        deleted_on=parse_time(data.get("deleteTime")),
        deleted_by=parse_participant(_by(data, "deletedBy")),
    )


def _added(common: dict[str, Any], data: dict[str, Any]) -> Event:
    added = parse_participant(data.get("participantAdded"))
    return ParticipantsAddedEvent(
        **common,
        version=parse_text(data.get("version")) or "",
        added_on=parse_time(data.get("time")),
        added_by=parse_participant(_by(data, "addedBy")),
        participants_added=() if added is None else (added,),
    )


def _removed(common: dict[str, Any], data: dict[str, Any]) -> Event:
    removed = parse_participant(data.get("participantRemoved"))
    return ParticipantsRemovedEvent(
        **common,
        version=parse_text(data.get("version")) or "",
        removed_on=parse_time(data.get("time")),
        removed_by=parse_participant(_by(data, "removedBy")),
        participants_removed=() if removed is None else (removed,),
    )


_PARSERS: dict[str, Callable[[dict[str, Any], dict[str, Any]], Event]] = {
    "ChatMessageReceived": _received,
    "ChatMessageReceivedInThread": _received,
    "ChatMessageEdited": _edited,
    "ChatMessageEditedInThread": _edited,
    "ChatMessageDeleted": _deleted,
    "ChatMessageDeletedInThread": _deleted,
    "ChatThreadCreatedWithUser": _thread_created,
    "ChatThreadCreated": _thread_created,
    "ChatThreadPropertiesUpdatedPerUser": _thread_updated,
    "ChatThreadPropertiesUpdated": _thread_updated,
    "ChatThreadWithUserDeleted": _thread_deleted,
    "ChatThreadDeleted": _thread_deleted,
    "ChatParticipantAddedToThreadWithUser": _added,
    "ChatThreadParticipantAdded": _added,
    "ChatParticipantRemovedFromThreadWithUser": _removed,
    "ChatThreadParticipantRemoved": _removed,
}
EVENT_GRID_TYPES: tuple[str, ...] = tuple(_PREFIX + name for name in _PARSERS)
"""The Event Grid event types :func:`parse_event_grid` understands (besides subscription validation)."""


def _data(item: Mapping[str, Any]) -> dict[str, Any]:
    data = item.get("data")
    if data is None and isinstance(item.get("data_base64"), str):  # CloudEvents binary data
        data = json.loads(base64.b64decode(item["data_base64"]))
    if isinstance(data, (str, bytes)):
        data = json.loads(data)
    if not isinstance(data, dict):
        raise ValueError(f"event {item.get('id')!r} has no JSON object data")
    return data


def _parse_one(item: Any) -> Event | None:
    if not isinstance(item, Mapping):
        raise ValueError(f"an Event Grid event must be a JSON object, not {type(item).__name__}")
    if "eventType" in item:  # Event Grid schema
        event_type = item["eventType"]
    elif "type" in item and ("specversion" in item or "source" in item):  # CloudEvents 1.0
        event_type = item["type"]
    else:
        raise ValueError("not an Event Grid or CloudEvents event: no eventType / type")
    event_id = parse_text(item.get("id"))
    if event_type == _VALIDATION:
        data = _data(item)
        return SubscriptionValidationEvent(
            event_id=event_id,
            validation_code=str(data.get("validationCode", "")),
            validation_url=parse_text(data.get("validationUrl")),
        )
    parser = (
        _PARSERS.get(str(event_type).removeprefix(_PREFIX)) if str(event_type).startswith(_PREFIX) else None
    )
    if parser is None:
        log.debug("skipping Event Grid event %s of type %s", event_id, event_type)
        return None
    data = _data(item)
    recipient = data.get("recipientCommunicationIdentifier") or data.get("recipientId")
    common = {
        "event_id": event_id,
        "thread_id": str(data.get("threadId", "")),
        "recipient": parse_identifier(recipient),
    }
    return parser(common, data)


def parse_event_grid(body: bytes | str | Mapping[str, Any] | list[Any]) -> list[Event]:
    """The chat events of an Event Grid delivery (one event or a batch; Event Grid or CloudEvents schema).

    A subscription validation request yields a :class:`SubscriptionValidationEvent`; event types that are
    not ACS chat events are skipped.

    Raises:
        ValueError: if the body is not JSON, or an item is not an event.
    """
    parsed: Any = json.loads(body) if isinstance(body, (bytes, str)) else body
    items = parsed if isinstance(parsed, list) else [parsed]
    return [event for event in (_parse_one(item) for item in items) if event is not None]
