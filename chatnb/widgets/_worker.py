"""Where the widgets' work runs: a :class:`Worker` for network calls, one sender thread for what goes
to the browser, and :class:`Job` for what is under way (see :mod:`chatnb.widgets._live` for the model).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import inspect
import queue
import threading
from collections.abc import Callable, Generator
from typing import Any

import ipywidgets

from ._live import is_async_client

__all__ = ["Job", "Worker", "emit", "flush", "relay"]

_OUTBOX: queue.SimpleQueue[tuple[Any, Any]] = queue.SimpleQueue()
_SENDER: threading.Thread | None = None
_SENDER_LOCK = threading.Lock()


def _send_forever() -> None:
    while True:
        widget, content = _OUTBOX.get()
        if isinstance(content, threading.Event):
            content.set()
            continue
        if getattr(widget, "comm", None) is not None:
            with contextlib.suppress(Exception):  # a widget closed meanwhile
                ipywidgets.Widget.send(widget, content)  # (MessageComposer.send is another send)


def emit(widget: Any, content: dict[str, Any]) -> None:
    """Queue ``content`` as a custom message from ``widget`` to its front end; one thread sends them
    all, in the order queued (see the module docstring)."""
    global _SENDER
    if _SENDER is None:
        with _SENDER_LOCK:
            if _SENDER is None:
                _SENDER = threading.Thread(target=_send_forever, name="chatnb-widget-sender", daemon=True)
                _SENDER.start()
    _OUTBOX.put((widget, content))


def flush(timeout: float = 10.0) -> bool:
    """Wait until every message queued so far was handed to its comm (``False`` on timeout)."""
    if _SENDER is None:
        return True
    done = threading.Event()
    _OUTBOX.put((None, done))
    return done.wait(timeout)


class Job:
    """A widget action under way (a send, an edit, a page of history): ``await job`` in a notebook cell,
    or ``job.result(timeout)`` from a script or test. Its outcome is also shown in the widget."""

    def __init__(
        self, future: concurrent.futures.Future[Any], loop: asyncio.AbstractEventLoop | None = None
    ) -> None:
        self.future = future
        self.loop = loop  # the loop an async client's job runs on

    def done(self) -> bool:
        return self.future.done()

    def result(self, timeout: float | None = 30.0) -> Any:
        """Wait for the outcome (re-raising the error the widget showed).

        Raises:
            TimeoutError: if it is not done within ``timeout`` seconds.
            RuntimeError: on the loop the job runs on (it could never finish: ``await`` it there).
        """
        if self.loop is not None and not self.future.done():
            try:
                running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is self.loop:
                raise RuntimeError("this job runs on the loop you are waiting on: await it instead")
        try:
            return self.future.result(timeout)
        except concurrent.futures.TimeoutError:
            raise TimeoutError(f"the widget action did not finish within {timeout} s") from None

    def __await__(self) -> Generator[Any, None, Any]:
        return asyncio.wrap_future(self.future).__await__()

    def __repr__(self) -> str:
        state = "done" if self.future.done() else "running"
        return f"<Job {state}>"


class Worker:
    """Runs a widget's network calls off the kernel's loop, one at a time, in the order asked.

    A sync client's calls run on one daemon thread (made on first use, gone after :meth:`close`); an
    async client's coroutines run on ``loop`` (the loop the widget was made on), scheduled thread-safely
    from wherever the request comes from.
    """

    def __init__(self, client: Any, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.is_async = is_async_client(client)
        if loop is None:
            with contextlib.suppress(RuntimeError):
                loop = asyncio.get_running_loop()
        self.loop = loop
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._serial: asyncio.Lock | None = None
        self.closed = False

    def run(
        self,
        fn: Callable[..., Any],
        *args: Any,
        on_done: Callable[[Any], Any] | None = None,
        on_error: Callable[[Exception], None] | None = None,
        **kwargs: Any,
    ) -> Job:
        """Call ``fn(*args, **kwargs)`` off the loop; then ``on_done(result)`` (the job's result is what
        it returns) or ``on_error(exc)`` (the job raises ``exc``), on the worker's thread or loop."""
        outcome: concurrent.futures.Future[Any] = concurrent.futures.Future()

        def settle(inner: concurrent.futures.Future[Any]) -> None:
            try:
                value = inner.result()
            except Exception as exc:
                if on_error is not None:
                    on_error(exc)
                outcome.set_exception(exc)
                return
            try:
                outcome.set_result(on_done(value) if on_done is not None else value)
            except Exception as exc:
                outcome.set_exception(exc)

        try:
            inner = self._submit(fn, args, kwargs)
        except RuntimeError as exc:
            settle(_failed(exc))
        else:
            inner.add_done_callback(settle)
        return Job(outcome, self.loop if self.is_async else None)

    def _submit(
        self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> concurrent.futures.Future[Any]:
        if self.closed:
            raise RuntimeError("the widget is closed")
        if not self.is_async:
            with self._lock:
                if self._pool is None:
                    self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="chatnb-widget")
                return self._pool.submit(fn, *args, **kwargs)
        if self.loop is None or self.loop.is_closed():
            raise RuntimeError("an async client's widget must be made where its event loop runs")
        return asyncio.run_coroutine_threadsafe(self._in_order(fn, args, kwargs), self.loop)

    async def _in_order(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if self._serial is None:
            self._serial = asyncio.Lock()
        async with self._serial:
            result = fn(*args, **kwargs)
            return await result if inspect.isawaitable(result) else result

    def close(self) -> None:
        """Drop calls not yet started and let the thread end (a call under way finishes)."""
        self.closed = True
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)


def relay(source: concurrent.futures.Future[Any], target: concurrent.futures.Future[Any]) -> None:
    """Settle ``target`` as ``source`` was settled (a done-callback's body)."""
    exc = source.exception()
    if exc is not None:
        target.set_exception(exc)
    else:
        target.set_result(source.result())


def _failed(exc: Exception) -> concurrent.futures.Future[Any]:
    future: concurrent.futures.Future[Any] = concurrent.futures.Future()
    future.set_exception(exc)
    return future
