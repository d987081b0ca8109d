"""Helpers shared by the benchmarks: an emulator in its own process, users and tokens over the wire."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from chatnb._signing import hmac_headers

__all__ = ["EmulatorProcess", "Seeded", "emulator_process", "percentile", "seed_location", "seeded_emulator"]


@dataclass
class EmulatorProcess:
    endpoint: str
    access_key: str
    ca_cert: str
    connection_string: str

    def create_user_and_token(self, client: httpx.Client) -> tuple[str, str]:
        import base64

        body = b'{"createTokenWithScopes": ["chat"]}'
        path = "/identities?api-version=2023-10-01"
        host = urlsplit(self.endpoint).netloc
        headers = hmac_headers(base64.b64decode(self.access_key), "POST", path, host, body)
        headers["Content-Type"] = "application/json"
        r = client.post(self.endpoint.rstrip("/") + path, content=body, headers=headers)
        r.raise_for_status()
        data = r.json()
        return data["identity"]["id"], data["accessToken"]["token"]

    def issue_token(self, client: httpx.Client, user_id: str) -> str:
        """A chat token for an existing user (one seeded straight into the store)."""
        import base64
        from urllib.parse import quote

        body = b'{"scopes": ["chat"]}'
        path = f"/identities/{quote(user_id, safe='')}/:issueAccessToken?api-version=2023-10-01"
        host = urlsplit(self.endpoint).netloc
        headers = hmac_headers(base64.b64decode(self.access_key), "POST", path, host, body)
        headers["Content-Type"] = "application/json"
        r = client.post(self.endpoint.rstrip("/") + path, content=body, headers=headers)
        r.raise_for_status()
        return str(r.json()["token"])


@contextmanager
def emulator_process(*extra: str, location: str | None = None) -> Iterator[EmulatorProcess]:
    """``chatnb serve`` on a free port in ``location`` (default: a temporary one), in its own process."""
    with tempfile.TemporaryDirectory(prefix="chatnb-bench-") as scratch:
        tmp = location or scratch
        proc = subprocess.Popen(
            [sys.executable, "-m", "chatnb", "serve", "--location", tmp, "--port", "0", *extra],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            info_path = Path(tmp) / "server.json"
            deadline = time.monotonic() + 30
            while not info_path.exists():
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the emulator did not start")
                time.sleep(0.05)
            info = json.loads(info_path.read_text())
            cs = info["connection_string"]
            key = cs.split("accesskey=", 1)[1]
            yield EmulatorProcess(info["endpoint"], key, info["ca_cert"], cs)
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


@dataclass
class Seeded:
    """What :func:`seed_location` put in the store: one user and their threads (sizes in order)."""

    user_id: str
    thread_ids: list[str]
    messages: list[int]


SEED_START_US = 1_700_000_000_000_000  # 2023-11-14: seeded histories run from here, one message a minute


def seed_location(location: str, sizes: list[int], *, content_bytes: int = 80) -> Seeded:
    """Seed a new emulator location directly through its store: one user, a thread per size.

    Sending 200,000 messages over HTTP takes minutes, so the benchmarks write them in-process with
    :func:`chatnb.emulator.seed.seed_messages` (one transaction per 20,000) before ``chatnb serve`` starts
    on the location. Messages are text from the one user, one a minute from :data:`SEED_START_US`, with
    ``content_bytes`` of content: a realistic history spanning months.
    """
    from chatnb.emulator import Emulator
    from chatnb.emulator.seed import seed_messages

    emu = Emulator(location)  # creates the key, certificate and database; does not serve
    try:
        user = emu.store.create_user()
        threads = []
        for n, size in enumerate(sizes):
            thread = emu.store.create_thread(user, f"bench thread {n}", [], request_id=None)
            filler = "lorem ipsum dolor sit amet " * (content_bytes // 27 + 1)
            rows = (
                (SEED_START_US + i * 60_000_000, f"message {i}: {filler}"[:content_bytes])
                for i in range(size)
            )
            seed_messages(emu.store, thread.id, user, rows, display_name="Bench User")
            threads.append(thread.id)
    finally:
        emu.stop()
    return Seeded(user, threads, list(sizes))


@contextmanager
def seeded_emulator(sizes: list[int], *extra: str) -> Iterator[tuple[EmulatorProcess, Seeded, str]]:
    """An emulator process on a freshly seeded location; yields it, the seed and the user's token."""
    with tempfile.TemporaryDirectory(prefix="chatnb-bench-seed-") as location:
        t0 = time.perf_counter()
        seeded = seed_location(location, sizes)
        print(
            f"  (seeded {sum(sizes):,} messages in {time.perf_counter() - t0:.1f} s, straight into the store)"
        )
        with emulator_process(*extra, location=location) as emu, httpx.Client(verify=emu.ca_cert) as client:
            token = emu.issue_token(client, seeded.user_id)
            yield emu, seeded, token


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


os.environ.setdefault("PYTHONWARNINGS", "ignore")
