"""``python -m chatnb serve`` as a separate process, for the load, crash and secrets tests.

The process writes its output to files (never a pipe that could fill up and block it); :class:`ServerProcess`
waits for the ready banner, then reads the connection string and certificate from the registry.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.wire_helpers import announcement

__all__ = ["ServerProcess"]

START_TIMEOUT_S = 30.0


class ServerProcess:
    """A running ``chatnb serve`` with ``args``; its stdout and stderr go to files under ``logs``."""

    def __init__(self, args: list[str], logs: Path) -> None:
        logs.mkdir(parents=True, exist_ok=True)
        n = len(list(logs.glob("stdout-*.log")))
        self.stdout_path = logs / f"stdout-{n}.log"
        self.stderr_path = logs / f"stderr-{n}.log"
        self._out = self.stdout_path.open("w")
        self._err = self.stderr_path.open("w")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "chatnb", "serve", "--port", "0", *args],
            stdout=self._out,
            stderr=self._err,
            env=env,
        )
        self.connection_string = ""
        self.ca_cert = ""
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            text = self.stdout_path.read_text()
            if "Ctrl-C" in text:  # the key is not in the banner (not a terminal): the registry has it
                info = announcement(self.process.pid)
                self.connection_string, self.ca_cert = info["connection_string"], info["ca_cert"]
                return
            if self.process.poll() is not None:
                raise RuntimeError(f"chatnb serve exited with {self.process.returncode}: {self.output()}")
            time.sleep(0.02)
        self.kill()
        raise RuntimeError(f"chatnb serve did not start in {START_TIMEOUT_S} s: {self.output()}")

    @property
    def endpoint(self) -> str:
        return self.connection_string.split(";")[0].removeprefix("endpoint=")

    def output(self) -> str:
        """Everything the process printed so far, stdout then stderr."""
        for f in (self._out, self._err):
            if not f.closed:
                f.flush()
        return self.stdout_path.read_text() + self.stderr_path.read_text()

    def kill(self) -> None:
        """SIGKILL: no chance to flush, close or clean up."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)
        self._close()

    def stop(self) -> int:
        """SIGTERM, as ``kill`` would send; returns the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait(10)
        self._close()
        return code

    def _close(self) -> None:
        for f in (self._out, self._err):
            if not f.closed:
                f.close()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
