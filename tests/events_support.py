"""Helpers of the real-time event tests: users, raw Chat calls, and a TCP relay whose connections a test
can cut for real."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import socket
import ssl
import struct
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from chatnb._signing import hmac_headers
from chatnb.emulator import Emulator
from chatnb.events import Event

V = "api-version=2024-03-07"


def new_user(emu: Emulator) -> tuple[str, str]:
    """A new user of ``emu`` and a chat token, through the Identity API."""
    body = json.dumps({"createTokenWithScopes": ["chat"]}).encode()
    path = "/identities?api-version=2023-10-01"
    host = urlsplit(emu.endpoint).netloc
    headers = hmac_headers(base64.b64decode(emu.access_key), "POST", path, host, body)
    response = httpx.post(
        emu.endpoint.rstrip("/") + path,
        content=body,
        headers={**headers, "Content-Type": "application/json"},
        verify=ssl.create_default_context(cafile=str(emu.ca_cert)),
    )
    response.raise_for_status()
    data = response.json()
    return data["identity"]["id"], data["accessToken"]["token"]


def ident(user_id: str) -> dict[str, Any]:
    return {"communicationUser": {"id": user_id}}


class Actor:
    """One user's raw Chat API calls (async), asserting success."""

    def __init__(self, emu: Emulator, name: str) -> None:
        self.id, self.token = new_user(emu)
        self.name = name
        self.http = httpx.AsyncClient(
            base_url=emu.endpoint.rstrip("/"),
            verify=ssl.create_default_context(cafile=str(emu.ca_cert)),
            headers={"Authorization": f"Bearer {self.token}"},
        )

    async def aclose(self) -> None:
        await self.http.aclose()

    async def call(self, method: str, path: str, body: Any = None, status: int | None = None) -> Any:
        sep = "&" if "?" in path else "?"
        response = await self.http.request(method, f"{path}{sep}{V}", json=body)
        assert response.is_success, (response.status_code, response.text)
        if status is not None:
            assert response.status_code == status
        return response.json() if response.content else None

    async def create_thread(self, topic: str, *others: tuple[Actor, str | None]) -> str:
        participants = [self.participant(a, share) for a, share in others]
        body = await self.call("POST", "/chat/threads", {"topic": topic, "participants": participants})
        return str(body["chatThread"]["id"])

    def participant(self, actor: Actor, share: str | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"communicationIdentifier": ident(actor.id), "displayName": actor.name}
        if share is not None:
            out["shareHistoryTime"] = share
        return out

    async def send(self, thread: str, text: str) -> str:
        body = await self.call(
            "POST",
            f"/chat/threads/{quote(thread)}/messages",
            {"content": text, "senderDisplayName": self.name},
        )
        return str(body["id"])

    async def edit(self, thread: str, message_id: str, text: str) -> None:
        await self.call("PATCH", f"/chat/threads/{quote(thread)}/messages/{message_id}", {"content": text})

    async def delete(self, thread: str, message_id: str) -> None:
        await self.call("DELETE", f"/chat/threads/{quote(thread)}/messages/{message_id}")

    async def typing(self, thread: str) -> None:
        await self.call("POST", f"/chat/threads/{quote(thread)}/typing", {"senderDisplayName": self.name})

    async def read(self, thread: str, message_id: str) -> None:
        await self.call("POST", f"/chat/threads/{quote(thread)}/readReceipts", {"chatMessageId": message_id})

    async def add(self, thread: str, actor: Actor, share: str | None = None) -> None:
        body = {"participants": [self.participant(actor, share)]}
        await self.call("POST", f"/chat/threads/{quote(thread)}/participants/:add", body)

    async def remove(self, thread: str, actor: Actor) -> None:
        await self.call("POST", f"/chat/threads/{quote(thread)}/participants/:remove", ident(actor.id))

    async def topic(self, thread: str, topic: str) -> None:
        await self.call("PATCH", f"/chat/threads/{quote(thread)}", {"topic": topic})

    async def delete_thread(self, thread: str) -> None:
        await self.call("DELETE", f"/chat/threads/{quote(thread)}")


async def collect_until(
    source: AsyncIterator[Event], done: Callable[[list[Event]], bool], timeout: float = 20.0
) -> list[Event]:
    """Events from ``source`` until ``done(events)``; fails after ``timeout`` seconds."""
    events: list[Event] = []

    async def run() -> None:
        async for event in source:
            events.append(event)
            if done(events):
                return

    try:
        await asyncio.wait_for(run(), timeout)
    except asyncio.TimeoutError:
        raise AssertionError(f"timed out; got {[e.kind for e in events]}") from None
    return events


class Relay:
    """A TCP relay to ``target``: the test connects through it and can cut every connection for real."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.server: asyncio.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []
        self.connections = 0

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"https://127.0.0.1:{port}/"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self.writers += [writer, up_writer]

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def cut(self) -> None:
        """Reset every relayed connection (RST, as a network failure would)."""
        for writer in self.writers:
            sock = writer.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
        self.writers.clear()

    async def aclose(self) -> None:
        self.cut()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
