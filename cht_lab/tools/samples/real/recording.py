"""Recording one scenario into a labeled cht session directory (`cht-lab samples --real`).

Steps: Xvfb, the local pages, the application opened and settled, the recorder started, the
script run on its own timeline, the capture cut and encoded into `stream/<start>.mp4`, the
delivered file decoded and every logged action measured on it (measure.py), labels.csv written.
`script.csv` keeps the script's own estimate next to each measured label (the agreement report).
"""

from __future__ import annotations

import importlib
import logging
import math
import os
import shutil
import tempfile
import time
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import NamedTuple

import numpy as np
import pandas as pd

from cht_lab.layout import LABELS_CSV, STREAM_DIR, TIME_FORMAT
from cht_lab.tools.samples.audio import _write_wav, speech_like_audio
from cht_lab.tools.samples.real import measure
from cht_lab.tools.samples.real.harness import Script, serve
from cht_lab.tools.samples.real.xvfb import (
    FPS, Display, Grab, Pointer, Recorder, RecordingUnavailable, deliver, missing_tools,
)

log = logging.getLogger(__name__)

SCENARIOS = {"real_editor": "editor", "real_slides": "slides", "real_browser": "browser"}
SCRIPT_CSV = "script.csv"
AUDIO_RATE = 48_000


def scenario(name: str) -> ModuleType:
    try:
        return importlib.import_module(f"cht_lab.tools.samples.real.{SCENARIOS[name]}")
    except KeyError:
        raise ValueError(f"unknown recorded sample {name!r}; valid names: {', '.join(SCENARIOS)}") from None


class Recorded(NamedTuple):
    path: Path  # the new session directory
    entry: str  # its SampleSpec entry for catalog.py (Python source)


def record(name: str, root: str | os.PathLike[str], *, seed: int = 0, keep_work: bool = False) -> Recorded:
    """Record scenario `name` into a new session directory under `root`.

    Raises RecordingUnavailable when Xvfb, Chromium or Playwright is missing. `keep_work` keeps the
    lossless capture and a failed attempt in a hidden directory under `root` (for debugging).
    """
    missing = missing_tools()
    if missing:
        raise RecordingUnavailable("cannot record real samples here; missing: " + "; ".join(missing))
    mod = scenario(name)
    root_path = Path(root)
    root_path.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=root_path))
    try:
        capture = work / "capture.mkv"
        with Display() as display, serve() as base:
            pointer = Pointer(display)
            ctx = Script(display, pointer)
            try:
                with mod.opened(ctx, base) as app, Recorder(display, capture):
                    time.sleep(1.5)  # the recorder's first frames, then the sample starts
                    ctx.begin()
                    mod.run(ctx, app)
                    ctx.at(mod.DURATION + 2.5)  # a busy recorder may lose its last half second on stop
            finally:
                pointer.close()
        grabbed = Grab.read(capture).times
        # the plan and whatever the script ran late, in whole seconds, as far as the capture reaches
        duration = float(min(math.ceil(mod.DURATION + ctx.slip), math.floor(grabbed[-1] - ctx.start)))
        start = datetime.fromtimestamp(ctx.start).replace(microsecond=0)
        session = work / start.strftime(TIME_FORMAT)
        stream = session / STREAM_DIR / (start.strftime(TIME_FORMAT) + ".mp4")
        wav = work / "audio.wav"
        _write_wav(wav, speech_like_audio(duration, AUDIO_RATE, seed), AUDIO_RATE)
        t0 = deliver(capture, stream, ctx.start, duration, wav=wav)
        dec = measure.decode(stream)
        if len(dec.pts) != round(duration * FPS):
            raise RuntimeError(f"{name}: the recording holds {len(dec.pts)} frames, not {duration:g} s at {FPS} fps")
        measured = measure.refine(dec, ctx.actions, t0, exclude=list(ctx.distractors.values()))
        table = measure.script_table(measured, ctx.actions, t0, FPS)
        table.to_csv(session / SCRIPT_CSV, index=False)
        lost = [f"{m.action.note} (~{m.estimate:.2f} s)" for m in measured if m.time is None]
        if lost:
            raise RuntimeError(f"{name}: no change found on the recording for: {'; '.join(lost)}")
        measure.labels(measured).to_csv(session / LABELS_CSV, index=False)
        _report(name, session, duration, table, ctx)
        dest = root_path / session.name
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(session, dest)
        return Recorded(dest, catalog_entry(name, start, duration, measure.labels(measured), ctx.distractors, mod))
    finally:
        if not keep_work:
            shutil.rmtree(work, ignore_errors=True)


def catalog_entry(name: str, start: datetime, duration: float, labels: pd.DataFrame,
                  distractors: dict[str, tuple[int, int, int, int]], mod: ModuleType) -> str:
    """The recording as an entry of catalog.recorded_specs() (Python source, to paste there)."""
    rows = "".join(f"\n            ({r.time!r}, {None if pd.isna(r.end) else r.end!r}, {r.kind!r}, {r.note!r}),"
                   for r in labels.itertuples())
    rects = "".join(f"\n            ({k!r}, {tuple(v)!r}, {mod.WHAT.get(k, '')!r})," for k, v in distractors.items())
    when = f"datetime({start.year}, {start.month}, {start.day}, {start.hour}, {start.minute}, {start.second})"
    return (f"        _spec({name!r}, {when}, {duration!r}, ({rows}\n        ), ({rects}\n        ),\n"
            f"              {mod.DESCRIPTION!r}),")


def _report(name: str, session: Path, duration: float, table: pd.DataFrame, ctx: Script) -> None:
    table = table[table["kind"] != "distractor"]
    off = table["offset_frames"].to_numpy(float)
    log.info("%s: %.0f s, %d events (%s); measured minus script: median %.1f frames, range %.1f..%.1f; "
             "distractors: %s", name, duration, len(table), table["kind"].value_counts().to_dict(),
             float(np.median(off)), off.min(), off.max(),
             ", ".join(sorted({a.note.split(":")[0] for a in ctx.actions if a.kind == "distractor"})))
    log.info("%s: distractor rectangles %s", name, ctx.distractors)
    log.info("%s\n%s", session, table.to_string(index=False))
