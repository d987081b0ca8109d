"""The widgets' threads-and-loops model (``chatnb/widgets/_live.py``), against the real emulator.

Under ipykernel 7 with JupyterLab 4.6, widget messages from the browser arrive on a *subshell* thread
that runs a loop of its own; real-time handlers run on the kernel's loop. These tests deliver browser
messages from such threads and check that network calls run on the widget's worker (never on the caller's
thread or loop), that a message is sent once however many threads ask, that an async client's calls run
on the loop the widget was made on, and that the front end, applying the operations in the order it got
them, ends up with exactly the kernel's state.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

import chatnb
from chatnb.emulator import Emulator
from chatnb.widgets import ChatView, MessageComposer
from chatnb.widgets._outbox import Outgoing
from chatnb.widgets._worker import flush
from tests.support.widgets import Chat, FrontEnd, load_job

WAIT = 30.0


class ThreadRecorder(httpx.BaseTransport):
    """The real transport, noting which thread made each request."""

    def __init__(self, verify: Any) -> None:
        self.inner = httpx.HTTPTransport(verify=verify)
        self.threads: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.threads.append(threading.current_thread().name)
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


def on_subshell(fn: Any) -> None:
    """Run ``fn`` on a new thread with an event loop of its own running, as a kernel subshell does."""
    errors: list[BaseException] = []

    async def main() -> None:
        fn()

    def run() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run, name="subshell")
    thread.start()
    thread.join(WAIT)
    assert not thread.is_alive() and not errors, errors


@pytest.fixture
def rig(chat: Chat) -> Iterator[Any]:
    """The chat, and a thread client of Jack's whose requests note their thread."""
    thread = chat.thread(chat.jack)
    recorder = ThreadRecorder(thread.connection_verify)
    client = chatnb.ChatThreadClient(thread.endpoint, thread.credential, thread.thread_id, transport=recorder)
    yield chat.session, chat.jack, chat.geeta, thread, client, recorder
    client.close()


def test_browser_messages_from_a_subshell_thread_send_on_the_worker_once(rig: Any, front: FrontEnd) -> None:
    _session, _jack, _geeta, thread, client, recorder = rig
    composer = MessageComposer(client, display_name="Jack")
    callers = [
        threading.Thread(target=front.say, args=(composer, {"op": "send", "text": "once", "local": "l-1"}))
    ]
    callers += [
        threading.Thread(
            target=on_subshell,
            args=(lambda: front.say(composer, {"op": "send", "text": "once", "local": "l-1"}),),
        )
        for _ in range(7)
    ]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join(WAIT)
    composer.outbox.get("l-1").job.result(WAIT)  # type: ignore[union-attr]
    assert composer.sent == 1 and [
        c for c in [m.content for m in thread.iter_messages()] if c and c.message == "once"
    ]
    assert len([m for m in thread.iter_messages() if m.content and m.content.message == "once"]) == 1
    assert recorder.threads and set(recorder.threads) == {"chatnb-widget_0"}  # never the caller's thread
    composer.close()


def test_sends_from_many_threads_all_go_out_in_the_order_asked(rig: Any, front: FrontEnd) -> None:
    _session, _jack, _geeta, thread, client, _recorder = rig
    composer = MessageComposer(client)
    lock = threading.Lock()
    order: list[str] = []

    def ask(i: int) -> None:
        with lock:  # the order the requests reach the widget
            order.append(f"n{i}")
            front.say(composer, {"op": "send", "text": f"n{i}", "local": f"l-{i}"})

    callers = [threading.Thread(target=on_subshell, args=(lambda i=i: ask(i),)) for i in range(12)]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join(WAIT)
    for i in range(12):
        composer.outbox.get(f"l-{i}").job.result(WAIT)  # type: ignore[union-attr]
    listed = [m.content.message for m in reversed(list(thread.iter_messages())) if str(m.type) == "text"]
    assert listed == order  # one worker, one at a time: the service got them in that order
    composer.close()


