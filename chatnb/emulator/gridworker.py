"""The Event Grid delivery process: renders, batches, sends, retries and dead-letters, away from the API.

:class:`~chatnb.emulator.griddelivery.GridDelivery` starts it (a Python process running :func:`main`)
when the first subscription is added, and talks to it over its standard input and output: length-prefixed
pickles (:func:`write_message`, :func:`read_message`), between two processes of the same program.
In: a configuration, then commands (``add``, ``remove``, ``validate``, ``entry``, ``lost``, ``outbox``,
``stop``); out: replies to ``add``/``validate`` and snapshots of every subscription's state and
statistics. The process ends at ``stop`` or when its input closes (its parent went away).

Why a process: delivering a message to a thread of 50 members is 50 rendered events and 50 HTTP
exchanges. In the emulator's own process that CPU work holds the interpreter lock the API needs, and the
API's send latency grew by several times while delivering (``bench/bench_eventgrid.py``); here it runs
on another core, and the API's process only reads the journal and writes a pipe.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pickle
import signal
import struct
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

from ..location import LocationError
from .gridevents import JournalEntry, render
from .gridhttp import Batch, GridSender, dead_letter_record, wall_us, write_dead_letter
from .gridoutbox import DEAD_LETTER_DELAY_S, SubscriptionState, give_up, retry_delay
from .gridsubs import EventGridSubscription

__all__ = ["Worker", "main", "read_message", "write_message"]

log = logging.getLogger("chatnb.emulator.eventgrid")
_HEADER = struct.Struct("!I")
SNAPSHOT_S = 0.005  # at most one snapshot every 5 ms while busy


def write_message(stream: IO[bytes], message: Any) -> None:
    """Write one length-prefixed pickle, whole, and flush (buffered or raw streams alike)."""
    raw = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    view = memoryview(_HEADER.pack(len(raw)) + raw)
    while view:
        written = stream.write(view)
        view = view[written if written is not None else len(view) :]
    stream.flush()


def _read_exactly(stream: IO[bytes], size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = stream.read(left)
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read_message(stream: IO[bytes]) -> Any:
    """Read one message (raw streams may return short reads); ``None`` at the end of the stream."""
    head = _read_exactly(stream, _HEADER.size)
    if len(head) < _HEADER.size:
        return None
    (size,) = _HEADER.unpack(head)
    raw = _read_exactly(stream, size)
    return None if len(raw) < size else pickle.loads(raw)  # trusted: our own parent process wrote it


class Worker:
    """The delivery engine of the worker process (everything runs on its event loop).

    Args:
        config: ``topic``, ``retry_scale``, ``dead_letter_dir``, ``outbox_size``, ``timeout``,
            ``concurrency`` (see :class:`~chatnb.emulator.griddelivery.GridDelivery`).
        out: where replies and snapshots go.
    """

    def __init__(self, config: dict[str, Any], out: IO[bytes]) -> None:
        self.topic: str = config["topic"]
        self.retry_scale = float(config["retry_scale"])
        folder = config.get("dead_letter_dir")
        self.dead_letter_dir = None if folder is None else Path(folder)
        self.outbox_size = int(config["outbox_size"])
        self.concurrency = int(config["concurrency"])
        self.timeout = float(config["timeout"])
        self.out = out
        self.subs: dict[str, SubscriptionState] = {}
        self.entries = 0  # the last journal entry handled
        self.dead_letters = 0  # dead-letter writes decided and not done
        self.loop = asyncio.get_running_loop()
        self.stopped = asyncio.Event()
        self._sender: GridSender | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._snapshot_due = False

    async def run(self, stdin: IO[bytes]) -> None:
        async with GridSender.open(self.topic, self.timeout) as sender:
            self._sender = sender
            threading.Thread(
                target=self._read, args=(stdin,), name="chatnb-eventgrid-in", daemon=True
            ).start()
            await self.stopped.wait()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _read(self, stdin: IO[bytes]) -> None:
        while (message := read_message(stdin)) is not None:
            self.loop.call_soon_threadsafe(self.handle, message)
        self.loop.call_soon_threadsafe(self.stopped.set)

    def _spawn(self, coro: Any) -> None:
        task = self.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- commands ----------------------------------------------------------------------------------

    def handle(self, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "entry":
            self._entry(message[1], message[2])
        elif kind == "add":
            _, request, sub, from_event, validation_url = message
            state = SubscriptionState(sub, from_event=from_event)
            self.subs[sub.name] = state  # now, so that the entries after this command reach it
            self._spawn(self._validate(request, state, validation_url))
            return
        elif kind == "remove":
            self.subs.pop(message[1], None)
        elif kind == "validate":
            _, request, name, code = message
            waiting = self.subs.get(name)
            ok = waiting is not None and waiting.provisioning == "AwaitingManualAction"
            if waiting is not None and ok and code == waiting.validation_code:
                waiting.provisioning = "Succeeded"
            else:
                ok = False
            self._snapshot()
            write_message(self.out, ("reply", request, ok))
        elif kind == "lost":
            for state in self.subs.values():
                state.dropped += message[1]
        elif kind == "outbox":
            self.outbox_size = int(message[1])
        elif kind == "stop":
            self.stopped.set()
            return
        self._pump()
        self._changed()

    @property
    def sender(self) -> GridSender:
        """The sender of :meth:`run` (there is none before it starts)."""
        if self._sender is None:
            raise RuntimeError("the Event Grid worker sends nothing before run()")
        return self._sender

    async def _validate(self, request: int, state: SubscriptionState, validation_url: str) -> None:
        sub, code = state.subscription, state.validation_code
        state.provisioning, state.last_error = await self.sender.handshake(sub, code, validation_url + code)
        self._snapshot()  # a failure is the parent's to report (it raises, or logs it once)
        write_message(self.out, ("reply", request, state.to_json()))
        self._pump()

    def _entry(self, entry: JournalEntry, recipients: list[str]) -> None:
        self.entries = max(self.entries, entry.event_id)
        for state in self.subs.values():
            if state.provisioning == "Failed" or state.from_event >= entry.event_id:
                continue
            dropped = state.offer(
                render(entry, recipients, self.topic, state.subscription.wanted), self.outbox_size
            )
            if dropped:
                log.warning(
                    "Event Grid subscription %s: outbox full, %d events dropped",
                    state.subscription.name,
                    dropped,
                )

    # -- outboxes -> webhooks ----------------------------------------------------------------------

    def _pump(self) -> None:
        now = time.monotonic()
        for state in list(self.subs.values()):
            if state.provisioning != "Succeeded":
                continue
            while state.flights < self.concurrency:
                batch = state.take_batch(now)
                if batch is None:
                    break
                self._spawn(self._deliver(state, batch))

    async def _deliver(self, state: SubscriptionState, batch: Batch) -> None:
        sub = state.subscription
        status, outcome = await self.sender.post(sub, batch)
        batch.attempts += 1
        batch.last_attempt_us, batch.last_status, batch.last_outcome = wall_us(), status, outcome
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
                self.loop.call_later(delay, self._pump)
            else:
                state.dead_lettered += len(batch.events)
                self.dead_letters += 1
                self._spawn(self._dead_letter(sub, batch, reason))
        self._changed()
        self._pump()

    async def _dead_letter(self, sub: EventGridSubscription, batch: Batch, reason: str) -> None:
        await asyncio.sleep(DEAD_LETTER_DELAY_S * self.retry_scale)  # as Event Grid waits 5 minutes
        try:
            await asyncio.to_thread(self._write_dead_letters, sub, batch, reason)
        finally:
            self.dead_letters -= 1
            self._changed()

    def _write_dead_letters(self, sub: EventGridSubscription, batch: Batch, reason: str) -> None:
        if self.dead_letter_dir is None:
            log.warning(
                "Event Grid subscription %s: %d undeliverable events dropped (%s; no dead-letter folder)",
                sub.name,
                len(batch.events),
                reason,
            )
            return
        try:
            for event in batch.events:
                record = dead_letter_record(event, batch, reason, sub.schema == "cloudevents")
                write_dead_letter(self.dead_letter_dir, sub.name, record)
        except LocationError as exc:
            log.warning("Event Grid subscription %s: cannot dead-letter: %s", sub.name, exc)

    # -- snapshots ---------------------------------------------------------------------------------

    def _changed(self) -> None:
        if not self._snapshot_due:
            self._snapshot_due = True
            self.loop.call_later(SNAPSHOT_S, self._snapshot)

    def _snapshot(self) -> None:
        self._snapshot_due = False
        busy = self.dead_letters > 0 or any(
            s.pending() for s in self.subs.values() if s.provisioning == "Succeeded"
        )
        subs = [state.to_json() for state in self.subs.values()]
        write_message(self.out, ("snapshot", subs, self.entries, busy))


def main() -> None:
    """Run the worker on this process's standard input and output (the parent starts it so).

    Ctrl-C is the parent's to handle (it stops the worker by closing its input); the process ends with
    ``os._exit`` once the loop is done, so that the input thread, which may still be blocked reading,
    cannot hold up the interpreter's shutdown.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="chatnb Event Grid: %(message)s")
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing but messages goes to the parent's pipe
    config = read_message(stdin)
    if config is not None:

        async def serve() -> None:
            await Worker(config, stdout).run(stdin)

        asyncio.run(serve())
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
