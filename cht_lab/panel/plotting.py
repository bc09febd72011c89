"""The score plot, shared by the widget, the demo's PNG and the benchmarks.

An hour of scores is 108,000 points; drawing them all is slow and shows nothing more than a
min/max envelope per pixel column does. `decimate` keeps every spike (a cut is a one-frame spike,
so averaging would hide it) while drawing at most two points per column.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


def decimate(x: np.ndarray, y: np.ndarray, columns: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """Min/max per column: at most 2*columns points that keep every peak and dip of `y`."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n = x.size
    if n <= 2 * columns:
        return x, y
    edges = np.linspace(0, n, columns + 1).astype(np.int64)
    starts = edges[:-1]
    y_clean = np.where(np.isnan(y), -np.inf, y)
    imax = np.maximum.reduceat(y_clean, starts)
    y_clean_min = np.where(np.isnan(y), np.inf, y)
    imin = np.minimum.reduceat(y_clean_min, starts)
    xs = np.repeat(x[starts], 2)
    ys = np.empty(2 * columns)
    ys[0::2] = imin
    ys[1::2] = imax
    ys[~np.isfinite(ys)] = np.nan
    return xs, ys


def plot_scores(ax: Any, scores: pd.DataFrame, metric: str, threshold: float,
                detections: pd.DataFrame | None = None, labels: pd.DataFrame | None = None,
                columns: int = 1000) -> dict[str, Any]:
    """Draw score against time, the threshold line, detections and labeled events on `ax`.

    Returns the artists that `update_threshold` moves, so a panel can redraw a new threshold
    without rebuilding the axes (clearing them re-creates every tick: a third of a redraw).
    """
    ax.clear()
    artists: dict[str, Any] = {"detections": None, "line": None}
    if not scores.empty and metric in scores:
        xs, ys = decimate(scores["ts"].to_numpy(), scores[metric].to_numpy(), columns)
        artists["line"] = ax.plot(xs, ys, lw=0.8, color="#4c72b0", label=metric)[0]
        _set_time_limits(ax, scores)
    artists["threshold"] = ax.axhline(threshold, color="#c44e52", lw=1.0, ls="--", label=f"threshold {threshold:.3g}")
    if labels is not None and not labels.empty:
        _draw_labels(ax, labels)
    if detections is not None and not detections.empty and metric in detections:
        artists["detections"] = ax.plot(detections["ts"], detections[metric], "v", color="#dd8452", ms=6,
                                        label=f"{len(detections)} detections")[0]
    ax.set_xlabel("time (s)")
    ax.set_ylabel(metric)
    ax.legend(loc="upper right", fontsize=8, framealpha=0.8)
    ax.grid(alpha=0.2)
    return artists


def update_scores(ax: Any, artists: dict[str, Any], scores: pd.DataFrame, metric: str, columns: int = 1000) -> None:
    """Replace the score line of a plot drawn by `plot_scores` (same metric and labels), keeping the axes.

    What a live batch of scores costs: no `ax.clear()`, so the ticks are reused. Follow with
    `update_threshold`, which rescales y and redraws the marks and the legend.
    """
    xs, ys = decimate(scores["ts"].to_numpy(), scores[metric].to_numpy(), columns)
    artists["line"].set_data(xs, ys)
    _set_time_limits(ax, scores)


def _set_time_limits(ax: Any, scores: pd.DataFrame) -> None:
    ax.set_xlim(float(scores["ts"].iloc[0]), float(scores["ts"].iloc[-1]) + 1e-6)


def update_threshold(ax: Any, artists: dict[str, Any], metric: str, threshold: float,
                     detections: pd.DataFrame | None) -> None:
    """Move the threshold line and replace the detection marks of a plot drawn by `plot_scores`."""
    artists["threshold"].set_ydata([threshold, threshold])
    artists["threshold"].set_label(f"threshold {threshold:.3g}")
    marks = artists.get("detections")
    if detections is not None and not detections.empty and metric in detections:
        if marks is None:
            marks = artists["detections"] = ax.plot([], [], "v", color="#dd8452", ms=6)[0]
        marks.set_data(detections["ts"].to_numpy(), detections[metric].to_numpy())
        marks.set_label(f"{len(detections)} detections")
    elif marks is not None:
        marks.remove()
        artists["detections"] = None
    ax.relim()
    ax.autoscale_view(scalex=False)
    ax.legend(loc="upper right", fontsize=8, framealpha=0.8)


def _draw_labels(ax: Any, labels: pd.DataFrame) -> None:
    """Labeled events as one line collection (+ one span collection for gradual events).

    One artist per event made a session with a few hundred labels redraw in 130 ms instead of 50.
    """
    from matplotlib.collections import PolyCollection

    times = labels["time"].to_numpy(dtype=np.float64)
    x_axis = ax.get_xaxis_transform()  # x in data, y in axes fraction: lines span the full height
    ax.vlines(times, 0, 1, transform=x_axis, color="#55a868", lw=0.8, alpha=0.7)
    if "end" in labels:
        ends = labels["end"].to_numpy(dtype=np.float64)
        gradual = np.isfinite(ends)
        if gradual.any():
            spans = [[(t, 0), (t, 1), (e, 1), (e, 0)] for t, e in zip(times[gradual], ends[gradual])]
            ax.add_collection(PolyCollection(spans, transform=x_axis, facecolor="#55a868", alpha=0.15,
                                             linewidths=0), autolim=False)


def save_score_plot(path: str, scores: pd.DataFrame, metric: str, threshold: float,
                    detections: pd.DataFrame | None = None, labels: pd.DataFrame | None = None,
                    title: str | None = None) -> str:
    """Write the score plot as a PNG (headless, Agg backend); returns the path."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 3.2), dpi=100)
    ax = fig.add_subplot(111)
    plot_scores(ax, scores, metric, threshold, detections, labels)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    return path
