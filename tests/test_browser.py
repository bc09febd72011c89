"""The notebook in a real JupyterLab, driven by a real Chromium: the panel renders and reacts.

Skipped (with the reason) when Playwright, JupyterLab or /usr/bin/chromium are missing.
Screenshots land in test-artifacts/ (gitignored).
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
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
    for d in ("config", "runtime", "data", "tmp", "workspaces", "settings"):
        (work / d).mkdir()
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(work / "config"), "JUPYTER_RUNTIME_DIR": str(work / "runtime"),
           "TMPDIR": str(work / "tmp"), ENV_VAR: str(work / "samples"), "CHT_LAB_DATA": str(work / "data"), "MPLBACKEND": "Agg",
           "JUPYTER_PLATFORM_DIRS": "1"}
    news = work / "settings" / "@jupyterlab" / "apputils-extension"
    news.mkdir(parents=True)
    (news / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')  # no news toast over the panel
    token = secrets.token_hex(16)
    port = _free_port()
    log = (work / "server.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}", "--ServerApp.port_retries=0",
         "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={token}", "--allow-root", f"--ServerApp.root_dir={root}",
         "--LabApp.expose_app_in_browser=True", f"--LabApp.workspaces_dir={work / 'workspaces'}",
         f"--LabApp.user_settings_dir={work / 'settings'}", "--ServerApp.open_browser=False"],
        stdout=log, stderr=subprocess.STDOUT, env=env, cwd=root)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                pytest.fail(f"jupyterlab exited ({proc.returncode}): {(work / 'server.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"jupyterlab did not answer in 90 s: {(work / 'server.log').read_text()[-2000:]}")
            time.sleep(0.2)  # polling a server that is starting; the deadline bounds it
        yield {"base": base, "token": token, "root": root, "log": work / "server.log"}
    finally:
        _stop_server(proc)
        log.close()


def test_panel_renders_and_reacts_to_the_slider(lab):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            console_errors: list[str] = []
            page.on("pageerror", lambda exc: console_errors.append(str(exc)))
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
            plot = panel.locator("img.cht-plot")
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
            panel.scroll_into_view_if_needed()
            page.screenshot(path=str(ARTIFACTS / "browser-panel-before.png"), full_page=True)

            count = panel.locator(".cht-count")
            before_count = count.inner_text()
            count_text_at_best = count.text_content()
            before_src = plot.get_attribute("src")
            readout = panel.locator(".cht-slider .widget-readout")
            current = float(readout.inner_text())
            new_value = round(current / 4, 3)
            readout.click()
            page.keyboard.press("Control+A")
            page.keyboard.type(str(new_value))
            page.keyboard.press("Enter")
            page.wait_for_function(
                "([before, src]) => { const p = document.querySelector('.cht-panel');"
                " return p.querySelector('.cht-count').textContent !== before"
                " && p.querySelector('img.cht-plot').getAttribute('src') !== src; }",
                arg=[count.text_content(), before_src], timeout=30_000)
            after_count = count.inner_text()
            page.screenshot(path=str(ARTIFACTS / "browser-panel-after.png"), full_page=True)

            n_before = int(before_count.split()[0])
            n_after = int(after_count.split()[0])
            assert float(readout.inner_text()) == pytest.approx(new_value, abs=0.002)
            assert n_after > n_before, (before_count, after_count)
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
            best = float(apply_best.inner_text().split("(")[1].rstrip(")"))
            apply_best.click()
            page.wait_for_function(
                "(value) => Math.abs(parseFloat(document.querySelector('.cht-panel .cht-slider .widget-readout')"
                ".textContent) - value) < 0.002", arg=best, timeout=30_000)
            # the notebook had applied the best threshold before the slider was moved: same detections again
            page.wait_for_function("(text) => document.querySelector('.cht-panel .cht-count').textContent === text",
                                   arg=count_text_at_best, timeout=30_000)
            page.screenshot(path=str(ARTIFACTS / "browser-panel-tuning.png"), full_page=True)
            assert not console_errors, console_errors
        finally:
            browser.close()
