"""A thread's history as the transcript needs it: the latest page first, then older pages on request.

Pages come from ``ChatThreadClient.iter_message_pages`` (newest first, one request each); the listing's
``continuation_token`` is kept between requests, so "load older" resumes where the last page ended, down
to the thread's first message. Every request runs on the widget's :class:`~._live.Worker`, never on the
kernel's loop; a request for an older page made while one is under way follows it.
"""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Callable
from typing import Any

from ._transcript import TranscriptItem, item_from_message
from ._worker import Job, Worker, relay

__all__ = ["History"]


def _done(value: Any) -> Job:
    future: concurrent.futures.Future[Any] = concurrent.futures.Future()
    future.set_result(value)
    return Job(future)


class History:
    """Paging through ``thread_client``'s messages, ``page_size`` at a time.

    Attributes:
        complete: whether the first message of the thread has been fetched.
        pages: how many pages were fetched.
    """

    def __init__(self, thread_client: Any, worker: Worker, page_size: int) -> None:
        self.thread_client = thread_client
        self.worker = worker
        self.page_size = page_size
        self.token: str | None = None
        self.complete = False
        self.pages = 0
        self._lock = threading.Lock()
        self._pending: Job | None = None

    @staticmethod
    def items(page: list[Any], names: dict[str, str]) -> list[TranscriptItem]:
        """A page's messages as transcript items, oldest first (so names are known before they are used)."""
        return [item_from_message(m, names) for m in reversed(page)]

    def open(
        self,
        on_opened: Callable[[list[Any], list[Any], list[Any]], None],
        on_failed: Callable[[Exception], None],
    ) -> Job:
        """Fetch the latest page, the read receipts and the participants; then ``on_opened(page, receipts,
        participants)`` (or ``on_failed(exc)``), on the worker."""
        fetch = self._open_async if self.worker.is_async else self._open_sync
        with self._lock:
            self._pending = self.worker.run(fetch, on_done=lambda got: on_opened(*got), on_error=on_failed)
            return self._pending

    def _open_sync(self) -> tuple[list[Any], list[Any], list[Any]]:
        page = self._page_sync()
        return (
            page,
            list(self.thread_client.iter_read_receipts()),
            list(self.thread_client.iter_participants()),
        )

    async def _open_async(self) -> tuple[list[Any], list[Any], list[Any]]:
        page = await self._page_async()
        receipts = [r async for r in self.thread_client.iter_read_receipts()]
        people = [p async for p in self.thread_client.iter_participants()]
        return page, receipts, people

    def older(
        self, on_page: Callable[[list[Any]], int], on_failed: Callable[[Exception], None] | None = None
    ) -> Job:
        """Fetch the next older page and hand it to ``on_page`` (whose return value is the job's result);
        a job with result ``0`` at once if the first message is already in."""
        with self._lock:
            if self._pending is not None and not self._pending.done():
                pending = self._pending.future
                chained: concurrent.futures.Future[Any] = concurrent.futures.Future()
                pending.add_done_callback(
                    lambda _: self.older(on_page, on_failed).future.add_done_callback(
                        lambda done: relay(done, chained)
                    )
                )
                return Job(chained)
            if self.complete:
                return _done(0)
            fetch = self._page_async if self.worker.is_async else self._page_sync
            self._pending = self.worker.run(fetch, on_done=on_page, on_error=on_failed)
            return self._pending

    def _kwargs(self) -> dict[str, Any]:
        if self.token is not None:
            return {"continuation_token": self.token}
        return {"results_per_page": self.page_size}

    def _page_sync(self) -> list[Any]:
        page = next(iter(self.thread_client.iter_message_pages(**self._kwargs())))
        return self._turn(page)

    async def _page_async(self) -> list[Any]:
        async for page in self.thread_client.iter_message_pages(**self._kwargs()):
            return self._turn(page)
        return self._turn(None)

    def _turn(self, page: Any) -> list[Any]:
        self.pages += 1
        self.token = None if page is None else page.continuation_token
        self.complete = self.token is None
        return [] if page is None else list(page.items)
