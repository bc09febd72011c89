"""real_browser: a Chromium window with three tabs of a small web app (pages/web/): inbox, dashboard, handbook.

Events: tab switches (a click on the tab strip), page scrolls in the handbook (PageDown/PageUp:
Chromium's smooth scroll, labeled gradual when it glides over several frames, cut when it
lands in one), modal `<dialog>`s opening and closing over a dimmed page (partial).
Distractors: typing a reply and a search (caret blinking), small mouse-wheel scrolls (one or two
notches, well under a third of the page), hovering over mail rows and links, corner toasts, the
header's spinner and clock, pointer moves.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Iterator
from typing import Any

from cht_lab.tools.samples.real.harness import Rect, Script, centre, chromium, screen_box, viewport_origin

DURATION = 40.0
DESCRIPTION = ("A browser with tabs of a web app: tab switches, page scrolls, modal dialogs over a dimmed page; "
               "typing, small scrolls, hover, corner toasts, spinner, clock and pointer distract.")
WHAT = {"clock": "the app header's clock (HH:MM:SS), ticks every second",
        "spinner": "the app header's 'Syncing' spinner, turns all the time",
        "toasts": "notifications slide in and out of the bottom-right corner"}
PAGES = ("inbox", "dashboard", "article")
TAB_Y, TAB_X0, TAB_W = 20, 40, 240  # Chromium's tab strip: tab i is centred at TAB_X0 + (i + 0.5) * TAB_W


@contextlib.contextmanager
def opened(ctx: Script, base: str) -> Iterator[dict[str, Any]]:
    with chromium(ctx.display) as browser:
        pages = {}
        for i, name in enumerate(PAGES):
            page = browser.pages[0] if i == 0 else browser.new_page()
            page.goto(f"{base}/web/{name}.html", wait_until="load")
            pages[name] = page
        pages["inbox"].bring_to_front()
        inbox = pages["inbox"]
        inbox.wait_for_timeout(1500)
        ox, oy = viewport_origin(inbox)
        w, h = inbox.evaluate("[innerWidth, innerHeight]")
        ctx.distractors = {"clock": screen_box(inbox, ".clock"), "spinner": screen_box(inbox, ".status .spin"),
                           "toasts": (ox + w - 364, oy + h - 200, 364, 200)}
        pages["viewport"] = (ox, oy, w, h)
        pages["boxes"] = {  # looked up before the recording starts: each look-up is a round trip
            "reply": screen_box(inbox, "#reply"), "search": screen_box(inbox, "#search"),
            "archive": screen_box(inbox, "[data-open=archive]"),
            "rows": [screen_box(inbox, f".msg >> nth={i}") for i in range(inbox.locator(".msg").count())],
            "export": screen_box(pages["dashboard"], "[data-open=export]"),
            "toc": [screen_box(pages["article"], f".toc a >> nth={i}") for i in range(8)]}
        yield pages


def _tab(ctx: Script, pages: dict[str, Any], name: str, note: str) -> None:
    """Click tab `name` in the tab strip (the real pointer); the event is logged right before the click."""
    i = PAGES.index(name)
    ctx.glide(TAB_X0 + (i + 0.5) * TAB_W, TAB_Y, 0.45)
    time.sleep(0.25)
    ctx.event("cut", note, None)
    ctx.pointer.click()
    ctx.confirm(pages[name], "() => document.visibilityState === 'visible'", again=ctx.pointer.click)
    ctx.glide(ctx.pointer.x + 60, 420, 0.3)  # off the tab strip: no hover card


_SCROLLED = """(before) => {  // moved, and still for 200 ms (a smooth scroll has ended)
  if (scrollY === before) return false;
  if (window.__y !== scrollY) { window.__y = scrollY; window.__since = performance.now(); return false; }
  return performance.now() - window.__since > 200;
}"""
_DIALOG = "(open) => !!document.querySelector('dialog[open]') === open"


def _scroll(ctx: Script, page: Any, act: Any) -> None:
    """Scroll by `act()` (keys or wheel notches), wait until it has ended; the note gets the distance."""
    before = page.evaluate("() => { window.__y = undefined; return [scrollY, innerHeight]; }")
    act()
    ctx.confirm(page, _SCROLLED, before[0])
    after = page.evaluate("() => scrollY")
    ctx.actions[-1].note += f" ({abs(after - before[0]):.0f} px of a {before[1]:.0f} px view)"


def _type(ctx: Script, page: Any, text: str, until: float, rng: random.Random) -> None:
    for ch in text:
        if ctx.now() > until:
            return
        page.keyboard.type(ch)
        time.sleep(rng.uniform(0.05, 0.15) if ch != " " else rng.uniform(0.12, 0.28))


def _wander(ctx: Script, boxes: list[Rect], until: float, rng: random.Random) -> None:
    """Hover over `boxes` (rows, links light up) until `until` s."""
    while ctx.now() < until - 0.5:
        ctx.glide(*centre(rng.choice(boxes)), 0.4)
        time.sleep(rng.uniform(0.1, 0.3))


def run(ctx: Script, pages: dict[str, Any]) -> None:
    rng = random.Random(7)
    inbox, dash, doc = pages["inbox"], pages["dashboard"], pages["article"]
    view, box = pages["viewport"], pages["boxes"]
    # 0-3: reading mail, typing a reply
    ctx.distract("typing: a reply")
    ctx.click_at(*centre(box["reply"]), 0.5)
    _type(ctx, inbox, "Thursday works. I will bring the anode and the ", 2.1, rng)
    ctx.at(2.3)
    _tab(ctx, pages, "article", "tab: inbox -> handbook")                      # ~3.0
    ctx.at(4.2)
    ctx.glide(900, 600, 0.3)
    ctx.distract("scroll: one wheel notch")
    _scroll(ctx, doc, lambda: ctx.pointer.wheel(1))
    ctx.at(6.5)
    ctx.event("scroll", "page down in the handbook", view)
    _scroll(ctx, doc, lambda: doc.keyboard.press("PageDown"))
    ctx.at(8.2)
    ctx.distract("scroll: two wheel notches")
    _scroll(ctx, doc, lambda: ctx.pointer.wheel(2))
    ctx.at(9.0)
    ctx.distract("toast: new mail")
    doc.evaluate("toast('New mail from Tom Rees: Seal sightings log', 2000, '✉')")
    ctx.at(11.5)
    ctx.event("scroll", "page down in the handbook", view)
    _scroll(ctx, doc, lambda: doc.keyboard.press("PageDown"))
    ctx.at(12.8)
    ctx.distract("hover: table of contents")
    _wander(ctx, box["toc"], 13.9, rng)
    _tab(ctx, pages, "dashboard", "tab: handbook -> dashboard")               # ~14.6
    ctx.at(16.0)
    ctx.distract("hover: export button")
    ctx.glide(*centre(box["export"]), 0.5)
    ctx.at(17.5)
    ctx.event("partial", "dialog opens: export report", view)
    ctx.pointer.click()
    ctx.confirm(dash, _DIALOG, True)
    ctx.at(18.4)
    ctx.distract("typing: a date in the dialog")
    ctx.click_at(*centre(screen_box(dash, "#export input >> nth=1")), 0.35)
    dash.keyboard.press("End")
    for _ in range(5):
        dash.keyboard.press("Backspace")
        time.sleep(0.09)
    _type(ctx, dash, "09-15", 19.4, rng)
    cancel = screen_box(dash, "#export [data-close] >> nth=0")
    ctx.glide(*centre(cancel), 0.4)
    ctx.at(20.5)
    ctx.event("partial", "dialog closes: export report", view)
    ctx.pointer.click()
    ctx.confirm(dash, _DIALOG, False)
    ctx.at(21.4)
    ctx.distract("toast: export queued")
    dash.evaluate("toast('Report export queued', 1800, '⤓')")
    ctx.at(22.2)
    _tab(ctx, pages, "inbox", "tab: dashboard -> inbox")                      # ~22.9
    ctx.at(24.0)
    ctx.distract("hover: mail rows")
    _wander(ctx, box["rows"], 25.4, rng)
    ctx.glide(*centre(box["archive"]), 0.4)
    ctx.at(26.0)
    ctx.event("partial", "dialog opens: archive 3 conversations", view)
    ctx.pointer.click()
    ctx.confirm(inbox, _DIALOG, True)
    ctx.at(27.3)
    ctx.distract("pointer: towards the archive button")
    ctx.glide(*centre(screen_box(inbox, "#archive .primary")), 0.6)
    ctx.at(28.5)
    ctx.event("partial", "dialog closes: archived", view)
    ctx.pointer.click()
    ctx.confirm(inbox, _DIALOG, False)
    ctx.at(29.4)
    ctx.distract("toast: archived")
    inbox.evaluate("toast('3 conversations archived · Undo', 2000, '✓')")
    ctx.distract("typing: a search")
    ctx.click_at(*centre(box["search"]), 0.4)
    _type(ctx, inbox, "gale warn", 30.6, rng)
    ctx.at(30.8)
    _tab(ctx, pages, "article", "tab: inbox -> handbook")                     # ~31.5
    ctx.at(32.8)
    ctx.glide(1000, 650, 0.3)
    ctx.distract("scroll: one wheel notch up")
    _scroll(ctx, doc, lambda: ctx.pointer.wheel(-1))
    ctx.at(34.5)
    ctx.event("scroll", "page up in the handbook", view)
    _scroll(ctx, doc, lambda: doc.keyboard.press("PageUp"))
    ctx.at(36.0)
    ctx.distract("pointer: over the text")
    for _ in range(3):
        ctx.glide(rng.uniform(500, 1500), rng.uniform(300, 900), 0.5)
    ctx.at(37.5)
    ctx.distract("scroll: one wheel notch")
    _scroll(ctx, doc, lambda: ctx.pointer.wheel(1))
