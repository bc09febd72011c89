"""What every scenario uses: Chromium on the virtual screen, a local web server, and the script's log.

A scenario is a function `run(ctx: Script)` that acts on real applications and says what each
action is: `ctx.event(kind, note, region)` right before an action an agent should see (its wall
time is logged), `ctx.distract(what)` before one it should not. `ctx.at(t)` waits until `t`
seconds into the script's plan. The plan clock stops while the script is late (a slow machine:
Playwright round trips, a busy browser), so the planned gaps between actions are kept as at least
that long and the recording grows by the delay (`ctx.slip`). The log is turned into labels by
measure.py on the delivered file.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import logging
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cht_lab.tools.samples.real.xvfb import Display, Pointer

log = logging.getLogger(__name__)

PAGES = Path(__file__).resolve().parent / "pages"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--test-type", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-features=Translate,MediaRouter,OptimizationHints", "--password-store=basic",
                 "--window-position=0,0", "--hide-crash-restore-bubble"]

Rect = tuple[int, int, int, int]  # x, y, w, h in screen pixels


@dataclass
class Action:
    """One logged action: wall time right before its input, what it is, where its change shows."""

    wall: float
    kind: str  # cut | gradual | partial | scroll (a page scroll: cut or gradual, as measured) | distractor
    note: str
    region: Rect | None = None
    confirmed: float | None = None  # wall time when the application's own state showed the action done


@dataclass
class Script:
    """The running scenario: the screen, its pointer, the log and the sample's clock."""

    display: Display
    pointer: Pointer
    start: float = 0.0
    slip: float = 0.0  # seconds the plan clock stood still because the script was late
    actions: list[Action] = field(default_factory=list)
    distractors: dict[str, Rect] = field(default_factory=dict)  # named screen rectangles that move by themselves

    def begin(self) -> None:
        self.start = time.time()

    def now(self) -> float:
        """Seconds on the plan clock (wall time since the start, less the slip)."""
        return time.time() - self.start - self.slip

    def at(self, t: float) -> None:
        """Wait until plan time `t`; when the script is already late, the plan clock slips instead."""
        delay = t - self.now()
        if delay > 0:
            time.sleep(delay)
        elif delay < -0.02:
            self.slip -= delay
            log.debug("script %.2f s late for its step at %.1f s (slip now %.2f s)", -delay, t, self.slip)

    def event(self, kind: str, note: str, region: Rect | None = None) -> None:
        self.actions.append(Action(time.time(), kind, note, region))
        log.info("%6.2f s  %-8s %s", time.time() - self.start, kind, note)

    def confirm(self, page: Any, predicate: str, arg: Any = None, timeout: float = 15.0,
                again: Callable[[], None] | None = None) -> None:
        """Wait until `predicate` (a JS function) holds in `page`, then two more animation frames; the
        time goes on the last action (its search window on the recording reaches this far). The
        script never runs ahead of the application this way: a distractor cannot land between an
        action and its picture. `again`: an action a person repeats when nothing happened (a
        double-click lost while the list re-rendered); the action's time is then the repeat's."""
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        try:
            page.wait_for_function(predicate, arg=arg, timeout=(4.0 if again else timeout) * 1000, polling="raf")
        except PlaywrightTimeout:
            if again is None:
                raise
            log.info("%s: nothing happened, once more", self.actions[-1].note)
            self.actions[-1].wall = time.time()
            again()
            page.wait_for_function(predicate, arg=arg, timeout=timeout * 1000, polling="raf")
        page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
        self.actions[-1].confirmed = time.time()

    def distract(self, note: str) -> None:
        self.actions.append(Action(time.time(), "distractor", note))
        log.debug("%6.2f s  distractor %s", time.time() - self.start, note)

    # ----------------------------------------------------------------- input helpers

    def glide(self, x: float, y: float, duration: float = 0.5) -> None:
        self.pointer.move(x, y, duration)

    def click_at(self, x: float, y: float, duration: float = 0.5) -> None:
        self.pointer.move(x, y, duration)
        self.pointer.click()


def screen_box(page: Any, selector: str) -> Rect:
    """The element's rectangle in screen pixels (the page's viewport offset by the window's chrome)."""
    box = page.locator(selector).first.bounding_box()
    if box is None:
        raise RuntimeError(f"{selector!r} is not visible")
    dx, dy = viewport_origin(page)
    return (round(box["x"] + dx), round(box["y"] + dy), round(box["width"]), round(box["height"]))


def viewport_origin(page: Any) -> tuple[int, int]:
    """Screen position of the viewport's top-left corner (the window sits at 0,0; chrome is on top)."""
    sx, sy, ow, oh, iw, ih = page.evaluate("[screenX, screenY, outerWidth, outerHeight, innerWidth, innerHeight]")
    return int(sx + (ow - iw) // 2), int(sy + oh - ih)


def centre(rect: Rect) -> tuple[float, float]:
    x, y, w, h = rect
    return x + w / 2, y + h / 2


# --------------------------------------------------------------------------- local pages


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        log.debug("http: " + format, *args)

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-store")
        super().end_headers()


@contextlib.contextmanager
def serve(directory: Path = PAGES) -> Iterator[str]:
    """Serve `directory` on 127.0.0.1 (a free port) from a thread; yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="pages-http", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


# --------------------------------------------------------------------------- Chromium


@contextlib.contextmanager
def chromium(display: Display, *, app_url: str | None = None) -> Iterator[Any]:
    """A headed Chromium window filling the screen; yields its Playwright BrowserContext.

    `app_url`: an app window (`--app`: no tab strip, no address bar: a presentation, a desktop
    app); without it a normal browser window with tabs and the address bar.
    """
    from playwright.sync_api import sync_playwright

    args = [*CHROMIUM_ARGS, f"--window-size={display.width},{display.height}"]
    if app_url:
        args.append(f"--app={app_url}")
    with tempfile.TemporaryDirectory(prefix="cht-lab-chromium-") as profile, sync_playwright() as pw:
        ctx = pw.chromium.launch_persistent_context(
            profile, headless=False, executable_path=CHROMIUM, env=display.env(), no_viewport=True, args=args,
            ignore_default_args=["--enable-automation"], timeout=60_000)
        try:
            yield ctx
        finally:
            ctx.close()
