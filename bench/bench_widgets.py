"""The chat widgets: what one incoming message costs as the history grows, now, before (the ipywidgets
transcript that the anywidget one replaced) and in Panel's ``ChatFeed``, plus send-to-paint in Chromium.

Run: ``.venv/bin/python bench/bench_widgets.py [--sizes 100,1000,5000,20000] [--incoming 50] [--no-browser]
[--before REV]``
(``pip install -e '.[bench]'`` brings Panel; without it the Panel rows say so).

1. **Kernel side**, for threads of each size (seeded straight into an emulator's store, ``chatnb serve``
   in its own process): a ``ChatView`` holding the whole history receives ``--incoming`` new messages (parsed
   ``chatMessageReceived`` events, handed to the view as its subscription would). Per message: the bytes
   sent to the front end (every comm message, as JSON) and the kernel milliseconds (handler plus sending);
   and the time to first render (from making the view to its first transcript going out). "before" is
   the widgets of :data:`BEFORE` (``git archive``, run in a child process), which re-render the whole
   transcript per event; Panel is ``pn.chat.ChatFeed`` appending the same messages to a Bokeh document
   (bytes: the PATCH-DOC message Bokeh would send; its build time is the first render). Targets: <= 2 KB
   and <= 2 ms per message, flat in N.
2. **Chromium** (JupyterLab, 5,000 messages loaded in the browser): the median time from sending a
   message (another user, over HTTP) to its bubble painted, now and before. Target: < 100 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
# the browser helpers (tests.support.jupyter: JupyterLab, Chromium), after everything else: the "before"
# child's chatnb comes from its PYTHONPATH, which the repository's own chatnb must not shadow
sys.path.append(str(ROOT))

FILLER = "lorem ipsum dolor sit amet " * 4
PANEL_MAX = 1_000  # Panel builds ~13 messages/s here: larger feeds take minutes


class Recorder:
    """Stands in for the kernel's comms: records the size of everything widgets send."""

    def __init__(self) -> None:
        import comm
        from comm.base_comm import BaseComm

        recorder = self
        self.sizes: list[int] = []
        self.kinds: list[str] = []

        class RecordingComm(BaseComm):  # type: ignore[misc]
            def publish_msg(
                self, msg_type: str, data: Any = None, metadata: Any = None, buffers: Any = None, **_: Any
            ) -> None:
                size = len(json.dumps(data or {}, default=str, separators=(",", ":")))
                recorder.sizes.append(size + sum(len(b) for b in buffers or ()))
                recorder.kinds.append(msg_type)

        comm.create_comm = lambda *a, **k: RecordingComm(*a, **k)

    def mark(self) -> int:
        return len(self.sizes)

    def since(self, mark: int) -> int:
        return sum(self.sizes[mark:])


def incoming(thread_id: str, i: int) -> Any:
    from chatnb.events import parse_event

    other = "8:acs:bench-other"
    return parse_event(
        "chatMessageReceived",
        {
            "threadId": thread_id,
            "id": str(int(time.time() * 1000) + 10_000_000 + 10 * i),  # after every seeded id
            "message": f"incoming {i}: {FILLER}"[:80],
            "type": "text",
            "sender": {"rawId": other, "communicationUser": {"id": other}},
            "senderDisplayName": "Other",
            "createdOn": "2026-01-02T03:04:05Z",
        },
        event_id=10_000 + i,
    )


def measure_kernel(
    impl: str, endpoint: str, token: str, ca: str, threads: list[tuple[str, int]], n_in: int
) -> list[dict[str, Any]]:
    """Per thread: first render (ms), and per incoming message bytes and kernel ms (median, max)."""
    recorder = Recorder()
    import chatnb

    results = []
    chat = chatnb.ChatClient(endpoint, chatnb.CommunicationTokenCredential(token), connection_verify=ca)
    from chatnb.widgets import ChatView

    warm = ChatView(chat.get_chat_thread_client(threads[0][0]), chat_client=chat)  # imports, threads, TLS
    if impl == "new":
        warm.load_job.result(120)
    warm.close()
    for thread_id, size in threads:
        client = chat.get_chat_thread_client(thread_id)
        started = time.perf_counter()
        if impl == "new":
            from chatnb.widgets._worker import flush

            view = ChatView(client, chat_client=chat)
            view.load_job.result(120)
            mark = recorder.mark()
            view.comm.handle_msg(
                {
                    "content": {"data": {"method": "custom", "content": {"op": "hello", "view": "b"}}},
                    "buffers": [],
                }
            )
            flush()
            first = time.perf_counter() - started
            first_bytes = recorder.since(mark)
            view.load_all()

            def handle(ev: Any, view: Any = view) -> None:
                view.handle_event(ev)
                flush()  # until handed to the comm: the sending is kernel time too

        else:  # the widgets of --before
            view = ChatView(client, chat_client=chat, max_messages=size + 100)
            first = time.perf_counter() - started
            first_bytes = 0
            view._throttle.interval = 0  # a render per event, as when messages come > 50 ms apart

            def handle(ev: Any, view: Any = view) -> None:
                view._on_event(ev)

        held = len([i for i in view.items if not i.system])
        sizes, times = [], []
        for i in range(n_in):
            ev = incoming(thread_id, i)
            mark = recorder.mark()
            t0 = time.perf_counter()
            handle(ev)
            times.append((time.perf_counter() - t0) * 1000)
            sizes.append(recorder.since(mark))
        view.close()
        results.append(
            {
                "n": size,
                "held": held,
                "first_ms": first * 1000,
                "first_bytes": first_bytes,
                "bytes": statistics.median(sizes),
                "bytes_max": max(sizes),
                "ms": statistics.median(times),
                "ms_max": max(times),
            }
        )
    chat.close()
    return results


