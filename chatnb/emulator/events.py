"""The emulator's real-time event stream: Server-Sent Events at ``GET /chatnb/events``.

Every change the store commits is appended to its event journal in the same transaction; this endpoint
streams the journal to each user, filtered to the threads they belong to (and, for messages, to what
their ``shareHistoryTime`` lets them see). Each event carries its journal id; a client that reconnects
with ``Last-Event-ID`` (or ``?lastEventId=``) gets everything it missed that the bounded journal still
holds. Event payloads have the JavaScript SDK's event names and camelCase fields.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from .._time import format_rfc3339
from .chat import Caller, authenticate
from .errors import BadRequest
from .store import Store
from .wire import identifier, participant_json

__all__ = ["Broadcaster", "render_event", "routes"]

HEARTBEAT_S = 15.0
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


class Broadcaster:
    """Wakes every open stream when the store commits new events."""

    def __init__(self) -> None:
        self._waiters: set[asyncio.Event] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def notify(self, last_event_id: int) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._wake()
        else:
            loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        for waiter in self._waiters:
            waiter.set()

    def subscribe(self) -> asyncio.Event:
        waiter = asyncio.Event()
        self._waiters.add(waiter)
        return waiter

    def unsubscribe(self, waiter: asyncio.Event) -> None:
        self._waiters.discard(waiter)


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
    request: Request, store: Store, broadcaster: Broadcaster, caller: Caller, after: int
) -> AsyncIterator[str]:
    waiter = broadcaster.subscribe()
    try:
        oldest = store.oldest_event_id()
        if after + 1 < oldest:
            gap = {"oldestEventId": oldest, "requestedAfter": after}
            yield f"event: journalGap\ndata: {json.dumps(gap)}\n\n"
        yield f"event: realTimeNotificationConnected\ndata: {json.dumps({'lastEventId': after})}\n\n"
        while True:
            waiter.clear()
            while True:
                batch, upto = store.events_for(caller.user_id, after=after, limit=500)
                for event_id, type_, thread_id, payload in batch:
                    data = render_event(event_id, type_, thread_id, payload, caller.user_id)
                    yield f"id: {event_id}\nevent: {type_}\ndata: {json.dumps(data)}\n\n"
                after = upto
                if len(batch) < 500:
                    break
            generation = store.user_generation(caller.user_id)
            if generation is None:
                return
            try:
                await asyncio.wait_for(waiter.wait(), HEARTBEAT_S)
            except asyncio.TimeoutError:
                yield ": keep-alive\n\n"
    finally:
        broadcaster.unsubscribe(waiter)


async def event_stream(request: Request) -> Response:
    caller = authenticate(request)
    state = request.app.state.emulator
    store: Store = state.store
    broadcaster: Broadcaster = state.extras["broadcaster"]
    broadcaster.bind(asyncio.get_running_loop())
    last = _last_event_id(request)
    after = store.last_event_id if last is None else last
    return StreamingResponse(
        _stream(request, store, broadcaster, caller, after),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def routes() -> list[Route]:
    return [Route("/chatnb/events", event_stream, methods=["GET"])]
