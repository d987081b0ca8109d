"""Event classes, the emulator payload parser and the Server-Sent Events decoder."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from chatnb.events import (
    CHAT_EVENT_NAMES,
    EVENT_NAMES,
    ChatMessageDeletedEvent,
    ChatMessageEditedEvent,
    ChatMessageReceivedEvent,
    ChatThreadCreatedEvent,
    ChatThreadDeletedEvent,
    ChatThreadPropertiesUpdatedEvent,
    ParticipantsAddedEvent,
    ParticipantsRemovedEvent,
    ReadReceiptReceivedEvent,
    RealTimeNotificationConnected,
    TypingIndicatorReceivedEvent,
    parse_event,
)
from chatnb.models import ChatParticipant, CommunicationUserIdentifier
from chatnb.realtime import SSEDecoder, SSEMessage

A = "8:acs:r_a"
B = "8:acs:r_b"
T = "19:abc@thread.v2"


def ident(user: str) -> dict[str, object]:
    return {"rawId": user, "kind": "communicationUser", "communicationUser": {"id": user}}


def participant(user: str, name: str | None = None) -> dict[str, object]:
    out: dict[str, object] = {
        "communicationIdentifier": ident(user),
        "shareHistoryTime": "1970-01-01T00:00:00Z",
    }
    if name:
        out["displayName"] = name
    return out


def test_event_names_are_the_javascript_sdk_names() -> None:
    assert CHAT_EVENT_NAMES == (
        "chatMessageReceived",
        "chatMessageEdited",
        "chatMessageDeleted",
        "typingIndicatorReceived",
        "readReceiptReceived",
        "chatThreadCreated",
        "chatThreadPropertiesUpdated",
        "chatThreadDeleted",
        "participantsAdded",
        "participantsRemoved",
    )
    assert EVENT_NAMES[-2:] == ("realTimeNotificationConnected", "realTimeNotificationDisconnected")


def test_message_events_parse_with_snake_case_fields() -> None:
    common = {
        "threadId": T,
        "recipient": ident(B),
        "id": "17",
        "type": "text",
        "createdOn": "2024-01-02T03:04:05.1234567Z",
    }
    common |= {"sender": ident(A), "senderDisplayName": "Ann", "metadata": {"k": "v"}}
    received = parse_event("chatMessageReceived", {**common, "version": "17", "message": "hi"}, event_id=5)
    assert isinstance(received, ChatMessageReceivedEvent)
    assert (received.kind, received.event_type, received.event_id) == ("chatMessageReceived",) * 2 + ("5",)
    assert (received.id, received.thread_id, received.message, received.type, received.version) == (
        "17",
        T,
        "hi",
        "text",
        "17",
    )
    assert received.created_on == datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=timezone.utc)
    assert received.sender == CommunicationUserIdentifier(A)
    assert received.recipient == CommunicationUserIdentifier(B)
    assert (received.sender_display_name, received.metadata) == ("Ann", {"k": "v"})
    edited = parse_event(
        "chatMessageEdited", {**common, "version": "18", "message": "ho", "editedOn": "2024-01-02T03:05:00Z"}
    )
    assert isinstance(edited, ChatMessageEditedEvent)
    assert (edited.message, edited.version) == ("ho", "18")
    assert edited.edited_on is not None and edited.edited_on.tzinfo == timezone.utc
    deleted = parse_event(
        "chatMessageDeleted", {**common, "version": "19", "deletedOn": "2024-01-02T03:06:00Z"}
    )
    assert isinstance(deleted, ChatMessageDeletedEvent)
    assert deleted.deleted_on == datetime(2024, 1, 2, 3, 6, tzinfo=timezone.utc)
    assert deleted.to_dict()["kind"] == "chatMessageDeleted"
    assert deleted.to_dict()["id"] == "17"


def test_typing_and_read_receipt_events_parse() -> None:
    typing = parse_event(
        "typingIndicatorReceived",
        {
            "threadId": T,
            "sender": ident(A),
            "senderDisplayName": "Ann",
            "version": "9",
            "receivedOn": "2024-01-02T03:04:05Z",
        },
    )
    assert isinstance(typing, TypingIndicatorReceivedEvent)
    assert (typing.sender, typing.sender_display_name, typing.version) == (
        CommunicationUserIdentifier(A),
        "Ann",
        "9",
    )
    receipt = parse_event(
        "readReceiptReceived",
        {"threadId": T, "sender": ident(A), "chatMessageId": "17", "readOn": "2024-01-02T03:04:05Z"},
    )
    assert isinstance(receipt, ReadReceiptReceivedEvent)
    assert (receipt.chat_message_id, receipt.read_on) == (
        "17",
        datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc),
    )


def test_thread_and_participant_events_parse() -> None:
    created = parse_event(
        "chatThreadCreated",
        {
            "threadId": T,
            "createdOn": "2024-01-02T03:04:05Z",
            "createdBy": ident(A),
            "properties": {"topic": "Lunch", "metadata": None},
            "participants": [participant(A), participant(B, "Bob")],
            "version": "3",
        },
    )
    assert isinstance(created, ChatThreadCreatedEvent)
    assert created.topic == "Lunch" and created.properties.metadata is None
    assert created.created_by == ChatParticipant(CommunicationUserIdentifier(A))
    assert created.participants == (
        ChatParticipant(CommunicationUserIdentifier(A)),
        ChatParticipant(CommunicationUserIdentifier(B), "Bob"),
    )
    updated = parse_event(
        "chatThreadPropertiesUpdated",
        {
            "threadId": T,
            "updatedBy": ident(A),
            "updatedOn": "2024-01-02T03:04:05Z",
            "properties": {"topic": "Dinner", "metadata": {"a": "1"}},
        },
    )
    assert isinstance(updated, ChatThreadPropertiesUpdatedEvent)
    assert (updated.topic, updated.properties.metadata) == ("Dinner", {"a": "1"})
    assert updated.updated_by is not None and updated.updated_by.identifier.raw_id == A
    deleted = parse_event(
        "chatThreadDeleted", {"threadId": T, "deletedBy": ident(A), "deletedOn": "2024-01-02T03:04:05Z"}
    )
    assert isinstance(deleted, ChatThreadDeletedEvent) and deleted.deleted_by is not None
    added = parse_event(
        "participantsAdded",
        {
            "threadId": T,
            "addedBy": ident(A),
            "addedOn": "2024-01-02T03:04:05Z",
            "participantsAdded": [participant(B, "Bob")],
        },
    )
    assert isinstance(added, ParticipantsAddedEvent)
    assert [p.display_name for p in added.participants_added] == ["Bob"]
    removed = parse_event(
        "participantsRemoved",
        {
            "threadId": T,
            "removedBy": ident(A),
            "removedOn": "2024-01-02T03:04:05Z",
            "participantsRemoved": [participant(B)],
        },
    )
    assert isinstance(removed, ParticipantsRemovedEvent)
    assert removed.participants_removed[0].identifier == CommunicationUserIdentifier(B)


def test_connection_events_and_errors() -> None:
    connected = parse_event("realTimeNotificationConnected", '{"lastEventId": 12}')
    assert isinstance(connected, RealTimeNotificationConnected) and connected.last_event_id == "12"
    with pytest.raises(ValueError, match="unknown event 'chatMessageReceivedd'"):
        parse_event("chatMessageReceivedd", {})
    with pytest.raises(ValueError, match="JSON object"):
        parse_event("chatMessageReceived", "[1, 2]")


def feed_all(decoder: SSEDecoder, *chunks: str) -> list[SSEMessage]:
    out: list[SSEMessage] = []
    for chunk in chunks:
        out += decoder.feed(chunk)
    return out


def test_sse_decoder_follows_the_event_stream_rules() -> None:
    decoder = SSEDecoder()
    messages = feed_all(
        decoder,
        '\ufeffretry: 1500\n: a comment\nid: 1\nevent: chatMessageReceived\ndata: {"a":\n',
        "data:  1}\n\n",
        "data: no id or type\r\n\r\n",
        "id: 2\revent: x\rdata: cr\r",
        "\n\r\n",  # CR, then LF in the next chunk: one line ending, not two
        "id: bad\0id\ndata: keeps id 2\n\n",
        "event: empty\n\n",  # no data: not dispatched
        "id\ndata\n\n",  # bare field names: empty id resets it, empty data line
        "data: partial at the end",
    )
    assert messages == [
        SSEMessage("chatMessageReceived", '{"a":\n 1}', "1"),
        SSEMessage("message", "no id or type", "1"),
        SSEMessage("x", "cr", "2"),
        SSEMessage("message", "keeps id 2", "2"),
        SSEMessage("message", "", ""),
    ]
    assert decoder.retry == 1500


def test_sse_decoder_splits_anywhere() -> None:
    text = 'id: 7\nevent: chatMessageReceived\ndata: {"id": "x"}\n\n' * 3
    whole = SSEDecoder().feed(text)
    for size in (1, 2, 5, 13):
        decoder = SSEDecoder()
        assert feed_all(decoder, *(text[i : i + size] for i in range(0, len(text), size))) == whole
    assert len(whole) == 3
