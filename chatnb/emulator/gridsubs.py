"""Event Grid subscriptions of the emulator: where its chat events go, which, in which schema, how batched.

A subscription is what an Azure Event Grid *event subscription* on a Communication Services resource is,
with the same settings and bounds: an endpoint (an ``http://`` or ``https://`` webhook; Event Grid itself
requires HTTPS, the emulator lets a loopback test receiver use plain HTTP), the included event types
(default: the 16 chat types), the delivery schema (``eventgrid`` or ``cloudevents``), batching (max
events per batch 1-5000, preferred batch size 1-1024 KB) and the retry policy (max delivery attempts
1-30, event time to live 1-1440 minutes).

Three ways to make one: ``chatnb serve --event-grid SPEC`` (repeatable), ``Emulator(event_grid=[...])``
(specs, dicts or :class:`EventGridSubscription`) and ``PUT /chatnb/eventGridSubscriptions/{name}`` at run
time. A SPEC is the endpoint, then optional ``,key=value`` settings::

    https://example.test/api/events
    http://127.0.0.1:8123/,types=ChatMessageReceived+ChatThreadCreated,schema=cloudevents
    http://127.0.0.1:8123/,name=audit,batch=100,batch-kb=256,attempts=5,ttl=60

Keys: ``name``, ``types`` (short or full names joined by ``+``), ``schema``, ``batch`` (max events per
batch), ``batch-kb`` (preferred batch size in KB), ``attempts`` (max delivery attempts), ``ttl`` (event time
to live, minutes).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import SplitResult, urlsplit

from .gridevents import EVENT_TYPES, PREFIX, short_type

__all__ = ["SCHEMAS", "EventGridSubscription", "SubscriptionError"]

SCHEMAS = ("eventgrid", "cloudevents")
_NAME = re.compile(r"[A-Za-z0-9-]{3,64}")
_UNSAFE = re.compile(r"[\x00-\x20\x7f]")  # nothing that could end a request line or header
_SPEC_KEYS = {
    "name": "name",
    "types": "event_types",
    "schema": "schema",
    "batch": "max_events_per_batch",
    "batch-kb": "preferred_batch_size_kb",
    "attempts": "max_delivery_attempts",
    "ttl": "event_ttl_minutes",
}
_JSON_KEYS = {
    "endpoint": "endpoint",
    "eventTypes": "event_types",
    "schema": "schema",
    "maxEventsPerBatch": "max_events_per_batch",
    "preferredBatchSizeInKilobytes": "preferred_batch_size_kb",
    "maxDeliveryAttempts": "max_delivery_attempts",
    "eventTimeToLiveInMinutes": "event_ttl_minutes",
}
_BOUNDS = {
    "max_events_per_batch": (1, 5000),
    "preferred_batch_size_kb": (1, 1024),
    "max_delivery_attempts": (1, 30),
    "event_ttl_minutes": (1, 1440),
}


class SubscriptionError(ValueError):
    """A subscription setting out of bounds, or a spec that does not parse."""


def _default_name(endpoint: str) -> str:
    return "sub-" + hashlib.sha256(endpoint.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class EventGridSubscription:
    """One Event Grid subscription (see the module docstring for the settings and their bounds).

    >>> EventGridSubscription.parse("http://127.0.0.1:8123/,types=ChatMessageReceived,schema=cloudevents")

    Raises:
        SubscriptionError: for an endpoint that is not an http(s) URL, an unknown event type or schema,
            a bad name, or a setting out of bounds.
    """

    endpoint: str
    name: str = ""
    event_types: tuple[str, ...] = EVENT_TYPES
    schema: str = "eventgrid"
    max_events_per_batch: int = 1
    preferred_batch_size_kb: int = 64
    max_delivery_attempts: int = 30
    event_ttl_minutes: int = 1440
    wanted: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.endpoint) > 2048 or _UNSAFE.search(self.endpoint):
            raise SubscriptionError(
                "the endpoint must be a URL of at most 2048 characters without spaces or control characters"
            )
        parts: SplitResult | None
        try:
            parts = urlsplit(self.endpoint)
            parts.port  # noqa: B018 (urlsplit checks the port when it is asked for it)
        except ValueError:  # a bracket left open, a port that is not a number from 0 to 65535
            parts = None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise SubscriptionError(
                f"the endpoint must be an http:// or https:// URL (its port a number from 0 to 65535), "
                f"not {self.endpoint!r}"
            )
        name = self.name or _default_name(self.endpoint)
        if not _NAME.fullmatch(name):
            raise SubscriptionError(f"a subscription name is 3-64 letters, digits or '-', not {name!r}")
        types = self.event_types
        if isinstance(types, str):
            types = tuple(t for t in types.split("+") if t)
        try:
            short = tuple(dict.fromkeys(short_type(str(t)) for t in types))
        except ValueError as exc:
            raise SubscriptionError(str(exc)) from None
        if not short:
            raise SubscriptionError("a subscription needs at least one event type")
        if self.schema not in SCHEMAS:
            raise SubscriptionError(f"schema must be 'eventgrid' or 'cloudevents', not {self.schema!r}")
        for key, (low, high) in _BOUNDS.items():
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise SubscriptionError(f"{key} must be an integer from {low} to {high}, not {value!r}")
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "event_types", short)
        object.__setattr__(self, "wanted", frozenset(short))

    @classmethod
    def coerce(cls, value: str | dict[str, Any] | EventGridSubscription) -> EventGridSubscription:
        """A subscription from a spec (:meth:`parse`), a dict (:meth:`from_json`) or itself.

        Raises:
            SubscriptionError: for a spec or dict that is not a valid subscription.
        """
        if isinstance(value, EventGridSubscription):
            return value
        if isinstance(value, dict):
            return cls.from_json(value)
        return cls.parse(str(value))

    @classmethod
    def parse(cls, spec: str) -> EventGridSubscription:
        """A subscription from ``URL[,key=value...]`` (``chatnb serve --event-grid``).

        Raises:
            SubscriptionError: for an unknown key, a value that is not a number where one is needed, or
                what the constructor refuses.
        """
        endpoint, *settings = re.split(r",(?=[a-z-]+=)", spec.strip())
        values: dict[str, Any] = {}
        for setting in settings:
            key, _, value = setting.partition("=")
            target = _SPEC_KEYS.get(key)
            if target is None:
                raise SubscriptionError(
                    f"unknown --event-grid setting {key!r}; known: {', '.join(_SPEC_KEYS)}"
                )
            if target in _BOUNDS:
                if not value.isdigit():
                    raise SubscriptionError(f"--event-grid {key}= needs a whole number, not {value!r}")
                values[target] = int(value)
            else:
                values[target] = value
        return cls(endpoint, **values)

    @classmethod
    def from_json(cls, body: dict[str, Any], name: str | None = None) -> EventGridSubscription:
        """A subscription from the management endpoint's JSON body.

        Raises:
            SubscriptionError: for an unknown field, a missing endpoint, or what the constructor refuses.
        """
        unknown = sorted(set(body) - set(_JSON_KEYS) - {"name"})
        if unknown:
            raise SubscriptionError(f"unknown field {unknown[0]!r}; known: {', '.join(_JSON_KEYS)}")
        if not isinstance(body.get("endpoint"), str):
            raise SubscriptionError("endpoint is required: the webhook URL to deliver to")
        values = {_JSON_KEYS[k]: v for k, v in body.items() if k in _JSON_KEYS}
        if isinstance(values.get("event_types"), list):
            values["event_types"] = tuple(values["event_types"])
        return cls(name=name or str(body.get("name") or ""), **values)

    def to_json(self) -> dict[str, Any]:
        """The management endpoint's form (full event type names, as Event Grid's ``includedEventTypes``)."""
        settings = {k: v for k, v in asdict(self).items() if k != "wanted"}
        out = {j: settings[k] for j, k in _JSON_KEYS.items()}
        out["eventTypes"] = [PREFIX + t for t in self.event_types]
        return {"name": self.name, **out}
