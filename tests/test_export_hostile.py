"""Hostile files and data in exports (issue 13, items 1, 9-12): private modes from creation, tampered state
files and symbolic links, CSV formulas, lone surrogates, thread ids too long for a file name."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import chatnb
from chatnb.emulator import Emulator
from chatnb.export._state import STATE_NAME
from tests.support.clients import new_chat_user
from tests.support.export import Rewriting, local_files, modes, token_of

ALL_FORMATS = ["parquet", "csv", "jsonl", "html", "markdown"]


@pytest.fixture
def user(emulator: Emulator) -> Any:
    chat, _ = new_chat_user(emulator)
    yield chat
    chat.close()


def _thread(chat: chatnb.ChatClient, topic: str, *texts: str, name: str = "Ann") -> chatnb.ChatThreadClient:
    tc = chat.get_chat_thread_client(chat.create_chat_thread(topic).chat_thread.id)
    for text in texts:
        tc.send_message(text, sender_display_name=name)
    return tc


def test_exports_are_private_from_creation(user: chatnb.ChatClient, tmp_path: Path) -> None:
    tc = _thread(user, "Private", "secret one", "secret two")
    old = os.umask(0o022)  # the usual umask: what the export does not rely on
    try:
        out = tmp_path / "new" / "export"
        chatnb.export_history(
            user, out, threads=tc.thread_id, format=ALL_FORMATS, partition_by="month", progress=False
        )
    finally:
        os.umask(old)
    found = modes(out)
    assert found.pop(".") == 0o700 and (tmp_path / "new").stat().st_mode & 0o077 == 0
    assert STATE_NAME in found and len(found) > 6
    for rel, mode in found.items():
        assert mode == (0o700 if (out / rel).is_dir() else 0o600), rel


def test_a_state_naming_paths_outside_the_export_is_refused(user: chatnb.ChatClient, tmp_path: Path) -> None:
    tc = _thread(user, "Tampered", *[f"m{i}" for i in range(12)])
    out = tmp_path / "out"
    outside = tmp_path / "outside.txt"
    outside.write_text("not the export's")

    class Stop(Exception):
        pass

    def stop(p: chatnb.export.ExportProgress) -> None:
        if p.total_pages >= 2:
            raise Stop

    with pytest.raises(Stop):
        chatnb.export_history(
            user, out, threads=tc.thread_id, format="html", incremental=True, progress=False,
            results_per_page=4, batch_rows=1, on_page=stop,
        )  # fmt: skip
    state = json.loads((out / STATE_NAME).read_text())
    run = state["threads"][tc.thread_id]["run"]
    for crafted in ("../outside.txt", str(outside), "thread_id=other/../../outside.txt"):
        run["html_pages"] = {crafted: [3]}
        (out / STATE_NAME).write_text(json.dumps(state))
        with pytest.raises(ValueError, match="changed outside chatnb and is refused"):
            chatnb.export_history(
                user, out, threads=tc.thread_id, format="html", incremental=True, progress=False
            )
    state["threads"][tc.thread_id]["files"] = {"../../etc/passwd": 1}
    (out / STATE_NAME).write_text(json.dumps(state))
    with pytest.raises(ValueError, match="refused"):
        chatnb.export_history(
            user, out, threads=tc.thread_id, format="html", incremental=True, progress=False
        )
    assert outside.read_text() == "not the export's"


def test_the_export_never_writes_or_deletes_through_symbolic_links(
    user: chatnb.ChatClient, tmp_path: Path
) -> None:
    linked = _thread(user, "Linked", "one", "two")
    other = _thread(user, "Other", "three")
    out = tmp_path / "out"
    target = tmp_path / "elsewhere"
    target.mkdir()
    (target / "messages.jsonl").write_text("someone else's file\n")
    (target / "part-r0001-00001.parquet").write_text("someone else's too")
    out.mkdir()
    first = chatnb.export_history(user, out, threads=other.thread_id, format="jsonl", progress=False)
    thread_folder = local_files(first)[0].parent.name.replace(other.thread_id.replace(":", "%3A"), "")
    assert thread_folder == "thread_id="
    folder = out / ("thread_id=" + linked.thread_id.replace(":", "%3A"))
    folder.symlink_to(target, target_is_directory=True)
    with pytest.raises(chatnb.export.ExportError, match="symbolic link") as info:
        chatnb.export_history(
            user, out, threads=[linked.thread_id, other.thread_id], format="jsonl", progress=False
        )
    assert [f.thread_id for f in info.value.result.failed] == [linked.thread_id]
    assert [t.thread_id for t in info.value.result.threads] == [other.thread_id]
    assert sorted(p.name for p in target.iterdir()) == ["messages.jsonl", "part-r0001-00001.parquet"]
    assert (target / "messages.jsonl").read_text() == "someone else's file\n"
    # a file of the export's own name that is a link: removed itself on recovery, never its target
    folder.unlink()
    chatnb.export_history(
        user, out, threads=linked.thread_id, format="jsonl", incremental=True, progress=False
    )
    [own] = folder.glob("messages.jsonl")
    own.unlink()
    own.symlink_to(target / "messages.jsonl")
    with pytest.raises(chatnb.export.ExportError):  # the committed file is gone: a clear error, per thread
        chatnb.export_history(
            user, out, threads=linked.thread_id, format="jsonl", incremental=True, progress=False
        )
    assert (target / "messages.jsonl").read_text() == "someone else's file\n"


HOSTILE_CELLS = [
    '=HYPERLINK("http://evil.example","x")',
    "+1+1",
    "-2",
    "@SUM(A1)",
    "\t=1",
    "\r=1",
    "ok\t=2",
    "'=kept",
]


def _csv_cells(out: Path) -> list[str]:
    [path] = out.rglob("messages.csv")
    return [cell for row in csv.reader(io.StringIO(path.read_text(), newline="")) for cell in row]


def test_csv_formulas_are_neutralised_and_read_back_as_sent(user: chatnb.ChatClient, tmp_path: Path) -> None:
    tc = _thread(user, "=cmd|' /C calc'!A0", *HOSTILE_CELLS, name="@evil")
    chatnb.export_history(user, tmp_path / "safe", threads=tc.thread_id, format="csv", progress=False)
    cells = _csv_cells(tmp_path / "safe")
    for cell in cells:
        assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), cell
        for sep in ("\t", "\r"):
            assert all(not piece.startswith(("=", "+", "-", "@")) for piece in cell.split(sep)[1:]), cell
    assert "'@evil" in cells and "'=cmd|' /C calc'!A0" in cells and "''=kept" in cells
    back = chatnb.read_export(tmp_path / "safe")
    assert sorted(back["content"]) == sorted(HOSTILE_CELLS)
    assert set(back["sender_display_name"]) == {"@evil"} and set(back["thread_topic"]) == {
        "=cmd|' /C calc'!A0"
    }
    chatnb.export_history(
        user, tmp_path / "raw", threads=tc.thread_id, format="csv", csv_formulas="keep", progress=False
    )
    assert '=HYPERLINK("http://evil.example","x")' in _csv_cells(tmp_path / "raw")
    pd.testing.assert_frame_equal(chatnb.read_export(tmp_path / "raw"), back)
    with pytest.raises(ValueError, match="csv_formulas"):
        chatnb.export_history(user, tmp_path / "x", threads=tc.thread_id, format="csv", csv_formulas="no")


def test_lone_surrogates_are_replaced_and_counted_in_every_format(emulator: Emulator, tmp_path: Path) -> None:
    chat, _ = new_chat_user(emulator)
    tc = _thread(chat, "Topic SURROGATE", "bad SURROGATE here", "fine", name="Ann SURROGATE")
    # the emulator refuses lone surrogates; a service that sends them is this rewrite of its answers
    transport = Rewriting(emulator, out={}, back={b"SURROGATE": b"\\ud800"})
    with chatnb.ChatClient(emulator.endpoint, token_of(chat), transport=transport) as odd:
        for n, fmt in enumerate(ALL_FORMATS):
            out = tmp_path / fmt
            result = chatnb.export_history(
                odd, out, threads=tc.thread_id, format=fmt, incremental=True, progress=False
            )
            # the content, the two display names and the topic of the thread's topicUpdated message
            assert result.rows == 2 + n and result.repaired == 4 + n  # and the later ones of earlier rounds
            tc.send_message(f"later SURROGATE {n}")
            again = chatnb.export_history(
                odd, out, threads=tc.thread_id, format=fmt, incremental=True, progress=False
            )
            assert again.rows == 1 and again.repaired >= 1  # incremental runs go on past it
        got = chatnb.read_export(tmp_path / "parquet")
    assert "bad \ufffd here" in set(got["content"]) and set(got["thread_topic"]) == {"Topic \ufffd"}
    assert "Ann \ufffd" in set(got["sender_display_name"])
    chat.close()


def test_thread_ids_too_long_for_a_file_name_are_shortened_stably(emulator: Emulator, tmp_path: Path) -> None:
    chat, _ = new_chat_user(emulator)
    short = _thread(chat, "Short", "s1")
    real = _thread(chat, "Long", "l1", "l2")
    long_id = "19:" + "a" * 287 + "@thread.v2"  # 300 characters
    transport = Rewriting(
        emulator, out={long_id: real.thread_id}, back={real.thread_id.encode(): long_id.encode()}
    )
    with chatnb.ChatClient(emulator.endpoint, token_of(chat), transport=transport) as odd:
        for fmt in ("parquet", "jsonl", "html"):
            out = tmp_path / fmt
            result = chatnb.export_history(odd, out, format=fmt, incremental=True, progress=False)
            assert {t.thread_id for t in result.threads} >= {short.thread_id, long_id} and not result.failed
            folders = {p.name for p in out.iterdir() if p.is_dir()}
            assert all(len(f) <= 200 for f in folders)
            got = chatnb.read_export(out)
            assert set(got[got["content"].isin(["l1", "l2"])]["thread_id"]) == {long_id}
            assert chatnb.export_history(odd, out, format=fmt, incremental=True, progress=False).rows == 0
            assert {p.name for p in out.iterdir() if p.is_dir()} == folders  # the same name every run
    chat.close()
