"""The notebook in a real JupyterLab, driven by a real Chromium: the panel renders and reacts.

Skipped (with the reason) when Playwright, JupyterLab or /usr/bin/chromium are missing.
Screenshots land in test-artifacts/ (gitignored).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "live_session.ipynb"
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
RUN_ALL_TIMEOUT_MS = 240_000
HEIGHT = 1600  # tall enough that a panel's screenshot is not cut by JupyterLab's scrolling notebook


def _requirements() -> None:
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[browser]')")
    pytest.importorskip("jupyterlab", reason="jupyterlab is not installed (pip install -e '.[browser]')")
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium); Playwright must not download browsers")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop_server(proc: subprocess.Popen) -> None:
    """SIGTERM lets the server shut its kernels down; anything left of the tree is killed."""
    import psutil

    try:
        children = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)
    _, alive = psutil.wait_procs(children, timeout=5)
    for child in alive:
        child.kill()
    psutil.wait_procs(alive, timeout=5)


@contextlib.contextmanager
def jupyterlab(work: Path, root: Path, env: dict[str, str] | None = None) -> Iterator[dict]:
    """A JupyterLab server on a free local port with a token, rooted in `root`, its config, runtime,
    settings and temp dirs under `work` (no news toast over the page); stopped with its kernels.
    Yields base (URL), token, proc and log (the server's log file)."""
    for d in ("config", "runtime", "data", "tmp", "workspaces", "settings"):
        (work / d).mkdir(exist_ok=True)
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(work / "config"), "JUPYTER_RUNTIME_DIR": str(work / "runtime"),
           "TMPDIR": str(work / "tmp"), "CHT_LAB_DATA": str(work / "data"), "MPLBACKEND": "Agg",
           "JUPYTER_PLATFORM_DIRS": "1", **(env or {})}
    news = work / "settings" / "@jupyterlab" / "apputils-extension"
    news.mkdir(parents=True, exist_ok=True)
    (news / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')
    token, port = secrets.token_hex(16), _free_port()
    log_path = work / "server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}", "--ServerApp.port_retries=0",
             "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={token}", "--allow-root",
             f"--ServerApp.root_dir={root}", "--LabApp.expose_app_in_browser=True",
             f"--LabApp.workspaces_dir={work / 'workspaces'}", f"--LabApp.user_settings_dir={work / 'settings'}",
             "--ServerApp.open_browser=False"],
            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=root)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 90
            while True:
                if proc.poll() is not None:
                    pytest.fail(f"jupyterlab exited ({proc.returncode}): {log_path.read_text()[-2000:]}")
                try:
                    with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2) as r:
                        if r.status == 200:
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    pytest.fail(f"jupyterlab did not answer in 90 s: {log_path.read_text()[-2000:]}")
                time.sleep(0.2)  # polling a server that is starting; the deadline bounds it
            yield {"base": base, "token": token, "proc": proc, "log": log_path}
        finally:
            _stop_server(proc)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory):
    """A JupyterLab server on a free local port with a token, rooted in a temp dir holding the notebook."""
    _requirements()
    from cht_lab.tools.samples.render import ENV_VAR, sample_dir

    work = tmp_path_factory.mktemp("lab")
    bundled = sample_dir("slides")  # the notebook works on a copy: it writes an index into the session
    shutil.copytree(bundled, work / "samples" / bundled.name, ignore=shutil.ignore_patterns("index", ".cache"))
    root = work / "root"
    root.mkdir()
    shutil.copy(NOTEBOOK, root / NOTEBOOK.name)
    with jupyterlab(work, root, {ENV_VAR: str(work / "samples")}) as server:
        yield {**server, "root": root}


WRAPPER_CELL = """import ipywidgets as widgets
linked = widgets.FloatText(description="linked", step=0.001)
widgets.link((panel, "threshold"), (linked, "value"))
wrapper = widgets.VBox([widgets.HTML("<b>the recorded panel, inside a VBox</b>"), linked, panel])
wrapper.add_class("cht-wrapper")
wrapper"""

# Chromium lines that are not the page's doing: no network here, so no external fonts or CDN.
UNRELATED_CONSOLE = ("net::ERR_NAME_NOT_RESOLVED", "net::ERR_INTERNET_DISCONNECTED")


def _plot_scale(page, root: str) -> dict:
    """The score plot rendition the browser shows under `root`: its PNG width and the shown width."""
    return page.evaluate(
        "(root) => { const imgs = [...document.querySelector(root).querySelectorAll('img.cht-plot')]"
        ".filter(i => i.offsetParent !== null && i.naturalWidth > 0);"
        " return imgs.map(i => ({natural: i.naturalWidth, shown: i.clientWidth,"
        " narrow: i.classList.contains('cht-plot-narrow')})); }", root)


