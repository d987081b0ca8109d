"""Process supervision: starting a detached ``chatnb serve``, leases, and stopping.

A :class:`Lease` is a file in ``leases/`` that its session keeps locked (``flock``, shared); a lock goes
with the process that held it, so a crashed kernel's lease ends by itself. ``chatnb serve --idle-timeout``
(:func:`watch_leases`) stops once no lease has been held for that long; before it stops it closes a gate
that new leases pass, so a session never takes a lease on an emulator that is going away.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from .files import (
    DEFAULT_IDLE_TIMEOUT,
    LEASES_NAME,
    LOG_NAME,
    SERVER_INFO_NAME,
    Info,
    LocationError,
    open_private,
    private_dir,
    read_quiet,
    read_server_info,
    remove_if_temporary,
)
from .registry import alive, answers, entry_path, live_emulator, pid_alive, running

__all__ = [
    "Lease",
    "count_leases",
    "spawn",
    "stop",
    "stop_all",
    "stop_announced",
    "wait_gone",
    "watch_leases",
]

_GATE = ".gate"


# -- supervision -----------------------------------------------------------------------------------


def _is_serve(pid: int) -> bool:
    """Whether ``pid`` runs ``chatnb serve`` (where ``/proc`` can tell)."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return not Path("/proc").is_dir()
    return b"serve" in command and any(os.path.basename(part) == b"chatnb" for part in command)


def wait_gone(pid: int, timeout: float) -> bool:
    """Wait at most ``timeout`` seconds for ``pid`` to end; ``True`` once it has (zombies have ended)."""
    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        deadline = time.monotonic() + timeout
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        return not pid_alive(pid)
    try:
        return bool(select.select([fd], [], [], timeout)[0]) or not pid_alive(pid)
    finally:
        os.close(fd)


