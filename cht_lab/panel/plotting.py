"""The score plot on a matplotlib Axes, shared by the panel, the demo's PNG and the benchmarks.

An hour of scores is 108,000 points; drawing them all is slow and shows nothing more than a
min/max envelope per pixel column does. `decimate` keeps every spike (a cut is a one-frame spike,
so averaging would hide it) while drawing at most two points per column.

The legend sits in a strip above the axes: inside them it covered the newest spike of a live plot.
A frame above the threshold that the capture rule passed over (it came less than `min_gap` after
a detection) gets its own grey mark, so a tall unmarked peak never goes unexplained.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

SCORE_COLOR = "#4c72b0"
THRESHOLD_COLOR = "#c44e52"
DETECTION_COLOR = "#dd8452"
SKIPPED_COLOR = "#7f7f7f"
LABEL_COLOR = "#55a868"
LEGEND_FONT = 8
NO_SCORES_TEXT = "no scores yet"


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


def score_times(rows: pd.DataFrame) -> np.ndarray:
    """Where rows sit on the score curve: a detection's `capture_ts` (its score is the captured
    frame's; its `ts` is the change's onset, earlier), else the row's own `ts`."""
    column = "capture_ts" if "capture_ts" in rows.columns else "ts"
    return rows[column].to_numpy(dtype=np.float64)


def skipped_peaks(scores: pd.DataFrame, metric: str, threshold: float, detections: pd.DataFrame | None,
                  min_gap: float) -> pd.DataFrame:
    """The tallest frame of each run above the threshold that was not captured because it began
    less than `min_gap` after a detection (the capture rule's gap, `cht_lab.detect.decision`).

    A run is consecutive score rows ≥ threshold; the run holding a detection is that detection's
    own event and is not "skipped". Detections are matched by time (`score_times`), so live captures work too;
    under a threshold that changed during a live run, runs that were simply below the threshold
    of their time are not marked (they did not start within `min_gap` of a capture).
    """
    if scores.empty or metric not in scores or not min_gap > 0:
        return scores.iloc[:0]
    values = scores[metric].to_numpy(dtype=np.float64)
    idx = np.flatnonzero(values >= threshold)  # NaN is never above
    if idx.size == 0 or detections is None or detections.empty:
        return scores.iloc[:0]
    ts = scores["ts"].to_numpy(dtype=np.float64)
    det = np.sort(score_times(detections))
    breaks = np.flatnonzero(np.diff(idx) > 1) + 1
    starts = np.concatenate([[0], breaks])
    ends = np.concatenate([breaks, [idx.size]])
    t0, t1 = ts[idx[starts]], ts[idx[ends - 1]]
    lo = np.searchsorted(det, t0 - 1e-6, side="left")
    hi = np.searchsorted(det, t1 + 1e-6, side="right")
    prev = det[np.maximum(lo - 1, 0)]
    skipped = (hi == lo) & (lo > 0) & (t0 - prev < min_gap)
    positions = [int(idx[s + np.argmax(values[idx[s:e]])]) for s, e in zip(starts[skipped], ends[skipped])]
    return scores.iloc[positions]


def plot_scores(ax: Any, scores: pd.DataFrame, metric: str, threshold: float,
                detections: pd.DataFrame | None = None, labels: pd.DataFrame | None = None,
                columns: int = 1000, skipped: pd.DataFrame | None = None,
                empty_text: str = NO_SCORES_TEXT) -> dict[str, Any]:
    """Draw score against time, the threshold line, detections, skipped peaks and labels on `ax`.

    Returns the artists that `update_threshold` moves, so a panel can redraw a new threshold
    without rebuilding the axes (clearing them re-creates every tick: a third of a redraw).
    Without scores the axes are hidden and only `empty_text` is shown: an empty axis says nothing.
    """
    ax.clear()
    if scores.empty or metric not in scores:
        ax.set_axis_off()
        ax.text(0.5, 0.5, empty_text, transform=ax.transAxes, ha="center", va="center", color="0.45", fontsize=11)
        legend_above(ax)
        return {"empty": True}
    artists: dict[str, Any] = {"detections": None, "skipped": None}
    xs, ys = decimate(scores["ts"].to_numpy(), scores[metric].to_numpy(), columns)
    artists["line"] = ax.plot(xs, ys, lw=0.8, color=SCORE_COLOR, label=metric)[0]
    _set_time_limits(ax, scores)
    artists["threshold"] = ax.axhline(threshold, color=THRESHOLD_COLOR, lw=1.0, ls="--")
    if labels is not None and not labels.empty:
        _draw_labels(ax, labels)
    ax.set_xlabel("time (s)")
    ax.set_ylabel(metric)
    ax.grid(alpha=0.2)
    update_threshold(ax, artists, metric, threshold, detections, skipped)
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
    """From the first score to a little past the last: a mark on the newest frame is not cut in half."""
    t0, t1 = float(scores["ts"].iloc[0]), float(scores["ts"].iloc[-1])
    ax.set_xlim(t0, t1 + max(0.015 * (t1 - t0), 1e-6))


