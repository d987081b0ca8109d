"""Client tests: one scenario through the sync and the async client; new users of an emulator."""

from __future__ import annotations

import inspect
from typing import Any

import pandas as pd

import chatnb
from chatnb.emulator import Emulator

__all__ = ["assert_schema", "aw", "closing", "collect", "new_chat_user", "new_user_token", "text_of"]


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


def new_user_token(emu: Emulator) -> tuple[str, str]:
    """``(user id, chat token)`` of a new user of ``emu``, through the Identity API."""
    with chatnb.CommunicationIdentityClient.from_connection_string(emu.connection_string) as identity:
        user, token = identity.create_user_and_token(["chat"])
    return user.raw_id, token.token


def new_chat_user(emu: Emulator) -> tuple[chatnb.ChatClient, str]:
    """A sync chat client of a new user of ``emu``, and the user's id (close the client when done)."""
    user_id, token = new_user_token(emu)
    return chatnb.ChatClient(emu.endpoint, token), user_id


def text_of(message: chatnb.ChatMessage) -> str | None:
    """The text of ``message`` (``None`` for a message without content)."""
    return None if message.content is None else message.content.message
