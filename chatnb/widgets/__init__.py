"""Notebook widgets for chat: anywidget front ends (one ES module, no build step) over the real-time events.

>>> from chatnb.widgets import ChatPanel, EventLog
>>> ChatPanel(jack, thread.thread_id)       # transcript, composer, participants and event log
>>> log = EventLog(jack); thread.send_message("hi")
>>> [event.message for event in log.wait_for(1, event_type="chatMessageReceived")]
['hi']

- :class:`ChatView`: the transcript, live and incremental (one small message per change, the DOM patched
  in place), the whole history on scrolling up, grouped bubbles with avatars and dates, "n new messages",
  an unread divider, edit and delete of your own messages, read receipts for what was seen, "Seen by".
- :class:`MessageComposer`: multi-line (Enter sends, Shift+Enter new line), per-message status, typing
  notifications, each message sent once.
- :class:`EventLog`: live, bounded table of real-time events; filter, pause, clear, ``to_dataframe()``,
  ``wait_for()``; receipts and typing hidden unless asked for.
- :class:`ParticipantList`: live participant list with Add and Remove.
- :class:`ChatPanel`: all four for one user in one thread, in a layout that stacks below ~700 px.

Every widget takes a thread client, a chat client and a thread, or a ``session.user(...)`` (and a thread),
the same way. Network calls run off the kernel's loop and state changes are serialised (see
:mod:`chatnb.widgets._live` for the threads-and-loops model); widgets never print or write to an
``Output``. Message text is escaped, ``html`` messages are sanitised and their images become links.
Each widget's mime bundle carries a static HTML snapshot for GitHub, nbviewer and nbval.
"""

from __future__ import annotations

from ._worker import Job
from .chat_view import ChatView, TranscriptItem
from .composer import MessageComposer
from .event_log import EVENT_COLUMNS, EventLog, EventRow, EventTable
from .panel import ChatPanel
from .participants import ParticipantList

__all__ = [
    "EVENT_COLUMNS",
    "ChatPanel",
    "ChatView",
    "EventLog",
    "EventRow",
    "EventTable",
    "Job",
    "MessageComposer",
    "ParticipantList",
    "TranscriptItem",
]
