"""Running the emulator: uvicorn on loopback, in a background thread or in the foreground.

>>> with Emulator() as emu:                      # in memory, HTTPS on a free port
...     emu.connection_string                    # 'endpoint=https://127.0.0.1:PORT/;accesskey=...'

A location directory keeps the database, the identity (access key, resource id, port), the certificate
and ``server.json``; :mod:`chatnb.location` owns those files, the registry that makes a running emulator
trusted by chatnb's clients, and how emulators are found, started and stopped. One emulator serves a
location at a time; a second one is refused while the first holds the lock.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import signal
import socket
import threading
from collections.abc import Callable, Iterable
from datetime import timedelta
from pathlib import Path
from types import FrameType
from typing import Any

import uvicorn

from .. import location as _location
from ..location import DB_NAME, LocationError, LocationInUse, PortInUse, open_private, private_dir
from .app import create_app
from .bounds import ServerLimits
from .certs import ensure_certificate
from .clock import Clock
from .entra import OAUTH_MODES
from .errors import StorageUnavailable
from .griddelivery import GridDelivery
from .gridsubs import EventGridSubscription
from .latency import LatencyMiddleware
from .limits import FaultInjector, FaultPlan, RateLimiter
from .protocol import BoundedServer, bind_listener, protocol_class
from .retention import RetentionSweeper
from .state import Broadcaster, EmulatorState
from .store import Store
from .tokens import TokenIssuer

__all__ = ["Emulator", "LocationError", "LocationInUse", "PortInUse"]

log = logging.getLogger("chatnb.emulator")


class Emulator:
    """An ACS Chat + Identity emulator.

    Raises:
        LocationError: if the location is not a folder, cannot be written or has a corrupt file;
            LocationInUse if another emulator serves it; ValueError for a bad access key.

    Args:
        location: directory for the database, key and certificate; ``None`` keeps data in memory.
        host: interface to listen on (loopback by default).
        port: HTTPS port; 0 picks a free one; ``None``: the location's port (a free one the first time,
            then kept: the location's connection string stays the same).
        access_key: base64 access key; by default the location's saved key, or a new random one.
        cert, key: PEM files of the TLS certificate; by default a self-signed one under the location.
        http_port: also listen for plain HTTP on this port (0 picks one); ``None`` for no HTTP listener.
        debug: log every request.
        rate_limits: enforce the real service's documented rate limits (429 with ``Retry-After``); pass a
            :class:`~chatnb.emulator.limits.RateLimiter` to choose its clock or limits. Off by default.
        faults: a :class:`~chatnb.emulator.limits.FaultPlan`: answer a share of the Chat, Identity and
            event-stream requests with 429/503 (and ``Retry-After``) or delay them. Off by default.
        latency_ms, latency_jitter_ms: simulated distance: every request's round trip takes
            ``latency_ms`` plus up to ``latency_jitter_ms`` more (see :mod:`chatnb.emulator.latency`).
        server_limits: the bounds on what a client can make the server hold (body and head sizes,
            timeouts, connections, event streams per user, storage waits and size); see
            :class:`~chatnb.emulator.bounds.ServerLimits` for the defaults.
        clock: ``"system"`` (default), ``"manual"`` (stands still until :meth:`advance`) or a
            :class:`~chatnb.emulator.clock.Clock`; see :mod:`chatnb.emulator.clock`.
        event_grid: Event Grid subscriptions from the start: specs (``"http://127.0.0.1:8123/,types=..."``),
            dicts or :class:`~chatnb.emulator.gridsubs.EventGridSubscription`; more with ``emu.event_grid``
            (:mod:`chatnb.emulator.griddelivery`). ``event_grid_retry_scale`` multiplies its retry waits,
            time to live and dead-letter delay; ``dead_letter_dir`` (default: the location's
            ``deadletter/``; in memory: none, dropped and counted) keeps what it could not deliver.
        oauth: ``"basic"`` to accept Entra ID bearer tokens on the Identity API (signature not checked:
            :mod:`chatnb.emulator.entra`); off by default.
        loose: accept any ``api-version`` (read as the newest stable one) instead of answering 400.
    """

    def __init__(
        self,
        location: str | Path | None = None,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        access_key: str | None = None,
        cert: str | Path | None = None,
        key: str | Path | None = None,
        http_port: int | None = None,
        debug: bool = False,
        check_hmac_date: bool = True,
        rate_limits: bool | RateLimiter = False,
        faults: FaultPlan | None = None,
        latency_ms: float = 0.0,
        latency_jitter_ms: float = 0.0,
        server_limits: ServerLimits | None = None,
        clock: str | Clock = "system",
        event_grid: Iterable[str | dict[str, Any] | EventGridSubscription] = (),
        event_grid_retry_scale: float = 1.0,
        dead_letter_dir: str | Path | None = None,
        oauth: str | None = None,
        loose: bool = False,
    ) -> None:
        if (oauth is not None and oauth not in OAUTH_MODES) or not event_grid_retry_scale > 0:
            raise ValueError(
                f"oauth must be 'basic' or None and event_grid_retry_scale positive, not "
                f"{oauth!r} and {event_grid_retry_scale!r}"
            )
        self.clock = clock if isinstance(clock, Clock) else Clock(clock)
        self._subscriptions = [EventGridSubscription.coerce(s) for s in event_grid]
        self.location = None if location is None else Path(location).expanduser().resolve()
        self.host = host
        self._http_port = http_port
        self.debug = debug
        self._lock_fd: int | None = None
        if self.location is not None:
            private_dir(self.location)
            self._lock_fd = _location.lock(self.location)
        try:
            identity = _location.load_identity(self.location, access_key)
        except BaseException:
            self._release_lock()
            raise
        self.access_key: str = identity.access_key
        self.resource_id: str = identity.resource_id
        self._requested_port = (identity.port or 0) if port is None else port
        if cert is not None and key is not None:
            self.ca_cert, self.cert_key = Path(cert).resolve(), Path(key).resolve()
        else:
            cert_dir = _location.in_memory_dir() if self.location is None else self.location
            self.ca_cert, self.cert_key = ensure_certificate(cert_dir)
        if self.location is not None:  # SQLite gives its -wal and -shm files the same mode
            os.close(open_private(self.location / DB_NAME, os.O_WRONLY))
        self.limits = server_limits or ServerLimits()
        try:
            self.store = Store(
                None if self.location is None else self.location / DB_NAME,
                self.resource_id,
                busy_timeout=self.limits.storage_timeout,
                max_bytes=self.limits.max_database_bytes,
                clock=self.clock,
            )
        except StorageUnavailable as exc:  # at start a location problem, not a 503 to retry
            self._release_lock()
            cause = exc.__cause__ or exc
            raise LocationError(f"cannot open the database in {self.location}: {cause}") from exc
        self.broadcaster = Broadcaster(self.limits.max_streams_per_user)
        self.store.add_listener(self.broadcaster.notify)
        self.clock.add_listener(lambda _: self.broadcaster.notify())  # streams re-check their tokens
        self.retention = RetentionSweeper(self.store, self.clock)
        if dead_letter_dir is None and self.location is not None:
            dead_letter_dir = self.location / "deadletter"
        self.event_grid = GridDelivery(
            self.store,
            topic=f"/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/chatnb/providers/"
            f"Microsoft.Communication/communicationServices/emulator-{self.resource_id[:8]}",
            retry_scale=event_grid_retry_scale,
            dead_letter_dir=None if dead_letter_dir is None else Path(dead_letter_dir).expanduser().resolve(),
        )
        self.store.add_listener(self.event_grid.notify)
        self.state = EmulatorState(
            store=self.store,
            issuer=TokenIssuer(base64.b64decode(self.access_key), self.resource_id, self.clock),
            access_key=base64.b64decode(self.access_key),
            check_hmac_date=check_hmac_date,
            debug=debug,
            broadcaster=self.broadcaster,
            limits=self.limits,
            clock=self.clock,
            oauth=oauth,
            loose=loose,
            delivery=self.event_grid,
        )
        self.rate_limiter: RateLimiter | None = (
            rate_limits if isinstance(rate_limits, RateLimiter) else RateLimiter() if rate_limits else None
        )
        self.fault_injector = None if faults is None else FaultInjector(faults)
        self.app = create_app(self.state, limiter=self.rate_limiter, faults=self.fault_injector)
        self.latency_ms, self.latency_jitter_ms = float(latency_ms), float(latency_jitter_ms)
        if latency_ms or latency_jitter_ms:  # outermost: throttled answers travel the distance too
            self.app.add_middleware(LatencyMiddleware, latency_ms=latency_ms, jitter_ms=latency_jitter_ms)
        self.port = 0
        self.http_port: int | None = None
        self._servers: list[uvicorn.Server] = []
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

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
        tls_sock = bind_listener(self.host, self._requested_port)
        self.port = tls_sock.getsockname()[1]
        if self.location is not None:
            try:
                _location.save_port(self.location, self.port)
            except LocationError:
                tls_sock.close()
                raise
        tls = uvicorn.Config(
            self.app,
            ssl_certfile=str(self.ca_cert),
            ssl_keyfile=str(self.cert_key),
            **common,
        )
        servers: list[tuple[uvicorn.Server, socket.socket]] = [(BoundedServer(tls, handshake), tls_sock)]
        self.state.endpoints["https"] = self.endpoint
        if self._http_port is not None:
            http_sock = bind_listener(self.host, self._http_port)
            self.http_port = http_sock.getsockname()[1]
            servers.append((BoundedServer(uvicorn.Config(self.app, **common), handshake), http_sock))
            self.state.endpoints["http"] = self.http_endpoint or ""
        return servers

    def _listen(self) -> list[tuple[uvicorn.Server, socket.socket]]:
        """The servers and their sockets; if it cannot listen, the location is released before it raises."""
        try:
            return self._make_servers()
        except BaseException:
            self._cleanup()
            raise

    async def _serve(
        self,
        pairs: list[tuple[uvicorn.Server, socket.socket]],
        on_ready: Callable[[], None] | None = None,
    ) -> None:
        self.broadcaster.bind(asyncio.get_running_loop())
        tasks = [asyncio.ensure_future(srv.serve(sockets=[sock])) for srv, sock in pairs]
        sweeper = asyncio.ensure_future(self.retention.run())
        while not all(srv.started for srv, _ in pairs):
            if any(t.done() for t in tasks):
                break
            await asyncio.sleep(0.005)
        try:
            _location.announce(self)
        except LocationError:
            for srv, _ in pairs:
                srv.should_exit = True
            sweeper.cancel()
            await asyncio.gather(*tasks, sweeper, return_exceptions=True)
            raise
        self.event_grid.validation_base = self.endpoint.rstrip("/")
        if self._subscriptions:
            await asyncio.to_thread(self._subscribe_configured)
        if on_ready is not None:
            on_ready()
        self._started.set()
        try:
            await asyncio.gather(*tasks)
        finally:
            sweeper.cancel()
            await asyncio.gather(sweeper, return_exceptions=True)

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
        pairs = self._listen()
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
        pairs = self._listen()
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
        self.event_grid.stop()
        _location.withdraw(self)
        self.store.close()
        self._release_lock()

    # -- Event Grid and the clock ---------------------------------------------------------------

    def _subscribe_configured(self) -> None:
        """Add the subscriptions given at construction (a failed handshake is logged, not raised)."""
        for subscription in self._subscriptions:
            try:
                self.event_grid.add(subscription)
            except ValueError as exc:
                log.warning("%s", exc)

    def advance(self, delta: timedelta | float) -> None:
        """Move a manual clock on by ``delta`` (a ``timedelta`` or seconds); tokens expire and the
        retention policy deletes threads by the new time before this returns.

        Raises:
            ClockError: if the emulator's clock is the system's, or ``delta`` is negative.
        """
        self.clock.advance(delta)

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
