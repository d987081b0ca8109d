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

Requests go through the clients' sender (:class:`chatnb.aio._sender.Sender`): answers 429 or 503 are
retried as the clients retry them (:class:`~chatnb.RetryPolicy`, honouring ``Retry-After``). A round
that still fails (retries used up, a transport error) changes nothing: what it had seen is forgotten,
the engine reports a disconnection and makes the round again after a backoff
(:class:`~chatnb._retry.Backoff`, at least the last ``Retry-After``), so its events are reported then,
once. The diffing itself (listings in, events out) is the sans-I/O :mod:`chatnb._poll_diff`.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import AsyncGenerator
from datetime import datetime

import httpx

from ._chat_ops import ChatOperations, ThreadOperations
from ._core import CHAT_API_VERSION, RetryPolicy
from ._poll_diff import Differ, Keyed, ThreadState, us
from ._retry import Backoff
from ._stream import as_backoff, open_sender
from ._time import now_us, to_datetime, to_us
from ._tokens import token_user_id
from .aio._flavour import bearer_token
from .aio._sender import Sender
from .errors import AuthenticationError, ChatError, ForbiddenError, NotFoundError, RefusedAnswerError
from .events import (
    ChatThreadCreatedEvent,
    ChatThreadEventProperties,
    Event,
    RealTimeNotificationConnected,
    RealTimeNotificationDisconnected,
)
from .models import ChatParticipant, ChatThreadItem, CommunicationUserIdentifier

__all__ = ["Poller"]

log = logging.getLogger("chatnb.realtime")

_typing_announced = False


class _RoundToken:
    """Authorises every request of a round with the token asked once at the round's start."""

    token = ""

    async def authorize(self, request: httpx.Request) -> None:
        request.headers["Authorization"] = f"Bearer {self.token}"


