"""DataFrame builders: exact columns and dtypes (empty or not), ordering, and the spec's example bodies."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from chatnb import frames
from tests.support.clients import assert_schema

USER = "8:acs:r_alice"
OTHER = "8:acs:r_bob"


def ident(raw: str) -> dict[str, Any]:
    return {"rawId": raw, "communicationUser": {"id": raw}}


def message(seq: int, **extra: Any) -> dict[str, Any]:
    body = {
        "id": str(1000 + seq),
        "type": "text",
        "sequenceId": str(seq),
        "version": str(1000 + seq),
        "createdOn": f"2026-01-02T03:04:{seq:02d}.1234567Z",
        "content": {"message": f"m{seq}"},
        "senderCommunicationIdentifier": ident(USER),
    }
    body.update(extra)
    return body


BUILDERS = [
    pytest.param(frames.messages_frame, frames.MESSAGE_COLUMNS, id="messages"),
    pytest.param(frames.participants_frame, frames.PARTICIPANT_COLUMNS, id="participants"),
    pytest.param(frames.read_receipts_frame, frames.READ_RECEIPT_COLUMNS, id="read-receipts"),
    pytest.param(frames.threads_frame, frames.THREAD_COLUMNS, id="threads"),
]


@pytest.mark.parametrize(("build", "columns"), BUILDERS)
def test_empty_frames_have_the_full_schema(build: Any, columns: dict[str, str]) -> None:
    frame = build([])
    assert frame.empty
    assert_schema(frame, columns)
    assert_schema(frames.empty_frame(columns), columns)


def test_message_columns_are_the_documented_ones() -> None:
    assert list(frames.MESSAGE_COLUMNS) == [
        "id",
        "type",
        "sequence_id",
        "version",
        "content",
        "sender_id",
        "sender_display_name",
        "created_on",
        "edited_on",
        "deleted_on",
        "metadata",
        "topic",
        "participant_ids",
        "initiator_id",
    ]
    assert list(frames.PARTICIPANT_COLUMNS) == ["id", "display_name", "share_history_time", "metadata"]
    assert list(frames.READ_RECEIPT_COLUMNS) == ["sender_id", "chat_message_id", "read_on"]
    assert list(frames.THREAD_COLUMNS) == ["id", "topic", "last_message_received_on", "deleted_on"]


def test_messages_frame_values_and_order() -> None:
    wire = [
        message(4, editedOn="2026-01-02T04:00:00Z", metadata={"k": "v"}, senderDisplayName="Al"),
        message(3, deletedOn="2026-01-02T05:00:00.5Z", content=None),
        {
            "id": "2",
            "type": "participantAdded",
            "sequenceId": "2",
            "version": "2",
            "createdOn": "2026-01-02T03:04:00Z",
            "content": {
                "participants": [{"communicationIdentifier": ident(OTHER), "displayName": "Bob"}],
                "initiatorCommunicationIdentifier": ident(USER),
            },
        },
        {
            "id": "1",
            "type": "topicUpdated",
            "sequenceId": "1",
            "version": "1",
            "createdOn": "2026-01-02T03:03:59+00:00",
            "content": {"topic": "Lunch", "initiatorCommunicationIdentifier": ident(USER)},
        },
    ]
    frame = frames.messages_frame(wire)  # newest first on the wire, oldest first in the frame
    assert_schema(frame, frames.MESSAGE_COLUMNS)
    assert list(frame["sequence_id"]) == [1, 2, 3, 4]
    first, added, deleted, edited = (frame.iloc[i] for i in range(4))
    assert first["topic"] == "Lunch" and first["initiator_id"] == USER and pd.isna(first["content"])
    assert pd.isna(first["sender_id"]) and first["participant_ids"] is None
    assert added["participant_ids"] == [OTHER]
    assert pd.isna(deleted["content"]) and deleted["deleted_on"] == pd.Timestamp("2026-01-02T05:00:00.5Z")
    assert edited["content"] == "m4" and edited["sender_display_name"] == "Al"
    assert edited["metadata"] == {"k": "v"} and edited["edited_on"] == pd.Timestamp("2026-01-02T04:00Z")
    assert edited["created_on"] == pd.Timestamp("2026-01-02T03:04:04.1234567Z")
    assert pd.isna(edited["deleted_on"]) and pd.isna(first["edited_on"])


def test_messages_in_any_order_are_sorted() -> None:
    frame = frames.messages_frame([message(s) for s in (5, 2, 9, 1)])
    assert list(frame["sequence_id"]) == [1, 2, 5, 9]
    assert list(frame["content"]) == ["m1", "m2", "m5", "m9"]
    ascending = frames.messages_frame([message(s) for s in (1, 2, 3)])
    assert list(ascending["id"]) == ["1001", "1002", "1003"]


def test_identifiers_without_raw_id_use_the_user_id() -> None:
    frame = frames.messages_frame(
        [message(1, senderCommunicationIdentifier={"communicationUser": {"id": USER}})]
    )
    assert frame["sender_id"].iloc[0] == USER


def test_other_frames_values() -> None:
    participants = frames.participants_frame(
        [
            {
                "communicationIdentifier": ident(USER),
                "displayName": "Al",
                "shareHistoryTime": "1970-01-01T00:00:00Z",
            },
            {"communicationIdentifier": ident(OTHER), "metadata": {"role": "x"}},
        ]
    )
    assert_schema(participants, frames.PARTICIPANT_COLUMNS)
    assert list(participants["id"]) == [USER, OTHER] and pd.isna(participants["display_name"].iloc[1])
    assert participants["metadata"].iloc[1] == {"role": "x"} and pd.isna(
        participants["share_history_time"].iloc[1]
    )

    receipts = frames.read_receipts_frame(
        [
            {
                "senderCommunicationIdentifier": ident(OTHER),
                "chatMessageId": "7",
                "readOn": "2026-01-02T03:04:05Z",
            }
        ]
    )
    assert_schema(receipts, frames.READ_RECEIPT_COLUMNS)
    assert receipts.iloc[0].to_dict() == {
        "sender_id": OTHER,
        "chat_message_id": "7",
        "read_on": pd.Timestamp("2026-01-02T03:04:05Z"),
    }

    threads = frames.threads_frame([{"id": "19:a@thread.v2", "topic": "T"}])
    assert_schema(threads, frames.THREAD_COLUMNS)
    assert pd.isna(threads["last_message_received_on"].iloc[0]) and pd.isna(threads["deleted_on"].iloc[0])


def example(reference: Path, name: str) -> list[dict[str, Any]]:
    body = json.loads((reference / "chat-2024-03-07" / "examples" / name).read_text())
    return body["responses"]["200"]["body"]["value"]  # type: ignore[no-any-return]


def test_spec_examples_become_frames(reference: Path) -> None:
    messages = frames.messages_frame(example(reference, "Messages_ListChatMessagesWithPageSize.json"))
    assert_schema(messages, frames.MESSAGE_COLUMNS)
    assert list(messages["sequence_id"]) == [1, 2, 3, 4, 5]
    assert list(messages["type"][:2]) == ["participantAdded", "topicUpdated"]
    assert messages["topic"].iloc[1] == "Lunch" and len(messages["participant_ids"].iloc[0]) >= 1
    assert messages["content"].iloc[-1] == "So where should we get lunch from today?"

    for name, build, columns in [
        (
            "Participants_ListChatParticipantsWithPageSize.json",
            frames.participants_frame,
            frames.PARTICIPANT_COLUMNS,
        ),
        (
            "Conversations_ListChatReadReceiptsWithPageSize.json",
            frames.read_receipts_frame,
            frames.READ_RECEIPT_COLUMNS,
        ),
        ("Threads_ListChatThreadsWithPageSize.json", frames.threads_frame, frames.THREAD_COLUMNS),
    ]:
        items = example(reference, name)
        frame = build(items)
        assert_schema(frame, columns)
        assert len(frame) == len(items) > 0
        first_column = next(iter(columns))
        assert frame[first_column].notna().all()


def test_a_list_of_mixed_time_forms_reads_each_time_as_it_reads_alone() -> None:
    """pandas 2 applied one value's UTC offset to the zone-less times after it in the same list."""
    mixed = ["1990-01-01 00:00:00.3+05:30", "1990-01-01 00:00:03.106", None, "1990-01-01T00:00:00.5+0530"]
    alone = [frames.wire_times([value])[0] for value in mixed]
    assert list(frames.wire_times(mixed)) == alone
    assert str(alone[1]) == "1990-01-01 00:00:03.106000+00:00"  # no zone: UTC
    service = ["2024-03-07T10:00:00Z", "2024-03-07T10:00:01.5+01:00", None]  # the one-call path
    assert [str(t) for t in frames.wire_times(service)] == [
        "2024-03-07 10:00:00+00:00",
        "2024-03-07 09:00:01.500000+00:00",
        "NaT",
    ]
    with pytest.raises(ValueError):
        frames.wire_times(["garbage", "2024-03-07T10:00:00Z"])
