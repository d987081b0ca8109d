"""End to end in a real browser: JupyterLab on loopback, Debian's Chromium driven by Playwright.

A notebook starts an emulator in its kernel and shows two ``ChatPanel`` s, Jack's and Geeta's, in one
thread. The test types into Jack's composer and presses Enter, then checks that the message is in both
transcripts, that Geeta's event log has a ``chatMessageReceived`` row, that Jack sees Geeta's read receipt,
and that an ``html`` message is rendered sanitised (its ``onerror`` handler never runs). A screenshot goes
to ``artifacts/``. Every wait is on a condition; everything started is stopped.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest
from e2e_helpers import JupyterLab, artifacts_dir, chromium, write_notebook

pytestmark = pytest.mark.e2e

WAIT_MS = 60_000
NOTEBOOK = "chat_e2e.ipynb"
CELLS = [
    """import chatnb, ipywidgets
from chatnb.emulator import Emulator
from chatnb.widgets import ChatPanel
emu = Emulator().start()
session = chatnb.connect(emu.connection_string)
jack, geeta = session.user("Jack"), session.user("Geeta")
thread = jack.create_thread("Lunch", participants=[geeta])""",
    """jack_panel = ChatPanel(jack, thread.thread_id)
geeta_panel = ChatPanel(geeta, thread.thread_id)
ipywidgets.HBox([jack_panel, geeta_panel], layout=ipywidgets.Layout(width="100%"))""",
]


def _run_all(page: Any) -> None:
    """Run every cell through the Run menu, once the kernel is idle."""
    page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=WAIT_MS)
    page.click('.lm-MenuBar-itemLabel:text-is("Run")')
    page.click('.lm-Menu-item[data-command="runmenu:run-all"]')


@pytest.mark.timeout(240)
def test_two_chat_panels_in_jupyterlab_and_chromium(tmp_path: Path) -> None:
    from playwright.sync_api import expect

    started = time.monotonic()
    root = tmp_path / "notebooks"
    root.mkdir()
    write_notebook(root / NOTEBOOK, CELLS)
    with JupyterLab(tmp_path, root) as lab, chromium(tmp_path) as browser:
        page = browser.new_page(viewport={"width": 1500, "height": 1400})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        try:
            page.goto(lab.notebook_url(NOTEBOOK))
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=WAIT_MS)
            _run_all(page)

            jack, geeta = page.locator(".chatnb-panel-jack"), page.locator(".chatnb-panel-geeta")
            composer = jack.locator(".chatnb-composer-input input")
            expect(composer).to_be_enabled(timeout=WAIT_MS)
            expect(geeta.locator(".chatnb-participant")).to_have_count(2, timeout=WAIT_MS)

            # Type into Jack's composer, key by key at full speed, and press Enter at once.
            composer.press_sequentially("Hello Geeta, lunch at noon?")
            composer.press("Enter")
            expect(jack.locator(".chatnb-composer-status")).to_contain_text("Sent", timeout=WAIT_MS)
            expect(composer).to_have_value("", timeout=WAIT_MS)
            own = jack.locator(".chatnb-msg.chatnb-own .chatnb-bubble")
            expect(own).to_have_text("Hello Geeta, lunch at noon?", timeout=WAIT_MS)
            theirs = geeta.locator(".chatnb-msg.chatnb-other .chatnb-bubble")
            expect(theirs).to_have_text("Hello Geeta, lunch at noon?", timeout=WAIT_MS)
            row = geeta.locator('.chatnb-event-table tr[data-kind="chatMessageReceived"]')
            expect(row).to_have_count(1, timeout=WAIT_MS)
            expect(row).to_contain_text("Hello Geeta, lunch at noon?")
            expect(row).to_contain_text("Jack")
            # Geeta's panel marks it read; Jack sees the receipt.
            expect(jack.locator(".chatnb-receipt")).to_have_text("Read by Geeta", timeout=WAIT_MS)

            # An html message from Geeta: formatting kept, the handler stripped (and never run).
            geeta.locator(".chatnb-composer-type button", has_text="html").click()
            reply = geeta.locator(".chatnb-composer-input input")
            reply.fill(
                '<b>Sure!</b> <img src="https://127.0.0.1:9/x.png" onerror="document.title=\'pwned\'">'
            )
            geeta.locator(".chatnb-composer-send").click()
            bold = jack.locator(".chatnb-msg.chatnb-other .chatnb-bubble b")
            expect(bold).to_have_text("Sure!", timeout=WAIT_MS)
            image = jack.locator(".chatnb-msg.chatnb-other .chatnb-bubble img")
            expect(image).to_have_count(1)
            assert image.get_attribute("onerror") is None
            # Wait until the image failed to load: a surviving onerror would have run by then.
            image_done = "() => document.querySelector('.chatnb-panel-jack .chatnb-other img').complete"
            page.wait_for_function(image_done, timeout=WAIT_MS)
            expect(page).not_to_have_title(re.compile("pwned"))
            expect(geeta.locator('.chatnb-event-table tr[data-kind="chatMessageReceived"]')).to_have_count(
                2, timeout=WAIT_MS
            )
            assert not errors, errors
        finally:
            page.screenshot(path=str(artifacts_dir() / "e2e-chat-panels.png"), full_page=True)
    assert lab.proc is None  # stopped
    print(f"browser end-to-end run: {time.monotonic() - started:.1f} s")
