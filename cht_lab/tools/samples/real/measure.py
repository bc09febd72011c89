"""Labels measured on the delivered recording: each logged action refined to the first changed frame.

The script knows when it acted (wall clock) and the recorder knows when it grabbed each frame, so
an action's time on the recording is known to a frame; the application then takes a frame or
many to paint it (up to a second and a half on a busy machine). Each label is therefore set to
the first decoded frame near that estimate (see refine() for the window) that differs from the
frame before it in the action's region: the part of the screen it changes, minus the rectangles
that move by themselves (clock, toasts, spinner, a terminal). Times are the delivered file's
decoded pts, as the scorer sees them.

A gradual change (a fade, a wipe, a smooth scroll) also gets `end`: its last changing frame, the
first one showing the new picture fully. A page scroll is labeled `cut` when it lands in one frame
and `gradual` when it glides; a transition that a busy machine showed in one frame (no step in
between was painted) is labeled `cut`, and its note says so.
"""

from __future__ import annotations

import logging
import re
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cht_lab.ffmpeg import MediaError, find_ffmpeg
from cht_lab.tools.samples.real.harness import Action, Rect

log = logging.getLogger(__name__)

AW, AH = 384, 216  # analysis size: a fifth of 1080p
PIXEL_DIFF = 12  # gray levels: a pixel changed (compression noise stays below this at this scale)
CHANGED = 0.004  # a frame changed in a region when this fraction of the region's pixels changed ...
RELATIVE = 0.08  # ... and at least this fraction of the largest change in the search window (a hover
#                  highlight or a late pointer move is not the slide change that follows it)
STILL_FRAMES = 6  # a gradual change is over after this many frames without change (a loaded machine
#                  drops animation frames: a fade can stand still for 3-4 frames between two steps)
BEFORE, AFTER = 0.3, 1.5  # the search window around the script's estimate, in seconds: the browser
#                          takes 0.1-1 s to show an action on a busy machine ...
CONFIRMED_AFTER = 0.8  # ... or until this long after the application said it was done (Script.confirm)


@dataclass
class Decoded:
    """Every frame of a recording, small and gray, with its pts (seconds)."""

    pts: np.ndarray
    frames: np.ndarray  # n x AH x AW uint8
    width: int  # the recording's size
    height: int


