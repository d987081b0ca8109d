"""Export at scale: concurrency (exact resume after a kill), failures per thread, several formats in one
run, Markdown transcripts, compaction, and the emulator's simulated distance."""

from __future__ import annotations

import random
import ssl
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import mistune
import pandas as pd
import pytest

import chatnb
from chatnb.credential import token_user_id
from chatnb.emulator import Emulator
from chatnb.export._state import STATE_NAME
from tests.support.clients import new_chat_user
from tests.support.export import assert_same_rows, expected, run_until_killed, token_of

Threads = tuple[chatnb.ChatClient, list[chatnb.ChatThreadClient]]


@pytest.fixture
def threads(emulator: Emulator) -> Any:
    """One user with four threads of 25 to 40 messages."""
    chat, _ = new_chat_user(emulator)
    tcs = []
    for n in range(4):
        tc = chat.get_chat_thread_client(chat.create_chat_thread(f"Thread {n}").chat_thread.id)
        for i in range(25 + 5 * n):
            tc.send_message(f"thread {n} message {i}", sender_display_name="Ann")
        tcs.append(tc)
    yield chat, tcs
    chat.close()


def _ids(tcs: list[chatnb.ChatThreadClient]) -> list[str]:
    return [tc.thread_id for tc in tcs]


def _export(chat: Any, out: Path | str, tcs: list[chatnb.ChatThreadClient], **kwargs: Any) -> Any:
    kwargs.setdefault("results_per_page", 5)
    kwargs.setdefault("rows_per_file", 10)
    kwargs.setdefault("batch_rows", 1)
    kwargs.setdefault("incremental", True)
    return chatnb.export_history(chat, out, threads=_ids(tcs), progress=False, include_system=True, **kwargs)


def test_concurrent_export_writes_what_a_sequential_one_does(threads: Threads, tmp_path: Path) -> None:
    chat, tcs = threads
    one = _export(chat, tmp_path / "one", tcs, concurrency=1)
    many = _export(chat, tmp_path / "many", tcs, concurrency=4)
    assert [t.thread_id for t in many.threads] == _ids(tcs)  # reported in the order asked for
    pd.testing.assert_frame_equal(chatnb.read_export(tmp_path / "one"), chatnb.read_export(tmp_path / "many"))
    for a, b in zip(one.files, many.files, strict=True):  # per-thread order exact: byte for byte
        if a.suffix != ".parquet":
            assert a.read_bytes() == b.read_bytes()
    assert many.rows == one.rows == sum(len(tc.list_messages()) for tc in tcs)


class Stop(Exception):
    pass


def test_interrupted_concurrent_export_resumes_exactly(threads: Threads, tmp_path: Path) -> None:
    chat, tcs = threads
    baseline = _export(chat, tmp_path / "a", tcs, format="jsonl", concurrency=1)
    seen = []

    def on_page(p: chatnb.export.ExportProgress) -> None:
        seen.append(p.thread_id)
        if p.total_pages >= 9:
            raise Stop

    with pytest.raises(Stop):
        _export(chat, tmp_path / "b", tcs, format="jsonl", concurrency=4, on_page=on_page)
    assert len(set(seen)) > 1  # several threads were under way when it stopped
    resumed = _export(chat, tmp_path / "b", tcs, format="jsonl", concurrency=4)
    assert any(t.resumed for t in resumed.threads)
    a, b = chatnb.read_export(tmp_path / "a"), chatnb.read_export(tmp_path / "b")
    pd.testing.assert_frame_equal(a, b)
    for p in baseline.files:
        assert p.read_bytes() == (tmp_path / "b" / p.relative_to(tmp_path / "a")).read_bytes()


