"""The recorded samples as SampleSpecs (SAMPLES["real_editor"], ...), registered by bundled.py.

These are recordings, not renderings: their `screen` is RECORDED, so `cht-lab samples` never
regenerates them and `sample_dir()` reports a missing one instead of drawing it. The events are
the labels that `cht-lab samples --real` measured on each recording (it prints a new entry for
this file after recording); the distractor rectangles are the screen areas that move by
themselves (clock, spinner, toasts, a terminal's progress line), in pixels of the 1920x1080 screen.
Everything else that distracts (typing, small scrolls, hover, pointer) roams and has no rectangle.

Only the drawing module's dataclasses are imported here: bundled.py imports this at start-up.
"""

from __future__ import annotations

from datetime import datetime

from cht_lab.tools.samples.draw import Distractor, Event, SampleSpec

RECORDED = "recorded"  # SampleSpec.screen of a recorded sample
CRF = 28

Label = tuple[float, float | None, str, str]  # time, end, kind, note
Rect = tuple[int, int, int, int]


def _spec(name: str, start: datetime, duration: float, labels: tuple[Label, ...],
          distractors: tuple[tuple[str, Rect, str], ...], description: str) -> SampleSpec:
    return SampleSpec(name=name, start=start, width=1920, height=1080, fps=25, duration=duration, screen=RECORDED,
                      events=tuple(Event(t, kind, note, None, end) for t, end, kind, note in labels),
                      distractors=tuple(Distractor(n, r, what) for n, r, what in distractors), crf=CRF,
                      description=description)


def recorded_specs() -> list[SampleSpec]:
    """The recorded samples committed under data/samples/ (see data/samples/README.md)."""
    return [
        _spec('real_editor', datetime(2026, 12, 2, 5, 22, 22), 44.0, (
            (3.4, None, 'cut', 'tab: tides.py -> turbines.py'),
            (7.16, 7.96, 'gradual', 'wheel burst: a page down in turbines.py (960 px of a 725 px view)'),
            (11.24, None, 'cut', 'file browser: open archive.py'),
            (14.72, None, 'cut', 'PageDown in archive.py (728 px of a 725 px view)'),
            (18.76, None, 'partial', 'dialog opens: rename file'),
            (21.12, None, 'partial', 'dialog closes: rename cancelled'),
            (24.44, None, 'cut', 'tab: archive.py -> report.py'),
            (27.68, None, 'cut', 'tab: report.py -> tides.py'),
            (31.28, None, 'cut', 'PageDown in tides.py (728 px of a 725 px view)'),
            (35.24, None, 'cut', 'file browser: open notes.md (a new tab)'),
            (40.96, None, 'cut', 'tab: notes.md -> turbines.py'),
        ), (
            ('terminal', (33, 832, 1853, 222),
             'JupyterLab terminal panel: a progress line (spinner, clock, counter) rewritten 10 times a second'),
            ('toasts', (1499, 819, 420, 260), 'JupyterLab notifications in the bottom-right corner'),
        ),
              'JupyterLab editing look-alike Python files: tab and file-browser switches, page scrolls, a dialog; '
              'typing, saving, small scrolls, hover, toasts, a terminal progress line and pointer distract.'),
        _spec('real_browser', datetime(2026, 12, 2, 5, 8, 1), 43.0, (
            (3.2, None, 'cut', 'tab: inbox -> handbook'),
            (7.52, 8.64, 'gradual', 'page down in the handbook (868 px of a 992 px view)'),
            (12.8, 13.04, 'gradual', 'page down in the handbook (868 px of a 992 px view)'),
            (16.36, None, 'cut', 'tab: handbook -> dashboard'),
            (19.52, None, 'partial', 'dialog opens: export report'),
            (23.12, None, 'partial', 'dialog closes: export report'),
            (25.64, None, 'cut', 'tab: dashboard -> inbox'),
            (29.2, None, 'partial', 'dialog opens: archive 3 conversations'),
            (31.28, None, 'partial', 'dialog closes: archived'),
            (34.4, None, 'cut', 'tab: inbox -> handbook'),
            (37.0, 37.12, 'gradual', 'page up in the handbook (868 px of a 992 px view)'),
        ), (
            ('clock', (1801, 106, 90, 21), "the app header's clock (HH:MM:SS), ticks every second"),
            ('spinner', (1701, 106, 22, 22), "the app header's 'Syncing' spinner, turns all the time"),
            ('toasts', (1555, 879, 364, 200), 'notifications slide in and out of the bottom-right corner'),
        ),
              'A browser with tabs of a web app: tab switches, page scrolls, modal dialogs over a dimmed page; '
              'typing, small scrolls, hover, corner toasts, spinner, clock and pointer distract.'),
        _spec('real_slides', datetime(2026, 12, 2, 5, 16, 45), 42.0, (
            (3.04, None, 'cut', 'slide 2 (cut)'),
            (7.28, 7.96, 'gradual', 'slide 3 (fade)'),
            (12.52, 12.8, 'gradual', 'slide 4 (wipe)'),
            (15.6, None, 'cut', 'slide 5 (cut)'),
            (20.16, 20.84, 'gradual', 'slide 6 (push)'),
            (24.64, 25.44, 'gradual', 'slide 7 (fade)'),
            (28.92, None, 'cut', 'slide 8 (cut)'),
            (33.6, 34.32, 'gradual', 'slide 9 (wipe)'),
            (37.32, 38.52, 'gradual', 'slide 10 (push)'),
        ), (
            ('clock', (1796, 16, 100, 24), 'presenter clock (HH:MM:SS), ticks every second'),
            ('spinner', (1693, 19, 85, 18), "'Syncing' spinner, turns all the time"),
            ('toasts', (1556, 880, 340, 176), 'Q&A toasts slide in and out of the bottom-right corner'),
            ('notes', (74, 912, 1320, 140), 'speaker notes typed (caret blinking)'),
        ),
              'A web slide deck in a Chromium app window: cuts, fades, wipes and pushes; speaker notes typed, '
              'clock, spinner, corner toasts, pointer and hover distract.'),
    ]