def decode(path: Path, width: int = AW, height: int = AH) -> Decoded:
    """Decode the first video stream at width x height gray; pts from showinfo (microseconds)."""
    with tempfile.TemporaryFile() as err:
        proc = subprocess.run(
            [find_ffmpeg(), "-hide_banner", "-nostdin", "-i", str(path), "-map", "0:v:0", "-vf",
             f"settb=1/1000000,showinfo,scale={width}:{height}:flags=area,format=gray",
             "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "gray", "pipe:1"],
            stdout=subprocess.PIPE, stderr=err, timeout=600)
        err.seek(0)
        text = err.read().decode("utf-8", "replace")
    if proc.returncode != 0:
        raise MediaError(path, f"ffmpeg could not decode it: {text.strip().splitlines()[-1:]}")
    pts = np.array([int(m) / 1e6 for m in re.findall(r"\] n:\s*\d+\s+pts:\s*(-?\d+)", text)])
    size = re.search(r"Stream #0:\d+.*Video:.*?(\d{2,5})x(\d{2,5})", text)
    frames = np.frombuffer(proc.stdout, np.uint8)
    n = len(frames) // (width * height)
    if n != len(pts) or n == 0:
        raise MediaError(path, f"decoded {n} frames but {len(pts)} timestamps")
    w, h = (int(size.group(1)), int(size.group(2))) if size else (width * 5, height * 5)
    return Decoded(pts, frames[: n * width * height].reshape(n, height, width), w, h)


def region_mask(dec: Decoded, region: Rect | None, exclude: Sequence[Rect] = ()) -> np.ndarray:
    """Analysis pixels inside `region` (the whole screen when None) and outside every `exclude` rect."""
    h, w = dec.frames.shape[1:]
    sx, sy = w / dec.width, h / dec.height
    mask = np.zeros((h, w), bool)
    x, y, rw, rh = region if region is not None else (0, 0, dec.width, dec.height)
    mask[int(y * sy): int(np.ceil((y + rh) * sy)), int(x * sx): int(np.ceil((x + rw) * sx))] = True
    for x, y, rw, rh in exclude:  # one analysis pixel of margin: the area scaler bleeds
        mask[max(0, int(y * sy) - 1): int(np.ceil((y + rh) * sy)) + 1,
             max(0, int(x * sx) - 1): int(np.ceil((x + rw) * sx)) + 1] = False
    return mask


def changed_fraction(dec: Decoded, mask: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """For frames lo..hi-1 (lo >= 1): fraction of the mask's pixels that changed from the frame before."""
    a = dec.frames[lo - 1: hi - 1][:, mask].astype(np.int16)
    b = dec.frames[lo: hi][:, mask].astype(np.int16)
    return (np.abs(b - a) > PIXEL_DIFF).mean(axis=1)


@dataclass
class Measured:
    action: Action
    estimate: float  # the script's time on the recording
    time: float | None  # first changed frame's pts (None: no change found)
    end: float | None  # gradual: first frame showing the new picture fully
    kind: str
    peak: float  # largest changed fraction in the window
    confirmed: float | None = None  # when the application said it was done, on the recording's clock
    note: str = ""  # the label's note (the action's, and what the measurement found)


def refine(dec: Decoded, actions: Sequence[Action], t0_wall: float, exclude: Sequence[Rect] = ()) -> list[Measured]:
    """Measure every labeled action (distractors are skipped) on the decoded recording.

    An action's change is looked for from 0.3 s before the script's estimate up to 1.5 s after it
    (or 0.8 s after the application confirmed it), never past the next logged action; a gradual
    change ends with the last frame that changes before then (with a confirmation: the script
    waited for the scroll or transition to end; without: after STILL_FRAMES still frames).
    """
    out = []
    n = len(dec.pts)
    for i, a in enumerate(actions):
        if a.kind == "distractor":
            continue
        est = a.wall - t0_wall
        confirmed = None if a.confirmed is None else a.confirmed - t0_wall
        following = actions[i + 1].wall - t0_wall if i + 1 < len(actions) else float("inf")
        mask = region_mask(dec, a.region, exclude)
        lo = max(1, int(np.searchsorted(dec.pts, est - BEFORE)))
        reach = min(following, est + AFTER if confirmed is None else max(est + AFTER, confirmed + CONFIRMED_AFTER))
        hi = min(n, int(np.searchsorted(dec.pts, reach, side="right")))
        frac = changed_fraction(dec, mask, lo, hi) if hi > lo else np.zeros(0)
        hit = np.flatnonzero(frac > max(CHANGED, RELATIVE * float(frac.max(initial=0))))
        if not len(hit):
            out.append(Measured(a, est, None, None, a.kind, float(frac.max(initial=0)), confirmed, a.note))
            continue
        k0 = lo + int(hit[0])
        if confirmed is not None:  # the change is over by `reach`: its last changing frame before then
            moving = np.flatnonzero(frac[k0 - lo:] > CHANGED)
            k1 = k0 + int(moving[-1])
        else:  # follow the change until STILL_FRAMES quiet frames (at most 3 s)
            tail = changed_fraction(dec, mask, k0, min(n, k0 + 3 * 25 + STILL_FRAMES))
            last, quiet = 0, 0
            for j, f in enumerate(tail):
                if f > CHANGED:  # the absolute floor: a fade's last steps are small
                    last, quiet = j, 0
                else:
                    quiet += 1
                    if quiet >= STILL_FRAMES:
                        break
            k1 = k0 + last
        kind, note = a.kind, a.note
        if kind == "scroll":
            kind = "gradual" if k1 > k0 else "cut"
        elif kind == "gradual" and k1 == k0:  # a busy machine showed no step of the transition
            kind, note = "cut", f"{note}, shown in one frame"
        end = float(dec.pts[k1]) if kind == "gradual" else None
        if kind != "gradual" and k1 > k0 + 1:
            log.warning("%s at %.2f s: the change goes on for %d frames", a.note, dec.pts[k0], k1 - k0 + 1)
        out.append(Measured(a, est, float(dec.pts[k0]), end, kind, float(frac.max()), confirmed, note))
    return out


def labels(measured: Sequence[Measured]) -> pd.DataFrame:
    """labels.csv rows (time, end, kind, note) of the measured events."""
    rows = [{"time": round(m.time, 6), "end": np.nan if m.end is None else round(m.end, 6), "kind": m.kind,
             "note": m.note} for m in measured if m.time is not None]
    return pd.DataFrame(rows, columns=["time", "end", "kind", "note"])


def script_table(measured: Sequence[Measured], actions: Sequence[Action], t0_wall: float, fps: float) -> pd.DataFrame:
    """The script's log on the recording's clock: each event's estimate next to its measured time (in
    frames: the agreement report), and the distractors' estimates (their notes say what they did)."""
    rows = [{"estimate": round(m.estimate, 3),
             "confirmed": None if m.confirmed is None else round(m.confirmed, 3), "time": m.time, "end": m.end,
             "kind": m.kind, "offset_frames": None if m.time is None else round((m.time - m.estimate) * fps, 1),
             "peak": round(m.peak, 4), "note": m.note} for m in measured]
    rows += [{"estimate": round(a.wall - t0_wall, 3), "kind": "distractor", "note": a.note}
             for a in actions if a.kind == "distractor"]
    return pd.DataFrame(rows, columns=["estimate", "confirmed", "time", "end", "kind", "offset_frames", "peak",
                                       "note"]).sort_values("estimate", kind="stable").reset_index(drop=True)
