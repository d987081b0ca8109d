"""Event Grid deliveries of ACS chat events: every example payload of the reference, both schemas."""

from __future__ import annotations

import base64
import json
from datetime import timezone
from pathlib import Path
from typing import Any

import pytest

from chatnb.eventgrid import (
    EVENT_GRID_TYPES,
    SubscriptionValidationEvent,
    parse_event_grid,
    webhook_handshake_headers,
)
from chatnb.events import (
    ChatEvent,
    ChatMessageDeletedEvent,
    ChatMessageEditedEvent,
    ChatMessageReceivedEvent,
    ChatThreadCreatedEvent,
    ChatThreadDeletedEvent,
    ChatThreadPropertiesUpdatedEvent,
    ParticipantsAddedEvent,
    ParticipantsRemovedEvent,
)
from chatnb.models import CommunicationUserIdentifier

EXPECTED = {
    "ChatMessageReceived": ChatMessageReceivedEvent,
    "ChatMessageReceivedInThread": ChatMessageReceivedEvent,
    "ChatMessageEdited": ChatMessageEditedEvent,
    "ChatMessageEditedInThread": ChatMessageEditedEvent,
    "ChatMessageDeleted": ChatMessageDeletedEvent,
    "ChatMessageDeletedInThread": ChatMessageDeletedEvent,
    "ChatThreadCreatedWithUser": ChatThreadCreatedEvent,
    "ChatThreadCreated": ChatThreadCreatedEvent,
    "ChatThreadPropertiesUpdatedPerUser": ChatThreadPropertiesUpdatedEvent,
    "ChatThreadPropertiesUpdated": ChatThreadPropertiesUpdatedEvent,
    "ChatThreadWithUserDeleted": ChatThreadDeletedEvent,
    "ChatThreadDeleted": ChatThreadDeletedEvent,
    "ChatParticipantAddedToThreadWithUser": ParticipantsAddedEvent,
    "ChatThreadParticipantAdded": ParticipantsAddedEvent,
    "ChatParticipantRemovedFromThreadWithUser": ParticipantsRemovedEvent,
    "ChatThreadParticipantRemoved": ParticipantsRemovedEvent,
}


def examples(reference: Path) -> list[Path]:
    return sorted((reference / "eventgrid-communication" / "examples").rglob("*.json"))


def identifier(value: dict[str, Any]) -> CommunicationUserIdentifier:
    return CommunicationUserIdentifier(value["communicationUser"]["id"])


def check(event: ChatEvent, item: dict[str, Any]) -> None:
    """The fields of ``event`` against the raw Event Grid ``item``."""
    data = item["data"]
    short = str(item.get("eventType") or item["type"]).removeprefix("Microsoft.Communication.")
    assert isinstance(event, EXPECTED[short])
    assert event.event_id == item["id"]
    assert event.thread_id == data["threadId"]
    if "recipientCommunicationIdentifier" in data:
        assert event.recipient == identifier(data["recipientCommunicationIdentifier"])
    else:
        assert event.recipient is None
    if isinstance(event, ChatMessageReceivedEvent | ChatMessageEditedEvent | ChatMessageDeletedEvent):
        assert event.id == data["messageId"]
        assert event.version == str(data["version"])
        assert event.type == "text"
        assert event.sender == identifier(data["senderCommunicationIdentifier"])
        assert event.sender_display_name == data["senderDisplayName"]
        assert event.created_on is not None and event.created_on.tzinfo == timezone.utc
        assert event.created_on.isoformat()[:19] == data["composeTime"][:19]
    if isinstance(event, ChatMessageReceivedEvent | ChatMessageEditedEvent):
        assert event.message == data["messageBody"]
        assert event.metadata == data["metadata"]
    if isinstance(event, ChatMessageEditedEvent):
        assert event.edited_on is not None and event.edited_on.isoformat()[:19] == data["editTime"][:19]
    if isinstance(event, ChatMessageDeletedEvent):
        assert event.deleted_on is not None and event.deleted_on.isoformat()[:19] == data["deleteTime"][:19]
    if isinstance(event, ChatThreadCreatedEvent):
        assert event.topic == data["properties"]["topic"]
        assert event.created_by is not None
        assert event.created_by.identifier == identifier(data["createdByCommunicationIdentifier"])
        assert [p.display_name for p in event.participants] == [
            p["displayName"] for p in data["participants"]
        ]
        assert [p.identifier for p in event.participants] == [
            identifier(p["participantCommunicationIdentifier"]) for p in data["participants"]
        ]
    if isinstance(event, ChatThreadPropertiesUpdatedEvent):
        assert event.topic == data["properties"]["topic"]
        assert event.properties.metadata == data["metadata"]
        assert event.updated_by is not None
        assert event.updated_by.identifier == identifier(data["editedByCommunicationIdentifier"])
        assert event.updated_on is not None and event.updated_on.isoformat()[:19] == data["editTime"][:19]
    if isinstance(event, ChatThreadDeletedEvent):
        assert event.deleted_by is not None
        assert event.deleted_by.identifier == identifier(data["deletedByCommunicationIdentifier"])
        assert event.deleted_on is not None and event.deleted_on.isoformat()[:19] == data["deleteTime"][:19]
    if isinstance(event, ParticipantsAddedEvent):
        (added,) = event.participants_added
        assert added.identifier == identifier(data["participantAdded"]["participantCommunicationIdentifier"])
        assert added.display_name == data["participantAdded"]["displayName"]
        assert event.added_by is not None
        assert event.added_by.identifier == identifier(data["addedByCommunicationIdentifier"])
        assert event.added_on is not None and event.added_on.isoformat()[:19] == data["time"][:19]
    if isinstance(event, ParticipantsRemovedEvent):
        (removed,) = event.participants_removed
        assert removed.identifier == identifier(
            data["participantRemoved"]["participantCommunicationIdentifier"]
        )
        assert removed.metadata == data["participantRemoved"].get("metadata")
        assert event.removed_by is not None
        assert event.removed_on is not None and event.removed_on.isoformat()[:19] == data["time"][:19]


