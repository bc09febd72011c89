"""real_editor: a JupyterLab editing session on a few Python files of our own (pages/editor/).

JupyterLab (the venv's, on a temporary root with its own settings) runs in a Chromium app
window: file browser on the left, the files in tabs, a terminal at the bottom running a progress
line (spinner, clock, counter).
Events: file switches (a click on a tab, or a double-click in the file browser; the files look
alike: same font, same layout, only the code differs), page scrolls in the editor (PageDown, or
a fast burst of wheel notches), JupyterLab's rename dialog opening and closing over the dimmed
page (partial).
Distractors: typing comments at line ends (the caret blinks), saving (the tab's dirty mark),
small wheel scrolls (one notch: 120 px of a 725 px view), hovering over the file browser,
JupyterLab toasts in the bottom-right corner, the terminal's progress line, pointer moves.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cht_lab.tools.samples.real.child import owned_process
from cht_lab.tools.samples.real.harness import PAGES, Rect, Script, centre, chromium, screen_box, viewport_origin
from cht_lab.tools.samples.real.xvfb import RecordingUnavailable

log = logging.getLogger(__name__)

DURATION = 42.0
DESCRIPTION = ("JupyterLab editing look-alike Python files: tab and file-browser switches, page scrolls, a dialog; "
               "typing, saving, small scrolls, hover, toasts, a terminal progress line and pointer distract.")
WHAT = {"terminal": "JupyterLab terminal panel: a progress line (spinner, clock, counter) rewritten 10 times a second",
        "toasts": "JupyterLab notifications in the bottom-right corner"}
FILES = ("tides.py", "turbines.py", "archive.py", "report.py")
SETTINGS = {  # user settings: no news or update prompts popping up on their own
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": '{"fetchNews": "false", '
                                                                        '"checkForUpdates": false}',
    "@jupyterlab/apputils-extension/themes.jupyterlab-settings": '{"theme": "JupyterLab Light"}',
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _jupyter_lab(root: Path) -> Iterator[str]:
    """The venv's JupyterLab on `root`, no token, isolated settings; yields its URL."""
    port = _free_port()
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(root / ".cfg"), "JUPYTER_RUNTIME_DIR": str(root / ".run"),
           "JUPYTERLAB_SETTINGS_DIR": str(root / ".settings"), "JUPYTERLAB_WORKSPACES_DIR": str(root / ".ws")}
    for name, text in SETTINGS.items():
        path = root / ".settings" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    args = [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
            "--ServerApp.token=", "--ServerApp.password=", f"--ServerApp.root_dir={root}",
            "--LabApp.expose_app_in_browser=True", "--ServerApp.disable_check_xsrf=True", "--allow-root"]
    url = f"http://127.0.0.1:{port}"
    with open(root / ".run-lab.log", "wb") as log_file, \
            owned_process(args, grace=15, env=env, stdout=log_file, stderr=subprocess.STDOUT, cwd=root) as proc:
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/status", timeout=2).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RecordingUnavailable("JupyterLab did not start: "
                                               + (root / ".run-lab.log").read_text()[-500:]) from None
                time.sleep(0.5)
        yield url


_SETUP = """async (files) => {
  const app = window.jupyterapp;
  await app.restored;
  for (const f of files) await app.commands.execute('docmanager:open', {path: f, factory: 'Editor'});
  const term = await app.commands.execute('terminal:create-new');
  app.shell.add(term, 'down');
  await new Promise(r => setTimeout(r, 1500));
  return term.id;
}"""


@contextlib.contextmanager
def opened(ctx: Script, base: str) -> Iterator[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="cht-lab-editor-") as tmp:
        root = Path(tmp)
        for f in [*FILES, "notes.md", "ticker.py"]:
            shutil.copy(PAGES / "editor" / f, root / f)
        with _jupyter_lab(root) as url, chromium(ctx.display, app_url=f"{url}/lab") as browser:
            page = browser.pages[0]
            page.wait_for_function("window.jupyterapp !== undefined", timeout=90_000)
            page.evaluate(_SETUP, list(FILES))
            ctx.click_at(*centre(screen_box(page, ".jp-Terminal")), 0.2)  # the real pointer: no CDP hover left over
            page.keyboard.type("clear; python3 ticker.py\n")
            page.wait_for_timeout(800)
            ctx.click_at(*centre(screen_box(page, _tab_selector("tides.py"))), 0.2)
            ctx.glide(900, 400, 0.2)
            page.wait_for_timeout(1500)
            ox, oy = viewport_origin(page)
            w, h = page.evaluate("[innerWidth, innerHeight]")
            ctx.distractors = {"terminal": screen_box(page, ".jp-Terminal"),
                               "toasts": (ox + w - 420, oy + h - 260, 420, 260)}
            app = {"page": page, "viewport": (ox, oy, w, h),
                   "main": screen_box(page, "#jp-main-dock-panel"),
                   "browser": {f: screen_box(page, f'.jp-DirListing-item:has-text("{f}")')
                               for f in [*FILES, "notes.md"]},
                   }
            yield app


