"""Notebook widgets for chat, built from standard ipywidgets (no front-end build step).

>>> from chatnb.widgets import ChatPanel, EventLog, MessageComposer
>>> ChatPanel(jack, thread.thread_id)       # transcript, composer, participants and event log
>>> log = EventLog(jack.chat_client); log.wait_for(1, event_type="chatMessageReceived")

- :class:`MessageComposer`: text box and Send button; Enter sends; typing notifications.
- :class:`EventLog`: live, bounded table of real-time events; filter, pause, clear, ``to_dataframe()``,
  ``wait_for()``.
- :class:`ChatView`: the transcript as bubbles, live (edits and deletions in place), typing indicator,
  read state.
- :class:`ParticipantList`: live participant list with Add and Remove.
- :class:`ChatPanel`: all four for one user in one thread.

Widgets update by setting traits from real-time handlers, never by writing into an ``Output`` widget, so
they keep working when cells are queued with "Run All". Message content is escaped, and ``html``
messages are sanitised. Every widget carries ``chatnb-*`` CSS classes for styling and tests.
"""

from __future__ import annotations

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
    "MessageComposer",
    "ParticipantList",
    "TranscriptItem",
]
