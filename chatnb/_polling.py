"""Real-time events synthesised by polling the Chat REST API, for the real service (no push for Python).

Every ``interval`` seconds a round lists the user's threads, then for each live thread its messages
changed since the last round (``startTime``, with an overlap for late commits and clock skew) and its read
receipts, and now and then its properties. Diffing against what earlier rounds saw gives:

- ``chatMessageReceived`` / ``chatMessageEdited`` / ``chatMessageDeleted`` from new message ids, new
  versions, ``editedOn`` and ``deletedOn``;
- ``participantsAdded`` / ``participantsRemoved`` / ``chatThreadPropertiesUpdated`` from the thread's
  ``participantAdded`` / ``participantRemoved`` / ``topicUpdated`` system messages (which name the
  initiator and time), plus a properties diff for metadata-only changes;
- ``readReceiptReceived`` from each reader's latest receipt;
- ``chatThreadCreated`` / ``chatThreadDeleted`` / the user's own removal from the thread list.

Nothing is reported twice: each (message, version), receipt and system message is remembered until it
can no longer be listed again. Changes made before the poller started are not reported. Several changes
to one message within one interval are seen as its final state (a message edited twice in one interval
gives one ``chatMessageEdited``). **Typing indicators cannot be polled**; this is announced once per
process, as a log warning. Each round costs one request per page of threads plus two per thread (three
every ``properties_every`` seconds).

Requests answered 429 or 503 are retried as the clients retry them (:class:`~chatnb.RetryPolicy`,
honouring ``Retry-After``). A round that still fails (retries used up, a transport error) changes nothing:
what it had seen is forgotten, the engine reports a disconnection and makes the round again after a
backoff (at least the last ``Retry-After``), so its events are reported then, once.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import ssl
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, TypeVar

import httpx

from ._chat_ops import ChatOperations, ThreadOperations
from ._core import CHAT_API_VERSION, Call, Paged, RetryPolicy
from ._stream import backoff_delay, bearer_token, make_http_client
from ._time import now_us, to_datetime, to_us
from .errors import (
    AuthenticationError,
    ChatError,
    ForbiddenError,
    NotFoundError,
    transport_error,
)
from .events import (
    ChatMessageDeletedEvent,
    ChatMessageEditedEvent,
    ChatMessageReceivedEvent,
    ChatThreadCreatedEvent,
    ChatThreadDeletedEvent,
    ChatThreadEventProperties,
    ChatThreadPropertiesUpdatedEvent,
    Event,
    ParticipantsAddedEvent,
    ParticipantsRemovedEvent,
    ReadReceiptReceivedEvent,
    RealTimeNotificationConnected,
    RealTimeNotificationDisconnected,
)
from .models import ChatMessage, ChatParticipant, ChatThreadItem, CommunicationUserIdentifier

__all__ = ["Poller"]

log = logging.getLogger("chatnb.realtime")

_SYSTEM_TYPES = ("participantAdded", "participantRemoved", "topicUpdated")
_typing_announced = False
T = TypeVar("T")


def _us(value: datetime | None) -> int:
    return 0 if value is None else to_us(value)


def user_of_token(token: str) -> str:
    """The ACS user id (``8:acs:...``) an access token was issued to (its ``skypeid`` claim)."""
    try:
        part = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
        return "8:" + str(claims["skypeid"]).removeprefix("8:")
    except (IndexError, ValueError, KeyError, TypeError):
        raise ValueError("the access token names no ACS user (no readable 'skypeid' claim)") from None


@dataclass
class _Thread:
    id: str
    baseline_us: int  # changes before this are history, not events
    cursor_us: int  # the newest change seen (server clock)
    known: dict[str, tuple[str, int]] = field(default_factory=dict)  # message id -> (version, updated)
    flags: dict[str, tuple[bool, int, bool]] = field(
        default_factory=dict
    )  # id -> (received, edited, deleted)
    receipts: dict[str, tuple[str, int]] = field(default_factory=dict)  # reader -> (message id, read_on)
    properties: tuple[str, tuple[tuple[str, str], ...]] | None = None
    properties_at: float = 0.0
    created_us: int | None = None  # set when the poller reported the thread's creation
    joining: bool = False  # added to an older thread: its participantAdded message moves the baseline
    deleted: bool = False

    def copy(self) -> _Thread:
        """A copy a failed round cannot touch (the values of the dicts are immutable)."""
        return replace(self, known=dict(self.known), flags=dict(self.flags), receipts=dict(self.receipts))


class Poller:
    """Polls the Chat API and yields events (see the module docstring).

    Args:
        endpoint, credential: the service and the user's ``CommunicationTokenCredential`` (or token).
        interval: seconds between rounds.
        since: report changes from this time on (default: now).
        overlap: seconds each round re-reads before the previous one (late commits, clock skew).
        properties_every: seconds between properties checks of a thread without a topic change.
        retry_policy: how each request retries 429/503 (default: as the clients).
    """

    def __init__(
        self,
        endpoint: str,
        credential: object,
        *,
        interval: float = 1.0,
        since: datetime | None = None,
        verify: bool | str | ssl.SSLContext | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        overlap: float = 2.0,
        properties_every: float = 5.0,
        concurrency: int = 8,
        backoff: tuple[float, float] = (0.5, 30.0),
        retry_policy: RetryPolicy | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.credential = credential
        self.interval = interval
        self.since_us = now_us() if since is None else to_us(since)
        self._verify = verify
        self._transport = transport
        self._overlap_us = int(overlap * 1_000_000)
        self._properties_every = properties_every
        self._limit = asyncio.Semaphore(concurrency)
        self._backoff = backoff
        self._retry = retry_policy or RetryPolicy()
        self._threads: dict[str, _Thread] = {}
        self._http: httpx.AsyncClient | None = None
        self._token = ""
        self._me: CommunicationUserIdentifier | None = None
        self._round_start_us = self.since_us
        self.rounds = 0
        self.connected = False

    def __aiter__(self) -> AsyncGenerator[Event, None]:
        return self._run()

    async def _run(self) -> AsyncGenerator[Event, None]:
        global _typing_announced
        if not _typing_announced:
            _typing_announced = True
            log.warning(
                "chatnb is polling %s (no push channel): typingIndicatorReceived events are not available "
                "in this mode; the other events arrive within about %ss",
                self.endpoint,
                self.interval,
            )
        attempt = auth_failures = 0
        async with make_http_client(self.endpoint, self._verify, self._transport) as http:
            self._http = http
            while True:
                started = time.monotonic()
                asked: float | None = None
                try:
                    events = await self._round()
                except (AuthenticationError, ForbiddenError) as exc:
                    auth_failures += 1
                    if auth_failures >= 3 or isinstance(exc, ForbiddenError):
                        raise
                    events, reason = None, str(exc)
                except ChatError as exc:  # transport errors, 429/503 after the retries, 5xx: try again later
                    events, reason = None, str(exc)
                    asked = getattr(exc, "retry_after", None)
                if events is None:
                    if self.connected:
                        self.connected = False
                        yield RealTimeNotificationDisconnected(reason=reason)
                    delay = max(backoff_delay(attempt, *self._backoff), asked or 0.0)
                    log.info("polling: %s; retry in %.2fs", reason, delay)
                    attempt += 1
                    await asyncio.sleep(delay)
                    continue
                attempt = auth_failures = 0
                if not self.connected:
                    self.connected = True
                    yield RealTimeNotificationConnected(mode="poll")
                for _, event in sorted(events, key=lambda pair: pair[0]):
                    yield event
                await asyncio.sleep(max(0.0, self.interval - (time.monotonic() - started)))

    # -- HTTP ---------------------------------------------------------------------------------

    async def _send(self, request: httpx.Request) -> httpx.Response:
        assert self._http is not None
        request.headers["Authorization"] = f"Bearer {self._token}"
        retries, waited = 0, 0.0
        while True:
            async with self._limit:
                try:
                    response = await self._http.send(request)
                except httpx.HTTPError as exc:
                    raise transport_error(exc, request) from exc
            delay = self._retry.next_delay(response, retries, waited)
            if delay is None:
                return response
            await response.aclose()
            await asyncio.sleep(delay)
            retries, waited = retries + 1, waited + delay

    async def _call(self, call: Call[T]) -> T:
        return call.parse(await self._send(call.request))

    async def _list(self, paged: Paged[T]) -> list[T]:
        items: list[T] = []
        request: httpx.Request | None = paged.request
        while request is not None:
            page, request = paged.page(await self._send(request))
            items += [paged.model(item) for item in page]
        return items

    # -- one round ----------------------------------------------------------------------------

    async def _round(self) -> list[tuple[tuple[int, int], Event]]:
        """One round's events; if it fails, the poller's state is as before it (nothing half-seen)."""
        saved = {thread_id: state.copy() for thread_id, state in self._threads.items()}
        try:
            return await self._collect()
        except BaseException:
            self._threads = saved
            raise

    async def _collect(self) -> list[tuple[tuple[int, int], Event]]:
        self._token = await bearer_token(self.credential)
        if self._me is None:
            self._me = CommunicationUserIdentifier(user_of_token(self._token))
        start_us = now_us()
        first = self.rounds == 0
        out: list[tuple[tuple[int, int], Event]] = []
        threads = await self._list(ChatOperations(self.endpoint, CHAT_API_VERSION).list_chat_threads())
        listed = {item.id: item for item in threads}
        for item in threads:
            state = self._threads.get(item.id)
            if state is None:
                state = await self._discover(item, first, out)
                self._threads[item.id] = state
            if item.deleted_on is not None and not state.deleted:
                state.deleted = True
                if _us(item.deleted_on) >= state.baseline_us:
                    out.append(((_us(item.deleted_on), 0), self._thread_deleted(item)))
        for thread_id in [t for t in self._threads if t not in listed]:
            del self._threads[thread_id]  # no longer a participant: the service does not say who did it
            me = ChatParticipant(self._me)
            removed = ParticipantsRemovedEvent(
                thread_id=thread_id,
                recipient=self._me,
                event_id=f"poll:{thread_id}:removed:{start_us}",
                removed_on=to_datetime(start_us),
                participants_removed=(me,),
            )
            out.append(((start_us, 0), removed))
        live = [s for s in self._threads.values() if not s.deleted]
        scanned = await asyncio.gather(*(self._scan(state) for state in live), return_exceptions=True)
        for found in scanned:  # every scan has ended: none goes on changing state after a failure
            if isinstance(found, BaseException):
                raise found
            out += found
        self._round_start_us = start_us
        self.rounds += 1
        return out

    async def _discover(self, item: ChatThreadItem, first: bool, out: list[Any]) -> _Thread:
        if first:
            return _Thread(item.id, self.since_us, self.since_us)
        ops = ThreadOperations(self.endpoint, item.id, CHAT_API_VERSION)
        try:
            props = await self._call(ops.get_properties())
        except (ForbiddenError, NotFoundError):  # already deleted (or left) again
            return _Thread(item.id, self._round_start_us, self._round_start_us)
        created_us = _us(props.created_on)
        if created_us >= self._round_start_us:  # created since the previous round listed the threads
            participants = await self._list(ops.list_participants())
            event = ChatThreadCreatedEvent(
                thread_id=item.id,
                recipient=self._me,
                event_id=f"poll:{item.id}:created",
                version=str(created_us // 1000),
                created_on=props.created_on,
                created_by=None if props.created_by is None else ChatParticipant(props.created_by),
                properties=ChatThreadEventProperties(props.topic, props.metadata or None),
                participants=tuple(participants),
            )
            out.append(((created_us, 0), event))
            state = _Thread(item.id, created_us, created_us, created_us=created_us)
        else:
            state = _Thread(item.id, self._round_start_us, self._round_start_us, joining=True)
        state.properties = (props.topic, tuple(sorted((props.metadata or {}).items())))
        state.properties_at = time.monotonic()
        return state

    async def _scan(self, state: _Thread) -> list[tuple[tuple[int, int], Event]]:
        ops = ThreadOperations(self.endpoint, state.id, CHAT_API_VERSION)
        since = to_datetime(state.cursor_us - self._overlap_us)
        try:
            messages = await self._list(ops.list_messages(start_time=since))
            receipts = await self._list(ops.list_read_receipts())
        except (ForbiddenError, NotFoundError):  # removed or deleted: the thread list says which next round
            return []
        out: list[tuple[tuple[int, int], Event]] = []
        messages.sort(key=lambda m: int(m.sequence_id or 0))
        if state.joining:
            state.joining = False
            self._find_join(state, messages)
        topic_changed = False
        for message in messages:
            updated = max(_us(message.created_on), _us(message.edited_on), _us(message.deleted_on))
            state.cursor_us = max(state.cursor_us, updated)
            previous = state.known.get(message.id)
            if previous is not None and previous[0] == message.version:
                continue
            state.known[message.id] = (message.version, updated)
            if str(message.type) in _SYSTEM_TYPES:
                event = self._system_event(state, message)
                if event is not None:
                    topic_changed |= isinstance(event, ChatThreadPropertiesUpdatedEvent)
                    out.append(((_us(message.created_on), int(message.sequence_id or 0)), event))
            else:
                out += self._message_events(state, message)
        floor = state.cursor_us - 2 * self._overlap_us
        state.known = {k: v for k, v in state.known.items() if v[1] >= floor}
        state.flags = {k: v for k, v in state.flags.items() if k in state.known}
        out += self._receipt_events(state, receipts)
        if topic_changed or time.monotonic() - state.properties_at >= self._properties_every:
            out += await self._properties_events(state, ops, topic_changed)
        return out

    def _find_join(self, state: _Thread, messages: list[ChatMessage]) -> None:
        assert self._me is not None
        for message in reversed(messages):
            content = message.content
            if (
                str(message.type) == "participantAdded"
                and content is not None
                and any(p.identifier == self._me for p in content.participants)
            ):
                state.baseline_us = max(state.baseline_us, _us(message.created_on))
                return

    def _message_events(self, state: _Thread, m: ChatMessage) -> list[tuple[tuple[int, int], Event]]:
        received, edited_us, deleted = state.flags.get(m.id, (False, 0, False))
        seq = int(m.sequence_id or 0)
        created, edited, removed = _us(m.created_on), _us(m.edited_on), _us(m.deleted_on)
        common: dict[str, Any] = {
            "thread_id": state.id,
            "recipient": self._me,
            "id": m.id,
            "type": str(m.type),
            "created_on": m.created_on,
            "sender": m.sender,
            "sender_display_name": m.sender_display_name,
            "metadata": m.metadata or None,
        }
        text = None if m.content is None else m.content.message
        out: list[tuple[tuple[int, int], Event]] = []
        if not received and created >= state.baseline_us:
            received = True
            version = m.id if (edited or removed) else m.version
            event_id = f"poll:{state.id}:{m.id}:received"
            out.append(
                (
                    (created, seq),
                    ChatMessageReceivedEvent(**common, event_id=event_id, version=version, message=text),
                )
            )
        if edited and edited > edited_us and not removed:
            edited_us = edited
            if edited >= state.baseline_us:
                event_id = f"poll:{state.id}:{m.id}:{m.version}"
                event = ChatMessageEditedEvent(
                    **common, event_id=event_id, version=m.version, message=text, edited_on=m.edited_on
                )
                out.append(((edited, seq), event))
        if removed and not deleted:
            deleted = True
            if removed >= state.baseline_us:
                event_id = f"poll:{state.id}:{m.id}:deleted"
                gone = ChatMessageDeletedEvent(
                    **common, event_id=event_id, version=m.version, deleted_on=m.deleted_on
                )
                out.append(((removed, seq), gone))
        state.flags[m.id] = (received, edited_us, deleted)
        return out

    def _system_event(self, state: _Thread, m: ChatMessage) -> Event | None:
        created = _us(m.created_on)
        if created < state.baseline_us or m.content is None:
            return None
        if (
            state.created_us is not None
            and int(m.sequence_id or 0) <= 2
            and created - state.created_us < 5_000_000
        ):
            return None  # the creation's own system messages: chatThreadCreated said it all
        initiator = m.content.initiator
        by = None if initiator is None else ChatParticipant(initiator)
        common: dict[str, Any] = {
            "thread_id": state.id,
            "recipient": self._me,
            "event_id": f"poll:{state.id}:{m.id}",
            "version": m.version,
        }
        if str(m.type) == "participantAdded":
            return ParticipantsAddedEvent(
                **common, added_on=m.created_on, added_by=by, participants_added=m.content.participants
            )
        if str(m.type) == "participantRemoved":
            return ParticipantsRemovedEvent(
                **common, removed_on=m.created_on, removed_by=by, participants_removed=m.content.participants
            )
        metadata = dict(state.properties[1]) if state.properties else None
        return ChatThreadPropertiesUpdatedEvent(
            **common,
            updated_on=m.created_on,
            updated_by=by,
            properties=ChatThreadEventProperties(m.content.topic, metadata or None),
        )

    def _receipt_events(self, state: _Thread, receipts: list[Any]) -> list[tuple[tuple[int, int], Event]]:
        out: list[tuple[tuple[int, int], Event]] = []
        for receipt in receipts:
            if receipt.sender is None:
                continue
            reader = receipt.sender.raw_id
            seen = (receipt.chat_message_id, _us(receipt.read_on))
            if state.receipts.get(reader) == seen:
                continue
            state.receipts[reader] = seen
            if seen[1] >= state.baseline_us:
                event = ReadReceiptReceivedEvent(
                    thread_id=state.id,
                    recipient=self._me,
                    event_id=f"poll:{state.id}:read:{reader}:{receipt.chat_message_id}",
                    sender=receipt.sender,
                    chat_message_id=receipt.chat_message_id,
                    read_on=receipt.read_on,
                )
                out.append(((seen[1], 0), event))
        return out

    async def _properties_events(
        self, state: _Thread, ops: ThreadOperations, topic_changed: bool
    ) -> list[tuple[tuple[int, int], Event]]:
        try:
            props = await self._call(ops.get_properties())
        except (ForbiddenError, NotFoundError):
            return []
        state.properties_at = time.monotonic()
        snapshot = (props.topic, tuple(sorted((props.metadata or {}).items())))
        previous, state.properties = state.properties, snapshot
        if previous is None or previous == snapshot or topic_changed:
            return []  # first look, no change, or already reported from the topicUpdated message
        now = now_us()
        event = ChatThreadPropertiesUpdatedEvent(
            thread_id=state.id,
            recipient=self._me,
            event_id=f"poll:{state.id}:properties:{now}",
            updated_on=to_datetime(now),
            properties=ChatThreadEventProperties(props.topic, props.metadata or None),
        )
        return [((now, 0), event)]

    def _thread_deleted(self, item: ChatThreadItem) -> Event:
        return ChatThreadDeletedEvent(
            thread_id=item.id,
            recipient=self._me,
            event_id=f"poll:{item.id}:deleted",
            deleted_on=item.deleted_on,
        )
