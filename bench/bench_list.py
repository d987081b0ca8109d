"""Listing a 20,000-message thread into a DataFrame: chatnb vs the official azure-communication-chat SDK.

Run: ``.venv/bin/python bench/bench_list.py [--messages 20000] [--rounds 3]``.

The emulator runs as ``chatnb serve`` in its own process, on a location seeded straight through its store
(see ``_common.seed_location``). Both clients list the same thread against the same server, pages of 200:
chatnb with ``ChatThreadClient.list_messages()`` (a DataFrame), the official SDK with its
``list_messages(results_per_page=200)`` pager plus the code a user writes to build the same DataFrame from
its ``ChatMessage`` objects (same columns, dtypes and order; the script checks the frames are equal).
Rounds alternate between the two; the figures are the median and the best round.
Target: chatnb at least 3x the SDK.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import EmulatorProcess, seeded_emulator

import chatnb
from chatnb.frames import MESSAGE_COLUMNS


def _raw(identifier: Any) -> str | None:
    return None if identifier is None else str(identifier.raw_id)


def sdk_frame(messages: list[Any]) -> pd.DataFrame:
    """The official SDK's ``ChatMessage`` objects as chatnb's messages frame (what a user would write)."""
    rows = []
    for m in messages:
        c = m.content
        rows.append(
            {
                "id": m.id,
                "type": getattr(m.type, "value", m.type),
                "sequence_id": int(m.sequence_id),
                "version": m.version,
                "content": c.message if c is not None else None,
                "sender_id": _raw(m.sender),
                "sender_display_name": m.sender_display_name,
                "created_on": m.created_on,
                "edited_on": m.edited_on,
                "deleted_on": m.deleted_on,
                "metadata": m.metadata or None,
                "topic": c.topic if c is not None else None,
                "participant_ids": [_raw(p.identifier) for p in c.participants]
                if c is not None and c.participants
                else None,
                "initiator_id": _raw(c.initiator) if c is not None else None,
            }
        )
    frame = pd.DataFrame.from_records(rows).sort_values("sequence_id", kind="stable").reset_index(drop=True)
    for name, dtype in MESSAGE_COLUMNS.items():
        if dtype.startswith("datetime64"):
            frame[name] = pd.to_datetime(frame[name], utc=True).dt.as_unit("ns")
        elif dtype != "object":
            frame[name] = frame[name].astype(dtype)
    return frame[list(MESSAGE_COLUMNS)]


def run_chatnb(emu: EmulatorProcess, token: str, thread_id: str) -> tuple[float, pd.DataFrame]:
    with chatnb.ChatClient(emu.endpoint, token, connection_verify=emu.ca_cert) as chat:
        thread = chat.get_chat_thread_client(thread_id)
        t0 = time.perf_counter()
        frame = thread.list_messages(results_per_page=200)
        return time.perf_counter() - t0, frame


def run_sdk(emu: EmulatorProcess, token: str, thread_id: str) -> tuple[float, pd.DataFrame]:
    from azure.communication.chat import ChatClient, CommunicationTokenCredential

    with ChatClient(emu.endpoint, CommunicationTokenCredential(token), connection_verify=emu.ca_cert) as chat:
        thread = chat.get_chat_thread_client(thread_id, connection_verify=emu.ca_cert)
        t0 = time.perf_counter()
        messages = list(thread.list_messages(results_per_page=200))
        frame = sdk_frame(messages)
        return time.perf_counter() - t0, frame


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    print(f"bench_list: list a {args.messages:,}-message thread into a DataFrame (pages of 200)")
    with seeded_emulator([args.messages]) as (emu, seeded, token):
        thread_id = seeded.thread_ids[0]
        run_chatnb(emu, token, thread_id)  # warm-up: connections, imports, server caches
        run_sdk(emu, token, thread_id)
        ours: list[float] = []
        theirs: list[float] = []
        for _ in range(args.rounds):
            t, a = run_chatnb(emu, token, thread_id)
            ours.append(t)
            t, b = run_sdk(emu, token, thread_id)
            theirs.append(t)
        pd.testing.assert_frame_equal(a, b)  # the very same DataFrame
    n = len(a)
    mine, sdk = statistics.median(ours), statistics.median(theirs)
    print(f"  {'client':<34}{'median s':>10}{'messages/s':>12}{'best s':>9}   all rounds")
    for label, times in (("chatnb list_messages()", ours), ("azure-communication-chat 1.3.0", theirs)):
        med = statistics.median(times)
        rounds = ", ".join(f"{t:.3f}" for t in times)
        print(f"  {label:<34}{med:>10.3f}{n / med:>12,.0f}{min(times):>9.3f}   {rounds}")
    print(
        f"  speed-up: chatnb is {sdk / mine:.1f}x the official SDK on the median round, "
        f"{min(theirs) / min(ours):.1f}x best to best (target >= 3x); frames equal: yes"
    )


if __name__ == "__main__":
    main()
