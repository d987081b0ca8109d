"""The ``chatnb`` command: ``serve`` runs the emulator; ``status``, ``stop``, ``connection-string`` and
``users`` look after running ones; ``export`` exports chat history.

Mistakes get one line on stderr and exit code 2; ``serve`` exits 1 when another emulator serves the
location.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from . import __version__
from . import location as _location

if TYPE_CHECKING:
    from .emulator.limits import FaultPlan

__all__ = ["main"]

Command = Callable[[argparse.Namespace], int]
ACCESS_KEY_ENV = "CHATNB_ACCESS_KEY"


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error said in one line (and exit code 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _fail(command: str, message: object, code: int = 2) -> int:
    print(f"chatnb {command}: {message}", file=sys.stderr)
    return code


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a port (0-65535)")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds")
    return value


def _fault_plan(args: argparse.Namespace) -> FaultPlan | None:
    """The ``FaultPlan`` of the ``--faults*`` options, or ``None`` when faults are off."""
    from .emulator.limits import FaultPlan

    if not args.faults:
        return None
    try:
        statuses = tuple(int(s) for s in args.fault_statuses.split(",") if s.strip())
    except ValueError:
        raise ValueError(
            f"--fault-statuses must be a comma-separated list, not {args.fault_statuses!r}"
        ) from None
    return FaultPlan(
        rate=args.faults,
        statuses=statuses,
        delay=args.fault_delay_ms / 1000,
        retry_after=args.fault_retry_after,
        seed=args.fault_seed,
    )


def _non_negative(text: str) -> float:
    """An argparse type: a number of milliseconds, 0 or more."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {text}")
    return value


def _access_key(value: str | None) -> str | None:
    """``--access-key``: the key itself, ``-`` to read it from stdin, or unset for ``$CHATNB_ACCESS_KEY``."""
    if value == "-":
        value = sys.stdin.readline().strip()
        if not value:
            raise ValueError("--access-key -: stdin gave no key")
    return value or os.environ.get(ACCESS_KEY_ENV) or None


def _banner(emu: Any, args: argparse.Namespace) -> None:
    """What ``serve`` prints once ready. The access key only goes to a terminal, never to a log."""
    where = f"--location {emu.location}" if emu.location else f"--port {emu.port}"
    shown = emu.connection_string
    if not sys.stdout.isatty():
        shown = shown.split("accesskey=")[0] + f"accesskey=<not logged: chatnb connection-string {where}>"
    print("chatnb ACS emulator", flush=True)
    print(f"  storage:            {emu.location or 'in memory'}")
    print(f"  connection string:  {shown}")
    print(f"  certificate (PEM):  {emu.ca_cert}   (trust it: connection_verify=<this path>)")
    if emu.http_endpoint:
        print(f"  plain HTTP:         {emu.http_endpoint}")
    if args.idle_timeout is not None:
        print(f"  stops when unused:  after {args.idle_timeout:g} s without a chatnb.connect() session")
    if emu.rate_limiter is not None:
        print("  rate limits:        on (the real service's documented limits; 429 + Retry-After)")
    if emu.fault_injector is not None:
        plan = emu.fault_injector.plan
        statuses = ",".join(map(str, plan.statuses)) or "none"
        print(
            f"  fault injection:    {plan.rate:.0%} of requests (statuses {statuses}, "
            f"delay {plan.delay * 1000:.0f} ms, seed {plan.seed})"
        )
    if emu.latency_ms or emu.latency_jitter_ms:
        print(f"  simulated latency:  {emu.latency_ms:g} ms + up to {emu.latency_jitter_ms:g} ms jitter")
    print("  press Ctrl-C to stop", flush=True)


