"""An emulator in a process of its own, for the tests that need a server they can signal, kill or count.

- :class:`Served`: ``python -m chatnb serve`` with its output on pipes, read line by line.
- :class:`ServerProcess`: ``python -m chatnb serve`` with its output in files (never a pipe that could
  fill up and block it), for the load, crash and secrets tests.
- :class:`EmulatorProcess`: an :class:`~chatnb.emulator.Emulator` with chosen bounds in a child Python
  (optionally with a lower open-file limit), so what the abuse tests count (``/proc/PID/fd``, RSS) is the
  server's alone.

Each waits for the ready banner, then reads the connection string and certificate from the registry.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import ssl
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Any

import psutil
import pytest

from chatnb import location
from tests.support.net import Response, read_response, request_bytes
from tests.support.waiting import wait_until
from tests.support.wire import Wire

__all__ = [
    "EmulatorProcess",
    "Served",
    "ServerProcess",
    "announcement",
    "close_streams",
    "end",
    "serve_command",
]

START_TIMEOUT_S = 30.0


def end(process: subprocess.Popen[Any], sig: int = signal.SIGTERM, grace: float = 15.0) -> int:
    """Send ``sig`` to ``process`` if it still runs, wait ``grace`` seconds for it to end, then SIGKILL it;
    its exit status."""
    if process.poll() is None:
        process.send_signal(sig)
    try:
        return process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait(10)


def close_streams(*streams: IO[Any] | None) -> None:
    """Close each of ``streams`` that is open (pipes of a process, files it wrote to)."""
    for stream in streams:
        if stream is not None and not stream.closed:
            stream.close()


def announcement(pid: int) -> dict[str, Any]:
    """What the ``chatnb serve`` process ``pid`` announced in the registry (``chatnb.location.running()``)."""
    found = [info for info in location.running() if info["pid"] == pid]
    assert found, f"pid {pid} is not in the registry"
    return found[0]


def serve_command(*args: str) -> list[str]:
    """``python -m chatnb serve --port 0 ARGS``."""
    return [sys.executable, "-m", "chatnb", "serve", "--port", "0", *args]


class Served:
    """A ``chatnb serve`` process, started and ready (it printed its connection string) on construction.

    Use as a context manager, or call :meth:`close`, to kill it if still running.
    """

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            serve_command(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.lines: list[str] = []
        self._announced: dict[str, Any] = {}
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()
        try:
            self._wait_ready()
        except BaseException:
            self.close()
            raise

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def _wait_ready(self) -> None:
        while True:
            try:
                line = self._queue.get(timeout=START_TIMEOUT_S)
            except queue.Empty:
                pytest.fail(f"chatnb serve printed no ready line in {START_TIMEOUT_S} s: {self.lines}")
            if line is None:
                err = self.process.stderr.read() if self.process.stderr else ""
                pytest.fail(f"chatnb serve exited early ({self.process.wait()}): {self.lines} {err}")
            self.lines.append(line)
            if "Ctrl-C" in line:
                self._announced = announcement(self.process.pid)
                return

    def field(self, label: str) -> str:
        """The value of a ``label: value`` line of the start banner."""
        for line in self.lines:
            if line.strip().startswith(label + ":"):
                return line.split(":", 1)[1].split("   (")[0].strip()
        raise AssertionError(f"no {label!r} line in {self.lines}")

    @property
    def connection_string(self) -> str:
        """From the registry, read once ready: the banner shows the access key only on a terminal."""
        if not self._announced:
            self._announced = announcement(self.process.pid)
        return str(self._announced["connection_string"])

    @property
    def endpoint(self) -> str:
        return self.connection_string.split(";")[0].removeprefix("endpoint=")

    @property
    def access_key(self) -> str:
        return self.connection_string.split(";")[1].removeprefix("accesskey=")

    @property
    def ca_cert(self) -> str:
        return self.field("certificate (PEM)")

    def wire(self, *, base_url: str | None = None) -> Wire:
        return Wire.connect(self.connection_string, self.ca_cert, base_url=base_url)

    def stop(self, sig: signal.Signals = signal.SIGINT) -> tuple[int, str, str]:
        """Send ``sig``; return the exit code, the rest of stdout and stderr."""
        self.process.send_signal(sig)
        rc = self.process.wait(15)
        rest = []
        while (line := self._queue.get(timeout=5)) is not None:
            rest.append(line)
        assert self.process.stderr is not None
        return rc, "\n".join(rest), self.process.stderr.read()

    def close(self) -> None:
        end(self.process, signal.SIGKILL)
        close_streams(self.process.stdout, self.process.stderr)

    def __enter__(self) -> Served:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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
            serve_command(*args),
            stdout=self._out,
            stderr=self._err,
            env=env,
        )
        self.connection_string = ""
        self.ca_cert = ""
        self._wait_ready()

    def _wait_ready(self) -> None:
        try:
            wait_until(self._ready, "chatnb serve's ready banner", START_TIMEOUT_S, interval=0.02)
        except BaseException:
            self.kill()
            raise

    def _ready(self) -> bool:
        """Whether the banner is out (then the connection string and certificate are read)."""
        if "Ctrl-C" in self.stdout_path.read_text():  # the key is not in the banner (not a terminal)
            info = announcement(self.process.pid)
            self.connection_string, self.ca_cert = info["connection_string"], info["ca_cert"]
            return True
        if self.process.poll() is not None:
            raise RuntimeError(f"chatnb serve exited with {self.process.returncode}: {self.output()}")
        return False

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
        end(self.process, signal.SIGKILL)
        close_streams(self._out, self._err)

    def stop(self) -> int:
        """SIGTERM, as ``kill`` would send; returns the exit status."""
        code = end(self.process)
        close_streams(self._out, self._err)
        return code

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


_CHILD = """
import json, resource, sys
from chatnb.emulator import Emulator
try:
    from chatnb.emulator import ServerLimits
