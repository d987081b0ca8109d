"""Page-by-page listing of a thread's messages, with a continuation token to resume: :class:`MessagePage`.

>>> for page in thread.iter_message_pages(results_per_page=100):
...     page.frame                     # this page's messages as a DataFrame, oldest first
...     saved = page.continuation_token
>>> for page in thread.iter_message_pages(continuation_token=saved):   # later: the rest of the listing
...     ...

This is the official SDK's ``list_messages(...).by_page(continuation_token=...)``, shaped for DataFrames.
The service lists messages newest first, so the first page holds the newest messages and each following
page older ones. The token is the service's ``nextLink``: it carries the page size and start time of the
listing it continues, and only works with a client on the same endpoint and thread.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from . import frames
from ._text import repair_value
from .models import ChatMessage

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["MessagePage"]


class MessagePage:
    """One page of a thread's message listing.

    Attributes:
        continuation_token: where the listing goes on after this page (pass it to
            ``iter_message_pages(continuation_token=...)``), or ``None`` on the last page.

    ``frame`` and ``items`` are built on first use, so a page costs nothing until it is looked at.
    """

    __slots__ = ("_frame", "_items", "_wire", "continuation_token")

    def __init__(self, wire: Sequence[dict[str, Any]], continuation_token: str | None) -> None:
        self._wire = wire
        self.continuation_token = continuation_token
        self._frame: pd.DataFrame | None = None
        self._items: list[ChatMessage] | None = None

    def repair_text(self) -> int:
        """Replace lone UTF-16 surrogates in the page's text with U+FFFD (JSON can carry them; UTF-8, and
        so the frame, cannot); the number of strings changed. Call it before ``frame`` or ``items``."""
        repaired = [repair_value(dict(m)) for m in self._wire]
        changed = sum(c for _, c in repaired)
        if changed:
            self._wire = [m for m, _ in repaired]
            self._frame = None
            self._items = None
        return changed

    def __len__(self) -> int:
        """The number of messages on the page (it may be 0, e.g. when nothing matched ``start_time``)."""
        return len(self._wire)

    def __repr__(self) -> str:
        more = "last page" if self.continuation_token is None else "more to come"
        return f"<MessagePage of {len(self)} messages, {more}>"

    @property
    def wire(self) -> Sequence[dict[str, Any]]:
        """The page's messages as the service sent them (JSON objects, newest first), for code that
        builds its own columns (the export writes Arrow straight from them). Read them; do not change
        them."""
        return self._wire

    @property
    def frame(self) -> pd.DataFrame:
        """The page's messages as a DataFrame with the columns and dtypes of ``list_messages`` (see
        :mod:`chatnb.frames`), in chronological order (ascending ``sequence_id``) like it."""
        if self._frame is None:
            self._frame = frames.messages_frame(self._wire)
        return self._frame

    @property
    def items(self) -> list[ChatMessage]:
        """The page's messages as :class:`~chatnb.ChatMessage` s in the service's order (newest first),
        as ``iter_messages`` yields them."""
        if self._items is None:
            self._items = [ChatMessage._from_wire(m) for m in self._wire]
        return self._items

    @staticmethod
    def concat_frames(pages: Iterable[MessagePage]) -> pd.DataFrame:
        """One DataFrame of the messages of ``pages``, in chronological order: what concatenating their
        ``frame`` s and sorting by ``sequence_id`` gives, built in one pass (several times faster than
        building each page's frame; the pages' own ``frame`` s are not built)."""
        wire: list[dict[str, Any]] = []
        for page in pages:
            wire.extend(page._wire)
        return frames.messages_frame(wire)
