"""Exporting 200,000 messages to Parquet: messages per second and peak memory.

Run: ``.venv/bin/python bench/bench_export.py [--messages 200000] [--formats parquet,jsonl] [--month]``.

The emulator runs as ``chatnb serve`` in its own process, on a location seeded straight through its store
(one thread, one message a minute from November 2023: about five months; see ``_common.seed_location``).
Each export runs in a child process of its own (``chatnb.export_history`` with pages of 200, no progress
bar), so that its peak resident memory can be read exactly: ``os.wait4`` returns the child's
``ru_maxrss``. The child also reports its resident memory after importing chatnb, pandas and pyarrow,
before the export starts. Target: peak under 300 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import EmulatorProcess, seeded_emulator

_CHILD = """
import json, resource, sys, time
import chatnb
chatnb.export_history  # imported on first use: load the export (pandas, pyarrow) before the baseline
endpoint, token, ca, thread_id, out, fmt, month = sys.argv[1:8]
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
with chatnb.ChatClient(endpoint, token, connection_verify=ca) as chat:
    t0 = time.perf_counter()
    result = chatnb.export_history(chat, out, threads=thread_id, format=fmt, progress=False,
                                   partition_by="month" if month == "1" else None)
    elapsed = time.perf_counter() - t0
print(json.dumps({"rows": result.rows, "pages": result.pages, "elapsed": elapsed, "files": len(result.files),
                  "bytes": sum(p.stat().st_size for p in result.files), "rss_before_kb": before}))
"""


def run_child(
    emu: EmulatorProcess, token: str, thread_id: str, out: str, fmt: str, month: bool
) -> dict[str, float]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            _CHILD,
            emu.endpoint,
            token,
            emu.ca_cert,
            thread_id,
            out,
            fmt,
            "1" if month else "0",
        ],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert proc.stdout is not None
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"the export child failed ({proc.returncode})")
    stats: dict[str, float] = json.loads(output)
    stats["peak_kb"] = usage.ru_maxrss
    return stats


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--formats", default="parquet", help="comma-separated: parquet,csv,jsonl,html")
    parser.add_argument("--month", action="store_true", help="also partition by month")
    args = parser.parse_args()
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    print(f"bench_export: export a {args.messages:,}-message thread (pages of 200, one child process each)")
    rows = []
    with seeded_emulator([args.messages]) as (emu, seeded, token):
        for fmt in formats:
            for month in [False, True] if args.month else [False]:
                with tempfile.TemporaryDirectory(prefix="chatnb-bench-export-") as out:
                    stats = run_child(emu, token, seeded.thread_ids[0], out, fmt, month)
                rows.append((fmt + (" by month" if month else ""), stats))
    head = f"{'rows':>9}{'seconds':>9}{'messages/s':>12}{'peak RSS':>11}{'after import':>14}{'output':>10}"
    print(f"  {'format':<18}{head}")
    for name, s in rows:
        print(
            f"  {name:<18}{int(s['rows']):>9,}{s['elapsed']:>9.2f}{s['rows'] / s['elapsed']:>12,.0f}"
            f"{s['peak_kb'] / 1024:>9.0f} MB{s['rss_before_kb'] / 1024:>11.0f} MB"
            f"{s['bytes'] / 2**20:>7.1f} MB"
        )
    worst = max(s["peak_kb"] for _, s in rows) / 1024
    print(f"  target: peak RSS < 300 MB -> {'met' if worst < 300 else 'NOT met'} (worst {worst:.0f} MB)")


if __name__ == "__main__":
    main()
