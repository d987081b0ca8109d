"""The transcript's model and its wire protocol, with no widget and no network (sans-I/O).

:class:`Transcript` holds a thread's messages by id in chronological order. Every change returns the
*operation* the front end needs to patch its DOM, and nothing more, so what goes over the wire per event is
one message's worth whatever the number held:

==========================================  =======================================================
kernel -> front end (custom messages)       meaning
==========================================  =======================================================
``{"op": "add", "m": {...}}``               a new message (full wire form, below)
``{"op": "patch", "id": ..., "m": {...}}``  changed fields only (``null`` clears one)
``{"op": "remove", "id": ...}``             gone
``{"op": "replace", "id": ..., "m": {...}}``  a pending bubble become the real message, in one step
``{"op": "reset", "to": view, ...}``        the latest window, for a view that just opened
``{"op": "older", "to": view, ...}``        the next window back, answering that view's request
==========================================  =======================================================

A message on the wire: ``id``; ``k`` its sort key (ACS ids are creation times in ms); ``s`` sender id;
``n`` sender name; ``t`` ``text``/``html``/``system``; ``h`` the content as safe HTML; ``x`` the raw text
(own messages only, for editing); ``at``/``e`` creation and edit times (ms since the epoch); ``d`` set when
deleted; ``st`` a status (``sending``, ``failed``, ``saving``, ``deleting``) and ``err`` why it failed.
Empty fields are left out.
"""

from __future__ import annotations

import bisect
import threading
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from . import _html
from ._describe import participant_names
from ._live import raw_id

__all__ = ["SYSTEM", "Transcript", "TranscriptItem", "item_from_event", "item_from_message", "wire"]

SYSTEM = "system"
_CONTENT_TYPES = ("text", "html", "richtext/html")


@dataclass(frozen=True, slots=True)
class TranscriptItem:
    """A bubble (or a centred system line) of the transcript."""

    id: str
    type: str
    sender_id: str
    sender_name: str
    content: str
    created_on: datetime | None
    edited_on: datetime | None = None
    deleted_on: datetime | None = None
    system: bool = False
    status: str = ""  # "", "sending", "failed", "saving", "deleting"
    error: str = ""

    @property
    def key(self) -> tuple[int, str]:
        """Chronological sort key: ACS message ids are creation times in milliseconds."""
        if self.id.isdigit():
            return int(self.id), self.id
        ms = int(self.created_on.timestamp() * 1000) if self.created_on else 0
        return ms, self.id


def _ms(value: datetime | None) -> int | None:
    return None if value is None else int(value.timestamp() * 1000)


def _system_text(kind: str, content: Any, names: dict[str, str]) -> str:
    def who(value: Any) -> str:
        rid = raw_id(value)
        return getattr(value, "display_name", None) or names.get(rid) or rid or "someone"

    if kind == "topicUpdated":
        return (
            f"{who(getattr(content, 'initiator', None))} set the topic to “{getattr(content, 'topic', '')}”"
        )
    people = participant_names(getattr(content, "participants", ())) or "someone"
    if kind == "participantAdded":
        return f"{people} joined the chat"
    if kind == "participantRemoved":
        return f"{people} left the chat"
    return kind


def item_from_message(m: Any, names: dict[str, str]) -> TranscriptItem:
    """A listed :class:`~chatnb.ChatMessage` as an item; notes display names it carries in ``names``."""
    kind = str(getattr(m.type, "value", m.type))
    sender = raw_id(m.sender)
    if m.sender_display_name and sender:
        names.setdefault(sender, m.sender_display_name)
    system = kind not in _CONTENT_TYPES
    content = m.content
    if system:
        for p in getattr(content, "participants", ()) or ():
            if p.display_name:
                names[raw_id(p)] = p.display_name
        text = _system_text(kind, content, names)
    else:
        text = getattr(content, "message", None) or ""
    return TranscriptItem(
        id=str(m.id),
        type=SYSTEM if system else kind,
        sender_id=sender,
        sender_name=m.sender_display_name or names.get(sender, ""),
        content=text,
        created_on=m.created_on,
        edited_on=m.edited_on,
        deleted_on=m.deleted_on,
        system=system,
    )


def item_from_event(ev: Any) -> TranscriptItem:
    """A ``chatMessageReceived`` event as an item."""
    return TranscriptItem(
        ev.id, ev.type, raw_id(ev.sender), ev.sender_display_name or "", ev.message or "", ev.created_on
    )


