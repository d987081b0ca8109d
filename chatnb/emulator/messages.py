"""The Chat API's messages, typing notifications and read receipts (threads and participants: :mod:`.chat`).

A participant sees no message created before their ``shareHistoryTime``, and no read receipt of such a
message either (in the listing as in the event stream); only a message's sender may edit or delete it.
Typing notifications and read receipts are not supported on threads of more than
:data:`MAX_RECEIPT_PARTICIPANTS` participants (the service limits): there, sending one succeeds (200) but
nothing is stored or delivered. Handlers are plain functions, run in worker threads.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .._time import format_rfc3339
from .auth import Caller, authenticate, member_thread, visible_message
from .chat import skip_next, skip_params
from .errors import BadRequest, Forbidden, NotFound
from .http import (
    empty_response,
    json_response,
    page_response,
    page_size,
    read_object,
    start_time,
    sync_state,
)
from .records import Message
from .state import state_of
from .wire import (
    check_message_size,
    identifier,
    message_json,
    parse_content,
    parse_metadata,
    parse_name,
)

__all__ = ["MAX_RECEIPT_PARTICIPANTS", "routes"]

MAX_RECEIPT_PARTICIPANTS = 20


def send_message(request: Request) -> Response:
    caller = authenticate(request)
    thread, _ = member_thread(request, caller)
    body = read_object(request)
    metadata = parse_metadata(body.get("metadata"), "metadata")
    if "content" not in body:
        raise BadRequest("content is required.", target="content")
    content = parse_content(body["content"])
    type_ = body.get("type", "text")
    if not isinstance(type_, str) or type_.lower() not in ("text", "html"):
        raise BadRequest("type must be 'text' or 'html'.", target="type")
    name = parse_name(body.get("senderDisplayName"), "senderDisplayName")
    check_message_size(content, name, metadata)
    message_id = state_of(request).store.send_message(
        thread.id, caller.user_id, type_=type_.lower(), content=content, display_name=name, metadata=metadata
    )
    return json_response({"id": message_id}, 201)  # no Location: the service sends none


def list_messages(request: Request) -> Response:
    token = sync_state(request, 2)
    caller = authenticate(request, continuation=token is not None)
    thread, me = member_thread(request, caller)
    limit = page_size(request)
    start = start_time(request)
    before = None
    if token is not None:
        before, start = token[0], token[1] or None
    state = state_of(request)
    rows = state.store.list_messages(
        thread.id, visible_from=me.share_history_time, start_time=start, before_seq=before, limit=limit + 1
    )
    next_query = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_query = {
            "syncState": f"{rows[-1].seq:x}.{start or 0:x}",
            "maxPageSize": limit,
            "api-version": caller.version,
        }
    return page_response([message_json(m) for m in rows], next_query, request, base=state.base_url(request))


def get_message(request: Request) -> Response:
    caller = authenticate(request)
    thread, me = member_thread(request, caller)
    return json_response(message_json(visible_message(request, thread, me)))


def _own_message(request: Request, caller: Caller, action: str) -> Message | None:
    thread, me = member_thread(request, caller)
    try:
        message = visible_message(request, thread, me)
    except NotFound:
        if action == "delete":
            return None
        raise
    if message.sender_id != caller.user_id:
        raise Forbidden(f"Only the sender of a message may {action} it.")
    return message


def update_message(request: Request) -> Response:
    caller = authenticate(request)
    message = _own_message(request, caller, "edit")
    if message is None or message.deleted_on is not None:
        raise NotFound("The chat message has been deleted.", code="MessageNotFound")
    body = read_object(request)
    content = body.get("content")
    patch = body.get("metadata")
    metadata = message.metadata
    if patch is not None:
        if not isinstance(patch, dict):
            raise BadRequest("metadata must be an object.", target="metadata")
        merged = {**(metadata or {}), **patch}
        metadata = parse_metadata({k: v for k, v in merged.items() if v is not None}, "metadata")
    if content is not None:
        parse_content(content)
    check_message_size(message.content if content is None else content, message.sender_display_name, metadata)
    state_of(request).store.update_message(message, content=content, metadata=metadata or None)
    return empty_response(204)


def delete_message(request: Request) -> Response:
    caller = authenticate(request)
    message = _own_message(request, caller, "delete")
    if message is not None:
        state_of(request).store.delete_message(message)
    return empty_response(204)


# -- typing and read receipts ------------------------------------------------------------------


def send_typing(request: Request) -> Response:
    caller = authenticate(request)
    thread, me = member_thread(request, caller)
    body = read_object(request, required=False)
    name = parse_name(body.get("senderDisplayName"), "senderDisplayName")
    store = state_of(request).store
    if store.participant_count(thread.id) <= MAX_RECEIPT_PARTICIPANTS:
        store.typing(thread.id, caller.user_id, name or me.display_name)
    return Response(status_code=200)


def send_read_receipt(request: Request) -> Response:
    caller = authenticate(request)
    thread, me = member_thread(request, caller)
    body = read_object(request)
    message_id = body.get("chatMessageId")
    if not isinstance(message_id, str) or not message_id:
        raise BadRequest("chatMessageId is required and must be a string.", target="chatMessageId")
    message = visible_message(request, thread, me, message_id)
    store = state_of(request).store
    if store.participant_count(thread.id) <= MAX_RECEIPT_PARTICIPANTS:
        store.send_read_receipt(message, caller.user_id)
    return Response(status_code=200)


def list_read_receipts(request: Request) -> Response:
    caller = authenticate(request, continuation="skip" in request.query_params)
    thread, me = member_thread(request, caller)
    skip, limit = skip_params(request)
    state = state_of(request)
    rows = state.store.list_read_receipts(
        thread.id, skip=skip, limit=limit + 1, visible_from=me.share_history_time
    )
    items = [
        {
            "senderCommunicationIdentifier": identifier(reader),
            "chatMessageId": message_id,
            "readOn": format_rfc3339(read_on),
        }
        for reader, message_id, read_on in rows[:limit]
    ]
    next_query = skip_next(caller, skip, limit, len(rows) > limit)
    return page_response(items, next_query, request, base=state.base_url(request))


def routes() -> list[Route]:
    """The message, typing and read-receipt routes, named by their operation ids."""
    t = "/chat/threads/{thread_id}"
    m = t + "/messages/{message_id}"
    return [
        Route(f"{t}/messages", send_message, methods=["POST"], name="ChatThread_SendChatMessage"),
        Route(f"{t}/messages", list_messages, methods=["GET"], name="ChatThread_ListChatMessages"),
        Route(m, get_message, methods=["GET"], name="ChatThread_GetChatMessage"),
        Route(m, update_message, methods=["PATCH"], name="ChatThread_UpdateChatMessage"),
        Route(m, delete_message, methods=["DELETE"], name="ChatThread_DeleteChatMessage"),
        Route(f"{t}/typing", send_typing, methods=["POST"], name="ChatThread_SendTypingNotification"),
        Route(
            f"{t}/readReceipts", send_read_receipt, methods=["POST"], name="ChatThread_SendChatReadReceipt"
        ),
        Route(
            f"{t}/readReceipts", list_read_receipts, methods=["GET"], name="ChatThread_ListChatReadReceipts"
        ),
    ]
