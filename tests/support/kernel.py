"""Separate Python processes driven cell by cell, as notebook kernels and scripts would use chatnb.

:class:`Kernel` runs each :meth:`~Kernel.run` in a fresh interpreter of its own (one namespace for its
life) and answers with the value the code assigned to ``result``; nothing waits on time: every call
waits for the kernel's one-line answer. :func:`chatnb_command` runs the ``chatnb`` command line.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.support.processes import close_streams, end

__all__ = ["Kernel", "KernelError", "chatnb_command"]

_LOOP = r"""
import json, sys
namespace = {}
for line in sys.stdin:
    try:
        exec(compile(json.loads(line), "<cell>", "exec"), namespace)
        reply = {"ok": True, "result": namespace.pop("result", None)}
    except BaseException as exc:
        reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    print(json.dumps(reply, default=str), flush=True)
"""


class KernelError(Exception):
    """A cell raised in the kernel; the message is ``Type: text``."""


class Kernel:
    """A Python process with ``env`` (over this one's) that runs cells sent to it."""

    def __init__(self, logs: Path, **env: str) -> None:
        logs.mkdir(parents=True, exist_ok=True)
        self.stderr_path = logs / f"kernel-{len(list(logs.glob('kernel-*.log')))}.log"
        with self.stderr_path.open("w") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, "-c", _LOOP],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                env={**os.environ, **env},
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def run(self, code: str) -> Any:
        """Run ``code``; its ``result`` variable, or :class:`KernelError` if it raised."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps(code) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise AssertionError(f"the kernel died: {self.stderr_path.read_text()[-2000:]}")
        reply = json.loads(line)
        if not reply["ok"]:
            raise KernelError(reply["error"])
        return reply["result"]

    def kill(self) -> None:
        """SIGKILL, as when a kernel crashes: no ``close()``, no ``atexit``."""
        end(self.process, signal.SIGKILL)
        close_streams(self.process.stdin, self.process.stdout)

    def close(self) -> None:
        """End the kernel as a notebook's shutdown does (its stdin closes; ``atexit`` runs)."""
        if self.process.stdin is not None and not self.process.stdin.closed:
            self.process.stdin.close()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.kill()
        close_streams(self.process.stdin, self.process.stdout)

    def __enter__(self) -> Kernel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def chatnb_command(
    *args: str, env: dict[str, str] | None = None, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    """``python -m chatnb ARGS`` to the end, its output captured."""
    return subprocess.run(
        [sys.executable, "-m", "chatnb", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )
