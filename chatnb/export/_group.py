"""Several formats in one run: one listing, one writer per format, committed together."""

from __future__ import annotations

from typing import Any

from ._batch import Batch
from ._store import Store
from ._transcripts import TranscriptWriter
from ._writers import Writer, part_writer

__all__ = ["WriterGroup"]


class WriterGroup:
    """The writers of one thread's run, one per format, sharing the thread's ``files`` map.

    The run's position in the listing is saved once for all formats, so they commit together: when every
    writer is ready to (for Parquet, when a part is full), or at the end of the run.
    """

    def __init__(
        self,
        formats: list[str],
        store: Store,
        thread_id: str,
        *,
        run: int,
        by_month: bool,
        files: dict[str, int],
        parts: dict[str, int],
        rows_per_file: int,
        spools: dict[str, list[int]],
        csv_guard: bool,
    ) -> None:
        self.files = dict(files)
        self.writers: list[Writer] = []
        for fmt in formats:
            common: dict[str, Any] = {
                "run": run,
                "by_month": by_month,
                "files": self.files,
                "parts": parts.get(fmt, 0),
                "rows_per_file": rows_per_file,
                "csv_guard": csv_guard,
            }
            if fmt in ("html", "markdown"):
                writer: Writer = TranscriptWriter(store, thread_id, fmt=fmt, spools=spools, **common)
            else:
                writer = part_writer(fmt, store)(store, thread_id, fmt=fmt, **common)
            self.writers.append(writer)

    @property
    def parts(self) -> dict[str, int]:
        return {w.fmt: w.parts for w in self.writers if w.parts}

    def write(self, batch: Batch) -> None:
        for writer in self.writers:
            writer.write(batch)

    def should_commit(self) -> bool:
        return all(w.should_commit() for w in self.writers)

    def commit(self) -> None:
        for writer in self.writers:
            writer.commit()

    def finish(self, topic: str) -> None:
        for writer in self.writers:
            writer.finish(topic)

    def close(self) -> None:
        for writer in self.writers:
            writer.close()

    def cleanup(self) -> None:
        for writer in self.writers:
            writer.cleanup()
