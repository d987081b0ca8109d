"""What the sync flavour does its own way; the async twin is :mod:`chatnb.aio._flavour` (see there).

Same names as the async module, so that the shells generated from the async sources (``scripts/unasync.py``)
read the same: threads instead of tasks, a direct call instead of a worker thread, and an attempt's
deadline applied to each socket operation (:mod:`chatnb._deadline`) instead of ``asyncio.timeout``.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from ._deadline import default_transport, within
from ._tokens import token_getter, token_text, wrap_credential

__all__ = [
    "Ahead",
    "Background",
    "Lock",
    "Prefetcher",
    "as_credential",
    "bearer_token",
    "call_refresher",
    "check_refresher",
    "default_transport",
    "offload",
    "offload_whole",
    "require_client",
    "run_concurrently",
    "within",
]

T = TypeVar("T")

Lock = threading.RLock
"""The lock of a credential's refresh: only one thread refreshes, the others wait for its token."""

_ASYNC_CREDENTIAL = (
    "a sync client needs a sync credential, not the async {name} of chatnb.aio: use "
    "chatnb.CommunicationTokenCredential, or the chatnb.aio client"
)


def offload(function: Callable[..., T], *args: Any) -> T:
    """``function(*args)``, here and now (the async twin hands it to a worker thread)."""
    return function(*args)


def offload_whole(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``function(*args, **kwargs)``, here and now (the async twin hands it to a worker thread)."""
    return function(*args, **kwargs)


def run_concurrently(
    function: Callable[[Any], None], items: Iterable[Any], limit: int, on_stop: Callable[[], None]
) -> None:
    """``function(item)`` for every item, at most ``limit`` at once (in threads), in order of start.

    The first exception of any call stops the others: ``on_stop()`` is called (they end at their next
    check of it), every thread is waited for, and the exception is raised; so is a ``KeyboardInterrupt``
    of the caller. With ``limit`` 1 the calls run here, one after another.
    """
    queue = list(items)
    if limit <= 1 or len(queue) <= 1:
        for item in queue:
            function(item)
        return
    pending = iter(queue)
    lock = threading.Lock()
    errors: list[BaseException] = []

    def worker() -> None:
        while not errors:
            with lock:
                item = next(pending, _DONE)
            if item is _DONE:
                return
            try:
                function(item)
            except BaseException as exc:
                errors.append(exc)
                on_stop()
                return

    threads = [
        threading.Thread(target=worker, name=f"chatnb-export-{i}", daemon=True)
        for i in range(min(limit, len(queue)))
    ]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            thread.join()
    except BaseException as exc:  # Ctrl-C while waiting: stop the workers, wait for them, go on up
        errors.append(exc)
        on_stop()
        for thread in threads:
            thread.join()
    if errors:
        raise errors[0]


_DONE = object()


def call_refresher(refresher: Callable[[], Any]) -> Any:
    """What a token refresher returns (called here and now)."""
    return refresher()


def check_refresher(refresher: object) -> None:
    """Check a credential's ``token_refresher``.

    Raises:
        TypeError: for a coroutine function (it needs the chatnb.aio credential).
    """
    if inspect.iscoroutinefunction(refresher):
        raise TypeError(
            "token_refresher is a coroutine function: use chatnb.aio.CommunicationTokenCredential for it"
        )


def bearer_token(credential: object) -> str:
    """The current access token of ``credential``: a token string, or anything with a sync
    ``get_token()`` returning a string or an object with ``.token``.

    Raises:
        TypeError: if it has no ``get_token()``, an async one, or it returns no token.
        ValueError: for a token a header cannot carry (the message does not show it).
    """
    if isinstance(credential, str):
        return token_text(credential)
    get = token_getter(credential)
    if inspect.iscoroutinefunction(get):
        raise TypeError(_ASYNC_CREDENTIAL.format(name=type(credential).__name__))
    result = get()
    if inspect.isawaitable(result):
        if inspect.iscoroutine(result):
            result.close()  # never awaited: no "coroutine was never awaited" warning on top
        raise TypeError(_ASYNC_CREDENTIAL.format(name=type(credential).__name__))
    return token_text(result)


def as_credential(credential: object, wrap: Callable[[str], Any]) -> Any:
    """A sync client's ``credential`` argument: a token string wrapped with ``wrap``, or a sync credential.

    Raises:
        TypeError: for anything else, an async credential included (it names the fix).
    """
    checked = wrap_credential(credential, wrap)
    if inspect.iscoroutinefunction(checked.get_token):
        raise TypeError(_ASYNC_CREDENTIAL.format(name=type(checked).__name__))
    return checked


def require_client(client: object, function: str) -> None:
    """Check that ``function`` (``"export_history"``...) of :mod:`chatnb` was given a sync client.

    Raises:
        TypeError: for a chatnb.aio client, naming the fix.
    """
    close = getattr(client, "close", None)
    if close is not None and inspect.iscoroutinefunction(close):
        name = type(client).__name__
        raise TypeError(
            f"chatnb.{function} needs a sync chatnb client, not a chatnb.aio.{name}: use "
            f"await chatnb.aio.{function}(...), or pass a chatnb.{name}"
        )


class Background:
    """One background job of an object (a credential's proactive refresh): a daemon thread.

    ``start()`` starts the thread (once), ``sleep()`` is the job's wait, cut short by ``stop()``; the job
    checks its owner's state after each wait.
    """

    def __init__(self, job: Callable[[], None], name: str) -> None:
        self._job = job
        self._name = name
        self._thread: threading.Thread | None = None
        self._stopped = threading.Event()

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._job, name=self._name, daemon=True)
            self._thread.start()

    def sleep(self, seconds: float) -> None:
        self._stopped.wait(min(max(seconds, 0.0), threading.TIMEOUT_MAX))

    def stop(self) -> None:
        self._stopped.set()


class Ahead:
    """Work started ahead of need (the export's next page): its ``result()``, or ``cancel()`` it."""

    def __init__(self, future: Future[Any]) -> None:
        self._future = future

    def result(self) -> Any:
        return self._future.result()

    def cancel(self) -> None:
        self._future.cancel()  # one already running finishes; the Prefetcher waits for it when it closes


class Prefetcher:
    """Starts work ahead of need in one helper thread: ``with Prefetcher() as ahead: ahead.start(...)``."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="chatnb-export")

    def __enter__(self) -> Prefetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def start(self, function: Callable[..., Any], *args: Any) -> Ahead:
        """Run ``function(*args)`` in the helper thread."""
        return Ahead(self._pool.submit(function, *args))
