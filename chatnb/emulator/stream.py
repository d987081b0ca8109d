"""The emulator's real-time event stream: Server-Sent Events at ``GET /chatnb/events``.

Every change the store commits is appended to its event journal in the same transaction; this endpoint
streams the journal to each user, filtered to the threads they belong to (and, for messages, to what
their ``shareHistoryTime`` lets them see). Each event carries its journal id; a client that reconnects
with ``Last-Event-ID`` (or ``?lastEventId=``) gets everything it missed that the bounded journal still
holds. Event payloads have the JavaScript SDK's event names and camelCase fields.

Control events carry the stream position as their ``id`` too, so any SSE client keeps the right
``Last-Event-ID``: ``realTimeNotificationConnected`` opens every stream and ``journalGap`` tells a client
that asked for events the bounded journal no longer holds. The stream ends when the access token expires
or is revoked (or the user is deleted); the client reconnects with a fresh token and loses nothing.

Journal reads run in worker threads, never on the event loop. One user may hold
:attr:`~chatnb.emulator.bounds.ServerLimits.max_streams_per_user` streams at once; one more is answered
429 with the ACS error body.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from .._time import format_rfc3339
from .._timeout import bounded
from .auth import Caller, authenticate
from .errors import BadRequest
from .state import Broadcaster, state_of
from .store import Store
from .wire import identifier, participant_json

__all__ = ["EVENTS_PATH", "render_event", "routes"]

EVENTS_PATH = "/chatnb/events"

HEARTBEAT_S = 15.0
CHECK_S = 1.0  # how often an idle stream checks its token for expiry and revocation
RETRY_MS = 1000
_TIME_FIELDS = (
    "createdOn",
    "editedOn",
    "deletedOn",
    "receivedOn",
    "readOn",
    "updatedOn",
    "addedOn",
    "removedOn",
)
_ID_FIELDS = ("sender", "createdBy", "updatedBy", "deletedBy", "addedBy", "removedBy")
_PARTICIPANT_LISTS = ("participants", "participantsAdded", "participantsRemoved")


def render_event(
    event_id: int, type_: str, thread_id: str, payload: dict[str, Any], recipient: str
) -> dict[str, Any]:
    """A journal entry as the event a client receives."""
    out: dict[str, Any] = {"threadId": thread_id, "recipient": identifier(recipient)}
    for key, value in payload.items():
        if value is None:
            continue
        if key in _TIME_FIELDS:
            out[key] = format_rfc3339(value)
        elif key in _ID_FIELDS:
            out[key] = identifier(value)
        elif key in _PARTICIPANT_LISTS:
            out[key] = [participant_json(p) for p in value]
        else:
            out[key] = value
    out.setdefault("version", str(event_id))
    return out


def _last_event_id(request: Request) -> int | None:
    raw = request.headers.get("last-event-id") or request.query_params.get("lastEventId")
    if raw is None or raw == "":
        return None
    if not raw.isdigit():
        raise BadRequest("Last-Event-ID must be a non-negative integer.", target="lastEventId")
    return int(raw)


async def _stream(
    store: Store, caller: Caller, waiter: asyncio.Event, requested: int | None
) -> AsyncIterator[str]:
    yield f"retry: {RETRY_MS}\n\n"
    after = store.last_event_id if requested is None else requested
    if after > store.last_event_id:  # a journal this one never reached: replay all of this one
        after = 0
    oldest = await run_in_threadpool(store.oldest_event_id)
    if requested is not None and (after != requested or after + 1 < oldest):
        gap = {"oldestEventId": oldest, "requestedAfter": requested, "resumedAfter": after}
        yield f"id: {after}\nevent: journalGap\ndata: {json.dumps(gap)}\n\n"
    hello = {"lastEventId": after}
    yield f"id: {after}\nevent: realTimeNotificationConnected\ndata: {json.dumps(hello)}\n\n"
    heartbeat_at = time.monotonic() + HEARTBEAT_S
    while True:
        waiter.clear()
        while True:
            batch, upto = await run_in_threadpool(store.events_for, caller.user_id, after=after, limit=500)
            for event_id, type_, thread_id, payload in batch:
                data = render_event(event_id, type_, thread_id, payload, caller.user_id)
                yield f"id: {event_id}\nevent: {type_}\ndata: {json.dumps(data)}\n\n"
            after = upto
            if len(batch) < 500:
                break
        remaining = caller.expires_at - store.clock.now()  # the emulator's clock decides expiry
        if store.user_generation(caller.user_id) != caller.generation or remaining <= 0:
            return  # revoked, deleted or expired: the client reconnects with a fresh token
        now = time.monotonic()
        if now >= heartbeat_at:
            yield ": keep-alive\n\n"
            heartbeat_at = now + HEARTBEAT_S
        with contextlib.suppress(asyncio.TimeoutError):
            await bounded(min(CHECK_S, remaining, heartbeat_at - now), waiter.wait())


class _EventStreamResponse(StreamingResponse):
    """A stream that gives its subscription back however it ends (finished, cut or cancelled)."""

    def __init__(self, content: AsyncIterator[str], broadcaster: Broadcaster, waiter: asyncio.Event) -> None:
        super().__init__(
            content,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
        self._broadcaster = broadcaster
        self._waiter = waiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._broadcaster.unsubscribe(self._waiter)


async def event_stream(request: Request) -> Response:
    caller = authenticate(request)
    requested = _last_event_id(request)
    state = state_of(request)
    state.broadcaster.bind(asyncio.get_running_loop())
    waiter = state.broadcaster.subscribe(caller.user_id)
    return _EventStreamResponse(_stream(state.store, caller, waiter, requested), state.broadcaster, waiter)


def routes() -> list[Route]:
    return [Route(EVENTS_PATH, event_stream, methods=["GET"], name="chatnb_EventStream")]
