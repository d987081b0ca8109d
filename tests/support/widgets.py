"""A stand-in for the browser, for widget tests without a kernel (their fixtures are in ``conftest.py``).

ipywidgets opens a comm per widget through ``comm.create_comm``; :class:`FrontEnd` installs a factory
whose comms record every message a widget sends (state updates and custom messages, with their size in
bytes as the kernel would serialise them), and hands the widget what a browser would send
(:meth:`FrontEnd.say`). Waits are on a condition notified by each message, never on sleeps.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import comm
from comm.base_comm import BaseComm

import chatnb
from chatnb.widgets import Job
from chatnb.widgets._base import ChatWidget

__all__ = ["Chat", "FrontEnd", "load_job"]


@dataclass
class Chat:
    """Jack and Geeta (new users of a session) in a new thread."""

    session: chatnb.Session
    jack: chatnb.User
    geeta: chatnb.User
    thread_id: str

    def thread(self, user: chatnb.User) -> chatnb.ChatThreadClient:
        return user.thread(self.thread_id)


def load_job(widget: ChatWidget) -> Job:
    """The job loading ``widget``'s first content (a widget that loads has one from its constructor)."""
    assert widget.load_job is not None, f"{type(widget).__name__} has no load job"
    return widget.load_job


class _RecordingComm(BaseComm):
    def __init__(self, front_end: FrontEnd, *args: Any, **kwargs: Any) -> None:
        self.front_end = front_end
        super().__init__(*args, **kwargs)

    def publish_msg(
        self, msg_type: str, data: Any = None, metadata: Any = None, buffers: Any = None, **keys: Any
    ) -> None:
        self.front_end.record(self.comm_id, msg_type, data or {}, buffers or [])


class FrontEnd:
    """Records what widgets send; sends them what a browser would."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, dict[str, Any], int]] = []  # (comm id, msg type, data, bytes)
        self._changed = threading.Condition()

    def create_comm(self, *args: Any, **kwargs: Any) -> BaseComm:
        return _RecordingComm(self, *args, **kwargs)

    def install(self, monkeypatch: Any) -> FrontEnd:
        monkeypatch.setattr(comm, "create_comm", self.create_comm)
        return self

    def record(self, comm_id: str, msg_type: str, data: dict[str, Any], buffers: list[Any]) -> None:
        size = len(json.dumps(data, default=str, separators=(",", ":"))) + sum(len(b) for b in buffers)
        with self._changed:
            self.sent.append((comm_id, msg_type, data, size))
            self._changed.notify_all()

    # -- reading ----------------------------------------------------------------------------------

    def open_widgets(self) -> int:
        """How many widget models are open, as the front end sees them (comms opened and not closed):
        what a leak grows."""
        opened = {c for c, kind, *_ in self.sent if kind == "comm_open"}
        closed = {c for c, kind, *_ in self.sent if kind == "comm_close"}
        return len(opened - closed)

    def mark(self) -> int:
        return len(self.sent)

    def custom(self, widget: Any, since: int = 0) -> list[dict[str, Any]]:
        """The custom messages ``widget`` sent (their content), oldest first."""
        return [
            d["content"]
            for c, kind, d, _ in self.sent[since:]
            if c == widget.comm.comm_id and kind == "comm_msg" and d.get("method") == "custom"
        ]

    def states(self, widget: Any, since: int = 0) -> list[dict[str, Any]]:
        """The state updates ``widget`` sent."""
        return [
            d["state"]
            for c, kind, d, _ in self.sent[since:]
            if c == widget.comm.comm_id and kind == "comm_msg" and d.get("method") == "update"
        ]

    def bytes(self, since: int = 0) -> int:
        """Bytes of every comm message sent since ``since`` (opens included)."""
        return sum(size for *_, size in self.sent[since:])

    def wait(self, ready: Callable[[], Any], timeout: float = 30.0) -> Any:
        """Wait until ``ready()`` is truthy (checked after every message sent); its value.

        Raises:
            TimeoutError: if it is not within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                value = ready()
                if value:
                    return value
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"not ready within {timeout} s")
                self._changed.wait(remaining)

    def wait_op(
        self, widget: Any, op: str, since: int = 0, timeout: float = 30.0, **match: Any
    ) -> dict[str, Any]:
        """Wait for a custom message ``{"op": op, **match}`` from ``widget`` (sent after ``since``)."""

        def found() -> dict[str, Any] | None:
            for content in self.custom(widget, since):
                if content.get("op") == op and all(content.get(k) == v for k, v in match.items()):
                    return content
            return None

        result: dict[str, Any] = self.wait(found, timeout)
        return result

    # -- what a browser sends ---------------------------------------------------------------------

    @staticmethod
    def say(widget: Any, content: dict[str, Any]) -> None:
        """Deliver a custom message from the browser to ``widget``, as ipykernel would."""
        widget.comm.handle_msg({"content": {"data": {"method": "custom", "content": content}}, "buffers": []})

    @staticmethod
    def set(widget: Any, **state: Any) -> None:
        """Deliver a state change from the browser (a trait the user changed)."""
        widget.comm.handle_msg(
            {"content": {"data": {"method": "update", "state": state, "buffer_paths": []}}, "buffers": []}
        )
