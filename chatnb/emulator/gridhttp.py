"""The HTTP side of Event Grid delivery: the validation handshakes, one delivery attempt, dead-letter files.

:class:`GridSender` makes the requests (:mod:`chatnb.emulator.griddelivery` decides when); nothing a
webhook answers is trusted to stay in bounds: an attempt has one deadline for the whole exchange, and
only a handshake's answer is used, at most :data:`~chatnb.emulator.gridclient.MAX_BODY_BYTES` of it
(:mod:`chatnb.emulator.gridclient` is the HTTP client, and why it is not httpx).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any

from .._time import format_rfc3339
from .._timeout import bounded
from ..location import private_dir, write_private
from .gridclient import Answer, WebhookClient, WebhookError
from .gridsubs import EventGridSubscription

__all__ = [
    "VALIDATION_ORIGIN",
    "Batch",
    "GridSender",
    "dead_letter_record",
    "outcome_of",
    "wall_us",
    "write_dead_letter",
]

VALIDATION_ORIGIN = "eventgrid.azure.net"
_VALIDATION_TYPE = "Microsoft.EventGrid.SubscriptionValidationEvent"
_SAFE = re.compile(r"[^A-Za-z0-9-]")


@dataclass
class Batch:
    """Events delivered together (in the subscription's schema), and what became of their attempts."""

    events: list[dict[str, Any]]
    encoded: list[bytes]
    started: float  # monotonic, for the time to live
    publish_us: int  # wall clock, for the dead-letter record
    attempts: int = 0
    last_attempt_us: int = 0
    last_status: int | None = None
    last_outcome: str = ""
    size: int = field(init=False)

    def __post_init__(self) -> None:
        self.size = sum(len(e) for e in self.encoded)


def wall_us() -> int:
    """The machine's time in microseconds (delivery records are the machine's, not the emulator's clock)."""
    return time.time_ns() // 1000


def outcome_of(status: int | None, timed_out: bool = False) -> str:
    """Event Grid's ``lastDeliveryOutcome`` word: the status phrase in PascalCase (``BadRequest``...),
    ``TimedOut`` for no answer in time, ``GenericError`` for a failed connection."""
    if timed_out or status == 408:
        return "TimedOut"
    if status is None:
        return "GenericError"
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        return f"Http{status}"
    return "".join(word[:1].upper() + word[1:] for word in re.split(r"[\s-]+", phrase))


class GridSender:
    """Makes the requests of one delivery thread (through a
    :class:`~chatnb.emulator.gridclient.WebhookClient`).

    Args:
        http: the delivery thread's client.
        topic: the ``topic`` of the validation event.
        timeout: the deadline of one whole exchange, in seconds.
    """

    def __init__(self, http: WebhookClient, topic: str, timeout: float = 30.0) -> None:
        self.http = http
        self.topic = topic
        self.timeout = timeout

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, topic: str, timeout: float) -> AsyncIterator[GridSender]:
        """A sender with a client of its own; its connections are closed on exit."""
        http = WebhookClient(headers={"User-Agent": "chatnb-emulator-eventgrid"})
        try:
            yield cls(http, topic, timeout)
        finally:
            await http.aclose()

    async def _exchange(self, method: str, url: str, headers: dict[str, str], body: bytes = b"") -> Answer:
        return await bounded(self.timeout, self.http.request(method, url, headers, body))

    async def handshake(self, sub: EventGridSubscription, code: str, url: str) -> tuple[str, str | None]:
        """``(provisioning state, error)`` of the subscription's validation handshake."""
        try:
            if sub.schema == "cloudevents":
                return await self._options_handshake(sub)
            return await self._validation_event(sub, code, url)
        except (WebhookError, asyncio.TimeoutError) as exc:
            timed_out = isinstance(exc, asyncio.TimeoutError)
            return "Failed", f"{outcome_of(None, timed_out)}: {exc or type(exc).__name__}"

    async def _options_handshake(self, sub: EventGridSubscription) -> tuple[str, str | None]:
        headers = {"WebHook-Request-Origin": VALIDATION_ORIGIN, "WebHook-Request-Rate": "120"}
        response = await self._exchange("OPTIONS", sub.endpoint, headers)
        allowed = response.headers.get("webhook-allowed-origin", "")
        if response.status == 200 and allowed.strip() in (VALIDATION_ORIGIN, "*"):
            return "Succeeded", None
        return "Failed", (
            f"the OPTIONS handshake got {response.status} with WebHook-Allowed-Origin {allowed[:80]!r}; "
            f"expected 200 and {VALIDATION_ORIGIN!r} or '*'"
        )

    async def _validation_event(
        self, sub: EventGridSubscription, code: str, url: str
    ) -> tuple[str, str | None]:
        event = {
            "id": str(uuid.uuid4()),
            "topic": self.topic,
            "subject": "",
            "data": {"validationCode": code, "validationUrl": url},
            "eventType": _VALIDATION_TYPE,
            "eventTime": format_rfc3339(wall_us()),
            "metadataVersion": "1",
            "dataVersion": "2",
        }
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "aeg-event-type": "SubscriptionValidation",
            "aeg-subscription-name": sub.name.upper(),
            "aeg-delivery-count": "0",
            "aeg-data-version": "2",
            "aeg-metadata-version": "1",
        }
        response = await self._exchange("POST", sub.endpoint, headers, json.dumps([event]).encode())
        if response.status == 200:
            try:
                given = json.loads(response.body).get("validationResponse")
            except (ValueError, AttributeError):
                given = None
            if given == code:
                return "Succeeded", None
        if 200 <= response.status < 300:  # accepted without the code: the validationUrl completes it
            return "AwaitingManualAction", None
        return "Failed", f"the validation event got {response.status} {outcome_of(response.status)}"

    async def post(self, sub: EventGridSubscription, batch: Batch) -> tuple[int | None, str]:
        """One delivery attempt: ``(status, outcome)``; status ``None`` when there was no answer."""
        cloud = sub.schema == "cloudevents"
        single = cloud and sub.max_events_per_batch == 1
        body = batch.encoded[0] if single else b"[" + b",".join(batch.encoded) + b"]"
        content_type = (
            "application/cloudevents+json"
            if single
            else "application/cloudevents-batch+json"
            if cloud
            else "application/json"
        )
        headers = {
            "Content-Type": content_type + "; charset=utf-8",
            "aeg-event-type": "Notification",
            "aeg-subscription-name": sub.name.upper(),
            "aeg-delivery-count": str(batch.attempts),
            "aeg-metadata-version": "1.0" if cloud else "1",
        }
        if not cloud:
            headers["aeg-data-version"] = "1.0"
        if len(batch.events) == 1:
            headers["aeg-output-event-id"] = str(batch.events[0]["id"])
        try:
            response = await self._exchange("POST", sub.endpoint, headers, body)
        except (WebhookError, asyncio.TimeoutError) as exc:
            return None, outcome_of(None, isinstance(exc, asyncio.TimeoutError))
        status = response.status
        return status, "Delivered" if 200 <= status <= 204 else outcome_of(status)


