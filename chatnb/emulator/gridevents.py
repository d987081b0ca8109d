"""The 16 ``Microsoft.Communication.Chat*`` Event Grid events, rendered from the emulator's event journal.

Shapes follow the service's documented examples (``shared/reference/eventgrid-communication/``) field
for field: user-level events carry ``recipientCommunicationIdentifier`` (and, where the examples have
them, the legacy ``recipientId``/``senderId``/``createdBy``/``editedBy``/``deletedBy`` strings) and a
``version`` that is a number; the thread-level ``*InThread`` message events carry their ``version`` as a
string, as the examples do; message ``type`` is ``Text``/``Html``; subjects are the examples' (with
their ``participantadded``/``participantremoved`` in lower case for the thread-level events).

Who gets what, as "Azure Communication Services - Chat events" documents it: a thread-level event is
published once per change; a user-level one once per member of the thread *except the one who made the
change* (the sender, creator, editor, deleter, adder or remover): a message in a thread of 10 gives one
``ChatMessageReceivedInThread`` and 9 ``ChatMessageReceived``. The members are those of the journal
entry's moment (the event stream's rule: a participant added by the change is one, a participant removed
by it still is), and a message event reaches only members whose ``shareHistoryTime`` lets them see the
message. Typing notifications and read receipts have no Event Grid events. A thread deleted by its
retention policy has no ``deletedByCommunicationIdentifier``.
"""

from __future__ import annotations

import base64
import secrets
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .._time import format_rfc3339

__all__ = [
    "EVENT_TYPES",
    "JOURNAL_TYPES",
    "PREFIX",
    "THREAD_LEVEL",
    "USER_LEVEL",
    "JournalEntry",
    "identifier",
    "render",
    "short_type",
    "to_cloudevent",
]

PREFIX = "Microsoft.Communication."

#: journal type -> (user-level Event Grid type, thread-level Event Grid type)
JOURNAL_TYPES: dict[str, tuple[str, str]] = {
    "chatMessageReceived": ("ChatMessageReceived", "ChatMessageReceivedInThread"),
    "chatMessageEdited": ("ChatMessageEdited", "ChatMessageEditedInThread"),
    "chatMessageDeleted": ("ChatMessageDeleted", "ChatMessageDeletedInThread"),
    "chatThreadCreated": ("ChatThreadCreatedWithUser", "ChatThreadCreated"),
    "chatThreadPropertiesUpdated": ("ChatThreadPropertiesUpdatedPerUser", "ChatThreadPropertiesUpdated"),
    "chatThreadDeleted": ("ChatThreadWithUserDeleted", "ChatThreadDeleted"),
    "participantsAdded": ("ChatParticipantAddedToThreadWithUser", "ChatThreadParticipantAdded"),
    "participantsRemoved": ("ChatParticipantRemovedFromThreadWithUser", "ChatThreadParticipantRemoved"),
}
USER_LEVEL = frozenset(user for user, _ in JOURNAL_TYPES.values())
THREAD_LEVEL = frozenset(thread for _, thread in JOURNAL_TYPES.values())
EVENT_TYPES: tuple[str, ...] = tuple(t for pair in JOURNAL_TYPES.values() for t in pair)
"""The 16 chat event types (short names; the Event Grid type is :data:`PREFIX` + name)."""

# the role whose identifier the event names, and the word its subject uses for it
_ROLES = {
    "chatThreadCreated": ("createdBy", "createdBy"),
    "chatThreadPropertiesUpdated": ("updatedBy", "editedBy"),
    "chatThreadDeleted": ("deletedBy", "deletedBy"),
    "participantsAdded": ("addedBy", "addedBy"),
    "participantsRemoved": ("removedBy", "removedBy"),
}


