"""A local Event Grid webhook for notebooks and tests: :class:`Receiver`.

>>> from chatnb.eventgrid import EventGridSubscriptions
>>> with Receiver() as rx, EventGridSubscriptions.from_connection_string(connection_string) as subs:
...     subs.add(rx.url, name="notebook", event_types=["ChatMessageReceived"])  # or serve --event-grid
...     thread.send_message("Seen by a webhook?")          # to Jill and Geeta: an event for each
...     events = rx.wait_for("ChatMessageReceived", count=2)   # typed chatnb.events objects
...     subs.remove("notebook")
>>> [event.message for event in events]
['Seen by a webhook?', 'Seen by a webhook?']
>>> print(rx.to_dataframe()[["event_type", "delivery_count", "subscription"]].to_string(index=False))
         event_type  delivery_count subscription
ChatMessageReceived               0     NOTEBOOK
ChatMessageReceived               0     NOTEBOOK

(``aeg-delivery-count`` is 0 on a first attempt, and Event Grid sends the subscription's name in upper
case.)

It answers both validation handshakes (the ``SubscriptionValidationEvent`` of the Event Grid schema, with
``{"validationResponse": code}``, and the CloudEvents ``OPTIONS`` abuse protection), accepts deliveries in
either schema, one event or a batch, and parses every event with :func:`~chatnb.eventgrid.parse_event_grid`.
``Receiver(on_event=handler)`` calls your handler with each event (a handler that raises makes the
delivery a 500, which the sender retries). ``rx.fail(3)`` answers the next three deliveries 503, so that
the sender's retries show; ``fail(1, status=400)`` makes one undeliverable. Only deliveries it answered
2xx count as received; every request is in ``rx.deliveries``. It keeps what it gets in memory and stops
with the ``with`` block.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import pandas as pd
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .._time import parse_rfc3339
from ..events import Event
from .parse import parse_event_grid

__all__ = ["MAX_BODY_BYTES", "Delivery", "ReceivedEvent", "Receiver"]

log = logging.getLogger("chatnb.eventgrid")

MAX_BODY_BYTES = 16 * 1024 * 1024
_VALIDATION = "Microsoft.EventGrid.SubscriptionValidationEvent"
_COLUMNS = {
    "event_type": "string",
    "event_id": "string",
    "thread_id": "string",
    "recipient": "string",
    "subject": "string",
    "event_time": "datetime64[ns, UTC]",
    "delivery_count": "int64",
    "subscription": "string",
}


@dataclass(frozen=True)
class Delivery:
    """One request the receiver answered: its headers (lower-case names), the events in its body, and the
    status it answered with."""

    method: str
    headers: dict[str, str]
    items: list[dict[str, Any]]
    status: int
    received_on: datetime


@dataclass(frozen=True)
class ReceivedEvent:
    """One event of a delivery the receiver accepted: its Event Grid type, the typed chatnb event, the
    raw JSON, and the delivery's ``aeg-delivery-count`` and ``aeg-subscription-name``."""

    event_type: str
    event: Event
    raw: dict[str, Any]
    delivery_count: int
    subscription: str


@dataclass
class _Plan:
    failures: int = 0
    status: int = 503
    validate: str = "sync"
    validations: list[dict[str, Any]] = field(default_factory=list)


def _items(body: bytes) -> list[dict[str, Any]]:
    parsed = json.loads(body) if body.strip() else []
    items = parsed if isinstance(parsed, list) else [parsed]
    return [item for item in items if isinstance(item, dict)]


