"""The threshold's scale per metric: where the slider starts and how far it reaches."""

from __future__ import annotations

import numpy as np
import pandas as pd


def metric_columns(scores: pd.DataFrame) -> list[str]:
    """The metrics stored in a scores table, in scoring.METRICS order (any numeric column as fallback)."""
    from cht_lab.detect.scoring import METRICS
    from cht_lab.tuning.sweep import metric_columns as numeric_columns

    known = [m for m in METRICS if m in scores.columns]
    return known or numeric_columns(scores)


def default_threshold(metric: str, values: np.ndarray | None = None) -> float:
    """The metric's documented default; for an unknown metric, a high quantile of its values."""
    from cht_lab.detect.scoring import DEFAULT_THRESHOLDS

    if metric in DEFAULT_THRESHOLDS:
        return float(DEFAULT_THRESHOLDS[metric])
    finite = values[np.isfinite(values)] if values is not None else np.empty(0)
    return float(np.quantile(finite, 0.995)) if finite.size else 0.5


def nice_ceil(x: float) -> float:
    """The smallest of 1, 2, 5 × 10^k that is ≥ x."""
    if not np.isfinite(x) or x <= 0:
        return 1.0
    exp = np.floor(np.log10(x))
    for m in (1.0, 2.0, 5.0, 10.0):
        if m * 10**exp >= x * (1 - 1e-9):
            return float(m * 10**exp)
    return float(10 ** (exp + 1))


def slider_range(values: np.ndarray | None, threshold: float) -> tuple[float, float]:
    """(max, step) for a threshold slider from 0 that reaches the largest score and 2× the threshold."""
    top = max(float(threshold) * 2, 1e-3)
    if values is not None and values.size:
        finite = values[np.isfinite(values)]
        if finite.size:
            top = max(top, float(finite.max()))
    hi = nice_ceil(top)
    return hi, hi / 1000
