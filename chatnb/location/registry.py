"""The registry of running emulators, and what clients trust through it.

An emulator announces itself when it has started (:func:`announce`): in its location's ``server.json``
and in the registry, ``~/.chatnb/run/<machine>-<port>.json``. An entry is believed only while the
process that wrote it runs (same machine, not a zombie, its pid not reused since).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import socket
import ssl
import time
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from .files import (
    SERVER_INFO_NAME,
    Info,
    LocationError,
    private_dir,
    read_quiet,
    read_server_info,
    registry_dir,
    write_private,
)

__all__ = [
    "Announced",
    "alive",
    "announce",
    "answers",
    "ca_for_endpoint",
    "certificate_hint",
    "entry_path",
    "find",
    "live_emulator",
    "pid_alive",
    "running",
    "trust",
    "withdraw",
]


class Announced(Protocol):
    """What :func:`announce` reads of an emulator."""

    location: Path | None
    resource_id: str
    ca_cert: Path

    @property
    def endpoint(self) -> str: ...
    @property
    def http_endpoint(self) -> str | None: ...
    @property
    def connection_string(self) -> str: ...


_RUNNING: dict[str, Path] = {}


def _machine() -> str:
    return "".join(c if c.isalnum() or c in "-." else "_" for c in socket.gethostname()) or "localhost"


def _endpoint_key(endpoint: str) -> str:
    parts = urlsplit(endpoint.strip().lower())
    host = parts.hostname or ""
    return f"{parts.scheme}://{'loopback' if _is_loopback(host) else host}:{parts.port}"


def _is_loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def entry_path(endpoint: str) -> Path:
    return registry_dir() / f"{_machine()}-{urlsplit(endpoint).port}.json"


def announce(emu: Announced) -> Info:
    """Write ``server.json`` (for a location) and the registry entry of a started emulator.

    Raises:
        LocationError: if ``server.json`` cannot be written (a registry that cannot be written only means
            that clients need ``connection_verify=``).
    """
    pid = os.getpid()
    info: Info = {
        "pid": pid,
        "process_start": _stat(pid)[1],
        "machine": _machine(),
        "started": time.time(),
        "endpoint": emu.endpoint,
        "http_endpoint": emu.http_endpoint,
        "connection_string": emu.connection_string,
        "ca_cert": str(emu.ca_cert),
        "location": None if emu.location is None else str(emu.location),
        "resource_id": emu.resource_id,
    }
    _RUNNING[_endpoint_key(emu.endpoint)] = emu.ca_cert
    if emu.location is not None:
        write_private(emu.location / SERVER_INFO_NAME, json.dumps(info, indent=2))
    with contextlib.suppress(LocationError):
        write_private(private_dir(registry_dir()) / entry_path(emu.endpoint).name, json.dumps(info, indent=2))
    return info


def withdraw(emu: Announced) -> None:
    """Remove what :func:`announce` wrote for ``emu`` in this process."""
    _RUNNING.pop(_endpoint_key(emu.endpoint), None)
    paths = [entry_path(emu.endpoint)] + ([] if emu.location is None else [emu.location / SERVER_INFO_NAME])
    for path in paths:
        info = read_quiet(path)
        if info is not None and info.get("pid") == os.getpid():
            path.unlink(missing_ok=True)


# -- discovery and trust ---------------------------------------------------------------------------


def _stat(pid: int) -> tuple[str, int | None]:
    """The state letter and start time of ``pid`` from ``/proc`` (``("?", None)`` where it cannot tell)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "?", None
    fields = text[text.rindex(")") + 2 :].split()
    return fields[0], int(fields[19])


def pid_alive(pid: object) -> bool:
    """Whether ``pid`` is a running process; a zombie (ended, not yet reaped) is not."""
    if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return _stat(pid)[0] not in ("Z", "X")


def alive(info: Info | None) -> bool:
    """Whether the process that wrote ``info`` runs: on this machine, not a zombie, its pid not reused."""
    if not info or info.get("machine", _machine()) != _machine() or not pid_alive(info.get("pid")):
        return False
    recorded, now = info.get("process_start"), _stat(info["pid"])[1]
    return recorded is None or now is None or recorded == now


def answers(info: Info, timeout: float = 3.0) -> bool:
    """Whether ``info``'s endpoint completes a TLS handshake with ``info``'s certificate."""
    endpoint, ca = info.get("endpoint"), info.get("ca_cert")
    if not isinstance(endpoint, str) or not isinstance(ca, str):
        return False
    parts = urlsplit(endpoint)
    try:
        context = ssl.create_default_context(cafile=ca)
        with (
            socket.create_connection((parts.hostname, parts.port or 443), timeout) as sock,
            context.wrap_socket(sock, server_hostname=parts.hostname),
        ):
            return True
    except (OSError, ValueError):
        return False


