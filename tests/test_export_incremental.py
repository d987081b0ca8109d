"""Incremental export, resuming after an interruption or a kill, and exporting through throttling."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import chatnb
from chatnb.emulator import Emulator
from chatnb.emulator.limits import FaultPlan
from chatnb.emulator.seed import seed_messages
from chatnb.export._pacing import Budget, Slot
from chatnb.export._state import STATE_NAME
from tests.support.clients import new_chat_user
from tests.support.export import assert_same_rows, expected

APPEND_FORMATS = ["csv", "jsonl"]
FORMATS = ["parquet", "csv", "jsonl", "html"]


class Stop(Exception):
    """Raised from an ``on_page`` callback to interrupt an export."""


def stop_after(pages: int) -> Any:
    def on_page(progress: chatnb.export.ExportProgress) -> None:
        if progress.total_pages >= pages:
            raise Stop(f"interrupted after page {progress.total_pages}")

    return on_page


@pytest.fixture
def thread(emulator: Emulator) -> Iterator[tuple[chatnb.ChatClient, chatnb.ChatThreadClient, list[str]]]:
    chat, _ = new_chat_user(emulator)
    tc = chat.get_chat_thread_client(chat.create_chat_thread("Incremental").chat_thread.id)
    ids = [tc.send_message(f"message {i}", sender_display_name="Ann").id for i in range(30)]
    yield chat, tc, ids
    chat.close()


def export(chat: Any, out: Path, tc: chatnb.ChatThreadClient, fmt: str, **kwargs: Any) -> Any:
    kwargs.setdefault("results_per_page", 10)
    kwargs.setdefault("rows_per_file", 25)
    kwargs.setdefault("batch_rows", 1)  # write and commit every page
    return chatnb.export_history(
        chat, out, threads=tc.thread_id, format=fmt, incremental=True, progress=False, **kwargs
    )


def state_of(out: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((out / STATE_NAME).read_text())
    return data


@pytest.mark.parametrize("fmt", FORMATS)
def test_incremental_run_exports_exactly_the_changes(
    thread: tuple[chatnb.ChatClient, chatnb.ChatThreadClient, list[str]], tmp_path: Path, fmt: str
) -> None:
    chat, tc, ids = thread
    first = export(chat, tmp_path, tc, fmt)
    assert first.rows == 30
    files_after_first = {p: p.read_bytes() for p in first.files}
    assert export(chat, tmp_path, tc, fmt).rows == 0  # nothing changed: nothing written
    assert {p: p.read_bytes() for p in files_after_first} == files_after_first
    new = [tc.send_message(f"new {i}").id for i in range(3)]
    tc.update_message(ids[5], "message 5, edited")
    tc.delete_message(ids[7])
    before = chatnb.read_export(tmp_path)
    third = export(chat, tmp_path, tc, fmt)
    assert third.rows == 5
    after = chatnb.read_export(tmp_path)
    added = pd.concat([after, before]).drop_duplicates(["id", "version"], keep=False)
    assert sorted(added["id"]) == sorted([*new, ids[5], ids[7]])
    edited = added[added["id"] == ids[5]].iloc[0]
    assert pd.notna(edited["edited_on"]) and int(edited["version"]) > int(ids[5])
    deleted = added[added["id"] == ids[7]].iloc[0]
    assert pd.notna(deleted["deleted_on"]) and pd.isna(deleted["content"])
    if fmt != "html":
        assert edited["content"] == "message 5, edited"
        want = expected(tc, "Incremental", include_deleted=True)
        assert_same_rows(chatnb.read_export(tmp_path, latest=True), want)
    else:
        assert (tmp_path / added["thread_id"].iloc[0]).name  # transcripts: one per run with changes
        assert sorted(p.name for p in tmp_path.rglob("transcript*.html")) == [
            "transcript-r0003.html",
            "transcript.html",
        ]
    state = state_of(tmp_path)["threads"][tc.thread_id]
    assert state["runs"] == 3 and state["run"] is None
    assert state["last_sequence_id"] == int(tc.list_messages()["sequence_id"].max())
    assert export(chat, tmp_path, tc, fmt).rows == 0


def test_a_message_deleted_before_it_was_exported_stays_out(
    thread: tuple[chatnb.ChatClient, chatnb.ChatThreadClient, list[str]], tmp_path: Path
) -> None:
    chat, tc, ids = thread
    tc.delete_message(ids[0])
    assert export(chat, tmp_path, tc, "jsonl").rows == 29
    tc.send_message("later")
    assert export(chat, tmp_path, tc, "jsonl").rows == 1
    assert ids[0] not in set(chatnb.read_export(tmp_path)["id"])


def test_incremental_state_with_other_settings_is_refused(
    thread: tuple[chatnb.ChatClient, chatnb.ChatThreadClient, list[str]], tmp_path: Path
) -> None:
    chat, tc, _ = thread
    export(chat, tmp_path, tc, "csv")
    with pytest.raises(ValueError, match="other settings"):
        export(chat, tmp_path, tc, "csv", include_system=True)
    (tmp_path / STATE_NAME).write_text("{not json")
    with pytest.raises(ValueError, match="not a chatnb export state"):
        export(chat, tmp_path, tc, "csv")


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("stops", [[2], [3, 5]], ids=["once", "twice"])
def test_interrupted_export_resumes_to_the_same_result(
    thread: tuple[chatnb.ChatClient, chatnb.ChatThreadClient, list[str]],
    tmp_path: Path,
    fmt: str,
    stops: list[int],
) -> None:
    chat, tc, _ = thread
    for i in range(45):
        tc.send_message(f"more {i}")
    baseline = export(chat, tmp_path / "a", tc, fmt, results_per_page=7, include_system=True)
    for n in stops:
        with pytest.raises(Stop):
            export(
                chat, tmp_path / "b", tc, fmt, results_per_page=7, include_system=True, on_page=stop_after(n)
            )
    resumed = export(chat, tmp_path / "b", tc, fmt, results_per_page=7, include_system=True)
    committed = fmt != "parquet" or max(stops) * 7 >= 25  # a Parquet part commits every 25 rows
    assert resumed.threads[0].resumed == committed
    a, b = chatnb.read_export(tmp_path / "a"), chatnb.read_export(tmp_path / "b")
    pd.testing.assert_frame_equal(a, b)
    assert len(a) == baseline.rows == 77 and a["id"].is_unique
    if fmt != "parquet":  # append formats and transcripts come out byte for byte the same
        rel = [p.relative_to(tmp_path / "a") for p in baseline.files]
        assert [p.relative_to(tmp_path / "b") for p in resumed.files] == rel
        for r in rel:
            assert (tmp_path / "a" / r).read_bytes() == (tmp_path / "b" / r).read_bytes()
    assert not [p for p in (tmp_path / "b").rglob(".*") if p.name != STATE_NAME]  # no temporary files left


def test_interrupted_batched_export_loses_only_the_uncommitted_batch(
    thread: tuple[chatnb.ChatClient, chatnb.ChatThreadClient, list[str]], tmp_path: Path
) -> None:
    chat, tc, _ = thread
    for i in range(45):
        tc.send_message(f"more {i}")
    baseline = export(chat, tmp_path / "a", tc, "csv", results_per_page=7, batch_rows=15)
    with pytest.raises(Stop):  # pages 1-3 (21 messages) are one committed batch; page 4 is not written
        export(chat, tmp_path / "b", tc, "csv", results_per_page=7, batch_rows=15, on_page=stop_after(4))
    run = state_of(tmp_path / "b")["threads"][tc.thread_id]["run"]
    assert (run["pages"], run["listed"], run["low_seq"]) == (3, 21, 57)
    [csv] = (tmp_path / "b").rglob("messages.csv")
    assert len(csv.read_text().splitlines()) == 1 + 21
    resumed = export(chat, tmp_path / "b", tc, "csv", results_per_page=7, batch_rows=15)
    assert resumed.threads[0].resumed and resumed.rows == baseline.rows - 21
    assert csv.read_bytes() == next((tmp_path / "a").rglob("messages.csv")).read_bytes()


def test_resume_lists_again_when_the_continuation_is_refused(
    thread: tuple[chatnb.ChatClient, chatnb.ChatThreadClient, list[str]], tmp_path: Path
) -> None:
    chat, tc, _ = thread
    with pytest.raises(Stop):
        export(chat, tmp_path, tc, "jsonl", on_page=stop_after(2))
    state = state_of(tmp_path)
    run = state["threads"][tc.thread_id]["run"]
    assert run["low_seq"] == 13 and "syncState=" in run["next_link"]
    run["next_link"] = run["next_link"].replace("syncState=", "syncState=zz")
    (tmp_path / STATE_NAME).write_text(json.dumps(state))
    result = export(chat, tmp_path, tc, "jsonl")
    assert result.rows == 10
    got = chatnb.read_export(tmp_path)
    assert_same_rows(got, expected(tc, "Incremental"))


def test_recovery_removes_what_was_written_after_the_last_commit(
    thread: tuple[chatnb.ChatClient, chatnb.ChatThreadClient, list[str]], tmp_path: Path
) -> None:
    chat, tc, _ = thread
    result = export(chat, tmp_path, tc, "jsonl")
    [jsonl] = result.files
    clean = jsonl.read_bytes()
    with jsonl.open("ab") as fh:
        fh.write(b'{"id":"half a row')
    stray = jsonl.parent / "part-r0009-00001.parquet"
    stray.write_bytes(b"junk")
    mine = jsonl.parent / "notes.txt"
    mine.write_text("the user's own file")
    assert export(chat, tmp_path, tc, "jsonl").rows == 0
    assert jsonl.read_bytes() == clean and not stray.exists() and mine.exists()
    jsonl.write_bytes(clean[:10])
    with pytest.raises(RuntimeError, match="shorter than the export state says"):
        export(chat, tmp_path, tc, "jsonl")


_KILLED_EXPORT = textwrap.dedent(
    """
    import sys, time
    import chatnb
    endpoint, token, ca, thread_id, out, fmt = sys.argv[1:7]
    chat = chatnb.ChatClient(endpoint, token, connection_verify=ca)
    def on_page(p):
        print(p.total_pages, flush=True)
        time.sleep(0.002)  # a drip: the export is slowed so that the kill lands inside a page
    chatnb.export_history(chat, out, threads=thread_id, format=fmt, incremental=True, progress=False,
                          results_per_page=5, rows_per_file=10, batch_rows=10, include_system=True,
                          on_page=on_page)
    print("done", flush=True)
    """
)


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_export_killed_with_sigkill_resumes_to_the_same_result(
    emulator: Emulator,
    thread: tuple[chatnb.ChatClient, chatnb.ChatThreadClient, list[str]],
    tmp_path: Path,
    fmt: str,
) -> None:
    chat, tc, _ = thread
    for i in range(60):
        tc.send_message(f"more {i}")
    opts = {"results_per_page": 5, "rows_per_file": 10, "batch_rows": 10, "include_system": True}
    baseline = export(chat, tmp_path / "a", tc, fmt, **opts)
    token = chat.credential.get_token().token
    rng = random.Random(fmt)
    for kill_after in (3, 7, 12):
        proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                _KILLED_EXPORT,
                emulator.endpoint,
                token,
                str(emulator.ca_cert),
                tc.thread_id,
                str(tmp_path / "b"),
                fmt,
            ],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONWARNINGS": "ignore"},
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.strip() == "done" or int(line) >= kill_after:
                break
        # land anywhere in the next page: fetching, writing, committing or saving the state
        subprocess.run(["sleep", f"{rng.uniform(0, 0.004):.4f}"], check=True)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        proc.stdout.close()
    export(chat, tmp_path / "b", tc, fmt, **opts)
    a, b = chatnb.read_export(tmp_path / "a"), chatnb.read_export(tmp_path / "b")
    pd.testing.assert_frame_equal(a, b)
    assert len(a) == baseline.rows == 92 and a["id"].is_unique


def test_export_under_injected_429_and_503_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    plan = FaultPlan(rate=0.3, statuses=(429, 503), retry_after=0.02, seed=11)
    with Emulator(faults=plan) as emu:
        chat, user_id = new_chat_user(emu)
        thread_id = chat.create_chat_thread("Throttled").chat_thread.id
        seed_messages(
            emu.store, thread_id, user_id, ((1_700_000_000_000_000 + i, f"m{i}") for i in range(400))
        )
        tc = chat.get_chat_thread_client(thread_id)
        want = expected(tc, "Throttled")
        token = chat.credential.get_token().token
        before = dict(emu.fault_injector.injected)  # type: ignore[union-attr]
        with chatnb.ChatClient(emu.endpoint, token, retry_policy=chatnb.RetryPolicy(max_retries=0)) as strict:
            result = chatnb.export_history(
                strict, tmp_path, threads=thread_id, results_per_page=20, max_retries=30, progress=False
            )
        injected = emu.fault_injector.injected  # type: ignore[union-attr]
        assert injected["429"] + injected["503"] - before.get("429", 0) - before.get("503", 0) >= 5
        got = chatnb.read_export(tmp_path)
        assert result.rows == 400 and got["id"].is_unique
        assert_same_rows(got, want)
        # the client's own retries (honouring Retry-After) are enough too
        result = chatnb.export_history(
            chat, tmp_path / "c", threads=thread_id, results_per_page=20, progress=False
        )
        assert_same_rows(chatnb.read_export(tmp_path / "c"), want)
        chat.close()


def test_pacer_keeps_to_the_documented_list_limits() -> None:
    # the Budget replaced the per-thread Pacer; one thread, one request at a time: the same schedule
    now = [0.0]
    budget = Budget(clock=lambda: now[0])
    sent = []
    for _ in range(260):
        while not isinstance(slot := budget.admit("list-messages", "t"), Slot):
            now[0] += slot
        slot.done()
        sent.append(now[0])
    for i in range(len(sent)):
        assert sum(1 for t in sent[i:] if t < sent[i] + 10.0) <= 50
        assert sum(1 for t in sent[i:] if t < sent[i] + 60.0) <= 200
    assert sent[49] == 0.0 and sent[50] == pytest.approx(10.0) and sent[200] == pytest.approx(60.0)


def test_shared_budget_counts_requests_in_flight() -> None:
    now = [0.0]
    budget = Budget(clock=lambda: now[0])
    admitted = [budget.admit("get-thread") for _ in range(50)]  # 50 workers ask at once: all admitted
    slots = [s for s in admitted if isinstance(s, Slot)]
    assert len(slots) == len(admitted)
    wait = budget.admit("get-thread")
    assert isinstance(wait, float) and 0 < wait < 1  # the 51st waits for answers, not a guessed window
    now[0] = 2.0
    for s in slots:
        s.done()  # answers at t=2: the window runs from then
    wait = budget.admit("get-thread")
    assert wait == pytest.approx(10.0)
    assert isinstance(budget.admit("list-messages", "a"), Slot)  # other operations have their own budget


@pytest.mark.slow
def test_paced_export_is_never_throttled_by_the_real_limits(tmp_path: Path) -> None:
    with Emulator(rate_limits=True) as emu:
        chat, user_id = new_chat_user(emu)
        thread_id = chat.create_chat_thread("Paced").chat_thread.id
        seed_messages(
            emu.store, thread_id, user_id, ((1_700_000_000_000_000 + i, f"m{i}") for i in range(110))
        )
        token = chat.credential.get_token().token
        chat.close()
        with chatnb.ChatClient(emu.endpoint, token, retry_policy=chatnb.RetryPolicy(max_retries=0)) as strict:
            result = chatnb.export_history(
                strict,
                tmp_path,
                threads=thread_id,
                results_per_page=2,
                pace=True,
                max_retries=0,
                progress=False,
            )
        assert result.pages == 56 and result.rows == 110  # 112 messages with the 2 system ones
