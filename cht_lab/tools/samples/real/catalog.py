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
    return []
