"""The emulator's Event Grid subscriptions from anywhere: :class:`EventGridSubscriptions`.

For an emulator in another process (``chatnb serve``, or the one :func:`chatnb.connect` started), this
client manages its subscriptions through ``/chatnb/eventGridSubscriptions``, signed with the access key
as the Identity API is (an in-process :class:`~chatnb.emulator.Emulator` has the same as
``emu.event_grid``).

>>> subs = EventGridSubscriptions.from_connection_string(connection_string)
>>> added = subs.add("http://127.0.0.1:9/", name="nobody-listens")   # the validation handshake fails
Traceback (most recent call last):
chatnb.errors.BadRequestError: ...validation handshake failed...
>>> subs.list()[["name", "state"]].values.tolist()                  # a DataFrame: state and statistics
[['nobody-listens', 'Failed']]
>>> subs.remove("nobody-listens")
>>> subs.close()
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import pandas as pd

from .._core import parse_connection_string, resolve_verify
from .._signing import hmac_headers
from ..errors import error_from_response

__all__ = ["EventGridSubscriptions"]

_PATH = "/chatnb/eventGridSubscriptions"


class EventGridSubscriptions:
    """Add, list and remove the Event Grid subscriptions of a running chatnb emulator.

    Args:
        endpoint: the emulator's endpoint.
        access_key: its access key (base64).
        connection_verify: as for :class:`~chatnb.ChatClient` (default: the local emulator's certificate).

    Raises:
        ValueError: for a key that is not base64.
    """

    def __init__(self, endpoint: str, access_key: str, *, connection_verify: Any = None) -> None:
        self.endpoint = endpoint.rstrip("/")
        try:
            self._key = base64.b64decode(access_key, validate=True)
        except ValueError:
            raise ValueError("the access key is not base64") from None
        self._http = httpx.Client(verify=resolve_verify(self.endpoint, connection_verify), timeout=60.0)

    @classmethod
    def from_connection_string(cls, connection_string: str, **kwargs: Any) -> EventGridSubscriptions:
        endpoint, key = parse_connection_string(connection_string)
        return cls(endpoint, key, **kwargs)

    def __repr__(self) -> str:
        return f"<EventGridSubscriptions {self.endpoint}>"

    def _send(self, method: str, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        content = b"" if body is None else json.dumps(body).encode()
        headers = hmac_headers(self._key, method, path, urlsplit(self.endpoint).netloc, content)
        headers["Content-Type"] = "application/json"
        response = self._http.request(method, self.endpoint + path, content=content, headers=headers)
        if response.status_code >= 400:
            raise error_from_response(response)
        return response

    def add(
        self,
        endpoint: str,
        *,
        name: str | None = None,
        event_types: Sequence[str] | None = None,
        schema: str = "eventgrid",
        max_events_per_batch: int = 1,
        preferred_batch_size_kb: int = 64,
        max_delivery_attempts: int = 30,
        event_ttl_minutes: int = 1440,
    ) -> dict[str, Any]:
        """Subscribe ``endpoint`` (after its validation handshake); the subscription as the emulator has it.

        Raises:
            BadRequestError: for a bad setting, or a webhook that fails the handshake.
        """
        body: dict[str, Any] = {
            "endpoint": endpoint,
            "schema": schema,
            "maxEventsPerBatch": max_events_per_batch,
            "preferredBatchSizeInKilobytes": preferred_batch_size_kb,
            "maxDeliveryAttempts": max_delivery_attempts,
            "eventTimeToLiveInMinutes": event_ttl_minutes,
        }
        if event_types is not None:
            body["eventTypes"] = list(event_types)
        chosen = name or "sub-" + hashlib.sha256(endpoint.encode()).hexdigest()[:12]  # the emulator's default
        result: dict[str, Any] = self._send("PUT", f"{_PATH}/{quote(chosen, safe='')}", body).json()
        return result

    def get(self, name: str) -> dict[str, Any]:
        """One subscription with its ``provisioningState`` and ``statistics``.

        Raises:
            NotFoundError: if there is none by that name.
        """
        result: dict[str, Any] = self._send("GET", f"{_PATH}/{quote(name, safe='')}").json()
        return result

    def list(self) -> pd.DataFrame:
        """Every subscription: name, endpoint, schema, state and delivery statistics, one row each."""
        rows = [
            {
                "name": s["name"],
                "endpoint": s["endpoint"],
                "schema": s["schema"],
                "state": s["provisioningState"],
                **s["statistics"],
            }
            for s in self._send("GET", _PATH).json()["value"]
        ]
        columns = [
            "name",
            "endpoint",
            "schema",
            "state",
            "delivered",
            "attempts",
            "failedAttempts",
            "deadLettered",
            "dropped",
            "pending",
            "lastError",
        ]
        frame: pd.DataFrame = pd.DataFrame(rows, columns=columns)
        return frame

    def remove(self, name: str) -> None:
        """Remove a subscription (no error if there is none)."""
        self._send("DELETE", f"{_PATH}/{quote(name, safe='')}")

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> EventGridSubscriptions:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
