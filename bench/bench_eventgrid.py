"""Event Grid delivery from the emulator: latency and throughput with a 50-member thread, and whether it
slows the API.

Three processes besides this one: a ``chatnb serve`` with a thread of 50 members delivering every chat
event to a :class:`chatnb.eventgrid.Receiver` (a process of its own, so that receiving does not compete
with the sender here), and a ``chatnb serve`` with the same thread and no subscription. Each message is 50
deliveries: one ``ChatMessageReceivedInThread`` and 49 ``ChatMessageReceived`` (every member but the
sender).

- **paced**: ``--rate`` messages a second (default 10: 500 deliveries/s), one at a time, to both
  emulators. Printed: delivery latency, send -> received by the webhook (p50/p99 of the thread-level
  event, and of the last of each message's 49 user-level events: the whole fan-out), and the API's send
  latency (request to 201) with 50-member delivery and without;
- **burst**: ``--burst`` messages as fast as one sender goes; deliveries/s from the first send to the
  last delivery (what the delivery process sustains), and the send latency meanwhile.

    python bench/bench_eventgrid.py [--messages 100] [--rate 10] [--burst 200] [--members 50]
"""

from __future__ import annotations

import argparse
import json
import os
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import EmulatorProcess, emulator_process, percentile

CHAT = "api-version=2024-03-07"


def _thread(emu: EmulatorProcess, client: httpx.Client, members: int) -> tuple[str, str]:
    """A thread of ``members`` users; its id and the first member's token (the sender)."""
    users = [emu.create_user_and_token(client) for _ in range(members)]
    body = {
        "topic": "bench",
        "participants": [{"communicationIdentifier": {"communicationUser": {"id": u}}} for u, _ in users],
    }
    headers = {"Authorization": f"Bearer {users[0][1]}"}
    created = client.post(f"{emu.endpoint.rstrip('/')}/chat/threads?{CHAT}", json=body, headers=headers)
    created.raise_for_status()
    return created.json()["chatThread"]["id"], users[0][1]


def _send(
    emu: EmulatorProcess, client: httpx.Client, thread: str, token: str, n: int, rate: float | None
) -> list[tuple[str, float, float]]:
    """Send ``n`` messages one at a time (``rate`` a second at most); ``(id, sent at, latency)`` each."""
    url = f"{emu.endpoint.rstrip('/')}/chat/threads/{thread}/messages?{CHAT}"
    headers = {"Authorization": f"Bearer {token}"}
    out = []
    start = time.perf_counter()
    for i in range(n):
        if rate:
            time.sleep(max(0.0, start + i / rate - time.perf_counter()))
        sent, t0 = time.time(), time.perf_counter()
        response = client.post(url, json={"content": f"message {i}"}, headers=headers)
        latency = time.perf_counter() - t0
        response.raise_for_status()
        out.append((response.json()["id"], sent, latency))
    return out


@contextmanager
def receiver_process() -> Iterator[tuple[str, Callable[[], list[Any]]]]:
    """A Receiver in a process of its own: its URL, and a function that stops it and returns its
    ``(message id, event type, arrival time)`` list."""
    with tempfile.TemporaryDirectory(prefix="chatnb-bench-rx-") as folder:
        url_file, out = Path(folder) / "url", Path(folder) / "arrivals.json"
        proc = subprocess.Popen(
            [sys.executable, __file__, "--serve-receiver", str(url_file), str(out)], stdin=subprocess.PIPE
        )

        def collect() -> list[Any]:
            assert proc.stdin is not None
            if not proc.stdin.closed:
                proc.stdin.close()  # the receiver writes its arrivals and exits
            proc.wait(120)
            return list(json.loads(out.read_text()))

        try:
            while not url_file.exists():
                if proc.poll() is not None:
                    raise RuntimeError("the receiver did not start")
                time.sleep(0.05)
            yield url_file.read_text(), collect
        finally:
            if proc.poll() is None:
                collect()


def _serve_receiver(url_file: str, out: str) -> None:
    from chatnb.eventgrid import Receiver

    with Receiver() as rx:
        Path(url_file).write_text(rx.url)
        sys.stdin.read()  # until the benchmark closes it
        arrivals = [
            (item.get("data", {}).get("messageId"), item["eventType"], d.received_on.timestamp())
            for d in rx.deliveries
            for item in d.items
        ]
    Path(out).write_text(json.dumps(arrivals))


