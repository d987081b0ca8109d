"""The ``chatnb`` command: ``chatnb serve`` runs the emulator (later issues add ``chatnb export``)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Callable, Sequence

__all__ = ["main"]

Command = Callable[[argparse.Namespace], int]


def _serve(args: argparse.Namespace) -> int:
    from .emulator import DEFAULT_LOCATION, Emulator, LocationInUse

    if args.debug:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if (args.cert is None) != (args.key is None):
        print("chatnb serve: --cert and --key go together", file=sys.stderr)
        return 2
    location = None if args.in_memory else (args.location or DEFAULT_LOCATION)
    try:
        emu = Emulator(
            location,
            host=args.host,
            port=args.port,
            access_key=args.access_key,
            cert=args.cert,
            key=args.key,
            http_port=args.http_port if args.http else None,
            debug=args.debug,
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
    serve.set_defaults(func=_serve)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    func: Command = args.func
    return func(args)


if __name__ == "__main__":
    sys.exit(main())