class Poller:
    """Polls the Chat API and yields events (see the module docstring).

    Args:
        endpoint, credential: the service and the user's ``CommunicationTokenCredential`` (or token).
        interval: seconds between rounds.
        since: report changes from this time on (default: now).
        connection_verify, transport: TLS trust and an optional ``httpx.AsyncBaseTransport``.
        overlap: seconds each round re-reads before the previous one (late commits, clock skew).
        properties_every: seconds between properties checks of a thread without a topic change.
        concurrency: requests in flight at once.
        backoff: the waits after a failed round, a :class:`~chatnb._retry.Backoff` or
            ``(initial, maximum)`` seconds (jittered).
        retry_policy: how each request retries 429/503 (default: as the clients).
        timeout: seconds each request may take in all (connect, send, read its answer), as the clients'
            ``timeout``; a server that does not answer in time fails the round, which is made again.

    The listings it reads are held to the clients' bounds (a page at most its page size, ``nextLink``
    only to the endpoint and never twice): a :class:`~chatnb.RefusedAnswerError` ends the poller (it is
    raised; not retried). The waits a server asks for are cut to :data:`~chatnb._retry.MAX_SERVER_WAIT`.
    """

    def __init__(
        self,
        endpoint: str,
        credential: object,
        *,
        interval: float = 1.0,
        since: datetime | None = None,
        connection_verify: bool | str | ssl.SSLContext | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        overlap: float = 2.0,
        properties_every: float = 5.0,
        concurrency: int = 8,
        backoff: Backoff | tuple[float, float] = (0.5, 30.0),
        retry_policy: RetryPolicy | None = None,
        timeout: float | None = 30.0,
    ) -> None:
        self.endpoint = endpoint
        self.credential = credential
        self.interval = interval
        self.since_us = now_us() if since is None else to_us(since)
        self._verify = connection_verify
        self._transport = transport
        self._overlap_us = int(overlap * 1_000_000)
        self._properties_every = properties_every
        self._concurrency = concurrency
        self._backoff = as_backoff(backoff)
        self._retry = retry_policy or RetryPolicy()
        self._timeout = httpx.Timeout(timeout)
        self._threads: dict[str, ThreadState] = {}
        self._auth = _RoundToken()
        self._sender: Sender | None = None
        self._diff: Differ | None = None
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
        sender = open_sender(
            self.endpoint,
            self._auth,
            self._verify,
            self._transport,
            self._timeout,
            retry_policy=self._retry,
            limit=asyncio.Semaphore(self._concurrency),
        )
        async with sender.http:
            self._sender = sender
            while True:
                started = time.monotonic()
                asked: float | None = None
                try:
                    events = await self._round()
                except RefusedAnswerError:  # the server broke the listings' bounds: not a passing fault
                    raise
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
                    delay = self._backoff.delay(attempt, asked)
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

    def _running(self) -> tuple[Sender, Differ]:
        if self._sender is None or self._diff is None:
            raise RuntimeError("the poller sends only while it is iterated")
        return self._sender, self._diff

    # -- one round ----------------------------------------------------------------------------

    async def _round(self) -> list[Keyed]:
        """One round's events; if it fails, the poller's state is as before it (nothing half-seen)."""
        saved = {thread_id: state.copy() for thread_id, state in self._threads.items()}
        try:
            return await self._collect()
        except BaseException:
            self._threads = saved
            raise

    async def _collect(self) -> list[Keyed]:
        self._auth.token = await bearer_token(self.credential)
        if self._diff is None:
            me = CommunicationUserIdentifier(token_user_id(self._auth.token))
            self._diff = Differ(me, self._overlap_us)
        sender, diff = self._running()
        start_us = now_us()
        first = self.rounds == 0
        out: list[Keyed] = []
        threads = await sender.collect(ChatOperations(self.endpoint, CHAT_API_VERSION).list_chat_threads())
        listed = {item.id: item for item in threads}
        for item in threads:
            state = self._threads.get(item.id)
            if state is None:
                state = await self._discover(item, first, out)
                self._threads[item.id] = state
            if item.deleted_on is not None and not state.deleted:
                state.deleted = True
                if us(item.deleted_on) >= state.baseline_us:
                    out.append(((us(item.deleted_on), 0), diff.thread_deleted(item)))
        for thread_id in [t for t in self._threads if t not in listed]:
            del self._threads[thread_id]  # no longer a participant: the service does not say who did it
            out.append(diff.removed(thread_id, start_us))
        live = [s for s in self._threads.values() if not s.deleted]
        scanned = await asyncio.gather(*(self._scan(state) for state in live), return_exceptions=True)
        for found in scanned:  # every scan has ended: none goes on changing state after a failure
            if isinstance(found, BaseException):
                raise found
            out += found
        self._round_start_us = start_us
        self.rounds += 1
        return out

    async def _discover(self, item: ChatThreadItem, first: bool, out: list[Keyed]) -> ThreadState:
        if first:
            return ThreadState(item.id, self.since_us, self.since_us)
        sender, diff = self._running()
        ops = ThreadOperations(self.endpoint, item.id, CHAT_API_VERSION)
        try:
            props = await sender.call(ops.get_properties())
        except (ForbiddenError, NotFoundError):  # already deleted (or left) again
            return ThreadState(item.id, self._round_start_us, self._round_start_us)
        created_us = us(props.created_on)
        if created_us >= self._round_start_us:  # created since the previous round listed the threads
            participants = await sender.collect(ops.list_participants())
            event = ChatThreadCreatedEvent(
                thread_id=item.id,
                recipient=diff.me,
                event_id=f"poll:{item.id}:created",
                version=str(created_us // 1000),
                created_on=props.created_on,
                created_by=None if props.created_by is None else ChatParticipant(props.created_by),
                properties=ChatThreadEventProperties(props.topic, props.metadata or None),
                participants=tuple(participants),
            )
            out.append(((created_us, 0), event))
            state = ThreadState(item.id, created_us, created_us, created_us=created_us)
        else:
            state = ThreadState(item.id, self._round_start_us, self._round_start_us, joining=True)
        state.remember_properties(props)
        return state

    async def _scan(self, state: ThreadState) -> list[Keyed]:
        sender, diff = self._running()
        ops = ThreadOperations(self.endpoint, state.id, CHAT_API_VERSION)
        since = to_datetime(state.cursor_us - self._overlap_us)
        try:
            messages = await sender.collect(ops.list_messages(start_time=since))
            receipts = await sender.collect(ops.list_read_receipts())
        except (ForbiddenError, NotFoundError):  # removed or deleted: the thread list says which next round
            return []
        out, topic_changed = diff.messages(state, messages)
        out += diff.receipts(state, receipts)
        if topic_changed or time.monotonic() - state.properties_at >= self._properties_every:
            try:
                props = await sender.call(ops.get_properties())
            except (ForbiddenError, NotFoundError):
                return out
            out += diff.properties(state, props, topic_changed)
        return out
