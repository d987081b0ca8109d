"""Event Grid delivery: the emulator's chat events POSTed to webhooks, as Azure Event Grid delivers them.

:class:`GridDelivery` runs in a thread of its own with its own event loop, and only *reads* what the API
wrote: after each commit the store wakes it (a flag set, nothing more), and it reads the new journal
entries, renders them (:mod:`chatnb.emulator.gridevents`) and queues them for each subscription
(:mod:`chatnb.emulator.gridsubs`). So delivery never blocks or slows an API request: a slow or dead webhook
delays only its own subscription's queue.

**The outbox is bounded**: each subscription holds at most ``outbox_size`` events waiting for delivery
or a retry (default 10,000). An event that finds it full is dropped and counted (``dropped`` in the
subscription's statistics, and a warning in the log): the API is never held up for a webhook. Entries the
bounded journal dropped before delivery read them count as dropped too.

As Event Grid does:

- **validation** first: in the ``eventgrid`` schema a ``Microsoft.EventGrid.SubscriptionValidationEvent``
  (``aeg-event-type: SubscriptionValidation``) with a ``validationCode``, answered ``{"validationResponse":
  code}``, or completed later with a GET of its ``validationUrl`` (the subscription is
  ``AwaitingManualAction`` until then); in the ``cloudevents`` schema the CloudEvents webhook
  abuse-protection ``OPTIONS`` with ``WebHook-Request-Origin: eventgrid.azure.net``, answered with a
  ``WebHook-Allowed-Origin`` of that origin or ``*``. A subscription that fails it is ``Failed``, and gets
  nothing;
- **headers**: ``aeg-event-type: Notification``, ``aeg-subscription-name`` (upper case, as Event Grid
  sends it), ``aeg-delivery-count`` (0 on the first attempt), ``aeg-data-version`` and
  ``aeg-metadata-version`` (for ``cloudevents`` the spec version, and no data version);
- **batches and retries** as :mod:`chatnb.emulator.gridoutbox` says (up to ``max_events_per_batch``
  waiting events within ``preferred_batch_size_kb``; 10 s, 30 s, 1 min ... then hourly; never after 400,
  401, 403, 413). ``retry_scale`` multiplies every wait, the time to live and the dead-letter delay:
  ``retry_scale=0.001`` turns the 10 s first retry into 10 ms, for tests. The ``eventgrid`` schema is a
  JSON array; ``cloudevents`` one ``application/cloudevents+json`` event, or an
  ``application/cloudevents-batch+json`` array when batching is configured;
- **dead-letter**: an undeliverable event is written, 5 minutes (scaled) after its last attempt, to
  ``dead_letter_dir/<subscription>/<time>-<event id>.json`` (folders 0700, files 0600) with the fields
  Event Grid adds (``deadLetterReason``, ``deliveryAttempts``, ``lastDeliveryOutcome``,
  ``lastHttpStatusCode``, ``publishTime``, ``lastDeliveryAttemptTime``; all lower case in the CloudEvents
  schema). Without a ``dead_letter_dir`` it is dropped, and counted.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..location import LocationError
from .gridevents import JOURNAL_TYPES, JournalEntry, render
from .gridhttp import Batch, GridSender, dead_letter_record, wall_us, write_dead_letter
from .gridoutbox import DEAD_LETTER_DELAY_S, SubscriptionState, give_up, retry_delay
from .gridsubs import EventGridSubscription, SubscriptionError
from .store import Store

__all__ = ["GridDelivery"]

log = logging.getLogger("chatnb.emulator.eventgrid")


class GridDelivery:
    """Delivers the store's chat events to Event Grid subscriptions, from a thread of its own.

    Args:
        store: the emulator's store (read only here).
        topic: the ``topic`` of every event (the resource's id).
        validation_base: the emulator's base URL, for the ``validationUrl`` of the handshake.
        retry_scale: multiplies every retry wait, the event time to live and the dead-letter delay.
        dead_letter_dir: where undeliverable events are written (``None``: dropped and counted).
        outbox_size: the most events one subscription may hold waiting; more are dropped and counted.
        delivery_timeout: seconds a webhook has to answer an attempt.
        concurrency: deliveries one subscription may have in flight at once.
    """

    def __init__(
        self,
        store: Store,
        *,
        topic: str,
        validation_base: str = "",
        retry_scale: float = 1.0,
        dead_letter_dir: Path | None = None,
        outbox_size: int = 10_000,
        delivery_timeout: float = 30.0,
        concurrency: int = 16,
    ) -> None:
        if not retry_scale > 0:
            raise ValueError(f"retry_scale must be positive, not {retry_scale!r}")
        self.store = store
        self.topic = topic
        self.validation_base = validation_base
        self.retry_scale = float(retry_scale)
        self.dead_letter_dir = dead_letter_dir
        self.outbox_size = outbox_size
        self.concurrency = concurrency
        self._timeout = delivery_timeout
        self._subs: dict[str, SubscriptionState] = {}
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._wake: asyncio.Event | None = None
        self._stopping = False
        self._cursor = store.last_event_id
        self._threads: dict[str, int] = {}
        self._sender: GridSender | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._dead_letters = 0  # dead-letter writes decided and not yet done
        self._idle = threading.Condition()

    def __repr__(self) -> str:
        return f"<GridDelivery {len(self._subs)} subscriptions, scale {self.retry_scale:g}>"

    # -- the thread ------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the delivery thread (once)."""
        if self._thread is not None:
            return
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), name="chatnb-eventgrid", daemon=True)
        self._thread.start()
        ready.wait(10)

    def _run(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main(ready))
        finally:
            loop.close()

    async def _main(self, ready: threading.Event) -> None:
        self._wake = asyncio.Event()
        async with GridSender.open(self.topic, self._timeout, self.concurrency) as sender:
            self._sender = sender
            ready.set()
            while not self._stopping:
                await self._wake.wait()
                self._wake.clear()
                if self._stopping:
                    break
                try:
                    await self._read_journal()
                    self._pump()
                except Exception:  # a bug here must not end delivery for good
                    log.exception("Event Grid delivery failed to read the journal")
                self._changed()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def notify(self, last_event_id: int = 0) -> None:
        """The store committed: wake the delivery thread (a store listener; safe from any thread)."""
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None and not loop.is_closed():
            loop.call_soon_threadsafe(wake.set)

    def stop(self) -> None:
        """Stop delivering (what is still queued is dropped) and end the thread."""
        self._stopping = True
        self.notify()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

    def _call(self, coro: Any, timeout: float = 60.0) -> Any:
        """Run ``coro`` on the delivery loop and wait for its result (from another thread)."""
        self.start()
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    # -- subscriptions ---------------------------------------------------------------------------

    def subscriptions(self) -> list[dict[str, Any]]:
        """Every subscription, its provisioning state and its delivery statistics."""
        with self._lock:
            return [state.to_json() for state in self._subs.values()]

    def get(self, name: str) -> SubscriptionState | None:
        with self._lock:
            return self._subs.get(name)

    def add(self, subscription: str | dict[str, Any] | EventGridSubscription) -> dict[str, Any]:
        """Add (or replace) a subscription (a spec, a dict or an :class:`EventGridSubscription`); it
        receives the events committed from now on, once its endpoint passes the validation handshake
        (done here, before returning).

        Raises:
            SubscriptionError: for an invalid subscription, or an endpoint that does not complete the
                handshake (the subscription is kept, ``Failed``, so that listing it shows why).
        """
        subscription = EventGridSubscription.coerce(subscription)
        state = SubscriptionState(subscription, from_event=self.store.last_event_id)
        self._call(self._add(state))
        if state.provisioning == "Failed":
            raise SubscriptionError(
                f"webhook validation handshake failed for {subscription.endpoint}: {state.last_error}"
            )
        self.notify()
        return state.to_json()

    def remove(self, name: str) -> bool:
        """Remove a subscription (what it still had queued is dropped); whether there was one."""
        with self._lock:
            return self._subs.pop(name, None) is not None

    def validate_manually(self, name: str, code: str) -> bool:
        """Complete the asynchronous handshake (a GET of the ``validationUrl``); whether the code matched."""
        with self._lock:
            state = self._subs.get(name)
            if state is None or state.provisioning != "AwaitingManualAction" or code != state.validation_code:
                return False
            state.provisioning = "Succeeded"
        self.notify()  # what waited for the validation goes now
        return True

    async def _add(self, state: SubscriptionState) -> None:
        """Register ``state`` and run its handshake (on the delivery loop, between journal reads)."""
        with self._lock:
            if not self._subs:  # nothing read the journal for anyone: start from now
                self._cursor = max(self._cursor, state.from_event)
            self._subs[state.subscription.name] = state
        await self._validate(state)

    async def _validate(self, state: SubscriptionState) -> None:
        assert self._sender is not None
        sub = state.subscription
        url = f"{self.validation_base}/chatnb/eventGridSubscriptions/{sub.name}/:validate?code="
        outcome, error = await self._sender.handshake(sub, state.validation_code, url + state.validation_code)
        with self._lock:
            state.provisioning, state.last_error = outcome, error
        if outcome == "Failed":
            log.warning("Event Grid subscription %s: validation failed: %s", sub.name, error)

    # -- journal -> outboxes -----------------------------------------------------------------------

    async def _read_journal(self) -> None:
        while True:
            rows = await asyncio.to_thread(self.store.journal_after, self._cursor, 500)
            if not rows:
                return
            oldest = rows[0][0]
            if oldest > self._cursor + 1 and self._cursor:  # the bounded journal dropped entries
                self._count_lost(oldest - self._cursor - 1)
            with self._lock:
                subs = [s for s in self._subs.values() if s.provisioning != "Failed"]
            for event_id, type_, thread_id, created_on, visible_from, payload in rows:
                interested = [s for s in subs if s.from_event < event_id]
                if interested:
                    await self._fan_out(
                        interested, event_id, type_, thread_id, created_on, visible_from, payload
                    )
                self._cursor = event_id  # after its events are queued: wait_read() relies on it
            if len(rows) < 500:
                return

    def _count_lost(self, entries: int) -> None:
        with self._lock:
            for state in self._subs.values():
                state.dropped += entries
        log.warning("Event Grid delivery fell %d journal entries behind; they are lost to it", entries)

    async def _fan_out(
        self,
        subs: list[SubscriptionState],
        event_id: int,
        type_: str,
        thread_id: str,
        created_on: int,
        visible_from: int | None,
        payload: dict[str, Any],
    ) -> None:
        pair = JOURNAL_TYPES.get(type_)
        if pair is None or not any(
            pair[0] in s.subscription.wanted or pair[1] in s.subscription.wanted for s in subs
        ):
            return
        created = self._threads.get(thread_id)
        if created is None:
            thread = await asyncio.to_thread(self.store.get_thread, thread_id)
            created = self._threads[thread_id] = thread.created_on if thread is not None else created_on
        entry = JournalEntry(event_id, type_, thread_id, payload, created_on, created)
        recipients: list[str] = []
        if any(pair[0] in s.subscription.wanted for s in subs):
            recipients = await asyncio.to_thread(self.store.recipients, thread_id, event_id, visible_from)
        for state in subs:
            events = render(entry, recipients, self.topic, state.subscription.wanted)
            with self._lock:
                dropped = state.offer(events, self.outbox_size)
            if dropped:
                log.warning(
                    "Event Grid subscription %s: outbox full, %d events dropped",
                    state.subscription.name,
                    dropped,
                )

    # -- outboxes -> webhooks ----------------------------------------------------------------------

    def _pump(self) -> None:
        """Start deliveries for every validated subscription with events waiting (on the delivery loop)."""
        now = time.monotonic()
        with self._lock:
            states = [s for s in self._subs.values() if s.provisioning == "Succeeded"]
        for state in states:
            while state.flights < self.concurrency:
                batch = self._next_batch(state, now)
                if batch is None:
                    break
                task = asyncio.ensure_future(self._deliver(state, batch))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    def _next_batch(self, state: SubscriptionState, now: float) -> Batch | None:
        with self._lock:
            return state.take_batch(now)

    async def _deliver(self, state: SubscriptionState, batch: Batch) -> None:
        assert self._sender is not None
        sub = state.subscription
        status, outcome = await self._sender.post(sub, batch)
        batch.attempts += 1
        batch.last_attempt_us, batch.last_status, batch.last_outcome = wall_us(), status, outcome
        reason = None
        with self._lock:
            state.attempts += 1
            state.flights -= 1
            state.in_flight -= len(batch.events)
            if status is not None and 200 <= status <= 204:
                state.delivered += len(batch.events)
            else:
                state.failed_attempts += 1
                state.last_error = f"{status or 'no answer'} {outcome}"
                reason = give_up(sub, batch, status, self.retry_scale)
                if reason is None:
                    delay = retry_delay(batch.attempts, status, self.retry_scale)
                    state.schedule_retry(batch, delay)
                    assert self._loop is not None
                    self._loop.call_later(delay, self._pump)
                else:
                    state.dead_lettered += len(batch.events)
                    self._dead_letters += 1
        if reason is not None:
            await asyncio.sleep(DEAD_LETTER_DELAY_S * self.retry_scale)
            await asyncio.to_thread(self._dead_letter, sub, batch, reason)
        self._changed()
        self._pump()

    def _dead_letter(self, sub: EventGridSubscription, batch: Batch, reason: str) -> None:
        cloud = sub.schema == "cloudevents"
        try:
            if self.dead_letter_dir is not None:
                for event in batch.events:
                    write_dead_letter(
                        self.dead_letter_dir, sub.name, dead_letter_record(event, batch, reason, cloud)
                    )
            else:
                log.warning(
                    "Event Grid subscription %s: %d undeliverable events dropped (%s; no dead-letter folder)",
                    sub.name,
                    len(batch.events),
                    reason,
                )
        except LocationError as exc:
            log.warning("Event Grid subscription %s: cannot dead-letter: %s", sub.name, exc)
        finally:
            with self._lock:
                self._dead_letters -= 1

    # -- waiting for delivery ----------------------------------------------------------------------

    def _changed(self) -> None:
        with self._idle:
            self._idle.notify_all()

    def idle(self) -> bool:
        """Whether every committed event has been read, and every subscription has nothing waiting."""
        with self._lock:
            busy = any(s.pending() for s in self._subs.values() if s.provisioning == "Succeeded")
            return not busy and not self._dead_letters and self._cursor >= self.store.last_event_id

    def wait_read(self, timeout: float = 30.0) -> bool:
        """Wait until every event committed so far has been read and queued (or dropped); whether it was."""
        return self._wait(lambda: self._cursor >= self.store.last_event_id, timeout)

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Wait until :meth:`idle` (retries and dead-letter writes included); whether it got there."""
        return self._wait(self.idle, timeout)

    def _wait(self, done: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._idle:
            while not done():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(min(left, 0.05))
        return True
