"""Labeled samples recorded from real applications (`cht-lab samples --real`).

The bundled samples are drawn by numpy; these are real screens: Chromium on a virtual X screen
(Xvfb), recorded with the bundled ffmpeg's x11grab while a script acts on real applications (a
JupyterLab editing session, a web slide deck with transitions, a browser with tabs and modal
dialogs), with typing, scrolling, toasts, spinners, hover, a clock and pointer moves as
distractors. Labels come from the script's actions and are measured on the delivered file's
frames (measure.py), so each one sits on the first frame that shows the change.

Modules: xvfb (display, pointer, recorder, delivery encode), harness (Chromium, local pages, the
script's log), measure (labels from frames), recording (one scenario end to end), slides / browser
/ editor (one scenario each), catalog (the committed recordings as SampleSpecs), pages/ (what
the scenarios show). Recording needs Xvfb, Chromium and Playwright; reading the committed
samples needs none of them. Nothing heavy is imported with this package (bundled.py imports
catalog at start-up).
"""

import importlib
from typing import Any

__all__ = ["SCENARIOS", "RecordingUnavailable", "missing_tools", "record"]


def __getattr__(name: str) -> Any:
    where = {"SCENARIOS": "recording", "record": "recording", "RecordingUnavailable": "xvfb", "missing_tools": "xvfb"}
    if name in where:
        return getattr(importlib.import_module(f"{__name__}.{where[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