def live_emulator(location: Path) -> Info | None:
    """The announcement of the emulator serving ``location``, if it runs and answers."""
    info = read_server_info(location)
    return info if info is not None and alive(info) and answers(info) else None


def running() -> list[Info]:
    """Every emulator of this user running on this machine, from the registry (stale entries go)."""
    found = []
    for path in sorted(registry_dir().glob("*.json")):
        info = read_quiet(path)
        if alive(info):
            found.append(info)
        elif (info or {}).get("machine", _machine()) == _machine():
            again = read_quiet(path)
            if again is None or again.get("pid") == (info or {}).get("pid"):
                path.unlink(missing_ok=True)
    return [info for info in found if info is not None]


def find(endpoint: str) -> Info | None:
    """The registry's entry for the chatnb emulator serving ``endpoint`` on this machine, if one does."""
    info = read_quiet(entry_path(endpoint)) if urlsplit(endpoint.strip()).port else None
    if info is not None and _endpoint_key(str(info.get("endpoint", ""))) == _endpoint_key(endpoint):
        return info if alive(info) else None
    return None


def ca_for_endpoint(endpoint: str) -> Path | None:
    """The certificate of the chatnb emulator serving ``endpoint`` on this machine, if one does."""
    key = _endpoint_key(endpoint)
    if key in _RUNNING:
        return _RUNNING[key]
    ca = Path(str((find(endpoint) or {}).get("ca_cert") or ""))
    return ca if ca.name and ca.is_file() else None


def certificate_hint(endpoint: str, tried: str | None) -> str:
    """What to trust instead, after a certificate failure against ``endpoint`` with ``tried`` (a PEM)."""
    ca = ca_for_endpoint(endpoint)
    if ca is not None and str(ca) != tried:
        return (
            f"the chatnb emulator at {endpoint} has the certificate {ca}: pass connection_verify={str(ca)!r}"
        )
    what = f"it is not the one in {tried}" if tried else "no chatnb emulator on this machine announced it"
    return (
        f"{what}; for a chatnb emulator pass connection_verify=<its emulator-cert.pem> "
        "(its start banner and `chatnb status` show the path)"
    )


def _explain(exc: ssl.SSLCertVerificationError, context: ssl.SSLContext) -> None:
    if isinstance(context, _TrustContext) and exc.strerror and "connection_verify" not in exc.strerror:
        exc.strerror = f"{exc.strerror}; {certificate_hint(context.endpoint, context.cafile)}"


class _HintSocket(ssl.SSLSocket):
    def do_handshake(self, block: bool = False) -> None:
        try:
            super().do_handshake(block)
        except ssl.SSLCertVerificationError as exc:
            _explain(exc, self.context)
            raise


class _HintObject(ssl.SSLObject):
    def do_handshake(self) -> None:
        try:
            super().do_handshake()
        except ssl.SSLCertVerificationError as exc:
            _explain(exc, self.context)
            raise


class _TrustContext(ssl.SSLContext):
    """A client context whose certificate failures name the PEM to trust instead."""

    endpoint = ""
    cafile: str | None = None
    sslsocket_class = _HintSocket
    sslobject_class = _HintObject


def trust(
    endpoint: str, cafile: str | os.PathLike[str] | None = None, *, system: bool = False
) -> bool | ssl.SSLContext:
    """What a client of ``endpoint`` verifies TLS with: ``cafile``; else (unless ``system``) the
    certificate of the local emulator serving ``endpoint``; else the system's trust store. For a loopback
    endpoint or a ``cafile``, a certificate failure names the PEM to use; elsewhere ``True`` stands for
    the system's (httpx's own default).

    Raises:
        ValueError: if ``cafile`` (given, or the emulator's) holds no certificate that can be loaded.
    """
    if cafile is None:
        cafile = None if system else ca_for_endpoint(endpoint)
        if cafile is None and not _is_loopback(urlsplit(endpoint).hostname or ""):
            return True
    context = _TrustContext(ssl.PROTOCOL_TLS_CLIENT)
    if cafile is None:
        context.load_default_certs()
    else:
        try:
            context.load_verify_locations(cafile=os.fspath(cafile))
        except ssl.SSLError as exc:
            raise ValueError(
                f"connection_verify: {os.fspath(cafile)!r} holds no certificate that can be loaded "
                f"({exc.reason or exc}); pass a PEM file, such as the emulator's emulator-cert.pem"
            ) from None
    context.endpoint, context.cafile = endpoint, None if cafile is None else os.fspath(cafile)
    return context
