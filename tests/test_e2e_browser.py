"""End to end in a real browser: JupyterLab and Notebook 7 (one server for the module), Debian's Chromium
driven by Playwright (one browser for the module).

A notebook starts an emulator in its kernel, seeds a history longer than a view's first window, and shows
Jack's ``ChatPanel`` (wide) beside Geeta's in a 480 px box (narrow). In each front end the test types
into the composers (Shift+Enter makes a new line, Enter sends), and checks what a person sees: auto-scroll
at the bottom, the reading position and a text selection kept with a "1 new message" control when scrolled
up, the "New messages" divider for what arrived out of sight, keyboard navigation, "load older"
down to the first message, "Seen by Geeta", edit and delete from the transcript, an ``html`` message
sanitised (its image a link, never fetched), nothing clipped at 480 px, the dark theme's computed colours,
and an axe-core scan of the output area with no serious or critical violation, light and dark. Screenshots
(light, dark, narrow) go to ``artifacts/``. Every wait is on a condition; everything started is stopped.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.jupyter import AXE, JupyterLab, artifacts_dir, chromium, write_notebook

pytestmark = pytest.mark.e2e

WAIT_MS = 60_000
SEEDED = 130
CELLS = [
    f"""import chatnb, ipywidgets, json
from chatnb.emulator import Emulator
from chatnb.widgets import ChatPanel
emu = Emulator().start()
session = chatnb.connect(emu.connection_string)
jack, geeta = session.user("Jack"), session.user("Geeta")
thread = jack.create_thread("Lunch", participants=[geeta])
for i in range({SEEDED}):
    (thread if i % 3 else geeta.thread(thread.thread_id)).send_message(f"seed {{i}}")
geeta_token = geeta.credential.get_token().token  # for the test to send as Geeta from outside the page
with open("geeta.json", "w") as f:
    info = {{"endpoint": emu.endpoint, "token": geeta_token, "thread": thread.thread_id}}
    json.dump({{**info, "ca": str(emu.ca_cert)}}, f)""",
    """jack_panel = ChatPanel(jack, thread.thread_id)
geeta_panel = ChatPanel(geeta, thread.thread_id)
narrow = ipywidgets.Box([geeta_panel], layout=ipywidgets.Layout(width="480px", flex="0 0 480px"))
ipywidgets.HBox([jack_panel, narrow], layout=ipywidgets.Layout(width="100%", align_items="flex-start"))""",
]
AT_BOTTOM = "s => s.scrollHeight - s.scrollTop - s.clientHeight <= 48"
CLIPPED = """panel => {
  const box = panel.getBoundingClientRect();
  const bad = [];
  for (const el of panel.querySelectorAll("*")) {
    const r = el.getBoundingClientRect();
    if (!r.width || !r.height || el.closest("[hidden], .chatnb-sr")) continue;
    const style = getComputedStyle(el);
    const name = `${el.tagName.toLowerCase()}.${[...el.classList].join(".")}`;
    if (r.right > box.right + 1 || r.left < box.left - 1) bad.push(`${name} sticks out`);
    const clips = ["hidden", "clip"].includes(style.overflowX);
    if (clips && el.scrollWidth > el.clientWidth + 1) bad.push(`${name} clips`);
  }
  return bad.slice(0, 12);
}"""
AXE_SCAN = """async root => {
  const result = await axe.run(root, { resultTypes: ["violations"] });
  const nodes = v => v.nodes.slice(0, 3).map(n => `${n.html.slice(0, 160)} :: ${n.failureSummary}`);
  return result.violations.filter(v => ["serious", "critical"].includes(v.impact))
    .map(v => `${v.id} (${v.impact}): ${nodes(v).join(" | ")}`);
}"""
LUMINANCE = """el => {
  const parse = c => c.match(/[\\d.]+/g).slice(0, 3).map(Number);
  const lin = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
  const lum = rgb => rgb.map(lin).reduce((sum, v, i) => sum + v * [0.2126, 0.7152, 0.0722][i], 0);
  let node = el, bg = "rgba(0, 0, 0, 0)";
  while (node && /rgba\\(.*, 0\\)$/.test(bg)) {
    bg = getComputedStyle(node).backgroundColor;
    node = node.parentElement;
  }
  return { fg: lum(parse(getComputedStyle(el).color)), bg: lum(parse(bg)) };
}"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterLab]:
    base = tmp_path_factory.mktemp("e2e")
    root = base / "notebooks"
    root.mkdir()
    for ui in ("lab", "notebook"):
        write_notebook(root / f"chat_{ui}.ipynb", CELLS)
    with JupyterLab(base, root) as server:
        yield server
    assert server.proc is None  # stopped


