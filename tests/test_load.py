"""Load: many users send to shared threads at once while others list and edit; nothing is lost or reordered.

The emulator runs as its own process (``python -m chatnb serve --in-memory``) and each user is a thread with
its own HTTPS connection, so the figures printed (throughput, latency p50/p99) are the server's as a
client sees them. Afterwards:

- every acknowledged message is in its thread exactly once, with the content it was sent with;
- each thread's ``sequenceId``s are unique and gap-free (1..n, system messages included);
- each sender's messages appear in the order the sender had them acknowledged;
- every edited message holds its last acknowledged edit, and nothing unacknowledged appeared.

CI runs 10 users; ``make test-long`` runs 50 users with many more messages.
"""

from __future__ import annotations

import ssl
import statistics
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.support.processes import ServerProcess
from tests.support.wire import CHAT_VERSION, User, Wire, q

PARAMS = {"api-version": CHAT_VERSION}


@dataclass(frozen=True)
class Ack:
    thread: str
    id: str
    sender: int
    index: int
    content: str


@dataclass
class Run:
    acks: list[Ack] = field(default_factory=list)
    send_latency: list[float] = field(default_factory=list)
    list_latency: list[float] = field(default_factory=list)
    edit_latency: list[float] = field(default_factory=list)
    last_edit: dict[tuple[str, str], str] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with ServerProcess(["--in-memory"], tmp_path_factory.mktemp("load-logs")) as proc:
        yield proc


def _client(server: ServerProcess, user: User) -> httpx.Client:
    return httpx.Client(
        base_url=server.endpoint.rstrip("/"),
        verify=ssl.create_default_context(cafile=server.ca_cert),
        headers={"Authorization": f"Bearer {user.token}"},
        timeout=60,
    )


def _sender(n: int, user: User, threads: list[str], count: int, server: ServerProcess, run: Run) -> None:
    with _client(server, user) as http:
        for i in range(count):
            thread = threads[(n + i) % len(threads)]
            content = f"user {n} message {i}"
            started = time.perf_counter()
            response = http.post(
                f"/chat/threads/{q(thread)}/messages", params=PARAMS, json={"content": content}
            )
            run.send_latency.append(time.perf_counter() - started)
            if response.status_code != 201:
                run.failures.append(f"send {n}/{i}: {response.status_code} {response.text[:200]}")
                continue
            run.acks.append(Ack(thread, response.json()["id"], n, i, content))


def _editor(
    n: int,
    user: User,
    threads: list[str],
    own: list[tuple[str, str]],
    server: ServerProcess,
    run: Run,
    done: threading.Event,
) -> None:
    """List pages of the shared threads and edit this user's own messages until the senders finish."""
    with _client(server, user) as http:
        step = 0
        while not done.is_set():
            thread = threads[step % len(threads)]
            started = time.perf_counter()
            listed = http.get(f"/chat/threads/{q(thread)}/messages", params={**PARAMS, "maxPageSize": 50})
            run.list_latency.append(time.perf_counter() - started)
            if listed.status_code != 200:
                run.failures.append(f"list {n}: {listed.status_code} {listed.text[:200]}")
            target = own[step % len(own)]
            content = f"edit by {n} number {step}"
            started = time.perf_counter()
            edited = http.patch(
                f"/chat/threads/{q(target[0])}/messages/{target[1]}",
                params=PARAMS,
                json={"content": content},
                headers={"Content-Type": "application/merge-patch+json"},
            )
            run.edit_latency.append(time.perf_counter() - started)
            if edited.status_code == 204:
                run.last_edit[target] = content
            else:
                run.failures.append(f"edit {n}: {edited.status_code} {edited.text[:200]}")
            step += 1


