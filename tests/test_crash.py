"""Crash safety: SIGKILL the emulator in the middle of a write burst, restart it, and lose nothing.

Each cycle starts ``python -m chatnb serve --location DIR`` (the same directory every time), checks that
everything acknowledged so far is there and that SQLite's ``PRAGMA integrity_check`` says ``ok``, then
starts several writer threads (messages into shared threads, and new threads) and kills the process with
SIGKILL once enough writes have been acknowledged, while the writers are still going.

A write whose response never arrived is in doubt: it may or may not have been committed. Every write that
got its 201 must survive; at most one in-doubt write per writer may appear; nothing else may.

CI runs 3 cycles; ``make test-long`` runs 20.
"""

from __future__ import annotations

import random
import sqlite3
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from chatnb.location import DB_NAME
from tests.support.processes import ServerProcess
from tests.support.wire import User, Wire, q

WRITERS = 4


@dataclass
class Ledger:
    """What the server acknowledged, across every cycle."""

    messages: dict[str, set[tuple[str, str]]] = field(default_factory=dict)  # thread -> {(id, content)}
    threads: set[str] = field(default_factory=set)
    in_doubt: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self) -> int:
        with self.lock:
            return sum(len(v) for v in self.messages.values()) + len(self.threads)


def _writer(
    n: int, wire: Wire, user: User, shared: list[str], ledger: Ledger, stop: threading.Event, cycle: int
) -> None:
    """Write until the server dies (or ``stop``); record each acknowledged write."""
    i = 0
    while not stop.is_set():
        content = f"cycle {cycle} writer {n} write {i}"
        try:
            if n == 0 and i % 5 == 4:
                response = wire.chat("POST", "/chat/threads", user, {"topic": content, "participants": []})
                if response.status_code == 201:
                    with ledger.lock:
                        ledger.threads.add(response.json()["chatThread"]["id"])
            else:
                thread = shared[(n + i) % len(shared)]
                response = wire.chat(
                    "POST", f"/chat/threads/{q(thread)}/messages", user, {"content": content}
                )
                if response.status_code == 201:
                    with ledger.lock:
                        ledger.messages.setdefault(thread, set()).add((response.json()["id"], content))
        except httpx.TransportError:
            with ledger.lock:
                ledger.in_doubt += 1
            return  # the server is gone
        assert response.status_code == 201, response.text
        i += 1


def _integrity(location: Path) -> str:
    """``PRAGMA integrity_check`` through a read-only connection, beside the running server."""
    db = sqlite3.connect(f"file:{location / DB_NAME}?mode=ro", uri=True, timeout=10)
    try:
        (result,) = db.execute("PRAGMA integrity_check").fetchone()
        return str(result)
    finally:
        db.close()


def _verify(wire: Wire, user: User, shared: list[str], ledger: Ledger, cycle: int) -> None:
    """Every acknowledged write is there; unacknowledged ones are at most the in-doubt ones."""
    unexpected = 0
    for thread in shared:
        listed = wire.all_messages(thread, user)
        stored = {(m["id"], m["content"]["message"]) for m in listed if m["type"] == "text"}
        acked = ledger.messages.get(thread, set())
        missing = acked - stored
        assert not missing, (
            f"cycle {cycle}: {len(missing)} acknowledged messages lost, e.g. {sorted(missing)[:3]}"
        )
        unexpected += len(stored - acked)
        seqs = sorted(int(m["sequenceId"]) for m in listed)
        assert seqs == list(range(1, len(seqs) + 1)), f"cycle {cycle}: sequenceIds have gaps"
        assert max(Counter(m["id"] for m in listed).values()) == 1
    for thread in ledger.threads:
        response = wire.chat("GET", f"/chat/threads/{q(thread)}", user)
        assert response.status_code == 200, f"cycle {cycle}: acknowledged thread {thread} lost"
        system = [m["type"] for m in wire.all_messages(thread, user)]
        assert sorted(system) == ["participantAdded", "topicUpdated"], system
    listed_threads = wire.chat("GET", "/chat/threads", user, params={"maxPageSize": 200}).json()["value"]
    unexpected += len({t["id"] for t in listed_threads} - ledger.threads - set(shared))
    assert unexpected <= ledger.in_doubt, f"cycle {cycle}: {unexpected} writes nobody acknowledged"
    ledger.in_doubt -= unexpected  # those in-doubt writes are now known to have been committed
    with ledger.lock:
        for thread in shared:  # adopt committed in-doubt messages so the next cycle expects them too
            listed = wire.all_messages(thread, user)
            ledger.messages[thread] = {
                (m["id"], m["content"]["message"]) for m in listed if m["type"] == "text"
            }
        ledger.threads |= {t["id"] for t in listed_threads} - set(shared)


def crash_cycles(tmp_path: Path, cycles: int) -> Ledger:
    location, logs = tmp_path / "emulator", tmp_path / "logs"
    ledger = Ledger()
    rng = random.Random(8)
    user: User | None = None
    shared: list[str] = []
    for cycle in range(cycles + 1):
        server = ServerProcess(["--location", str(location)], logs)
        try:
            with Wire.connect(server.connection_string, server.ca_cert) as wire:
                if user is None:
                    user = wire.new_user()
                    shared = [wire.create_thread(user, f"shared {k}") for k in range(3)]
                _verify(wire, user, shared, ledger, cycle)
                assert _integrity(location) == "ok", f"cycle {cycle}: the store is damaged"
                if cycle == cycles:
                    break
                ledger.in_doubt = 0
                stop = threading.Event()
                target = ledger.count() + rng.randint(40, 160)
                wires = [Wire.connect(server.connection_string, server.ca_cert) for _ in range(WRITERS)]
                writers = [
                    threading.Thread(target=_writer, args=(n, wires[n], user, shared, ledger, stop, cycle))
                    for n in range(WRITERS)
                ]
                for w in writers:
                    w.start()
                while ledger.count() < target and any(w.is_alive() for w in writers):
                    stop.wait(0.002)
                server.kill()  # mid-burst: the writers are still sending
                for w in writers:
                    w.join(30)
                for wire in wires:
                    wire.close()
                assert ledger.count() >= target, "the writers stopped before the kill"
                assert ledger.in_doubt == WRITERS, "every writer was still writing when the server died"
        finally:
            server.stop()
    print(
        f"\ncrash safety: {cycles} SIGKILL cycles survived; "
        f"{sum(len(v) for v in ledger.messages.values())} messages and {len(ledger.threads)} threads "
        "acknowledged, none lost"
    )
    return ledger


def test_sigkill_mid_burst_loses_no_acknowledged_write(tmp_path: Path) -> None:
    ledger = crash_cycles(tmp_path, 3)
    assert sum(len(v) for v in ledger.messages.values()) >= 100


@pytest.mark.slow
def test_many_sigkill_cycles(tmp_path: Path) -> None:
    ledger = crash_cycles(tmp_path, 20)
    assert sum(len(v) for v in ledger.messages.values()) >= 20 * 30
