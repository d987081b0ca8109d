"""The main job: run the quickstart notebook headless against a fresh embedded ACS emulator.

    python scripts/run_quickstart.py [--notebook PATH] [--out PATH] [--timeout SECONDS]

(``make run`` sets up the virtual environment first, then runs this.) It executes
``notebooks/01_quickstart.ipynb`` with nbclient in a new kernel whose ``CHATNB_HOME`` and ``TMPDIR`` are a
new temporary directory, so the notebook starts (and, in its last cell, stops) an emulator of its own
there; afterwards anything it left running there is stopped and the directory removed. It writes the
executed copy to ``artifacts/01_quickstart.executed.ipynb``, prints where it is and what happened
(sections run, messages sent, events received), and exits 0. If a cell fails it still writes the copy
(up to the failing cell) and the kernel's log beside it, says which section and cell failed and why,
and exits 1.

``COMMUNICATION_SERVICES_CONNECTION_STRING`` is ignored here: the main job always uses the emulator. To
run the notebook against a real ACS resource, open it in JupyterLab (``make lab``) with that variable set.
"""

from __future__ import annotations

import argparse
import ast
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "01_quickstart.ipynb"
OUT = ROOT / "artifacts" / "01_quickstart.executed.ipynb"
CONNECTION_STRING_ENV = "COMMUNICATION_SERVICES_CONNECTION_STRING"
SUMMARY_TAG = "summary"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _shown(path: Path) -> str:
    """``path`` relative to the working directory when it is below it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _sections(nb: Any) -> list[tuple[str, list[Any]]]:
    """The notebook's ``##`` sections, each with its code cells."""
    sections: list[tuple[str, list[Any]]] = []
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("## "):
                    sections.append((line[3:].strip(), []))
        elif cell.cell_type == "code" and sections:
            sections[-1][1].append(cell)
    return sections


def _summary(nb: Any) -> dict[str, Any]:
    """The dict the cell tagged ``summary`` displayed, or ``{}``."""
    for cell in nb.cells:
        if cell.cell_type == "code" and SUMMARY_TAG in cell.metadata.get("tags", []):
            for output in cell.get("outputs", []):
                text = output.get("data", {}).get("text/plain")
                if output.get("output_type") == "execute_result" and text:
                    try:
                        value = ast.literal_eval(text)
                    except (ValueError, SyntaxError):
                        return {}
                    return value if isinstance(value, dict) else {}
    return {}


def _stop_leftover_emulator(home: Path) -> None:
    """Stop the emulator the notebook started in ``home`` if it did not get to its last cell."""
    from chatnb.location import stop_all

    stop_all(under=home)


def _report(nb: Any, notebook: Path, out: Path, elapsed: float) -> None:
    sections = _sections(nb)
    ran = [name for name, cells in sections if all(c.get("execution_count") for c in cells)]
    code = [c for c in nb.cells if c.cell_type == "code"]
    print(f"chatnb main job: {_shown(notebook)} against the embedded emulator")
    print(f"  {len(ran)} of {len(sections)} sections run, {len(code)} code cells, in {elapsed:.1f} s")
    print(f"  sections: {', '.join(ran)}")
    summary = _summary(nb)
    if summary:
        print("  " + "; ".join(f"{key}: {value}" for key, value in summary.items()))
    print(f"executed notebook: {_shown(out)}")


def _failure(nb: Any, error: Exception) -> str:
    """Which section and cell failed, and the error's last line, from the partially executed notebook."""
    section, failed = "(before the first section)", None
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            headings = [line[3:].strip() for line in cell.source.splitlines() if line.startswith("## ")]
            section = headings[-1] if headings else section
        elif any(o.get("output_type") == "error" for o in cell.get("outputs", [])):
            failed = cell
            break
    lines = [line for line in ANSI.sub("", str(error)).splitlines() if line.strip()]
    reason = lines[-1].strip() if lines else type(error).__name__
    if failed is None:
        return f"the kernel: {reason}"
    first = next((line for line in failed.source.splitlines() if line.strip()), "")
    return f"section {section!r}, the cell starting {first.strip()!r}: {reason}"


def run(notebook: Path, out: Path, timeout: float) -> int:
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    if not notebook.is_file():
        print(f"run_quickstart: no notebook at {notebook}", file=sys.stderr)
        return 2
    nb = nbformat.read(notebook, as_version=4)
    home = Path(tempfile.mkdtemp(prefix="chatnb-run-"))
    saved = {name: os.environ.get(name) for name in ("CHATNB_HOME", "TMPDIR", CONNECTION_STRING_ENV)}
    if saved[CONNECTION_STRING_ENV]:
        print(f"run_quickstart: ignoring {CONNECTION_STRING_ENV}; the main job uses the embedded emulator")
    os.environ["CHATNB_HOME"] = os.environ["TMPDIR"] = str(home)  # the kernel's temporary files go there
    os.environ.pop(CONNECTION_STRING_ENV, None)
    client = NotebookClient(
        nb,
        kernel_name="python3",
        timeout=timeout,
        record_timing=False,
        store_widget_state=False,
        resources={"metadata": {"path": str(notebook.parent)}},
    )
    started = time.monotonic()
    failure: Exception | None = None
    out.parent.mkdir(parents=True, exist_ok=True)
    kernel_log = out.with_suffix(".kernel.log")
    try:
        with kernel_log.open("wb") as log:  # the kernel's own stderr, for when it dies
            client.execute(stderr=log)
    except (CellExecutionError, CellTimeoutError, DeadKernelError, RuntimeError, TimeoutError) as exc:
        failure = exc
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        _stop_leftover_emulator(home)
        shutil.rmtree(home, ignore_errors=True)
    elapsed = time.monotonic() - started
    nbformat.write(nb, out)
    if failure is not None:
        print(f"run_quickstart: FAILED in {_failure(nb, failure)}", file=sys.stderr)
        print(f"run_quickstart: the executed copy up to the failure is {_shown(out)}", file=sys.stderr)
        print(f"run_quickstart: the kernel's log is {_shown(kernel_log)}", file=sys.stderr)
        return 1
    _report(nb, notebook, out, elapsed)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--notebook", type=Path, default=NOTEBOOK, help="the notebook to run")
    parser.add_argument("--out", type=Path, default=OUT, help="where to write the executed copy")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds allowed per cell")
    args = parser.parse_args(argv)
    return run(args.notebook.resolve(), args.out.resolve(), args.timeout)


if __name__ == "__main__":
    sys.exit(main())