def _drain(emu: EmulatorProcess, events: int, timeout: float = 600.0) -> int:
    """Wait until the emulator's subscription has delivered or dropped ``events`` events and has nothing
    pending (its statistics); how many it dropped (its outbox is bounded)."""
    from chatnb.eventgrid import EventGridSubscriptions

    deadline = time.monotonic() + timeout
    with EventGridSubscriptions.from_connection_string(
        emu.connection_string, connection_verify=emu.ca_cert
    ) as subs:
        while True:
            stats = subs.list().iloc[0]
            if stats["delivered"] + stats["dropped"] >= events and stats["pending"] == 0:
                return int(stats["dropped"])
            if time.monotonic() > deadline:
                raise TimeoutError(f"fewer than {events} events delivered or dropped in {timeout:g} s")
            time.sleep(0.1)


def _trust(emu: EmulatorProcess) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=emu.ca_cert)


def _ms(values: list[float]) -> str:
    return f"p50 {percentile(values, 50) * 1000:7.1f} ms   p99 {percentile(values, 99) * 1000:7.1f} ms"


def run(messages: int, rate: float, burst: int, members: int) -> None:
    cpus = os.cpu_count()
    print(f"Event Grid delivery, a thread of {members} members ({members} deliveries each), {cpus} CPUs")
    with emulator_process() as plain, httpx.Client(verify=_trust(plain), timeout=60) as client:
        thread, token = _thread(plain, client, members)
        _send(plain, client, thread, token, 20, None)  # warm-up
        without = [lat for _, _, lat in _send(plain, client, thread, token, messages, rate)]
        without_burst = [lat for _, _, lat in _send(plain, client, thread, token, burst, None)]

    with receiver_process() as (url, collect), emulator_process("--event-grid", url) as emu:
        with httpx.Client(verify=_trust(emu), timeout=60) as client:
            thread, token = _thread(emu, client, members)
            expected = 1 + (members - 1)  # the thread's creation: one thread-level and 49 user-level events
            _send(emu, client, thread, token, 20, None)  # warm-up
            expected += 20 * members
            _drain(emu, expected)
            paced = _send(emu, client, thread, token, messages, rate)
            expected += messages * members
            _drain(emu, expected)
            burst_sent = _send(emu, client, thread, token, burst, None)
            dropped = _drain(emu, expected + burst * members)
        received = collect()
    arrivals: dict[str, list[tuple[str, float]]] = {}
    for message_id, kind, at in received:
        arrivals.setdefault(message_id, []).append((kind, at))

    thread_level, fan_out = [], []
    for message_id, sent_at, _ in paced:
        got = arrivals.get(message_id, [])
        thread_level += [t - sent_at for kind, t in got if kind.endswith("InThread")]
        fan_out.append(max((t for _, t in got), default=float("nan")) - sent_at)
    burst_arrivals = [t for message_id, _, _ in burst_sent for _, t in arrivals.get(message_id, [])]
    delivered = len(burst_arrivals)
    rate_burst = delivered / (max(burst_arrivals) - burst_sent[0][1]) if burst_arrivals else float("nan")
    label = f"{members}-member Event Grid delivery"
    rows = [
        (f"paced, {rate:g} messages/s ({rate * members:,.0f} deliveries/s), {messages} messages:", None),
        ("delivery latency, send -> webhook, thread-level event", _ms(thread_level)),
        (f"delivery latency, send -> webhook, last of the {members - 1} per-user", _ms(fan_out)),
        (f"API send latency, {label}", _ms([x for *_, x in paced])),
        ("API send latency, no Event Grid", _ms(without)),
        (
            f"burst, {burst} messages ({delivered:,} of {burst * members:,} delivered, {dropped:,} dropped):",
            None,
        ),
        ("deliveries/s, first send to last delivery", f"{rate_burst:10,.0f}"),
        (f"API send latency, {label}", _ms([x for *_, x in burst_sent])),
        ("API send latency, no Event Grid", _ms(without_burst)),
    ]
    for name, value in rows:
        print(f"  {name}" if value is None else f"    {name + ':':<62}{value}")


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--serve-receiver":
        _serve_receiver(sys.argv[2], sys.argv[3])
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=100, help="paced messages (default 100)")
    parser.add_argument("--rate", type=float, default=10.0, help="paced messages a second (default 10)")
    parser.add_argument("--burst", type=int, default=200, help="burst messages (default 200)")
    parser.add_argument("--members", type=int, default=50)
    args = parser.parse_args()
    run(args.messages, args.rate, args.burst, args.members)


if __name__ == "__main__":
    main()
