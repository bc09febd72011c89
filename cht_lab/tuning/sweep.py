"""Threshold tuning from stored scores: scenes at any threshold, matching against labels, sweeps, best threshold.

Nothing here decodes video: every question is answered from the scores table (one row per
decoded frame: segment, frame_index, pts, ts, score + float metric columns) and the capture rule
of `cht_lab.detect.decision.select_scenes`, the same rule the live detector applies frame by frame, so a
threshold tuned here captures the same frames live. `metric=None` means the engine's default
metric (`cht_lab.detect.scoring.DEFAULT_METRIC`, re-exported here), the one `Session` and the live
detector use.

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
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from cht_lab.detect.decision import DEFAULT_MIN_GAP, select_scenes
from cht_lab.tuning.labels import as_labels
from cht_lab.detect.scoring import DEFAULT_METRIC

log = logging.getLogger(__name__)

DEFAULT_TOLERANCE = 0.5  # seconds either side of a labeled event (TRECVID-style)
DEFAULT_N_THRESHOLDS = 100
INDEX_COLUMNS: tuple[str, ...] = ("segment", "frame_index", "pts", "ts")  # every other numeric column is a metric
_EPS = 1e-6  # seconds: a detection exactly `tolerance` away still matches despite float rounding (<< 1 frame)
_F1_TIE = 1e-12
SWEEP_COLUMNS: tuple[str, ...] = ("threshold", "detections", "tp", "fp", "fn", "precision", "recall", "f1")


class TuningError(ValueError):
    """Tuning cannot answer: unknown metric, no scores, nothing to choose a threshold from."""


# --------------------------------------------------------------------------- scores and metrics

def metric_columns(scores: pd.DataFrame) -> list[str]:
    """The metric columns of a scores table: every numeric column other than segment/frame_index/pts/ts."""
    return [c for c in scores.columns
            if c not in INDEX_COLUMNS and pd.api.types.is_numeric_dtype(scores[c])
            and not pd.api.types.is_bool_dtype(scores[c])]


def _metric(scores: pd.DataFrame, metric: str | None) -> str:
    name = metric or DEFAULT_METRIC
    if name not in scores.columns or name in INDEX_COLUMNS:
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


def scenes(scores: pd.DataFrame, threshold: float, metric: str | None = None,
           min_gap: float = DEFAULT_MIN_GAP) -> pd.DataFrame:
    """The score rows the capture rule selects (score >= threshold, >= min_gap s apart), in time order.

    The rows keep the scores table's index, so `scores.loc[scenes(...).index]` finds them again.
    """
    scores, _, ts, values = _arrays(scores, metric)
    return scores.iloc[select_scenes(ts, values, float(threshold), float(min_gap))]


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


# --------------------------------------------------------------------------- sweeps

def default_thresholds(values: np.ndarray, ts: np.ndarray | None = None, n: int = DEFAULT_N_THRESHOLDS,
                       min_gap: float = DEFAULT_MIN_GAP) -> np.ndarray:
    """~n sorted unique thresholds over a metric's observed range, where the answer changes.

    Half are evenly spaced from the minimum to the maximum (the plot's x axis); half are
    quantiles of the per-`min_gap`-window maxima — the capture rule takes at most about one
    frame per window, so these quantiles spread the thresholds evenly over the possible number
    of detections instead of bunching them in the noise floor. One more sits just above the
    maximum: the end of the curve where nothing is detected.
    """
    values = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(values)
    if not finite.any():
        return np.zeros(0)
    lo, hi = float(values[finite].min()), float(values[finite].max())
    n_lin = max(2, n // 2)
    parts = [np.linspace(lo, hi, n_lin), [np.nextafter(hi, np.inf)]]
    if ts is not None and len(ts) == len(values) and n - n_lin > 0:
        ts = np.asarray(ts, dtype=np.float64)[finite]
        window = max(float(min_gap), 1e-3)
        bins = np.floor((ts - ts[0]) / window)
        starts = np.flatnonzero(np.r_[True, bins[1:] != bins[:-1]])
        maxima = np.maximum.reduceat(values[finite], starts)
        parts.append(np.quantile(maxima, np.linspace(0.0, 1.0, n - n_lin)))
    return np.unique(np.concatenate(parts))


def _thresholds(thresholds: Any, values: np.ndarray, ts: np.ndarray, min_gap: float) -> np.ndarray:
    if thresholds is None:
        return default_thresholds(values, ts, min_gap=min_gap)
    if isinstance(thresholds, (int, np.integer)) and not isinstance(thresholds, bool):
        return default_thresholds(values, ts, n=int(thresholds), min_gap=min_gap)
    arr = np.asarray(list(thresholds) if not isinstance(thresholds, np.ndarray) else thresholds, dtype=np.float64)
    arr = arr.reshape(-1)
    if np.isnan(arr).any():
        raise TuningError("thresholds contain NaN")
    return np.unique(arr)


def _sweep_arrays(ts: np.ndarray, values: np.ndarray, thresholds: np.ndarray, min_gap: float,
                  truth: _Truth | None) -> dict[str, np.ndarray]:
    """Detections (and tp) for sorted thresholds; the capture rule runs once per distinct candidate set."""
    n = thresholds.size
    detections = np.zeros(n, np.int64)
    tp = np.zeros(n, np.int64)
    if n == 0:
        return {"threshold": thresholds, "detections": detections, "tp": tp}
    keep = values >= thresholds[0]  # rows below the lowest threshold never capture: drop them once
    ts_c, values_c = ts[keep], values[keep]
    ranked = np.sort(values_c)
    # thresholds with the same number of candidates have the same candidates (sets shrink as t grows)
    n_cand = ranked.size - np.searchsorted(ranked, thresholds, side="left")
    last = (-1, 0, 0)
    for i, t in enumerate(thresholds.tolist()):
        if n_cand[i] == last[0]:
            detections[i], tp[i] = last[1], last[2]
            continue
        det = ts_c[select_scenes(ts_c, values_c, t, min_gap)]
        hits = truth.count(det) if truth is not None else 0
        detections[i], tp[i] = det.size, hits
        last = (int(n_cand[i]), det.size, hits)
    return {"threshold": thresholds, "detections": detections, "tp": tp}


def _sweep_frame(ts: np.ndarray, values: np.ndarray, thresholds: np.ndarray, min_gap: float,
                 truth: _Truth | None) -> pd.DataFrame:
    cols = _sweep_arrays(ts, values, thresholds, min_gap, truth)
    if truth is None:
        return pd.DataFrame({"threshold": cols["threshold"], "detections": cols["detections"]})
    tp = cols["tp"]
    fp = cols["detections"] - tp
    fn = len(truth) - tp
    precision, recall, f1 = _prf_arrays(tp, fp, fn)
    return pd.DataFrame({"threshold": cols["threshold"], "detections": cols["detections"], "tp": tp, "fp": fp,
                         "fn": fn, "precision": precision, "recall": recall, "f1": f1})


def sweep(scores: pd.DataFrame, labels: Any = None, metric: str | None = None, thresholds: Any = None,
          tolerance: float = DEFAULT_TOLERANCE, min_gap: float = DEFAULT_MIN_GAP) -> pd.DataFrame:
    """Detections per threshold, and with labels tp, fp, fn, precision, recall, f1; sorted by threshold.

    `thresholds`: None (~100 from `default_thresholds`), an int (that many), or the values to try.
    Without labels the frame has only threshold and detections.
    """
    _, name, ts, values = _arrays(scores, metric)
    ths = _thresholds(thresholds, values, ts, float(min_gap))
    truth = None if labels is None else _Truth.of(labels, float(tolerance))
    out = _sweep_frame(ts, values, ths, float(min_gap), truth)
    out.attrs.update(metric=name, tolerance=float(tolerance), min_gap=float(min_gap),
                     labels=None if truth is None else len(truth))
    return out


# --------------------------------------------------------------------------- the best threshold

REFINE_THRESHOLDS = 100  # second pass: observed values around the coarse best, where the answer can change


@dataclass(frozen=True)
class BestThreshold:
    """The chosen threshold, its F1, and the plateau (low exclusive, high inclusive) it is the middle of.

    `sweep` holds every threshold tried (the coarse sweep and the refinement around the best).
    """

    threshold: float
    f1: float
    low: float
    high: float
    sweep: pd.DataFrame = field(repr=False)


def find_best(scores: pd.DataFrame, labels: Any, metric: str | None = None, tolerance: float = DEFAULT_TOLERANCE,
              min_gap: float = DEFAULT_MIN_GAP, thresholds: Any = None) -> BestThreshold:
    """`best_threshold` with its details: the F1, the plateau's edges and the sweep behind them."""
    if labels is None:
        raise TuningError("choosing a threshold needs labels (ground truth)")
    _, name, ts, values = _arrays(scores, metric)
    min_gap = float(min_gap)
    ths = _thresholds(thresholds, values, ts, min_gap)
    if ths.size == 0:
        raise TuningError(f"no finite {name!r} scores to choose a threshold from")
    truth = _Truth.of(labels, float(tolerance))
    # the outcome only changes at observed values: threshold t behaves like any t' in
    # (largest value < t, smallest value >= t]
    distinct = np.unique(values[np.isfinite(values)])
    sw = _sweep_frame(ts, values, ths, min_gap, truth)
    if thresholds is None or isinstance(thresholds, (int, np.integer)):
        # refine: the coarse grid can step over a narrow best; try the observed values around it
        _, _, i, j = _widest_best_run(sw["threshold"].to_numpy(), sw["f1"].to_numpy(), distinct)
        lo, hi = ths[max(i - 1, 0)], ths[min(j + 1, ths.size - 1)]
        extra = distinct[(distinct > lo) & (distinct < hi)]
        if extra.size > REFINE_THRESHOLDS:
            extra = extra[np.linspace(0, extra.size - 1, REFINE_THRESHOLDS).round().astype(int)]
        extra = np.setdiff1d(extra, ths)
        if extra.size:
            sw = pd.concat([sw, _sweep_frame(ts, values, extra, min_gap, truth)], ignore_index=True)
            sw = sw.sort_values("threshold", kind="stable", ignore_index=True)
    sw.attrs.update(metric=name, tolerance=float(tolerance), min_gap=min_gap, labels=len(truth))
    ths, f1 = sw["threshold"].to_numpy(), sw["f1"].to_numpy()
    best = float(f1.max())
    if best <= 0:
        raise TuningError(f"no threshold of {name!r} detects any of the {len(truth)} labeled events within "
                          f"±{tolerance:g} s (best F1 is 0)")
    low, high, i, j = _widest_best_run(ths, f1, distinct)
    middle = (low + high) / 2
    if not (low < middle <= high):  # degenerate (e.g. one sampled threshold at the edge of the data)
        middle = float(ths[(i + j) // 2])
    else:
        det = ts[select_scenes(ts, values, middle, min_gap)]
        if _prf(tp := truth.count(det), det.size - tp, len(truth) - tp)[2] < best - _F1_TIE:
            # an unsampled value inside the run changes the answer: stay on a sampled threshold
            middle = float(ths[i + int(np.abs(ths[i:j + 1] - middle).argmin())])
    return BestThreshold(float(middle), best, low, high, sw)


def _widest_best_run(ths: np.ndarray, f1: np.ndarray, distinct: np.ndarray) -> tuple[float, float, int, int]:
    """(low, high, first, last) of the widest run of consecutive best-F1 thresholds.

    The edges are exact: the run extends down to (excluding) the largest observed value below its
    first threshold and up to the smallest observed value at or above its last one. Ties: more
    sampled thresholds, then the lowest run.
    """
    best = f1.max()
    spans = []
    for i, j in _runs(f1 >= best - _F1_TIE):
        k = np.searchsorted(distinct, ths[i], side="left")
        low = float(distinct[k - 1]) if k > 0 else float(ths[i])
        m = np.searchsorted(distinct, ths[j], side="left")
        high = float(distinct[m]) if m < distinct.size else float(ths[j])
        spans.append((high - low, j - i, -i, low, high, i, j))
    _, _, _, low, high, i, j = max(spans)
    return low, high, i, j


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Inclusive (first, last) positions of each run of True."""
    edges = np.diff(np.r_[0, mask.astype(np.int8), 0])
    return list(zip(np.flatnonzero(edges == 1).tolist(), (np.flatnonzero(edges == -1) - 1).tolist()))


def best_threshold(scores: pd.DataFrame, labels: Any, metric: str | None = None,
                   tolerance: float = DEFAULT_TOLERANCE, min_gap: float = DEFAULT_MIN_GAP,
                   thresholds: Any = None) -> float:
    """The threshold with the best F1; ties go to the middle of the widest plateau of best-F1 thresholds.

    Why the middle: any threshold on the plateau scores the same on these labels, and the middle
    is the one farthest from where the answer changes, so it holds best on new content. The
    plateau's edges are exact (refined to the observed score values around the sampled
    thresholds). Raises TuningError (a ValueError) when no threshold finds any labeled event.
    `find_best()` returns the details (F1, plateau edges, the sweep).
    """
    return find_best(scores, labels, metric, tolerance, min_gap, thresholds).threshold


def evaluate(scores: pd.DataFrame, labels: Any, threshold: float, metric: str | None = None,
             tolerance: float = DEFAULT_TOLERANCE, min_gap: float = DEFAULT_MIN_GAP) -> MatchResult:
    """Match the scenes at `threshold` against labels; offsets in frames use the scores' frame rate."""
    found = scenes(scores, threshold, metric=metric, min_gap=min_gap)
    return match(found, labels, tolerance=tolerance, fps=estimate_fps(scores))


def compare_metrics(scores: pd.DataFrame, labels: Any, metrics: Sequence[str] | None = None,
                    tolerance: float = DEFAULT_TOLERANCE, min_gap: float = DEFAULT_MIN_GAP) -> pd.DataFrame:
    """Which metric separates this content best: per metric, its best threshold and what it scores there.

    Columns: metric, threshold, f1, precision, recall, detections, tp, fp, fn, plateau_low,
    plateau_high, plateau_frac (the plateau's share of the metric's observed range: how much
    room the threshold has). Sorted by f1, then plateau_frac, best first. A metric that finds no
    labeled event at any threshold gets threshold NaN and f1 0.
    """
    truth = _Truth.of(labels, float(tolerance))
    names = list(metrics) if metrics is not None else metric_columns(scores)
    rows = []
    for name in names:
        _, name, ts, values = _arrays(scores, name)
        finite = values[np.isfinite(values)]
        span = float(finite.max() - finite.min()) if finite.size else 0.0
        try:
            best = find_best(scores, truth.labels, metric=name, tolerance=tolerance, min_gap=min_gap)
        except TuningError as exc:
            log.info("compare_metrics: %s", exc)
            rows.append({"metric": name, "threshold": math.nan, "f1": 0.0, "precision": math.nan,
                         "recall": 0.0, "detections": 0, "tp": 0, "fp": 0, "fn": len(truth),
                         "plateau_low": math.nan, "plateau_high": math.nan, "plateau_frac": 0.0})
            continue
        det = ts[select_scenes(ts, values, best.threshold, float(min_gap))]
        tp = truth.count(det)
        fp, fn = det.size - tp, len(truth) - tp
        precision, recall, f1 = _prf(tp, fp, fn)
        frac = min(1.0, (best.high - best.low) / span) if span > 0 else 1.0
        rows.append({"metric": name, "threshold": best.threshold, "f1": f1, "precision": precision,
                     "recall": recall, "detections": int(det.size), "tp": tp, "fp": fp, "fn": fn,
                     "plateau_low": best.low, "plateau_high": best.high, "plateau_frac": frac})
    out = pd.DataFrame(rows, columns=["metric", "threshold", "f1", "precision", "recall", "detections", "tp", "fp",
                                      "fn", "plateau_low", "plateau_high", "plateau_frac"])
    return out.sort_values(["f1", "plateau_frac"], ascending=False, kind="stable", ignore_index=True)


# --------------------------------------------------------------------------- several sessions

def _session_parts(item: Any, i: int) -> tuple[str, pd.DataFrame, Any]:
    if isinstance(item, tuple):
        if len(item) != 3:
            raise TuningError(f"session {i}: expected a (name, scores, labels) tuple, got {len(item)} items")
        return str(item[0]), item[1], item[2]
    scores = getattr(item, "scores", None)
    labels = getattr(item, "labels", None)
    if scores is None:
        raise TuningError(f"session {i}: {type(item).__name__} has no scores() (and is no (name, scores, labels))")
    scores = scores() if callable(scores) else scores
    labels = labels() if callable(labels) else labels
    name = getattr(item, "id", None) or getattr(item, "name", None)
    if name is None and getattr(item, "dir", None) is not None:
        name = os.fspath(item.dir)
    return str(name if name is not None else f"session {i}"), scores, labels


def evaluate_sessions(sessions: Iterable[Any] | Mapping[str, Any], threshold: float, metric: str | None = None,
                      tolerance: float = DEFAULT_TOLERANCE, min_gap: float = DEFAULT_MIN_GAP) -> pd.DataFrame:
    """One threshold over several sessions: a row per session and a micro-averaged 'total' row.

    `sessions`: objects with `.scores()` and `.labels` (e.g. `cht_lab.Session`; named by `.id`),
    (name, scores, labels) tuples, or a mapping name -> (scores, labels). The total sums tp, fp
    and fn over sessions before computing the ratios, so long sessions weigh more. Every session
    must have labels (TuningError names the one that has none).
    Columns: session, labels, detections, tp, fp, fn, precision, recall, f1.
    """
    items = ([(name, *pair) for name, pair in sessions.items()] if isinstance(sessions, Mapping)
             else list(sessions))
    rows = []
    for i, item in enumerate(items):
        name, scores, labels = _session_parts(item, i)
        if labels is None:
            raise TuningError(f"session {name}: no labels; evaluating needs ground truth for every session")
        if scores.empty:
            raise TuningError(f"session {name}: no scores yet; score it first (Session.score())")
        result = evaluate(scores, labels, threshold, metric=metric, tolerance=tolerance, min_gap=min_gap)
        rows.append({"session": name, **result.as_dict()})
    cols = ["session", "labels", "detections", "tp", "fp", "fn", "precision", "recall", "f1"]
    tp, fp, fn = (int(sum(r[c] for r in rows)) for c in ("tp", "fp", "fn"))
    precision, recall, f1 = _prf(tp, fp, fn)
    total = {"session": "total", "labels": tp + fn, "detections": tp + fp, "tp": tp, "fp": fp, "fn": fn,
             "precision": precision, "recall": recall, "f1": f1}
    out = pd.DataFrame([*rows, total], columns=cols)
    out.attrs.update(threshold=float(threshold), metric=metric or DEFAULT_METRIC, tolerance=float(tolerance))
    return out.astype({c: "int64" for c in ("labels", "detections", "tp", "fp", "fn")})


__all__ = ["DEFAULT_METRIC", "DEFAULT_TOLERANCE", "BestThreshold", "MatchResult", "TuningError", "best_threshold",
           "compare_metrics", "default_thresholds", "estimate_fps", "evaluate", "evaluate_sessions", "find_best",
           "match", "metric_columns", "scenes", "sweep"]