def _percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def run_load(server: ServerProcess, users: int, messages: int, threads_n: int, editors: int) -> Run:
    with Wire.connect(server.connection_string, server.ca_cert) as wire:
        people = [wire.new_user() for _ in range(users + editors)]
        threads = [wire.create_thread(people[0], f"load {k}", *people[1:]) for k in range(threads_n)]
        own: dict[int, list[tuple[str, str]]] = {}
        for e in range(editors):
            editor = people[users + e]
            own[e] = [(t, wire.send(t, editor, f"editable {e} in {k}")) for k, t in enumerate(threads)]
    run = Run()
    done = threading.Event()
    with ThreadPoolExecutor(max_workers=users + editors) as pool:
        edits = [
            pool.submit(_editor, e, people[users + e], threads, own[e], server, run, done)
            for e in range(editors)
        ]
        started = time.perf_counter()
        sends = [pool.submit(_sender, n, people[n], threads, messages, server, run) for n in range(users)]
        for future in sends:
            future.result()
        elapsed = time.perf_counter() - started
        done.set()
        for future in edits:
            future.result()
    sent = len(run.send_latency)
    print(
        f"\nload: {users} senders x {messages} messages on {threads_n} threads, {editors} listing/editing; "
        f"{sent} sends in {elapsed:.2f} s = {sent / elapsed:.0f} sends/s; "
        f"send p50 {_percentile(run.send_latency, 0.5) * 1000:.1f} ms p99 "
        f"{_percentile(run.send_latency, 0.99) * 1000:.1f} ms; "
        f"{len(run.list_latency)} lists p50 {_percentile(run.list_latency, 0.5) * 1000:.1f} ms "
        f"p99 {_percentile(run.list_latency, 0.99) * 1000:.1f} ms; "
        f"{len(run.edit_latency)} edits p50 {_percentile(run.edit_latency, 0.5) * 1000:.1f} ms"
    )
    verify(server, people[0], threads, run, own)
    return run


def verify(
    server: ServerProcess, reader: User, threads: list[str], run: Run, own: dict[int, list[tuple[str, str]]]
) -> None:
    assert not run.failures, run.failures[:5]
    seeds = {target for targets in own.values() for target in targets}
    acked = {(a.thread, a.id): a for a in run.acks}
    assert len(acked) == len(run.acks), "two sends were acknowledged with the same message id"
    with Wire.connect(server.connection_string, server.ca_cert) as wire:
        for thread in threads:
            messages = wire.all_messages(thread, reader)
            ids = Counter(m["id"] for m in messages)
            assert max(ids.values()) == 1, "a message is listed twice"
            seqs = sorted(int(m["sequenceId"]) for m in messages)
            assert seqs == list(range(1, len(seqs) + 1)), "sequenceIds are not unique and gap-free"
            by_id = {m["id"]: m for m in messages}
            mine = [a for a in run.acks if a.thread == thread]
            for ack in mine:
                assert ack.id in by_id, f"acknowledged message {ack.id} is missing"
                assert by_id[ack.id]["content"]["message"] == ack.content
            texts = [m for m in messages if m["type"] == "text"]
            unexpected = [
                m["id"] for m in texts if (thread, m["id"]) not in acked and (thread, m["id"]) not in seeds
            ]
            assert not unexpected, f"messages nobody had acknowledged: {unexpected[:5]}"
            order: dict[int, list[tuple[int, int]]] = defaultdict(list)
            for ack in mine:
                order[ack.sender].append((int(by_id[ack.id]["sequenceId"]), ack.index))
            for sender, pairs in order.items():
                indexes = [index for _, index in sorted(pairs)]
                assert indexes == sorted(indexes), f"sender {sender}'s messages are out of order"
            for target, content in run.last_edit.items():
                if target[0] == thread:
                    message = by_id[target[1]]
                    assert message["content"]["message"] == content and "editedOn" in message
    assert statistics.fmean(run.send_latency) > 0


def test_concurrent_senders_lose_and_reorder_nothing(server: ServerProcess) -> None:
    run = run_load(server, users=10, messages=20, threads_n=2, editors=3)
    assert len(run.acks) == 200


@pytest.mark.slow
def test_fifty_users_under_load(server: ServerProcess) -> None:
    run = run_load(server, users=50, messages=100, threads_n=5, editors=10)
    assert len(run.acks) == 5000


def test_serve_helper_reads_the_banner(server: ServerProcess) -> None:
    assert server.endpoint.startswith("https://127.0.0.1:")
    assert Path(server.ca_cert).is_file()
    assert server.process.poll() is None
