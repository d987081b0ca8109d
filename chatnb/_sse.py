"""A Server-Sent Events decoder (sans-I/O), bounded: the event stream of :mod:`chatnb._stream` reads
through it.

It follows the WHATWG HTML rules, and refuses what no event stream needs: a line longer than
:data:`MAX_LINE` characters (1 MiB) or an event whose data is longer than :data:`MAX_EVENT` (4 MiB). It
keeps only the unfinished line and the event being built, and looks at each character it is fed once (a
32 MB line without a newline is refused after its first MiB, in time linear in what was read).
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass

from .errors import refused_answer

__all__ = ["MAX_EVENT", "MAX_LINE", "SSEDecoder", "SSEMessage", "ascii_int"]

MAX_LINE = 1 << 20
"""The longest line the decoder takes, in characters (the emulator's longest is a 28 KB message)."""
MAX_EVENT = 4 << 20
"""The most data one event may carry, in characters (its ``data:`` lines together)."""

_EOL = re.compile(r"\r\n|\r|\n")


def ascii_int(text: str | None, digits: int = 18) -> int | None:
    """``text`` as a non-negative int if it is 1 to ``digits`` ASCII digits, else ``None`` (no Unicode
    digits, nothing too long for an id)."""
    if text and len(text) <= digits and text.isascii() and text.isdigit():
        return int(text)
    return None


@dataclass(frozen=True, slots=True)
class SSEMessage:
    """One dispatched SSE event: its type (``"message"`` by default), data and the last event id."""

    event: str
    data: str
    id: str | None


class SSEDecoder:
    """An incremental ``text/event-stream`` decoder following the WHATWG HTML rules.

    Lines end in CRLF, LF or CR; ``:`` starts a comment; a blank line dispatches the event (not when it
    has no data); ``id`` persists across events (and is ignored if it contains NUL); ``retry`` sets
    :attr:`retry` (milliseconds). A partial event at the end of the stream is dropped.

    Args:
        max_line: the longest line taken, in characters (:data:`MAX_LINE`).
        max_event: the most data an event may carry, in characters (:data:`MAX_EVENT`).

    Raises (from :meth:`feed`):
        RefusedAnswerError: a line or an event over its cap (the stream is then unusable: drop it).
    """

    def __init__(self, *, max_line: int = MAX_LINE, max_event: int = MAX_EVENT) -> None:
        self.max_line = max_line
        self.max_event = max_event
        self._partial = io.StringIO()  # the unfinished line (appended in place: no copy per chunk)
        self._partial_size = 0
        self._after_cr = False  # the last chunk ended in CR: an LF opening the next one belongs to it
        self._started = False
        self._data: list[str] = []
        self._data_size = 0
        self._event = ""
        self.last_event_id: str | None = None
        self.retry: int | None = None

    def feed(self, text: str) -> list[SSEMessage]:
        """The events that ``text`` (the next piece of the stream) completes."""
        if not text:
            return []
        if not self._started:
            self._started = True
            text = text.removeprefix("\ufeff")
        if self._after_cr and text.startswith("\n"):
            text = text[1:]
        self._after_cr = text.endswith("\r")
        lines = _EOL.split(text) if "\r" in text else text.split("\n")  # the last: an unfinished line
        rest = lines.pop()
        out: list[SSEMessage] = []
        if lines and self._partial_size:
            lines[0] = self._partial.getvalue() + lines[0]
            self._partial, self._partial_size = io.StringIO(), 0
        for line in lines:
            if len(line) > self.max_line:
                self._refuse_line()
            message = self._line(line)
            if message is not None:
                out.append(message)
        if rest:
            self._partial_size += len(rest)
            if self._partial_size > self.max_line:
                self._refuse_line()
            self._partial.write(rest)
        return out

    def _refuse_line(self) -> None:
        raise refused_answer(None, f"the event stream sent a line over {self.max_line:,} characters")

    def _line(self, line: str) -> SSEMessage | None:
        if not line:
            if not self._data:
                self._event = ""
                return None
            message = SSEMessage(self._event or "message", "\n".join(self._data), self.last_event_id)
            self._data, self._data_size, self._event = [], 0, ""
            return message
        if line.startswith(":"):
            return None
        field, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if field == "event":
            self._event = value
        elif field == "data":
            self._data_size += len(value) + 1
            if self._data_size > self.max_event:
                raise refused_answer(
                    None, f"the event stream sent an event over {self.max_event:,} characters"
                )
            self._data.append(value)
        elif field == "id":
            if "\0" not in value:
                self.last_event_id = value
        elif field == "retry" and value.isascii() and value.isdigit():
            self.retry = int(value) if len(value) <= 15 else 10**15
        return None
