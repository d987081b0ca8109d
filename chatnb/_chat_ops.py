"""Request builders of the Chat API: :class:`ChatOperations` (threads) and :class:`ThreadOperations` (one
thread's properties, messages, participants, typing and read receipts).

Each method checks its arguments (``ValueError`` / ``TypeError`` before any request) and returns a
:class:`~chatnb._core.Call` or a :class:`~chatnb._core.Paged` listing for the clients to send.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from urllib.parse import quote

import httpx

from . import frames
from ._core import (
    DEFAULT_PAGE_SIZE,
    Call,
    Json,
    Paged,
    RequestBuilder,
    check_count,
    check_metadata,
    check_optional_text,
    check_start_time,
    check_text,
    parse_empty,
    parse_json,
)
from ._time import format_rfc3339, to_us
from .errors import ChatError
from .models import (
    ChatMessage,
    ChatMessageReadReceipt,
    ChatMessageType,
    ChatParticipant,
    ChatRetentionPolicy,
    ChatThreadItem,
    ChatThreadProperties,
    CreateChatThreadResult,
    SendChatMessageResult,
    as_identifier,
)

__all__ = ["ChatOperations", "ThreadOperations"]


def _participant(value: object) -> ChatParticipant:
    if isinstance(value, ChatParticipant):
        return value
    if hasattr(value, "identifier"):  # official-SDK participants, chatnb.session.User
        return ChatParticipant(
            as_identifier(value.identifier),
            getattr(value, "display_name", None),
            getattr(value, "share_history_time", None),
            getattr(value, "metadata", None),
        )
    return ChatParticipant(as_identifier(value))


def _participants(values: object, name: str) -> list[ChatParticipant]:
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        raise TypeError(f"{name} must be a list of ChatParticipant")
    return [_participant(v) for v in values]


def _participant_wire(p: ChatParticipant) -> Json:
    out: Json = {"communicationIdentifier": p.identifier._to_wire()}
    if p.display_name is not None:
        out["displayName"] = p.display_name
    if p.share_history_time is not None:
        out["shareHistoryTime"] = format_rfc3339(to_us(p.share_history_time))
    if p.metadata:
        out["metadata"] = check_metadata(p.metadata, "participant metadata")
    return out


def _add_properties(body: Json, metadata: object, retention_policy: object) -> bool:
    """Put a thread's ``metadata`` and ``retention_policy`` into ``body``; whether there was either (they
    need API 2025-03-15)."""
    meta = check_metadata(metadata)
    if meta is not None:
        body["metadata"] = meta
    if retention_policy is not None:
        if not isinstance(retention_policy, ChatRetentionPolicy):
            raise TypeError("retention_policy must be a ChatRetentionPolicy")
        body["retentionPolicy"] = retention_policy._to_wire()
    return meta is not None or retention_policy is not None


def _page_size(results_per_page: object) -> int:
    return check_count(results_per_page, "results_per_page", 1) or DEFAULT_PAGE_SIZE


def _since(results_per_page: object, start_time: object) -> Json:
    """The query of a listing paged with ``nextLink`` from ``start_time`` (threads, messages)."""
    return {"maxPageSize": _page_size(results_per_page), "startTime": check_start_time(start_time)}


def _skipping(results_per_page: object, skip: object) -> Json:
    """The query of a listing paged with ``skip`` (participants, read receipts)."""
    return {"maxPageSize": _page_size(results_per_page), "skip": check_count(skip, "skip", 0)}


def _errors_for(
    participants: list[ChatParticipant], body: Json
) -> list[tuple[ChatParticipant | None, ChatError]]:
    by_id = {p.identifier.raw_id: p for p in participants}
    return [
        (by_id.get(str(e.get("target"))), ChatError._from_wire(e))
        for e in body.get("invalidParticipants") or ()
        if isinstance(e, dict)
    ]


class ChatOperations(RequestBuilder):
    """Thread-level operations of ``ChatClient``."""

    def create_chat_thread(
        self,
        topic: object,
        thread_participants: object = None,
        idempotency_token: object = None,
        metadata: object = None,
        retention_policy: object = None,
    ) -> Call[CreateChatThreadResult]:
        body: Json = {"topic": check_text(topic, "topic")}
        participants = (
            [] if thread_participants is None else _participants(thread_participants, "thread_participants")
        )
        body["participants"] = [_participant_wire(p) for p in participants]
        modern = _add_properties(body, metadata, retention_policy) or any(p.metadata for p in participants)
        token = (
            str(uuid.uuid4())
            if idempotency_token is None
            else check_text(idempotency_token, "idempotency_token")
        )
        request = self.request(
            "POST",
            "/chat/threads",
            body=body,
            headers={"repeatability-request-id": token},
            api_version=self.modern(modern),
        )

        def parse(response: httpx.Response) -> CreateChatThreadResult:
            out = parse_json(response)
            errors = _errors_for(participants, out) if "invalidParticipants" in out else None
            return CreateChatThreadResult(ChatThreadProperties._from_wire(out["chatThread"]), errors)

        return Call(request, parse)

    def list_chat_threads(
        self, results_per_page: object = None, start_time: object = None
    ) -> Paged[ChatThreadItem]:
        return Paged(
            self.request("GET", "/chat/threads", params=_since(results_per_page, start_time)),
            ChatThreadItem._from_wire,
            frames.threads_frame,
        )

    def delete_chat_thread(self, thread_id: object) -> Call[None]:
        return Call(self.request("DELETE", _thread_path(thread_id)), parse_empty)


def _thread_path(thread_id: object) -> str:
    return "/chat/threads/" + quote(check_text(thread_id, "thread_id"), safe="")


class ThreadOperations(RequestBuilder):
    """Operations of ``ChatThreadClient`` on one thread."""

    def __init__(self, endpoint: str, thread_id: object, api_version: str) -> None:
        super().__init__(endpoint, api_version)
        self.thread_id = check_text(thread_id, "thread_id")
        self.path = _thread_path(thread_id)

    def _message_path(self, message_id: object) -> str:
        return f"{self.path}/messages/" + quote(check_text(message_id, "message_id"), safe="")

    def get_properties(self) -> Call[ChatThreadProperties]:
        request = self.request("GET", self.path, api_version=self.modern(True))
        return Call(request, lambda r: ChatThreadProperties._from_wire(parse_json(r)))

    def update_properties(
        self, topic: object = None, metadata: object = None, retention_policy: object = None
    ) -> Call[None]:
        body: Json = {}
        if topic is not None:
            body["topic"] = check_text(topic, "topic")
        modern = _add_properties(body, metadata, retention_policy)
        if not body:
            raise ValueError("give a topic, metadata or retention_policy to update")
        request = self.request("PATCH", self.path, body=body, api_version=self.modern(modern))
        request.headers["Content-Type"] = "application/merge-patch+json"
        return Call(request, parse_empty)

    def send_message(
        self,
        content: object,
        chat_message_type: object = None,
        sender_display_name: object = None,
        metadata: object = None,
    ) -> Call[SendChatMessageResult]:
        body: Json = {"content": check_text(content, "content")}
        type_ = ChatMessageType.TEXT if chat_message_type is None else chat_message_type
        try:
            type_ = ChatMessageType(type_)
        except ValueError:
            raise ValueError(
                f"chat_message_type must be 'text' or 'html', not {chat_message_type!r}"
            ) from None
        if type_ not in (ChatMessageType.TEXT, ChatMessageType.HTML):
            raise ValueError(f"chat_message_type must be 'text' or 'html', not {type_.value!r}")
        body["type"] = type_.value
        name = check_optional_text(sender_display_name, "sender_display_name")
        if name is not None:
            body["senderDisplayName"] = name
        meta = check_metadata(metadata)
        if meta is not None:
            body["metadata"] = meta
        request = self.request("POST", f"{self.path}/messages", body=body)
        return Call(request, lambda r: SendChatMessageResult(str(parse_json(r)["id"])))

    def get_message(self, message_id: object) -> Call[ChatMessage]:
        request = self.request("GET", self._message_path(message_id))
        return Call(request, lambda r: ChatMessage._from_wire(parse_json(r)))

    def list_messages(self, results_per_page: object = None, start_time: object = None) -> Paged[ChatMessage]:
        request = self.request("GET", f"{self.path}/messages", params=_since(results_per_page, start_time))
        return Paged(request, ChatMessage._from_wire, frames.messages_frame)

    def list_message_pages(
        self, results_per_page: object = None, start_time: object = None, continuation_token: object = None
    ) -> Paged[ChatMessage]:
        """``list_messages``, or its continuation from a page's ``continuation_token``.

        Raises:
            ValueError: for a token with ``results_per_page`` or ``start_time`` (the token carries the
                listing's own), or a token that is not a link of this thread's listing.
        """
        if continuation_token is None:
            return self.list_messages(results_per_page, start_time)
        if results_per_page is not None or start_time is not None:
            raise ValueError(
                "continuation_token carries the page size and start time of the listing it continues: "
                "give it without results_per_page and start_time"
            )
        return self.list_messages().resume(continuation_token)

    def update_message(
        self, message_id: object, content: object = None, metadata: object = None
    ) -> Call[None]:
        path = self._message_path(message_id)
        body: Json = {}
        if content is not None:
            body["content"] = check_text(content, "content")
        if metadata is not None:
            if not isinstance(metadata, Mapping) or not all(
                isinstance(k, str) and (v is None or isinstance(v, str)) for k, v in metadata.items()
            ):
                raise TypeError("metadata must be a dict of str to str (None removes a key)")
            body["metadata"] = dict(metadata)
        if not body:
            raise ValueError("give the new content or metadata of the message")
        request = self.request("PATCH", path, body=body)
        request.headers["Content-Type"] = "application/merge-patch+json"
        return Call(request, parse_empty)

    def delete_message(self, message_id: object) -> Call[None]:
        return Call(self.request("DELETE", self._message_path(message_id)), parse_empty)

    def list_participants(
        self, results_per_page: object = None, skip: object = None
    ) -> Paged[ChatParticipant]:
        request = self.request("GET", f"{self.path}/participants", params=_skipping(results_per_page, skip))
        return Paged(request, ChatParticipant._from_wire, frames.participants_frame)

    def add_participants(
        self, thread_participants: object
    ) -> Call[list[tuple[ChatParticipant | None, ChatError]]]:
        participants = _participants(thread_participants, "thread_participants")
        if not participants:
            raise ValueError("thread_participants must not be empty")
        body = {"participants": [_participant_wire(p) for p in participants]}
        modern = any(p.metadata for p in participants)
        request = self.request(
            "POST", f"{self.path}/participants/:add", body=body, api_version=self.modern(modern)
        )
        return Call(request, lambda r: _errors_for(participants, parse_json(r)))

    def remove_participant(self, identifier: object) -> Call[None]:
        body = as_identifier(identifier)._to_wire()
        return Call(self.request("POST", f"{self.path}/participants/:remove", body=body), parse_empty)

    def send_typing_notification(self, sender_display_name: object = None) -> Call[None]:
        name = check_optional_text(sender_display_name, "sender_display_name")
        body = {} if name is None else {"senderDisplayName": name}
        return Call(self.request("POST", f"{self.path}/typing", body=body), parse_empty)

    def send_read_receipt(self, message_id: object) -> Call[None]:
        body = {"chatMessageId": check_text(message_id, "message_id")}
        return Call(self.request("POST", f"{self.path}/readReceipts", body=body), parse_empty)

    def list_read_receipts(
        self, results_per_page: object = None, skip: object = None
    ) -> Paged[ChatMessageReadReceipt]:
        request = self.request("GET", f"{self.path}/readReceipts", params=_skipping(results_per_page, skip))
        return Paged(request, ChatMessageReadReceipt._from_wire, frames.read_receipts_frame)