def _tab_selector(name: str) -> str:
    return f'#jp-main-dock-panel .lm-TabBar-tab:has-text("{name}")'


# what the script waits for before it goes on (Script.confirm): the application's own state
_CURRENT = """(name) => {
  const t = document.querySelector('#jp-main-dock-panel .lm-TabBar-tab.lm-mod-current');
  return !!t && t.textContent.includes(name);
}"""
_SCROLLER = "window.jupyterapp.shell.currentWidget.node.querySelector('.cm-scroller')"  # the tab in front
_SCROLL_STATE = f"() => {{ const s = {_SCROLLER}; return s ? [s.scrollTop, s.clientHeight] : [0, 0]; }}"
_SCROLLED = f"""(before) => {{  // moved, and still for 200 ms (a smooth scroll has ended)
  const s = {_SCROLLER};
  if (!s || s.scrollTop === before) return false;
  if (window.__top !== s.scrollTop) {{ window.__top = s.scrollTop; window.__since = performance.now(); return false; }}
  return performance.now() - window.__since > 200;
}}"""
_DIALOG = "(open) => !!document.querySelector('.jp-Dialog') === open"


def _scroll_state(page: Any) -> tuple[float, float]:
    top, height = page.evaluate(_SCROLL_STATE)
    return float(top), float(height)


def _scrolled(ctx: Script, page: Any, before: tuple[float, float]) -> None:
    """Wait for a scroll to end; the last action's note gets its distance (a small scroll is < 1/3 page)."""
    page.evaluate("() => { window.__top = undefined; }")
    ctx.confirm(page, _SCROLLED, before[0])
    top, height = _scroll_state(page)
    ctx.actions[-1].note += f" ({abs(top - before[0]):.0f} px of a {height:.0f} px view)"


def _line_end(app: dict[str, Any], n: int) -> tuple[float, float]:
    """Screen position just right of the end of line `n` of those in view in the current editor."""
    x, y = app["page"].evaluate("""(n) => {
      const node = window.jupyterapp.shell.currentWidget.node;
      const view = node.querySelector('.cm-scroller').getBoundingClientRect();
      const lines = [...node.querySelectorAll('.cm-line')].map(l => l.getBoundingClientRect())
        .filter(r => r.top >= view.top && r.bottom <= view.bottom);
      const r = lines[Math.min(n, lines.length - 1)];
      return [r.right, r.top + r.height / 2];
    }""", n)
    ox, oy = app["origin"]
    return ox + x - 4, oy + y


def _type(ctx: Script, page: Any, text: str, until: float, rng: random.Random) -> None:
    for ch in text:
        if ctx.now() > until:
            return
        page.keyboard.type(ch)
        time.sleep(rng.uniform(0.05, 0.14) if ch != " " else rng.uniform(0.1, 0.25))


def _comment(ctx: Script, app: dict[str, Any], line: int, text: str, until: float, rng: random.Random) -> None:
    """Click at the end of a line and type a trailing comment (no new line: the code below stays put)."""
    ctx.distract(f"typing: {text.strip()}")
    ctx.click_at(*_line_end(app, line), 0.45)
    app["page"].keyboard.press("End")
    _type(ctx, app["page"], text, until, rng)


def _focus_editor(ctx: Script, app: dict[str, Any]) -> None:
    """Click into the visible editor's text (the caret moves there): keys go to the editor."""
    ctx.distract("click: caret into the editor")
    ctx.click_at(*_line_end(app, 5), 0.4)


def _switch_tab(ctx: Script, app: dict[str, Any], name: str, note: str) -> None:
    ctx.glide(*centre(screen_box(app["page"], _tab_selector(name))), 0.45)  # tabs move when one opens
    time.sleep(0.3)
    ctx.event("cut", note, app["main"])
    ctx.pointer.click()
    ctx.confirm(app["page"], _CURRENT, name, again=ctx.pointer.click)
    ctx.glide(ctx.pointer.x + 120, 300, 0.3)  # off the tab bar before its tooltip shows


def _open_in_browser(ctx: Script, app: dict[str, Any], name: str, note: str) -> None:
    """Double-click a file in the file browser: its tab opens (or comes to the front)."""
    def double_click() -> None:
        ctx.pointer.click()
        time.sleep(0.08)
        ctx.pointer.click()

    ctx.event("cut", note, app["main"])
    double_click()
    ctx.confirm(app["page"], _CURRENT, name, again=double_click)


def _notify(ctx: Script, app: dict[str, Any], message: str, kind: str = "info") -> None:
    ctx.distract(f"toast: {message}")
    app["page"].evaluate("([m, k]) => { window.jupyterapp.commands.execute('apputils:notify', "
                         "{message: m, type: k, options: {autoClose: 2200}}); }", [message, kind])


