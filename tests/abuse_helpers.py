"""Tools for the abuse tests: an emulator process with chosen bounds, raw HTTP/1.1 over TCP and TLS, and
the process's open files and memory as the kernel counts them.

:class:`EmulatorProcess` runs an :class:`~chatnb.emulator.Emulator` in a child Python (optionally with a
lower open-file limit), so what the tests count (``/proc/PID/fd``, RSS) is the server's alone. Without
``ServerLimits`` (the main branch before the bounds) it runs with the defaults, so a test shows the
behaviour rather than an import error.
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
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psutil
import pytest

__all__ = ["EmulatorProcess", "Response", "read_response", "request_bytes", "wait_until"]

START_TIMEOUT_S = 30.0

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


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def request_bytes(
    method: str, target: str, headers: dict[str, str] | None = None, body: bytes = b""
) -> bytes:
    """An HTTP/1.1 request, verbatim (``Content-Length`` added when there is a body and none is given)."""
    all_headers = {"Host": "127.0.0.1", **(headers or {})}
    if body and not any(k.lower() in ("content-length", "transfer-encoding") for k in all_headers):
        all_headers["Content-Length"] = str(len(body))
    head = f"{method} {target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in all_headers.items())
    return head.encode("latin-1") + b"\r\n" + body


def read_response(sock: socket.socket) -> Response | None:
    """One response with a ``Content-Length`` body, or ``None`` if the server closed first."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return Response(status, headers, rest[:length])


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
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        for pump in self._pumps:
            pump.join(10)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()

    def __enter__(self) -> EmulatorProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Wait for ``condition`` (checked every 10 ms) or fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {timeout} s")
        time.sleep(0.01)
