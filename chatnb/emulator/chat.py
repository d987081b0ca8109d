"""The Chat API's threads and participants (messages, typing and read receipts: :mod:`.messages`).

Handlers are plain functions: Starlette runs them in worker threads, so their database work never
blocks the event loop. Authentication and membership checks are :mod:`chatnb.emulator.auth`'s.

``repeatability-request-id`` on create-thread: a key the same user sent before returns the thread that
first request created (201 again), whatever the new body says, also after the thread was deleted (it
then shows ``deletedOn``). That is what the real service did in the recorded traffic
(``shared/reference/recordings-python-sdk/``, the create-thread-with-repeatability-request-id cassette:
the SDK's live test re-sends with a fresh ``shareHistoryTime``, a 258-byte body after a 256-byte one,
and gets the same thread), and what the official SDK's own tests expect (a repeat with another topic
returns the first topic). The "a different body is rejected with 400" rule of the ACS repeatable-requests
page applies to Email and Rooms, not Chat. The key is capped at :data:`MAX_REQUEST_ID_CHARS` visible
ASCII characters (the spec recommends a UUID: 36).
"""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .auth import Caller, authenticate, member_thread
from .errors import BadRequest, Forbidden
from .http import (
    empty_response,
    int_param,
    json_response,
    page_response,
    page_size,
    read_object,
    start_time,
    sync_state,
)
from .records import Participant
from .state import state_of
from .store import MAX_THREAD_PARTICIPANTS
from .wire import (
    MAX_METADATA_BYTES,
    parse_identifier,
    parse_metadata,
    parse_participant,
    parse_topic,
    participant_json,
    thread_item_json,
    thread_json,
)

__all__ = ["MAX_REQUEST_ID_CHARS", "routes", "skip_next", "skip_params"]

MAX_PARTICIPANTS_PER_REQUEST = 200
MAX_REQUEST_ID_CHARS = 128
_REQUEST_ID = re.compile(r"[\x21-\x7e]+")


def _request_id(request: Request) -> str | None:
    raw = request.headers.get("repeatability-request-id")
    if not raw:
        return None
    if len(raw) > MAX_REQUEST_ID_CHARS or not _REQUEST_ID.fullmatch(raw):
        raise BadRequest(
            f"repeatability-request-id must be at most {MAX_REQUEST_ID_CHARS} visible ASCII characters "
            "(a UUID is recommended).",
            code="InvalidRepeatabilityRequestId",
            target="repeatability-request-id",
        )
    return raw


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
    store = state_of(request).store
    valid: dict[str, Participant] = {}
    invalid: list[dict[str, Any]] = []
    for i, item in enumerate(value):
        p = parse_participant(item, f"participants[{i}]", with_metadata=caller.modern)
        if store.user_generation(p.user_id) is None:
            invalid.append({"code": "403", "message": "Permissions check failed", "target": p.user_id})
        else:
            valid[p.user_id] = p
    return list(valid.values()), invalid


def _too_many_participants() -> BadRequest:
    return BadRequest(
        f"A chat thread has at most {MAX_THREAD_PARTICIPANTS} participants.",
        code="TooManyParticipants",
        target="participants",
    )


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


def _merged_metadata(
    current: dict[str, str] | None, patch: Any, max_bytes: int | None
) -> dict[str, str] | None:
    """``current`` with the JSON merge-patch ``patch`` applied (a ``null`` value removes a key)."""
    if not isinstance(patch, dict):
        raise BadRequest("metadata must be an object.", target="metadata")
    merged = {**(current or {}), **patch}
    return parse_metadata({k: v for k, v in merged.items() if v is not None}, "metadata", max_bytes)


# -- threads -----------------------------------------------------------------------------------


def create_thread(request: Request) -> Response:
    caller = authenticate(request)
    caller.require_scope("creating chat threads")
    request_id = _request_id(request)
    body = read_object(request)
    topic = parse_topic(body.get("topic"))
    participants, invalid = _participants(request, body.get("participants", []), caller)
    if len({p.user_id for p in participants} | {caller.user_id}) > MAX_THREAD_PARTICIPANTS:
        raise _too_many_participants()
    modern = caller.modern
    metadata = parse_metadata(body.get("metadata"), "metadata", MAX_METADATA_BYTES) if modern else None
    retention = _retention(body.get("retentionPolicy")) if modern else None
    state = state_of(request)
    thread = state.store.create_thread(
        caller.user_id, topic, participants, request_id=request_id, metadata=metadata, retention=retention
    )
    out: dict[str, Any] = {"chatThread": thread_json(thread, modern=modern)}
    if invalid:
        out["invalidParticipants"] = invalid
    return json_response(out, 201)  # no Location: the service sends none (the recorded traffic)