def update_threshold(ax: Any, artists: dict[str, Any], metric: str, threshold: float,
                     detections: pd.DataFrame | None, skipped: pd.DataFrame | None = None) -> None:
    """Move the threshold line and replace the marks of a plot drawn by `plot_scores`."""
    if artists.get("empty"):
        return
    artists["threshold"].set_ydata([threshold, threshold])
    artists["threshold"].set_label(f"threshold {threshold:.3g}")
    _set_marks(ax, artists, "detections", detections, metric, dict(marker="v", ls="none", color=DETECTION_COLOR,
                                                                     ms=6, zorder=3))
    _set_marks(ax, artists, "skipped", skipped, metric, dict(marker="v", ls="none", mfc="none", mec=SKIPPED_COLOR,
                                                              mew=1.1, ms=6, zorder=3))
    n_det = 0 if detections is None else len(detections)
    n_skip = 0 if skipped is None else len(skipped)
    if artists["detections"] is not None:
        artists["detections"].set_label(f"{n_det:,} detection" + ("" if n_det == 1 else "s"))
    if artists["skipped"] is not None:
        artists["skipped"].set_label(f"{n_skip:,} skipped (min_gap)")
    ax.relim()
    ax.autoscale_view(scalex=False)
    legend_above(ax)


def _set_marks(ax: Any, artists: dict[str, Any], key: str, rows: pd.DataFrame | None, metric: str,
               style: dict[str, Any]) -> None:
    marks = artists.get(key)
    if rows is not None and not rows.empty and metric in rows:
        if marks is None:
            marks = artists[key] = ax.plot([], [], **style)[0]
        marks.set_data(score_times(rows), rows[metric].to_numpy())
    elif marks is not None:
        marks.remove()
        artists[key] = None


def legend_above(ax: Any) -> None:
    """One row of legend above the axes (two when one does not fit the figure's width)."""
    fig = ax.figure
    old = ax.get_legend()
    if old is not None:
        old.remove()
    handles, texts = ax.get_legend_handles_labels()
    rows = 0
    if handles:
        kw = dict(loc="lower left", bbox_to_anchor=(0.0, 1.0), frameon=False, fontsize=LEGEND_FONT,
                  borderaxespad=0.25, borderpad=0.2, handlelength=1.5, handletextpad=0.4, columnspacing=1.2)
        leg = ax.legend(handles, texts, ncol=len(handles), **kw)
        rows = 1
        left = ax.get_position().x0 * fig.bbox.width
        if leg.get_window_extent().width > fig.bbox.width - left - 4:  # any canvas: the figure finds a renderer
            leg.remove()
            ax.legend(handles, texts, ncol=math.ceil(len(handles) / 2), **kw)
            rows = 2
    _top_margin(fig, rows)


def _top_margin(fig: Any, rows: int) -> None:
    """Room above the axes for `rows` legend rows (8 pt text ≈ 15 px a row at 100 dpi)."""
    px = 8 + rows * 1.45 * LEGEND_FONT * fig.dpi / 72
    top = 1 - px / fig.bbox.height
    if abs(fig.subplotpars.top - top) > 1e-6:
        fig.subplots_adjust(top=top)


def _draw_labels(ax: Any, labels: pd.DataFrame) -> None:
    """Labeled events as one line collection (+ one span collection for gradual events): one artist
    per event would make a session with hundreds of labels slow to redraw."""
    from matplotlib.collections import PolyCollection

    times = labels["time"].to_numpy(dtype=np.float64)
    x_axis = ax.get_xaxis_transform()  # x in data, y in axes fraction: lines span the full height
    ax.vlines(times, 0, 1, transform=x_axis, color=LABEL_COLOR, lw=0.8, alpha=0.7, label="labels")
    if "end" in labels:
        ends = labels["end"].to_numpy(dtype=np.float64)
        gradual = np.isfinite(ends)
        if gradual.any():
            spans = [[(t, 0), (t, 1), (e, 1), (e, 0)] for t, e in zip(times[gradual], ends[gradual])]
            ax.add_collection(PolyCollection(spans, transform=x_axis, facecolor=LABEL_COLOR, alpha=0.15,
                                             linewidths=0), autolim=False)


def save_score_plot(path: str, scores: pd.DataFrame, metric: str, threshold: float,
                    detections: pd.DataFrame | None = None, labels: pd.DataFrame | None = None,
                    title: str | None = None, min_gap: float | None = None) -> str:
    """Write the score plot as a PNG (headless, Agg backend); returns the path.

    With `min_gap` (the capture rule's gap) the peaks it skipped are marked too.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 3.4), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(111)
    fig.subplots_adjust(left=0.07, right=0.99, bottom=0.15)
    skipped = skipped_peaks(scores, metric, threshold, detections, min_gap) if min_gap else None
    plot_scores(ax, scores, metric, threshold, detections, labels, skipped=skipped)
    if title:
        fig.suptitle(title, fontsize=10, x=0.01, ha="left", y=0.995, va="top")
        fig.subplots_adjust(top=fig.subplotpars.top - 0.07)
    fig.savefig(path)
    return path
