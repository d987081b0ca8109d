"""The documentation site, built and read in Chromium.

The site is built from a copy of ``docs/`` (with the notebooks, the README's neighbours it includes) into
a temporary folder, with warnings as errors (``-W --keep-going -n``, as ``make docs``), and its internal
links are checked (``scripts/check_links.py``). A loopback HTTP server serves it to Debian's Chromium,
driven by Playwright (never ``playwright install``), which opens the quickstart, the live chat tutorial
and the API page of ``ChatThreadClient`` in the light theme, the dark theme and a narrow window, asserts
what a reader sees, and saves screenshots under ``artifacts/``.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("CHATNB_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = ROOT / "artifacts"
VIEWS = {"light": ("light", 1280), "dark": ("dark", 1280), "narrow": ("light", 480)}


def notebook_sections(name: str) -> list[str]:
    """The ``## `` headings of a notebook: the sections its page must show."""
    cells = json.loads((ROOT / "notebooks" / f"{name}.ipynb").read_text(encoding="utf-8"))["cells"]
    lines = [
        line for c in cells if c["cell_type"] == "markdown" for line in "".join(c["source"]).splitlines()
    ]
    return [line[3:].strip() for line in lines if line.startswith("## ")]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site, built from a copy of the sources (the build writes its generated API pages beside them),
    laid out as in the repository: ``docs/notebooks`` stays a link to ``notebooks/``, as `make docs` sees
    it (a page's link to a notebook resolves through it)."""
    sources = tmp_path_factory.mktemp("docs-src")
    skip = shutil.ignore_patterns("_build", "generated", ".ipynb_checkpoints")
    shutil.copytree(ROOT / "docs", sources / "docs", symlinks=True, ignore=skip)
    shutil.copytree(ROOT / "notebooks", sources / "notebooks", ignore=skip)
    assert (sources / "docs" / "notebooks").is_symlink()
    for name in ("CHANGELOG.md", "CONTRIBUTING.md", "README.md"):
        shutil.copy(ROOT / name, sources / name)
    out = sources / "html"
    build = subprocess.run(
        [sys.executable, "-m", "sphinx", "-b", "html", "-W", "--keep-going", "-n", "-q", "docs", str(out)],
        cwd=sources,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert build.returncode == 0, f"the docs build failed:\n{build.stderr[-5000:]}"
    return out


def check_links(root: Path) -> subprocess.CompletedProcess[str]:
    script = ROOT / "scripts" / "check_links.py"
    return subprocess.run(
        [sys.executable, str(script), str(root)], capture_output=True, text=True, timeout=120
    )


def test_the_site_has_no_broken_internal_link(site: Path) -> None:
    check = check_links(site)
    assert check.returncode == 0, check.stdout[-3000:] + check.stderr
    assert "none broken" in check.stdout


def test_the_link_check_finds_a_broken_link(site: Path, tmp_path: Path) -> None:
    """The checker is not vacuous: a page with a dead link and a dead anchor fails it, naming both."""
    broken = tmp_path / "site"
    shutil.copytree(site, broken)
    page = broken / "install.html"
    page.write_text(
        page.read_text(encoding="utf-8").replace(
            "</body>", '<a href="nowhere.html">x</a><a href="index.html#no-such-anchor">y</a></body>'
        ),
        encoding="utf-8",
    )
    check = check_links(broken)
    assert check.returncode == 1
    assert "install.html: nowhere.html: no such file" in check.stdout
    assert "install.html: index.html#no-such-anchor: no id 'no-such-anchor'" in check.stdout


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def served(site: Path) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(site)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), f"no Chromium at {CHROMIUM}: run `bash .ci/setup-extras`"
    home = tmp_path_factory.mktemp("chromium")
    env: dict[str, str | float | bool] = {
        **os.environ,
        "XDG_CONFIG_HOME": str(home),
        "XDG_CACHE_HOME": str(home),
    }
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
            env=env,
        )
        try:
            yield chromium
        finally:
            chromium.close()


@contextlib.contextmanager
def viewing(browser: Any, url: str, view: str, name: str) -> Iterator[Any]:
    """The page at ``url`` in one of the VIEWS (the theme chosen the way the theme's switch stores it);
    afterwards: in the narrow view nothing is wider than the window; a screenshot of what is in view is
    saved as ``artifacts/docs-<name>-<view>.png``."""
    mode, width = VIEWS[view]
    context = browser.new_context(viewport={"width": width, "height": 900})
    context.add_init_script(
        f"localStorage.setItem('mode', '{mode}'); localStorage.setItem('theme', '{mode}');"
    )
    try:
        page = context.new_page()
        page.goto(url)
        page.wait_for_load_state("load")
        assert page.locator("html").get_attribute("data-theme") == mode
        yield page
        if view == "narrow":
            assert fits(page), "the page scrolls sideways in a narrow window"
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"docs-{name}-{view}.png"), full_page=False)
    finally:
        context.close()


