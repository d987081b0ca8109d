"""One Event Grid subscription's outbox: the events waiting, the batches they go in, the retries, the
statistics, and Event Grid's retry policy (:mod:`chatnb.emulator.griddelivery` runs it).

Retry policy, as "Event Grid message delivery and retry" documents it: 200-204 is delivered; 400, 401,
403 and 413 are never retried; anything else (another status, no answer in time, a failed connection) is
retried on the schedule :data:`RETRY_SCHEDULE_S` (10 s, 30 s, 1 min, 5 min, 10 min, 30 min, 1 h, then
hourly), each wait at least the floor of its status (:data:`STATUS_FLOOR_S`), until the subscription's
max delivery attempts or event time to live is spent. Event Grid adds a little randomness to its waits;
the emulator does not, so a test sees the schedule itself.
"""

from __future__ import annotations

import heapq
import itertools
import json
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from .gridevents import to_cloudevent
from .gridhttp import Batch, wall_us
from .gridsubs import EventGridSubscription

__all__ = [
    "DEAD_LETTER_DELAY_S",
    "NO_RETRY",
    "RETRY_SCHEDULE_S",
    "STATUS_FLOOR_S",
    "SubscriptionState",
    "give_up",
    "retry_delay",
]

RETRY_SCHEDULE_S = (10.0, 30.0, 60.0, 300.0, 600.0, 1800.0, 3600.0)
STATUS_FLOOR_S = {404: 300.0, 408: 120.0, 503: 30.0}
NO_RETRY = frozenset({400, 401, 403, 413})
DEAD_LETTER_DELAY_S = 300.0
_SEQUENCE = itertools.count()


def retry_delay(attempts: int, status: int | None, scale: float) -> float:
    """Seconds before the next attempt of a batch that failed ``attempts`` times, last with ``status``."""
    step = RETRY_SCHEDULE_S[min(attempts, len(RETRY_SCHEDULE_S)) - 1]
    return max(step, STATUS_FLOOR_S.get(status or 0, 0.0)) * scale


def give_up(sub: EventGridSubscription, batch: Batch, status: int | None, scale: float) -> str | None:
    """The ``deadLetterReason`` of a batch that just failed, or ``None`` to retry it."""
    if status in NO_RETRY:
        return f"UndeliverableDueToHttp{batch.last_outcome}"
    if batch.attempts >= sub.max_delivery_attempts:
        return "MaxDeliveryAttemptsExceeded"
    if time.monotonic() - batch.started >= sub.event_ttl_minutes * 60 * scale:
        return "TimeToLiveExceeded"
    return None


@dataclass
class SubscriptionState:
    """A subscription, how its validation went, what it delivered, and its outbox.

    Mutated under the delivery's lock; ``outbox`` holds ``(type, Event Grid schema event)`` not yet in a
    batch, ``retries`` the failed batches by when they are due.
    """

    subscription: EventGridSubscription
    from_event: int
    provisioning: str = "Creating"
    validation_code: str = field(default_factory=lambda: str(uuid.uuid4()).upper())
    delivered: int = 0
    attempts: int = 0
    failed_attempts: int = 0
    dead_lettered: int = 0
    dropped: int = 0
    last_error: str | None = None
    outbox: deque[tuple[str, dict[str, Any]]] = field(default_factory=deque)
    retries: list[tuple[float, int, Batch]] = field(default_factory=list)
    in_flight: int = 0  # events
    flights: int = 0  # batches

    def pending(self) -> int:
        """Events not yet delivered nor given up: waiting, due for a retry, or in flight."""
        return len(self.outbox) + sum(len(b.events) for _, _, b in self.retries) + self.in_flight

    def offer(self, events: list[tuple[str, dict[str, Any]]], capacity: int) -> int:
        """Queue what fits of ``events`` under ``capacity`` pending events; how many were dropped."""
        room = max(capacity - self.pending(), 0)
        self.outbox.extend(events[:room])
        dropped = max(len(events) - room, 0)
        self.dropped += dropped
        return dropped

    def take_batch(self, now: float) -> Batch | None:
        """The next batch to send: a retry that is due, else a new one from the outbox, else ``None``."""
        if self.retries and self.retries[0][0] <= now:
            batch = heapq.heappop(self.retries)[2]
        elif self.outbox:
            batch = self._new_batch()
        else:
            return None
        self.flights += 1
        self.in_flight += len(batch.events)
        return batch

    def schedule_retry(self, batch: Batch, delay: float) -> None:
        heapq.heappush(self.retries, (time.monotonic() + delay, next(_SEQUENCE), batch))

    def _new_batch(self) -> Batch:
        """Up to ``max_events_per_batch`` waiting events within ``preferred_batch_size_kb`` (one event
        larger than that goes alone); never waits for more."""
        sub = self.subscription
        cloud = sub.schema == "cloudevents"
        limit = sub.preferred_batch_size_kb * 1024
        events: list[dict[str, Any]] = []
        encoded: list[bytes] = []
        size = 0
        while self.outbox and len(events) < sub.max_events_per_batch:
            _, event = self.outbox[0]
            body = to_cloudevent(event) if cloud else event
            raw = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
            if events and size + len(raw) > limit:
                break
            self.outbox.popleft()
            events.append(body)
            encoded.append(raw)
            size += len(raw)
        return Batch(events, encoded, started=time.monotonic(), publish_us=wall_us())

    def to_json(self) -> dict[str, Any]:
        """The management endpoint's form: the settings, ``provisioningState`` and ``statistics``."""
        return {
            **self.subscription.to_json(),
            "provisioningState": self.provisioning,
            "statistics": {
                "delivered": self.delivered,
                "attempts": self.attempts,
                "failedAttempts": self.failed_attempts,
                "deadLettered": self.dead_lettered,
                "dropped": self.dropped,
                "pending": self.pending(),
                "lastError": self.last_error,
            },
        }
