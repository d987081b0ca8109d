"""Exporting many threads over a distance: one thread at a time against the default concurrency, and a
paced export against the real service's documented limits.

Run: ``.venv/bin/python bench/bench_export_scale.py [--threads 200] [--messages 100] [--latency-ms 50]``.

1. **Concurrency.** ``chatnb serve --latency-ms 50`` (its own process) on a location seeded with 200
   threads of 100 messages. The same export (every thread of the user, Parquet) runs twice in this
   process: ``concurrency=1``, which is how main exports today (one thread after another, one request
   in flight), and the default concurrency. Both must write the same rows. Target: 5x faster.
2. **Pacing.** ``chatnb serve --rate-limits --latency-ms 50`` with a few long threads listed in small
   pages, so that the list-messages limits (50 requests per 10 s and 200 a minute per user and thread)
   decide the time. The export runs with ``pace=True`` through a client that never retries and counts
   every answer's status: the run must see no 429 at all. The bench computes the fastest the documented
   limits allow for the same requests (every request sent the moment the limits and the previous page's
   answer permit, one round trip each) and prints it. Target: within 20% of it.

Each export of part 1 also prints its CPU split: the seconds of CPU of this process (the exporter, every
thread of it) and of the emulator's process, and what share of the machine's cores' time the two took
together. The emulator runs on the same cores, and other work may too (the load average is printed):
where the concurrent export is CPU-bound, these figures say whose CPU it waited for.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import math
import os
import ssl
import sys
import tempfile
import time
from pathlib import Path

import httpx

try:
    import psutil
except ImportError:  # the CPU split needs it (chatnb[test]); the timings do not
    psutil = None

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import seeded_emulator

import chatnb
from chatnb.export._common import DEFAULT_CONCURRENCY
from chatnb.export._pacing import LIMITS


class CountingTransport(httpx.HTTPTransport):
    """An HTTPS transport that counts the statuses of the answers."""

    def __init__(self, ca: str) -> None:
        super().__init__(
            verify=ssl.create_default_context(cafile=ca), limits=httpx.Limits(max_connections=64)
        )
        self.statuses: collections.Counter[int] = collections.Counter()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        self.statuses[response.status_code] += 1
        return response


def fastest_paced(pages: int, threads: int, round_trip: float) -> float:
    """Seconds the documented list-messages limits allow at best for ``threads`` threads of ``pages``
    pages each, pages of a thread one after another (each needs the previous one's link), a request
    counted when it arrives (half a round trip after it is sent) and answered a round trip after."""
    rules = [rule for _, scope_rules in LIMITS["list-messages"] for rule in scope_rules]
    end = 0.0
    for _ in range(threads):  # the limits are per thread (and per user and thread): threads do not interact
        arrivals: list[float] = []
        sent = 0.0
        for _ in range(pages):
            arrive = sent + round_trip / 2
            for count, window in rules:
                if len(arrivals) >= count:
                    arrive = max(arrive, arrivals[-count] + window)
            arrivals.append(arrive)
            sent = arrive - round_trip / 2 + round_trip  # the answer: the next page's link
        end = max(end, sent)
    return end


def _emulator_cpu() -> float:
    """CPU seconds (user + system) used so far by the processes this bench started (the emulator)."""
    if psutil is None:
        return math.nan
    total = 0.0
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            times = child.cpu_times()
            total += times.user + times.system
    return total


def _export(emu, token: str, out: str, **kwargs):  # type: ignore[no-untyped-def]
    """One export; its result, wall seconds, answers' statuses and CPU seconds (exporter, emulator)."""
    transport = CountingTransport(emu.ca_cert)
    policy = chatnb.RetryPolicy(max_retries=0) if kwargs.get("pace") else None
    with chatnb.ChatClient(emu.endpoint, token, transport=transport, retry_policy=policy) as chat:
        cpu0, emu0, t0 = time.process_time(), _emulator_cpu(), time.perf_counter()
        result = chatnb.export_history(chat, out, progress=False, **kwargs)
        elapsed = time.perf_counter() - t0
        cpu = (time.process_time() - cpu0, _emulator_cpu() - emu0)
        return result, elapsed, transport.statuses, cpu


def _cpu_note(cpu: tuple[float, float], elapsed: float) -> str:
    exporter, emulator = cpu
    cores = os.cpu_count() or 1
    return (
        f"CPU: exporter {exporter:5.2f} s, emulator {emulator:5.2f} s "
        f"({(exporter + emulator) / (elapsed * cores):.0%} of {cores} cores' time)"
    )


def concurrency_run(threads: int, messages: int, latency: float) -> float:
    print(f"1. {threads} threads x {messages} messages, every request {latency:g} ms away (chatnb serve)")
    with seeded_emulator([messages] * threads, "--latency-ms", str(latency)) as (emu, _, token):
        times = {}
        with tempfile.TemporaryDirectory(prefix="chatnb-bench-scale-") as scratch:
            rows = {}
            for label, workers in (("one thread at a time (main)", 1), ("default concurrency", None)):
                kwargs = {} if workers is None else {"concurrency": workers}
                result, elapsed, statuses, cpu = _export(emu, token, f"{scratch}/{workers}", **kwargs)
                times[label] = elapsed
                rows[label] = chatnb.read_export(f"{scratch}/{workers}").sort_values(["thread_id", "id"])
                n = workers or DEFAULT_CONCURRENCY
                print(
                    f"   {label:<30} concurrency {n:>2}: {elapsed:6.2f} s  "
                    f"{result.rows / elapsed:8,.0f} msg/s  {sum(statuses.values())} requests"
                )
                print(f"   {'':<30} {_cpu_note(cpu, elapsed)}")
            a, b = rows.values()
            assert a.reset_index(drop=True).equals(b.reset_index(drop=True)), "the two exports differ"
    seq, conc = times.values()
    print(f"   speed-up: {seq / conc:.1f}x (target >= 5x); both exports hold the same {len(a):,} rows")
    return seq / conc


def paced_run(threads: int, messages: int, page: int, latency: float) -> tuple[int, float]:
    print(
        f"2. pace=True against --rate-limits: {threads} threads x {messages} messages in pages of {page}, "
        f"{latency:g} ms away"
    )
    with (
        seeded_emulator([messages] * threads, "--rate-limits", "--latency-ms", str(latency)) as (
            emu,
            _,
            token,
        ),
        tempfile.TemporaryDirectory(prefix="chatnb-bench-paced-") as scratch,
    ):
        result, elapsed, statuses, _ = _export(
            emu, token, scratch, pace=True, results_per_page=page, max_retries=0
        )
    pages = result.pages // threads
    bound = fastest_paced(pages, threads, latency / 1000)
    throttled = statuses.get(429, 0)
    print(f"   {result.rows:,} rows, {result.pages} pages, answers {dict(sorted(statuses.items()))}")
    print(
        f"   paced export: {elapsed:6.2f} s ({result.rows / elapsed:,.0f} msg/s); fastest the documented "
        f"limits allow: {bound:6.2f} s ({result.rows / bound:,.0f} msg/s)"
    )
    print(f"   429s: {throttled} (target 0); paced / fastest = {elapsed / bound:.2f} (target <= 1.20)")
    return throttled, elapsed / bound


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=200)
    parser.add_argument("--messages", type=int, default=100)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--paced-threads", type=int, default=4)
    parser.add_argument("--paced-messages", type=int, default=1500)
    parser.add_argument("--paced-page", type=int, default=20)
    args = parser.parse_args()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"({os.cpu_count()} cores; load average {load} before the run: other work shares the machine)")
    speedup = concurrency_run(args.threads, args.messages, args.latency_ms)
    throttled, ratio = paced_run(args.paced_threads, args.paced_messages, args.paced_page, args.latency_ms)
    ok = speedup >= 5 and throttled == 0 and ratio <= 1.2
    print("targets met" if ok else "TARGETS MISSED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
