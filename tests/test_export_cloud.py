"""Exports into cloud storage through fsspec: Azure Blob Storage (Azurite, the official emulator, started
here on a free loopback port with its own account key) and ``memory://``; export, incremental run, kill
and resume, and reading back with chatnb, pandas and pyarrow."""

from __future__ import annotations

import base64
import os
import re
import secrets
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fsspec
import pandas as pd
import pyarrow.dataset as ds
import pytest

import chatnb
from chatnb.emulator import Emulator
from tests.support.clients import new_chat_user
from tests.support.export import run_until_killed, token_of
from tests.support.net import free_port

AZURITE = Path(__file__).parent / "azurite" / "node_modules" / ".bin" / "azurite-blob"
ACCOUNT = "chatnbtest"


@pytest.fixture(scope="module")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Azurite's blob service in memory on a free port, with an account and key of this test's own."""
    assert AZURITE.exists(), "run `bash .ci/setup-extras` (npm ci in tests/azurite)"
    key = base64.b64encode(secrets.token_bytes(32)).decode()
    port = free_port()
    workspace = tmp_path_factory.mktemp("azurite")
    proc = subprocess.Popen(
        [
            str(AZURITE),
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            str(port),
            "--inMemoryPersistence",
            "--skipApiVersionCheck",
            "--loose",
            "--disableTelemetry",  # else it queues Application Insights reports in the temp folder
        ],
        cwd=workspace,  # where Azurite would keep its debug log and settings
        env={**os.environ, "AZURITE_ACCOUNTS": f"{ACCOUNT}:{key}", "TMPDIR": str(workspace)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:  # wait for its own word that it listens
            lines.append(line)
            if "successfully listens" in line:
                break
        else:
            raise RuntimeError("Azurite did not start: " + "".join(lines))
        cs = (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={key};"
            f"BlobEndpoint=http://127.0.0.1:{port}/{ACCOUNT};"
        )
        import adlfs

        fs = adlfs.AzureBlobFileSystem(connection_string=cs)
        fs.mkdir("chat")
        yield {"connection_string": cs}
    finally:
        # Azurite closes its service at once, then lingers while a client keeps a connection open (the
        # pooled ones of adlfs, in this process): once it says it is closed, nothing is left to it.
        proc.send_signal(signal.SIGTERM)
        said = threading.Thread(target=_until_closed, args=(proc,), daemon=True)
        said.start()
        said.join(15)
        proc.kill()
        proc.wait(5)
        if proc.stdout is not None:
            proc.stdout.close()


def _until_closed(proc: subprocess.Popen[str]) -> None:
    """Read Azurite's output until it says its service is closed (or its output ends)."""
    assert proc.stdout is not None
    for line in proc.stdout:
        if "successfully closed" in line:
            return


@pytest.fixture
def history(emulator: Emulator) -> Any:
    chat, _ = new_chat_user(emulator)
    tcs = []
    for n in range(3):
        tc = chat.get_chat_thread_client(chat.create_chat_thread(f"Cloud {n}").chat_thread.id)
        for i in range(30):
            tc.send_message(f"thread {n} message {i}", sender_display_name="Ann")
        tcs.append(tc)
    yield chat, tcs
    chat.close()


_KILLED = textwrap.dedent(
    """
    import sys, threading, time
    import chatnb
    endpoint, token, ca, out, cs, *ids = sys.argv[1:]
    lock = threading.Lock()
    def on_page(p):
        with lock:
            sys.stdout.write(f"{p.total_pages}\\n")
            sys.stdout.flush()
        time.sleep(0.01)  # a drip: the export is slowed so that the kill lands inside a page
    with chatnb.ChatClient(endpoint, token, connection_verify=ca) as chat:
        chatnb.export_history(chat, out, threads=ids, format=["parquet", "jsonl"], incremental=True,
                              progress=False, results_per_page=5, rows_per_file=10, batch_rows=10,
                              concurrency=3, on_page=on_page, storage_options={"connection_string": cs})
    print("done", flush=True)
    """
)


