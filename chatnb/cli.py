"""The ``chatnb`` command: ``chatnb serve`` runs the emulator, ``chatnb export`` exports chat history."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .emulator.limits import FaultPlan

__all__ = ["main"]

Command = Callable[[argparse.Namespace], int]


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


def _serve(args: argparse.Namespace) -> int:
    from .emulator import DEFAULT_LOCATION, Emulator, LocationInUse

    if args.debug:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if (args.cert is None) != (args.key is None):
        print("chatnb serve: --cert and --key go together", file=sys.stderr)
        return 2
    location = None if args.in_memory else (args.location or DEFAULT_LOCATION)
    try:
        faults = _fault_plan(args)
        emu = Emulator(
            location,
            host=args.host,
            port=args.port,
            access_key=args.access_key,
            cert=args.cert,
            key=args.key,
            http_port=args.http_port if args.http else None,
            debug=args.debug,
            rate_limits=args.rate_limits,
            faults=faults,
            latency_ms=args.latency_ms,
            latency_jitter_ms=args.latency_jitter_ms,
        )
    except (LocationInUse, ValueError) as exc:
        print(f"chatnb serve: {exc}", file=sys.stderr)
        return 1

    def ready() -> None:
        print("chatnb ACS emulator", flush=True)
        print(f"  storage:            {emu.location or 'in memory'}")
        print(f"  connection string:  {emu.connection_string}")
        print(f"  certificate (PEM):  {emu.ca_cert}   (trust it: connection_verify=<this path>)")
        if emu.http_endpoint:
            print(f"  plain HTTP:         {emu.http_endpoint}")
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

    def terminate(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
    emu.serve_forever(ready)
    print("chatnb ACS emulator stopped", flush=True)
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="chatnb", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the embedded ACS emulator until interrupted")
    serve.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=0, help="HTTPS port; 0 picks a free one")
    where = serve.add_mutually_exclusive_group()
    where.add_argument("--location", metavar="DIR", help="where data, key and certificate live")
    where.add_argument("--in-memory", action="store_true", help="keep nothing after exit")
    serve.add_argument("--access-key", metavar="BASE64", help="the resource access key")
    serve.add_argument("--cert", metavar="PEM", help="TLS certificate (with --key)")
    serve.add_argument("--key", metavar="PEM", help="TLS private key (with --cert)")
    serve.add_argument("--http", action="store_true", help="also listen for plain HTTP")
    serve.add_argument("--http-port", type=int, default=0, help="port of --http (0: a free one)")
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
    from .export._cli import add_export_parser

    add_export_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    func: Command = args.func
    return func(args)


if __name__ == "__main__":
    sys.exit(main())
