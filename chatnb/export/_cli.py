"""``chatnb export``: the history export from the command line.

Examples::

    chatnb export --all --out archive/                         # local emulator, user "me"
    chatnb export --thread 19:...@thread.v2 --format csv --since 2024-01-01 --out csv/
    chatnb export --all --incremental --partition-by month --out lake/    # run again: only what's new
    chatnb export --all --format parquet,html --concurrency 16 --pace --out abfs://chat/history
    chatnb compact lake/ --out lake-compact/           # one file per thread, latest version of each message

Connection, first match wins: ``--endpoint`` + ``--token``; ``--connection-string`` (or
``$COMMUNICATION_SERVICES_CONNECTION_STRING``) + ``--token`` (or ``$CHATNB_TOKEN``, or ``--token-stdin``:
one line read from standard input, so the token is not on the command line); a connection string
and ``--user NAME`` (a named user of :func:`chatnb.connect`; the export never creates one); nothing:
the local emulator through :func:`chatnb.connect` and ``--user`` (default ``me``).

Cloud destinations (``--out abfs://container/path``, ``s3://...``; ``pip install 'chatnb[cloud]'``) take
their credentials from the file system's usual environment variables (``AZURE_STORAGE_CONNECTION_STRING``,
``AZURE_STORAGE_ACCOUNT_NAME`` + ``AZURE_STORAGE_ACCOUNT_KEY``...) or ``--storage-option KEY=VALUE``.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

__all__ = ["add_export_parser", "run_compact"]

TOKEN_ENV = "CHATNB_TOKEN"
CONNECTION_STRING_ENV = "COMMUNICATION_SERVICES_CONNECTION_STRING"


def add_export_parser(sub: Any) -> None:
    """Add the ``export`` subcommand to ``chatnb``'s subparsers."""
    p = sub.add_parser(
        "export",
        help="export chat history to Parquet, CSV, JSON Lines or HTML",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--thread", action="append", metavar="ID", help="a thread to export (repeatable)")
    which.add_argument("--all", action="store_true", help="every thread the user is in")
    p.add_argument("--out", default="chatnb-export", metavar="DIR", help="output directory or fsspec URL")
    p.add_argument(
        "--format",
        action="append",
        metavar="FMT",
        help="parquet (default), csv, jsonl, html or markdown; repeat it or give a comma-separated list "
        "for several formats from one listing",
    )
    p.add_argument("--since", metavar="TIME", help="messages created at or after (ISO 8601, UTC if no zone)")
    p.add_argument("--until", metavar="TIME", help="messages created before (ISO 8601)")
    p.add_argument("--min-sequence-id", type=int, metavar="N")
    p.add_argument("--max-sequence-id", type=int, metavar="N")
    p.add_argument("--include-system", action="store_true", help="also topic/participant changes")
    p.add_argument("--include-deleted", action="store_true", help="also messages already deleted")
    p.add_argument("--partition-by", choices=("month",), help="add month=YYYY-MM folders")
    p.add_argument("--incremental", action="store_true", help="only what changed since the last run")
    p.add_argument("--lookback", type=float, default=120.0, metavar="SECONDS", help="default 120")
    p.add_argument("--pace", action="store_true", help="keep within the service's documented rate limits")
    p.add_argument("--concurrency", type=int, default=8, metavar="N", help="threads exported at once (8)")
    p.add_argument(
        "--csv-formulas",
        choices=("escape", "keep"),
        default="escape",
        help="CSV cells starting like a spreadsheet formula get a leading ' (escape, the default) or not",
    )
    p.add_argument(
        "--storage-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an option of the fsspec file system of --out (repeatable)",
    )
    p.add_argument("--page-size", type=int, default=200, metavar="N", help="messages a page (max 200)")
    p.add_argument("--rows-per-file", type=int, default=100_000, metavar="N", help="Parquet part size")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    conn = p.add_argument_group("connection")
    conn.add_argument("--endpoint", help="ACS endpoint (with --token)")
    conn.add_argument("--connection-string", help=f"default ${CONNECTION_STRING_ENV}")
    conn.add_argument("--token", help=f"the user's access token (default ${TOKEN_ENV})")
    conn.add_argument("--token-stdin", action="store_true", help="read the token from standard input")
    conn.add_argument("--user", default="me", help="a named chatnb.connect() user, when no token is given")
    conn.add_argument("--ca-cert", metavar="PEM", help="CA bundle to trust (default: known local emulators)")
    p.set_defaults(func=run_export)
    c = sub.add_parser(
        "compact",
        help="compact an export: one file per thread, the latest version of each message",
        description="Write a compacted copy of an export (chatnb.compact_export): one file per thread "
        "holding the latest version of each message. The export itself is not changed.",
    )
    c.add_argument("path", metavar="EXPORT", help="the export's directory or fsspec URL")
    c.add_argument("--out", required=True, metavar="DIR", help="a new or empty directory (or URL)")
    c.add_argument("--format", choices=("parquet", "csv", "jsonl"), help="default: the export's best one")
    c.add_argument("--drop-deleted", action="store_true", help="leave out messages that were deleted")
    c.add_argument("--storage-option", action="append", default=[], metavar="KEY=VALUE")
    c.set_defaults(func=run_compact)


def _storage_options(pairs: list[str]) -> dict[str, str] | None:
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--storage-option takes KEY=VALUE, not {pair!r}")
        options[key] = value
    return options or None


def _token(args: argparse.Namespace) -> str | None:
    if args.token_stdin:
        if args.token:
            raise ValueError("give --token or --token-stdin, not both")
        line = sys.stdin.readline().strip()
        if not line:
            raise ValueError("--token-stdin read no token from standard input")
        return line
    return args.token or os.environ.get(TOKEN_ENV) or None


def _client(args: argparse.Namespace) -> tuple[Any, Any]:
    """The chat client, and what to close afterwards."""
    from .. import _core
    from ..client import ChatClient

    token = _token(args)
    cs = args.connection_string or os.environ.get(CONNECTION_STRING_ENV) or None
    verify = args.ca_cert
    if args.endpoint:
        if not token:
            raise ValueError(f"--endpoint needs --token (or ${TOKEN_ENV})")
        client = ChatClient(args.endpoint, token, connection_verify=verify)
        return client, client
    if cs and token:
        endpoint, _ = _core.parse_connection_string(cs)
        client = ChatClient(endpoint, token, connection_verify=verify)
        return client, client
    from ..location import read_users
    from ..session import connect

    session = connect(cs) if cs else connect()
    try:
        known = read_users(session.location)
        if args.user not in known:
            names = ", ".join(sorted(known)) or "none yet"
            raise ValueError(
                f"no user named {args.user!r} at {session.location} (named users: {names}); "
                "pass --user NAME, or --token"
            )
        return session.user(args.user).chat_client, session
    except BaseException:
        session.close()
        raise


def run_export(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except KeyboardInterrupt:  # Ctrl-C, wherever it lands
        print(f"chatnb export: interrupted; {_resume_hint(args)}", file=sys.stderr)
        return 130


def _run(args: argparse.Namespace) -> int:
    from ..errors import APIError, ChatError
    from ._common import parse_formats
    from ._result import ExportError
    from ._sync import export_history

    if Path(args.out).expanduser().exists() and not Path(args.out).expanduser().is_dir():
        print(
            f"chatnb export: --out {args.out} is a file; name a folder (it is created if missing)",
            file=sys.stderr,
        )
        return 2
    try:
        options = _storage_options(args.storage_option)
        formats = parse_formats(",".join(args.format or ["parquet"]))
        if args.concurrency < 1:
            raise ValueError("--concurrency must be at least 1")
        client, closer = _client(args)
    except (ValueError, TypeError, ChatError, RuntimeError, TimeoutError) as exc:
        print(f"chatnb export: {exc}", file=sys.stderr)
        return 2
    failed = None
    try:
        result = export_history(
            client,
            args.out,
            threads=None if args.all else args.thread,
            format=formats,
            since=args.since,
            until=args.until,
            min_sequence_id=args.min_sequence_id,
            max_sequence_id=args.max_sequence_id,
            include_system=args.include_system,
            include_deleted=args.include_deleted,
            partition_by=args.partition_by,
            incremental=args.incremental,
            lookback=timedelta(seconds=args.lookback),
            pace=args.pace,
            concurrency=args.concurrency,
            results_per_page=args.page_size,
            rows_per_file=args.rows_per_file,
            csv_formulas=args.csv_formulas,
            storage_options=options,
            progress=not args.no_progress,
        )
    except ExportError as exc:
        result, failed = exc.result, exc.result.failed
    except (ValueError, TypeError) as exc:
        print(f"chatnb export: {exc}", file=sys.stderr)
        return 2
    except APIError as exc:
        if _is_a_mistake(exc):  # the thread id or the credentials: not worth retrying
            print(f"chatnb export: {exc}; {_THREAD_HINT}", file=sys.stderr)
            return 2
        print(f"chatnb export: {exc}; {_resume_hint(args)}", file=sys.stderr)
        return 1
    except ChatError as exc:
        print(f"chatnb export: {exc}; {_resume_hint(args)}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"chatnb export: cannot write {args.out}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    finally:
        closer.close()
    mistakes = [f for f in failed or [] if _is_a_mistake(f.error)]
    if failed and not result.threads and len(mistakes) == len(failed):  # nothing to retry: a usage error
        more = f" (and {len(failed) - 1} more thread(s) like it)" if len(failed) > 1 else ""
        print(f"chatnb export: {failed[0].error}{more}; {_THREAD_HINT}", file=sys.stderr)
        return 2
    print(
        f"exported {result.rows} rows from {len(result.threads)} thread(s) "
        f"({result.pages} pages, {result.elapsed:.1f} s) to {result.out}"
    )
    for t in result.threads:
        print(f"  {t.thread_id}  {t.written:>8} rows  {t.topic}")
    if result.repaired:
        print(f"  {result.repaired} text value(s) held lone surrogates, written with U+FFFD in their place")
    if failed:
        print(f"chatnb export: {len(failed)} thread(s) failed; run again to retry them:", file=sys.stderr)
        for f in failed:
            print(f"  {f}" + (f" ({_THREAD_HINT})" if _is_a_mistake(f.error) else ""), file=sys.stderr)
        return 1
    return 0


_THREAD_HINT = "check the --thread ids and the user (--all exports every thread the user is in)"


def _is_a_mistake(error: BaseException) -> bool:
    """Whether a thread's error is the caller's (a wrong thread id or credentials): retrying won't help."""
    from ..errors import APIError

    return isinstance(error, APIError) and error.status_code in (400, 401, 403, 404)


def run_compact(args: argparse.Namespace) -> int:
    from ._compact import compact_export

    try:
        result = compact_export(
            args.path,
            args.out,
            format=args.format,
            drop_deleted=args.drop_deleted,
            storage_options=_storage_options(args.storage_option),
        )
    except (ValueError, OSError) as exc:
        print(f"chatnb compact: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, ValueError) else 1
    print(f"compacted {result.rows} messages of {len(result.threads)} thread(s) into {result.out}")
    return 0


def _resume_hint(args: argparse.Namespace) -> str:
    if args.incremental:
        return "run the same command again: it resumes where this one stopped"
    return f"{args.out} may be incomplete: run again with --incremental to resume where a run stops"
