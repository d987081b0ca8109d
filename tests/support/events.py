"""Helpers of the real-time event tests: actors making raw Chat calls, collecting events, sentinels.

A test that must show nothing more arrives (no duplicate, nothing of another thread) ends its scenario
with a sentinel: :meth:`Actor.sentinel` sends a marker message; :func:`collect_until` waits for it
(:func:`is_sentinel`) and everything before it is what the scenario produced. Events come in order, so
whatever a bug added would be there; no quiet window of a guessed length.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import quote

import httpx

from chatnb.emulator import Emulator
from chatnb.events import ChatMessageReceivedEvent, ChatThreadCreatedEvent, Event
from tests.support.clients import new_user_token
from tests.support.waiting import async_wait_until

__all__ = ["SENTINEL", "Actor", "Sentinels", "collect_until", "ident", "is_sentinel", "kinds", "of"]

E = TypeVar("E", bound=Event)

V = "api-version=2024-03-07"
SENTINEL = "sentinel: the scenario is over"


def of(kind: type[E], events: Sequence[Event]) -> list[E]:
    """``events``, each asserted to be a ``kind`` (typed as such from here on)."""
    wrong = [event for event in events if not isinstance(event, kind)]
    assert not wrong, f"not a {kind.__name__}: {wrong[0]!r}"
    return [event for event in events if isinstance(event, kind)]


def kinds(events: Sequence[Event]) -> list[str]:
    return [e.kind for e in events]


def ident(user_id: str) -> dict[str, Any]:
    return {"communicationUser": {"id": user_id}}


class Actor:
    """One user's raw Chat API calls (async), asserting success."""

    def __init__(self, emu: Emulator, name: str) -> None:
        self.id, self.token = new_user_token(emu)
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
    source: AsyncIterator[Event],
    done: Callable[[list[Event]], bool],
    timeout: float = 20.0,
    into: list[Event] | None = None,
) -> list[Event]:
    """Events from ``source`` (appended to ``into``) until ``done(events)``; fails after ``timeout`` s."""
    events: list[Event] = [] if into is None else into

    async def run() -> None:
        async for event in source:
            events.append(event)
            if done(events):
                return

    try:
        await asyncio.wait_for(run(), timeout)
    except asyncio.TimeoutError:
        got = kinds(events) if len(events) <= 30 else Counter(kinds(events))
        raise AssertionError(f"timed out; got {got}") from None
    return events


def is_sentinel(event: Event) -> bool:
    """Whether ``event`` is one of :class:`Sentinels`' markers (their thread's creation or a message)."""
    if isinstance(event, ChatThreadCreatedEvent):
        return event.topic == SENTINEL
    return isinstance(event, ChatMessageReceivedEvent) and event.message == SENTINEL


class Sentinels:
    """Markers that end a scenario, in a thread of their own (so they change none of the test's threads):
    the first one creates the thread (``create_thread(topic)``), each next one is a message in it
    (``send(thread_id, text)``). :meth:`by` makes them for actors.

    Each marker is sent once the one before it came back. Push delivers in journal order, so one marker
    follows everything the scenario caused. A poller reports a round at a time and a marker sent after the
    one before arrived is seen in a later round: ``count`` markers prove ``count - 1`` complete rounds
    after the one that reported the scenario's last event.
    """

    def __init__(
        self, create_thread: Callable[[str], Awaitable[str]], send: Callable[[str, str], Awaitable[object]]
    ) -> None:
        self._create_thread = create_thread
        self._send = send
        self.thread: str | None = None
        self.sent = 0

    @classmethod
    def by(cls, writer: Actor, *readers: Actor) -> Sentinels:
        """Markers ``writer`` sends, in a thread with ``readers``."""
        return cls(lambda topic: writer.create_thread(topic, *((r, None) for r in readers)), writer.send)

    async def send(self) -> None:
        if self.thread is None:
            self.thread = await self._create_thread(SENTINEL)
        else:
            await self._send(self.thread, SENTINEL)
        self.sent += 1

    async def collect(
        self, source: AsyncIterator[Event], count: int = 1, timeout: float = 20.0
    ) -> list[Event]:
        """Send ``count`` markers, each once the one before came from ``source``; the events ``source``
        gave meanwhile (the markers left out)."""
        events: list[Event] = []
        for _ in range(count):
            await self.send()
            more = await collect_until(source, lambda es: is_sentinel(es[-1]), timeout)
            events += more[:-1]
        return events

    async def settle(self, events: list[Event], count: int = 1, timeout: float = 20.0) -> None:
        """:meth:`collect` for a source a task of the test reads into ``events``; the markers stay in it."""
        for _ in range(count):
            await self.send()
            await async_wait_until(
                lambda: sum(map(is_sentinel, events)) >= self.sent, "the sentinel", timeout
            )

    async def drain(self, source: AsyncIterator[Event], timeout: float = 20.0) -> list[Event]:
        """The events of ``source`` until every marker sent so far came from it (the markers left out)."""
        if not self.sent:
            return []

        def done(events: list[Event]) -> bool:
            return sum(map(is_sentinel, events)) == self.sent

        return [e for e in await collect_until(source, done, timeout) if not is_sentinel(e)]
