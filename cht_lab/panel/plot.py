"""PNG rendering for the panel: the score plot and the tuning plot, off-screen with Agg.

A PNG in an `ipywidgets.Image` shows the same in JupyterLab, Notebook 7, VS Code and a saved
notebook, with no frontend plotting extension. Each renderer keeps one Figure (creating one
costs more than drawing it) and encodes with Pillow at a low compression level: matplotlib's own
PNG writer redraws the figure and compresses harder, which costs more than the draw itself.
"""

from __future__ import annotations

import io
import threading
from typing import Any

import numpy as np
import pandas as pd

from cht_lab.panel.plotting import plot_scores, update_scores, update_threshold

_DPI = 100


class _Figure:
    def __init__(self, width_px: int, height_px: int):
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        self.fig = Figure(figsize=(width_px / _DPI, height_px / _DPI), dpi=_DPI)
        FigureCanvasAgg(self.fig)
        self.ax = self.fig.add_subplot(111)
        self.lock = threading.Lock()  # a Figure is not thread-safe; renders come from the kernel and workers

    def png(self) -> bytes:
        from PIL import Image

        canvas = self.fig.canvas
        canvas.draw()
        w, h = canvas.get_width_height()
        im = Image.frombuffer("RGBA", (w, h), canvas.buffer_rgba(), "raw", "RGBA", 0, 1)
        buf = io.BytesIO()
        im.save(buf, "PNG", compress_level=1)
        return buf.getvalue()


class ScorePlot(_Figure):
    """Score vs time with threshold, detections and labels — `cht_lab.panel.plotting.plot_scores`, as PNG."""

    def __init__(self, width_px: int = 960, height_px: int = 280):
        super().__init__(width_px, height_px)
        self.fig.subplots_adjust(left=0.07, right=0.99, top=0.95, bottom=0.17)
        self._drawn: tuple[Any, ...] = ()  # what the axes show now: (scores, labels, metric, columns)
        self._artists: dict[str, Any] = {}

    def render(self, scores: pd.DataFrame, metric: str, threshold: float,
               detections: pd.DataFrame | None = None, labels: pd.DataFrame | None = None,
               columns: int = 1000, full: bool = False) -> bytes:
        """PNG of the plot, redrawing no more than what changed since the last render.

        Same scores: only the threshold line, marks and legend move. New scores with the same metric,
        labels and width (a live batch): the line's data is replaced and the axes kept. Anything
        else, or `full=True`: the axes are rebuilt.
        """
        with self.lock:
            drawn = (scores, labels, metric, columns)
            same_frame = (len(self._drawn) == 4 and labels is self._drawn[1] and metric == self._drawn[2]
                          and columns == self._drawn[3])
            if not full and same_frame and scores is self._drawn[0]:
                update_threshold(self.ax, self._artists, metric, threshold, detections)
            elif (not full and same_frame and self._artists.get("line") is not None and not scores.empty
                  and metric in scores):
                update_scores(self.ax, self._artists, scores, metric, columns)
                update_threshold(self.ax, self._artists, metric, threshold, detections)
                self._drawn = drawn
            else:
                self._artists = plot_scores(self.ax, scores, metric, threshold, detections, labels, columns=columns)
                self._drawn = drawn
                if scores.empty:
                    self.ax.text(0.5, 0.5, "no scores yet", transform=self.ax.transAxes, ha="center",
                                 va="center", color="0.5")
            return self.png()


class TuningPlot(_Figure):
    """Precision, recall and F1 against threshold, the best threshold and the current one."""

    def __init__(self, width_px: int = 640, height_px: int = 260):
        super().__init__(width_px, height_px)
        self.fig.subplots_adjust(left=0.1, right=0.98, top=0.93, bottom=0.18)

    def render(self, sweep: pd.DataFrame, best: float | None, threshold: float, metric: str) -> bytes:
        with self.lock:
            ax = self.ax
            ax.clear()
            if not sweep.empty:
                x = sweep["threshold"].to_numpy(dtype=np.float64)
                for col, color in (("precision", "#4c72b0"), ("recall", "#dd8452"), ("f1", "#55a868")):
                    if col in sweep:
                        ax.plot(x, sweep[col].to_numpy(dtype=np.float64), color=color, lw=1.4 if col == "f1" else 1.0,
                                label=col)
                if best is not None and np.isfinite(best):
                    ax.axvline(best, color="#55a868", ls=":", lw=1.2, label=f"best {best:.3g}")
            ax.axvline(threshold, color="#c44e52", ls="--", lw=1.0, label=f"current {threshold:.3g}")
            ax.set_ylim(-0.02, 1.05)
            ax.set_xlabel(f"threshold ({metric})")
            ax.grid(alpha=0.2)
            ax.legend(loc="lower left", fontsize=8, framealpha=0.8)
            return self.png()


def detections_frame(frames: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Captured frames in the shape `plot_scores` marks: their `score` under the metric's column."""
    if frames.empty:
        return frames
    return frames.assign(**{metric: frames["score"]})