@pytest.fixture(scope="module")
def browser(lab: JupyterLab) -> Iterator[Any]:
    with chromium(lab.base) as chromium_browser:
        yield chromium_browser


STDERR = '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'
RAN_OR_FAILED = """stderr => {
  const prompts = [...document.querySelectorAll(".jp-CodeCell .jp-InputPrompt")];
  const ran = prompts.length > 0 && prompts.every(p => /^\\[\\d+\\]:$/.test(p.textContent.trim()));
  return ran || document.querySelector(stderr) !== null;
}"""


def run_all(page: Any, lab: JupyterLab) -> None:
    """Run every cell once this notebook's own kernel is idle (the server's other kernels say nothing of
    it), and wait until each has run; a cell that wrote to stderr fails the test with what it wrote."""
    lab.wait_idle()
    page.wait_for_selector('.jp-Notebook-ExecutionIndicator[data-status="idle"]', timeout=WAIT_MS)
    page.click('.lm-MenuBar-itemLabel:text-is("Run")')
    page.click('.lm-Menu-item[data-command="runmenu:run-all"]')
    page.wait_for_function(RAN_OR_FAILED, arg=STDERR, timeout=WAIT_MS)
    failed = page.locator(STDERR)
    if failed.count():
        pytest.fail("a notebook cell failed:\n" + "\n".join(failed.all_inner_texts())[-3000:])


def set_theme(page: Any, dark: bool) -> None:
    light = "true" if not dark else "false"
    if page.evaluate("() => document.body.dataset.jpThemeLight") == light:
        return
    page.click('.lm-MenuBar-itemLabel:text-is("Settings")')
    page.hover('.lm-Menu-itemLabel:text-is("Theme")')
    name = "JupyterLab Dark" if dark else "JupyterLab Light"
    page.click(f'.lm-Menu-item[data-command="apputils:change-theme"]:has-text("{name}")')
    page.wait_for_function(f"() => document.body.dataset.jpThemeLight === '{light}'", timeout=WAIT_MS)
    frames(page)  # the theme's stylesheet applies on the next frames


def send_as_geeta(lab: JupyterLab, text: str) -> None:
    """Send a message as Geeta over HTTP, from the test (the notebook wrote her token for this)."""
    import chatnb

    info = json.loads((lab.root_dir / "geeta.json").read_text())
    credential = chatnb.CommunicationTokenCredential(info["token"])
    with chatnb.ChatThreadClient(
        info["endpoint"], credential, info["thread"], connection_verify=info["ca"]
    ) as thread:
        thread.send_message(text, sender_display_name="Geeta")


def frames(page: Any) -> None:
    """Wait until the browser has drawn two more frames."""
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")


