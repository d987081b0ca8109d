"""The Chat API: threads, messages, participants, typing notifications and read receipts.

Who may do what: every call needs a live bearer token with a chat scope; every thread operation needs
the caller to be a participant (403 otherwise, 404 for a thread that does not exist or was deleted); a
participant sees no message created before their ``shareHistoryTime``; only a message's sender may edit
or delete it; ``chat.join`` tokens may not create, update or delete threads, and ``chat.join.limited``
tokens may not add or remove participants either.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .._time import format_rfc3339, parse_rfc3339_us
from .app import (
    CHAT_API_VERSIONS,
    api_version,
    bearer_token,
    empty_response,
    json_response,
    read_object,
    self_link,
    state_of,
)
from .auth import CHAT_SCOPES
from .errors import BadRequest, Forbidden, NotFound, Unauthorized
from .store import MAX_THREAD_PARTICIPANTS, Message, Participant, Store, Thread
from .wire import (
    identifier,
    message_json,
    parse_identifier,
    parse_metadata,
    parse_participant,
    participant_json,
    thread_item_json,
    thread_json,
)

__all__ = ["Caller", "authenticate", "routes"]

MAX_MESSAGE_BYTES = 28 * 1024
MAX_PAGE_SIZE = 200
DEFAULT_PAGE_SIZE = 100
MAX_PARTICIPANTS_PER_REQUEST = 200
MODERN_VERSION = "2025-03-15"


@dataclass(frozen=True, slots=True)
class Caller:
    user_id: str
    scopes: frozenset[str]
    version: str

    @property
    def modern(self) -> bool:
        return self.version >= MODERN_VERSION

    def require_scope(self, action: str, *, limited_ok: bool = False, join_ok: bool = False) -> None:
        if "chat" in self.scopes:
            return
        if join_ok and "chat.join" in self.scopes:
            return
        if limited_ok and self.scopes & {"chat.join", "chat.join.limited"}:
            return
        raise Forbidden(f"The access token's scopes do not allow {action}.")


def authenticate(request: Request, *, continuation: bool = False) -> Caller:
    """The caller of a Chat request.

    Raises:
        BadRequest: for a missing or unsupported api-version.
        Unauthorized: for a missing, malformed, forged, expired or revoked token, or a deleted user.
        Forbidden: for a token without a chat scope.
    """
    version = api_version(request, CHAT_API_VERSIONS, continuation=continuation)
    state = state_of(request)
    claims = state.issuer.verify(bearer_token(request))
    generation = state.store.user_generation(claims.user_id)
    if generation is None:
        raise Unauthorized("The identity of this access token does not exist or was deleted.")
    if claims.generation != generation:
        raise Unauthorized("The access token has been revoked.")
    if not claims.scopes & CHAT_SCOPES:
        raise Forbidden("The access token has no chat scope.")
    return Caller(claims.user_id, claims.scopes, version)


def _store(request: Request) -> Store:
    return state_of(request).store


def _member_thread(request: Request, caller: Caller) -> tuple[Thread, Participant]:
    thread_id: str = request.path_params["thread_id"]
    store = _store(request)
    thread = store.get_thread(thread_id)
    if thread is None or thread.deleted_on is not None:
        raise NotFound(f"Chat thread {thread_id[:120]!r} does not exist.", code="ThreadNotFound")
    me = store.participant(thread_id, caller.user_id)
    if me is None:
        raise Forbidden("The caller is not a participant of this chat thread.")
    return thread, me


def _visible_message(
    request: Request, thread: Thread, me: Participant, message_id: str | None = None
) -> Message:
    message_id = message_id or request.path_params["message_id"]
    message = _store(request).get_message(thread.id, message_id)
    if message is None or (me.share_history_time is not None and message.created_on < me.share_history_time):
        raise NotFound(f"Chat message {message_id[:60]!r} does not exist.", code="MessageNotFound")
    return message


def _int_param(request: Request, name: str, default: int, minimum: int, maximum: int | None) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{name} must be an integer, not {raw[:20]!r}.", target=name) from None
    if value < minimum:
        raise BadRequest(f"{name} must be at least {minimum}.", target=name)
    return min(value, _MAX_INT if maximum is None else maximum)


def _page_size(request: Request) -> int:
    return _int_param(request, "maxPageSize", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE)


def _start_time(request: Request) -> int | None:
    raw = request.query_params.get("startTime")
    if raw is None or raw in ("", "0"):
        return None
    try:
        return parse_rfc3339_us(raw.replace(" ", "+"))
    except ValueError:
        raise BadRequest(
            f"startTime is not an RFC 3339 date-time: {raw[:40]!r}.", target="startTime"
        ) from None


_MAX_INT = 2**63 - 1
_BAD_SYNC_STATE = "syncState is not a continuation token of this service."


def _sync_state(request: Request, parts: int) -> tuple[int, ...] | None:
    """The hex integers of a ``syncState`` continuation token, or ``None`` on a first page."""
    raw = request.query_params.get("syncState")
    if raw is None:
        return None
    fields = raw.split(".")
    if len(fields) != parts:
        raise BadRequest(_BAD_SYNC_STATE, target="syncState")
    try:
        values = tuple(int(part, 16) for part in fields)
    except ValueError:
        raise BadRequest(_BAD_SYNC_STATE, target="syncState") from None
    if any(not 0 <= v <= _MAX_INT for v in values[:2]):  # times and sequence ids fit SQLite's INTEGER
        raise BadRequest(_BAD_SYNC_STATE, target="syncState")
    return values


def _page(items: list[Any], next_query: dict[str, Any] | None, request: Request) -> Response:
    body: dict[str, Any] = {"value": items}
    if next_query is not None:
        body["nextLink"] = self_link(request, urlencode(next_query))
    return json_response(body)


def _check_content(content: Any, metadata: dict[str, str] | None) -> str:
    if not isinstance(content, str):
        raise BadRequest("content must be a string.", target="content")
    if not content:
        raise BadRequest("content must not be empty.", target="content")
    size = len(content.encode()) + sum(len(k) + len(v) for k, v in (metadata or {}).items())
    if size > MAX_MESSAGE_BYTES:
        raise BadRequest(
            f"The message is {size} bytes; at most {MAX_MESSAGE_BYTES} (28 KB) are allowed.",
            code="MessageTooLarge",
            target="content",
        )
    return content


def _participants(
    request: Request, value: Any, caller: Caller
) -> tuple[list[Participant], list[dict[str, Any]]]:
    """Valid participants and the ``invalidParticipants`` errors for unknown users."""
    if not isinstance(value, list):
        raise BadRequest("participants must be an array.", target="participants")
    if len(value) > MAX_PARTICIPANTS_PER_REQUEST:
        raise BadRequest(
            f"{len(value)} participants in one request; at most {MAX_PARTICIPANTS_PER_REQUEST} are allowed.",
            code="TooManyParticipants",
            target="participants",
        )
    store = _store(request)
    valid: dict[str, Participant] = {}
    invalid: list[dict[str, Any]] = []
    for i, item in enumerate(value):
        p = parse_participant(item, f"participants[{i}]", with_metadata=caller.modern)
        if store.user_generation(p.user_id) is None:
            invalid.append({"code": "403", "message": "Permissions check failed", "target": p.user_id})
        else:
            valid[p.user_id] = p
    return list(valid.values()), invalid


def _retention(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or value.get("kind") not in ("threadCreationDate", "none"):
        raise BadRequest(
            "retentionPolicy.kind must be 'threadCreationDate' or 'none'.", target="retentionPolicy"
        )
    if value["kind"] == "none":
        return {"kind": "none"}
    days = value.get("deleteThreadAfterDays")
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= 90:
        raise BadRequest(
            "retentionPolicy.deleteThreadAfterDays must be an integer from 1 to 90.",
            target="retentionPolicy.deleteThreadAfterDays",
        )
    return {"kind": "threadCreationDate", "deleteThreadAfterDays": days}


# -- threads -----------------------------------------------------------------------------------


async def create_thread(request: Request) -> Response:
    caller = authenticate(request)
    caller.require_scope("creating chat threads")
    body = await read_object(request)
    topic = body.get("topic")
    if not isinstance(topic, str) or not topic.strip():
        raise BadRequest("topic is required and must be a non-empty string.", target="topic")
    participants, invalid = _participants(request, body.get("participants", []), caller)
    if len({p.user_id for p in participants} | {caller.user_id}) > MAX_THREAD_PARTICIPANTS:
        raise BadRequest(
            f"A chat thread has at most {MAX_THREAD_PARTICIPANTS} participants.",
            code="TooManyParticipants",
            target="participants",
        )
    metadata = parse_metadata(body.get("metadata"), "metadata", 1024) if caller.modern else None
    retention = _retention(body.get("retentionPolicy")) if caller.modern else None
    request_id = request.headers.get("repeatability-request-id")
    thread = _store(request).create_thread(
        caller.user_id,
        topic,
        participants,
        request_id=request_id,
        metadata=metadata,
        retention=retention,
    )
    out: dict[str, Any] = {"chatThread": thread_json(thread, modern=caller.modern)}
    if invalid:
        out["invalidParticipants"] = invalid
    location = self_link(request, "").rstrip("?") + "/" + thread.id
    return json_response(out, 201, {"Location": location})


async def list_threads(request: Request) -> Response:
    state = _sync_state(request, 3)
    caller = authenticate(request, continuation=state is not None)
    limit = _page_size(request)
    start = _start_time(request)
    after = None
    if state is not None:
        start = state[0] or None
        id_bytes = state[2].to_bytes((state[2].bit_length() + 7) // 8, "big")
        after = (state[1], id_bytes.decode("utf-8", "replace"))
    rows = _store(request).list_threads(caller.user_id, start_time=start, after=after, limit=limit + 1)
    next_query = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        token = f"{start or 0:x}.{last.last_message_on:x}.{last.id.encode().hex()}"
        next_query = {"syncState": token, "maxPageSize": limit, "api-version": caller.version}
    return _page([thread_item_json(t) for t in rows], next_query, request)


async def get_thread(request: Request) -> Response:
    caller = authenticate(request)
    thread, _ = _member_thread(request, caller)
    return json_response(thread_json(thread, modern=caller.modern))


async def update_thread(request: Request) -> Response:
    caller = authenticate(request)
    caller.require_scope("updating chat threads")
    thread, _ = _member_thread(request, caller)
    body = await read_object(request)
    topic = body.get("topic")
    if topic is not None and (not isinstance(topic, str) or not topic.strip()):
        raise BadRequest("topic must be a non-empty string.", target="topic")
    metadata = None
    retention = None
    if caller.modern:
        patch = body.get("metadata")
        if patch is not None:
            if not isinstance(patch, dict):
                raise BadRequest("metadata must be an object.", target="metadata")
            merged = {**(thread.metadata or {}), **patch}
            metadata = parse_metadata({k: v for k, v in merged.items() if v is not None}, "metadata", 1024)
        retention = _retention(body.get("retentionPolicy"))
    _store(request).update_thread(
        thread.id, caller.user_id, topic=topic, metadata=metadata, retention=retention
    )
    return empty_response(204)


async def delete_thread(request: Request) -> Response:
    caller = authenticate(request)
    caller.require_scope("deleting chat threads")
    thread_id: str = request.path_params["thread_id"]
    store = _store(request)
    thread = store.get_thread(thread_id)
    if thread is not None and thread.deleted_on is None:
        if store.participant(thread_id, caller.user_id) is None:
            raise Forbidden("The caller is not a participant of this chat thread.")
        store.delete_thread(thread_id, caller.user_id)
    return empty_response(204)


# -- messages ----------------------------------------------------------------------------------


async def send_message(request: Request) -> Response:
    caller = authenticate(request)
    thread, _ = _member_thread(request, caller)
    body = await read_object(request)
    metadata = parse_metadata(body.get("metadata"), "metadata")
    if "content" not in body:
        raise BadRequest("content is required.", target="content")
    content = _check_content(body["content"], metadata)
    type_ = body.get("type", "text")
    if not isinstance(type_, str) or type_.lower() not in ("text", "html"):
        raise BadRequest("type must be 'text' or 'html'.", target="type")
    name = body.get("senderDisplayName")
    if name is not None and not isinstance(name, str):
        raise BadRequest("senderDisplayName must be a string.", target="senderDisplayName")
    message_id = _store(request).send_message(
        thread.id,
        caller.user_id,
        type_=type_.lower(),
        content=content,
        display_name=name,
        metadata=metadata,
    )
    location = self_link(request, "").rstrip("?") + "/" + message_id
    return json_response({"id": message_id}, 201, {"Location": location})


async def list_messages(request: Request) -> Response:
    state = _sync_state(request, 2)
    caller = authenticate(request, continuation=state is not None)
    thread, me = _member_thread(request, caller)
    limit = _page_size(request)
    start = _start_time(request)
    before = None
    if state is not None:
        before, start = state[0], state[1] or None
    rows = _store(request).list_messages(
        thread.id,
        visible_from=me.share_history_time,
        start_time=start,
        before_seq=before,
        limit=limit + 1,
    )
    next_query = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_query = {
            "syncState": f"{rows[-1].seq:x}.{start or 0:x}",
            "maxPageSize": limit,
            "api-version": caller.version,
        }
    return _page([message_json(m) for m in rows], next_query, request)


async def get_message(request: Request) -> Response:
    caller = authenticate(request)
    thread, me = _member_thread(request, caller)
    return json_response(message_json(_visible_message(request, thread, me)))


def _own_message(request: Request, caller: Caller, action: str) -> Message | None:
    thread, me = _member_thread(request, caller)
    try:
        message = _visible_message(request, thread, me)
    except NotFound:
        if action == "delete":
            return None
        raise
    if message.sender_id != caller.user_id:
        raise Forbidden(f"Only the sender of a message may {action} it.")
    return message


async def update_message(request: Request) -> Response:
    caller = authenticate(request)
    message = _own_message(request, caller, "edit")
    assert message is not None
    if message.deleted_on is not None:
        raise NotFound("The chat message has been deleted.", code="MessageNotFound")
    body = await read_object(request)
    content = body.get("content")
    patch = body.get("metadata")
    metadata = message.metadata
    if patch is not None:
        if not isinstance(patch, dict):
            raise BadRequest("metadata must be an object.", target="metadata")
        merged = {**(metadata or {}), **patch}
        metadata = parse_metadata({k: v for k, v in merged.items() if v is not None}, "metadata")
    if content is not None:
        _check_content(content, metadata)
    _store(request).update_message(message, content=content, metadata=metadata or None)
    return empty_response(204)


async def delete_message(request: Request) -> Response:
    caller = authenticate(request)
    message = _own_message(request, caller, "delete")
    if message is not None:
        _store(request).delete_message(message)
    return empty_response(204)


# -- participants ------------------------------------------------------------------------------


def _skip_page(request: Request) -> tuple[int, int]:
    return _int_param(request, "skip", 0, 0, None), _page_size(request)


def _skip_next(caller: Caller, skip: int, limit: int, more: bool) -> dict[str, Any] | None:
    if not more:
        return None
    return {"skip": skip + limit, "maxPageSize": limit, "api-version": caller.version}


async def list_participants(request: Request) -> Response:
    caller = authenticate(request, continuation="skip" in request.query_params)
    thread, _ = _member_thread(request, caller)
    skip, limit = _skip_page(request)
    rows = _store(request).list_participants(thread.id, skip=skip, limit=limit + 1)
    next_query = _skip_next(caller, skip, limit, len(rows) > limit)
    return _page([participant_json(p) for p in rows[:limit]], next_query, request)


async def add_participants(request: Request) -> Response:
    caller = authenticate(request)
    caller.require_scope("adding participants", join_ok=True)
    thread, _ = _member_thread(request, caller)
    body = await read_object(request)
    if "participants" not in body:
        raise BadRequest("participants is required.", target="participants")
    participants, invalid = _participants(request, body["participants"], caller)
    if not participants and not invalid:
        raise BadRequest("participants must not be empty.", target="participants")
    store = _store(request)
    new = {p.user_id for p in participants if store.participant(thread.id, p.user_id) is None}
    if store.participant_count(thread.id) + len(new) > MAX_THREAD_PARTICIPANTS:
        raise BadRequest(
            f"A chat thread has at most {MAX_THREAD_PARTICIPANTS} participants.",
            code="TooManyParticipants",
            target="participants",
        )
    if participants:
        store.add_participants(thread.id, caller.user_id, participants)
    return json_response({"invalidParticipants": invalid} if invalid else {}, 201)


async def remove_participant(request: Request) -> Response:
    caller = authenticate(request)
    thread, _ = _member_thread(request, caller)
    body = await read_object(request)
    user_id = parse_identifier(body, "participantCommunicationIdentifier")
    if user_id != caller.user_id:
        caller.require_scope("removing other participants", join_ok=True)
    _store(request).remove_participant(thread.id, caller.user_id, user_id)
    return empty_response(204)


# -- typing and read receipts ------------------------------------------------------------------


async def send_typing(request: Request) -> Response:
    caller = authenticate(request)
    thread, me = _member_thread(request, caller)
    body = await read_object(request, required=False)
    name = body.get("senderDisplayName")
    if name is not None and not isinstance(name, str):
        raise BadRequest("senderDisplayName must be a string.", target="senderDisplayName")
    _store(request).typing(thread.id, caller.user_id, name or me.display_name)
    return Response(status_code=200)


async def send_read_receipt(request: Request) -> Response:
    caller = authenticate(request)
    thread, me = _member_thread(request, caller)
    body = await read_object(request)
    message_id = body.get("chatMessageId")
    if not isinstance(message_id, str) or not message_id:
        raise BadRequest("chatMessageId is required and must be a string.", target="chatMessageId")
    message = _visible_message(request, thread, me, message_id)
    _store(request).send_read_receipt(message, caller.user_id)
    return Response(status_code=200)


async def list_read_receipts(request: Request) -> Response:
    caller = authenticate(request, continuation="skip" in request.query_params)
    thread, _ = _member_thread(request, caller)
    skip, limit = _skip_page(request)
    rows = _store(request).list_read_receipts(thread.id, skip=skip, limit=limit + 1)
    items = [
        {
            "senderCommunicationIdentifier": identifier(reader),
            "chatMessageId": message_id,
            "readOn": format_rfc3339(read_on),
        }
        for reader, message_id, read_on in rows[:limit]
    ]
    return _page(items, _skip_next(caller, skip, limit, len(rows) > limit), request)


async def realtime_config(request: Request) -> Response:
    authenticate(request)
    raise NotFound(
        "Trouter real-time notifications are not emulated; use the emulator's event stream "
        "(GET /chatnb/events).",
        code="NotSupported",
    )


def routes() -> list[Route]:
    t = "/chat/threads/{thread_id}"
    return [
        Route("/chat/threads", create_thread, methods=["POST"]),
        Route("/chat/threads", list_threads, methods=["GET"]),
        Route(t, get_thread, methods=["GET"]),
        Route(t, update_thread, methods=["PATCH"]),
        Route(t, delete_thread, methods=["DELETE"]),
        Route(f"{t}/messages", send_message, methods=["POST"]),
        Route(f"{t}/messages", list_messages, methods=["GET"]),
        Route(t + "/messages/{message_id}", get_message, methods=["GET"]),
        Route(t + "/messages/{message_id}", update_message, methods=["PATCH"]),
        Route(t + "/messages/{message_id}", delete_message, methods=["DELETE"]),
        Route(f"{t}/participants", list_participants, methods=["GET"]),
        Route(f"{t}/participants/:add", add_participants, methods=["POST"]),
        Route(f"{t}/participants/:remove", remove_participant, methods=["POST"]),
        Route(f"{t}/typing", send_typing, methods=["POST"]),
        Route(f"{t}/readReceipts", send_read_receipt, methods=["POST"]),
        Route(f"{t}/readReceipts", list_read_receipts, methods=["GET"]),
        Route("/chat/config/realTimeNotifications", realtime_config, methods=["GET"]),
    ]
