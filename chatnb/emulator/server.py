"""Running the emulator: uvicorn on loopback, in a background thread or in the foreground.

>>> with Emulator() as emu:                      # in memory, HTTPS on a free port
...     emu.connection_string                    # 'endpoint=https://127.0.0.1:PORT/;accesskey=...'

A location directory keeps the database, the access key, the certificate and ``server.json`` (where a
running emulator announces its endpoint so that other kernels can reuse it). One emulator serves a
location at a time; a second one is refused while the first holds the lock.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import json
import os
import secrets
import signal
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

import uvicorn

from .app import create_app
from .bounds import ServerLimits
from .certs import ensure_certificate
from .limits import FaultInjector, FaultPlan, RateLimiter
from .protocol import BoundedServer, bind, protocol_class
from .state import Broadcaster, EmulatorState
from .store import Store
from .tokens import TokenIssuer

__all__ = [
    "DEFAULT_LOCATION",
    "Emulator",
    "LocationInUse",
    "ca_for_endpoint",
    "default_location",
    "read_server_info",
    "stop_announced",
]

DEFAULT_LOCATION = Path(os.environ.get("CHATNB_HOME", Path.home() / ".chatnb")) / "emulator"


def default_location() -> Path:
    """``$CHATNB_HOME/emulator`` (default ``~/.chatnb/emulator``), read now rather than at import."""
    return Path(os.environ.get("CHATNB_HOME") or Path.home() / ".chatnb").expanduser() / "emulator"


DB_NAME = "chatnb.sqlite3"
CONFIG_NAME = "emulator.json"
SERVER_INFO_NAME = "server.json"
LOCK_NAME = "emulator.lock"


class LocationInUse(RuntimeError):
    """Another emulator process is serving this location."""


def read_server_info(location: Path) -> dict[str, Any] | None:
    """What a running emulator announced in ``location/server.json``, if anything."""
    try:
        info: dict[str, Any] = json.loads((location / SERVER_INFO_NAME).read_text())
    except (OSError, ValueError):
        return None
    return info


def stop_announced(location: Path, *, timeout: float = 10.0) -> bool:
    """Stop the ``chatnb serve`` process announced in ``location/server.json``; ``True`` if one was.

    SIGTERM (a clean shutdown), then SIGKILL after ``timeout`` seconds. A pid that no longer belongs to a
    ``chatnb serve`` process (where ``/proc`` can tell) is left alone.
    """
    info = read_server_info(location)
    try:
        pid = int((info or {})["pid"])
    except (KeyError, TypeError, ValueError):
        return False
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        command = [b"chatnb", b"serve"] if not Path("/proc").is_dir() else []
    if b"chatnb" not in command or b"serve" not in command:  # gone, or the pid is someone else's now
        return False
    try:
        os.kill(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    return True


_RUNNING: dict[str, Path] = {}


def _endpoint_key(endpoint: str) -> str:
    return endpoint.strip().rstrip("/").lower()


def ca_for_endpoint(endpoint: str) -> Path | None:
    """The certificate to trust for ``endpoint`` if it is an emulator this machine knows.

    Emulators started in this process are known; so is the one serving the default location (or
    ``$CHATNB_HOME``), announced in its ``server.json``. Anything else returns ``None``.
    """
    key = _endpoint_key(endpoint)
    if key in _RUNNING:
        return _RUNNING[key]
    info = read_server_info(default_location())
    if info and _endpoint_key(str(info.get("endpoint", ""))) == key:
        ca = Path(str(info.get("ca_cert", "")))
        if ca.is_file():
            return ca
    return None


def _private_file(path: Path) -> None:
    """Create ``path`` readable by its owner only, if it does not exist yet (chat content is private)."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