def run(ctx: Script, app: dict[str, Any]) -> None:
    rng = random.Random(5)
    page, view = app["page"], app["viewport"]
    app["origin"] = viewport_origin(page)
    _comment(ctx, app, 9, "  # checked against the 2025 tables", 2.2, rng)
    _switch_tab(ctx, app, "turbines.py", "tab: tides.py -> turbines.py")            # 3
    ctx.at(4.6)
    ctx.distract("hover: file browser")
    for f in ("archive.py", "report.py", "notes.md"):
        ctx.glide(*centre(app["browser"][f]), 0.35)
        time.sleep(0.15)
    ed = _editor_box(app)
    ctx.glide(ed[0] + ed[2] * 0.5, ed[1] + ed[3] * 0.45, 0.4)
    ctx.at(7.0)
    before = _scroll_state(page)
    ctx.event("scroll", "wheel burst: a page down in turbines.py", app["main"])
    ctx.pointer.wheel(8)
    _scrolled(ctx, page, before)
    ctx.at(9.0)
    ctx.distract("scroll: one wheel notch")
    before = _scroll_state(page)
    ctx.pointer.wheel(1)
    _scrolled(ctx, page, before)
    ctx.glide(*centre(app["browser"]["archive.py"]), 0.5)
    ctx.at(10.5)
    _open_in_browser(ctx, app, "archive.py", "file browser: open archive.py")        # 10.5
    ctx.at(12.0)
    _comment(ctx, app, 14, "  # one folder per unit and month", 13.4, rng)
    ctx.at(14.5)
    before = _scroll_state(page)
    ctx.event("scroll", "PageDown in archive.py", app["main"])
    page.keyboard.press("PageDown")
    _scrolled(ctx, page, before)
    ctx.at(16.0)
    ctx.distract("save: Ctrl+S")
    page.keyboard.press("Control+s")
    ctx.at(16.6)
    _notify(ctx, app, "archive.py saved · 3 bundles re-indexed", "success")
    ctx.at(18.5)
    ctx.event("partial", "dialog opens: rename file", view)
    page.evaluate("() => { window.jupyterapp.commands.execute('docmanager:rename'); }")  # resolves on close
    ctx.confirm(page, _DIALOG, True)
    ctx.at(19.6)
    ctx.distract("typing: new name in the dialog")
    page.keyboard.press("End")
    _type(ctx, page, "_v2", 20.4, rng)
    ctx.at(21.0)
    ctx.event("partial", "dialog closes: rename cancelled", view)
    page.keyboard.press("Escape")
    ctx.confirm(page, _DIALOG, False)
    ctx.at(22.2)
    ctx.distract("pointer: towards the tabs")
    ctx.glide(*centre(screen_box(page, _tab_selector("tides.py"))), 0.6)
    ctx.at(23.0)
    _switch_tab(ctx, app, "report.py", "tab: archive.py -> report.py")               # 23.5
    ctx.at(24.8)
    _comment(ctx, app, 11, "  # sites in board order", 26.0, rng)
    ctx.at(26.3)
    _switch_tab(ctx, app, "tides.py", "tab: report.py -> tides.py")                  # 27
    ctx.at(28.3)
    ctx.distract("scroll: one wheel notch")
    ed = _editor_box(app)
    ctx.glide(ed[0] + ed[2] * 0.55, ed[1] + ed[3] * 0.5, 0.35)
    before = _scroll_state(page)
    ctx.pointer.wheel(1)
    _scrolled(ctx, page, before)
    ctx.at(29.3)
    _notify(ctx, app, "Files only: no kernel is running")
    _focus_editor(ctx, app)
    ctx.at(31.0)
    before = _scroll_state(page)
    ctx.event("scroll", "PageDown in tides.py", app["main"])
    page.keyboard.press("PageDown")
    _scrolled(ctx, page, before)
    ctx.at(32.5)
    ctx.distract("scroll: one wheel notch up")
    before = _scroll_state(page)
    ctx.pointer.wheel(-1)
    _scrolled(ctx, page, before)
    ctx.glide(*centre(app["browser"]["notes.md"]), 0.6)
    ctx.at(34.5)
    _open_in_browser(ctx, app, "notes.md", "file browser: open notes.md (a new tab)")  # 34.5
    ctx.at(36.0)
    ctx.distract("pointer: over the notes")
    for _ in range(3):
        ctx.glide(rng.uniform(600, 1500), rng.uniform(250, 600), 0.45)
    ctx.at(37.8)
    _switch_tab(ctx, app, "turbines.py", "tab: notes.md -> turbines.py")             # 38.5
    ctx.at(39.8)
    _comment(ctx, app, 6, "  # states as the logger reports them", DURATION - 0.8, rng)


def _editor_box(app: dict[str, Any]) -> Rect:
    """The visible editor's rectangle (the main area below the tab bar)."""
    x, y, w, h = app["page"].evaluate(f"() => {{ const r = {_SCROLLER}.getBoundingClientRect(); "
                                      f"return [r.x, r.y, r.width, r.height]; }}")
    ox, oy = app["origin"]
    return round(ox + x), round(oy + y), round(w), round(h)
