"""The state file of an export: per thread, what was exported and where an unfinished run stands.

One JSON document, rewritten atomically (temporary file, ``fsync``, ``os.replace``) after every commit of
written rows, so a kill at any instant leaves either the previous or the next state, never a torn one.
Its size stays small: besides a few numbers per thread, only the messages changed within the look-back
window are listed.

Per thread it keeps:

* ``watermark`` (microseconds): every change (creation, edit, deletion) of a message before it has been
  exported. The next incremental run lists changes from ``watermark - lookback`` on.
* ``recent``: ``{message id: [version, change time]}`` of the rows exported with a change time inside
  the look-back window, so that the overlap is de-duplicated by message id and version.
* ``files``: the committed output files (relative path -> committed size in bytes). A file of the
  export's own naming that is not listed, or bytes past the listed size, were written after the last
  save and are removed on the next run; this is what keeps a killed run from leaving a partial or
  duplicate row behind.
* ``run``: the unfinished run, if any: the listing's ``start_time``, the ``watermark`` it will advance
  to, the continuation link of the next page, the lowest sequence id already exported by the run (the
  service lists newest first, so a resumed run continues *below* it) and its counters.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["STATE_NAME", "ExportState", "RunState", "ThreadState"]

STATE_NAME = ".chatnb-export-state.json"
_FORMAT = 1


@dataclass
class RunState:
    """An export run of one thread that has not finished yet."""

    number: int
    start_time: int | None
    watermark: int | None = None
    next_link: str | None = None
    low_seq: int | None = None
    first_page_done: bool = False
    listing_done: bool = False
    high_seq: int | None = None
    parts: int = 0
    pages: int = 0
    listed: int = 0
    written: int = 0
    recent: dict[str, list[Any]] = field(default_factory=dict)
    html_pages: dict[str, list[int]] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunState:
        return cls(**data)


@dataclass
class ThreadState:
    """What has been exported of one thread."""

    watermark: int | None = None
    last_sequence_id: int | None = None
    runs: int = 0
    recent: dict[str, list[Any]] = field(default_factory=dict)
    files: dict[str, int] = field(default_factory=dict)
    run: RunState | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ThreadState:
        run = data.get("run")
        return cls(
            watermark=data.get("watermark"),
            last_sequence_id=data.get("last_sequence_id"),
            runs=int(data.get("runs", 0)),
            recent=dict(data.get("recent") or {}),
            files={str(k): int(v) for k, v in (data.get("files") or {}).items()},
            run=None if run is None else RunState.from_json(run),
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class ExportState:
    """The state of the exports into one output directory.

    ``options`` are the settings that shape the output (format, filters, partitioning); an incremental
    run with other settings than the state was made with is refused, since appending rows of another
    shape or filter to the same files would corrupt the export.
    """

    def __init__(self, path: Path, options: dict[str, Any]) -> None:
        self.path = path
        self.options = options
        self.threads: dict[str, ThreadState] = {}

    @classmethod
    def load(cls, path: Path, options: dict[str, Any]) -> ExportState:
        """The state at ``path`` (a new one if there is none).

        Raises:
            ValueError: if the file is not an export state, or was made with other ``options``.
        """
        state = cls(path, options)
        try:
            raw = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return state
        try:
            data = json.loads(raw)
            if data.get("format") != _FORMAT:
                raise ValueError(f"unknown state format {data.get('format')!r}")
            saved = data["options"]
            threads = {tid: ThreadState.from_json(t) for tid, t in data["threads"].items()}
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"{path} is not a chatnb export state file: {exc}") from None
        if saved != options:
            changed = sorted(k for k in set(saved) | set(options) if saved.get(k) != options.get(k))
            raise ValueError(
                f"{path} was written by an export with other settings ({', '.join(changed)}: "
                f"{[saved.get(k) for k in changed]} then, {[options.get(k) for k in changed]} now); "
                "export into another directory or delete the directory to start over"
            )
        state.threads = threads
        return state

    def thread(self, thread_id: str) -> ThreadState:
        if thread_id not in self.threads:
            self.threads[thread_id] = ThreadState()
        return self.threads[thread_id]

    def save(self) -> None:
        """Write the state atomically: the file holds either the old or the new state, whatever happens."""
        body = {
            "format": _FORMAT,
            "options": self.options,
            "threads": {tid: t.to_json() for tid, t in self.threads.items()},
        }
        data = json.dumps(body, separators=(",", ":"), sort_keys=True).encode()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".state-", suffix=".tmp", dir=self.path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