def measure_panel(sizes: list[int], n_in: int) -> list[dict[str, Any]]:
    try:
        import panel as pn
        from bokeh.document import Document
        from bokeh.protocol import Protocol
    except ImportError:
        return []
    results = []
    protocol = Protocol()
    for size in sizes:
        if size > PANEL_MAX:
            results.append({"n": size, "skipped": True})
            continue
        started = time.perf_counter()
        history = [pn.chat.ChatMessage(f"message {i}: {FILLER}"[:80], user="Bench User") for i in range(size)]
        feed = pn.chat.ChatFeed(*history)
        doc = Document()
        doc.add_root(feed.get_root(doc))
        first = time.perf_counter() - started
        events: list[Any] = []
        doc.on_change(events.append)
        sizes_, times = [], []
        for i in range(min(n_in, 10)):
            mark = len(events)
            t0 = time.perf_counter()
            feed.send(pn.chat.ChatMessage(f"incoming {i}: {FILLER}"[:80], user="Other"), respond=False)
            new = events[mark:]
            msg = protocol.create("PATCH-DOC", new) if new else None
            times.append((time.perf_counter() - t0) * 1000)
            size_ = 0
            if msg is not None:
                size_ = len(msg.header_json) + len(msg.metadata_json) + len(msg.content_json)
                size_ += sum(len(getattr(b, "data", b"")) for b in msg.buffers)
            sizes_.append(size_)
        steady = sizes_[1:] or sizes_  # the first append also sends the whole feed once
        results.append(
            {
                "n": size,
                "first_ms": first * 1000,
                "bytes": statistics.median(steady),
                "bytes_first": sizes_[0],
                "ms": statistics.median(times),
                "ms_max": max(times),
            }
        )
    return results


# -- the browser ---------------------------------------------------------------------------------

BROWSER_SETUP = """import json, time
import chatnb
from chatnb.emulator import Emulator
from chatnb.emulator.seed import seed_messages
emu = Emulator().start()
session = chatnb.connect(emu.connection_string)
jack, geeta = session.user("Jack"), session.user("Geeta")
thread = jack.create_thread("Bench", participants=[geeta])
start = int((time.time() - 86400 * 20) * 1e6)
rows = ((start + i * 60_000_000, f"message {{i}}: lorem ipsum dolor sit amet") for i in range({n}))
seed_messages(emu.store, thread.thread_id, jack.id, rows, display_name="Jack")
token = jack.credential.get_token().token
json.dump({{"endpoint": emu.endpoint, "token": token, "thread": thread.thread_id, "ca": str(emu.ca_cert)}},
          open("bench.json", "w"))"""
VIEW_NEW = """from chatnb.widgets import ChatView
view = ChatView(geeta, thread.thread_id)
view"""
VIEW_BEFORE = """from chatnb.widgets import ChatView
view = ChatView(geeta.thread(thread.thread_id), chat_client=geeta.chat_client, max_messages={n} + 100)
view"""
OBSERVE = """() => {
  window.__painted = {};
  new MutationObserver(records => {
    for (const record of records) for (const node of record.addedNodes) {
      for (const m of (node.textContent || "").matchAll(/bench (\\d+) ([\\d.]+)/g)) {
        if (m[1] in window.__painted) continue;
        window.__painted[m[1]] = -1;
        const sent = Number(m[2]);
        requestAnimationFrame(() => setTimeout(() => { window.__painted[m[1]] = Date.now() - sent; }, 0));
      }
    }
  }).observe(document.body, { childList: true, subtree: true });
}"""


