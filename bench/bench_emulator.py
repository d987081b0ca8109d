"""Emulator throughput: sends per second with 1 and 8 concurrent senders, and list pages per second.

Run: ``.venv/bin/python bench/bench_emulator.py [--seconds 5] [--load wrk|python]``.

The emulator runs as ``chatnb serve`` in its own process on a temporary location (SQLite in WAL mode), as a
user would run it, over HTTPS with keep-alive connections. The load comes from ``wrk`` (Debian package
``wrk``; C, epoll, a few percent of a core) with a Lua script that POSTs messages, so that the figure is the
emulator's and not the load generator's: on this 2-core machine a Python load generator (httpx) is itself
CPU-bound near the emulator's rate. Without ``wrk``, ``--load python`` runs one sender process per
connection (httpx, blocking, keep-alive) and adds their counts. Each run checks afterwards that the thread
holds exactly the messages acknowledged with 201, and that there was no error.

List pages per second: a walk down a seeded 20,000-message thread following ``nextLink`` (pages of 200,
one client, sequential), and ``wrk`` GETs of one page with 1 and 8 connections.

Target: at least 1,000 sends per second with 8 senders.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import EmulatorProcess, seeded_emulator

API = "api-version=2024-03-07"

_POST_LUA = """
wrk.method = "POST"
wrk.body = '{"content":"a message from the load generator","type":"text","senderDisplayName":"wrk"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("CHATNB_BENCH_TOKEN")
"""
_GET_LUA = """
wrk.headers["Authorization"] = "Bearer " .. os.getenv("CHATNB_BENCH_TOKEN")
"""

_SENDER = """
import json, sys, time, httpx
url, token, ca, seconds = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
headers = {"Authorization": "Bearer " + token}
body = {"content": "a message from the load generator", "type": "text", "senderDisplayName": "py"}
ok = errors = 0
lat = []
with httpx.Client(verify=ca) as c:
    c.post(url, json=body, headers=headers)
    sys.stdout.write("ready\\n"); sys.stdout.flush(); sys.stdin.readline()
    end = time.perf_counter() + seconds
    while (t0 := time.perf_counter()) < end:
        r = c.post(url, json=body, headers=headers)
        lat.append(time.perf_counter() - t0)
        ok, errors = (ok + 1, errors) if r.status_code == 201 else (ok, errors + 1)
