"""The export state is written a bounded number of times, not once per thread, and stays exact.

A write of the state holds every thread, so one write per commit made an export of N threads O(N^2):
2,000 threads wrote 690 MB of state. Saves are coalesced (at most one per ``SAVE_INTERVAL`` while an
export runs, and a flush at its end); these tests see the writes on disk (the states the export's pages
find there) and check that interrupted and resumed exports come out the same.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import chatnb
from chatnb.emulator import Emulator
from chatnb.export._state import STATE_NAME
from tests.support.clients import new_chat_user

THREADS = 12


class Stop(Exception):
    pass


@pytest.fixture
def many_threads(emulator: Emulator) -> Any:
    """One user with twelve threads of three messages."""
    chat, _ = new_chat_user(emulator)
    ids = []
    for n in range(THREADS):
        tc = chat.get_chat_thread_client(chat.create_chat_thread(f"Thread {n}").chat_thread.id)
        for i in range(3):
            tc.send_message(f"thread {n} message {i}")
        ids.append(tc.thread_id)
    yield chat, ids
    chat.close()


def _export(chat: Any, out: Path, ids: list[str], **kwargs: Any) -> Any:
    return chatnb.export_history(
        chat, out, threads=ids, format="jsonl", incremental=True, progress=False, **kwargs
    )


def _writes_seen(chat: Any, out: Path, ids: list[str]) -> set[bytes]:
    """The different states that the export's pages found on disk."""
    seen: set[bytes] = set()

    def on_page(_: Any) -> None:
        if (out / STATE_NAME).exists():
            seen.add((out / STATE_NAME).read_bytes())

    result = _export(chat, out, ids, concurrency=1, on_page=on_page)
    assert result.rows == THREADS * 3
    return seen


def test_an_export_writes_its_state_once_per_interval_not_once_per_thread(
    many_threads: tuple[Any, list[str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chat, ids = many_threads
    monkeypatch.setattr("chatnb.export._state.SAVE_INTERVAL", 0.0)  # the old rhythm: after every commit
    # each page after the first thread's finds the state the previous thread's finish wrote
    assert len(_writes_seen(chat, tmp_path / "every", ids)) == THREADS - 1
    monkeypatch.setattr("chatnb.export._state.SAVE_INTERVAL", 3600.0)
    assert len(_writes_seen(chat, tmp_path / "coalesced", ids)) == 1  # the first commit's, then none
    # ... and the flush at the end wrote every thread
    state = chatnb.read_export(tmp_path / "coalesced").groupby("thread_id").size()
    assert sorted(state.index) == sorted(ids)
    saved = (tmp_path / "coalesced" / STATE_NAME).read_text()
    assert all(thread_id in saved for thread_id in ids)


def test_an_interrupted_export_saves_what_it_committed_and_resumes_exactly(
    many_threads: tuple[Any, list[str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chat, ids = many_threads
    monkeypatch.setattr("chatnb.export._state.SAVE_INTERVAL", 3600.0)  # nothing saved but at the end
    pages = 0

    def stop_after_seven(_: Any) -> None:
        nonlocal pages
        pages += 1
        if pages == 7:
            raise Stop

    with pytest.raises(Stop):
        _export(chat, tmp_path / "b", ids, concurrency=1, on_page=stop_after_seven)
    resumed = _export(chat, tmp_path / "b", ids, concurrency=1)
    # the six threads finished before the stop were saved (the seventh's page was written, not committed)
    assert resumed.rows == (THREADS - 6) * 3
    baseline = _export(chat, tmp_path / "a", ids, concurrency=1)
    assert chatnb.read_export(tmp_path / "b").equals(chatnb.read_export(tmp_path / "a"))
    assert baseline.rows == THREADS * 3


def test_transcript_spools_go_only_once_the_state_is_saved(
    many_threads: tuple[Any, list[str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chat, ids = many_threads
    monkeypatch.setattr("chatnb.export._state.SAVE_INTERVAL", 3600.0)
    spools_during: list[int] = []

    def on_page(_: Any) -> None:
        spools_during.append(len(list((tmp_path / "html").rglob("*.spool"))))

    result = chatnb.export_history(
        chat, tmp_path / "html", threads=ids, format="html", incremental=True, progress=False, on_page=on_page
    )
    assert result.rows == THREADS * 3
    assert max(spools_during) >= 2  # spools waited for the save that no longer names them...
    assert not list((tmp_path / "html").rglob("*.spool"))  # ... which the end of the export made
    assert chatnb.read_export(tmp_path / "html", format="html").shape[0] == THREADS * 3
