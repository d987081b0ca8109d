"""The files of a location: where it is, its private files, its identity and lock, its named users.

Every folder here is made 0700 and every file 0600 *from creation* (``os.mkdir``/``os.open`` modes,
``mkstemp``), never written first and narrowed after; a failed write leaves no temporary file.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import secrets
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "CONFIG_NAME",
    "DB_NAME",
    "DEFAULT_IDLE_TIMEOUT",
    "LEASES_NAME",
    "LOG_NAME",
    "SERVER_INFO_NAME",
    "USERS_NAME",
    "Identity",
    "LocationError",
    "LocationInUse",
    "PortInUse",
    "chatnb_home",
    "default_location",
    "in_memory_dir",
    "load_identity",
    "lock",
    "named_users",
    "new_temporary",
    "open_private",
    "private_dir",
    "read_quiet",
    "read_server_info",
    "read_users",
    "registry_dir",
    "remove_if_temporary",
    "resolve",
    "save_port",
    "write_private",
]

HOME_ENV = "CHATNB_HOME"
DB_NAME = "chatnb.sqlite3"
CONFIG_NAME = "emulator.json"
SERVER_INFO_NAME = "server.json"
USERS_NAME = "users.json"
LOG_NAME = "emulator.log"
LOCK_NAME = "emulator.lock"
LEASES_NAME = "leases"
TEMPORARY_MARK = "temporary"
DEFAULT_IDLE_TIMEOUT = 600.0
Info = dict[str, Any]


class LocationError(RuntimeError):
    """A location cannot be used as asked: not a folder, not writable, a corrupt file, its port taken."""


class LocationInUse(LocationError):
    """Another emulator process is serving this location."""


class PortInUse(LocationError):
    """The port an emulator should listen on is taken by another program."""


# -- folders and private files -------------------------------------------------------------------


def resolve(path: str | os.PathLike[str]) -> Path:
    """``path`` absolute, with ``~`` expanded: how every location is named."""
    return Path(path).expanduser().resolve()


def chatnb_home() -> Path:
    """``$CHATNB_HOME`` (``~`` expanded; empty counts as unset), else ``~/.chatnb``."""
    return resolve(os.environ.get(HOME_ENV, "").strip() or "~/.chatnb")


def default_location() -> Path:
    """``$CHATNB_HOME/emulator``, else ``~/.chatnb/emulator``: read now, so a changed variable counts."""
    return chatnb_home() / "emulator"


def registry_dir() -> Path:
    """The registry of running emulators: ``~/.chatnb/run``, one per user and machine."""
    return Path.home() / ".chatnb" / "run"


def in_memory_dir() -> Path:
    """Where in-memory emulators keep the certificate they share: ``~/.chatnb/in-memory``."""
    return Path.home() / ".chatnb" / "in-memory"


def private_dir(path: Path) -> Path:
    """``path`` as a folder, created with its missing parents 0700 (an existing one is narrowed to 0700).

    Raises:
        LocationError: if it, or a parent, is a file, or it cannot be created.
    """
    missing, probe = [], path
    while not probe.is_dir():
        if probe.exists() or probe.is_symlink():
            if probe.is_dir():  # another process made it meanwhile
                break
            raise LocationError(f"{probe} is a file, not a folder")
        missing.append(probe)
        probe = probe.parent
    for folder in reversed(missing):
        try:
            os.mkdir(folder, 0o700)
        except FileExistsError:
            if not folder.is_dir():
                raise LocationError(f"{folder} is a file, not a folder") from None
        except OSError as exc:
            raise LocationError(f"cannot create the folder {folder}: {exc.strerror or exc}") from None
    with contextlib.suppress(OSError):
        if path.stat().st_mode & 0o077 and path.stat().st_uid == os.getuid():
            os.chmod(path, 0o700)
    return path


def write_private(path: Path, text: str) -> None:
    """Replace ``path`` by ``text`` at once, 0600 from creation; a failure leaves no temporary file.

    Raises:
        LocationError: if the folder is read-only or full.
    """
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise LocationError(f"cannot write in {path.parent}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise LocationError(f"cannot write {path}: {exc.strerror or exc}") from None
        raise


def open_private(path: Path, flags: int) -> int:
    """A descriptor of ``path``, created 0600 if missing (one an older chatnb made wider is narrowed).

    Raises:
        LocationError: if it cannot be opened or created.
    """
    try:
        fd = os.open(path, flags | os.O_CREAT, 0o600)
    except OSError as exc:
        raise LocationError(f"cannot open {path}: {exc.strerror or exc}") from None
    with contextlib.suppress(OSError):
        if os.fstat(fd).st_mode & 0o077:
            os.fchmod(fd, 0o600)
    return fd


def _read_json(path: Path, what: str) -> Info | None:
    """The JSON object in ``path``, ``None`` if there is no file; anything else is refused, not replaced."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise LocationError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise LocationError(
            f"{path} is not a valid {what}: repair it or move it away (chatnb never overwrites it)"
        )
    return value


