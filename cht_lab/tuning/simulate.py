"""A reviewer who answers from known labels: how many decisions a label review needs, in which order.

The Label tab asks a person; this asks a labels file instead, with the same `Review`, so the
number of decisions the "ask what matters" order saves over a walk through time can be measured
(benchmarks/labeling.py) and tested on the labeled samples. Each answer is the true label whose
match window holds the candidate (its kind), else `none`; the review's best threshold is then
scored against the full labels with the real capture rule and matching.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from cht_lab.detect.decision import DEFAULT_MIN_GAP
from cht_lab.tuning.labels import NON_EVENT, as_labels
from cht_lab.tuning.matching import DEFAULT_TOLERANCE
from cht_lab.tuning.review import Review

STEP_COLUMNS = ["decisions", "ts", "score", "answer", "threshold", "low", "high", "f1_reviewed", "f1", "settled"]


def answer(truth: pd.DataFrame, ts: float, tolerance: float = DEFAULT_TOLERANCE) -> str:
    """What a reviewer who knows `truth` says about the moment `ts`: the nearest covering label's kind, or none."""
    start = truth["time"].to_numpy(np.float64)
    stop = np.where(truth["end"].isna(), start, truth["end"].to_numpy(np.float64))
    hit = np.flatnonzero((start - tolerance <= ts) & (ts <= stop + tolerance))
    return str(truth["kind"].iloc[hit[np.abs(start[hit] - ts).argmin()]]) if hit.size else NON_EVENT


def simulate(scores: pd.DataFrame, truth: Any, order: str = "matters", metric: str | None = None,
             min_gap: float = DEFAULT_MIN_GAP, tolerance: float = DEFAULT_TOLERANCE, floor: float | None = None,
             max_decisions: int | None = None) -> pd.DataFrame:
    """Review every candidate in `order`, answering from `truth`: one row per decision.

    Columns: decisions, ts, score, answer, threshold (the review's best), low, high (its plateau),
    f1_reviewed (on the decisions), f1 (of that threshold against the full `truth`), settled.
    attrs: candidates, floor, metric, order, missed (true events no candidate covers).
    """
    from cht_lab.tuning.sweep import evaluate

    truth = as_labels(truth)
    review = Review(scores, None, metric=metric, min_gap=min_gap, tolerance=tolerance, floor=floor)
    steps = []
    while (i := review.next(order)) is not None and (max_decisions is None or len(steps) < max_decisions):
        t = float(review.candidates["ts"].iloc[i])
        said = answer(truth, t, tolerance)
        review.decide(i, said)
        pl = review.plateau
        f1 = evaluate(review.scores, truth, pl.threshold, metric=review.metric, tolerance=tolerance,
                      min_gap=min_gap).f1 if pl.events else 0.0
        steps.append({"decisions": len(steps) + 1, "ts": t, "score": float(review.candidates["score"].iloc[i]),
                      "answer": said, "threshold": pl.threshold, "low": pl.low, "high": pl.high,
                      "f1_reviewed": pl.f1, "f1": f1, "settled": pl.settled})
    cand = review.candidates["ts"].to_numpy(np.float64)
    missed = sum(1 for t, e in zip(truth["time"], truth["end"])
                 if not np.any((cand >= t - tolerance) & (cand <= (t if e != e else e) + tolerance)))
    out = pd.DataFrame(steps, columns=STEP_COLUMNS)
    out.attrs.update(candidates=review.total, floor=review.floor, metric=review.metric, order=order, missed=missed)
    return out


def decisions_needed(steps: pd.DataFrame, target: float = 0.95) -> dict[str, Any]:
    """From `simulate`'s steps: decisions until F1 >= target (first reached, and for good), until settled."""
    ok = steps["f1"].to_numpy() >= target
    reach = int(steps["decisions"][ok].min()) if ok.any() else None
    bad = np.flatnonzero(~ok)
    hold = None if not ok.any() or (bad.size and bad[-1] == len(ok) - 1) else int(bad[-1] + 2 if bad.size else 1)
    settled = steps.loc[steps["settled"], "decisions"]
    at = int(settled.min()) if len(settled) else None
    return {"reach": reach, "hold": hold, "settled": at,
            "f1_settled": float(steps.loc[steps["decisions"] == at, "f1"].iloc[0]) if at else None}


__all__ = ["STEP_COLUMNS", "answer", "decisions_needed", "simulate"]