_KILLED = textwrap.dedent(
    """
    import sys, threading, time
    import chatnb
    endpoint, token, ca, out, fmt, *ids = sys.argv[1:]
    chat = chatnb.ChatClient(endpoint, token, connection_verify=ca)
    lock = threading.Lock()
    def on_page(p):
        with lock:  # on_page runs in the workers' threads
            sys.stdout.write(f"{p.total_pages}\n")
            sys.stdout.flush()
        time.sleep(0.002)  # a drip: the export is slowed so that the kill lands inside a page
    chatnb.export_history(chat, out, threads=ids, format=fmt, incremental=True, progress=False,
                          results_per_page=5, rows_per_file=10, batch_rows=10, include_system=True,
                          concurrency=4, on_page=on_page)
    print("done", flush=True)
    """
)


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_concurrent_export_killed_with_sigkill_resumes_exactly(
    emulator: Emulator, threads: Threads, tmp_path: Path, fmt: str
) -> None:
    chat, tcs = threads
    opts = {"results_per_page": 5, "rows_per_file": 10, "batch_rows": 10, "format": fmt}
    baseline = _export(chat, tmp_path / "a", tcs, concurrency=1, **opts)
    rng = random.Random(fmt)
    argv = [sys.executable, "-c", _KILLED, emulator.endpoint, token_of(chat), str(emulator.ca_cert)]
    for kill_after in (4, 9, 15):
        run_until_killed(
            [*argv, str(tmp_path / "b"), fmt, *_ids(tcs)], kill_after, linger=rng.uniform(0, 0.004)
        )
    _export(chat, tmp_path / "b", tcs, concurrency=4, **opts)
    a, b = chatnb.read_export(tmp_path / "a"), chatnb.read_export(tmp_path / "b")
    pd.testing.assert_frame_equal(a, b)
    assert len(a) == baseline.rows and not a.duplicated(["thread_id", "id"]).any()


def test_a_failing_thread_does_not_stop_the_others(threads: Threads, tmp_path: Path) -> None:
    chat, tcs = threads
    missing = "19:0000000000000000000000000000000000000000000@thread.v2"
    wanted = [tcs[0].thread_id, missing, tcs[1].thread_id, tcs[2].thread_id]
    with pytest.raises(chatnb.export.ExportError, match=r"1 of 4 thread\(s\) could not be exported") as info:
        chatnb.export_history(chat, tmp_path, threads=wanted, concurrency=2, progress=False)
    result = info.value.result
    assert [f.thread_id for f in result.failed] == [missing]
    assert isinstance(result.failed[0].error, chatnb.ChatError)
    assert [t.thread_id for t in result.threads] == [wanted[0], *wanted[2:]]
    got = chatnb.read_export(tmp_path)
    assert sorted(set(got["thread_id"])) == sorted(wanted[0:1] + wanted[2:])
    for tc in tcs[:3]:
        assert_same_rows(got[got["thread_id"] == tc.thread_id], expected(tc, tc.get_properties().topic))


def test_a_thread_that_failed_is_exported_by_the_next_incremental_run(
    emulator: Emulator, threads: Threads, tmp_path: Path
) -> None:
    """A failure for a passing reason (not yet a member: 403) is exported once it has passed, by the same
    command run again; what the first run exported is not written twice."""
    chat, tcs = threads
    owner, _ = new_chat_user(emulator)
    with owner:
        later = owner.get_chat_thread_client(owner.create_chat_thread("Joined later").chat_thread.id)
        for i in range(7):
            later.send_message(f"later {i}", sender_display_name="Owner")
        wanted = [tcs[0].thread_id, later.thread_id, tcs[1].thread_id]

        def run() -> chatnb.ExportResult:
            return chatnb.export_history(
                chat, tmp_path, threads=wanted, concurrency=2, incremental=True, progress=False
            )

        with pytest.raises(chatnb.export.ExportError, match=r"1 of 3 thread\(s\)") as info:
            run()
        assert [f.thread_id for f in info.value.result.failed] == [later.thread_id]
        assert isinstance(info.value.result.failed[0].error, chatnb.ForbiddenError)
        me = chatnb.CommunicationUserIdentifier(token_user_id(token_of(chat)))
        later.add_participants([chatnb.ChatParticipant(me, display_name="Ann")])
        again = run()  # no error: the thread that failed is exported now
        assert again.failed == []
        got = chatnb.read_export(tmp_path)
        for tc in (tcs[0], tcs[1], chat.get_chat_thread_client(later.thread_id)):
            assert_same_rows(got[got["thread_id"] == tc.thread_id], expected(tc, tc.get_properties().topic))


