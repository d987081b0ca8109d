"""The clients' real-time seams: the reminder when ``on()`` is not followed by a start, the stream
position probed through the client's own transport, the stream's ``retry:`` field as the reconnect
floor, and ``default_display_name``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import ssl
import warnings
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

import chatnb
import chatnb.aio
from chatnb.emulator import Emulator
from chatnb.events import Event
from chatnb.realtime import EventStream
from tests.support.clients import aw, closing, new_user_token
from tests.support.tokens import fake_jwt

ENDPOINT = "https://acs.example.test"
TOKEN = fake_jwt(seconds=3600)
REMINDER = r"ChatClient\.start_realtime_notifications\(\)"
RETRY_LOG = re.compile(r"event stream: (.*); retry in ([\d.]+)s")


@contextlib.contextmanager
def no_reminder() -> Iterator[None]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    assert not [w for w in caught if "start_realtime_notifications" in str(w.message)]


async def end_of_cell() -> None:
    for _ in range(3):  # what the kernel's loop runs once the cell's code returns
        await asyncio.sleep(0)  # one turn of the loop each: the behaviour under test, not a wait


def offline(request: httpx.Request) -> httpx.Response:
    return httpx.Response(404)


async def test_on_without_a_start_warns_once_when_the_cell_ends() -> None:
    chat = chatnb.ChatClient(ENDPOINT, TOKEN, transport=httpx.MockTransport(offline))
    with pytest.warns(UserWarning, match=REMINDER):
        chat.on("chatMessageReceived", print)
        await end_of_cell()
    with no_reminder():  # once per client
        chat.on("chatMessageEdited", print)
        await end_of_cell()
        chat.close()


def test_on_without_a_start_in_a_script_warns_when_the_client_closes() -> None:
    chat = chatnb.ChatClient(ENDPOINT, TOKEN, transport=httpx.MockTransport(offline))
    chat.on("chatMessageReceived", print)
    with pytest.warns(UserWarning, match=REMINDER):
        chat.close()
    with no_reminder(), chatnb.ChatClient(ENDPOINT, TOKEN, transport=httpx.MockTransport(offline)) as other:
        other.off("chatMessageReceived")  # no handler: nothing to remind of


async def test_an_async_client_reminds_too_unless_an_iterator_will_start_it() -> None:
    transport = httpx.MockTransport(offline)
    async with chatnb.aio.ChatClient(ENDPOINT, TOKEN, transport=transport) as chat:
        with pytest.warns(UserWarning, match=REMINDER):
            chat.on("chatMessageReceived", print)
            await end_of_cell()
    with no_reminder():
        async with chatnb.aio.ChatClient(ENDPOINT, TOKEN, transport=transport) as chat:
            chat.on("chatMessageReceived", print)
            events = chat.events()  # starts the notifications on its first use
            await end_of_cell()
            await events.aclose()


@pytest.mark.parametrize("flavour", ["sync", "async"])
async def test_on_then_start_does_not_remind(emulator: Emulator, flavour: str) -> None:
    _, token = new_user_token(emulator)
    chat: Any = (chatnb.ChatClient if flavour == "sync" else chatnb.aio.ChatClient)(emulator.endpoint, token)
    with no_reminder():
        async with closing(chat):
            chat.on("chatMessageReceived", print)
            started = chat.start_realtime_notifications()
            if flavour == "async":  # as the widgets start it: a task, run after on() returned
                started = asyncio.ensure_future(started)
            await end_of_cell()
            await aw(started)
            await aw(chat.stop_realtime_notifications())


async def test_the_stream_position_is_probed_through_the_clients_own_transport(emulator: Emulator) -> None:
    _, token = new_user_token(emulator)
    seen: list[str] = []

    class Counting(httpx.HTTPTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            seen.append(f"{request.method} {request.url.path} {request.headers['authorization'][:7]}")
            return super().handle_request(request)

    context = ssl.create_default_context(cafile=str(emulator.ca_cert))
    with chatnb.ChatClient(emulator.endpoint, token, transport=Counting(verify=context)) as chat:
        chat.start_realtime_notifications()  # in a cell: probe the position, then stream on this loop
        assert seen == ["GET /chatnb/events Bearer "]
        chat.stop_realtime_notifications()
        await end_of_cell()


def stream_answer(body: str) -> httpx.Response:
    return httpx.Response(200, content=body.encode(), headers={"content-type": "text/event-stream"})


@pytest.mark.parametrize(("backoff", "floored"), [(None, True), ((0.01, 0.02), False)])
async def test_the_streams_retry_field_is_the_reconnect_floor(
    caplog: pytest.LogCaptureFixture, backoff: Any, floored: bool
) -> None:
    caplog.set_level(logging.DEBUG, logger="chatnb.realtime")
    resumed: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        resumed.append(request.headers.get("last-event-id"))
        connected = json.dumps({"lastEventId": "5"})
        return stream_answer(
            f"retry: 300\n\nevent: realTimeNotificationConnected\nid: 5\ndata: {connected}\n\n"
        )

    stream = EventStream(ENDPOINT, TOKEN, transport=httpx.MockTransport(handler), backoff=backoff)
    iterator = stream.__aiter__()
    events: list[Event] = [await anext(iterator) for _ in range(4)]  # connected, dropped, connected...
    await iterator.aclose()
    assert [e.kind for e in events] == [
        "realTimeNotificationConnected",
        "realTimeNotificationDisconnected",
    ] * 2
    assert stream.retry_field == 0.3 and resumed[:2] == [None, "5"]
    logged = [RETRY_LOG.fullmatch(r.getMessage()) for r in caplog.records]
    waits = [(m[1], float(m[2])) for m in logged if m]
    assert waits[0][0] == "the server ended the stream"
    if floored:
        assert waits[0][1] >= 0.3  # the server's 300 ms, although the backoff's first step is 0.1-0.2 s
    else:
        assert waits[0][1] <= 0.02  # a backoff given explicitly is used as it is


@pytest.mark.parametrize("flavour", ["sync", "async"])
async def test_a_default_display_name_signs_messages_and_typing(flavour: str) -> None:
    bodies: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return httpx.Response(201, json={"id": "m1"})

    cls: Any = chatnb.ChatClient if flavour == "sync" else chatnb.aio.ChatClient
    chat = cls(ENDPOINT, TOKEN, transport=httpx.MockTransport(handler))
    async with closing(chat):
        thread = chat.get_chat_thread_client("19:t@thread.v2", default_display_name="Jack")
        assert thread.default_display_name == "Jack"
        assert chat.get_chat_thread_client("19:t@thread.v2").default_display_name is None
        with pytest.raises(AttributeError):
            thread.default_display_name = "Jill"
        await aw(thread.send_message("hi"))
        await aw(thread.send_message("hi", sender_display_name="Jill"))
        await aw(thread.send_typing_notification())
        with pytest.raises(TypeError, match="default_display_name"):
            chat.get_chat_thread_client("19:t@thread.v2", default_display_name=7)
    assert [b.get("senderDisplayName") for b in bodies] == ["Jack", "Jill", "Jack"]