def _serve(args: argparse.Namespace) -> int:
    import signal
    import sqlite3

    from .emulator import Emulator

    if args.debug:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if (args.cert is None) != (args.key is None):
        return _fail("serve", "--cert and --key go together")
    if args.idle_timeout is not None and args.in_memory:
        return _fail("serve", "--idle-timeout needs a location (leases are kept there), not --in-memory")
    location = None if args.in_memory else _location.resolve(args.location or _location.default_location())
    emu = None
    try:
        faults = _fault_plan(args)
        emu = Emulator(
            location,
            host=args.host,
            port=args.port,
            access_key=_access_key(args.access_key),
            cert=args.cert,
            key=args.key,
            http_port=args.http_port if args.http else None,
            debug=args.debug,
            rate_limits=args.rate_limits,
            faults=faults,
            latency_ms=args.latency_ms,
            latency_jitter_ms=args.latency_jitter_ms,
        )

        def ready() -> None:
            _banner(emu, args)
            if location is not None and args.idle_timeout is not None:
                _location.watch_leases(
                    location, args.idle_timeout, lambda: os.kill(os.getpid(), signal.SIGTERM)
                )

        emu.serve_forever(ready)
    except _location.LocationInUse as exc:
        return _fail("serve", exc, 1)
    except (_location.LocationError, ValueError) as exc:
        return _fail("serve", exc)
    except (OSError, sqlite3.Error) as exc:  # the location's files, e.g. a read-only or full disk
        return _fail("serve", f"cannot use {location or 'the emulator'}: {exc}")
    finally:
        _location.remove_if_temporary(location if emu is not None else None)
    print("chatnb ACS emulator stopped", flush=True)
    return 0


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
            return _fail(
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
        return _fail("connection-string", exc)
    if identity is None or identity.port is None:
        return _fail(
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
        return _fail("users", exc)
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
    serve = sub.add_parser("serve", help="run the embedded ACS emulator until interrupted")
    serve.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: 127.0.0.1)")
    serve.add_argument(
        "--port",
        type=_port,
        help="HTTPS port (default: the location's own, a free one chosen the first time and kept; "
        "in memory: a free one); 0 picks a free one",
    )
    where = serve.add_mutually_exclusive_group()
    where.add_argument(
        "--location",
        metavar="DIR",
        help="where data, key and certificate live "
        f"(default: $CHATNB_HOME/emulator, here {_location.default_location()})",
    )
    where.add_argument("--in-memory", action="store_true", help="keep nothing after exit")
    serve.add_argument(
        "--access-key",
        metavar="BASE64",
        help=f"the resource access key; '-' reads it from stdin (default: ${ACCESS_KEY_ENV}, else the "
        "location's own, else a new random one)",
    )
    serve.add_argument(
        "--cert", metavar="PEM", help="TLS certificate (with --key; default: a self-signed one)"
    )
    serve.add_argument("--key", metavar="PEM", help="TLS private key (with --cert)")
    serve.add_argument("--http", action="store_true", help="also listen for plain HTTP")
    serve.add_argument("--http-port", type=_port, default=0, help="port of --http (default: 0, a free one)")
    serve.add_argument(
        "--idle-timeout",
        type=_seconds,
        metavar="S",
        help="stop once no chatnb.connect() session has used the location for S seconds (default: never; "
        f"emulators connect() starts use {_location.DEFAULT_IDLE_TIMEOUT:g})",
    )
    serve.add_argument("--debug", action="store_true", help="log every request")
    limits = serve.add_argument_group(
        "throttling and fault injection (off by default; for testing clients against a difficult service)"
    )
    limits.add_argument(
        "--rate-limits",
        action="store_true",
        help="enforce the real service's documented rate limits: 429 with Retry-After when exceeded",
    )
    limits.add_argument(
        "--latency-ms",
        type=_non_negative,
        default=0.0,
        metavar="N",
        help="simulated distance: every request's round trip takes N ms more (default 0)",
    )
    limits.add_argument(
        "--latency-jitter-ms",
        type=_non_negative,
        default=0.0,
        metavar="J",
        help="and a random 0..J ms more on top (default 0)",
    )
    limits.add_argument(
        "--faults",
        type=float,
        default=0.0,
        metavar="SHARE",
        help="answer this share (0-1) of Chat/Identity/event-stream requests with an injected fault",
    )
    limits.add_argument(
        "--fault-statuses",
        default="429,503",
        metavar="LIST",
        help="statuses of injected errors, comma-separated (default 429,503; empty for delays only)",
    )
    limits.add_argument(
        "--fault-delay-ms",
        type=int,
        default=0,
        metavar="N",
        help="also inject delays of N ms (then served normally), as likely as each status",
    )
    limits.add_argument(
        "--fault-retry-after",
        type=float,
        default=1.0,
        metavar="S",
        help="largest Retry-After of an injected error in seconds (default 1; each draws 0..S)",
    )
    limits.add_argument("--fault-seed", type=int, metavar="S", help="seed, to replay the same faults")
    serve.set_defaults(func=_serve)

    status = sub.add_parser("status", help="list the running emulators: location, endpoint, pid, uptime")
    status.add_argument("--json", action="store_true", help="as JSON")
    status.set_defaults(func=_status)
    stop = sub.add_parser("stop", help="stop an emulator, for every session using it")
    _add_location(stop, all_flag=True)
    stop.add_argument("--timeout", type=_seconds, default=10.0, help="seconds before SIGKILL (default: 10)")
    stop.set_defaults(func=_stop)
    cs = sub.add_parser("connection-string", help="print a location's connection string (it holds the key)")
    where_cs = cs.add_mutually_exclusive_group()
    where_cs.add_argument("--location", metavar="DIR", help=f"default: {_location.default_location()}")
    where_cs.add_argument("--port", type=_port, help="the running emulator on this port (in memory too)")
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