def wire(item: TranscriptItem, user_id: str) -> dict[str, Any]:
    """``item`` in its wire form (see the module docstring); ``user_id`` decides whether ``x`` is sent."""
    out: dict[str, Any] = {"id": item.id, "k": item.key[0], "t": SYSTEM if item.system else item.type}
    if item.sender_id:
        out["s"] = item.sender_id
    if item.sender_name:
        out["n"] = item.sender_name
    if item.deleted_on is not None:
        out["d"] = 1
    elif item.system:
        out["h"] = _html.esc(item.content)
    else:
        out["h"] = _html.render_content(item.content, item.type)
        if item.sender_id and item.sender_id == user_id:
            out["x"] = item.content
    created = _ms(item.created_on)
    if created is not None:
        out["at"] = created
    edited = _ms(item.edited_on)
    if edited is not None and item.deleted_on is None:
        out["e"] = edited
    if item.status:
        out["st"] = item.status
    if item.error:
        out["err"] = item.error
    return out


def _changes(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    changed = {k: v for k, v in new.items() if old.get(k) != v}
    changed.update({k: None for k in old if k not in new})
    return changed


class Transcript:
    """A thread's messages, chronological, thread-safe; changes return front-end operations.

    Args:
        user_id: who "me" is (own messages carry their raw text, for editing).
    """

    def __init__(self, user_id: str = "") -> None:
        self.user_id = user_id
        self._items: dict[str, TranscriptItem] = {}
        self._wire: dict[str, dict[str, Any]] = {}
        self._keys: list[tuple[int, str]] = []  # sorted
        self.lock = threading.RLock()

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, message_id: object) -> bool:
        return message_id in self._items

    def get(self, message_id: str) -> TranscriptItem | None:
        return self._items.get(message_id)

    def items(self) -> list[TranscriptItem]:
        """Every item, oldest first."""
        with self.lock:
            return [self._items[k[1]] for k in self._keys]

    def upsert(self, item: TranscriptItem) -> dict[str, Any] | None:
        """Add ``item`` or replace the one with its id; the ``add``/``patch`` op (``None``: no change)."""
        with self.lock:
            new = wire(item, self.user_id)
            old_item = self._items.get(item.id)
            if old_item is not None and old_item.key != item.key:
                self._keys.remove(old_item.key)
                bisect.insort(self._keys, item.key)
            elif old_item is None:
                if not self._keys or item.key > self._keys[-1]:
                    self._keys.append(item.key)
                else:
                    bisect.insort(self._keys, item.key)
            self._items[item.id] = item
            old = self._wire.get(item.id)
            self._wire[item.id] = new
            if old is None:
                return {"op": "add", "m": new}
            changed = _changes(old, new)
            return {"op": "patch", "id": item.id, "m": changed} if changed else None

    def update(self, message_id: str, **fields: Any) -> dict[str, Any] | None:
        """Change some fields of a held item (``None`` if it is not held or nothing changed)."""
        with self.lock:
            item = self._items.get(message_id)
            return None if item is None else self.upsert(replace(item, **fields))

    def add_missing(self, item: TranscriptItem) -> dict[str, Any] | None:
        """Add ``item`` unless its id is held already (a page must not undo a newer live change)."""
        with self.lock:
            return None if item.id in self._items else self.upsert(item)

    def remove(self, message_id: str) -> dict[str, Any] | None:
        with self.lock:
            item = self._items.pop(message_id, None)
            if item is None:
                return None
            self._wire.pop(message_id, None)
            self._keys.remove(item.key)
            return {"op": "remove", "id": message_id}

    def replace(self, old_id: str, item: TranscriptItem) -> dict[str, Any] | None:
        """Put ``item`` in the place of ``old_id`` (a pending bubble that is now a real message) with one
        ``replace`` op, so the browser never shows neither or both."""
        with self.lock:
            if old_id not in self._items:
                return self.add_missing(item)
            self.remove(old_id)
            if item.id in self._items:  # its echo came first: keep that, drop the bubble
                return {"op": "remove", "id": old_id}
            self.upsert(item)
            return {"op": "replace", "id": old_id, "m": self._wire[item.id]}

    def latest(self, n: int) -> list[dict[str, Any]]:
        """The wire forms of the latest ``n`` items, oldest first."""
        with self.lock:
            return [self._wire[k[1]] for k in self._keys[-n:]] if n > 0 else []

    def before(self, key: tuple[int, str], n: int) -> tuple[list[dict[str, Any]], bool]:
        """The wire forms of up to ``n`` items older than sort key ``key``, oldest first, and whether more
        are held before them."""
        with self.lock:
            end = bisect.bisect_left(self._keys, key)
            start = max(0, end - n)
            return [self._wire[k[1]] for k in self._keys[start:end]], start > 0

    @property
    def newest_key(self) -> tuple[int, str] | None:
        with self.lock:
            return self._keys[-1] if self._keys else None
