"""The export's batches, built straight from the wire JSON, hold what the frame of ``list_messages`` holds.

The export filters on NumPy columns and writes Parquet from Arrow arrays it builds from the wire items
(:class:`chatnb.export._batch.Batch`), no DataFrame on the way. Whatever a service sends (times in any
ISO 8601 form pandas reads, numbers where text belongs, missing fields, any order), the batch must give
the same rows, values and errors as the frame path: ``to_arrow(messages_frame(items))``.
"""

from __future__ import annotations

import gc
import weakref
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import chatnb
from chatnb import MessagePage, frames
from chatnb.emulator import Emulator
from chatnb.export._batch import NAT, SYSTEM_TYPES, Batch
from chatnb.export._encode import ARROW_SCHEMA, PARQUET_SCHEMA, to_arrow
from tests.support.export import assert_same_rows, expected, rich_thread, token_of

THREAD, TOPIC = "19:abc@thread.v2", "Quarterly review"


def _frame_path(items: list[dict[str, Any]], keep: np.ndarray[Any, Any] | None = None) -> pd.DataFrame:
    """What the export wrote before batches: the frame, the kept rows, the two thread columns."""
    frame = frames.messages_frame(items)
    if keep is not None:
        frame = frame[keep]
    out: pd.DataFrame = frame.copy(deep=False)
    out["thread_id"] = pd.array([THREAD] * len(out), dtype="string")
    out["thread_topic"] = pd.array([TOPIC] * len(out), dtype="string")
    return out


def _ns(column: pd.Series) -> np.ndarray[Any, Any]:
    values: np.ndarray[Any, Any] = column.to_numpy(dtype="datetime64[ns]").view("int64")
    return values


def _outcome(build: Any) -> tuple[str, Any]:
    try:
        return "ok", build()
    except Exception as exc:  # the two paths must fail alike
        return "error", type(exc)


def assert_same(items: list[dict[str, Any]], keep: np.ndarray[Any, Any] | None = None) -> None:
    """The batch of ``items`` (and of its rows ``keep``) agrees with the frame path in every shape."""
    old = _outcome(lambda: _frame_path(items))
    new = _outcome(lambda: Batch.of([MessagePage(items, None)]))
    assert old[0] == new[0], (old, new)
    if old[0] == "error":
        assert old[1] is new[1]
        return
    frame, batch = old[1], new[1]
    mask = np.ones(len(batch), dtype=bool) if keep is None else keep
    assert batch.seq.tolist() == frame["sequence_id"].tolist()
    for name in ("created_on", "edited_on", "deleted_on"):
        assert getattr(batch, name.replace("_on", "_ns")).tolist() == _ns(frame[name]).tolist(), name
    change = np.maximum(
        np.maximum(_ns(frame["created_on"]), _ns(frame["edited_on"])), _ns(frame["deleted_on"])
    )
    assert batch.change_ns().tolist() == change.tolist()
    assert batch.is_system().tolist() == frame["type"].isin(SYSTEM_TYPES).to_numpy(dtype=bool).tolist()
    assert batch.values("id") == [None if v is pd.NA else v for v in frame["id"].tolist()]
    rows = batch.take(mask, THREAD, TOPIC)
    expected = _frame_path(items, mask)
    pd.testing.assert_frame_equal(rows.frame(), expected.reset_index(drop=True))
    for schema in (ARROW_SCHEMA, PARQUET_SCHEMA):
        old_table = _outcome(lambda s=schema: to_arrow(expected, s))
        new_table = _outcome(lambda s=schema: rows.table(s))
        assert old_table[0] == new_table[0], (old_table, new_table)
        if old_table[0] == "ok":
            assert new_table[1].equals(old_table[1]), schema
        else:
            assert old_table[1] is new_table[1]


def ident(raw: str) -> dict[str, Any]:
    return {"rawId": raw, "communicationUser": {"id": raw}}


def message(seq: int, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": str(1000 + seq),
        "type": "text",
        "sequenceId": str(seq),
        "version": str(1000 + seq),
        "createdOn": f"2026-01-02T03:04:{seq % 60:02d}.1234567Z",
        "content": {"message": f"m{seq}"},
        "senderDisplayName": "Ann",
        "senderCommunicationIdentifier": ident("8:acs:r_alice"),
    }
    body.update(extra)
    return body


def test_a_thread_of_every_kind_of_message_comes_out_the_same() -> None:
    items = [
        message(7, metadata={"n": "1", "tag": "x,y"}),
        message(6, editedOn="2026-01-02T05:00:00Z", content={"message": "edited"}),
        message(5, deletedOn="2026-01-02T06:00:00+02:00", content={}),
        message(4, type="html", content={"message": "<b>hi</b>"}, senderDisplayName=None),
        message(
            3,
            type="participantAdded",
            content={
                "participants": [{"communicationIdentifier": ident("8:acs:r_bob")}],
                "initiatorCommunicationIdentifier": ident("8:acs:r_alice"),
            },
            senderCommunicationIdentifier=None,
        ),
        message(
            2, type="topicUpdated", content={"topic": "New", "initiatorCommunicationIdentifier": ident("x")}
        ),
        message(1, type="participantRemoved", content={"participants": []}),
    ]
    assert_same(items)  # newest first, as listed
    assert_same(items, np.array([True, False, True, True, False, True, False]))
    assert_same(items, np.array([False, False, True, True, True, True, False]))  # a run of rows
    assert_same(items[::-1])
    assert_same([items[3], items[0], items[5], items[0]])  # any order, a message listed twice