def fits(page: Any) -> bool:
    """Nothing wider than the window: the page does not scroll sideways."""
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"))


def luminance(page: Any, selector: str, prop: str) -> float:
    """The relative luminance (0 black .. 1 white) of a computed colour of the first ``selector``."""
    return float(
        page.evaluate(
            """([selector, prop]) => {
                const value = getComputedStyle(document.querySelector(selector))[prop];
                const [r, g, b] = value.match(/[\\d.]+/g).slice(0, 3).map(Number).map(c => {
                    c = c / 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; });
                return 0.2126 * r + 0.7152 * g + 0.0722 * b;
            }""",
            [selector, prop],
        )
    )


@pytest.mark.parametrize("view", list(VIEWS))
def test_the_quickstart_renders(browser: Any, served: str, view: str) -> None:
    with viewing(browser, served + "notebooks/01_quickstart.html", view, "quickstart") as page:
        assert page.locator("h1").first.inner_text().startswith("Chat quickstart, in Python")
        headings = [h.strip().rstrip("#").strip() for h in page.locator("article h2").all_inner_texts()]
        assert headings == notebook_sections("01_quickstart") and len(headings) == 11
        # code cells with their committed outputs, among them the new steps
        cells = page.locator("div.cell")
        assert cells.count() >= 20
        table = page.locator("div.cell", has_text="steps = {").locator("div.cell_output")
        assert "sendTypingNotification" in table.inner_text()
        typing = page.locator("div.cell", has_text="for event in typing]").locator("div.cell_output")
        assert "typingIndicatorReceived" in typing.inner_text() and "Jack" in typing.inner_text()
        receipts = page.locator("div.cell", has_text="send_read_receipt(typo)").locator("div.cell_output")
        assert "Great, thanks!" in receipts.inner_text()
        assert page.locator("div.cell_output").first.is_visible()
        page.locator("#receive-chat-messages-from-a-chat-thread").scroll_into_view_if_needed()


@pytest.mark.parametrize("view", list(VIEWS))
def test_the_widget_snapshots_render(browser: Any, served: str, view: str) -> None:
    with viewing(browser, served + "notebooks/02_live_chat.html", view, "widget-snapshot") as page:
        snapshots = page.locator(".chatnb-snapshot")
        assert snapshots.count() >= 3  # the two panels, and the panel shown again at the end
        last = snapshots.last
        last.scroll_into_view_if_needed()
        assert last.is_visible()
        assert "Hello Geeta! Can you share the deck for the conference?" in last.inner_text()
        assert "model_id" not in page.locator("article").inner_text()  # not the widget view's JSON
        # the snapshot's text stands out from its background in either theme
        text = luminance(page, ".chatnb-snapshot", "color")
        background = luminance(page, ".chatnb-snapshot", "backgroundColor")
        contrast = (max(text, background) + 0.05) / (min(text, background) + 0.05)
        assert contrast >= 4.5, f"snapshot text contrast {contrast:.1f}:1 in the {view} view"
        if VIEWS[view][0] == "dark":  # no light card around it (the theme's default for HTML outputs)
            around = page.evaluate(
                "getComputedStyle(document.querySelector('.cell_output .output:has(.chatnb-snapshot)'))"
                ".backgroundColor"
            )
            assert around in ("rgba(0, 0, 0, 0)", "transparent"), around


@pytest.mark.parametrize("view", list(VIEWS))
def test_the_chat_thread_client_reference_renders(browser: Any, served: str, view: str) -> None:
    url = served + "api/generated/chatnb.ChatThreadClient.html"
    with viewing(browser, url, view, "api-chat-thread-client") as page:
        assert page.locator("h1").first.inner_text().strip().rstrip("#").strip() == "ChatThreadClient"
        summary = page.locator("table.autosummary").first.inner_text()
        for method in (
            "send_message",
            "list_messages",
            "send_typing_notification",
            "send_read_receipt",
            "list_read_receipts",
            "update_topic",
            "add_participants",
            "remove_participant",
        ):
            assert method in summary, f"{method} is not in the method list"
            assert page.locator(f"dt#chatnb\\.ChatThreadClient\\.{method}").count() == 1
        assert "Args:" not in page.locator("article").inner_text()  # the docstrings' sections are rendered
        assert page.locator("dl.field-list").count() >= 1  # ... as Parameters / Raises fields
