"""real_slides: a presenter runs a web slide deck (pages/slides/) in a Chromium app window.

Events: nine slide changes, hard cuts and transitions with easing (a 1.1 s fade, a 1 s wipe, a
0.9 s push), by the clicker key (PageDown) or a click on the slide.
Distractors: speaker notes typed (caret blinking), the presenter clock ticking, a "Syncing"
spinner, Q&A toasts in the bottom-right corner, the pointer wandering over the slide ("laser
pointer") and hovering over the toolbar (buttons light up).
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Iterator
from typing import Any

from cht_lab.tools.samples.real.harness import Script, centre, chromium, screen_box

DURATION = 40.0
DESCRIPTION = ("A web slide deck in a Chromium app window: cuts, fades, wipes and pushes; speaker notes typed, "
               "clock, spinner, corner toasts, pointer and hover distract.")
WHAT = {"clock": "presenter clock (HH:MM:SS), ticks every second",
        "spinner": "'Syncing' spinner, turns all the time",
        "toasts": "Q&A toasts slide in and out of the bottom-right corner",
        "notes": "speaker notes typed (caret blinking)"}

# (time, how, transition as in pages/slides/index.html): the slide that comes next
CHANGES = [(3.0, "key", "none"), (7.0, "key", "fade"), (11.0, "click", "wipe"), (15.0, "key", "none"),
           (19.0, "key", "push"), (23.5, "click", "fade"), (28.0, "key", "none"), (32.0, "key", "wipe"),
           (36.0, "key", "push")]
TOASTS = [(4.2, "Priya asked a question"), (16.2, "Tom reacted with 👏"), (25.2, "Aoife joined"),
          (33.2, "Recording saved to the board share")]
NOTES = ("Start with the pilot: two turbines, one season. Stress that every reading is public. "
         "Kestrel Bay beat the model by 8 percent in July. Orme Point: blades fouled in week 6, "
         "switched antifouling. Mention the guard rail. Ask the board about Gannet Quay. ")


@contextlib.contextmanager
def opened(ctx: Script, base: str) -> Iterator[tuple[Any, dict[str, Any]]]:
    with chromium(ctx.display, app_url=f"{base}/slides/index.html") as browser:
        page = browser.pages[0]
        page.wait_for_load_state("load")
        page.wait_for_timeout(1500)
        ctx.distractors = {"clock": screen_box(page, "#clock"), "spinner": screen_box(page, "#saving"),
                           "toasts": (1556, 880, 340, 176), "notes": screen_box(page, "#notes-text")}
        ctx.glide(*centre(screen_box(page, "#notes-text")), 0.2)
        ctx.pointer.click()
        boxes = {"stage": screen_box(page, "#stage"), "notes": screen_box(page, "#notes-text"),  # before the start:
                 "buttons": [screen_box(page, f"nav button:nth-child({i})") for i in range(1, 5)]}  # round trips
        yield page, boxes


def _type_until(ctx: Script, page: Any, text: Iterator[str], until: float, rng: random.Random) -> None:
    """Type the notes like a person (bursts of keys, short pauses) until `until` s."""
    while ctx.now() < until - 0.15:
        ch = next(text)
        page.keyboard.type(ch)
        time.sleep(rng.uniform(0.06, 0.16) if ch != " " else rng.uniform(0.12, 0.32))


def _notes() -> Iterator[str]:
    while True:
        yield from NOTES


def run(ctx: Script, app: tuple[Any, dict[str, Any]]) -> None:
    rng = random.Random(11)
    page, boxes = app
    stage, notes, buttons = boxes["stage"], boxes["notes"], boxes["buttons"]
    text = _notes()
    toasts = list(TOASTS)
    prev_end = 0.0
    for i, (t, how, transition) in enumerate(CHANGES):
        # the quiet stretch before this change: type notes, a toast, hover or laser pointer
        slot = (prev_end + 0.5, t - 0.7)
        while toasts and toasts[0][0] < slot[1] - 1.0:
            when, msg = toasts.pop(0)
            ctx.at(max(when, ctx.now()))
            ctx.distract(f"toast: {msg}")
            page.evaluate("m => toast(m, 2000)", msg)
        if i % 3 == 2:  # hover over the toolbar, then back to the slide for the click
            ctx.distract("hover: toolbar buttons")
            for b in buttons:
                ctx.glide(*centre(b), 0.35)
                time.sleep(0.25)
        elif i % 3 == 1:  # laser pointer over the slide
            ctx.distract("pointer: laser over the slide")
            for _ in range(4):
                ctx.glide(stage[0] + rng.uniform(200, 1200), stage[1] + rng.uniform(150, 700), 0.45)
        else:
            ctx.distract("typing: speaker notes")
            ctx.click_at(*centre(notes), 0.4)
            _type_until(ctx, page, text, slot[1] - 0.5, rng)
        if how == "click":  # rest on the slide well before the click
            ctx.glide(stage[0] + rng.uniform(900, 1300), stage[1] + rng.uniform(500, 760), 0.4)
        ctx.at(t)
        note = f"slide {i + 2} ({'cut' if transition == 'none' else transition})"
        ctx.event("cut" if transition == "none" else "gradual", note, stage)
        if how == "click":
            ctx.pointer.click()
        else:
            page.keyboard.press("PageDown")
        ctx.confirm(page, "(n) => current === n && !transitioning", i + 1)
        prev_end = t + (1.3 if transition != "none" else 0.2)
    ctx.at(prev_end + 0.5)
    ctx.distract("typing: speaker notes")
    ctx.click_at(*centre(notes), 0.4)
    _type_until(ctx, page, text, DURATION - 0.5, rng)