def _assert_readable_plot(page, root: str, width: int) -> None:
    shown = _plot_scale(page, root)
    assert len(shown) == 1, f"{width} px: expected one visible score plot, got {shown}"
    plot = shown[0]
    # a PNG shown at less than ~70 % of its size has tick labels under 8 px: unreadable
    assert plot["shown"] >= 0.7 * plot["natural"], f"{width} px: plot scaled down to {plot}"
    assert plot["narrow"] == (width < 1000), f"{width} px: wrong rendition {plot}"


def _screenshot(page, locator, name: str) -> None:
    locator.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / f"{name}-page.png"))
    locator.screenshot(path=str(ARTIFACTS / f"{name}.png"))


def test_panel_renders_and_reacts_at_1400_and_900_px(lab):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": HEIGHT})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
            page.on("console", lambda msg: errors.append(f"console: {msg.text}")
                    if msg.type == "error" and not any(u in msg.text for u in UNRELATED_CONSOLE) else None)
            page.goto(f"{lab['base']}/lab/tree/{NOTEBOOK.name}?token={lab['token']}", timeout=60_000)
            page.wait_for_function(
                "() => window.jupyterapp && document.querySelector('.jp-NotebookPanel .jp-Notebook')"
                " && window.jupyterapp.shell.currentWidget"
                " && window.jupyterapp.shell.currentWidget.sessionContext"
                " && window.jupyterapp.shell.currentWidget.sessionContext.session"
                " && window.jupyterapp.shell.currentWidget.sessionContext.session.kernel"
                " && window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.status === 'idle'",
                timeout=90_000)
            page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")

            panel = page.locator(".cht-panel").first
            panel.wait_for(state="visible", timeout=120_000)
            plot = panel.locator("img.cht-plot-wide")
            plot.wait_for(state="visible", timeout=60_000)
            # the whole notebook ran (the export cell printed its line) before touching the UI
            page.wait_for_function("() => [...document.querySelectorAll('.jp-OutputArea-output')]"
                                   ".some(e => /exported \\d+ frames to/.test(e.textContent))",
                                   timeout=RUN_ALL_TIMEOUT_MS)
            assert panel.locator(".cht-slider").count() == 1
            assert panel.locator(".cht-thumb img").count() >= 1
            page.wait_for_function(
                "() => { const p = document.querySelector('.cht-panel');"
                " return [...p.querySelectorAll('.cht-thumb')].some(t => t.offsetParent !== null); }",
                timeout=60_000)
            _assert_readable_plot(page, ".cht-panel", 1400)
            live_panel = page.locator(".cht-panel").nth(1)
            # the live panel's ticker reads the final state within a poll once the session has stopped
            page.wait_for_function("() => /stopped/.test(document.querySelectorAll('.cht-panel')[1]"
                                   ".querySelector('.cht-status').textContent)", timeout=30_000)
            _screenshot(page, panel, "browser-1400-panel")
            _screenshot(page, live_panel, "browser-1400-live-panel")

            count = panel.locator(".cht-count")
            before_count = count.inner_text()
            count_text_at_best = count.text_content()
            before_src = plot.get_attribute("src")
            readout = panel.locator(".cht-slider .widget-readout")
            current = float(readout.inner_text())
            # strict: the default event metric keeps only the changes that redraw (nearly) the whole screen
            new_value = 0.9
            assert new_value > current
            readout.click()
            page.keyboard.press("Control+A")
            page.keyboard.type(str(new_value))
            page.keyboard.press("Enter")
            page.wait_for_function(
                "([before, src]) => { const p = document.querySelector('.cht-panel');"
                " return p.querySelector('.cht-count').textContent !== before"
                " && p.querySelector('img.cht-plot-wide').getAttribute('src') !== src; }",
                arg=[count.text_content(), before_src], timeout=30_000)
            after_count = count.inner_text()
            count_text_strict = count.text_content()
            n_before = int(before_count.split()[0])
            n_after = int(after_count.split()[0])
            assert float(readout.inner_text()) == pytest.approx(new_value, abs=0.002)
            assert 0 < n_after < n_before, (before_count, after_count)
            assert plot.get_attribute("src") != before_src

            # a caption click enlarges its frame at full resolution (the sample is 1280 px wide)
            panel.locator(".cht-thumb-caption").first.click()
            enlarged = panel.locator("img.cht-enlarged")
            enlarged.wait_for(state="visible", timeout=30_000)
            page.wait_for_function("() => document.querySelector('.cht-panel img.cht-enlarged').naturalWidth >= 640",
                                   timeout=30_000)

            # the Tuning tab's button brings the slider back to the best threshold
            panel.get_by_text("Tuning", exact=True).click()
            apply_best = panel.locator(".cht-apply-best")
            apply_best.wait_for(state="visible", timeout=30_000)
            page.wait_for_function("() => /apply best \\(/.test(document.querySelector('.cht-panel .cht-apply-best')"
                                   ".textContent)", timeout=30_000)  # the tab draws when it is first shown
            best = float(apply_best.inner_text().split("(")[1].rstrip(")"))
            apply_best.click()
            page.wait_for_function(
                "(value) => Math.abs(parseFloat(document.querySelector('.cht-panel .cht-slider .widget-readout')"
                ".textContent) - value) < 0.002", arg=best, timeout=30_000)
            # the notebook had applied the best threshold before the slider was moved: same detections again
            page.wait_for_function("(text) => document.querySelector('.cht-panel .cht-count').textContent === text",
                                   arg=count_text_at_best, timeout=30_000)
            panel.locator("img.cht-tuning-plot").wait_for(state="visible", timeout=30_000)
            _screenshot(page, panel, "browser-1400-tuning")

            # the Audio tab: a list as long as the chunks, a player once one is selected, no console errors
            panel.get_by_text("Audio", exact=True).click()
            chunks = panel.locator(".cht-audio-list select")
            chunks.wait_for(state="visible", timeout=30_000)
            options = chunks.locator("option").count()
            assert options > 0
            assert int(chunks.get_attribute("size")) == max(2, min(options, 8))
            chunks.select_option(index=0)
            panel.locator("audio").wait_for(state="attached", timeout=30_000)
            page.wait_for_function("() => document.querySelector('.cht-panel audio').readyState >= 1", timeout=30_000)
            if options > 1:
                chunks.select_option(index=options - 1)
                page.wait_for_timeout(500)  # the element loads its new source; any range error shows by now
            _screenshot(page, panel, "browser-1400-audio")
            panel.get_by_text("Frames", exact=True).click()
            panel.locator(".cht-gallery button", has_text="close").click()
            enlarged.wait_for(state="hidden", timeout=30_000)

            # 900 px: the narrow rendition, shown at (nearly) its own size
            page.set_viewport_size({"width": 900, "height": HEIGHT})
            page.wait_for_function("() => { const i = document.querySelector('.cht-panel img.cht-plot-narrow');"
                                   " return i && i.offsetParent !== null; }", timeout=30_000)
            _assert_readable_plot(page, ".cht-panel", 900)
            _screenshot(page, panel, "browser-900-panel")

            # the same panel inside a VBox, its threshold linked to a FloatText: both views follow
            page.evaluate("""async (code) => {
                const app = window.jupyterapp, notebook = app.shell.currentWidget.content;
                notebook.activeCellIndex = notebook.widgets.length - 1;
                await app.commands.execute('notebook:insert-cell-below');
                notebook.activeCell.model.sharedModel.setSource(code);
                await app.commands.execute('notebook:run-cell');
            }""", WRAPPER_CELL)
            wrapped = page.locator(".cht-wrapper .cht-panel")
            wrapped.wait_for(state="visible", timeout=60_000)
            page.wait_for_function("() => { const p = document.querySelector('.cht-wrapper .cht-panel');"
                                   " return p && [...p.querySelectorAll('.cht-thumb')].some(t => t.offsetParent !== null); }",
                                   timeout=60_000)
            _assert_readable_plot(page, ".cht-wrapper .cht-panel", 900)
            linked = page.locator(".cht-wrapper input[type=number]").first
            wrapped_src = page.evaluate("() => document.querySelector('.cht-wrapper img.cht-plot-narrow').src")
            linked.fill(str(new_value))
            linked.press("Enter")
            for root in (".cht-panel", ".cht-wrapper .cht-panel"):  # two views of one panel: both follow
                page.wait_for_function(
                    "([root, text, value]) => { const p = document.querySelector(root);"
                    " return p.querySelector('.cht-count').textContent === text"
                    " && Math.abs(parseFloat(p.querySelector('.cht-slider .widget-readout').textContent) - value) < 0.002;"
                    " }", arg=[root, count_text_strict, new_value], timeout=30_000)
            page.wait_for_function("(src) => document.querySelector('.cht-wrapper img.cht-plot-narrow').src !== src",
                                   arg=wrapped_src, timeout=30_000)
            page.wait_for_function("() => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.status"
                                   " === 'idle'", timeout=60_000)
            _screenshot(page, page.locator(".cht-wrapper"), "browser-900-vbox")
            page.set_viewport_size({"width": 1400, "height": HEIGHT})
            page.wait_for_function("() => { const i = document.querySelector('.cht-wrapper img.cht-plot-wide');"
                                   " return i && i.offsetParent !== null; }", timeout=30_000)
            _assert_readable_plot(page, ".cht-wrapper .cht-panel", 1400)
            _screenshot(page, page.locator(".cht-wrapper"), "browser-1400-vbox")
            assert not errors, errors
        finally:
            browser.close()
