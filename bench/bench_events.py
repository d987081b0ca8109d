"""Real-time event latency: from sending a message to the subscriber's handler running, push vs polling.

Run: ``.venv/bin/python bench/bench_events.py [--messages 200] [--interval 0.25] [--gap 0.02]``.
The emulator runs as ``chatnb serve`` in its own process (as a user would run it). One user sends
``--messages`` messages, one every ``--gap`` seconds (plus jitter, so sends fall on every phase of the poll
cycle); another user's :class:`chatnb.realtime.RealtimeNotifications` engine runs a handler for
``chatMessageReceived``. Latency is handler time minus the time the send request started, both measured
with ``time.perf_counter`` in this process. Push uses the emulator's event stream; poll forces
``mode="poll"`` against the same emulator with ``poll_interval=--interval``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import statistics
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import EmulatorProcess, emulator_process, percentile

from chatnb.events import ChatMessageReceivedEvent
from chatnb.realtime import RealtimeNotifications

API = "api-version=2024-03-07"


async def measure(
    emu: EmulatorProcess, mode: str, messages: int, interval: float, gap: float
) -> tuple[list[float], int]:
    """Latencies in ms of ``messages`` sends, and how many events the handler saw."""
    with httpx.Client(verify=emu.ca_cert) as setup:
        _, sender_token = emu.create_user_and_token(setup)
        reader_id, reader_token = emu.create_user_and_token(setup)
        body = {
            "topic": f"bench {mode}",
            "participants": [{"communicationIdentifier": {"communicationUser": {"id": reader_id}}}],
        }
        r = setup.post(
            f"{emu.endpoint}chat/threads?{API}",
            json=body,
            headers={"Authorization": f"Bearer {sender_token}"},
        )
        r.raise_for_status()
        thread = r.json()["chatThread"]["id"]
    sent: dict[str, float] = {}
    latencies: list[float] = []
    seen = 0
    done = asyncio.Event()

    def handler(event: ChatMessageReceivedEvent) -> None:
        nonlocal seen
        now = time.perf_counter()
        seen += 1
        started = sent.get(event.message or "")
        if started is not None:
            latencies.append((now - started) * 1000)
        if len(latencies) == messages:
            done.set()

    engine = RealtimeNotifications(
        emu.endpoint,
        reader_token,
        mode="push" if mode == "push" else "poll",
        poll_interval=interval,
        verify=emu.ca_cert,
    )
    engine.on("chatMessageReceived", handler)
    await engine.start()
    url = f"{emu.endpoint}chat/threads/{thread}/messages?{API}"
    async with httpx.AsyncClient(
        verify=emu.ca_cert, headers={"Authorization": f"Bearer {sender_token}"}
    ) as http:
        await http.get(f"{emu.endpoint}chat/threads?{API}")  # warm the connection up
        for i in range(messages):
            text = f"{mode} {i}"
            sent[text] = time.perf_counter()
            (await http.post(url, json={"content": text})).raise_for_status()
            await asyncio.sleep(gap * random.uniform(0.5, 1.5))
    try:
        await asyncio.wait_for(done.wait(), 30)
    finally:
        await engine.stop()
    await asyncio.sleep(max(0.5, 2 * interval))
    return latencies, seen


def report(label: str, latencies: list[float], seen: int, messages: int) -> None:
    print(
        f"{label:<34} p50 {percentile(latencies, 50):8.1f} ms   p99 {percentile(latencies, 99):8.1f} ms   "
        f"mean {statistics.fmean(latencies):7.1f} ms   max {max(latencies):7.1f} ms   "
        f"({len(latencies)}/{messages} delivered, {seen - len(latencies)} duplicates)"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--interval", type=float, default=0.25, help="poll interval, seconds")
    parser.add_argument("--gap", type=float, default=0.02, help="mean seconds between sends")
    args = parser.parse_args()
    logging.getLogger("chatnb.realtime").setLevel(logging.ERROR)  # the polling-mode announcement
    with emulator_process() as emu:
        print(f"send-to-handler latency, {args.messages} messages each, one every ~{args.gap * 1000:.0f} ms")
        push, push_seen = await measure(emu, "push", args.messages, args.interval, args.gap)
        report("push (emulator event stream)", push, push_seen, args.messages)
        poll, poll_seen = await measure(emu, "poll", args.messages, args.interval, args.gap)
        report(f"poll (interval {args.interval:g} s)", poll, poll_seen, args.messages)


if __name__ == "__main__":
    asyncio.run(main())
