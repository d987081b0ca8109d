"""Where an emulator lives, how it is found, started, trusted and stopped.

A *location* is a folder with one emulator's state. The folder is 0700 and every file 0600 from creation:

- ``emulator.json``: its identity (access key, resource id, port), kept so that its connection string is
  the same on every start;
- ``chatnb.sqlite3`` (and its ``-wal``/``-shm``): the data; ``emulator-cert.pem``/``-key.pem``: its TLS
  certificate and key;
- ``server.json``: what the running emulator announces (pid, endpoint, connection string, certificate);
  gone when it stops;
- ``users.json``: the names of :func:`chatnb.connect`'s users; ``emulator.log``: the output of an
  emulator ``connect()`` started; ``emulator.lock``: held by the emulator serving it (one at a time);
  ``leases/``: one locked file per session using it.

The default location is ``$CHATNB_HOME/emulator``, else ``~/.chatnb/emulator`` (an empty ``CHATNB_HOME``
counts as unset; ``~`` is expanded). The *registry*, ``~/.chatnb/run`` (per user and machine, whatever
``CHATNB_HOME`` says), has an entry for every running emulator, in-memory ones too: chatnb's clients trust
the certificate of any local emulator through it (:func:`trust`), and ``chatnb status`` lists it.
In-memory emulators share one certificate in ``~/.chatnb/in-memory`` (:func:`in_memory_dir`).
:func:`new_temporary` makes a location in the system's temporary folder that goes with its emulator
(``connect(temporary=True)``).

Sharing: ``connect()`` holds a :class:`Lease` on the location (a file locked while the session lives; a
dead kernel's lock goes with it) and ``Session.close()`` releases it. An emulator ``connect()`` started stops
by itself once no lease has been held for ``idle_timeout`` seconds (:data:`DEFAULT_IDLE_TIMEOUT`); one
started with ``chatnb serve`` runs until stopped. Stopping at once, for every session, is explicit:
``chatnb stop`` or ``Session.stop()`` (:func:`stop`).

Its parts: :mod:`.files` (the folders and files, identity, lock, users), :mod:`.registry` (announcing,
finding and trusting running emulators) and :mod:`.processes` (starting, leases, stopping). Nothing here
imports :mod:`chatnb.emulator` or the client; the emulator uses this package for its files.
"""

from .files import (
    CONFIG_NAME,
    DB_NAME,
    DEFAULT_IDLE_TIMEOUT,
    LOG_NAME,
    SERVER_INFO_NAME,
    USERS_NAME,
    Identity,
    LocationError,
    LocationInUse,
    PortInUse,
    chatnb_home,
    default_location,
    in_memory_dir,
    load_identity,
    lock,
    named_users,
    new_temporary,
    open_private,
    private_dir,
    read_server_info,
    read_users,
    registry_dir,
    remove_if_temporary,
    resolve,
    save_port,
    write_private,
)
from .processes import (
    Lease,
    count_leases,
    spawn,
    stop,
    stop_all,
    stop_announced,
    wait_gone,
    watch_leases,
)
from .registry import (
    announce,
    ca_for_endpoint,
    certificate_hint,
    find,
    live_emulator,
    pid_alive,
    running,
    trust,
    withdraw,
)

__all__ = [
    "CONFIG_NAME",
    "DB_NAME",
    "DEFAULT_IDLE_TIMEOUT",
    "LOG_NAME",
    "SERVER_INFO_NAME",
    "USERS_NAME",
    "Identity",
    "Lease",
    "LocationError",
    "LocationInUse",
    "PortInUse",
    "announce",
    "ca_for_endpoint",
    "certificate_hint",
    "chatnb_home",
    "count_leases",
    "default_location",
    "find",
    "in_memory_dir",
    "live_emulator",
    "load_identity",
    "lock",
    "named_users",
    "new_temporary",
    "open_private",
    "pid_alive",
    "private_dir",
    "read_server_info",
    "read_users",
    "registry_dir",
    "remove_if_temporary",
    "resolve",
    "running",
    "save_port",
    "spawn",
    "stop",
    "stop_all",
    "stop_announced",
    "trust",
    "wait_gone",
    "watch_leases",
    "withdraw",
    "write_private",
]