class Emulator:
    """An ACS Chat + Identity emulator.

    Args:
        location: directory for the database, key and certificate; ``None`` keeps data in memory.
        host: interface to listen on (loopback by default).
        port: HTTPS port; 0 picks a free one.
        access_key: base64 access key; by default the location's saved key, or a new random one.
        cert, key: PEM files of the TLS certificate; by default a self-signed one under the location.
        http_port: also listen for plain HTTP on this port (0 picks one); ``None`` for no HTTP listener.
        debug: log every request.
        rate_limits: enforce the real service's documented rate limits (429 with ``Retry-After``); pass a
            :class:`~chatnb.emulator.limits.RateLimiter` to choose its clock or limits. Off by default.
        faults: a :class:`~chatnb.emulator.limits.FaultPlan`: answer a share of the Chat, Identity and
            event-stream requests with 429/503 (and ``Retry-After``) or delay them. Off by default.
        server_limits: the bounds on what a client can make the server hold (body and head sizes,
            timeouts, connections, event streams per user, storage waits and size); see
            :class:`~chatnb.emulator.bounds.ServerLimits` for the defaults.
    """

    def __init__(
        self,
        location: str | Path | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        access_key: str | None = None,
        cert: str | Path | None = None,
        key: str | Path | None = None,
        http_port: int | None = None,
        debug: bool = False,
        check_hmac_date: bool = True,
        rate_limits: bool | RateLimiter = False,
        faults: FaultPlan | None = None,
        server_limits: ServerLimits | None = None,
    ) -> None:
        self.location = None if location is None else Path(location).expanduser().resolve()
        self.host = host
        self._requested_port = port
        self._http_port = http_port
        self.debug = debug
        self._lock_file: TextIO | None = None
        self._tmpdir: tempfile.TemporaryDirectory[str] | None = None
        if self.location is not None:
            self.location.mkdir(mode=0o700, parents=True, exist_ok=True)  # private when we create it
            self._acquire_lock()
        config = self._load_config(access_key)
        self.access_key: str = config["accessKey"]
        self.resource_id: str = config["resourceId"]
        if cert is not None and key is not None:
            self.ca_cert, self.cert_key = Path(cert).resolve(), Path(key).resolve()
        else:
            cert_dir = self.location
            if cert_dir is None:
                self._tmpdir = tempfile.TemporaryDirectory(prefix="chatnb-emulator-")
                cert_dir = Path(self._tmpdir.name)
            self.ca_cert, self.cert_key = ensure_certificate(cert_dir)
        if self.location is not None:
            _private_file(self.location / DB_NAME)  # SQLite gives its -wal and -shm files the same mode
        self.limits = server_limits or ServerLimits()
        self.store = Store(
            None if self.location is None else self.location / DB_NAME,
            self.resource_id,
            busy_timeout=self.limits.storage_timeout,
            max_bytes=self.limits.max_database_bytes,
        )
        self.broadcaster = Broadcaster(self.limits.max_streams_per_user)
        self.store.add_listener(self.broadcaster.notify)
        self.state = EmulatorState(
            store=self.store,
            issuer=TokenIssuer(base64.b64decode(self.access_key), self.resource_id),
            access_key=base64.b64decode(self.access_key),
            check_hmac_date=check_hmac_date,
            debug=debug,
            broadcaster=self.broadcaster,
            limits=self.limits,
        )
        self.rate_limiter: RateLimiter | None = (
            rate_limits if isinstance(rate_limits, RateLimiter) else RateLimiter() if rate_limits else None
        )
        self.fault_injector = None if faults is None else FaultInjector(faults)
        self.app = create_app(self.state, limiter=self.rate_limiter, faults=self.fault_injector)
        self.port = 0
        self.http_port: int | None = None
        self._servers: list[uvicorn.Server] = []
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None

    # -- configuration --------------------------------------------------------------------------

    def _acquire_lock(self) -> None:
        assert self.location is not None
        lock = (self.location / LOCK_NAME).open("a+")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            info = read_server_info(self.location) or {}
            raise LocationInUse(
                f"another emulator is serving {self.location} "
                f"(pid {info.get('pid', '?')}, endpoint {info.get('endpoint', '?')})"
            ) from None
        self._lock_file = lock

    def _load_config(self, access_key: str | None) -> dict[str, str]:
        if access_key is not None:
            try:
                raw = base64.b64decode(access_key, validate=True)
            except ValueError:
                raise ValueError("access_key must be base64") from None
            if len(raw) < 16:
                raise ValueError("access_key must decode to at least 16 bytes")
        path = None if self.location is None else self.location / CONFIG_NAME
        saved: dict[str, str] = {}
        if path is not None and path.exists():
            saved = json.loads(path.read_text())
        config = {
            "accessKey": access_key
            or saved.get("accessKey")
            or base64.b64encode(secrets.token_bytes(32)).decode(),
            "resourceId": saved.get("resourceId") or str(uuid.uuid4()),
        }
        if path is not None and config != saved:
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(config, indent=2))
            os.chmod(tmp, 0o600)
            os.replace(tmp, path)
        return config

    # -- addresses ------------------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        """The HTTPS endpoint, ``https://127.0.0.1:PORT/``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"https://{host}:{self.port}/"

    @property
    def http_endpoint(self) -> str | None:
        if self.http_port is None:
            return None
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.http_port}/"

    @property
    def connection_string(self) -> str:
        """``endpoint=https://127.0.0.1:PORT/;accesskey=...``, as an ACS resource's."""
        return f"endpoint={self.endpoint};accesskey={self.access_key}"

    def __repr__(self) -> str:
        where = "in memory" if self.location is None else str(self.location)
        return f"<Emulator {self.endpoint if self.port else '(stopped)'} {where}>"

    # -- running --------------------------------------------------------------------------------

    def _make_servers(self) -> list[tuple[uvicorn.Server, socket.socket]]:
        level = "info" if self.debug else "warning"
        common: dict[str, Any] = {
            "lifespan": "off",
            "log_level": level,
            "access_log": self.debug,
            "timeout_graceful_shutdown": 2,
            "timeout_keep_alive": self.limits.keep_alive_timeout,
            "server_header": False,
            "http": protocol_class(self.limits),
        }
        handshake = self.limits.handshake_timeout
        tls_sock = bind(self.host, self._requested_port)
        self.port = tls_sock.getsockname()[1]
        tls = uvicorn.Config(
            self.app,
            ssl_certfile=str(self.ca_cert),
            ssl_keyfile=str(self.cert_key),
            **common,
        )
        servers: list[tuple[uvicorn.Server, socket.socket]] = [(BoundedServer(tls, handshake), tls_sock)]
        self.state.endpoints["https"] = self.endpoint
        if self._http_port is not None:
            http_sock = bind(self.host, self._http_port)
            self.http_port = http_sock.getsockname()[1]
            servers.append((BoundedServer(uvicorn.Config(self.app, **common), handshake), http_sock))
            self.state.endpoints["http"] = self.http_endpoint or ""
        return servers

    async def _serve(
        self,
        pairs: list[tuple[uvicorn.Server, socket.socket]],
        on_ready: Callable[[], None] | None = None,
    ) -> None:
        self.broadcaster.bind(asyncio.get_running_loop())
        tasks = [asyncio.ensure_future(srv.serve(sockets=[sock])) for srv, sock in pairs]
        while not all(srv.started for srv, _ in pairs):
            if any(t.done() for t in tasks):
                break
            await asyncio.sleep(0.005)
        self._write_server_info()
        _RUNNING[_endpoint_key(self.endpoint)] = self.ca_cert
        if on_ready is not None:
            on_ready()
        self._started.set()
        await asyncio.gather(*tasks)

    def _new_loop(self) -> asyncio.AbstractEventLoop:
        try:
            import uvloop
        except ImportError:  # pragma: no cover - uvloop is part of uvicorn[standard]
            return asyncio.new_event_loop()
        return uvloop.new_event_loop()

    def _run(self, pairs: list[tuple[uvicorn.Server, socket.socket]]) -> None:
        loop = self._new_loop()
        try:
            loop.run_until_complete(self._serve(pairs))
        except BaseException as exc:  # reported to start()
            self._error = exc
        finally:
            loop.close()
            self._started.set()

    def start(self) -> Emulator:
        """Serve in a daemon thread; return once it accepts connections."""
        if self._thread is not None:
            return self
        pairs = self._make_servers()
        self._servers = [srv for srv, _ in pairs]
        self._thread = threading.Thread(target=self._run, args=(pairs,), name="chatnb-emulator", daemon=True)
        self._thread.start()
        self._started.wait(30)
        if self._error is not None or not all(s.started for s in self._servers):
            self.stop()
            raise RuntimeError(f"the emulator did not start: {self._error!r}")
        return self

    def serve_forever(self, on_ready: Callable[[], None] | None = None) -> None:
        """Serve in this thread until interrupted (Ctrl-C / SIGTERM), then shut down cleanly."""
        pairs = self._make_servers()
        self._servers = [srv for srv, _ in pairs]
        previous: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            loop = self._new_loop()
            try:
                loop.run_until_complete(self._serve(pairs, on_ready))
            finally:
                loop.close()
        except KeyboardInterrupt:  # a signal that arrived before the handlers were in place
            pass
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self._cleanup()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        """First Ctrl-C / SIGTERM: shut down gracefully; a second Ctrl-C: stop waiting for requests."""
        for srv in self._servers:
            if srv.should_exit and signum == signal.SIGINT:
                srv.force_exit = True
            srv.should_exit = True

    def stop(self) -> None:
        """Stop serving, close the store and release the location."""
        for srv in self._servers:
            srv.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        self._cleanup()

    def _cleanup(self) -> None:
        _RUNNING.pop(_endpoint_key(self.endpoint), None)
        if self.location is not None:
            info = read_server_info(self.location)
            if info is not None and info.get("pid") == os.getpid():
                (self.location / SERVER_INFO_NAME).unlink(missing_ok=True)
        self.store.close()
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None
        if self._tmpdir is not None:
            self._tmpdir.cleanup()
            self._tmpdir = None

    def _write_server_info(self) -> None:
        if self.location is None:
            return
        info = {
            "pid": os.getpid(),
            "endpoint": self.endpoint,
            "http_endpoint": self.http_endpoint,
            "connection_string": self.connection_string,
            "ca_cert": str(self.ca_cert),
        }
        path = self.location / SERVER_INFO_NAME
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(info, indent=2))
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
