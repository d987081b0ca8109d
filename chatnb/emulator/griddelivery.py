"""Event Grid delivery: the emulator's chat events POSTed to webhooks, as Azure Event Grid delivers them.

:class:`GridDelivery` only *reads* what the API wrote: after each commit the store wakes its thread (a flag
set, nothing more), which reads the new journal entries and their recipients and hands them to the
delivery process (:mod:`chatnb.emulator.gridworker`), where they are rendered
(:mod:`chatnb.emulator.gridevents`), queued for each subscription (:mod:`chatnb.emulator.gridsubs`) and
sent. So delivery never blocks an API request, and its CPU work runs in another process: a slow or dead
webhook delays only its own subscription's queue. The process starts with the first subscription.

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

import itertools
import logging
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from .gridevents import JOURNAL_TYPES, JournalEntry
from .gridsubs import EventGridSubscription, SubscriptionError
from .gridworker import read_message, write_message
from .store import Store

__all__ = ["GridDelivery"]

log = logging.getLogger("chatnb.emulator.eventgrid")
JOURNAL_BATCH = 500
WORKER = "from chatnb.emulator.gridworker import main; main()"  # not -m: the package already imports it


class GridDelivery:
    """Delivers the store's chat events to Event Grid subscriptions, from a process of its own.

    Args:
        store: the emulator's store (read only here).
        topic: the ``topic`` of every event (the resource's id).
        validation_base: the emulator's base URL, for the ``validationUrl`` of the handshake.
        retry_scale: multiplies every retry wait, the event time to live and the dead-letter delay.
        dead_letter_dir: where undeliverable events are written (``None``: dropped and counted).
        outbox_size: the most events one subscription may hold waiting; more are dropped and counted.
        delivery_timeout: seconds a webhook has to answer an attempt.
        concurrency: deliveries one subscription may have in flight at once.

    Raises:
        ValueError: for a ``retry_scale`` that is not positive.
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
        self._outbox_size = outbox_size
        self.concurrency = concurrency
        self._timeout = delivery_timeout
        self._wanted: dict[str, tuple[frozenset[str], int]] = {}  # name -> (types, from event)
        self._snapshot: list[dict[str, Any]] = []
        self._handled = 0  # the last entry the worker handled
        self._busy = False
        self._cursor = store.last_event_id  # the last entry read here
        self._sent = self._cursor  # the last entry sent to the worker
        self._threads: dict[str, int] = {}
        self._process: subprocess.Popen[bytes] | None = None
        self._replies: dict[int, Any] = {}
        self._requests = itertools.count(1)
        self._changed = threading.Condition()
        self._send_lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = False
        self._threads_running: list[threading.Thread] = []

    def __repr__(self) -> str:
        return f"<GridDelivery {len(self._wanted)} subscriptions, scale {self.retry_scale:g}>"

    @property
    def outbox_size(self) -> int:
        """The most events one subscription may hold waiting (settable while running)."""
        return self._outbox_size

    @outbox_size.setter
    def outbox_size(self, value: int) -> None:
        self._outbox_size = int(value)
        if self._process is not None:
            self._send(("outbox", self._outbox_size))

    # -- the worker process --------------------------------------------------------------------------

    def start(self) -> None:
        """Start the delivery process and its two threads here (once)."""
        if self._process is not None:
            return
        self._process = subprocess.Popen(
            [sys.executable, "-c", WORKER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            bufsize=0,  # unbuffered: no stream lock a daemon thread could hold at interpreter shutdown
        )
        config = {
            "topic": self.topic,
            "retry_scale": self.retry_scale,
            "dead_letter_dir": None if self.dead_letter_dir is None else str(self.dead_letter_dir),
            "outbox_size": self._outbox_size,
            "timeout": self._timeout,
            "concurrency": self.concurrency,
        }
        self._send(config)
        answers = self._process.stdout
        if answers is None:
            raise RuntimeError("the Event Grid delivery process has no output pipe")
        for target, args, name in (
            (self._listen, (answers,), "chatnb-eventgrid-out"),
            (self._read_journal, (), "chatnb-eventgrid"),
        ):
            thread = threading.Thread(target=target, args=args, name=name, daemon=True)
            thread.start()
            self._threads_running.append(thread)

    def _send(self, message: Any) -> None:
        process = self._process
        if process is None or process.stdin is None:
            return
        with self._send_lock:
            try:
                write_message(process.stdin, message)
            except (BrokenPipeError, ValueError):  # the worker is gone (stopping, or killed)
                if not self._stopping:
                    log.warning("the Event Grid delivery process is gone; nothing more is delivered")

    def _listen(self, answers: IO[bytes]) -> None:
        while (message := read_message(answers)) is not None:
            with self._changed:
                if message[0] == "reply":
                    self._replies[message[1]] = message[2]
                else:
                    _, self._snapshot, self._handled, self._busy = message
                self._changed.notify_all()
        with self._changed:
            self._busy = False
            self._changed.notify_all()

    def _request(self, message: tuple[Any, ...], timeout: float = 120.0) -> Any:
        self.start()
        request = next(self._requests)
        self._send((message[0], request, *message[1:]))
        deadline = time.monotonic() + timeout
        with self._changed:
            while request not in self._replies:
                if time.monotonic() > deadline or self._process is None or self._process.poll() is not None:
                    raise SubscriptionError("the Event Grid delivery process did not answer")
                self._changed.wait(0.1)
            return self._replies.pop(request)

    def notify(self, last_event_id: int = 0) -> None:
        """The store committed: wake the journal reader (a store listener; safe from any thread)."""
        self._wake.set()

    def stop(self) -> None:
        """Stop delivering (what is still queued is dropped) and end the process and the threads."""
        self._stopping = True
        self._wake.set()
        process, self._process = self._process, None
        if process is not None:
            if process.stdin is not None:
                with self._send_lock:
                    try:
                        write_message(process.stdin, ("stop",))
                        process.stdin.close()
                    except (BrokenPipeError, ValueError):
                        pass
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
            if process.stdout is not None:
                process.stdout.close()
        for thread in self._threads_running:
            thread.join(10)
        self._threads_running.clear()

    # -- subscriptions -------------------------------------------------------------------------------

    def subscriptions(self) -> list[dict[str, Any]]:
        """Every subscription, its ``provisioningState`` and its delivery ``statistics``."""
        with self._changed:
            return [dict(s) for s in self._snapshot if s["name"] in self._wanted]

    def get(self, name: str) -> dict[str, Any] | None:
        """One subscription as :meth:`subscriptions` lists it, or ``None``."""
        return next((s for s in self.subscriptions() if s["name"] == name), None)

    def add(self, subscription: str | dict[str, Any] | EventGridSubscription) -> dict[str, Any]:
        """Add (or replace) a subscription (a spec, a dict or an :class:`EventGridSubscription`); it
        receives the events committed from now on, once its endpoint passes the validation handshake
        (done before this returns).

        Raises:
            SubscriptionError: for an invalid subscription, or an endpoint that does not complete the
                handshake (the subscription is kept, ``Failed``, so that listing it shows why).
        """
        sub = EventGridSubscription.coerce(subscription)
        from_event = self.store.last_event_id
        with self._changed:
            if not self._wanted:  # nothing was read for anyone: start from now
                self._cursor = self._sent = max(self._cursor, from_event)
            self._wanted[sub.name] = (sub.wanted, from_event)
        url = f"{self.validation_base}/chatnb/eventGridSubscriptions/{sub.name}/:validate?code="
        state: dict[str, Any] = self._request(("add", sub, from_event, url))
        if state["provisioningState"] == "Failed":
            error = state["statistics"]["lastError"]
            raise SubscriptionError(f"webhook validation handshake failed for {sub.endpoint}: {error}")
        self._wake.set()
        return state

    def remove(self, name: str) -> bool:
        """Remove a subscription (what it still had queued is dropped); whether there was one."""
        with self._changed:
            known = self._wanted.pop(name, None) is not None
        if known:
            self._send(("remove", name))
        return known

    def validate_manually(self, name: str, code: str) -> bool:
        """Complete the asynchronous handshake (a GET of the ``validationUrl``); whether the code matched."""
        if name not in self._wanted:
            return False
        ok = bool(self._request(("validate", name, code)))
        self._wake.set()
        return ok

    # -- journal -> worker ---------------------------------------------------------------------------

    def _read_journal(self) -> None:
        while not self._stopping:
            self._wake.wait()
            self._wake.clear()
            try:
                while not self._stopping and self._read_some() == JOURNAL_BATCH:
                    pass
            except Exception:  # a bug or a closed store must not end the thread silently
                if not self._stopping:
                    log.exception("Event Grid delivery failed to read the journal")
            with self._changed:
                self._changed.notify_all()

    def _read_some(self) -> int:
        rows = self.store.journal_after(self._cursor, JOURNAL_BATCH)
        if rows and rows[0][0] > self._cursor + 1:  # the bounded journal dropped entries before this read
            lost = rows[0][0] - self._cursor - 1
            log.warning("Event Grid delivery fell %d journal entries behind; they are lost to it", lost)
            self._send(("lost", lost))
        with self._changed:
            wanted = list(self._wanted.values())
        for event_id, type_, thread_id, created_on, visible_from, payload in rows:
            pair = JOURNAL_TYPES.get(type_)
            interested = [w for w, start in wanted if start < event_id] if pair else []
            if pair and any(pair[0] in w or pair[1] in w for w in interested):
                created = self._threads.get(thread_id)
                if created is None:
                    thread = self.store.get_thread(thread_id)
                    created = self._threads[thread_id] = thread.created_on if thread else created_on
                users = any(pair[0] in w for w in interested)
                recipients = self.store.recipients(thread_id, event_id, visible_from) if users else []
                entry = JournalEntry(event_id, type_, thread_id, payload, created_on, created)
                self._send(("entry", entry, recipients))
                self._sent = event_id
            self._cursor = event_id
        return len(rows)

    # -- waiting for delivery ------------------------------------------------------------------------

    def _read_up(self) -> bool:
        return self._cursor >= self.store.last_event_id and self._handled >= self._sent

    def idle(self) -> bool:
        """Whether every committed event has been read and handed on, and no subscription has anything
        waiting, being retried or being dead-lettered."""
        with self._changed:
            return self._read_up() and not self._busy

    def wait_read(self, timeout: float = 30.0) -> bool:
        """Wait until every event committed so far has been read and queued (or dropped); whether it was."""
        return self._wait(self._read_up, timeout)

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Wait until :meth:`idle` (retries and dead-letter writes included); whether it got there."""
        return self._wait(lambda: self._read_up() and not self._busy, timeout)

    def _wait(self, done: Callable[[], bool], timeout: float) -> bool:
        if not self._wanted:
            return True
        deadline = time.monotonic() + timeout
        with self._changed:
            while not done():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(min(left, 0.05))
        return True
