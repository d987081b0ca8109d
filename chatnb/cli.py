"""The ``chatnb`` command: ``serve`` runs the emulator; ``status``, ``stop``, ``connection-string`` and
``users`` look after running ones; ``export`` exports chat history.

Mistakes get one line on stderr and exit code 2; ``serve`` exits 1 when another emulator serves the
location.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from . import __version__
from . import location as _location
from ._serve_cli import add_serve_parser, fail, fault_plan, port_number, seconds

__all__ = ["main"]

Command = Callable[[argparse.Namespace], int]
_fault_plan = fault_plan  # tests read the --faults* parsing here


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error said in one line (and exit code 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _location_arg(args: argparse.Namespace) -> Path:
    return _location.resolve(args.location) if args.location else _location.default_location()


def _uptime(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def _status(args: argparse.Namespace) -> int:
    rows = []
    for info in _location.running():
        where = Path(info["location"]) if info.get("location") else None
        try:
            users = len(_location.read_users(where)) if where else None
        except _location.LocationError:
            users = None
        rows.append(
            {
                "location": str(where) if where else "in memory",
                "endpoint": info["endpoint"],
                "pid": info["pid"],
                "uptime_s": round(time.time() - float(info.get("started") or time.time()), 1),
                "sessions": _location.count_leases(where) if where else None,
                "users": users,
                "ca_cert": info.get("ca_cert"),
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
    elif not rows:
        print("no chatnb emulator is running (start one: chatnb serve, or chatnb.connect() in Python)")
    else:
        print(f"{'LOCATION':<40} {'ENDPOINT':<26} {'PID':>7} {'UPTIME':>7} {'SESSIONS':>8} {'USERS':>5}")
        for row in rows:
            counts = ["-" if row[k] is None else str(row[k]) for k in ("sessions", "users")]
            print(
                f"{row['location']:<40} {row['endpoint']:<26} {row['pid']:>7} "
                f"{_uptime(row['uptime_s']):>7} {counts[0]:>8} {counts[1]:>5}"
            )
    return 0


def _stop(args: argparse.Namespace) -> int:
    if args.all:
        stopped = _location.stop_all(timeout=args.timeout)
        for info in stopped:
            where = info.get("location") or "in memory"
            print(f"stopped the emulator at {info['endpoint']} (pid {info['pid']}, {where})")
        if not stopped:
            print("no chatnb emulator is running")
        return 0
    folder = _location_arg(args)
    announced = _location.read_server_info(folder)
    if announced is not None and _location.stop(announced, timeout=args.timeout):
        print(f"stopped the emulator of {folder} (pid {announced['pid']}, {announced['endpoint']})")
    else:
        print(f"no emulator is running at {folder}")
    return 0


def _connection_string(args: argparse.Namespace) -> int:
    if args.port is not None:
        found = [i for i in _location.running() if str(i["endpoint"]).rstrip("/").endswith(f":{args.port}")]
        if not found:
            return fail(
                "connection-string", f"no chatnb emulator is running on port {args.port} (see chatnb status)"
            )
        print(found[0]["connection_string"])
        return 0
    where = _location_arg(args)
    info = _location.live_emulator(where) if where.is_dir() else None
    if info is not None:
        print(info["connection_string"])
        return 0
    config = where / _location.CONFIG_NAME
    try:
        identity = _location.load_identity(where) if config.is_file() else None
    except (_location.LocationError, ValueError) as exc:
        return fail("connection-string", exc)
    if identity is None or identity.port is None:
        return fail(
            "connection-string",
            f"no emulator has served {where} yet: start one with chatnb serve --location {where}",
        )
    print(f"endpoint=https://127.0.0.1:{identity.port}/;accesskey={identity.access_key}")
    return 0


def _users(args: argparse.Namespace) -> int:
    where = _location_arg(args)
    try:
        users = _location.read_users(where)
    except _location.LocationError as exc:
        return fail("users", exc)
    if args.json:
        print(json.dumps(users, indent=2, ensure_ascii=False))
    elif not users:
        print(f'no named users at {where} (session.user("Name") makes one)')
    else:
        width = max(len(name) for name in users)
        for name, user_id in sorted(users.items()):
            print(f"{name:<{width}}  {user_id}")
    return 0


def _add_location(parser: argparse.ArgumentParser, *, all_flag: bool = False) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--location", metavar="DIR", help=f"the emulator's folder (default: {_location.default_location()})"
    )
    if all_flag:
        group.add_argument("--all", action="store_true", help="every running chatnb emulator of yours")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="chatnb",
        description="The embedded ACS emulator (serve; status, stop, connection-string and users look after "
        "running ones) and chat history export. Mistakes get one line on stderr and exit code 2.",
    )
    parser.add_argument("--version", action="version", version=f"chatnb {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    add_serve_parser(sub)

    status = sub.add_parser("status", help="list the running emulators: location, endpoint, pid, uptime")
    status.add_argument("--json", action="store_true", help="as JSON")
    status.set_defaults(func=_status)
    stop = sub.add_parser("stop", help="stop an emulator, for every session using it")
    _add_location(stop, all_flag=True)
    stop.add_argument("--timeout", type=seconds, default=10.0, help="seconds before SIGKILL (default: 10)")
    stop.set_defaults(func=_stop)
    cs = sub.add_parser("connection-string", help="print a location's connection string (it holds the key)")
    where_cs = cs.add_mutually_exclusive_group()
    where_cs.add_argument("--location", metavar="DIR", help=f"default: {_location.default_location()}")
    where_cs.add_argument(
        "--port", type=port_number, help="the running emulator on this port (in memory too)"
    )
    cs.set_defaults(func=_connection_string)
    users = sub.add_parser("users", help="list a location's named users")
    _add_location(users)
    users.add_argument("--json", action="store_true", help="as JSON")
    users.set_defaults(func=_users)
    from .export._cli import add_export_parser

    add_export_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    func: Command = args.func
    return func(args)


if __name__ == "__main__":
    sys.exit(main())
