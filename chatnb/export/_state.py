"""The state file of an export: per thread, what was exported and where an unfinished run stands.

In a local folder, one JSON document (``.chatnb-export-state.json``, 0600) rewritten atomically (temporary
file, ``fsync``, ``os.replace``) after every commit of written rows, so a kill at any instant leaves either
the previous or the next state, never a torn one. On stores without atomic rename (object stores), each
save writes a new numbered version (``.chatnb-export-state/state-0000000042.json``) and then removes the
versions before the previous one; loading takes the newest version that reads whole. Its size stays
small: besides a few numbers per thread, only the messages changed within the look-back window are listed.

Exporting threads concurrently, each worker hands in a snapshot of its thread's state when it commits
(:meth:`ExportState.put`) and :meth:`ExportState.save` writes the snapshots; a save already covering a
snapshot (another worker's save started after it was handed in) is not repeated.

A write holds every thread, so writing after each commit would make an export of N threads cost O(N^2)
(2,000 threads: 690 MB written, each write fsynced or uploaded). Saves are therefore coalesced: while an
export runs, the state is written at most once per :data:`SAVE_INTERVAL`, and :meth:`ExportState.flush`
writes the last snapshots when the export ends, whether it completes, fails or is interrupted. This stays
exact: what a killed export wrote after the last save is not named by the state, so the next run removes
it (or truncates it back) and exports it again, at most an interval's work. Where the order matters
(files the state names are about to be removed) the save is forced, and removals that may only follow a
save are deferred until one covers them (:meth:`ExportState.after_save`).

Per thread it keeps:

* ``watermark`` (microseconds): every change (creation, edit, deletion) of a message before it has been
  exported. The next incremental run lists changes from ``watermark - lookback`` on.
* ``recent``: ``{message id: [version, change time]}`` of the rows exported with a change time inside
  the look-back window, so that the overlap is de-duplicated by message id and version.
* ``files``: the committed output files (relative path -> committed size in bytes). A file of the
  export's own naming that is not listed, or bytes past the listed size, were written after the last
  save and are removed on the next run; this is what keeps a killed run from leaving a partial or
  duplicate row behind. Every path must be a file of the export's own naming inside the thread's
  folder: a state naming anything else was not written by chatnb and is refused.
* ``run``: the unfinished run, if any: the listing's ``start_time``, the ``watermark`` it will advance
  to, the continuation link of the next page, the lowest sequence id already exported by the run (the
  service lists newest first, so a resumed run continues *below* it) and its counters.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

from ._store import Store
from ._writers import check_own_path

__all__ = ["SAVE_INTERVAL", "STATE_NAME", "ExportState", "RunState", "ThreadState"]

log = logging.getLogger("chatnb.export")

SAVE_INTERVAL = 1.0
"""Seconds between two writes of the state while an export runs (see the module doc)."""

STATE_NAME = ".chatnb-export-state.json"
VERSIONS_DIR = ".chatnb-export-state"
_VERSION = re.compile(r"state-(\d{10})\.json\Z")
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
    parts: dict[str, int] = field(default_factory=dict)
    pages: int = 0
    listed: int = 0
    written: int = 0
    recent: dict[str, list[Any]] = field(default_factory=dict)
    html_pages: dict[str, list[int]] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: dict[str, Any], fmt: Any) -> RunState:
        data = dict(data)
        parts = data.get("parts") or {}
        if isinstance(parts, int):  # a state of the release with one format per export
            parts = {str(fmt): parts}
        data["parts"] = {str(k): int(v) for k, v in parts.items()}
        data["html_pages"] = {str(k): [int(e) for e in v] for k, v in (data.get("html_pages") or {}).items()}
        run = cls(**data)
        if not isinstance(run.number, int) or not (run.next_link is None or isinstance(run.next_link, str)):
            raise TypeError("a run's number or link is of the wrong type")
        return run


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
    def from_json(cls, data: dict[str, Any], fmt: Any) -> ThreadState:
        run = data.get("run")
        return cls(
            watermark=data.get("watermark"),
            last_sequence_id=data.get("last_sequence_id"),
            runs=int(data.get("runs", 0)),
            recent=dict(data.get("recent") or {}),
            files={str(k): int(v) for k, v in (data.get("files") or {}).items()},
            run=None if run is None else RunState.from_json(run, fmt),
        )

    def to_json(self) -> dict[str, Any]:
        """The fields as JSON-ready values (shared with the state, not copied: dump them at once)."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        if self.run is not None:
            data["run"] = {f.name: getattr(self.run, f.name) for f in fields(self.run)}
        return data

    def check_paths(self, thread_id: str) -> None:
        """Raises ValueError if a path of the state is not one of the thread's own files."""
        for rel in [*self.files, *(self.run.html_pages if self.run else ())]:
            check_own_path(rel, thread_id)


