"""The event stream's SSE decoder: the bounded one (chatnb/_sse.py) against the one it replaced.

Run: ``.venv/bin/python bench/bench_sse.py [--hostile-mb 32] [--events 20000]``.

Three streams are fed to both decoders in chunks, as ``httpx`` hands them over:

- a hostile line of ``--hostile-mb`` MB without a newline (64 KiB chunks): the bounded decoder refuses it
  after its first MiB (:data:`chatnb._sse.MAX_LINE`); the old one buffers it all and scans the whole
  buffer again on every chunk (quadratic);
- a long but legal line (900 KB, under the cap) fed in 1 KiB chunks: linear against quadratic;
- an ordinary stream of ``--events`` chat events of about 300 bytes (4 KiB chunks): events per second,
  to show the bounds cost nothing on the common case.

The old scanning is reproduced here (main's, before issue 13) only to measure it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Iterable

from chatnb._sse import SSEDecoder, SSEMessage
from chatnb.errors import RefusedAnswerError


class RescanningDecoder(SSEDecoder):
    """The scanning of the decoder before issue 13 (main's ``chatnb/_stream.py``): one growing buffer,
    searched from its start for line ends on every feed, without a cap. What a line means is the same as
    in :class:`~chatnb._sse.SSEDecoder` (inherited): only how lines are found differs."""

    def __init__(self) -> None:
        super().__init__(max_line=sys.maxsize, max_event=sys.maxsize)
        self._buffer = ""

    def feed(self, text: str) -> list[SSEMessage]:
        self._buffer += text
        out: list[SSEMessage] = []
        start = 0
        buf = self._buffer
        while True:
            cr, lf = buf.find("\r", start), buf.find("\n", start)
            if cr < 0 and lf < 0:
                break
            end = lf if cr < 0 or (0 <= lf < cr) else cr
            if buf[end] == "\r":
                if end + 1 == len(buf):
                    break
                nxt = end + 2 if buf[end + 1] == "\n" else end + 1
            else:
                nxt = end + 1
            message = self._line(buf[start:end])
            if message is not None:
                out.append(message)
            start = nxt
        self._buffer = buf[start:]
        return out


def chunks(text: str, size: int) -> Iterable[str]:
    return (text[i : i + size] for i in range(0, len(text), size))


def timed(feed: Callable[[str], object], pieces: Iterable[str]) -> tuple[float, int, str]:
    """Seconds to feed ``pieces``, characters fed, and how it ended."""
    started, fed, outcome = time.perf_counter(), 0, "read it all"
    try:
        for piece in pieces:
            feed(piece)
            fed += len(piece)
    except RefusedAnswerError:
        outcome = "refused"
    return time.perf_counter() - started, fed, outcome


def row(name: str, seconds: float, fed: int, outcome: str, extra: str = "") -> None:
    print(f"  {name:<22} {seconds * 1000:10.1f} ms  {fed / 1e6:8.2f} MB read  {outcome:<12} {extra}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hostile-mb", type=int, default=32)
    parser.add_argument("--events", type=int, default=20_000)
    args = parser.parse_args()

    hostile = "a" * (args.hostile_mb * 1_000_000)
    print(f"a {args.hostile_mb} MB line without a newline, 64 KiB chunks")
    row("bounded (chatnb)", *timed(SSEDecoder().feed, chunks(hostile, 64 * 1024)))
    row("rescanning (before)", *timed(RescanningDecoder().feed, chunks(hostile, 64 * 1024)))

    legal = "data: " + "b" * 900_000 + "\n\n"
    print("a 900 KB line (under the cap), 1 KiB chunks")
    bounded = SSEDecoder()
    got: list[object] = []
    row(
        "bounded (chatnb)",
        *timed(lambda t: got.extend(bounded.feed(t)), chunks(legal, 1024)),
        f"{len(got)} event",
    )
    old, got = RescanningDecoder(), []
    row(
        "rescanning (before)",
        *timed(lambda t: got.extend(old.feed(t)), chunks(legal, 1024)),
        f"{len(got)} event",
    )

    payload = json.dumps({"threadId": "19:t@thread.v2", "id": "1", "message": "x" * 200})
    stream = "".join(f"id: {i}\nevent: chatMessageReceived\ndata: {payload}\n\n" for i in range(args.events))
    print(f"{args.events} ordinary events of {len(stream) // args.events} bytes, 4 KiB chunks (best of 5)")
    for name, make in (("bounded (chatnb)", SSEDecoder), ("rescanning (before)", RescanningDecoder)):
        best = None
        for _ in range(5):
            decoder, got = make(), []
            run = timed(lambda t, d=decoder, g=got: g.extend(d.feed(t)), chunks(stream, 4096))
            assert len(got) == args.events
            best = run if best is None or run[0] < best[0] else best
        seconds, fed, outcome = best
        row(name, seconds, fed, outcome, f"{args.events / seconds:,.0f} events/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
