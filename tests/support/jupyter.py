"""Helpers for the browser end-to-end test and the "Run All" kernel test.

- :class:`JupyterLab`: a JupyterLab server on loopback, every Jupyter/IPython folder in a temporary
  directory, stopped by the process id it started (see ``/work/shared/notes/browser-e2e.md``).
- :func:`chromium`: Debian's Chromium driven by Playwright through ``executable_path`` (never
  ``playwright install``).
- :func:`write_notebook`: a notebook file from a list of code cells.
- :class:`KernelRun`: a kernel started with this venv's python through jupyter_client, for queueing
  execute requests the way "Run All" does.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.support.net import free_port

__all__ = [
    "AXE",
    "CHROMIUM",
    "ROOT",
    "JupyterLab",
    "KernelRun",
    "artifacts_dir",
    "chromium",
    "write_notebook",
]

ROOT = Path(__file__).resolve().parents[2]
AXE = ROOT / "tests" / "axe" / "node_modules" / "axe-core" / "axe.min.js"
CHROMIUM = os.environ.get("CHATNB_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]


def artifacts_dir() -> Path:
    path = ROOT / "artifacts"
    path.mkdir(exist_ok=True)
    return path


def isolated_env(base: Path) -> dict[str, str]:
    """Environment with every Jupyter, IPython, chatnb and XDG folder under ``base``."""
    env = dict(os.environ)
    for name in (
        "JUPYTER_CONFIG_DIR",
        "JUPYTER_DATA_DIR",
        "JUPYTER_RUNTIME_DIR",
        "IPYTHONDIR",
        "JUPYTERLAB_WORKSPACES_DIR",
        "JUPYTERLAB_SETTINGS_DIR",
        "CHATNB_HOME",
        "XDG_CONFIG_HOME",
        "XDG_CACHE_HOME",
    ):
        path = base / name.lower()
        path.mkdir(parents=True, exist_ok=True)
        env[name] = str(path)
    for name in list(env):
        if name.startswith("CHATNB_") and name != "CHATNB_HOME":
            del env[name]
    env.pop("COMMUNICATION_SERVICES_CONNECTION_STRING", None)
    env["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"
    # The kernel must import this checkout's chatnb and use this venv.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def write_notebook(path: Path, cells: list[str]) -> Path:
    """Write a nbformat 4 notebook with one code cell per source string."""
    nb = {
        "cells": [
            {
                "cell_type": "code",
                "execution_count": None,
                "id": f"cell-{i}",
                "metadata": {},
                "outputs": [],
                "source": source,
            }
            for i, source in enumerate(cells)
        ],
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    path.write_text(json.dumps(nb, indent=1))
    return path


class JupyterLab:
    """A headless JupyterLab server on loopback, isolated in ``base`` (a temporary directory)."""

    def __init__(self, base: Path, root_dir: Path) -> None:
        self.base = base
        self.root_dir = root_dir
        self.port = free_port()
        self.token = secrets.token_hex(16)
        self.env = isolated_env(base)
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = base / "jupyterlab.log"
        labconfig = Path(self.env["JUPYTER_CONFIG_DIR"]) / "labconfig"
        labconfig.mkdir(parents=True, exist_ok=True)
        disabled = {"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}}
        (labconfig / "page_config.json").write_text(json.dumps(disabled))
        # Never ask which kernel to start (the "Select Kernel" dialog would cover the notebook).
        tracker = Path(self.env["JUPYTERLAB_SETTINGS_DIR"]) / "@jupyterlab" / "notebook-extension"
        tracker.mkdir(parents=True, exist_ok=True)
        (tracker / "tracker.jupyterlab-settings").write_text(json.dumps({"autoStartDefaultKernel": True}))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def notebook_url(self, name: str, ui: str = "lab") -> str:
        """The notebook in JupyterLab (``ui="lab"``) or Notebook 7 (``ui="notebook"``), same server."""
        if ui == "notebook":
            return f"{self.url}/notebooks/{name}?token={self.token}"
        return f"{self.url}/lab/tree/{name}?token={self.token}"

    def wait_idle(self, timeout: float = 60.0) -> None:
        """Wait until every kernel of the server is idle (polling its API: the server has no push)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                kernels = self.kernels()
            except urllib.error.HTTPError:  # the server answers 500 while a kernel is still starting
                kernels = []
            if kernels and all(k["execution_state"] == "idle" for k in kernels):
                return
            time.sleep(0.1)  # the polling interval of that condition
        raise TimeoutError(f"kernels not idle within {timeout} s: {self.kernels()}")

    def start(self, timeout: float = 60.0) -> JupyterLab:
        cmd = [
            sys.executable,
            "-m",
            "jupyter",
            "lab",
            "--no-browser",
            "--ip=127.0.0.1",
            f"--port={self.port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={self.root_dir}",
            "--allow-root",
            "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            "--LanguageServerManager.autodetect=False",
        ]
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            cmd, cwd=self.root_dir, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"JupyterLab exited with {self.proc.returncode}:\n{self.log()}")
            try:
                self.api("GET", "/api/status")
                return self
            except (OSError, urllib.error.URLError):
                time.sleep(0.1)  # polling until the server answers (a subprocess: no event to wait on)
        raise TimeoutError(f"JupyterLab did not answer within {timeout} s:\n{self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def api(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Authorization": f"token {self.token}", "Content-Type": "application/json"}
        request = urllib.request.Request(f"{self.url}{path}", method=method, headers=headers, data=data)
        with urllib.request.urlopen(request, timeout=5) as response:
            body = response.read()
        return json.loads(body) if body else None

    def start_session(self, notebook: str) -> str:
        """Start the notebook's kernel through the sessions API (Lab then attaches to it); its id."""
        body = {"path": notebook, "name": notebook, "type": "notebook", "kernel": {"name": "python3"}}
        session: dict[str, Any] = self.api("POST", "/api/sessions", body)
        kernel_id: str = session["kernel"]["id"]
        return kernel_id

    def kernel_state(self, kernel_id: str) -> str:
        state: str = self.api("GET", f"/api/kernels/{kernel_id}")["execution_state"]
        return state

    def kernels(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.api("GET", "/api/kernels")
        return result

    def stop(self) -> None:
        """Shut kernels down through the API, then end the server's process group."""
        proc = self.proc
        if proc is None:
            return
        self.proc = None
        if proc.poll() is None:
            try:
                for kernel in self.kernels():
                    self.api("DELETE", f"/api/kernels/{kernel['id']}")
            except (OSError, urllib.error.URLError, ValueError):
                pass
            # The server was started in a session of its own: its group holds it and its kernels.
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # kernels the server may have left behind

    def __enter__(self) -> JupyterLab:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextmanager
def chromium(base: Path) -> Iterator[Any]:
    """A headless Playwright ``Browser`` on Debian's Chromium; closed (and its process gone) on exit."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        raise RuntimeError(f"{CHROMIUM} is missing: run .ci/setup-extras (apt-get install chromium)")
    env: dict[str, str | float | bool] = {
        **os.environ,
        "XDG_CONFIG_HOME": str(base / "xdg_config_home"),
        "XDG_CACHE_HOME": str(base / "xdg_cache_home"),
    }
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS, env=env)
        try:
            yield browser
        finally:
            browser.close()


class KernelRun:
    """An IPython kernel on this venv's python, with a blocking client, for queueing cells."""

    def __init__(self, base: Path, cwd: Path) -> None:
        from jupyter_client.manager import KernelManager

        self.env = isolated_env(base)
        # "python3" is ipykernel's native spec; jupyter_client runs it with this process's python.
        self.km = KernelManager(kernel_name="python3")
        self.cwd = cwd
        self.comm_msgs: list[dict[str, Any]] = []  # the data of every widget message seen

    def __enter__(self) -> KernelRun:
        self.km.start_kernel(env=self.env, cwd=str(self.cwd))
        self.client = self.km.blocking_client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=60)
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.stop_channels()
        self.km.shutdown_kernel(now=False)

    def queue(self, cells: list[str]) -> list[str]:
        """Send every cell at once, without waiting between them, as "Run All" does."""
        return [self.client.execute(source, store_history=True) for source in cells]

    def execute_quietly(self, code: str, timeout: float = 30.0) -> None:
        """Run ``code`` and wait for its reply (clean-up code: its outcome is not checked)."""
        msg_id = self.client.execute(code)
        with contextlib.suppress(Exception):
            self.collect([msg_id], timeout=timeout)

    def collect(self, msg_ids: list[str], timeout: float = 120.0) -> dict[str, dict[str, Any]]:
        """Replies and outputs per request: ``{msg_id: {"reply", "stdout", "stderr", "errors", "data"}}``."""
        results: dict[str, dict[str, Any]] = {
            m: {"reply": None, "stdout": "", "stderr": "", "errors": [], "idle": False, "data": []}
            for m in msg_ids
        }
        deadline = time.monotonic() + timeout
        while not all(r["reply"] is not None for r in results.values()):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no execute_reply for every cell: {results}")
            try:
                reply = self.client.get_shell_msg(timeout=remaining)
            except Exception:  # queue.Empty
                continue
            parent = reply["parent_header"].get("msg_id")
            if parent in results and reply["msg_type"] == "execute_reply":
                results[parent]["reply"] = reply["content"]
        # Outputs: drain iopub until every request went idle.
        while not all(r["idle"] for r in results.values()):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"iopub did not go idle for every cell: {results}")
            try:
                msg = self.client.get_iopub_msg(timeout=remaining)
            except Exception:
                continue
            content, kind = msg["content"], msg["msg_type"]
            if kind == "comm_msg":  # widget messages, whichever cell (or none) they belong to
                self.comm_msgs.append(content.get("data", {}))
            parent = msg["parent_header"].get("msg_id")
            if parent not in results:
                continue
            if kind == "stream":
                results[parent][content["name"]] += content["text"]
            elif kind == "error":
                results[parent]["errors"].append(content)
            elif kind in ("execute_result", "display_data"):
                results[parent]["data"].append(content["data"])
            elif kind == "status" and content["execution_state"] == "idle":
                results[parent]["idle"] = True
        return results


def copy_tree_files(src: Path, dst: Path) -> None:
    """Copy files (not folders) from ``src`` into ``dst``."""
    for item in src.iterdir():
        if item.is_file():
            shutil.copy2(item, dst / item.name)