class ExportState:
    """The state of the exports into one output directory (local folder or fsspec store).

    ``options`` are the settings that shape the output (formats, filters, partitioning); an incremental
    run with other settings than the state was made with is refused, since appending rows of another
    shape or filter to the same files would corrupt the export.
    """

    def __init__(self, store: Store, options: dict[str, Any], *, interval: float | None = None) -> None:
        self.store = store
        self.options = options
        self.interval = SAVE_INTERVAL if interval is None else interval
        self.threads: dict[str, ThreadState] = {}
        self._snapshots: dict[str, str] = {}
        self._lock = threading.Lock()  # the snapshots
        self._save_lock = threading.Lock()  # one save at a time
        self._handed_in = 0
        self._saved = 0
        self._version = 0
        self._written_at = float("-inf")  # time.monotonic() of the last write
        self._after: list[tuple[int, Callable[[], None]]] = []  # (snapshots it waits for, what to do)
        self.writes = 0

    @property
    def where(self) -> str:
        return self.store.display(STATE_NAME if self.store.local else VERSIONS_DIR)

    def _versions(self) -> list[tuple[int, str]]:
        found = []
        for rel in self.store.files(VERSIONS_DIR):
            match = _VERSION.search(rel)
            if match and rel.count("/") == 1:
                found.append((int(match[1]), rel))
        return sorted(found, reverse=True)

    def _read_raw(self) -> str | None:
        """The text of the newest state that reads whole, ``None`` if there is none."""
        if self.store.local:
            try:
                return self.store.read(STATE_NAME).decode("utf-8")
            except FileNotFoundError:
                return None
            except OSError as exc:
                raise ValueError(f"cannot read {self.where}: {exc}") from None
        versions = self._versions()
        for number, rel in versions:
            try:
                raw = self.store.read(rel).decode("utf-8")
                json.loads(raw)
            except (FileNotFoundError, ValueError):
                continue  # torn or vanished: the previous version holds
            self._version = number
            return raw
        if versions:
            raise ValueError(f"{self.where} holds no readable export state")
        return None

    @classmethod
    def load(cls, store: Store, options: dict[str, Any]) -> ExportState:
        """The state of ``store`` (a new one if there is none).

        Raises:
            ValueError: if the file is not an export state, names paths outside its threads' folders
                (it was changed outside chatnb), or was made with other ``options``.
        """
        state = cls(store, options)
        raw = state._read_raw()
        if raw is None:
            return state
        try:
            data = json.loads(raw)
            if data.get("format") != _FORMAT:
                raise ValueError(f"unknown state format {data.get('format')!r}")
            saved = data["options"]
            threads = {
                str(t): ThreadState.from_json(s, saved.get("format")) for t, s in data["threads"].items()
            }
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"{state.where} is not a chatnb export state file: {exc}") from None
        for thread_id, ts in threads.items():
            try:
                ts.check_paths(thread_id)
            except ValueError as exc:
                raise ValueError(
                    f"{state.where} was changed outside chatnb and is refused: it {exc}. Delete the export "
                    "directory (or its state file, then export without incremental) to start over"
                ) from None
        if saved != options:
            changed = sorted(k for k in set(saved) | set(options) if saved.get(k) != options.get(k))
            raise ValueError(
                f"{state.where} was written by an export with other settings ({', '.join(changed)}: "
                f"{[saved.get(k) for k in changed]} then, {[options.get(k) for k in changed]} now); "
                "export into another directory or delete the directory to start over"
            )
        state.threads = threads
        state._snapshots = {t: _dump(s.to_json()) for t, s in threads.items()}
        return state

    @staticmethod
    def saved_of_any(store: Store) -> dict[str, Any]:
        """Whatever export state ``store`` holds, as saved (``{}`` if none reads): for clearing an export
        made with other settings, and for readers."""
        try:
            data = json.loads(ExportState(store, {})._read_raw() or "{}")
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    @staticmethod
    def thread_ids_of_any(store: Store) -> list[str]:
        """The thread ids of whatever export state ``store`` holds."""
        threads = ExportState.saved_of_any(store).get("threads")
        return [str(t) for t in threads] if isinstance(threads, dict) else []

    def thread(self, thread_id: str) -> ThreadState:
        with self._lock:
            if thread_id not in self.threads:
                self.threads[thread_id] = ThreadState()
            return self.threads[thread_id]

    def put(self, thread_id: str, ts: ThreadState) -> None:
        """Hand in a snapshot of one thread's state, to be written by the next :meth:`save`."""
        text = _dump(ts.to_json())
        with self._lock:
            self.threads[thread_id] = ts
            self._snapshots[thread_id] = text
            self._handed_in += 1

    def save(self, *, force: bool = False) -> None:
        """Write the snapshots handed in so far, unless a write since then already did; while the last
        write is younger than ``interval``, leave them to the next save or to :meth:`flush`.

        Args:
            force: write now whatever the interval: a barrier before removing files that the last write
                names (the state must never name a missing file).
        """
        with self._lock:
            wanted = self._handed_in
        with self._save_lock:
            if self._saved >= wanted and wanted:
                self._run_after()
                return
            if not force and time.monotonic() - self._written_at < self.interval:
                return  # coalesced
            with self._lock:
                upto = self._handed_in
                body = ",".join(f"{json.dumps(t)}:{s}" for t, s in sorted(self._snapshots.items()))
            options = json.dumps(self.options, separators=(",", ":"), sort_keys=True)
            data = f'{{"format":{_FORMAT},"options":{options},"threads":{{{body}}}}}'.encode()
            self._write(data)
            self._written_at = time.monotonic()
            self.writes += 1
            self._saved = upto
            self._run_after()

    def flush(self) -> None:
        """Write whatever was handed in and not written yet, and do what waited for it: the end of an
        export (complete, failed or interrupted)."""
        self.save(force=True)

    def after_save(self, action: Callable[[], None]) -> None:
        """Do ``action`` once a write covers every snapshot handed in so far (at once if one does).

        For removals the state must not see before it is saved (a transcript's spool files, once the
        transcript is in the state). A failing action is logged: what it leaves behind is not named by
        the state, and the next run of the export removes it.
        """
        with self._save_lock:
            with self._lock:
                self._after.append((self._handed_in, action))
            self._run_after()

    def _run_after(self) -> None:
        ready = [action for wanted, action in self._after if wanted <= self._saved]
        self._after = [(wanted, action) for wanted, action in self._after if wanted > self._saved]
        for action in ready:
            try:
                action()
            except OSError as exc:
                log.warning("export: could not remove files the export no longer needs: %s", exc)

    def _write(self, data: bytes) -> None:
        rel = STATE_NAME
        if not self.store.local:
            rel = f"{VERSIONS_DIR}/state-{self._version + 1:010d}.json"
        pending = self.store.create(rel)
        try:
            pending.fh.write(data)
        except BaseException:
            pending.discard()
            raise
        pending.commit()
        if not self.store.local:
            self._version += 1
            for number, old in self._versions():
                if number < self._version - 1:
                    self.store.remove(old)


def _dump(data: dict[str, Any]) -> str:
    return json.dumps(data, separators=(",", ":"), sort_keys=True)
