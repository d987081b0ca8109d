"""Event Grid delivery from the emulator: latency and throughput with a 50-member thread, and whether it
slows the API.

Processes besides this one: a ``chatnb serve`` with a thread of 50 members and no subscription, then
one with the same thread delivering every chat event to a :class:`chatnb.eventgrid.Receiver` (a process
of its own, so that receiving does not compete with the sender here), once per HTTP client (below).
Each message is 50 deliveries: one ``ChatMessageReceivedInThread`` and 49 ``ChatMessageReceived`` (every
member but the sender).

- **paced**: ``--rate`` messages a second (default 10: 500 deliveries/s), one at a time, to both
  emulators. Printed: delivery latency, send -> received by the webhook (p50/p99 of the thread-level
  event, and of the last of each message's 49 user-level events: the whole fan-out), and the API's send
  latency (request to 201) with 50-member delivery and without;
- **burst**: ``--burst`` messages as fast as one sender goes; deliveries/s from the first send to the
  last delivery (what the delivery process sustains), and the send latency meanwhile.

Side by side, the delivery run again with the delivery process sending through ``httpx.AsyncClient``
instead of its own client (:mod:`chatnb.emulator.gridclient`, whose docstring says why it is not httpx):
the bench puts :class:`HttpxWebhookClient` (the same contract: pooled, no redirects, no environment
proxies, the system's trust store, at most 64 KiB of an answer read) in its place through a
``sitecustomize`` on that emulator's ``PYTHONPATH``, and checks by the User-Agent that every delivery
came through it.

    python bench/bench_eventgrid.py [--messages 100] [--rate 10] [--burst 200] [--members 50]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpcore
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import EmulatorProcess, emulator_process, percentile

from chatnb.emulator import gridhttp
from chatnb.emulator.gridclient import MAX_BODY_BYTES, Answer, WebhookError

CHAT = "api-version=2024-03-07"
CLIENTS = ("gridclient", "httpx")
HTTPX_AGENT = "+httpx"  # appended to the delivery's User-Agent: the receiver tells the runs apart by it
_UNSAFE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


class HttpxWebhookClient:
    """:class:`chatnb.emulator.gridclient.WebhookClient`'s contract on one ``httpx.AsyncClient``: pooled
    keep-alive connections, no redirects, no environment proxies, the system's trust store, no deadline
    of its own (the caller's covers the whole exchange), at most ``MAX_BODY_BYTES`` of an answer read
    (streamed; the connection is closed beyond), ``WebhookError`` for no valid answer."""

    def __init__(self, *, headers: dict[str, str] | None = None, max_idle: int = 32) -> None:
        agent = (headers or {}).get("User-Agent", "") + HTTPX_AGENT
        self.client = httpx.AsyncClient(
            headers={**(headers or {}), "User-Agent": agent, "Accept-Encoding": "identity"},
            verify=ssl.create_default_context(),
            trust_env=False,
            follow_redirects=False,
            timeout=None,
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=max_idle),
        )

    async def request(
        self, method: str, url: str, headers: dict[str, str] | None = None, body: bytes = b""
    ) -> Answer:
        if not url.startswith(("http://", "https://")):
            raise WebhookError(f"not an http(s) URL: {url[:100]!r}")
        if any(_UNSAFE.search(item) for pair in (headers or {}).items() for item in pair):
            raise WebhookError("a request line or header holds a control character")
        try:
            async with self.client.stream(method, url, headers=headers, content=body) as response:
                kept = bytearray()
                async for chunk in response.aiter_raw():
                    kept += chunk
                    if len(kept) > MAX_BODY_BYTES:
                        break  # leaving the block unread closes the connection
                answered = {k.lower(): v for k, v in response.headers.items()}
                return Answer(response.status_code, answered, bytes(kept[:MAX_BODY_BYTES]))
        except (httpx.TransportError, httpx.InvalidURL) as exc:
            raise WebhookError(f"the webhook's answer failed: {type(exc).__name__}") from exc

    async def aclose(self) -> None:
        await self.client.aclose()


def use_httpx() -> None:
    """Make this process's Event Grid delivery send through :class:`HttpxWebhookClient` (the
    ``sitecustomize`` of the httpx run calls it in the emulator and its delivery process)."""
    gridhttp.WebhookClient = HttpxWebhookClient  # type: ignore[misc,assignment]


@contextmanager
def client_env(client: str) -> Iterator[None]:
    """Processes started inside use ``client`` for Event Grid delivery (and inherit it)."""
    if client == "gridclient":
        yield
        return
    with tempfile.TemporaryDirectory(prefix="chatnb-bench-site-") as site:
        here = str(Path(__file__).resolve().parent)
        Path(site, "sitecustomize.py").write_text(
            f"import sys\nsys.path.insert(0, {here!r})\nimport bench_eventgrid\nbench_eventgrid.use_httpx()\n"
        )
        before = os.environ.get("PYTHONPATH")
        os.environ["PYTHONPATH"] = os.pathsep.join([site, *([before] if before else [])])
        try:
            yield
        finally:
            if before is None:
                del os.environ["PYTHONPATH"]
            else:
                os.environ["PYTHONPATH"] = before


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
        Path(url_file + ".part").write_text(rx.url)
        os.replace(url_file + ".part", url_file)  # whole when the benchmark sees it
        sys.stdin.read()  # until the benchmark closes it
        arrivals = [
            (
                item.get("data", {}).get("messageId"),
                item["eventType"],
                d.received_on.timestamp(),
                d.headers.get("user-agent", ""),
            )
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


def _subscribed(emu: EmulatorProcess, timeout: float = 60.0) -> None:
    """Wait until the emulator's ``--event-grid`` subscription has passed its handshake (``chatnb serve``
    announces itself first and adds it then: the events before it would never be delivered)."""
    from chatnb.eventgrid import EventGridSubscriptions

    deadline = time.monotonic() + timeout
    with EventGridSubscriptions.from_connection_string(
        emu.connection_string, connection_verify=emu.ca_cert
    ) as subs:
        while (listed := subs.list()).empty or listed.iloc[0]["state"] != "Succeeded":
            if time.monotonic() > deadline:
                raise TimeoutError(f"the subscription did not pass its handshake in {timeout:g} s")
            time.sleep(0.05)


def _trust(emu: EmulatorProcess) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=emu.ca_cert)


def _ms(values: list[float]) -> str:
    return f"{percentile(values, 50) * 1000:7.1f} / {percentile(values, 99) * 1000:7.1f}"


def _no_event_grid(messages: int, rate: float, burst: int, members: int) -> tuple[list[float], list[float]]:
    """The API's send latencies (paced, burst) of an emulator with the same thread and no subscription."""
    with emulator_process() as plain, httpx.Client(verify=_trust(plain), timeout=60) as client:
        thread, token = _thread(plain, client, members)
        _send(plain, client, thread, token, 20, None)  # warm-up
        paced = [lat for _, _, lat in _send(plain, client, thread, token, messages, rate)]
        return paced, [lat for _, _, lat in _send(plain, client, thread, token, burst, None)]


