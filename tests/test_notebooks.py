"""The notebooks' shape and the main job.

nbval itself (``--nbval``, collected from ``notebooks/`` by the test command) re-runs every notebook and
compares its outputs with the committed ones. These tests check what nbval does not: that
``01_quickstart.ipynb`` has one section per step of the ACS quickstart, in its order; that cells stay
small and carry no machine-specific paths; that nbval really compares most cells (few are ignored); that
the sanitize rules do what they say; and that the main job, ``scripts/run_quickstart.py``, runs the
quickstart end to end and exits 0 (and 1, saying where, when a cell fails).
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import nbformat
import psutil
import pytest
from nbval.plugin import get_sanitize_patterns

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
SEED = ROOT.parent / "shared" / "seed" / "acs-chat-quickstart-javascript.md"
RUN_QUICKSTART = ROOT / "scripts" / "run_quickstart.py"
NAMES = ["01_quickstart", "02_live_chat", "03_explore_and_export", "04_real_acs", "05_event_grid"]
QUICKSTART_STEPS = [
    "Prerequisites",
    "Setting up",
    "Object model",
    "Create a chat client",
    "Start a chat thread",
    "Get a chat thread client",
    "Send a message to a chat thread",
    "Receive chat messages from a chat thread",
    "Add a user as member to the chat thread",
    "Remove user from a chat thread",
    "Run the code",
]
MAX_CELL_LINES = 15
IGNORE_MARKERS = ("NBVAL_IGNORE_OUTPUT", "NBVAL_SKIP", "PYTEST_VALIDATE_IGNORE_OUTPUT")
IGNORE_TAGS = ("nbval-ignore-output", "nbval-skip")
MACHINE_PATHS = re.compile(
    r"/home/\w|/root\b|/Users/\w|/tmp/|/var/folders/|/work/|site-packages|[A-Za-z]:\\\\|\.venv/"
)


def load(name: str) -> nbformat.NotebookNode:
    notebook: nbformat.NotebookNode = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    return notebook


def cell_headings(cell: nbformat.NotebookNode) -> list[str]:
    if cell.cell_type != "markdown":
        return []
    return [line[3:].strip() for line in cell.source.splitlines() if line.startswith("## ")]


def headings(nb: nbformat.NotebookNode) -> list[str]:
    return [heading for cell in nb.cells for heading in cell_headings(cell)]


def output_texts(cell: nbformat.NotebookNode) -> list[str]:
    texts = []
    for output in cell.get("outputs", []):
        texts.append(output.get("text", ""))
        for mime, value in output.get("data", {}).items():
            if mime.startswith("text/") and isinstance(value, str):
                texts.append(value)
        texts.extend(output.get("traceback", []))
    return texts


def ignored(cell: nbformat.NotebookNode) -> bool:
    comments = [line.lstrip("#").strip() for line in cell.source.splitlines() if line.strip().startswith("#")]
    tags = cell.metadata.get("tags", [])
    return any(c in IGNORE_MARKERS for c in comments) or any(t in IGNORE_TAGS for t in tags)


def test_the_notebooks_are_there() -> None:
    assert sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb")) == NAMES


def test_the_steps_are_the_quickstarts_headings() -> None:
    if not SEED.is_file():
        pytest.fail(f"the quickstart is missing at {SEED}")
    seed = [
        line[3:].strip() for line in SEED.read_text(encoding="utf-8").splitlines() if line.startswith("## ")
    ]
    assert seed == QUICKSTART_STEPS


def test_quickstart_has_one_section_per_step_in_order() -> None:
    nb = load("01_quickstart")
    assert headings(nb) == QUICKSTART_STEPS
    # every section has a narrative paragraph and at least one code cell with a visible result
    sections: dict[str, list[nbformat.NotebookNode]] = {}
    current = None
    for cell in nb.cells:
        found = cell_headings(cell)
        if found:
            current = found[-1]
            sections[current] = [cell]
        elif current is not None:
            sections[current].append(cell)
    for step in QUICKSTART_STEPS:
        cells = sections[step]
        prose = " ".join(c.source for c in cells if c.cell_type == "markdown").replace(f"## {step}", "")
        assert len(prose.split()) >= 20, f"{step}: no narrative paragraph"
        code = [c for c in cells if c.cell_type == "code"]
        assert code and any(c.outputs for c in code), f"{step}: no code cell with a result"


def test_quickstart_receives_live_and_by_polling() -> None:
    source = "\n".join(c.source for c in load("01_quickstart").cells if c.cell_type == "code")
    for needle in ("start_realtime_notifications()", ".on(", "list_messages(", "edited_on", "deleted_on"):
        assert needle in source
    assert "share_history_time=" in source and "remove_participant(" in source


# Each operation of the quickstart's object model, in the section of the quickstart it belongs to.
QUICKSTART_OPERATIONS = {
    "update_topic(": "Start a chat thread",
    "list_chat_threads(": "Get a chat thread client",
    "send_typing_notification(": "Receive chat messages from a chat thread",
    "typingIndicatorReceived": "Receive chat messages from a chat thread",
    "send_read_receipt(": "Receive chat messages from a chat thread",
    "list_read_receipts(": "Receive chat messages from a chat thread",
    "delete_chat_thread(": "Run the code",
}


def code_by_section(nb: nbformat.NotebookNode) -> dict[str, list[nbformat.NotebookNode]]:
    sections: dict[str, list[nbformat.NotebookNode]] = {}
    current = "(before the first section)"
    for cell in nb.cells:
        found = cell_headings(cell)
        current = found[-1] if found else current
        if cell.cell_type == "code":
            sections.setdefault(current, []).append(cell)
    return sections


@pytest.mark.parametrize(("call", "section"), QUICKSTART_OPERATIONS.items())
def test_quickstart_shows_each_operation_in_its_section(call: str, section: str) -> None:
    """Typing, read receipts, listing threads, the topic and deleting a thread run, each with a result
    nbval compares (a cell with output and no ignore marker, in the step the operation belongs to)."""
    cells = [c for c in code_by_section(load("01_quickstart"))[section] if call in c.source]
    assert cells, f"{call} is not called in {section!r}"
    assert all(c.outputs and not ignored(c) for c in cells), f"{call}: a cell without a compared result"


def test_quickstart_says_where_chatnb_differs_from_the_javascript_sdk() -> None:
    markdown = [c.source for c in load("01_quickstart").cells if c.cell_type == "markdown"]
    prose = " ".join(" ".join(text.split()) for text in markdown)
    assert "`on` is a method of `ChatClient` here" in prose
    for js in (
        "chatThreadClient.on(",
        "sendTypingNotification",
        "sendReadReceipt",
        "listChatThreads",
        "deleteChatThread",
        "UpdateThread",
        "addMembers",
        "removeMember",
        "listMessages",
        "priority",
    ):
        assert js in prose, f"no note on the JavaScript {js}"


@pytest.mark.parametrize("name", NAMES)
def test_code_cells_are_small(name: str) -> None:
    for cell in load(name).cells:
        if cell.cell_type == "code":
            lines = cell.source.splitlines()
            assert len(lines) <= MAX_CELL_LINES, f"{name}: a {len(lines)}-line cell: {lines[0]!r}"


@pytest.mark.parametrize("name", NAMES)
def test_no_machine_specific_paths_or_secrets(name: str) -> None:
    for cell in load(name).cells:
        for text in [cell.source, *(output_texts(cell) if cell.cell_type == "code" else [])]:
            assert not MACHINE_PATHS.search(text), f"{name}: {MACHINE_PATHS.search(text)!r} in {text[:200]!r}"
            assert not re.search(r"accesskey=[A-Za-z0-9+/]{16,}", text), f"{name}: an access key"
            assert not re.search(r"eyJ[\w-]{10,}\.", text), f"{name}: an access token in the output"


@pytest.mark.parametrize("name", NAMES)
def test_committed_with_outputs_and_no_errors(name: str) -> None:
    nb = load(name)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count for c in code), f"{name}: not executed before committing"
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1)), f"{name}: not run in order"
    assert not any(o.output_type == "error" for c in code for o in c.outputs)


def test_nbval_compares_most_cells() -> None:
    """Volatile values are sanitized, not hidden: nearly every cell with output is compared."""
    code = [c for name in NAMES for c in load(name).cells if c.cell_type == "code"]
    with_output = [c for c in code if c.outputs]
    skipped = [c for c in code if ignored(c)]
    compared = [c for c in with_output if not ignored(c)]
    assert len(code) >= 40
    assert len(skipped) <= len(code) // 20
    assert len(compared) >= 0.8 * len(code)


def test_the_test_command_runs_nbval_over_the_notebooks(pytestconfig: pytest.Config) -> None:
    assert pytestconfig.getini("testpaths") == ["tests", "notebooks"]
    assert pytestconfig.option.nbval
    # notebooks/conftest.py points nbval at the sanitize rules unless told otherwise
    spec = importlib.util.spec_from_file_location("notebooks_conftest", NOTEBOOKS / "conftest.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = SimpleNamespace(option=SimpleNamespace(nbval=False, nbval_sanitize_with=None))
    module.pytest_configure(config)
    assert Path(config.option.nbval_sanitize_with) == NOTEBOOKS / "nbval_sanitize.cfg"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("19:0f3a9c1b2d4e5f60718293a4b5c6d7e8f9a0b1c2d3e41@thread.v2", "THREAD_ID", id="thread"),
        pytest.param("thread_id=19%3Aab12@thread.v2/part", "thread_id=THREAD_ID/part", id="thread-in-path"),
        pytest.param("<ChatPanel 19:e44a9b4…", "<ChatPanel\tTHREAD_ID_CUT", id="thread-cut"),
        pytest.param("8:acs:1f2e3d4c-0000-4b5a-8c7d-123456789abc_00000020-aaaa", "USER_ID", id="user"),
        pytest.param("'1795701862722'", "'MESSAGE_ID'", id="message"),
        pytest.param("2026-11-26 14:04:22.780143+00:00", "TIMESTAMP", id="pandas-time"),
        pytest.param("expires 2026-11-27T14:07:39Z", "expires\tTIMESTAMP", id="rfc3339"),
        pytest.param("at https://127.0.0.1:36695", "at\thttps://127.0.0.1:PORT", id="port"),
        pytest.param("in /tmp/chatnb-x1y2/emulator", "in\tTMPDIR", id="tmp"),
        pytest.param("   sequence_id   type", "\tsequence_id\ttype", id="alignment"),
    ],
)
def test_sanitize_rules(text: str, expected: str) -> None:
    rules = get_sanitize_patterns((NOTEBOOKS / "nbval_sanitize.cfg").read_text(encoding="utf-8"))
    for pattern, replacement in rules:
        text = re.sub(pattern, replacement, text)
    assert text == expected


def _chatnb_servers() -> set[int]:
    found = set()
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if "chatnb" in cmdline and "serve" in cmdline and any("chatnb-run-" in part for part in cmdline):
            found.add(proc.info["pid"])
    return found


def test_main_job_runs_the_quickstart(tmp_path: Path) -> None:
    before = _chatnb_servers()
    out = tmp_path / "artifacts" / "quickstart.executed.ipynb"
    run = subprocess.run(
        [sys.executable, str(RUN_QUICKSTART), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert f"{len(QUICKSTART_STEPS)} of {len(QUICKSTART_STEPS)} sections run" in run.stdout
    assert "messages sent: 5" in run.stdout and "events received by Geeta: 6" in run.stdout
    assert "executed notebook: artifacts/quickstart.executed.ipynb" in run.stdout
    executed = nbformat.read(out, as_version=4)
    code = [c for c in executed.cells if c.cell_type == "code"]
    assert all(c.execution_count for c in code)
    assert not any(o.output_type == "error" for c in code for o in c.outputs)
    assert _chatnb_servers() <= before, "the main job left its emulator running"


def test_main_job_says_where_it_failed(tmp_path: Path) -> None:
    broken = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_markdown_cell("## Prerequisites"),
            nbformat.v4.new_code_cell("x = 1"),
            nbformat.v4.new_markdown_cell("## Setting up"),
            nbformat.v4.new_code_cell("raise RuntimeError('no network')"),
        ],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
    )
    path = tmp_path / "broken.ipynb"
    nbformat.write(broken, path)
    out = tmp_path / "broken.executed.ipynb"
    run = subprocess.run(
        [sys.executable, str(RUN_QUICKSTART), "--notebook", str(path), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 1
    assert "FAILED in section 'Setting up'" in run.stderr
    assert "RuntimeError: no network" in run.stderr
    assert out.is_file()