lat.sort()
print(json.dumps({"ok": ok, "errors": errors, "p50": lat[len(lat) // 2], "p99": lat[int(len(lat) * .99)]}))
"""


def _messages_url(emu: EmulatorProcess, thread_id: str) -> str:
    return f"{emu.endpoint}chat/threads/{quote(thread_id, safe='')}/messages?{API}"


def _count(emu: EmulatorProcess, token: str, thread_id: str) -> int:
    url: str | None = _messages_url(emu, thread_id) + "&maxPageSize=200"
    n = 0
    with httpx.Client(verify=emu.ca_cert, timeout=60) as c:
        while url:
            body = c.get(url, headers={"Authorization": f"Bearer {token}"}).json()
            n += sum(1 for m in body["value"] if m["type"] == "text")
            url = body.get("nextLink")
    return n


def _new_thread(emu: EmulatorProcess, token: str) -> str:
    with httpx.Client(verify=emu.ca_cert) as c:
        r = c.post(
            f"{emu.endpoint}chat/threads?{API}",
            json={"topic": "bench", "participants": []},
            headers={"Authorization": f"Bearer {token}"},
        )
        r.raise_for_status()
        return str(r.json()["chatThread"]["id"])


def _wrk(url: str, token: str, script: str, connections: int, seconds: float) -> dict[str, float]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
        fh.write(script)
    try:
        threads = min(connections, 2)
        out = subprocess.run(
            [
                "wrk",
                f"-t{threads}",
                f"-c{connections}",
                f"-d{max(1, round(seconds))}s",
                "--latency",
                "-s",
                fh.name,
                url,
            ],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "CHATNB_BENCH_TOKEN": token},
        ).stdout
    finally:
        os.unlink(fh.name)
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)

    def pct(p: str) -> float:
        m = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out)
        if m is None:
            return float("nan")
        scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]
        return float(m.group(1)) * scale

    return {
        "rate": rate,
        "n": total,
        "bad": int(bad.group(1)) if bad else 0,
        "socket_errors": sum(int(g) for g in errors.groups()) if errors else 0,
        "p50_ms": pct("50"),
        "p99_ms": pct("99"),
    }


def _python_senders(
    url: str, emu: EmulatorProcess, token: str, senders: int, seconds: float
) -> dict[str, float]:
    import json

    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _SENDER, url, token, emu.ca_cert, str(seconds)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(senders)
    ]
    for p in procs:
        assert p.stdout is not None
        p.stdout.readline()  # warmed up and connected
    t0 = time.perf_counter()
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    results = [json.loads(p.communicate()[0]) for p in procs]
    elapsed = max(seconds, time.perf_counter() - t0)
    ok = sum(r["ok"] for r in results)
    return {
        "rate": ok / elapsed,
        "n": ok + senders,  # + each sender's warm-up message
        "bad": sum(r["errors"] for r in results),
        "socket_errors": 0,
        "p50_ms": sorted(r["p50"] for r in results)[len(results) // 2] * 1000,
        "p99_ms": max(r["p99"] for r in results) * 1000,
    }


def _walk(emu: EmulatorProcess, token: str, thread_id: str) -> dict[str, float]:
    url: str | None = _messages_url(emu, thread_id) + "&maxPageSize=200"
    pages = items = 0
    with httpx.Client(verify=emu.ca_cert) as c:
        c.get(url, headers={"Authorization": f"Bearer {token}"})  # connect
        t0 = time.perf_counter()
        while url:
            body = c.get(url, headers={"Authorization": f"Bearer {token}"}).json()
            pages += 1
            items += len(body["value"])
            url = body.get("nextLink")
    elapsed = time.perf_counter() - t0
    return {"pages_per_s": pages / elapsed, "messages_per_s": items / elapsed, "pages": pages}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each measured run")
    parser.add_argument(
        "--load", choices=("wrk", "python"), default="wrk" if shutil.which("wrk") else "python"
    )
    args = parser.parse_args()
    print(f"bench_emulator: chatnb serve in its own process, HTTPS, SQLite WAL; load: {args.load}")
    send_rows = []
    with seeded_emulator([20_000]) as (emu, seeded, token):
        for senders in (1, 8):
            thread_id = _new_thread(emu, token)
            url = _messages_url(emu, thread_id)
            if args.load == "wrk":
                _wrk(url, token, _POST_LUA, senders, 1)  # warm-up
                stats = _wrk(url, token, _POST_LUA, senders, args.seconds)
            else:
                stats = _python_senders(url, emu, token, senders, args.seconds)
            stored = _count(emu, token, thread_id)
            send_rows.append((senders, stats, stored))
        walk = _walk(emu, token, seeded.thread_ids[0])
        page_url = _messages_url(emu, seeded.thread_ids[0]) + "&maxPageSize=200"
        gets = []
        if args.load == "wrk":
            for conns in (1, 8):
                gets.append((conns, _wrk(page_url, token, _GET_LUA, conns, max(2.0, args.seconds / 2))))
    print(f"  {'sends':<28}{'per second':>12}{'p50 ms':>9}{'p99 ms':>9}   check")
    for senders, s, stored in send_rows:
        note = f"{stored:,} stored, {int(s['bad'])} non-201, {int(s['socket_errors'])} socket errors"
        # wrk counts the requests of the measured run only; its warm-up run stored more before that
        complete = stored >= s["n"] if args.load == "wrk" else stored == s["n"]
        ok = s["bad"] == 0 and s["socket_errors"] == 0 and complete
        label = (
            f"{senders} sender{'s' if senders > 1 else ''} ({'connections' if senders > 1 else 'connection'})"
        )
        figures = f"{s['rate']:>12,.0f}{s['p50_ms']:>9.2f}{s['p99_ms']:>9.2f}"
        print(f"  {label:<28}{figures}   {note}{'' if ok else '  !! check failed'}")
    print(f"  {'list pages of 200':<28}{'per second':>12}{'msgs/s':>9}")
    print(f"  {'sequential nextLink walk':<28}{walk['pages_per_s']:>12,.0f}{walk['messages_per_s']:>9,.0f}")
    for conns, g in gets:
        print(f"  {f'wrk GET, {conns} connection(s)':<28}{g['rate']:>12,.0f}{g['rate'] * 200:>9,.0f}")
    best8 = send_rows[-1][1]["rate"]
    print(
        f"  target: >= 1,000 sends/s with 8 senders -> {'met' if best8 >= 1000 else 'NOT met'} ({best8:,.0f})"
    )


if __name__ == "__main__":
    main()