class Receiver:
    """A webhook on ``127.0.0.1`` that answers Event Grid's handshakes and collects its deliveries.

    Args:
        port: the port to listen on (0, the default, picks a free one).
        on_event: your handler: called with each :class:`ReceivedEvent` of an accepted delivery, in the
            receiver's thread, before it answers; if it raises, the delivery is answered 500 (so Event
            Grid, and the emulator, retry it) and the events are not kept.
        validate: ``"sync"`` (answer the validation code), ``"manual"`` (answer 200 without it: the
            subscription then waits for a GET of its ``validationUrl``, see :attr:`validations`) or
            ``"refuse"`` (answer 403).

    Raises:
        ValueError: for another ``validate``.
    """

    def __init__(
        self,
        *,
        port: int = 0,
        validate: str = "sync",
        on_event: Callable[[ReceivedEvent], object] | None = None,
    ) -> None:
        if validate not in ("sync", "manual", "refuse"):
            raise ValueError(f"validate must be 'sync', 'manual' or 'refuse', not {validate!r}")
        self._plan = _Plan(validate=validate)
        self.on_event = on_event
        self._port = port
        self._server: uvicorn.Server | None = None
        self._address: tuple[str, int] = ("127.0.0.1", port)
        self._thread: threading.Thread | None = None
        self._changed = threading.Condition()
        self.deliveries: list[Delivery] = []
        self.received: list[ReceivedEvent] = []

    def __repr__(self) -> str:
        where = self.url if self._server is not None else "(stopped)"
        return f"<Receiver {where} {len(self.received)} events>"

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT/``, the webhook to subscribe.

        Raises:
            RuntimeError: if the receiver is not running.
        """
        if self._server is None:
            raise RuntimeError("the Receiver is not running: use it as a context manager")
        return f"http://127.0.0.1:{self._address[1]}/"

    @property
    def events(self) -> list[Event]:
        """The typed events received so far, in arrival order."""
        with self._changed:
            return [r.event for r in self.received]

    @property
    def validations(self) -> list[dict[str, Any]]:
        """The ``data`` of each subscription validation event received (``validationCode``,
        ``validationUrl``)."""
        with self._changed:
            return list(self._plan.validations)

    def fail(self, times: int, *, status: int = 503) -> None:
        """Answer the next ``times`` deliveries with ``status`` (503: retried; 400: dead-lettered)."""
        with self._changed:
            self._plan.failures, self._plan.status = times, status

    def clear(self) -> None:
        """Forget what was received so far."""
        with self._changed:
            self.deliveries.clear()
            self.received.clear()

    # -- waiting -----------------------------------------------------------------------------------

    def wait_until(self, predicate: Callable[[list[ReceivedEvent]], bool], timeout: float = 10.0) -> None:
        """Wait until ``predicate(received)`` is true.

        Raises:
            TimeoutError: if it is not within ``timeout`` seconds (the message says what arrived).
        """
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate(self.received):
                left = deadline - time.monotonic()
                if left <= 0:
                    kinds = sorted({r.event_type.rsplit(".", 1)[-1] for r in self.received})
                    raise TimeoutError(
                        f"the Receiver got {len(self.received)} events in {timeout:g} s ({', '.join(kinds)})"
                    )
                self._changed.wait(left)

    def wait_for(
        self, event_type: str | None = None, *, count: int = 1, timeout: float = 10.0
    ) -> list[Event]:
        """The first ``count`` events of ``event_type`` (``ChatMessageReceived`` or its full name; ``None``:
        any), waiting up to ``timeout`` seconds for them.

        Raises:
            TimeoutError: if fewer arrive in time.
        """

        def matching(received: list[ReceivedEvent]) -> list[ReceivedEvent]:
            if event_type is None:
                return received
            return [r for r in received if r.event_type.rsplit(".", 1)[-1] == event_type.rsplit(".", 1)[-1]]

        self.wait_until(lambda received: len(matching(received)) >= count, timeout)
        with self._changed:
            return [r.event for r in matching(self.received)[:count]]

    def to_dataframe(self) -> pd.DataFrame:
        """One row per event received: its type, ids, recipient, subject, time and delivery count."""
        with self._changed:
            rows = [
                {
                    "event_type": r.event_type.rsplit(".", 1)[-1],
                    "event_id": r.raw.get("id"),
                    "thread_id": getattr(r.event, "thread_id", None),
                    "recipient": getattr(getattr(r.event, "recipient", None), "raw_id", None),
                    "subject": r.raw.get("subject"),
                    "event_time": _time(r.raw.get("eventTime") or r.raw.get("time")),
                    "delivery_count": r.delivery_count,
                    "subscription": r.subscription,
                }
                for r in self.received
            ]
        frame: pd.DataFrame = pd.DataFrame(rows, columns=list(_COLUMNS)).astype(_COLUMNS)
        return frame

    # -- serving -----------------------------------------------------------------------------------

    def answer(self, method: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        """What to answer one request with (called by the handler thread)."""
        now = datetime.now(timezone.utc)
        if method == "OPTIONS":
            origin = headers.get("webhook-request-origin", "")
            allowed = self._plan.validate != "refuse" and bool(origin)
            self._record(Delivery(method, headers, [], 200 if allowed else 403, now), [])
            return (
                (200, {"WebHook-Allowed-Origin": origin, "WebHook-Allowed-Rate": "*"}, b"")
                if allowed
                else (
                    403,
                    {},
                    b"",
                )
            )
        try:
            items = _items(body)
        except ValueError:
            self._record(Delivery(method, headers, [], 400, now), [])
            return 400, {}, b'{"error": "not JSON"}'
        if headers.get("aeg-event-type") == "SubscriptionValidation" or any(
            i.get("eventType") == _VALIDATION for i in items
        ):
            return self._validation(method, headers, items, now)
        with self._changed:
            failing = self._plan.failures > 0
            if failing:
                self._plan.failures -= 1
            status = self._plan.status if failing else 200
        received = [] if failing else self._parse(headers, items)
        if self.on_event is not None and received:
            try:
                for event in received:
                    self.on_event(event)
            except Exception:  # the handler failed: as a webhook's 500, the sender retries
                log.exception("the Receiver's on_event handler failed")
                status, received = 500, []
        self._record(Delivery(method, headers, items, status, now), received)
        return status, {}, b""

    def _validation(
        self, method: str, headers: dict[str, str], items: list[dict[str, Any]], now: datetime
    ) -> tuple[int, dict[str, str], bytes]:
        data = items[0].get("data", {}) if items else {}
        with self._changed:
            self._plan.validations.append(dict(data) if isinstance(data, dict) else {})
        status = 403 if self._plan.validate == "refuse" else 200
        self._record(Delivery(method, headers, items, status, now), [])
        if self._plan.validate == "sync":
            return (
                200,
                {"Content-Type": "application/json"},
                json.dumps({"validationResponse": data.get("validationCode")}).encode(),
            )
        return status, {}, b""

    def _parse(self, headers: dict[str, str], items: list[dict[str, Any]]) -> list[ReceivedEvent]:
        count = int(headers.get("aeg-delivery-count", "0") or 0)
        name = headers.get("aeg-subscription-name", "")
        out = []
        for item in items:
            for event in parse_event_grid(item):
                kind = str(item.get("eventType") or item.get("type"))
                out.append(ReceivedEvent(kind, event, item, count, name))
        return out

    def _record(self, delivery: Delivery, received: list[ReceivedEvent]) -> None:
        with self._changed:
            self.deliveries.append(delivery)
            self.received.extend(received)
            self._changed.notify_all()

    def start(self) -> Receiver:
        """Listen (once); the receiver answers from a daemon thread with an event loop of its own."""
        if self._server is not None:
            return self
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", self._port))
        sock.listen(1024)
        config = uvicorn.Config(_app(self), lifespan="off", log_level="warning", access_log=False)
        self._server = uvicorn.Server(config)
        self._address = sock.getsockname()[:2]
        server = self._server
        self._thread = threading.Thread(
            target=lambda: asyncio.run(server.serve(sockets=[sock])), name="chatnb-receiver", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not server.started and self._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.005)
        if not server.started:
            self.stop()
            raise RuntimeError("the Receiver did not start")
        return self

    def stop(self) -> None:
        """Stop listening and close the socket."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        self._server = None

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _time(text: object) -> datetime | None:
    return parse_rfc3339(text) if isinstance(text, str) else None


def _app(receiver: Receiver) -> Starlette:
    async def hook(request: Request) -> Response:
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            return Response(status_code=413)
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY_BYTES:
                return Response(status_code=413)
        headers = {k.lower(): v for k, v in request.headers.items()}
        status, extra, answer = receiver.answer(request.method, headers, body)
        return Response(answer, status_code=status, headers=extra)

    return Starlette(routes=[Route("/{path:path}", hook, methods=["POST", "PUT", "OPTIONS"])])
