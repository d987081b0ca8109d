"""Transcript writers (HTML and Markdown): spooled page by page, assembled oldest first at the run's end.

The service lists newest first. Each batch's fragment (already chronological) is kept in memory until
the next commit, which writes the fragments of each partition as one hidden spool file
(``.transcript-r0001-00003.html.spool``) and records in the state where each fragment ends. At the end
of the run the transcript (``transcript.html``, ``transcript-r0002.md``...) is written from the spools,
last spool and last fragment first, and the spools are removed once the state no longer needs them.
A killed run resumes from its committed spools, so a resumed transcript is byte for byte the one an
uninterrupted run writes.
"""

from __future__ import annotations

import re
from typing import Any

from . import _html, _markdown
from ._batch import Batch
from ._writers import Writer

__all__ = ["TranscriptWriter"]

_SPOOL_NUMBER = re.compile(r"-(\d{5})\.(?:html|md)\.spool\Z")
_RENDERERS: dict[str, Any] = {"html": _html, "markdown": _markdown}
_EXT = {"html": "html", "markdown": "md"}


def _order(rel: str) -> int:
    """A spool's place in its run (spools of the release before numbering came first: 0)."""
    match = _SPOOL_NUMBER.search(rel)
    return int(match[1]) if match else 0


class TranscriptWriter(Writer):
    """One format of transcript; ``spools`` (the run's ``html_pages`` in the state, shared by both
    transcript formats) maps each committed spool to the end offsets of its fragments."""

    def __init__(self, *args: Any, fmt: str, spools: dict[str, list[int]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fmt = fmt
        self.ext = _EXT[fmt]
        self.render = _RENDERERS[fmt]
        self.spools = spools
        self._buffer: dict[str | None, list[bytes]] = {}

    def _mine(self, rel: str) -> bool:
        if rel.endswith(f".{self.ext}.spool"):
            return True
        return self.ext == "html" and not _SPOOL_NUMBER.search(rel)  # a spool of the earlier release

    def _write(self, month: str | None, batch: Batch) -> None:
        self._buffer.setdefault(month, []).append(self.render.render_rows(batch.frame()).encode())

    def commit(self) -> None:
        for month, chunks in self._buffer.items():
            folder = self.rel(month, "")
            number = 1 + sum(
                1 for r in self.spools if r.startswith(folder) and r.count("/") == folder.count("/")
            )
            rel = self.rel(month, f".transcript-r{self.run:04d}-{number:05d}.{self.ext}.spool")
            pending = self.store.create(rel)
            ends = []
            for chunk in chunks:
                pending.fh.write(chunk)
                ends.append(pending.fh.tell())
            self.files[rel] = pending.commit()
            self.spools[rel] = ends
        self._buffer.clear()
        super().commit()

    def close(self) -> None:
        self._buffer.clear()

    def finish(self, topic: str) -> None:
        self.commit()
        name = f"transcript.{self.ext}" if self.run == 1 else f"transcript-r{self.run:04d}.{self.ext}"
        folders: dict[str, list[str]] = {}
        for rel in self.spools:
            if self._mine(rel):
                folders.setdefault(rel.rsplit("/", 1)[0], []).append(rel)
        for folder, rels in sorted(folders.items()):
            rels.sort(key=_order)
            count = sum(len(self.spools[r]) for r in rels)
            note = f"export run {self.run}, {count} page{'s' if count != 1 else ''} of messages"
            target = f"{folder}/{name}"
            pending = self.store.create(target)
            pending.fh.write(self.render.page_head(thread_id=self.thread_id, topic=topic, note=note).encode())
            for rel in reversed(rels):
                data = self.store.read(rel)
                ends = self.spools[rel]
                for i in range(len(ends) - 1, -1, -1):
                    pending.fh.write(data[ends[i - 1] if i else 0 : ends[i]])
            pending.fh.write(self.render.PAGE_TAIL.encode())
            self.files[target] = pending.commit()
            for rel in rels:
                self.files.pop(rel, None)

    def cleanup(self) -> None:
        for rel in self.spools:
            if self._mine(rel):
                self.store.remove(rel)