def test_cli_reports_failed_threads_last_and_exits_1(
    emulator: Emulator, threads: Threads, tmp_path: Path
) -> None:
    chat, tcs = threads
    missing = "19:0000000000000000000000000000000000000000001@thread.v2"
    done = subprocess.run(
        [
            *(sys.executable, "-m", "chatnb", "export", "--endpoint", emulator.endpoint, "--token-stdin"),
            *(
                "--ca-cert",
                str(emulator.ca_cert),
                "--no-progress",
                "--out",
                str(tmp_path),
                "--concurrency",
                "3",
            ),
            *("--thread", tcs[0].thread_id, "--thread", missing, "--thread", tcs[1].thread_id),
        ],
        input=token_of(chat) + "\n",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert "exported" in done.stdout and tcs[0].thread_id in done.stdout and tcs[1].thread_id in done.stdout
    last = done.stderr.strip().splitlines()
    assert "1 thread(s) failed" in last[-2] and last[-1].strip().startswith(missing)
    assert "Traceback" not in done.stderr


def test_several_formats_from_one_listing(threads: Threads, tmp_path: Path) -> None:
    chat, tcs = threads
    formats = ["parquet", "csv", "jsonl", "html", "markdown"]
    single = _export(chat, tmp_path / "single", tcs, format="parquet")
    first = _export(chat, tmp_path / "all", tcs, format=formats, concurrency=2)
    assert first.pages == single.pages and first.formats == formats  # one listing for every format
    tcs[0].send_message("a new one")
    second = _export(chat, tmp_path / "all", tcs, format=formats, concurrency=2)
    assert second.rows == 1
    reads = {f: chatnb.read_export(tmp_path / "all", format=f) for f in ("parquet", "csv", "jsonl", "html")}
    columns = ["thread_id", "id", "sequence_id", "version", "content", "sender_display_name", "created_on"]
    for fmt in ("csv", "jsonl"):
        pd.testing.assert_frame_equal(reads[fmt], reads["parquet"])
    pd.testing.assert_frame_equal(reads["html"][columns[:4]], reads["parquet"][columns[:4]])
    assert len(list((tmp_path / "all").rglob("transcript*.md"))) == 5  # 4 threads, then one more run
    with pytest.raises(ValueError, match="other settings"):
        _export(chat, tmp_path / "all", tcs, format=["parquet", "csv"])


def test_markdown_transcript_is_inert_and_in_order(emulator: Emulator, tmp_path: Path) -> None:
    chat, _ = new_chat_user(emulator)
    tc = chat.get_chat_thread_client(
        chat.create_chat_thread("Links [x](http://t.example) # h").chat_thread.id
    )
    hostile = [
        "[click](http://evil.example) ![pixel](http://track.example/p.png) <script>alert(1)</script>",
        "# heading\n- item\n1. first\n> quote\n=====",
        "**bold** _it_ `code` ~~strike~~ | table | &copy; \\",
    ]
    for text in hostile:
        tc.send_message(text, sender_display_name="Mallory **x**")
    tc.send_message(
        '<p>html <a href="http://evil.example">link</a><img src="http://t.example/x"></p>',
        chat_message_type="html",
    )
    chatnb.export_history(chat, tmp_path, threads=tc.thread_id, format="markdown", progress=False)
    [md] = tmp_path.rglob("transcript.md")
    text = md.read_text()
    rendered = mistune.html(text)
    assert isinstance(rendered, str)
    assert "<a " not in rendered and "<img" not in rendered and "<script" not in rendered
    assert rendered.count("<h1>") == 1 and "<li>" not in rendered and "<strong>Mallory" in rendered
    assert "<code>" not in rendered and "<em>" not in rendered.replace("<em>message deleted</em>", "")
    assert text.index("\\[click\\]") < text.index("\\# heading") < text.index("\\*\\*bold")  # oldest first
    assert "html link" in text and "evil.example" not in text.split("html link")[1][:40]
    with pytest.raises(ValueError, match="Markdown"):
        chatnb.read_export(tmp_path)
    chat.close()


def test_compaction_keeps_the_latest_version_of_each_message(threads: Threads, tmp_path: Path) -> None:
    chat, tcs = threads
    for fmt in ("parquet", "csv", "jsonl"):
        out = tmp_path / fmt
        _export(chat, out, tcs, format=fmt, batch_rows=2000)
    ids = tcs[0].list_messages()
    text_ids = list(ids[ids["type"] == "text"]["id"])
    tcs[0].update_message(text_ids[0], "edited")
    tcs[0].delete_message(text_ids[1])
    for fmt in ("parquet", "csv", "jsonl"):
        out = tmp_path / fmt
        _export(chat, out, tcs, format=fmt, batch_rows=2000)
        result = chatnb.compact_export(out, tmp_path / f"{fmt}-compact")
        latest = chatnb.read_export(out, latest=True)
        compacted = chatnb.read_export(tmp_path / f"{fmt}-compact")
        pd.testing.assert_frame_equal(compacted, latest)
        assert len(compacted) < len(chatnb.read_export(out))  # the edit and the delete came out twice
        files = sorted(p for p in (tmp_path / f"{fmt}-compact").rglob("*") if p.is_file())
        assert len(files) == len(tcs) == len(result.threads)  # one file per thread
        row = compacted[compacted["id"] == text_ids[0]].iloc[0]
        assert row["content"] == "edited"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "chatnb",
            "compact",
            str(tmp_path / "csv"),
            "--drop-deleted",
            "--out",
            str(tmp_path / "c2"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert text_ids[1] not in set(chatnb.read_export(tmp_path / "c2")["id"])
    again = subprocess.run(
        [sys.executable, "-m", "chatnb", "compact", str(tmp_path / "csv"), "--out", str(tmp_path / "c2")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode == 2 and again.stderr.count("\n") == 1 and "already holds files" in again.stderr


def test_latency_delays_every_response_without_blocking_the_server(tmp_path: Path) -> None:
    latency = 0.3
    with Emulator(latency_ms=latency * 1000) as emu:
        with httpx.Client(verify=ssl.create_default_context(cafile=str(emu.ca_cert))) as http:
            t0 = time.perf_counter()
            http.get(emu.endpoint.rstrip("/") + "/chat/threads")  # 401, delayed all the same
            assert time.perf_counter() - t0 >= latency
        chat, _ = new_chat_user(emu)
        # ten requests at once: each waits its round trip, none waits for the others (async sleep)
        times: list[float] = []

        def call() -> None:
            t = time.perf_counter()
            chat.list_chat_threads()
            times.append(time.perf_counter() - t)

        workers = [threading.Thread(target=call) for _ in range(10)]
        t0 = time.perf_counter()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        assert min(times) >= latency and time.perf_counter() - t0 < 10 * latency
        # the event stream's first bytes come a round trip later too
        with httpx.Client(verify=ssl.create_default_context(cafile=str(emu.ca_cert)), timeout=10) as http:
            headers = {"Authorization": f"Bearer {token_of(chat)}"}
            t0 = time.perf_counter()
            with http.stream(
                "GET", emu.endpoint.rstrip("/") + "/chatnb/events?api-version=2024-03-07", headers=headers
            ) as r:
                assert r.status_code == 200 and time.perf_counter() - t0 >= latency
        chat.close()


def test_serve_refuses_a_negative_latency() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "chatnb", "serve", "--in-memory", "--latency-ms", "-5"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "--latency-ms" in done.stderr and "must be 0 or more" in done.stderr


def test_state_saves_of_concurrent_workers_are_shared(threads: Threads, tmp_path: Path) -> None:
    chat, tcs = threads
    _export(chat, tmp_path, tcs, concurrency=4, format="csv")
    state = (tmp_path / STATE_NAME).read_text()
    assert all(tc.thread_id in state for tc in tcs)
