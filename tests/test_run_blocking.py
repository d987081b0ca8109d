"""The sync wait used by widgets inside a running loop (a notebook cell) must not break the loop."""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import asyncio
    from chatnb.widgets._live import run_blocking

    async def main():
        loop = asyncio.get_running_loop()
        seen = []

        def cell():  # a cell that blocks while other callbacks are queued in the same loop iteration
            # The sleeps are the coroutines under test: run_blocking must wait for them.
            seen.append(run_blocking(asyncio.sleep(0.05, "waited")))
            seen.append(run_blocking(asyncio.sleep(0.01, "again")))

        loop.call_soon(cell)
        for i in range(5):
            loop.call_soon(seen.append, i)
        while len(seen) < 7:  # the cell's two results and the five callbacks, in whatever order
            await asyncio.sleep(0.01)  # polling that condition (no test helpers in this child process)
        print(sorted(map(str, seen)))

    asyncio.run(main())
    """
)


def test_blocking_wait_inside_a_running_loop_keeps_the_loop_alive() -> None:
    # In a subprocess: nest_asyncio2 patches the loop, which must not leak into other tests.
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['0', '1', '2', '3', '4', 'again', 'waited']"


def test_blocking_wait_without_a_loop_runs_the_coroutine() -> None:
    import asyncio

    from chatnb.widgets._live import run_blocking

    assert run_blocking(asyncio.sleep(0, "result")) == "result"  # the coroutine under test
