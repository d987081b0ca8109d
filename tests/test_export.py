"""History export against the real emulator: formats round-trip, filters, partitioning, CLI, async."""

from __future__ import annotations

import html
import json
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb
import jwt
import pandas as pd
import pyarrow.dataset as ds
import pytest

import chatnb
import chatnb.aio
from chatnb._time import to_us
from chatnb.cli import main
from chatnb.emulator import Emulator
from chatnb.emulator.seed import seed_messages
from tests.support.clients import new_chat_user
from tests.support.export import SYSTEM, RichThread, assert_same_rows, expected, local_files, rich_thread

FORMATS = ["parquet", "csv", "jsonl", "html"]
HTML_COLUMNS = [
    "id",
    "type",
    "sequence_id",
    "version",
    "sender_id",
    "sender_display_name",
    "created_on",
    "edited_on",
    "deleted_on",
    "thread_id",
]


@pytest.fixture(scope="module")
def rich(emulator: Emulator) -> Iterator[RichThread]:
    r = rich_thread(emulator)
    yield r
    r.chat.close()
    r.other.close()


@pytest.fixture(scope="module")
def old_history(emulator: Emulator) -> Iterator[tuple[chatnb.ChatClient, str, list[int]]]:
    """A thread with 90 messages seeded one a day from 2024-01-01: three months and a bit."""
    chat, user_id = new_chat_user(emulator)
    thread_id = chat.create_chat_thread("Archive").chat_thread.id
    t0 = to_us(datetime(2024, 1, 1, 12, tzinfo=timezone.utc))
    times = [t0 + day * 86_400_000_000 for day in range(90)]
    seed_messages(emulator.store, thread_id, user_id, ((t, f"day {i}") for i, t in enumerate(times)))
    yield chat, thread_id, times
    chat.close()


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_round_trips(rich: RichThread, tmp_path: Path, fmt: str) -> None:
    result = chatnb.export_history(
        rich.chat,
        tmp_path,
        threads=rich.thread_id,
        format=fmt,
        include_system=True,
        include_deleted=True,
        results_per_page=7,
        progress=False,
    )
    want = expected(rich.thread, rich.topic, include_system=True, include_deleted=True)
    assert result.rows == len(want) and result.pages == -(-len(want) // 7)
    got = chatnb.read_export(tmp_path)
    assert list(got.columns) == list(chatnb.export.EXPORT_COLUMNS)
    if fmt != "html":
        assert_same_rows(got, want)
        assert dict(got.dtypes) == dict(want.dtypes)
        return
    assert_same_rows(got, want, HTML_COLUMNS)
    deleted = want["deleted_on"].notna()
    texts = want["type"].eq("text") & ~deleted
    assert got["content"][texts].tolist() == want["content"][texts].tolist()
    assert got["content"][want["type"].eq("html")].tolist() == ["Hi therex"]  # sanitised: no script
    assert got["content"][deleted | want["type"].isin(SYSTEM)].isna().all()
    page = local_files(result)[0].read_text()
    assert "<script" not in page and "javascript:" not in page and "alert(" not in page
    assert html.escape(rich.topic) in page and "changed the topic to" in page
    assert "&lt;b&gt;" in page  # text content is escaped, not markup
    assert "Content-Security-Policy" in page


def test_default_export_leaves_out_system_and_deleted_messages(rich: RichThread, tmp_path: Path) -> None:
    chatnb.export_history(rich.chat, tmp_path, threads=[rich.thread_id], format="jsonl", progress=False)
    got = chatnb.read_export(tmp_path)
    assert_same_rows(got, expected(rich.thread, rich.topic))
    assert not got["type"].isin(SYSTEM).any() and got["deleted_on"].isna().all()
    lines = next(tmp_path.rglob("messages.jsonl")).read_text().splitlines()
    first = json.loads(lines[0])
    assert first["thread_id"] == rich.thread_id and first["thread_topic"] == rich.topic


def test_thread_client_and_session_user_are_accepted(rich: RichThread, tmp_path: Path) -> None:
    result = chatnb.export_history(rich.thread, tmp_path, format="csv", progress=False)
    assert [t.thread_id for t in result.threads] == [rich.thread_id]
    assert_same_rows(chatnb.read_export(tmp_path), expected(rich.thread, rich.topic))


def test_time_and_sequence_filters(
    old_history: tuple[chatnb.ChatClient, str, list[int]], tmp_path: Path
) -> None:
    chat, thread_id, _ = old_history
    full = expected(chat.get_chat_thread_client(thread_id), "Archive")
    since, until = "2024-02-01", datetime(2024, 3, 1, tzinfo=timezone.utc)
    chatnb.export_history(chat, tmp_path / "t", threads=thread_id, since=since, until=until, progress=False)
    got = chatnb.read_export(tmp_path / "t")
    lo, hi = pd.Timestamp(since, tz="UTC"), pd.Timestamp(until)
    assert_same_rows(got, full[(full["created_on"] >= lo) & (full["created_on"] < hi)])
    assert len(got) == 29  # February 2024
    chatnb.export_history(
        chat, tmp_path / "s", threads=thread_id, min_sequence_id=10, max_sequence_id=20, progress=False
    )
    got = chatnb.read_export(tmp_path / "s")
    assert got["sequence_id"].tolist() == list(range(10, 21))


def test_sequence_floor_stops_the_listing_early(
    old_history: tuple[chatnb.ChatClient, str, list[int]], tmp_path: Path
) -> None:
    chat, thread_id, _ = old_history
    result = chatnb.export_history(
        chat, tmp_path, threads=thread_id, min_sequence_id=80, results_per_page=5, progress=False
    )
    assert result.rows == 13  # sequence ids 80..92
    assert result.pages == 3  # 92..88, 87..83, 82..78: no need to list further down


def test_partition_by_month_is_readable_by_pandas_pyarrow_and_duckdb(
    old_history: tuple[chatnb.ChatClient, str, list[int]], tmp_path: Path
) -> None:
    chat, thread_id, _ = old_history
    result = chatnb.export_history(
        chat, tmp_path, threads=thread_id, partition_by="month", results_per_page=25, progress=False
    )
    months = sorted({p.parent.name for p in local_files(result)})
    assert months == ["month=2024-01", "month=2024-02", "month=2024-03"]
    assert all(p.parent.parent.name.startswith("thread_id=19%3A") for p in local_files(result))
    by_pandas = pd.read_parquet(tmp_path)
    assert set(by_pandas["thread_id"].astype(str)) == {thread_id}
    assert by_pandas.groupby(by_pandas["month"].astype(str)).size().to_dict() == {
        "2024-01": 31,
        "2024-02": 29,
        "2024-03": 30,
    }
    table = ds.dataset(tmp_path, format="parquet", partitioning="hive").to_table(
        filter=ds.field("month") == "2024-02"
    )
    assert table.num_rows == 29
    glob = str(tmp_path / "**" / "*.parquet")
    relation = duckdb.sql(
        f"SELECT month, thread_id, count(*) FROM read_parquet('{glob}', hive_partitioning=true) "
        "GROUP BY ALL ORDER BY month"
    )
    assert relation is not None
    rows = relation.fetchall()
    assert [(r[0], r[1], r[2]) for r in rows] == [
        ("2024-01", thread_id, 31),
        ("2024-02", thread_id, 29),
        ("2024-03", thread_id, 30),
    ]
    for fmt in ("csv", "jsonl"):
        chatnb.export_history(
            chat, tmp_path / fmt, threads=thread_id, format=fmt, partition_by="month", progress=False
        )
        assert len(list((tmp_path / fmt).rglob(f"month=*/messages.{fmt}"))) == 3
        assert len(chatnb.read_export(tmp_path / fmt)) == 90


def test_every_thread_of_the_user(fresh_emulator: Emulator, tmp_path: Path) -> None:
    chat, _ = new_chat_user(fresh_emulator)
    ids = []
    for n in range(3):
        thread = chat.get_chat_thread_client(chat.create_chat_thread(f"topic {n}").chat_thread.id)
        for i in range(n + 1):
            thread.send_message(f"{n}/{i}")
        ids.append(thread.thread_id)
    gone = chat.create_chat_thread("deleted").chat_thread.id
    chat.delete_chat_thread(gone)
    result = chatnb.export_history(chat, tmp_path, progress=False)
    assert sorted(t.thread_id for t in result.threads) == sorted(ids)
    got = chatnb.read_export(tmp_path)
    assert got.groupby("thread_id").size().to_dict() == {ids[0]: 1, ids[1]: 2, ids[2]: 3}
    assert set(got["thread_topic"]) == {"topic 0", "topic 1", "topic 2"}


def test_a_new_export_replaces_the_previous_one(rich: RichThread, tmp_path: Path) -> None:
    chatnb.export_history(rich.chat, tmp_path, threads=rich.thread_id, format="csv", progress=False)
    chatnb.export_history(rich.chat, tmp_path, threads=rich.thread_id, format="csv", progress=False)
    assert_same_rows(chatnb.read_export(tmp_path), expected(rich.thread, rich.topic))
    chatnb.export_history(rich.chat, tmp_path, threads=rich.thread_id, format="parquet", progress=False)
    assert not list(tmp_path.rglob("*.csv"))
    assert_same_rows(chatnb.read_export(tmp_path), expected(rich.thread, rich.topic))


def test_progress_bar_counts_messages_and_pages(
    rich: RichThread, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pages: list[int] = []
    chatnb.export_history(
        rich.chat,
        tmp_path,
        threads=rich.thread_id,
        results_per_page=20,
        on_page=lambda p: pages.append(p.pages),
    )
    err = capsys.readouterr().err
    assert "msg" in err and "pages=3" in err
    assert pages == [1, 2, 3]
    chatnb.export_history(rich.chat, tmp_path, threads=rich.thread_id, progress=False)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"format": "xml"}, "format must be one of"),
        ({"partition_by": "day"}, "partition_by"),
        ({"since": "2024-02-01", "until": "2024-01-01"}, "since must be before until"),
        ({"since": "yesterday-ish"}, "since is not a date-time"),
        ({"min_sequence_id": 5, "max_sequence_id": 4}, "min_sequence_id"),
        ({"min_sequence_id": 0}, "at least 1"),
        ({"results_per_page": 0}, "results_per_page"),
        ({"threads": [""]}, "threads must be"),
        ({"lookback": timedelta(seconds=-1)}, "lookback"),
    ],
)
def test_bad_arguments_fail_before_any_request(
    tmp_path: Path, kwargs: dict[str, object], message: str
) -> None:
    token = jwt.encode({"exp": 4_000_000_000}, "key-of-no-service-at-all-32bytes", algorithm="HS256")
    client = chatnb.ChatClient("https://127.0.0.1:1/", token)  # nothing listens there
    with pytest.raises(ValueError, match=message):
        chatnb.export_history(client, tmp_path, progress=False, **kwargs)  # type: ignore[arg-type]


