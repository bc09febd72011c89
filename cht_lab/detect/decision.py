"""The capture rule, in one place: score >= threshold, at least `min_gap` seconds after the last capture.

The live detector applies it frame by frame (`ThresholdDecider`); recorded sessions and tuning
apply it to a whole score column at once (`select_scenes`). Both give the same captures for the
same scores, so a threshold tuned offline behaves identically live.
"""

from __future__ import annotations

import numpy as np

DEFAULT_MIN_GAP = 1.0  # seconds; the seed's flush-window dedup, expressed in time so it holds at any fps


class ThresholdDecider:
    """Per-frame form of the capture rule; the threshold can change between frames."""

    def __init__(self, threshold: float, min_gap: float = DEFAULT_MIN_GAP):
        self.threshold = float(threshold)
        self.min_gap = float(min_gap)
        self._last_capture: float | None = None

    def decide(self, ts: float, score: float) -> bool:
        """True when the frame at `ts` with `score` should be captured (and records the capture)."""
        if not (score >= self.threshold):  # NaN never captures
            return False
        if self._last_capture is not None and ts < self._last_capture + self.min_gap:
            return False
        self._last_capture = ts
        return True

    def note_capture(self, ts: float) -> None:
        """A capture made outside the rule (manual) still starts a gap."""
        self._last_capture = ts


def select_scenes(ts: np.ndarray, scores: np.ndarray, threshold: float, min_gap: float = DEFAULT_MIN_GAP) -> np.ndarray:
    """Positions (into `ts`) that the capture rule selects; `ts` must be non-decreasing.

    Vectorised: one searchsorted gives every candidate's first successor outside the gap; the
    Python loop then only hops from capture to capture over plain ints (one step per capture).
    """
    ts = np.asarray(ts, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    cand = np.flatnonzero(scores >= threshold)
    if cand.size == 0 or min_gap <= 0:
        return cand
    cand_ts = ts[cand]
    successor = np.searchsorted(cand_ts, cand_ts + min_gap, side="left").tolist()
    hops = []
    i, n = 0, cand.size
    while i < n:
        hops.append(i)
        i = successor[i]
    return cand[hops]