def measure_browser(impl: str, n: int, sends: int, before_tree: Path | None) -> dict[str, Any]:
    import chatnb
    from tests.support.jupyter import JupyterLab, chromium, write_notebook

    with tempfile.TemporaryDirectory(prefix="chatnb-bench-browser-") as tmp:
        base = Path(tmp)
        root = base / "nb"
        root.mkdir()
        view_cell = VIEW_NEW if impl == "new" else VIEW_BEFORE.format(n=n)
        write_notebook(root / "bench.ipynb", [BROWSER_SETUP.format(n=n), view_cell])
        saved = os.environ.get("PYTHONPATH")
        if before_tree is not None:
            os.environ["PYTHONPATH"] = str(before_tree)  # the kernel imports the chatnb of --before
        try:
            lab = JupyterLab(base, root)
        finally:
            if saved is None:
                os.environ.pop("PYTHONPATH", None)
            else:
                os.environ["PYTHONPATH"] = saved
        with lab, chromium(base) as browser:
            page = browser.new_page(viewport={"width": 1300, "height": 1000})
            page.goto(lab.notebook_url("bench.ipynb"))
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
            lab.wait_idle()
            started = time.monotonic()
            page.click('.lm-MenuBar-itemLabel:text-is("Run")')
            page.click('.lm-Menu-item[data-command="runmenu:run-all"]')
            page.wait_for_selector(".chatnb-bubble", timeout=120_000)
            page.wait_for_function(
                "t => [...document.querySelectorAll('.chatnb-bubble')].some(b => b.textContent.includes(t))",
                arg=f"message {n - 1}:",
                timeout=120_000,
            )
            opened = time.monotonic() - started  # includes seeding and the kernel's work
            if impl == "new":  # scroll up until the whole history is in the browser
                while not page.locator(".chatnb-start", has_text="start of the conversation").is_visible():
                    count = page.locator(".chatnb-row").count()
                    page.evaluate("() => { document.querySelector('.chatnb-scroller').scrollTop = 0; }")
                    page.wait_for_function(
                        "n => document.querySelectorAll('.chatnb-row').length > n || "
                        "document.querySelector('.chatnb-start').textContent.includes('start of')",
                        arg=count,
                        timeout=60_000,
                    )
                page.evaluate("() => { document.querySelector('.chatnb-scroller').scrollTop = 1e9; }")
            loaded = page.evaluate("() => document.querySelectorAll('.chatnb-row, .chatnb-msg').length")
            page.evaluate(OBSERVE)
            info = json.loads((root / "bench.json").read_text())
            sender = chatnb.ChatThreadClient(
                info["endpoint"], chatnb.CommunicationTokenCredential(info["token"]), info["thread"],
                connection_verify=info["ca"],
            )  # fmt: skip
            latencies = []
            for i in range(sends):
                sender.send_message(f"bench {i} {time.time() * 1000:.1f}")
                page.wait_for_function(f"() => (window.__painted['{i}'] ?? -1) >= 0", timeout=60_000)
                latencies.append(page.evaluate(f"() => window.__painted['{i}']"))
            sender.close()
            page.close()
    return {"impl": impl, "n": n, "median_ms": statistics.median(latencies), "max_ms": max(latencies),
            "dom_nodes_rows": loaded, "opened_s": opened}  # fmt: skip


#: The last chatnb before the anywidget transcript (issue 11): its ChatView re-renders the whole
#: transcript per event. The "before" of every figure (``--before`` names another revision).
BEFORE = "30ae029c19d320d5f7a9b45f3a6e297e88e6c340"