def spawn(
    location: Path, *, timeout: float = 30.0, idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT
) -> tuple[Info, subprocess.Popen[bytes] | None]:
    """Start ``python -m chatnb serve`` on ``location``, detached, logging to ``emulator.log``, and wait
    until it answers; the process is ``None`` if another one won the race to start there.

    Raises:
        LocationError: if it could not start (the message has its last line); TimeoutError if it is slow.
    """
    log_path = private_dir(location) / LOG_NAME
    command = [sys.executable, "-m", "chatnb", "serve", "--location", str(location)]
    if idle_timeout is not None:
        command += ["--idle-timeout", str(idle_timeout)]
    log = open_private(log_path, os.O_WRONLY | os.O_APPEND)
    try:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True, close_fds=True
        )
    finally:
        os.close(log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = read_server_info(location)
        if info and info.get("pid") == process.pid and answers(info):
            threading.Thread(target=process.wait, name="chatnb-reaper", daemon=True).start()
            return info, process
        if process.poll() is not None:  # lost a race with another kernel, or failed
            live = live_emulator(location)
            if live is not None:
                return live, None
            last = log_path.read_text(errors="replace").strip().rsplit("\n", 1)[-1]
            if "another emulator is serving" not in last:
                raise LocationError(
                    f"the emulator exited with code {process.returncode}: {last} (see {log_path})"
                )
        time.sleep(0.05)  # it, or the winner of the race, is still starting
    if process.poll() is None:
        process.terminate()
        process.wait(10)
    raise TimeoutError(
        f"the emulator did not announce itself in {location} within {timeout:.0f} s; see {log_path}"
    )


def _clear(info: Info) -> None:
    """Remove what a stopped emulator left: its announcements, and its location if temporary."""
    location = Path(info["location"]) if info.get("location") else None
    for path in [entry_path(str(info.get("endpoint", "")))] + (
        [location / SERVER_INFO_NAME] if location else []
    ):
        left = read_quiet(path)
        if left is not None and left.get("pid") == info.get("pid"):
            path.unlink(missing_ok=True)
    remove_if_temporary(location)


def stop(info: Info | None, *, timeout: float = 10.0) -> bool:
    """Stop the ``chatnb serve`` process that announced ``info``, for every session; ``True`` if one was.

    SIGTERM (a clean shutdown), then SIGKILL after ``timeout`` seconds. A pid that is no longer that
    process (ended, reused, or not ``chatnb serve``) is left alone.
    """
    if info is None or not alive(info) or not _is_serve(info["pid"]):
        return False
    pid = info["pid"]
    try:
        os.kill(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return False
    if not wait_gone(pid, timeout):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        wait_gone(pid, 5.0)
    _clear(info)
    return True


def stop_announced(location: Path, *, timeout: float = 10.0) -> bool:
    """Stop the ``chatnb serve`` process announced in ``location/server.json``; ``True`` if one was."""
    return stop(read_server_info(location), timeout=timeout)


def stop_all(under: Path | None = None, *, timeout: float = 10.0) -> list[Info]:
    """Stop every running ``chatnb serve`` (only those whose location is in ``under``, if given)."""
    folder = None if under is None else Path(under).resolve()
    chosen = [
        info
        for info in running()
        if folder is None or (info.get("location") and Path(info["location"]).is_relative_to(folder))
    ]
    return [info for info in chosen if stop(info, timeout=timeout)]


# -- leases and users ------------------------------------------------------------------------------


class Lease:
    """A session's claim on a location's emulator: ``leases/<pid>-<n>.lease``, locked while it lives.

    >>> with Lease(location): ...            # the emulator stays while this is held
    """

    def __init__(self, location: Path, *, timeout: float = 30.0) -> None:
        folder = private_dir(location / LEASES_NAME)
        gate = open_private(folder / _GATE, os.O_RDWR)
        try:  # an emulator that decided to stop holds the gate until it has exited
            _flock(gate, fcntl.LOCK_SH, timeout)
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=".", suffix=".new")
            try:  # locked before it gets its name, so that no watcher ever sees it unlocked
                fcntl.flock(fd, fcntl.LOCK_SH)
                path = folder / f"{os.getpid()}-{secrets.token_hex(4)}.lease"
                os.rename(tmp, path)
            except BaseException:
                os.close(fd)
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        except OSError as exc:
            raise LocationError(f"cannot take a lease in {folder}: {exc.strerror or exc}") from None
        finally:
            os.close(gate)
        self.path: Path | None = path
        self._fd: int | None = fd

    def release(self) -> None:
        """Give the claim up (idempotent)."""
        path, fd, self.path, self._fd = self.path, self._fd, None, None
        if path is not None:
            path.unlink(missing_ok=True)
        if fd is not None:
            os.close(fd)

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _flock(fd: int, kind: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, kind | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise TimeoutError("the emulator did not finish stopping; try again") from None
            time.sleep(0.05)


def count_leases(location: Path) -> int:
    """How many sessions hold a lease on ``location`` (the leases of ended processes are removed)."""
    held = 0
    for path in (location / LEASES_NAME).glob("*.lease"):
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            path.unlink(missing_ok=True)  # its holder is gone
        except BlockingIOError:
            held += 1
        finally:
            os.close(fd)
    return held


def watch_leases(location: Path, idle_timeout: float, on_idle: Callable[[], None]) -> threading.Thread:
    """Call ``on_idle`` once no lease has been held on ``location`` for ``idle_timeout`` seconds.

    Before it does, it closes the gate new leases pass, and keeps it closed until this process exits.
    """

    def watch() -> None:
        idle_since = time.monotonic()
        while True:
            time.sleep(0.25 if idle_timeout < 5 else 1.0)
            if not location.is_dir():  # removed under it: no session can come back to it
                break
            if count_leases(location):
                idle_since = time.monotonic()
            elif time.monotonic() - idle_since >= idle_timeout and _close_gate(location):
                break
        on_idle()

    thread = threading.Thread(target=watch, name="chatnb-leases", daemon=True)
    thread.start()
    return thread


def _close_gate(location: Path) -> bool:
    try:
        gate = open_private(private_dir(location / LEASES_NAME) / _GATE, os.O_RDWR)
    except LocationError:  # the location went away meanwhile
        return True
    try:
        fcntl.flock(gate, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:  # a session is taking a lease right now
        os.close(gate)
        return False
    if count_leases(location):
        os.close(gate)
        return False
    return True  # the descriptor stays open: the gate opens when this process ends