def test_azurite_round_trip_incremental_kill_and_resume(
    azurite: dict[str, str], emulator: Emulator, history: Any, tmp_path: Path
) -> None:
    chat, tcs = history
    ids = [tc.thread_id for tc in tcs]
    opts: dict[str, Any] = {"results_per_page": 5, "rows_per_file": 10, "batch_rows": 10, "progress": False}
    kw: dict[str, Any] = {"threads": ids, "format": "parquet", "incremental": True, **opts}
    local = chatnb.export_history(chat, tmp_path / "local", **kw)
    url = "abfs://chat/run-a"
    first = chatnb.export_history(chat, url, storage_options=azurite, concurrency=3, **kw)
    assert first.rows == local.rows and all(str(f).startswith(url) for f in first.files)
    pd.testing.assert_frame_equal(
        chatnb.read_export(url, storage_options=azurite), chatnb.read_export(tmp_path / "local")
    )
    tcs[1].send_message("one more")
    tcs[2].update_message(tcs[2].list_messages()["id"].iloc[-1], "edited")
    second = chatnb.export_history(chat, url, storage_options=azurite, concurrency=3, **kw)
    chatnb.export_history(chat, tmp_path / "local", **kw)
    assert second.rows == 2
    back = chatnb.read_export(url, storage_options=azurite, latest=True)
    pd.testing.assert_frame_equal(back, chatnb.read_export(tmp_path / "local", latest=True))
    # killed mid-export, twice, then resumed: the same rows as the uninterrupted export
    argv = [sys.executable, "-c", _KILLED, emulator.endpoint, token_of(chat), str(emulator.ca_cert)]
    target = "abfs://chat/run-b"
    for kill_after in (3, 8):
        run_until_killed([*argv, target, azurite["connection_string"], *ids], kill_after)
    kw["format"] = ["parquet", "jsonl"]  # the killed runs wrote both
    resumed = chatnb.export_history(chat, target, storage_options=azurite, concurrency=3, **kw)
    assert any(t.resumed for t in resumed.threads)
    for fmt in ("parquet", "jsonl"):
        got = chatnb.read_export(target, format=fmt, storage_options=azurite, latest=True)
        pd.testing.assert_frame_equal(got, back)
    # pandas and pyarrow read the same Hive-style layout straight from the store
    import adlfs

    fs = adlfs.AzureBlobFileSystem(**azurite)
    frame = pd.read_parquet("abfs://chat/run-a", storage_options=azurite)
    assert len(frame) == len(chatnb.read_export(url, storage_options=azurite))
    table = ds.dataset("chat/run-a", filesystem=fs, format="parquet", partitioning="hive").to_table()
    assert table.num_rows == len(frame) and "thread_id" in table.column_names
    assert set(table.column("thread_id").to_pylist()) == set(ids)
    # the state is versioned (no atomic rename on blob storage): the newest two versions are kept
    versions = fs.ls("chat/run-a/.chatnb-export-state")
    assert 1 <= len(versions) <= 2


def test_memory_store_round_trip_with_several_formats(history: Any, tmp_path: Path) -> None:
    chat, tcs = history
    url = f"memory://chatnb-test-{secrets.token_hex(4)}/export"
    kw: dict[str, Any] = {"threads": [tc.thread_id for tc in tcs], "incremental": True, "progress": False}
    formats = ["parquet", "csv", "jsonl", "html", "markdown"]
    result = chatnb.export_history(chat, url, format=formats, **kw)
    chatnb.export_history(chat, tmp_path, format="parquet", **kw)
    pd.testing.assert_frame_equal(chatnb.read_export(url), chatnb.read_export(tmp_path))
    pd.testing.assert_frame_equal(chatnb.read_export(url, format="csv"), chatnb.read_export(tmp_path))
    assert any(str(f).endswith(".md") for f in result.files)
    assert chatnb.export_history(chat, url, format=formats, **kw).rows == 0
    compacted = chatnb.compact_export(url, f"{url}-compact")
    assert len(compacted.threads) == 3
    pd.testing.assert_frame_equal(chatnb.read_export(f"{url}-compact"), chatnb.read_export(url, latest=True))


def test_a_torn_newest_state_version_gives_way_to_the_one_before(history: Any, tmp_path: Path) -> None:
    """A store without atomic rename can keep half a save (a killed upload): the next run reads the newest
    version that parses and exports exactly what is missing; with none readable it stops and says so."""
    chat, tcs = history
    url = f"memory://chatnb-test-{secrets.token_hex(4)}/export"
    kw: dict[str, Any] = {"threads": [tc.thread_id for tc in tcs], "incremental": True, "progress": False}
    chatnb.export_history(chat, url, **kw)
    fs = fsspec.filesystem("memory")
    folder = url.removeprefix("memory://") + "/.chatnb-export-state"
    newest = max(int(re.findall(r"state-(\d{10})\.json", p)[0]) for p in fs.ls(folder, detail=False))
    fs.pipe(f"{folder}/state-{newest + 1:010d}.json", b'{"threads": {"19:')  # a save cut off
    tcs[0].send_message("sent after the torn save")
    assert chatnb.export_history(chat, url, **kw).rows == 1
    chatnb.export_history(chat, tmp_path, **kw)
    pd.testing.assert_frame_equal(chatnb.read_export(url), chatnb.read_export(tmp_path))
    for path in fs.ls(folder, detail=False):
        fs.pipe(path, b"{")
    with pytest.raises(ValueError, match="holds no readable export state"):
        chatnb.export_history(chat, url, **kw)
    assert len(chatnb.read_export(url)) == len(chatnb.read_export(tmp_path))  # nothing was removed


def test_cloud_errors_are_clear(history: Any) -> None:
    chat, tcs = history
    with pytest.raises(ValueError, match="cannot open nosuch://"):
        chatnb.export_history(chat, "nosuch://x/y", threads=tcs[0].thread_id, progress=False)
    with pytest.raises(ValueError, match="storage_options are for fsspec URLs"):
        chatnb.export_history(chat, "local-dir", threads=tcs[0].thread_id, storage_options={"a": 1})