def export_before(revision: str) -> Path:
    """The ``chatnb`` package of ``revision`` in a temporary folder (the caller removes it)."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision, "chatnb"], capture_output=True)
    if archive.returncode:
        raise SystemExit(
            f"bench_widgets: cannot read chatnb at {revision} ({archive.stderr.decode().strip()}); "
            "a shallow clone lacks it: `git fetch --unshallow`, or pass --before REV"
        )
    target = Path(tempfile.mkdtemp(prefix="chatnb-bench-before-"))
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="100,1000,5000,20000")
    parser.add_argument("--incoming", type=int, default=50)
    parser.add_argument("--sends", type=int, default=15)
    parser.add_argument("--no-browser", action="store_true")
    parser.add_argument("--before", default=BEFORE, help="the revision measured as 'before'")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # JSON arguments of a kernel-side run
    args = parser.parse_args()
    if args.child:
        spec = json.loads(args.child)
        print(
            json.dumps(
                measure_kernel(
                    spec["impl"],
                    spec["endpoint"],
                    spec["token"],
                    spec["ca"],
                    [tuple(t) for t in spec["threads"]],
                    spec["incoming"],
                )
            )
        )
        return
    import shutil

    from _common import seeded_emulator

    sizes = [int(s) for s in args.sizes.split(",")]
    before_tree = export_before(args.before)
    try:
        listed = ", ".join(f"{s:,}" for s in sizes)
        print(f"chat widgets, {args.incoming} incoming messages per thread; threads of {listed}")
        with seeded_emulator(sizes) as (emu, seeded, token):
            threads = list(zip(seeded.thread_ids, sizes, strict=True))
            spec = {
                "endpoint": emu.endpoint,
                "token": token,
                "ca": emu.ca_cert,
                "threads": threads,
                "incoming": args.incoming,
            }
            runs = {}
            for impl, path in (("new", None), ("before", before_tree)):
                env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
                if path is not None:
                    env["PYTHONPATH"] = str(path)  # the chatnb of --before, whole
                child = subprocess.run(
                    [sys.executable, __file__, "--child", json.dumps({**spec, "impl": impl})],
                    capture_output=True,
                    text=True,
                    env=env,
                    timeout=3600,
                )
                if child.returncode:
                    raise SystemExit(f"{impl} run failed:\n{child.stderr[-3000:]}")
                runs[impl] = json.loads(child.stdout.strip().splitlines()[-1])
        panel = {r["n"]: r for r in measure_panel(sizes, args.incoming)}
        report(sizes, runs["new"], runs["before"], panel)
        if not args.no_browser:
            n = 5_000
            now = measure_browser("new", n, args.sends, None)
            before = measure_browser("before", n, args.sends, before_tree)
            print(f"\nChromium, JupyterLab, {n:,} messages loaded in the browser, {args.sends} sends")
            print("(target < 100 ms; rows: message rows and bubbles in the DOM, the rest windowed out)")
            for label, r in (("now", now), ("before", before)):
                print(
                    f"  {label:<7} send -> painted bubble: median {r['median_ms']:7.1f} ms, "
                    f"max {r['max_ms']:7.1f} ms  (rows: {r['dom_nodes_rows']:,})"
                )
            print(f"  ratio   before/now: {before['median_ms'] / now['median_ms']:.1f}x")
    finally:
        shutil.rmtree(before_tree, ignore_errors=True)


def report(
    sizes: list[int], new: list[dict[str, Any]], old: list[dict[str, Any]], panel: dict[int, dict[str, Any]]
) -> None:
    print("\nper incoming message (median; max in brackets) and time to first render (kernel side)")
    head = (
        f"{'messages':>9} | {'now: bytes':>11} {'ms':>12} {'first':>9} | {'before: bytes':>14} {'ms':>14}"
        f" {'first':>10} | {'Panel ChatFeed: bytes':>21} {'ms':>14} {'first':>10}"
    )
    print(head)
    print("-" * len(head))
    for n, a, b in zip(sizes, new, old, strict=True):
        p = panel.get(n)
        if p is None:
            ptext = f"{'(panel not installed)':>48}"
        elif p.get("skipped"):
            ptext = f"{'(not run: > ' + format(PANEL_MAX, ',') + ' msgs)':>48}"
        else:
            ptext = (
                f"{p['bytes']:>21,.0f} {p['ms']:>6.1f} [{p['ms_max']:>5.0f}] {p['first_ms'] / 1000:>9.1f}s"
            )
        print(
            f"{n:>9,} | {a['bytes']:>11,.0f} {a['ms']:>5.2f} [{a['ms_max']:>4.1f}] {a['first_ms']:>7.0f}ms |"
            f" {b['bytes']:>14,.0f} {b['ms']:>6.1f} [{b['ms_max']:>5.0f}] {b['first_ms']:>8.0f}ms | {ptext}"
        )
    print("\nratios (before / now, Panel / now) per incoming message:")
    for n, a, b in zip(sizes, new, old, strict=True):
        p = panel.get(n)
        line = f"  {n:>7,}: bytes {b['bytes'] / a['bytes']:7.0f}x, ms {b['ms'] / a['ms']:6.0f}x (before)"
        if p and not p.get("skipped"):
            line += f"; bytes {p['bytes'] / a['bytes']:5.2f}x, ms {p['ms'] / a['ms']:6.0f}x (Panel)"
        print(line)
    firsts = ", ".join(f"{p['bytes_first']:,} B at {n:,}" for n, p in panel.items() if not p.get("skipped"))
    if firsts:
        print(f"  (Panel's first append after rendering also sends the whole feed once: {firsts})")


if __name__ == "__main__":
    main()
