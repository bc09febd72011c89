"""One threshold for several sessions, each judged by its own labels: complete files or label reviews.

`sweep.evaluate_sessions` scores one given threshold; this finds it. Sessions are labeled one by
one (the Label tab), and a session whose labels hold `none` rows is a review in progress: its
counts come from `review.Review` (unreviewed candidates unknown), the others' from the capture
rule and matching (everything unlabeled is a non-event). Counts are summed over sessions before
the ratios (micro-average, as evaluate_sessions does), on one grid of thresholds: every candidate
peak and labeled moment of every session, where an answer can change.
"""

from __future__ import annotations

import logging
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

from cht_lab.detect.decision import DEFAULT_MIN_GAP
from cht_lab.tuning.matching import DEFAULT_TOLERANCE, TuningError, _prf, _prf_arrays
from cht_lab.tuning.review import Review
from cht_lab.tuning.sweep import BestThreshold, sweep

log = logging.getLogger(__name__)

TABLE_COLUMNS = ["session", "labels", "events", "non_events", "tp", "fp", "fn", "precision", "recall", "f1"]


def _parts(item: Any, i: int) -> tuple[str, pd.DataFrame, Any]:
    """(name, scores, every label row or None) of a Session or a (name, scores, labels) tuple."""
    if isinstance(item, tuple):
        if len(item) != 3:
            raise TuningError(f"session {i}: expected a (name, scores, labels) tuple, got {len(item)} items")
        return str(item[0]), item[1], item[2]
    read = getattr(item, "read_labels", None)
    rows = read(non_events=True) if callable(read) else getattr(item, "labels", None)
    return str(getattr(item, "id", f"session {i}")), item.scores(), rows


def best_across(sessions: Iterable[Any], metric: str | None = None, min_gap: float = DEFAULT_MIN_GAP,
                tolerance: float = DEFAULT_TOLERANCE, floor: float | None = None,
                reviews: Mapping[int, Review | None] | None = None) -> tuple[BestThreshold, pd.DataFrame]:
    """The threshold with the best summed F1 over the labeled sessions, and a table per session at it.

    Returns (BestThreshold: threshold, f1, low, high — the plateau, as `find_best` — and the
    summed sweep; the table: session, labels ("review", "complete" or "none": skipped), events,
    non_events, tp, fp, fn, precision, recall, f1, plus a "total" row). TuningError when no session
    has a labeled event. `reviews`: reviews in progress by session position (the Label tabs'):
    they know they are reviews even before their first `none` row is saved.
    """
    parts = [_parts(item, i) for i, item in enumerate(sessions)]
    given = {i: r for i, r in (reviews or {}).items() if r is not None and (metric is None or r.metric == metric)}
    parts = [(f"{name} ({i})" if [p[0] for p in parts].count(name) > 1 else name, scores, rows)
             for i, (name, scores, rows) in enumerate(parts)]
    reviews = {name: given.get(i) or Review(scores, rows, metric=metric, min_gap=min_gap, tolerance=tolerance,
                                             floor=floor)
               for i, (name, scores, rows) in enumerate(parts)
               if i in given or (rows is not None and not scores.empty)}
    if not any(len(r.labels) for r in reviews.values()):
        raise TuningError("no session has a labeled event yet: label one (the Label tab, or Session.add_label)")
    points = [np.r_[r.candidates["score"].to_numpy(np.float64), r.row_scores] for r in reviews.values()]
    points = np.concatenate(points)
    floor_ = min(r.floor for r in reviews.values())
    top = float(np.nextafter(max(float(points.max(initial=floor_)), floor_), np.inf))
    points = points[points > floor_]
    grid = np.unique(np.r_[np.linspace(floor_, top, 100)[1:], points, np.nextafter(points, np.inf), top])
    counts = {name: _counts(r, scores, grid, min_gap, tolerance) for name, scores, _ in parts
              if (r := reviews.get(name)) is not None}
    tp, fp, fn = (sum(c[k].to_numpy() for c in counts.values()) for k in ("tp", "fp", "fn"))
    precision, recall, f1 = _prf_arrays(tp, fp, fn)
    good = np.flatnonzero(f1 >= f1.max() - 1e-12)
    runs = np.split(good, np.flatnonzero(np.diff(good) > 1) + 1)
    lows = np.r_[floor_, grid[:-1]]
    i, j = max(((r[0], r[-1]) for r in runs), key=lambda r: (grid[r[1]] - lows[r[0]], -r[0]))
    low, high = float(lows[i]), float(grid[j])
    middle = (low + high) / 2
    k = min(int(np.searchsorted(grid, middle, "left")), j)
    table = pd.DataFrame({"threshold": grid, "tp": tp, "fp": fp, "fn": fn, "precision": precision, "recall": recall,
                          "f1": f1})
    rows = []
    for name, _, labels in parts:
        r = reviews.get(name)
        if r is None:
            rows.append({"session": name, "labels": "none", "events": 0, "non_events": 0, "tp": 0, "fp": 0, "fn": 0,
                         "precision": np.nan, "recall": np.nan, "f1": np.nan})
            continue
        c = counts[name].iloc[k]
        p_, r_, f_ = _prf(int(c["tp"]), int(c["fp"]), int(c["fn"]))
        rows.append({"session": name, "labels": "review" if r.active else "complete", "events": len(r.labels),
                     "non_events": len(r.rows) - len(r.labels), "tp": int(c["tp"]), "fp": int(c["fp"]),
                     "fn": int(c["fn"]), "precision": p_, "recall": r_, "f1": f_})
    total = {"session": "total", "labels": "", "events": sum(r["events"] for r in rows),
             "non_events": sum(r["non_events"] for r in rows), "tp": int(tp[k]), "fp": int(fp[k]), "fn": int(fn[k]),
             "precision": float(precision[k]), "recall": float(recall[k]), "f1": float(f1[k])}
    out = pd.DataFrame([*rows, total], columns=TABLE_COLUMNS)
    out.attrs.update(threshold=middle, low=low, high=high)
    log.info("best threshold across %d sessions: %.4g (F1 %.3f, plateau %.4g-%.4g)", len(counts), middle,
             f1[k], low, high)
    return BestThreshold(middle, float(f1[k]), low, high, table), out


def _counts(review: Review, scores: pd.DataFrame, grid: np.ndarray, min_gap: float, tolerance: float) -> pd.DataFrame:
    """tp, fp, fn per grid threshold: from the review when one is in progress, else the full sweep."""
    if review.active:
        return review.counts(grid)[["tp", "fp", "fn"]]
    return sweep(scores, review.labels, metric=review.metric, thresholds=grid, tolerance=tolerance,
                 min_gap=min_gap)[["tp", "fp", "fn"]]


__all__ = ["TABLE_COLUMNS", "best_across"]