def replay(ops: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """What the browser's transcript holds after applying ``ops`` in order (as chatnb.js does)."""
    held: dict[str, dict[str, Any]] = {}
    for op in ops:
        if op["op"] in ("reset", "older"):
            for m in op["messages"]:
                held[m["id"]] = dict(m)
        elif op["op"] == "add":
            held[op["m"]["id"]] = dict(op["m"])
        elif op["op"] == "patch" and op["id"] in held:
            m = held.pop(op["id"])
            for key, value in op["m"].items():
                if value is None:
                    m.pop(key, None)
                else:
                    m[key] = value
            held[m["id"]] = m
        elif op["op"] == "remove":
            held.pop(op["id"], None)
        elif op["op"] == "replace":
            held.pop(op["id"], None)
            held[op["m"]["id"]] = dict(op["m"])
    return held


def test_the_browser_ends_with_the_kernels_state_whichever_threads_changed_it(
    rig: Any, front: FrontEnd
) -> None:
    _session, jack, geeta, thread, _client, _recorder = rig
    view = ChatView(jack, thread.thread_id)
    composer = MessageComposer(jack, thread.thread_id)
    view.follow(composer.outbox)
    load_job(view).result(WAIT)
    flush()  # its opening messages are out
    front.say(view, {"op": "hello", "view": "v"})
    geeta_thread = geeta.thread(thread.thread_id)
    others = threading.Thread(target=lambda: [geeta_thread.send_message(f"g{i}") for i in range(10)])
    others.start()  # her messages arrive as events on the real-time thread meanwhile
    callers = [
        threading.Thread(
            target=on_subshell,
            args=(lambda i=i: front.say(composer, {"op": "send", "text": f"j{i}", "local": f"j-{i}"}),),
        )
        for i in range(10)
    ]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join(WAIT)
    others.join(WAIT)
    for i in range(10):
        composer.outbox.get(f"j-{i}").job.result(WAIT)  # type: ignore[union-attr]
    front.wait(
        lambda: len([i for i in view.items if not i.system]) == 20 and not any(i.status for i in view.items)
    )
    assert flush()
    held = replay(front.custom(view))
    kernel = {i.id: i for i in view.items}
    assert set(held) == set(kernel)  # no pending bubble left over, nothing missing, nothing doubled
    assert sorted(held[i]["h"] for i in held if not kernel[i].system) == sorted(
        [f"g{i}" for i in range(10)] + [f"j{i}" for i in range(10)]
    )
    view.close()
    composer.close()


async def test_an_async_clients_calls_run_on_the_loop_the_widget_was_made_on(
    emulator: Emulator, rig: Any, front: FrontEnd
) -> None:
    from chatnb.aio import ChatThreadClient, CommunicationTokenCredential

    _session, jack, _geeta, thread, _client, _recorder = rig
    loop_thread = threading.current_thread().name
    seen: list[str] = []

    class AsyncRecorder(httpx.AsyncBaseTransport):
        def __init__(self) -> None:
            self.inner = httpx.AsyncHTTPTransport(verify=thread.connection_verify)

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            seen.append(threading.current_thread().name)
            return await self.inner.handle_async_request(request)

    token = jack.credential.get_token().token
    async_thread = ChatThreadClient(
        emulator.endpoint, CommunicationTokenCredential(token), thread.thread_id, transport=AsyncRecorder()
    )
    composer = MessageComposer(async_thread, display_name="Jack", typing_interval=0)
    done = asyncio.Event()

    def on_entry(entry: Outgoing) -> None:
        if entry.state == "sent":
            asyncio.get_running_loop().call_soon(done.set)

    composer.outbox.listen(on_entry)
    await asyncio.to_thread(
        on_subshell, lambda: front.say(composer, {"op": "send", "text": "async", "local": "a-1"})
    )
    await asyncio.wait_for(done.wait(), WAIT)
    assert (
        composer.sent == 1 and seen and set(seen) == {loop_thread}
    )  # on the widget's loop, not the subshell's
    composer.close()
    await async_thread.close()
