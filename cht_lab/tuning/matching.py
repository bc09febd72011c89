"""Matching detections against labels, and the detections themselves: scenes at a threshold.

Nothing here decodes video: detections come from the scores table (one row per decoded frame:
segment, frame_index, pts, ts, score + float metric columns) and the capture rule of
`cht_lab.detect.decision.select_scenes`, the same rule the live detector applies frame by frame,
so a threshold tuned on them captures the same frames live. `metric=None` means the engine's
default metric (`cht_lab.detect.scoring.DEFAULT_METRIC`), the one `Session` and the live detector use.

Matching follows the TRECVID shot-boundary convention: detections and labeled events are paired
one to one, greedily, nearest first, within a tolerance (default ±0.5 s). A labeled event with an
`end` (a gradual transition) is an interval: any detection inside [time, end] is at distance 0,
and the window is widened by the tolerance on both sides. Pairs at equal distance go to the
earlier label, then the earlier detection. A second detection near an already matched event is a
false detection: every labeled row is one event that should give exactly one capture.

Scores: precision = tp / detections, recall = tp / labels, F1 = their harmonic mean. An empty
denominator means nothing went wrong on that side, so it counts as 1.0: no labels and no
detections is a perfect 1.0/1.0/1.0; detections without labels give precision 0, recall 1, F1 0;
labels without detections give precision 1, recall 0, F1 0. F1 is always 2tp / (2tp + fp + fn),
except 1.0 when there is nothing to find and nothing was found.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from cht_lab.detect.decision import DEFAULT_MIN_GAP, select_scenes
from cht_lab.detect.scoring import AUX_COLUMNS, DEFAULT_METRIC, ONSET_METRICS
from cht_lab.tuning.labels import as_labels

log = logging.getLogger(__name__)

DEFAULT_TOLERANCE = 0.5  # seconds either side of a labeled event (TRECVID-style)
INDEX_COLUMNS: tuple[str, ...] = ("segment", "frame_index", "pts", "ts")  # every other numeric column is a metric
NOT_METRICS: tuple[str, ...] = (*INDEX_COLUMNS, *AUX_COLUMNS)  # ... except the event metric's onset/revisit
REVISIT_HOPS = 64  # a revisit chain is followed this far back to an earlier capture
_EPS = 1e-6  # seconds: a detection exactly `tolerance` away still matches despite float rounding (<< 1 frame)


class TuningError(ValueError):
    """Tuning cannot answer: unknown metric, no scores, nothing to choose a threshold from."""


# --------------------------------------------------------------------------- scores and metrics

def metric_columns(scores: pd.DataFrame) -> list[str]:
    """The metric columns of a scores table: every numeric column other than segment/frame_index/pts/ts
    and the event metric's onset/revisit columns."""
    return [c for c in scores.columns
            if c not in NOT_METRICS and pd.api.types.is_numeric_dtype(scores[c])
            and not pd.api.types.is_bool_dtype(scores[c])]


def _metric(scores: pd.DataFrame, metric: str | None) -> str:
    name = metric or DEFAULT_METRIC
    if name not in scores.columns or name in NOT_METRICS:
        have = ", ".join(metric_columns(scores)) or "none"
        raise TuningError(f"no metric column {name!r} in the scores (metric columns: {have})")
    return name


def _by_time(scores: pd.DataFrame) -> pd.DataFrame:
    """The capture rule needs non-decreasing ts; the index writes them so, but a hand-made frame may not."""
    if "ts" not in scores.columns:
        raise TuningError(f"scores have no 'ts' column (columns: {', '.join(map(str, scores.columns))})")
    ts = scores["ts"].to_numpy(dtype=np.float64)
    if ts.size > 1 and bool((ts[1:] < ts[:-1]).any()):
        log.debug("scores not sorted by ts; sorting a copy")
        return scores.sort_values("ts", kind="stable")
    return scores


def _arrays(scores: pd.DataFrame, metric: str | None) -> tuple[pd.DataFrame, str, np.ndarray, np.ndarray]:
    scores = _by_time(scores)
    name = _metric(scores, metric)
    return scores, name, scores["ts"].to_numpy(dtype=np.float64), scores[name].to_numpy(dtype=np.float64)