def test_by_month_the_rows_split_as_the_months_of_creation() -> None:
    items = [message(i, createdOn=f"2025-{12 - i // 3:02d}-28T23:59:59.999Z") for i in range(9, 0, -1)]
    batch = Batch.of([MessagePage(items, None)]).take(np.ones(9, dtype=bool), THREAD, TOPIC)
    months = batch.months()
    assert [m for m, _ in months] == ["2025-09", "2025-10", "2025-11", "2025-12"]
    frame = _frame_path(items)
    for month, rows in months:
        expected = frame[frame["created_on"].dt.strftime("%Y-%m") == month].reset_index(drop=True)
        pd.testing.assert_frame_equal(rows.frame(), expected)
        assert rows.table(PARQUET_SCHEMA).equals(to_arrow(expected, PARQUET_SCHEMA))
    assert sum(len(rows) for _, rows in months) == 9


@pytest.mark.parametrize("months", [1, 3])
def test_a_written_batch_is_freed_at_once_without_the_garbage_collector(months: int) -> None:
    """No reference cycle keeps a batch (its wire items, columns and frames) alive after it is written:
    the export's memory stays that of the batches in hand."""
    items = [message(i, createdOn=f"2025-{1 + i % months:02d}-01T00:00:00Z") for i in range(6, 0, -1)]
    gc.disable()
    try:
        whole = Batch.of([MessagePage(items, None)])
        rows = whole.take(np.ones(6, dtype=bool), THREAD, TOPIC)
        for _, part in rows.months():
            part.frame()
            part.table(PARQUET_SCHEMA)
        assert len(rows.months()) == months
        refs = [weakref.ref(whole), weakref.ref(rows)]
        del whole, rows, part
        assert [r() for r in refs] == [None, None]
    finally:
        gc.enable()


@pytest.mark.parametrize(
    "created",
    [
        "2026-01-02T03:04:05Z",
        "2026-01-02 03:04:05.5+05:30",
        "2026-01-02T03:04:05.123456789-00:30",
        "2026-01-02T03:04:05",  # naive: UTC, as pandas reads it
        "2026-01-02",
        "2026-01-02t03:04:05z",
        "2026-01-02T03:04:05.Z",
        "2026-02-30T00:00:00Z",  # no such day: an error both ways
        "2262-04-11T23:47:16.854775807Z",  # the last nanosecond pandas holds
        "2262-04-12T00:00:00Z",
        "1500-01-01T00:00:00Z",
        "",
        "yesterday",
        12345,
    ],
)
def test_times_in_any_form_are_read_as_pandas_reads_them(created: Any) -> None:
    assert_same([message(2), message(1, createdOn=created)])


def test_values_that_are_not_text_become_what_the_frame_makes_of_them() -> None:
    assert_same([message(2, id=12, version=3.5, senderDisplayName=True), message(1, type=None, version=None)])
    assert_same([message(1, metadata={"n": 1})])  # not text: Parquet refuses it both ways


def test_a_lone_surrogate_raises_so_that_the_export_repairs_the_page() -> None:
    page = MessagePage([message(2), message(1, senderDisplayName="Ann \ud800")], None)
    with pytest.raises(UnicodeEncodeError):
        Batch.of([page])
    assert page.repair_text() == 1
    assert Batch.of([page]).values("sender_display_name") == ["Ann \ufffd", "Ann"]


def test_missing_times_are_nat() -> None:
    batch = Batch.of([MessagePage([message(1)], None)])
    assert batch.edited_ns.tolist() == batch.deleted_ns.tolist() == [NAT]
    assert len(Batch.of([MessagePage([], None)])) == 0


# -- any wire the service could send ----------------------------------------------------------------

_EPOCH = datetime(1990, 1, 1, tzinfo=timezone.utc)


@st.composite
def wire_times(draw: st.DrawFn, odd: bool) -> Any:
    """A time as a service may write it; ``odd``: also forms and values pandas refuses."""
    when = _EPOCH + timedelta(microseconds=draw(st.integers(0, 80 * 365 * 86_400 * 10**6)))
    sep = draw(st.sampled_from(["T", " ", "t"] if odd else ["T", " "]))
    text = when.strftime(f"%Y-%m-%d{sep}%H:%M:%S")
    digits = draw(st.integers(0, 10 if odd else 9))
    if digits:
        text += "." + str(draw(st.integers(0, 10**digits - 1))).zfill(digits)
    zones = ["Z", "+00:00", "+05:30", "-08:00", "", "+0530"]
    zone = draw(st.sampled_from([*zones, "z"] if odd else zones))
    if odd and draw(st.booleans()):
        return draw(st.sampled_from([None, "", "garbage", 1700000000]))
    return text + zone