def test_every_reference_example_parses(reference: Path) -> None:
    files = examples(reference)
    assert len(files) == 16
    seen = set()
    for path in files:
        item = json.loads(path.read_text())
        (event,) = parse_event_grid(path.read_bytes())
        assert isinstance(event, ChatEvent)
        check(event, item)
        seen.add(item["eventType"])
    assert seen == set(EVENT_GRID_TYPES)  # the examples cover every type the parser knows


def test_a_batch_in_cloud_events_schema_parses_the_same(reference: Path) -> None:
    items = [json.loads(p.read_text()) for p in examples(reference)]
    cloud = [
        {
            "specversion": "1.0",
            "id": item["id"],
            "source": item["topic"],
            "subject": item["subject"],
            "type": item["eventType"],
            "time": item["eventTime"],
            "datacontenttype": "application/json",
            "data": item["data"],
        }
        for item in items
    ]
    cloud[0] = {**cloud[0], "data_base64": base64.b64encode(json.dumps(cloud[0]["data"]).encode()).decode()}
    del cloud[0]["data"]
    events = parse_event_grid(json.dumps(cloud))
    assert len(events) == len(items)
    for event, item in zip(events, items, strict=True):
        assert isinstance(event, ChatEvent)
        check(event, item)
    assert parse_event_grid(items) == parse_event_grid(json.dumps(items).encode())


def test_subscription_validation_and_handshake() -> None:
    body = [
        {
            "id": "2d1781af-3a4c-4d7c-bd0c-e34b19da4e66",
            "topic": "/subscriptions/x/resourceGroups/y/providers/Microsoft.Communication/z",
            "subject": "",
            "data": {
                "validationCode": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6",
                "validationUrl": "https://rp/validate",
            },
            "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
            "eventTime": "2018-01-25T22:12:19.4556811Z",
            "metadataVersion": "1",
            "dataVersion": "1",
        }
    ]
    (event,) = parse_event_grid(json.dumps(body))
    assert isinstance(event, SubscriptionValidationEvent)
    assert event.response == {"validationResponse": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"}
    assert event.validation_url == "https://rp/validate"
    assert webhook_handshake_headers({"WebHook-Request-Origin": "eventgrid.azure.net"}) == {
        "WebHook-Allowed-Origin": "eventgrid.azure.net",
        "WebHook-Allowed-Rate": "*",
    }
    with pytest.raises(ValueError, match="WebHook-Request-Origin"):
        webhook_handshake_headers({"Content-Type": "application/json"})


def test_other_events_are_skipped_and_garbage_is_refused(reference: Path) -> None:
    sms = {
        "id": "1",
        "eventType": "Microsoft.Communication.SMSReceived",
        "data": {"from": "+1", "to": "+2", "message": "hi"},
        "subject": "/phonenumber/1",
        "eventTime": "2020-09-18T00:27:45.32Z",
    }
    chat = json.loads((reference / "eventgrid-communication/examples/chat_message_received.json").read_text())
    events = parse_event_grid([sms, chat])
    assert [e.kind for e in events] == ["chatMessageReceived"]
    with pytest.raises(ValueError):
        parse_event_grid(b"not json")
    with pytest.raises(ValueError, match="no eventType"):
        parse_event_grid({"id": "1", "data": {}})
    with pytest.raises(ValueError, match="JSON object data"):
        parse_event_grid({"id": "1", "eventType": "Microsoft.Communication.ChatMessageReceived", "data": [1]})