def list_threads(request: Request) -> Response:
    token = sync_state(request, 3)
    caller = authenticate(request, continuation=token is not None)
    limit = page_size(request)
    start = start_time(request)
    after = None
    if token is not None:
        start = token[0] or None
        id_bytes = token[2].to_bytes((token[2].bit_length() + 7) // 8, "big")
        after = (token[1], id_bytes.decode("utf-8", "replace"))
    state = state_of(request)
    rows = state.store.list_threads(caller.user_id, start_time=start, after=after, limit=limit + 1)
    next_query = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        cursor = f"{start or 0:x}.{last.last_message_on:x}.{last.id.encode().hex()}"
        next_query = {"syncState": cursor, "maxPageSize": limit, "api-version": caller.version}
    items = [thread_item_json(t) for t in rows]
    return page_response(items, next_query, request, base=state.base_url(request))


def get_thread(request: Request) -> Response:
    caller = authenticate(request)
    thread, _ = member_thread(request, caller)
    return json_response(thread_json(thread, modern=caller.modern))


def update_thread(request: Request) -> Response:
    caller = authenticate(request)
    caller.require_scope("updating chat threads")
    thread, _ = member_thread(request, caller)
    body = read_object(request)
    topic = None if body.get("topic") is None else parse_topic(body["topic"])
    metadata = None
    retention = None
    if caller.modern:
        patch = body.get("metadata")
        if patch is not None:
            metadata = _merged_metadata(thread.metadata, patch, MAX_METADATA_BYTES)
        retention = _retention(body.get("retentionPolicy"))
    state_of(request).store.update_thread(
        thread.id, caller.user_id, topic=topic, metadata=metadata, retention=retention
    )
    return empty_response(204)


def delete_thread(request: Request) -> Response:
    caller = authenticate(request)
    caller.require_scope("deleting chat threads")
    thread_id: str = request.path_params["thread_id"]
    store = state_of(request).store
    thread = store.get_thread(thread_id)
    if thread is not None and thread.deleted_on is None:
        if store.participant(thread_id, caller.user_id) is None:
            raise Forbidden("The caller is not a participant of this chat thread.")
        store.delete_thread(thread_id, caller.user_id)
    return empty_response(204)


# -- participants ------------------------------------------------------------------------------


def skip_params(request: Request) -> tuple[int, int]:
    """``(skip, limit)`` of a listing paged by ``skip`` (participants, read receipts)."""
    return int_param(request, "skip", 0, 0, None), page_size(request)


def skip_next(caller: Caller, skip: int, limit: int, more: bool) -> dict[str, Any] | None:
    """The query of the next page of a ``skip`` listing, if there is ``more``."""
    if not more:
        return None
    return {"skip": skip + limit, "maxPageSize": limit, "api-version": caller.version}


def list_participants(request: Request) -> Response:
    caller = authenticate(request, continuation="skip" in request.query_params)
    thread, _ = member_thread(request, caller)
    state = state_of(request)
    skip, limit = skip_params(request)
    rows = state.store.list_participants(thread.id, skip=skip, limit=limit + 1)
    next_query = skip_next(caller, skip, limit, len(rows) > limit)
    items = [participant_json(p) for p in rows[:limit]]
    return page_response(items, next_query, request, base=state.base_url(request))


def add_participants(request: Request) -> Response:
    caller = authenticate(request)
    caller.require_scope("adding participants", join_ok=True)
    thread, _ = member_thread(request, caller)
    body = read_object(request)
    if "participants" not in body:
        raise BadRequest("participants is required.", target="participants")
    participants, invalid = _participants(request, body["participants"], caller)
    if not participants and not invalid:
        raise BadRequest("participants must not be empty.", target="participants")
    store = state_of(request).store
    new = {p.user_id for p in participants if store.participant(thread.id, p.user_id) is None}
    if store.participant_count(thread.id) + len(new) > MAX_THREAD_PARTICIPANTS:
        raise _too_many_participants()
    if participants:
        store.add_participants(thread.id, caller.user_id, participants)
    return json_response({"invalidParticipants": invalid} if invalid else {}, 201)


def remove_participant(request: Request) -> Response:
    caller = authenticate(request)
    thread, _ = member_thread(request, caller)
    body = read_object(request)
    user_id = parse_identifier(body, "participantCommunicationIdentifier")
    if user_id != caller.user_id:
        caller.require_scope("removing other participants", join_ok=True)
    state_of(request).store.remove_participant(thread.id, caller.user_id, user_id)
    return empty_response(204)


def routes() -> list[Route]:
    """The thread and participant routes, named by their operation ids."""
    t = "/chat/threads/{thread_id}"
    return [
        Route("/chat/threads", create_thread, methods=["POST"], name="Chat_CreateChatThread"),
        Route("/chat/threads", list_threads, methods=["GET"], name="Chat_ListChatThreads"),
        Route(t, get_thread, methods=["GET"], name="ChatThread_GetChatThreadProperties"),
        Route(t, update_thread, methods=["PATCH"], name="ChatThread_UpdateChatThreadProperties"),
        Route(t, delete_thread, methods=["DELETE"], name="Chat_DeleteChatThread"),
        Route(
            f"{t}/participants", list_participants, methods=["GET"], name="ChatThread_ListChatParticipants"
        ),
        Route(
            f"{t}/participants/:add",
            add_participants,
            methods=["POST"],
            name="ChatThread_AddChatParticipants",
        ),
        Route(
            f"{t}/participants/:remove",
            remove_participant,
            methods=["POST"],
            name="ChatThread_RemoveChatParticipant",
        ),
    ]