_texts = st.one_of(st.none(), st.text(max_size=8), st.integers(-5, 5), st.booleans())


@st.composite
def wire_messages(draw: st.DrawFn) -> list[dict[str, Any]]:
    count = draw(st.integers(1, 8))
    odd = draw(st.integers(0, 3)) == 0  # a quarter of the examples: times pandas may refuse
    seqs = draw(st.lists(st.integers(1, 20), min_size=count, max_size=count))
    items = []
    for seq in seqs:
        kind = draw(st.sampled_from(["text", "html", *SYSTEM_TYPES, None]))
        content: dict[str, Any] = {}
        if draw(st.booleans()):
            content["message"] = draw(_texts)
        if kind == "topicUpdated":
            content["topic"] = draw(_texts)
        if kind in ("participantAdded", "participantRemoved"):
            raws = draw(st.lists(st.text(min_size=1, max_size=5), max_size=3))
            content["participants"] = [{"communicationIdentifier": ident(r)} for r in raws]
            content["initiatorCommunicationIdentifier"] = ident("8:acs:r_alice")
        item: dict[str, Any] = {
            "id": draw(st.one_of(st.text(min_size=1, max_size=6), st.integers(0, 99))),
            "type": kind,
            "sequenceId": str(seq),
            "version": draw(_texts),
            "createdOn": draw(wire_times(odd)),
            "content": content,
            "senderDisplayName": draw(_texts),
            "senderCommunicationIdentifier": draw(
                st.sampled_from([None, ident("8:acs:r_a"), {"rawId": "x"}])
            ),
        }
        for name in ("editedOn", "deletedOn"):
            if draw(st.booleans()):
                item[name] = draw(wire_times(odd))
        if draw(st.booleans()):
            item["metadata"] = draw(
                st.one_of(st.none(), st.dictionaries(st.text(max_size=3), st.text(max_size=3), max_size=3))
            )
        items.append(item)
    return items


@settings(max_examples=150, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(items=wire_messages(), data=st.data())
def test_any_wire_comes_out_as_the_frame_path_writes_it(
    items: list[dict[str, Any]], data: st.DataObject
) -> None:
    keep = np.array(data.draw(st.lists(st.booleans(), min_size=len(items), max_size=len(items))), dtype=bool)
    assert_same(items, keep)
    assert_same(items)


def test_a_batch_of_several_pages_is_one_chronological_batch() -> None:
    pages = [MessagePage([message(6), message(5)], "next"), MessagePage([message(4), message(3)], None)]
    batch = Batch.of(pages)
    assert batch.seq.tolist() == [3, 4, 5, 6]
    assert (
        batch.take(np.ones(4, dtype=bool), THREAD, TOPIC)
        .table(ARROW_SCHEMA)
        .equals(to_arrow(_frame_path([m for p in pages for m in p.wire]), ARROW_SCHEMA))
    )
    assert pa.types.is_timestamp(
        batch.take(np.ones(4, dtype=bool), THREAD, TOPIC).table(ARROW_SCHEMA)["created_on"].type
    )


# -- through a real export ---------------------------------------------------------------------------


async def test_listings_of_one_page_write_what_paged_listings_do_in_both_flavours(
    emulator: Emulator, tmp_path: Path
) -> None:
    """A listing of one page is fed and finished in one step (no page fetched ahead): sync and async,
    several threads at once, Parquet and a transcript, by month; the same rows and bytes as pages of 7."""
    rich = rich_thread(emulator, messages=30)
    second = rich.chat.get_chat_thread_client(rich.chat.create_chat_thread("Second").chat_thread.id)
    for i in range(12):
        second.send_message(f"second {i}", metadata={"i": str(i)} if i % 3 else None)
    threads = [(rich.thread, rich.topic), (second, "Second")]
    want = pd.concat([expected(tc, topic) for tc, topic in threads], ignore_index=True)
    args: dict[str, Any] = {
        "threads": [tc.thread_id for tc, _ in threads],
        "format": ["parquet", "markdown"],
        "partition_by": "month",
        "progress": False,
    }
    paged = chatnb.export_history(rich.chat, tmp_path / "paged", results_per_page=7, **args)
    whole = chatnb.export_history(rich.chat, tmp_path / "sync", concurrency=2, **args)
    async with chatnb.aio.ChatClient(emulator.endpoint, token_of(rich.chat)) as chat:
        awhole = await chatnb.aio.export_history(chat, tmp_path / "async", concurrency=2, **args)
    assert paged.pages > 2 * len(threads) and whole.pages == awhole.pages == len(threads)
    for run in (paged, whole, awhole):
        assert run.rows == len(want) and not run.failed
        assert_same_rows(chatnb.read_export(run.out), want)
    transcripts = {name: sorted((tmp_path / name).rglob("*.md")) for name in ("paged", "sync", "async")}
    for a, b, c in zip(*transcripts.values(), strict=True):
        assert a.read_bytes() == b.read_bytes() == c.read_bytes()
    rich.chat.close()
    rich.other.close()
