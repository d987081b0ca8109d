"""``chatnb serve``: the embedded ACS emulator from the command line, its options and its banner.

Examples::

    chatnb serve                                          # the default location, HTTPS on its port
    chatnb serve --in-memory --port 0 --clock manual      # a fresh emulator whose clock you move
    chatnb serve --event-grid 'http://127.0.0.1:8123/,types=ChatMessageReceived+ChatThreadCreated'
    chatnb serve --oauth basic                            # the Identity API also takes Entra ID tokens
    chatnb serve --list-operations                        # what it implements (Markdown), then exit

A mistake is one line on stderr and exit code 2; another emulator serving the location is exit code 1.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import TYPE_CHECKING, Any

from . import location as _location

if TYPE_CHECKING:
    from .emulator.limits import FaultPlan

__all__ = ["ACCESS_KEY_ENV", "add_serve_parser", "fail", "fault_plan", "port_number", "seconds"]

ACCESS_KEY_ENV = "CHATNB_ACCESS_KEY"


def fail(command: str, message: object, code: int = 2) -> int:
    print(f"chatnb {command}: {message}", file=sys.stderr)
    return code


def port_number(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a port (0-65535)")
    return value


def seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds")
    return value


def fault_plan(args: argparse.Namespace) -> FaultPlan | None:
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


def _number(text: str, *, positive: bool = False) -> float:
    """An argparse type: a number, 0 or more (above 0 when ``positive``)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (value > 0 if positive else value >= 0):
        raise argparse.ArgumentTypeError(f"must be {'above 0' if positive else '0 or more'}, not {text}")
    return value


def _non_negative(text: str) -> float:
    return _number(text)


def _positive(text: str) -> float:
    return _number(text, positive=True)


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
    if emu.clock.manual:
        print("  clock:              manual (stands still; move it: POST /chatnb/clock/:advance)")
    if emu.state.oauth:
        print(
            "  Entra ID:           --oauth basic (bearer tokens on the Identity API; signature NOT checked)"
        )
    if emu.state.loose:
        print("  api-version:        --loose (any version accepted)")
    for sub in emu.event_grid.subscriptions():
        types = len(sub["eventTypes"])
        print(
            f"  Event Grid:         {sub['endpoint']} ({sub['name']}, {sub['schema']}, {types} event types, "
            f"{sub['provisioningState']})"
        )
    if emu.event_grid.subscriptions() and emu.event_grid.dead_letter_dir is not None:
        print(f"  dead letters:       {emu.event_grid.dead_letter_dir}")
    print("  press Ctrl-C to stop", flush=True)


def _serve(args: argparse.Namespace) -> int:
    import signal
    import sqlite3

    from .emulator import Emulator
    from .emulator.app import routes
    from .emulator.coverage import api_versions_table, operations_table

    if args.list_operations:
        print(api_versions_table() + "\n\n" + operations_table(routes()))
        return 0
    if args.debug:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if (args.cert is None) != (args.key is None):
        return fail("serve", "--cert and --key go together")
    if args.idle_timeout is not None and args.in_memory:
        return fail("serve", "--idle-timeout needs a location (leases are kept there), not --in-memory")
    location = None if args.in_memory else _location.resolve(args.location or _location.default_location())
    emu = None
    try:
        faults = fault_plan(args)
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
            clock=args.clock,
            event_grid=args.event_grid or (),
            event_grid_retry_scale=args.event_grid_retry_scale,
            dead_letter_dir=args.dead_letter,
            oauth=args.oauth,
            loose=args.loose,
        )

        def ready() -> None:
            _banner(emu, args)
            if location is not None and args.idle_timeout is not None:
                _location.watch_leases(
                    location, args.idle_timeout, lambda: os.kill(os.getpid(), signal.SIGTERM)
                )

        emu.serve_forever(ready)
    except _location.LocationInUse as exc:
        return fail("serve", exc, 1)
    except (_location.LocationError, ValueError) as exc:
        return fail("serve", exc)
    except (OSError, sqlite3.Error) as exc:  # the location's files, e.g. a read-only or full disk
        return fail("serve", f"cannot use {location or 'the emulator'}: {exc}")
    finally:
        _location.remove_if_temporary(location if emu is not None else None)
    print("chatnb ACS emulator stopped", flush=True)
    return 0


def add_serve_parser(sub: Any) -> None:
    """Add the ``serve`` subcommand to ``chatnb``'s subparsers."""
    serve = sub.add_parser("serve", help="run the embedded ACS emulator until interrupted")
    serve.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: 127.0.0.1)")
    serve.add_argument(
        "--port",
        type=port_number,
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
    serve.add_argument(
        "--http-port", type=port_number, default=0, help="port of --http (default: 0, a free one)"
    )
    serve.add_argument(
        "--idle-timeout",
        type=seconds,
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
    service = serve.add_argument_group("service features (Event Grid, the clock, Entra ID, API versions)")
    service.add_argument(
        "--event-grid",
        action="append",
        metavar="SPEC",
        help="deliver chat events to this webhook as Event Grid does (repeatable): URL[,types=A+B]"
        "[,schema=cloudevents][,name=N][,batch=N][,batch-kb=K][,attempts=N][,ttl=MIN]",
    )
    service.add_argument(
        "--event-grid-retry-scale",
        type=_positive,
        default=1.0,
        metavar="F",
        help="multiply Event Grid's retry waits (10 s, 30 s, 1 min...), time to live and dead-letter "
        "delay by F (default 1; 0.001 for tests)",
    )
    service.add_argument(
        "--dead-letter",
        metavar="DIR",
        help="where undeliverable Event Grid events go (default: the location's deadletter/; in memory: "
        "dropped and counted)",
    )
    service.add_argument(
        "--clock",
        choices=("system", "manual"),
        default="system",
        help="system (default), or manual: stands still until POST /chatnb/clock/:advance moves it",
    )
    service.add_argument(
        "--oauth",
        choices=("basic",),
        help="basic: the Identity API also accepts Entra ID bearer tokens (audience, issuer and expiry "
        "checked, signature NOT checked; HTTPS only)",
    )
    service.add_argument("--loose", action="store_true", help="accept any api-version instead of 400")
    service.add_argument(
        "--list-operations",
        action="store_true",
        help="print the API versions and operations the emulator implements (Markdown) and exit",
    )
    serve.set_defaults(func=_serve)
