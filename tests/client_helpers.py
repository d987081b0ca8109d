"""Helpers shared by the client tests: run one scenario through sync and async clients, fake JWTs."""

from __future__ import annotations

import base64
import inspect
import json
import time
from typing import Any

import pandas as pd


async def aw(value: Any) -> Any:
    """The value of a sync result, or the awaited value of an async one."""
    return await value if inspect.isawaitable(value) else value


async def collect(iterable: Any) -> list[Any]:
    """The items of an iterator or an async iterator."""
    if hasattr(iterable, "__aiter__"):
        return [item async for item in iterable]
    return list(iterable)


class closing:
    """Like ``contextlib.aclosing``, for a sync or an async client."""

    def __init__(self, client: Any) -> None:
        self.client = client

    async def __aenter__(self) -> Any:
        return self.client

    async def __aexit__(self, *exc: object) -> None:
        await aw(self.client.close())


def assert_schema(frame: pd.DataFrame, columns: dict[str, str]) -> None:
    """Exactly these columns, in this order, with these dtypes."""
    assert list(frame.columns) == list(columns)
    assert {name: str(dtype) for name, dtype in frame.dtypes.items()} == columns


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def fake_jwt(seconds: float, **claims: Any) -> str:
    """A well-formed but unsigned-by-anyone JWT expiring in ``seconds`` (the emulator rejects it)."""
    payload = {"skypeid": "acs:fake", "exp": int(time.time() + seconds), **claims}
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    return f"{header}.{_b64(json.dumps(payload).encode())}.{_b64(b'not-a-signature')}"
