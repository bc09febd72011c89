"""Threshold tuning from stored scores: sweeps, the best threshold, evaluation over sessions.

Every answer comes from the scores table and the live detector's capture rule (see
`cht_lab.tuning.matching`, which also holds the matching convention and the F1 of the empty
cases). `session.py` and the panels use this module as `tuning.<name>`, so the names defined in
matching.py are imported here too and listed in `__all__`.
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
from cht_lab.detect.scoring import DEFAULT_METRIC
from cht_lab.tuning.matching import (
    DEFAULT_TOLERANCE, MatchResult, TuningError, _arrays, _prf, _prf_arrays, _Truth, detection_times, estimate_fps,
    match, metric_columns, scenes,
)

log = logging.getLogger(__name__)

DEFAULT_N_THRESHOLDS = 100
_F1_TIE = 1e-12
SWEEP_COLUMNS: tuple[str, ...] = ("threshold", "detections", "tp", "fp", "fn", "precision", "recall", "f1")


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
                  truth: _Truth | None, det_ts: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Detections (and tp) for sorted thresholds; the capture rule runs once per distinct candidate set.

    The rule runs on `ts` (capture times); detections are matched at `det_ts` (their onsets; default ts).
    """
    n = thresholds.size
    detections = np.zeros(n, np.int64)
    tp = np.zeros(n, np.int64)
    if n == 0:
        return {"threshold": thresholds, "detections": detections, "tp": tp}
    keep = values >= thresholds[0]  # rows below the lowest threshold never capture: drop them once
    ts_c, values_c = ts[keep], values[keep]
    det_c = ts_c if det_ts is None else det_ts[keep]
    ranked = np.sort(values_c)
    # thresholds with the same number of candidates have the same candidates (sets shrink as t grows)
    n_cand = ranked.size - np.searchsorted(ranked, thresholds, side="left")
    last = (-1, 0, 0)
    for i, t in enumerate(thresholds.tolist()):
        if n_cand[i] == last[0]:
            detections[i], tp[i] = last[1], last[2]
            continue
        det = np.sort(det_c[select_scenes(ts_c, values_c, t, min_gap)])
        hits = truth.count(det) if truth is not None else 0
        detections[i], tp[i] = det.size, hits
        last = (int(n_cand[i]), det.size, hits)
    return {"threshold": thresholds, "detections": detections, "tp": tp}


def _sweep_frame(ts: np.ndarray, values: np.ndarray, thresholds: np.ndarray, min_gap: float,
                 truth: _Truth | None, det_ts: np.ndarray | None = None) -> pd.DataFrame:
    cols = _sweep_arrays(ts, values, thresholds, min_gap, truth, det_ts)
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
    sorted_scores, name, ts, values = _arrays(scores, metric)
    ths = _thresholds(thresholds, values, ts, float(min_gap))
    truth = None if labels is None else _Truth.of(labels, float(tolerance))
    out = _sweep_frame(ts, values, ths, float(min_gap), truth, detection_times(sorted_scores, name, ts))
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
    sorted_scores, name, ts, values = _arrays(scores, metric)
    det_ts = detection_times(sorted_scores, name, ts)
    min_gap = float(min_gap)
    ths = _thresholds(thresholds, values, ts, min_gap)
    if ths.size == 0:
        raise TuningError(f"no finite {name!r} scores to choose a threshold from")
    truth = _Truth.of(labels, float(tolerance))
    # the outcome only changes at observed values: threshold t behaves like any t' in
    # (largest value < t, smallest value >= t]
    distinct = np.unique(values[np.isfinite(values)])
    sw = _sweep_frame(ts, values, ths, min_gap, truth, det_ts)
    if thresholds is None or isinstance(thresholds, (int, np.integer)):
        # refine: the coarse grid can step over a narrow best; try the observed values around it
        _, _, i, j = _widest_best_run(sw["threshold"].to_numpy(), sw["f1"].to_numpy(), distinct)
        lo, hi = ths[max(i - 1, 0)], ths[min(j + 1, ths.size - 1)]
        extra = distinct[(distinct > lo) & (distinct < hi)]
        if extra.size > REFINE_THRESHOLDS:
            extra = extra[np.linspace(0, extra.size - 1, REFINE_THRESHOLDS).round().astype(int)]
        extra = np.setdiff1d(extra, ths)
        if extra.size:
            sw = pd.concat([sw, _sweep_frame(ts, values, extra, min_gap, truth, det_ts)], ignore_index=True)
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
        det = np.sort(det_ts[select_scenes(ts, values, middle, min_gap)])
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
        sorted_scores, name, ts, values = _arrays(scores, name)
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
        det = np.sort(detection_times(sorted_scores, name, ts)[select_scenes(ts, values, best.threshold,
                                                                              float(min_gap))])
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