def dead_letter_record(event: dict[str, Any], batch: Batch, reason: str, cloud: bool) -> dict[str, Any]:
    """``event`` with the fields Event Grid adds when it dead-letters it (lower case for CloudEvents)."""
    extra: dict[str, Any] = {
        "deadLetterReason": reason,
        "deliveryAttempts": batch.attempts,
        "lastDeliveryOutcome": batch.last_outcome,
        "publishTime": format_rfc3339(batch.publish_us),
        "lastDeliveryAttemptTime": format_rfc3339(batch.last_attempt_us),
    }
    if batch.last_status is not None:
        extra["lastHttpStatusCode"] = batch.last_status
    if cloud:
        extra = {k.lower(): v for k, v in extra.items()}
    return {**event, **extra}


def write_dead_letter(folder: Path, subscription: str, record: dict[str, Any]) -> Path:
    """Write one dead-lettered event to ``folder/<subscription>/<time>-<id>.json`` (0700 folders, 0600
    file); its path.

    Raises:
        LocationError: if the folder cannot be made or written.
    """
    where = private_dir(folder / _SAFE.sub("-", subscription))
    stamp = re.sub(r"[^0-9T]", "", str(record.get("publishTime") or record.get("publishtime") or ""))[:15]
    path = where / f"{stamp}-{_SAFE.sub('-', str(record.get('id', uuid.uuid4())))[:64]}.json"
    write_private(path, json.dumps(record, indent=2, ensure_ascii=False))
    return path