def axe_violations(page: Any, output: Any) -> list[str]:
    if not page.evaluate("() => typeof axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE))
    result: list[str] = output.evaluate(AXE_SCAN)
    return result


@pytest.mark.parametrize("ui", ["lab", "notebook"])
@pytest.mark.timeout(300)
def test_chat_panels_in_the_browser(lab: JupyterLab, browser: Any, ui: str) -> None:
    from playwright.sync_api import expect

    if not AXE.is_file():
        pytest.fail(f"{AXE} is missing: run .ci/setup-extras (npm ci in tests/axe)")
    started = time.monotonic()
    page = browser.new_page(viewport={"width": 1500, "height": 1300})
    errors: list[str] = []  # errors thrown by the widgets' module (anywidget loads it from a blob: URL)

    def on_error(exc: Any) -> None:
        if "blob:" in (exc.stack or ""):
            errors.append(f"{exc}\n{exc.stack}")

    page.on("pageerror", on_error)
    shots = artifacts_dir()
    try:
        page.goto(lab.notebook_url(f"chat_{ui}.ipynb", ui))
        page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=WAIT_MS)
        set_theme(page, dark=False)
        run_all(page, lab)
        jack, geeta = page.locator(".chatnb-panel-jack"), page.locator(".chatnb-panel-geeta")
        output = page.locator(".jp-OutputArea-output", has=jack)
        jack_box, geeta_box = jack.locator(".chatnb-composer-input"), geeta.locator(".chatnb-composer-input")
        jack_log, _geeta_log = jack.locator(".chatnb-scroller"), geeta.locator(".chatnb-scroller")
        expect(jack.locator(".chatnb-msg").last).to_contain_text(f"seed {SEEDED - 1}", timeout=WAIT_MS)
        expect(geeta.locator(".chatnb-participant")).to_have_count(2, timeout=WAIT_MS)
        assert jack_log.evaluate(AT_BOTTOM)  # opens at the latest message
        rows_at_open = jack.locator(".chatnb-row").count()
        assert 0 < rows_at_open < SEEDED  # the latest window, not the whole history

        # Shift+Enter makes a new line, Enter sends; the sender's view follows to the bottom.
        jack_box.click()
        jack_box.press_sequentially("Lunch at noon?")
        jack_box.press("Shift+Enter")
        jack_box.press_sequentially("Or at one https://example.org/menu")
        assert jack_box.input_value() == "Lunch at noon?\nOr at one https://example.org/menu"
        jack_box.press("Enter")
        expect(jack_box).to_have_value("")
        own = jack.locator(".chatnb-msg.chatnb-own").last
        expect(own).to_have_attribute("data-id", re.compile(r"^\d+$"))  # sent: the bubble is the message
        expect(own.locator(".chatnb-bubble")).to_have_text("Lunch at noon?Or at one https://example.org/menu")
        assert own.locator(".chatnb-bubble br").count() == 1
        expect(own.locator('.chatnb-bubble a[href="https://example.org/menu"]')).to_have_attribute(
            "target", "_blank"
        )
        expect(geeta.locator(".chatnb-msg.chatnb-other").last).to_contain_text(
            "Lunch at noon?", timeout=WAIT_MS
        )
        # Geeta's browser sees it: her panel sends the read receipt, Jack's bubble says so.
        expect(own.locator(".chatnb-receipt")).to_have_text("Seen by Geeta", timeout=WAIT_MS)
        assert jack_log.evaluate(AT_BOTTOM)

        # At the bottom, a new message scrolls into view.
        geeta_box.fill("Sure, noon")
        geeta_box.press("Enter")
        expect(jack.locator(".chatnb-msg").last).to_contain_text("Sure, noon", timeout=WAIT_MS)
        page.wait_for_function(
            "s => s.scrollHeight - s.scrollTop - s.clientHeight <= 48", arg=jack_log.element_handle()
        )
        expect(jack.locator(".chatnb-jump")).to_be_hidden()

        # Scrolled up, the reading position stays put and "1 new message" appears.
        jack_log.evaluate("s => { s.scrollTop = s.scrollHeight - s.clientHeight - 600; }")
        frames(page)  # the scroll event is handled on the next animation frame
        before = jack_log.evaluate("s => s.scrollTop")
        anchor = jack.locator(".chatnb-row").nth(rows_at_open // 2)
        anchor_top = anchor.evaluate("r => r.getBoundingClientRect().top")
        selected = anchor.evaluate(
            "r => { getSelection().selectAllChildren(r.querySelector('.chatnb-bubble'));"
            " return getSelection().toString(); }"
        )
        send_as_geeta(lab, "While you read")  # from outside the page: typing here would move the selection
        jump = jack.locator(".chatnb-jump")
        expect(jump).to_have_text("1 new message ↓", timeout=WAIT_MS)
        assert abs(jack_log.evaluate("s => s.scrollTop") - before) <= 1
        assert abs(anchor.evaluate("r => r.getBoundingClientRect().top") - anchor_top) <= 1
        assert (
            selected and page.evaluate("() => getSelection().toString()") == selected
        )  # patched, not redrawn
        jump.click()
        page.wait_for_function(
            "s => s.scrollHeight - s.scrollTop - s.clientHeight <= 48", arg=jack_log.element_handle()
        )
        expect(jump).to_be_hidden()

        # Out of sight, a new message gets the "New messages" divider.
        jack.evaluate("p => { p.style.display = 'none'; }")
        frames(page)  # the view has been told it is out of sight
        geeta_box.fill("While you were away")
        geeta_box.press("Enter")
        expect(geeta.locator(".chatnb-msg", has_text="While you were away")).to_have_count(1, timeout=WAIT_MS)
        # Jack's view has it too, while still out of sight (its copy may come after Geeta's).
        expect(jack.locator(".chatnb-msg", has_text="While you were away")).to_have_count(1, timeout=WAIT_MS)
        expect(page.locator(".chatnb-panel-jack .chatnb-view")).to_be_hidden()
        jack.evaluate("p => { p.style.display = ''; }")
        divider = jack.locator(".chatnb-row", has=page.locator(".chatnb-unread"))
        expect(divider).to_contain_text("While you were away", timeout=WAIT_MS)

        # Edit and delete own messages from the transcript.
        own = jack.locator(".chatnb-msg.chatnb-own").last
        own.hover()
        own.locator(".chatnb-edit").click()
        editor = jack.locator(".chatnb-edit-input")
        editor.fill("Lunch at noon, edited")
        editor.press("Enter")
        expect(jack.locator(".chatnb-msg.chatnb-own").last.locator(".chatnb-bubble")).to_have_text(
            "Lunch at noon, edited"
        )
        expect(jack.locator(".chatnb-msg.chatnb-own").last.locator(".chatnb-edited")).to_be_visible(
            timeout=WAIT_MS
        )
        expect(geeta.locator(".chatnb-msg", has_text="Lunch at noon, edited")).to_have_count(
            1, timeout=WAIT_MS
        )
        jack_box.fill("Oops, wrong chat")
        jack_box.press("Enter")
        oops = jack.locator(".chatnb-msg.chatnb-own", has_text="Oops, wrong chat")
        expect(oops).to_have_attribute("data-id", re.compile(r"^\d+$"), timeout=WAIT_MS)  # sent: one bubble
        oops.focus()
        page.keyboard.press("Delete")  # keyboard: Delete on a focused own message asks first
        jack.locator(".chatnb-confirm-delete").click()
        expect(jack.locator(".chatnb-deleted .chatnb-bubble").last).to_have_text(
            "This message was deleted", timeout=WAIT_MS
        )
        expect(geeta.locator(".chatnb-deleted .chatnb-bubble").last).to_have_text(
            "This message was deleted", timeout=WAIT_MS
        )

        # Keyboard: the transcript is one tab stop; arrows move through the messages.
        jack.locator(".chatnb-log").focus()
        focused = page.evaluate("() => document.activeElement.className")
        page.keyboard.press("ArrowUp")
        after = page.evaluate("() => document.activeElement.className + ' ' + document.activeElement.tagName")
        assert "chatnb-msg" in after, (focused, after)

        # An html message: formatting kept, handlers stripped, the image a link (never fetched).
        geeta.locator('.chatnb-composer-type button[data-type="html"]').click()
        geeta_box.fill(
            '<b>Menu</b> <img src="https://127.0.0.1:9/x.png" alt="menu" onerror="document.title=\'pwned\'">'
        )
        geeta_box.press("Enter")
        bubble = jack.locator(".chatnb-msg.chatnb-other").last.locator(".chatnb-bubble")
        expect(bubble.locator("b")).to_have_text("Menu", timeout=WAIT_MS)
        assert bubble.locator("img").count() == 0
        expect(bubble.locator("a.chatnb-image-link")).to_have_text("[image: menu]")
        assert "pwned" not in page.title()

        # Load older: scrolling to the top pages back to the very first message.
        for _ in range(10):
            if jack.locator(".chatnb-start", has_text="start of the conversation").is_visible():
                break
            count = jack.locator(".chatnb-row").count()
            jack_log.evaluate("s => { s.scrollTop = 0; }")
            page.wait_for_function(
                "([panel, n]) => panel.querySelectorAll('.chatnb-row').length > n"
                " || panel.querySelector('.chatnb-start').textContent.includes('start of the conversation')",
                arg=[jack.element_handle(), count],
                timeout=WAIT_MS,
            )
        expect(jack.locator(".chatnb-start")).to_have_text("This is the start of the conversation.")
        expect(jack.locator(".chatnb-msg", has_text="seed 0").first).to_be_attached()
        assert jack.locator(".chatnb-older").is_hidden()

        # Narrow: nothing clipped or sticking out of the 480 px panel; light screenshots; axe.
        assert round(geeta.evaluate("p => p.getBoundingClientRect().width")) <= 480
        assert geeta.evaluate(CLIPPED) == []
        assert jack.evaluate(CLIPPED) == []
        output.screenshot(path=str(shots / f"e2e-{ui}-light.png"))
        geeta.screenshot(path=str(shots / f"e2e-{ui}-narrow.png"))
        assert axe_violations(page, output) == []

        # Dark theme: the widgets follow JupyterLab's variables.
        set_theme(page, dark=True)
        for selector in (
            ".chatnb-scroller",
            ".chatnb-msg.chatnb-other .chatnb-bubble",
            ".chatnb-composer-input",
        ):
            colours = jack.locator(selector).last.evaluate(LUMINANCE)
            assert colours["bg"] < 0.1 and colours["fg"] > 0.5, (selector, colours)
        send = jack.locator(".chatnb-composer-send").evaluate(LUMINANCE)
        assert (max(send["fg"], send["bg"]) + 0.05) / (min(send["fg"], send["bg"]) + 0.05) >= 4.5
        output.screenshot(path=str(shots / f"e2e-{ui}-dark.png"))
        assert axe_violations(page, output) == []
        set_theme(page, dark=False)
        assert not errors, errors
    except BaseException:
        page.screenshot(path=str(shots / f"e2e-{ui}-failed.png"), full_page=True)
        raise
    finally:
        page.close()
    print(f"browser end-to-end run ({ui}): {time.monotonic() - started:.1f} s")
