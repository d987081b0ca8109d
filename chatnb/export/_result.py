"""What an export reports: progress after each page, and the outcome per thread and in all."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ChatError

__all__ = ["ExportError", "ExportProgress", "ExportResult", "ThreadExport", "ThreadFailure"]


@dataclass(frozen=True)
class ExportProgress:
    """What an ``on_page`` callback is told after each page."""

    thread_id: str
    pages: int
    listed: int
    written: int
    total_pages: int
    total_written: int


@dataclass
class ThreadExport:
    """The outcome for one thread: pages listed, messages listed and rows written by this call.

    ``repaired`` counts the text values in which a lone surrogate was replaced with U+FFFD.
    """

    thread_id: str
    topic: str
    pages: int = 0
    listed: int = 0
    written: int = 0
    resumed: bool = False
    files: list[str] = field(default_factory=list)
    repaired: int = 0


@dataclass
class ThreadFailure:
    """A thread that could not be exported in this call; the next (incremental) run tries it again."""

    thread_id: str
    topic: str
    error: BaseException

    def __str__(self) -> str:
        return f"{self.thread_id}: {type(self.error).__name__}: {self.error}"


@dataclass
class ExportResult:
    """What :func:`chatnb.export_history` did: per exported thread a :class:`ThreadExport`, and the
    threads that failed (``failed``: the others were exported all the same)."""

    out: Path | str
    format: str
    threads: list[ThreadExport]
    elapsed: float = 0.0
    formats: list[str] = field(default_factory=list)
    failed: list[ThreadFailure] = field(default_factory=list)

    @property
    def rows(self) -> int:
        """Rows written (per format)."""
        return sum(t.written for t in self.threads)

    @property
    def pages(self) -> int:
        """Pages listed."""
        return sum(t.pages for t in self.threads)

    @property
    def repaired(self) -> int:
        """Text values whose lone surrogates were replaced."""
        return sum(t.repaired for t in self.threads)

    @property
    def files(self) -> list[Path | str]:
        """Every file of the export's threads (all runs), sorted."""
        rels = sorted({f for t in self.threads for f in t.files})
        if isinstance(self.out, Path):
            return [self.out / f for f in rels]
        return [f"{self.out.rstrip('/')}/{f}" for f in rels]


class ExportError(ChatError, RuntimeError):
    """Some threads could not be exported; every other thread was. ``result`` is the
    :class:`ExportResult` (its ``failed`` lists the threads and their errors, ``errors`` the errors
    alone); run the export again (``incremental=True`` resumes) to retry them.

    A :class:`~chatnb.ChatError`, and a ``RuntimeError`` as the export's errors were before it
    exported threads concurrently."""

    def __init__(self, result: ExportResult) -> None:
        self.result = result
        failed = result.failed
        total = len(failed) + len(result.threads)
        shown = "; ".join(str(f) for f in failed[:5]) + ("; ..." if len(failed) > 5 else "")
        super().__init__(
            f"{len(failed)} of {total} thread(s) could not be exported (the others were): {shown}. "
            "Run the export again to retry them"
        )

    @property
    def errors(self) -> list[BaseException]:
        """The error of each thread that failed, in the order of ``result.failed``."""
        return [f.error for f in self.result.failed]
