"""Cells queued the way "Run All" queues them, on a real ipykernel, with chatnb's widgets live.

JupyterLab's "Run All" sends every cell's ``execute_request`` at once and lets the kernel work through
them. Here jupyter_client does the same against a kernel started with this venv's python: an event log
subscribes, messages are sent, one cell blocks in the sync ``EventLog.wait_for`` (the only place
``nest_asyncio2`` is applied, to the kernel's loop) and another in ``await wait_for_async``. Every cell
must run, in order, with the outputs it should have.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.support.jupyter import KernelRun

CELLS = [
    # 0: setup: an emulator inside the kernel, two users, a thread
    """
import sys, asyncio
import chatnb
from chatnb.emulator import Emulator
from chatnb.widgets import ChatPanel, EventLog
emu = Emulator().start()
session = chatnb.connect(emu.connection_string)
jack, geeta = session.user("Jack"), session.user("Geeta")
thread = jack.create_thread("Run All", participants=[geeta])
print("python", sys.executable)
print("nest applied at import:", hasattr(asyncio, "_nest_patched"))
""",
    # 1: live widgets: Geeta's panel and an event log on Geeta's client
    """
panel = ChatPanel(geeta, thread.thread_id)
log = EventLog(geeta.chat_client, thread_id=thread.thread_id)
display(panel, log)
""",
    # 2: Jack sends three messages
    """
ids = [thread.send_message(f"m{i}").id for i in range(3)]
print("sent", len(ids))
""",
    # 3: a sync wait: the kernel's loop must turn to deliver the events
    """
got = log.wait_for(3, event_type="chatMessageReceived", timeout=30)
print("got", [e.message for e in got])
print("nest applied now:", hasattr(asyncio, "_nest_patched"))
""",
    # 4: the panel saw them too
    """
print("view", [i.content for i in panel.view.items if not i.system])
""",
    # 5: an async wait in a queued cell
    """
thread.send_message("m3")
more = await log.wait_for_async(4, event_type="chatMessageReceived", timeout=30)
print("async", more[-1].message)
""",
    # 6: the composer sends from code, the log sees it, and the table shows it
    """
job = panel.composer.send("from geeta")
log.wait_for(1, predicate=lambda e: getattr(e, "message", None) == "from geeta", timeout=30)
print("sent", job.result(10) == panel.composer.last_message_id)
print("table rows", sum(r.kind == "chatMessageReceived" for r in log.rows))
""",
    # 7: the last cell
    """
print("last cell ran")
""",
]


@pytest.mark.timeout(180)
def test_run_all_runs_every_queued_cell(tmp_path: Path) -> None:
    with KernelRun(tmp_path, tmp_path) as kernel:
        ids = kernel.queue([c.strip() for c in CELLS])  # all at once, as "Run All" does
        results = kernel.collect(ids, timeout=150)
        try:
            replies = [results[i]["reply"] for i in ids]
            outputs = [results[i]["stdout"] for i in ids]
            errors = [results[i]["errors"] for i in ids]
            assert [r["status"] for r in replies] == ["ok"] * len(CELLS), (errors, outputs)
            assert all(not e for e in errors), errors
            counts = [r["execution_count"] for r in replies]
            assert counts == list(range(counts[0], counts[0] + len(CELLS)))  # each ran once, in order
            python = outputs[0].splitlines()[0].removeprefix("python ")
            assert Path(python).resolve() == Path(sys.executable).resolve()  # the venv's python
            assert "nest applied at import: False" in outputs[0]
            assert any("application/vnd.jupyter.widget-view+json" in d for d in results[ids[1]]["data"])
            assert outputs[2].strip() == "sent 3"
            assert "got ['m0', 'm1', 'm2']" in outputs[3]
            assert "nest applied now: True" in outputs[3]
            assert "view ['m0', 'm1', 'm2']" in outputs[4]
            assert outputs[5].strip() == "async m3"
            assert outputs[6].split() == ["sent", "True", "table", "rows", "5"]
            assert outputs[7].strip() == "last cell ran"
            # The widgets' updates went out to the front end as small custom messages by id (no Output
            # widget, no re-rendered transcript).
            custom = [m["content"] for m in kernel.comm_msgs if m.get("method") == "custom"]
            adds = [c["m"] for c in custom if c.get("op") == "add"]
            assert any(m.get("h") == "m2" for m in adds)  # Geeta's view
            assert any(c.get("op") == "row" and c["row"]["kind"] == "chatMessageReceived" for c in custom)
            updates = [m.get("state", {}) for m in kernel.comm_msgs if m.get("method") == "update"]
            assert not any("outputs" in state for state in updates)
        finally:
            kernel.execute_quietly("emu.stop()")