def _delivering(client: str, messages: int, rate: float, burst: int, members: int) -> dict[str, Any]:
    """One emulator delivering to a receiver process through ``client``: the figures of its rows."""
    with receiver_process() as (url, collect):
        with (
            client_env(client),
            emulator_process("--event-grid", url) as emu,
            httpx.Client(verify=_trust(emu), timeout=60) as http,
        ):
            _subscribed(emu)
            thread, token = _thread(emu, http, members)
            expected = 1 + (members - 1)  # the thread's creation: one thread-level, 49 user-level events
            _send(emu, http, thread, token, 20, None)  # warm-up
            expected += 20 * members
            _drain(emu, expected)
            paced = _send(emu, http, thread, token, messages, rate)
            expected += messages * members
            _drain(emu, expected)
            burst_sent = _send(emu, http, thread, token, burst, None)
            dropped = _drain(emu, expected + burst * members)
        received = collect()
    agents = {agent for *_, agent in received}
    if (client == "httpx") != all(agent.endswith(HTTPX_AGENT) for agent in agents):
        raise RuntimeError(f"the {client} run's deliveries came with User-Agents {sorted(agents)}")
    arrivals: dict[str, list[tuple[str, float]]] = {}
    for message_id, kind, at, _ in received:
        arrivals.setdefault(message_id, []).append((kind, at))
    thread_level, fan_out = [], []
    for message_id, sent_at, _ in paced:
        got = arrivals.get(message_id, [])
        thread_level += [t - sent_at for kind, t in got if kind.endswith("InThread")]
        fan_out.append(max((t for _, t in got), default=float("nan")) - sent_at)
    burst_arrivals = [t for message_id, _, _ in burst_sent for _, t in arrivals.get(message_id, [])]
    rate_burst = len(burst_arrivals) / (max(burst_arrivals) - burst_sent[0][1]) if burst_arrivals else None
    return {
        "thread_level": _ms(thread_level),
        "fan_out": _ms(fan_out),
        "paced_send": _ms([x for *_, x in paced]),
        "delivered": f"{len(burst_arrivals):,} / {dropped:,}",
        "rate": "nan" if rate_burst is None else f"{rate_burst:,.0f}",
        "burst_send": _ms([x for *_, x in burst_sent]),
    }


def run(messages: int, rate: float, burst: int, members: int) -> None:
    sniffio = "with" if importlib.util.find_spec("sniffio") else "without"  # encode/httpcore#1103
    print(
        f"Event Grid delivery, a thread of {members} members ({members} deliveries each), "
        f"{os.cpu_count()} CPUs; the delivery process sending through {' and '.join(CLIENTS)} "
        f"(httpx {httpx.__version__}, httpcore {httpcore.__version__}, {sniffio} sniffio)"
    )
    without, without_burst = _no_event_grid(messages, rate, burst, members)
    got = {client: _delivering(client, messages, rate, burst, members) for client in CLIENTS}
    label = f"{members}-member Event Grid delivery"

    def row(name: str, values: list[str]) -> None:
        print(f"    {name:<62}" + "".join(f"{v:>20}" for v in values))

    print(f"  {'(latencies: p50 / p99 ms)':<64}" + "".join(f"{c:>20}" for c in CLIENTS))
    print(f"  paced, {rate:g} messages/s ({rate * members:,.0f} deliveries/s), {messages} messages:")
    row("delivery latency, send -> webhook, thread-level event:", [got[c]["thread_level"] for c in CLIENTS])
    row(
        f"delivery latency, send -> webhook, last of the {members - 1} per-user:",
        [got[c]["fan_out"] for c in CLIENTS],
    )
    row(f"API send latency, {label}:", [got[c]["paced_send"] for c in CLIENTS])
    row("API send latency, no Event Grid:", [_ms(without)])
    print(f"  burst, {burst} messages ({burst * members:,} deliveries):")
    row("delivered / dropped:", [got[c]["delivered"] for c in CLIENTS])
    row("deliveries/s, first send to last delivery:", [got[c]["rate"] for c in CLIENTS])
    row(f"API send latency, {label}:", [got[c]["burst_send"] for c in CLIENTS])
    row("API send latency, no Event Grid:", [_ms(without_burst)])


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