def short_type(name: str) -> str:
    """``ChatMessageReceived`` for either it or ``Microsoft.Communication.ChatMessageReceived``.

    Raises:
        ValueError: for a name that is not one of the 16 chat event types.
    """
    short = name.removeprefix(PREFIX)
    if short not in EVENT_TYPES:
        raise ValueError(f"{name!r} is not an ACS chat event type; they are {', '.join(EVENT_TYPES)}")
    return short


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One row of the event journal, with what rendering needs besides it."""

    event_id: int
    type: str
    thread_id: str
    payload: dict[str, Any]
    created_on: int
    thread_created_on: int


def identifier(user_id: str) -> dict[str, Any]:
    """A ``CommunicationIdentifierModel`` as the Event Grid examples have it (no ``kind``)."""
    return {"rawId": user_id, "communicationUser": {"id": user_id}}


def _transaction_id() -> str:
    token = base64.b64encode(secrets.token_bytes(16)).decode().rstrip("=")
    return f"{token}.1.1.1.1.{secrets.randbelow(2**31)}.1"


def _participant(p: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if p.get("displayName") is not None:
        out["displayName"] = p["displayName"]
    out["participantCommunicationIdentifier"] = identifier(p["id"])
    if p.get("metadata"):
        out["metadata"] = p["metadata"]
    return out


def _message_data(entry: JournalEntry, *, thread_level: bool) -> dict[str, Any]:
    p = entry.payload
    data: dict[str, Any] = {}
    if entry.type == "chatMessageDeleted":
        data["deleteTime"] = format_rfc3339(p["deletedOn"])
    elif entry.type == "chatMessageEdited":
        data["editTime"] = format_rfc3339(p["editedOn"])
    if entry.type != "chatMessageDeleted":
        data["messageBody"] = p.get("message") or ""
    data["messageId"] = p["id"]
    if entry.type != "chatMessageDeleted":
        data["metadata"] = p.get("metadata") or {}
    if not thread_level:
        data["senderId"] = p["sender"]
    data["senderCommunicationIdentifier"] = identifier(p["sender"])
    if p.get("senderDisplayName") is not None:
        data["senderDisplayName"] = p["senderDisplayName"]
    data["composeTime"] = format_rfc3339(p["createdOn"])
    data["type"] = "Html" if p.get("type") == "html" else "Text"
    data["version"] = str(p["version"]) if thread_level else int(p["version"])
    return data


def _thread_data(entry: JournalEntry, *, thread_level: bool) -> dict[str, Any]:
    p, kind = entry.payload, entry.type
    data: dict[str, Any] = {}
    field, word = _ROLES[kind]  # the payload's field, and the word the event uses (editedBy)
    who = p.get(field)
    if who is not None:
        if not thread_level:
            data[word] = who
        data[f"{word}CommunicationIdentifier"] = identifier(who)
    if kind == "chatThreadCreated":
        properties = p.get("properties") or {}
        data["properties"] = {"topic": properties.get("topic")}
        if properties.get("metadata"):
            data["metadata"] = properties["metadata"]
        if not thread_level:
            data["members"] = [
                {**({"displayName": m["displayName"]} if m.get("displayName") else {}), "memberId": m["id"]}
                for m in p.get("participants", [])
            ]
        data["participants"] = [_participant(m) for m in p.get("participants", [])]
    elif kind == "chatThreadPropertiesUpdated":
        properties = p.get("properties") or {}
        data["editTime"] = format_rfc3339(p["updatedOn"])
        data["properties"] = {"topic": properties.get("topic")}
        data["metadata"] = properties.get("metadata") or {}
    elif kind == "chatThreadDeleted":
        data["deleteTime"] = format_rfc3339(p["deletedOn"])
    data["createTime"] = format_rfc3339(entry.thread_created_on)
    data["version"] = entry.created_on // 1000
    return data


def _participant_data(entry: JournalEntry, person: dict[str, Any]) -> dict[str, Any]:
    p = entry.payload
    added = entry.type == "participantsAdded"
    data: dict[str, Any] = {"time": format_rfc3339(p["addedOn" if added else "removedOn"])}
    who = p.get("addedBy" if added else "removedBy")
    if who is not None:
        data["addedByCommunicationIdentifier" if added else "removedByCommunicationIdentifier"] = identifier(
            who
        )
    data["participantAdded" if added else "participantRemoved"] = _participant(person)
    data["createTime"] = format_rfc3339(entry.thread_created_on)
    data["version"] = entry.created_on // 1000
    return data


def _subject(entry: JournalEntry, data: dict[str, Any], recipient: str | None) -> str:
    subject = f"thread/{entry.thread_id}"
    if entry.type.startswith("chatMessage"):
        subject += f"/sender/{entry.payload['sender']}"
    elif entry.type in ("participantsAdded", "participantsRemoved"):
        key = "participantAdded" if entry.type == "participantsAdded" else "participantRemoved"
        word = key if recipient is not None else key.lower()
        subject += f"/{word}/{data[key]['participantCommunicationIdentifier']['rawId']}"
    else:
        field, word = _ROLES[entry.type]
        who = entry.payload.get(field)
        if who is not None:
            subject += f"/{word}/{who}"
    return subject if recipient is None else f"{subject}/recipient/{recipient}"


def _event(entry: JournalEntry, name: str, data: dict[str, Any], topic: str, recipient: str | None) -> Any:
    data = dict(data)
    if recipient is not None:
        if "senderId" in data or "createdBy" in data or "editedBy" in data or "deletedBy" in data:
            data["recipientId"] = recipient
        data["recipientCommunicationIdentifier"] = identifier(recipient)
    data["transactionId"] = _transaction_id()
    data["threadId"] = entry.thread_id
    return {
        "id": str(uuid.uuid4()),
        "topic": topic,
        "subject": _subject(entry, data, recipient),
        "data": data,
        "eventType": PREFIX + name,
        "dataVersion": "1.0",
        "metadataVersion": "1",
        "eventTime": format_rfc3339(entry.created_on),
    }


def _bodies(entry: JournalEntry, thread_level: bool) -> list[dict[str, Any]]:
    if entry.type.startswith("chatMessage"):
        return [_message_data(entry, thread_level=thread_level)]
    if entry.type in ("participantsAdded", "participantsRemoved"):
        key = "participantsAdded" if entry.type == "participantsAdded" else "participantsRemoved"
        return [_participant_data(entry, person) for person in entry.payload.get(key, [])]
    return [_thread_data(entry, thread_level=thread_level)]


def render(
    entry: JournalEntry, recipients: Iterable[str], topic: str, wanted: frozenset[str]
) -> list[tuple[str, dict[str, Any]]]:
    """``(short type, Event Grid schema event)`` for each event ``entry`` publishes of a ``wanted`` type.

    ``recipients`` are the members who may see the entry (the initiator among them is skipped here).
    """
    pair = JOURNAL_TYPES.get(entry.type)
    if pair is None:
        return []
    user_type, thread_type = pair
    out: list[tuple[str, dict[str, Any]]] = []
    if thread_type in wanted:
        out += [(thread_type, _event(entry, thread_type, d, topic, None)) for d in _bodies(entry, True)]
    if user_type in wanted:
        initiator = entry.payload.get("sender") or entry.payload.get(_ROLES.get(entry.type, ("",))[0])
        bodies = _bodies(entry, False)
        for recipient in recipients:
            if recipient != initiator:
                out += [(user_type, _event(entry, user_type, d, topic, recipient)) for d in bodies]
    return out


def to_cloudevent(event: dict[str, Any]) -> dict[str, Any]:
    """An Event Grid schema event in the CloudEvents 1.0 schema, as Event Grid converts it."""
    return {
        "id": event["id"],
        "source": event["topic"],
        "subject": event["subject"],
        "type": event["eventType"],
        "time": event["eventTime"],
        "specversion": "1.0",
        "datacontenttype": "application/json",
        "data": event["data"],
    }