def test_cli_export(
    rich: RichThread, tmp_path: Path, capsys: pytest.CaptureFixture[str], emulator: Emulator
) -> None:
    token = rich.chat.credential.get_token().token
    code = main(
        [
            "export",
            "--thread",
            rich.thread_id,
            "--format",
            "jsonl",
            "--out",
            str(tmp_path),
            "--endpoint",
            emulator.endpoint,
            "--token",
            token,
            "--include-system",
            "--no-progress",
            "--incremental",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0 and rich.thread_id in out
    assert_same_rows(chatnb.read_export(tmp_path), expected(rich.thread, rich.topic, include_system=True))
    code = main(
        [
            "export",
            "--all",
            "--out",
            str(tmp_path / "csv"),
            "--format",
            "csv",
            "--no-progress",
            "--connection-string",
            emulator.connection_string,
            "--token",
            token,
        ]
    )
    assert code == 0
    assert rich.thread_id in set(chatnb.read_export(tmp_path / "csv")["thread_id"])
    code = main(
        [
            "export",
            "--thread",
            rich.thread_id,
            "--out",
            str(tmp_path),
            "--format",
            "csv",
            "--incremental",
            "--endpoint",
            emulator.endpoint,
            "--token",
            token,
            "--no-progress",
        ]
    )
    assert code == 2 and "other settings" in capsys.readouterr().err


def test_cli_reads_the_token_from_the_environment(
    rich: RichThread, tmp_path: Path, emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COMMUNICATION_SERVICES_CONNECTION_STRING", emulator.connection_string)
    monkeypatch.setenv("CHATNB_TOKEN", rich.chat.credential.get_token().token)
    assert main(["export", "--thread", rich.thread_id, "--out", str(tmp_path), "--no-progress"]) == 0
    assert_same_rows(chatnb.read_export(tmp_path), expected(rich.thread, rich.topic))


async def test_async_export_writes_the_same_files(
    rich: RichThread, emulator: Emulator, tmp_path: Path
) -> None:
    chatnb.export_history(
        rich.chat, tmp_path / "sync", threads=rich.thread_id, format="jsonl", progress=False
    )
    token = rich.chat.credential.get_token().token
    async with chatnb.aio.ChatClient(emulator.endpoint, token) as chat:
        result = await chatnb.aio.export_history(
            chat,
            tmp_path / "async",
            threads=[rich.thread_id],
            format="jsonl",
            progress=False,
            results_per_page=9,
        )
    assert result.rows == len(expected(rich.thread, rich.topic))
    [a] = (tmp_path / "sync").rglob("messages.jsonl")
    [b] = (tmp_path / "async").rglob("messages.jsonl")
    assert a.read_bytes() and sorted(a.read_text().splitlines()) == sorted(b.read_text().splitlines())


def test_cli_without_connection_uses_the_local_emulator_through_connect(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CHATNB_HOME", str(tmp_path / "home"))
    session = chatnb.connect()  # starts the emulator the command will reuse
    try:
        thread = session.user("me").create_thread("Notebook chat")
        thread.send_message("from a notebook")
        assert (
            main(["export", "--all", "--format", "csv", "--out", str(tmp_path / "out"), "--no-progress"]) == 0
        )
        got = chatnb.read_export(tmp_path / "out")
        assert got["content"].tolist() == ["from a notebook"] and got["thread_topic"].tolist() == [
            "Notebook chat"
        ]
        assert thread.thread_id in capsys.readouterr().out
    finally:
        session.stop()
