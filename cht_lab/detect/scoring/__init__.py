"""Per-frame scene metrics for screen content, computed in Python on the small analysis frames.

Screen shares are not films: most of the picture is still, and what moves (typing, the cursor, a
clock, a toast, a progress bar, a playing video) is not a scene change, while a slide change, a
window switch, a modal dialog or a new file in the same editor theme is. The default metric,
`event` (scoring/event.py), rates each change of the screen once, when it has come to rest, by
its *structure*: a change spread over the content area counts with the area it spans, a compact
or thin one (toast, badge, progress bar, a video region) with its own small box, however many
pixels it has; what a scroll explains does not count; colour counts (chroma at low resolution).
It also says where the change began (`onset`) and whether the screen shows an earlier one again
(`revisit`). The block metrics (scoring/legacy.py) are kept for comparison.

Which frames are captured is decided elsewhere (`cht_lab.detect.decision`: score >= threshold,
min_gap); for `event` the capture is the scored frame (at rest) and the detection's time is its
onset (`onset` frames earlier).

Columns (metrics in [0, 1]; "score" is filled from ffmpeg, not here):

====================  ===========================================================================
score                 ffmpeg's scene score (`select` filter's `scene`) on the analysis frames
pixels                mean |difference| to the previous frame / 255
blocks                fraction of blocks changed since the previous frame, volatile blocks ignored
lookback              fraction of blocks changed since ~0.3 s earlier, volatile blocks ignored
settled               fraction of blocks changed between resting pictures (legacy event score)
event                 structure of the change between resting pictures (the default)
onset                 (not a metric) frames from the `event` change's first frame to this frame
revisit               (not a metric) frames back to an earlier `event` change showing the same screen
====================  ===========================================================================
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from cht_lab.detect.scoring.event import EVENT_PARAMS, EventScorer
from cht_lab.detect.scoring.legacy import BLOCK_METRICS, DEFAULT_PARAMS, BlockScorer, ScoringError

METRICS: tuple[str, ...] = ("score", *BLOCK_METRICS, "event")
PYTHON_METRICS: tuple[str, ...] = METRICS[1:]  # what FrameScorer.update() returns as metrics
AUX_COLUMNS: tuple[str, ...] = ("onset", "revisit")  # stored with the scores, not metrics
ONSET_METRICS: tuple[str, ...] = ("event",)  # metrics whose detections start `onset` frames earlier
DEFAULT_METRIC = "event"
# The default metric and threshold are chosen by leave-one-sample-out cross-validation over every
# labeled sample (benchmarks/accuracy.py): for each sample, the metric and threshold with the best
# mean F1 on the *other* samples; over the 8 synthetic and 3 recorded samples `event` won all 11
# folds, at a median fold threshold of 0.1539 (folds 0.141-0.168), shipped as 0.154. The other
# metrics' thresholds are their earlier defaults.
DEFAULT_THRESHOLDS: dict[str, float] = {
    "score": 0.035,
    "pixels": 0.014,
    "blocks": 0.15,
    "lookback": 0.15,
    "settled": 0.15,
    "event": 0.154,
}
EVENT_PREFIX = "event_"  # FrameScorer(event_pix_noise=12): parameters of the event metric


class FrameScorer:
    """Stateful metrics for one video stream (or one segment).

    `update(gray, pts, chroma=(u, v))` takes the next analysis frame (uint8 luma, H x W; chroma
    planes at half size, optional) and returns PYTHON_METRICS and AUX_COLUMNS; `score(...)` also
    fills in "score" (ffmpeg's scene score). Frames are compared by time when `pts` (seconds) is
    given, else as if at `fps`. The frames passed in may be reused by the caller afterwards.
    Parameters: the block metrics' (DEFAULT_PARAMS) by name, the event metric's with the prefix
    `event_` (EVENT_PARAMS).
    """

    metrics: tuple[str, ...] = METRICS

    def __init__(self, width: int | None = None, height: int | None = None, fps: float = 30.0, **params: Any):
        event = {k[len(EVENT_PREFIX):]: v for k, v in params.items() if k.startswith(EVENT_PREFIX)}
        unknown = set(event) - set(EVENT_PARAMS)
        if unknown:
            raise ScoringError(f"unknown event parameter(s) {sorted(unknown)}; known: {sorted(EVENT_PARAMS)}")
        block = {k: v for k, v in params.items() if not k.startswith(EVENT_PREFIX)}
        self._blocks = BlockScorer(width, height, fps, **block)  # validates fps and the block parameters
        self.params = {**self._blocks.params, **{EVENT_PREFIX + k: v for k, v in event.items()}}
        self._event_params = event
        self.fps = self._blocks.fps
        self._event: EventScorer | None = None
        self.width, self.height = (int(width), int(height)) if width and height else (None, None)
        if self.width and self.height:
            self._event = EventScorer(self.width, self.height, self.fps, **event)
        self._n = 0
        self._prev_t: float | None = None

    def reset(self) -> None:
        """Forget the history (a new segment / a restarted decode)."""
        self._blocks.reset()
        if self._event is not None:
            self._event.reset()
        self._n = 0
        self._prev_t = None

    @property
    def event(self) -> EventScorer | None:
        return self._event

    def update(self, gray: np.ndarray, pts: float | None = None,
               chroma: tuple[np.ndarray, np.ndarray] | None = None) -> dict[str, float]:
        """Metrics (not "score") and aux columns for the next frame."""
        gray = np.asarray(gray)
        if gray.ndim != 2 or gray.dtype != np.uint8:
            raise ScoringError(f"expected a 2-D uint8 gray frame, got {gray.dtype} {gray.shape}")
        if self._event is None:
            self.height, self.width = gray.shape
            self._event = EventScorer(self.width, self.height, self.fps, **self._event_params)
        elif gray.shape != (self.height, self.width):
            raise ScoringError(f"frame shape {gray.shape} differs from the scorer's {(self.height, self.width)}")
        t = float(pts) if pts is not None and math.isfinite(pts) else self._n / self.fps
        if self._prev_t is not None and t <= self._prev_t:
            t = self._prev_t + 1e-6  # keep time moving forward (duplicate / odd timestamps)
        self._prev_t = t
        self._n += 1
        out = self._blocks.update(gray, t)
        u = v = None
        if chroma is not None:
            u, v = chroma
            if u.shape != ((self.height + 1) // 2, (self.width + 1) // 2) or u.shape != v.shape:
                raise ScoringError(f"chroma planes {u.shape}/{v.shape} do not fit a {gray.shape} frame")
        score, onset, revisit = self._event.update(gray, u, v, t)
        out["event"] = score
        out["onset"] = float(onset)
        out["revisit"] = float(revisit)
        return out

    def score(self, gray: np.ndarray, scene: float | None = None, pts: float | None = None,
              chroma: tuple[np.ndarray, np.ndarray] | None = None) -> dict[str, float]:
        """All METRICS (and AUX_COLUMNS) for the next frame: update() plus "score" = ffmpeg's scene score."""
        out = self.update(gray, pts, chroma)
        out["score"] = float(scene) if scene is not None else math.nan
        return out


def score_frames(frames: Any, pts: Any = None, fps: float = 30.0, chroma: Any = None,
                 **params: Any) -> dict[str, np.ndarray]:
    """Python metrics and aux columns for a sequence of gray frames (tests, notebooks): {name: float32 array}.

    `chroma`: a sequence of (u, v) planes, one per frame (optional).
    """
    scorer = FrameScorer(fps=fps, **params)
    names = (*PYTHON_METRICS, *AUX_COLUMNS)
    cols: dict[str, list[float]] = {m: [] for m in names}
    for i, g in enumerate(frames):
        row = scorer.update(g, None if pts is None else float(pts[i]), None if chroma is None else chroma[i])
        for m in names:
            cols[m].append(row[m])
    return {m: np.asarray(v, np.float32) for m, v in cols.items()}


__all__ = ["AUX_COLUMNS", "DEFAULT_METRIC", "DEFAULT_PARAMS", "DEFAULT_THRESHOLDS", "EVENT_PARAMS", "METRICS",
           "ONSET_METRICS", "PYTHON_METRICS", "FrameScorer", "ScoringError", "score_frames"]