except ImportError:
    ServerLimits = None
config = json.loads(sys.argv[1])
if config.get("nofile"):
    resource.setrlimit(resource.RLIMIT_NOFILE, (config["nofile"], config["nofile"]))
kwargs = {}
if ServerLimits is not None and config.get("limits"):
    kwargs["server_limits"] = ServerLimits(**config["limits"])
emu = Emulator(config.get("location"), http_port=0, **kwargs)

def ready():
    info = {"endpoint": emu.endpoint, "http_port": emu.http_port, "port": emu.port,
            "ca_cert": str(emu.ca_cert), "connection_string": emu.connection_string}
    print(json.dumps(info), flush=True)

emu.serve_forever(ready)
"""


class EmulatorProcess:
    """``Emulator(location, http_port=0, server_limits=ServerLimits(**limits))`` in a child process.

    Args:
        limits: keyword arguments of ``ServerLimits``.
        nofile: the child's open-file limit (soft and hard).
        location: the emulator's location (``None``: in memory).
    """

    def __init__(
        self, *, limits: dict[str, Any] | None = None, nofile: int | None = None, location: str | None = None
    ) -> None:
        config = {"limits": limits or {}, "nofile": nofile, "location": location}
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(
            [sys.executable, "-c", _CHILD, json.dumps(config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        self.stderr: list[str] = []
        self._pumps = [
            threading.Thread(target=self._pump, daemon=True),
            threading.Thread(target=self._pump_err, daemon=True),
        ]
        for pump in self._pumps:
            pump.start()
        try:
            line = self._lines.get(timeout=START_TIMEOUT_S)
        except queue.Empty:
            self.close()
            raise RuntimeError(f"the emulator process did not start in {START_TIMEOUT_S} s") from None
        if line is None:
            self.close()
            raise RuntimeError(f"the emulator process exited: {''.join(self.stderr)[-2000:]}")
        self.info: dict[str, Any] = json.loads(line)
        self.port: int = self.info["port"]
        self.http_port: int = self.info["http_port"]
        self.tls = ssl.create_default_context(cafile=self.info["ca_cert"])

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def _pump_err(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.stderr.append(line)

    @property
    def pid(self) -> int:
        return self.process.pid

    def open_files(self) -> int:
        """How many files the server process has open now."""
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def rss(self) -> int:
        """The server process's resident memory, in bytes."""
        return int(psutil.Process(self.pid).memory_info().rss)

    def tcp(self, *, timeout: float = 30.0) -> socket.socket:
        """A plain TCP connection to the TLS port (no handshake)."""
        return socket.create_connection(("127.0.0.1", self.port), timeout=timeout)

    def tls_connection(self, *, timeout: float = 30.0) -> ssl.SSLSocket:
        """A TLS connection to the emulator, handshake done, certificate verified."""
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        return self.tls.wrap_socket(raw, server_hostname="127.0.0.1")

    def http_connection(self, *, timeout: float = 30.0) -> socket.socket:
        """A plain-HTTP connection to the emulator's HTTP port."""
        return socket.create_connection(("127.0.0.1", self.http_port), timeout=timeout)

    def ask(
        self, method: str, target: str, headers: dict[str, str] | None = None, body: bytes = b""
    ) -> Response:
        """One request on a fresh TLS connection."""
        with self.tls_connection() as sock:
            sock.sendall(request_bytes(method, target, headers, body))
            response = read_response(sock)
        if response is None:
            raise ConnectionError(f"{method} {target}: the server closed the connection without answering")
        return response

    def close(self) -> None:
        end(self.process)
        for pump in self._pumps:
            pump.join(10)
        close_streams(self.process.stdout, self.process.stderr)

    def __enter__(self) -> EmulatorProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