def estimate_fps(scores: pd.DataFrame) -> float | None:
    """Frame rate from the median gap between consecutive score rows (None with fewer than two frames)."""
    if "ts" not in scores.columns or len(scores) < 2:
        return None
    gaps = np.diff(scores["ts"].to_numpy(dtype=np.float64))
    gaps = gaps[gaps > 0]
    if gaps.size == 0:
        return None
    return float(1.0 / np.median(gaps))


def _frame_keys(scores: pd.DataFrame) -> np.ndarray | None:
    """segment and frame_index in one sortable int64 (None without those columns)."""
    if "segment" not in scores.columns or "frame_index" not in scores.columns:
        return None
    return (scores["segment"].to_numpy(np.int64) << 40) + scores["frame_index"].to_numpy(np.int64)


def _back(scores: pd.DataFrame, column: str, keys: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Row positions `column` frames before the rows at `pos` (same segment); -1 where that row is absent."""
    back = np.nan_to_num(scores[column].to_numpy(np.float64)[pos], nan=0.0).astype(np.int64)
    target = keys[pos] - np.maximum(back, 0)
    found = np.minimum(np.searchsorted(keys, target), keys.size - 1)
    return np.where(keys[found] == target, found, -1)


def onset_positions(scores: pd.DataFrame, metric: str | None) -> np.ndarray | None:
    """For each row, the row of the first frame of the change its `metric` value reports (its onset).

    Only metrics in scoring.ONSET_METRICS report a change after it started (`onset` frames
    later, when it has come to rest); for the others, and for tables without an `onset` column,
    None: a detection's time is its own row's. `scores` in time order (as `_arrays` gives it).
    """
    name = metric or DEFAULT_METRIC
    keys = _frame_keys(scores)
    if name not in ONSET_METRICS or "onset" not in scores.columns or keys is None or keys.size == 0:
        return None
    if keys.size > 1 and bool((keys[1:] < keys[:-1]).any()):
        return None  # not one segment after another in frame order: keep the rows' own times
    pos = np.arange(keys.size)
    found = _back(scores, "onset", keys, pos)
    return np.where(found >= 0, found, pos)


def detection_times(scores: pd.DataFrame, metric: str | None, ts: np.ndarray) -> np.ndarray:
    """The time each row's detection is matched at: its onset's ts for onset metrics, else its own."""
    pos = onset_positions(scores, metric)
    return ts if pos is None else ts[pos]


def revisit_captures(scores: pd.DataFrame, metric: str | None, picked: np.ndarray) -> np.ndarray:
    """For each picked row (a capture), the row of the earlier capture showing the same screen, or -1.

    The scorer's `revisit` column points back to the newest earlier reported change with the same
    picture; when that one was not captured (below the threshold), its own `revisit` is followed
    (they all show the same screen), up to REVISIT_HOPS steps.
    """
    out = np.full(picked.size, -1, np.int64)
    keys = _frame_keys(scores)
    name = metric or DEFAULT_METRIC
    if name not in ONSET_METRICS or "revisit" not in scores.columns or keys is None or picked.size == 0:
        return out
    chosen = set(picked.tolist())
    rev = np.nan_to_num(scores["revisit"].to_numpy(np.float64), nan=0.0)
    for i, p in enumerate(picked.tolist()):
        q = p
        for _ in range(REVISIT_HOPS):
            if rev[q] <= 0:
                break
            q = int(_back(scores, "revisit", keys, np.asarray([q]))[0])
            if q < 0:
                break
            if q in chosen and q < p:
                out[i] = q
                break
    return out


def scenes(scores: pd.DataFrame, threshold: float, metric: str | None = None,
           min_gap: float = DEFAULT_MIN_GAP) -> pd.DataFrame:
    """The detections the capture rule selects (score >= threshold, >= min_gap s apart), in time order.

    One row per capture: the scores table's row of the captured frame (it keeps the table's index,
    so `scores.loc[scenes(...).index]` finds it again), with `ts`, `pts` and `frame_index` those
    of the change's onset (onset metrics; else the captured frame's own) and `capture_ts`,
    `capture_pts`, `capture_frame_index` the captured frame's; `revisit_frame` is the capture frame
    index of an earlier capture (same segment) showing the same screen, -1 when there is none.
    """
    scores, name, ts, values = _arrays(scores, metric)
    picked = select_scenes(ts, values, float(threshold), float(min_gap))
    out = scores.iloc[picked].copy()
    out["capture_ts"] = out["ts"]
    if "pts" in out.columns:
        out["capture_pts"] = out["pts"]
    if "frame_index" in out.columns:
        out["capture_frame_index"] = out["frame_index"]
    onset = onset_positions(scores, name)
    if onset is not None and picked.size:
        o = onset[picked]
        out["ts"] = ts[o]
        out["pts"] = scores["pts"].to_numpy(np.float64)[o]
        out["frame_index"] = scores["frame_index"].to_numpy()[o]
    earlier = revisit_captures(scores, name, picked)
    if "frame_index" in scores.columns:
        fi = scores["frame_index"].to_numpy()
        out["revisit_frame"] = np.where(earlier >= 0, fi[np.maximum(earlier, 0)], -1).astype(np.int64)
    return out


# --------------------------------------------------------------------------- matching

@dataclass(frozen=True)
class _Truth:
    """Labeled events as match windows: [start - tol, stop + tol], stop = end for intervals, else time."""

    labels: pd.DataFrame
    start: np.ndarray
    stop: np.ndarray
    tolerance: float

    @classmethod
    def of(cls, labels: Any, tolerance: float) -> _Truth:
        if not (tolerance >= 0 and math.isfinite(tolerance)):
            raise TuningError(f"tolerance must be a finite number of seconds >= 0, not {tolerance!r}")
        df = as_labels(labels)
        start = df["time"].to_numpy(dtype=np.float64)
        end = df["end"].to_numpy(dtype=np.float64)
        stop = np.where(np.isnan(end), start, end)
        return cls(df, start, stop, float(tolerance))

    def __len__(self) -> int:
        return int(self.start.size)

    def pairs(self, det: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All (label, detection, distance) within tolerance; `det` sorted. Vectorised."""
        reach = self.tolerance + _EPS
        a = np.searchsorted(det, self.start - reach, side="left")
        b = np.searchsorted(det, self.stop + reach, side="right")
        counts = b - a
        total = int(counts.sum())
        if total == 0:
            empty = np.zeros(0, np.int64)
            return empty, empty, np.zeros(0)
        li = np.repeat(np.arange(counts.size), counts)
        first = np.cumsum(counts) - counts
        di = np.arange(total) - np.repeat(first, counts) + np.repeat(a, counts)
        d = det[di]
        dist = np.maximum(np.maximum(self.start[li] - d, d - self.stop[li]), 0.0)
        return li, di, dist

    def assign(self, det: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Greedy one-to-one matching, nearest pair first: (label positions, detection positions)."""
        li, di, dist = self.pairs(det)
        if li.size == 0:
            return li, di
        # fast path, the common case: no label or detection in two pairs -> every pair is a match
        if np.bincount(li).max() <= 1 and np.bincount(di).max() <= 1:
            return li, di
        order = np.lexsort((di, li, np.round(dist, 9)))  # nearest first; ties: earlier label, earlier detection
        used_l: set[int] = set()
        used_d: set[int] = set()
        out_l, out_d = [], []
        for l, d in zip(li[order].tolist(), di[order].tolist()):
            if l in used_l or d in used_d:
                continue
            used_l.add(l)
            used_d.add(d)
            out_l.append(l)
            out_d.append(d)
        return np.asarray(out_l, np.int64), np.asarray(out_d, np.int64)

    def count(self, det: np.ndarray) -> int:
        return int(self.assign(det)[0].size)


def _prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    """Precision, recall, F1 with the empty cases of the module docstring."""
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def _prf_arrays(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    tp, fp, fn = (np.asarray(x, np.float64) for x in (tp, fp, fn))
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(tp + fp > 0, tp / (tp + fp), 1.0)
        recall = np.where(tp + fn > 0, tp / (tp + fn), 1.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    return precision, recall, f1


@dataclass(frozen=True)
class MatchResult:
    """Detections matched against labels: counts, ratios, and the events behind them.

    per_label: the labels (time, end, kind, note) + hit, detection_ts, offset_s (detection - time),
    offset_frames (offset_s * fps; NaN when fps is unknown). false_detections: the detections that
    matched no label (their rows when detections came as a DataFrame) + nearest_label_s, the signed
    distance to the nearest label window edge (NaN without labels): a near miss shows as ~tolerance.
    """

    tp: int
    fp: int
    fn: int
    precision: float
    recall: float
    f1: float
    per_label: pd.DataFrame = field(repr=False)
    false_detections: pd.DataFrame = field(repr=False)
    tolerance: float = DEFAULT_TOLERANCE

    @property
    def missed(self) -> pd.DataFrame:
        """The labeled events no detection matched."""
        return self.per_label[~self.per_label["hit"]]

    def as_dict(self) -> dict[str, float | int]:
        return {"labels": self.tp + self.fn, "detections": self.tp + self.fp, "tp": self.tp, "fp": self.fp,
                "fn": self.fn, "precision": self.precision, "recall": self.recall, "f1": self.f1}


def _detection_frame(detections: Any) -> pd.DataFrame:
    if isinstance(detections, pd.DataFrame):
        if "ts" not in detections.columns:
            raise TuningError(f"detections need a 'ts' column (columns: {', '.join(map(str, detections.columns))})")
        return detections.sort_values("ts", kind="stable")
    ts = np.asarray([] if detections is None else detections, dtype=np.float64).reshape(-1)
    if np.isnan(ts).any():
        raise TuningError("detection times contain NaN")
    return pd.DataFrame({"ts": np.sort(ts)})


def match(detections: Any, labels: Any, tolerance: float = DEFAULT_TOLERANCE, fps: float | None = None,
          tolerance_frames: float | None = None) -> MatchResult:
    """Match detection times (array of global seconds, or a DataFrame with `ts`) against labels.

    `labels`: a `load_labels` frame, a path, a list of times, or None (no events). The tolerance is
    `tolerance` seconds, or `tolerance_frames / fps` when `tolerance_frames` is given (then fps is
    required). See the module docstring for the convention and the empty cases.
    """
    if tolerance_frames is not None:
        if not fps or fps <= 0:
            raise TuningError("tolerance_frames needs the frame rate: pass fps=")
        tolerance = float(tolerance_frames) / float(fps)
    truth = _Truth.of(labels, float(tolerance))
    dets = _detection_frame(detections)
    det = dets["ts"].to_numpy(dtype=np.float64)
    l_pos, d_pos = truth.assign(det)
    tp = int(l_pos.size)
    fp, fn = int(det.size) - tp, len(truth) - tp
    precision, recall, f1 = _prf(tp, fp, fn)

    per_label = truth.labels.copy()
    hit = np.zeros(len(truth), bool)
    hit[l_pos] = True
    det_ts = np.full(len(truth), np.nan)
    det_ts[l_pos] = det[d_pos]
    per_label["hit"] = hit
    per_label["detection_ts"] = det_ts
    per_label["offset_s"] = det_ts - truth.start
    per_label["offset_frames"] = per_label["offset_s"] * fps if fps else np.nan

    unmatched = np.ones(det.size, bool)
    unmatched[d_pos] = False
    false = dets.iloc[np.flatnonzero(unmatched)].copy()
    false["nearest_label_s"] = _nearest_offset(det[unmatched], truth)
    return MatchResult(tp, fp, fn, precision, recall, f1, per_label, false, float(tolerance))


def _nearest_offset(det: np.ndarray, truth: _Truth) -> np.ndarray:
    """Signed distance from each detection to the nearest label window [start, stop] (0 inside); O(n log n)."""
    if det.size == 0 or len(truth) == 0:
        return np.full(det.size, np.nan)
    k = np.searchsorted(truth.start, det, side="right")  # labels [0, k) start at or before the detection
    reach = np.maximum.accumulate(truth.stop)  # the latest end among the labels so far
    after = np.where(k > 0, det - reach[np.maximum(k - 1, 0)], np.inf)  # <= 0: inside a window
    before = np.where(k < truth.start.size, truth.start[np.minimum(k, truth.start.size - 1)] - det, np.inf)
    return np.where(after <= 0, 0.0, np.where(after <= before, after, -before))


__all__ = ["DEFAULT_TOLERANCE", "INDEX_COLUMNS", "MatchResult", "NOT_METRICS", "TuningError", "detection_times",
           "estimate_fps", "match", "metric_columns", "onset_positions", "revisit_captures", "scenes"]