def read_quiet(path: Path) -> Info | None:
    with contextlib.suppress(LocationError):
        return _read_json(path, "announcement")
    return None


# -- identity, lock and announcements ---------------------------------------------------------------


@dataclass(frozen=True)
class Identity:
    """What makes a location's connection string the same on every start."""

    access_key: str = field(repr=False)
    resource_id: str
    port: int | None = None


def _check_key(access_key: str, where: str) -> None:
    try:
        raw = base64.b64decode(access_key, validate=True)
    except ValueError:
        raise ValueError(f"{where} must be base64") from None
    if len(raw) < 16:
        raise ValueError(f"{where} must decode to at least 16 bytes")


def load_identity(location: Path | None, access_key: str | None = None) -> Identity:
    """The identity of ``location`` (a new one in memory for ``None``), saved there when new or changed.

    Raises:
        ValueError: for an access key that is not base64 of at least 16 bytes.
        LocationError: if ``emulator.json`` is corrupt or cannot be written.
    """
    if access_key is not None:
        _check_key(access_key, "access_key")
    path = None if location is None else location / CONFIG_NAME
    saved = (None if path is None else _read_json(path, "emulator configuration")) or {}
    port = saved.get("port")
    identity = Identity(
        access_key or str(saved.get("accessKey") or "") or base64.b64encode(secrets.token_bytes(32)).decode(),
        str(saved.get("resourceId") or uuid.uuid4()),
        port if isinstance(port, int) and not isinstance(port, bool) and 0 < port < 65536 else None,
    )
    if path is not None:
        _check_key(identity.access_key, f"the access key in {path}")
        _save_identity(path, identity, saved)
    return identity


def _save_identity(path: Path, identity: Identity, saved: Info) -> None:
    config: Info = {"accessKey": identity.access_key, "resourceId": identity.resource_id}
    if identity.port is not None:
        config["port"] = identity.port
    if config != saved:
        write_private(path, json.dumps(config, indent=2))


def save_port(location: Path, port: int) -> None:
    """Make ``port`` the location's port, which every later start reuses."""
    identity = load_identity(location)
    if identity.port != port:
        _save_identity(location / CONFIG_NAME, Identity(identity.access_key, identity.resource_id, port), {})


def lock(location: Path) -> int:
    """Take the location's lock (a descriptor to close when done).

    Raises:
        LocationInUse: if another emulator serves it.
    """
    fd = open_private(location / LOCK_NAME, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        info = read_server_info(location) or {}
        raise LocationInUse(
            f"another emulator is serving {location} (pid {info.get('pid', '?')}, endpoint "
            f"{info.get('endpoint', '?')}); `chatnb stop --location {location}` stops it"
        ) from None
    return fd


def read_server_info(location: Path) -> Info | None:
    """What an emulator announced in ``location/server.json``, if anything (it may have died since)."""
    return read_quiet(Path(location) / SERVER_INFO_NAME)


def new_temporary() -> Path:
    """A new private location in the system's temporary folder, removed when its emulator stops."""
    location = Path(tempfile.mkdtemp(prefix="chatnb-temporary-"))
    os.close(open_private(location / TEMPORARY_MARK, os.O_WRONLY))
    return location


def remove_if_temporary(location: Path | None) -> None:
    """Remove ``location`` if :func:`new_temporary` made it."""
    if location is not None and (location / TEMPORARY_MARK).is_file():
        shutil.rmtree(location, ignore_errors=True)


def _users_in(path: Path) -> dict[str, str]:
    users = (_read_json(path, "chatnb users file") or {}).get("users", {})
    if not isinstance(users, dict) or not all(isinstance(v, str) for v in users.values()):
        raise LocationError(f"{path} is not a valid chatnb users file: repair it or move it away")
    return users


def read_users(folder: Path) -> dict[str, str]:
    """The named users kept in ``folder/users.json`` (name -> ACS id).

    Raises:
        LocationError: if the file is not one chatnb wrote.
    """
    return _users_in(Path(folder) / USERS_NAME)


@contextlib.contextmanager
def named_users(folder: Path) -> Iterator[dict[str, str]]:
    """The named users kept in ``folder/users.json``, locked against other processes; changes are saved.

    Raises:
        LocationError: if the file is not one chatnb wrote (it is refused, never replaced).
    """
    path = private_dir(folder) / USERS_NAME
    lock_fd = open_private(folder / (USERS_NAME + ".lock"), os.O_RDWR)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX)
        users = _users_in(path)
        before = dict(users)
        yield users
        if users != before:
            write_private(path, json.dumps({"users": users}, indent=2, ensure_ascii=False))
    finally:
        os.close(lock_fd)
