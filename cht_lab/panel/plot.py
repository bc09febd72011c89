"""PNG rendering for the panel: the score plot and the tuning plot, off-screen with Agg.

A PNG in an `ipywidgets.Image` shows the same in JupyterLab, Notebook 7, VS Code and a saved
notebook, with no frontend plotting extension. Each renderer keeps one Figure (creating one
costs more than drawing it) and encodes with Pillow at a low compression level: matplotlib's own
PNG writer redraws the figure and compresses harder, which costs more than the draw itself.

A PNG scales with its box, text included: a 960 px plot shown 450 px wide (a 900 px window with
JupyterLab's sidebar open) has 6 px legend text. So `ScorePlotView` renders two sizes — the narrow
one at a higher dpi, i.e. with larger text for the same pixels — and a CSS container query shows
the one made for the width the plot actually gets.
"""

from __future__ import annotations

import io
import threading
from typing import Any

import ipywidgets as widgets
import numpy as np
import pandas as pd

from cht_lab.panel.plotting import (
    LABEL_COLOR,
    SCORE_COLOR,
    THRESHOLD_COLOR,
    legend_above,
    plot_scores,
    update_scores,
    update_threshold,
)

_DPI = 100
WIDE_PX = 960
NARROW_PX = 640
NARROW_BELOW_PX = 768  # a plot box narrower than this shows the narrow rendition (wide would be < 80 %)
NARROW_DPI = 130  # text 1.3x larger than at 100 dpi: still >= 9 px when the narrow plot is shown at 70 %


class _Figure:
    def __init__(self, width_px: int, height_px: int, left_px: int = 62, right_px: int = 12,
                 bottom_px: int = 42, dpi: int = _DPI):
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        self.width_px, self.height_px = int(width_px), int(height_px)
        self.fig = Figure(figsize=(width_px / dpi, height_px / dpi), dpi=dpi)
        FigureCanvasAgg(self.fig)
        k = dpi / _DPI  # margins hold text, which scales with the dpi
        self.fig.subplots_adjust(left=k * left_px / width_px, right=1 - k * right_px / width_px,
                                 bottom=k * bottom_px / height_px)
        self.ax = self.fig.add_subplot(111)
        self.lock = threading.Lock()  # a Figure is not thread-safe; renders come from the kernel and workers

    def png(self) -> bytes:
        self.fig.canvas.draw()
        return self.encode()

    def encode(self) -> bytes:
        """The canvas as it is now, as PNG."""
        from PIL import Image

        canvas = self.fig.canvas
        w, h = canvas.get_width_height()
        im = Image.frombuffer("RGBA", (w, h), canvas.buffer_rgba(), "raw", "RGBA", 0, 1)
        buf = io.BytesIO()
        im.save(buf, "PNG", compress_level=1)
        return buf.getvalue()


class ScorePlot(_Figure):
    """Score vs time with threshold, detections, skipped peaks and labels (`plotting.plot_scores`), as PNG.

    What a threshold move changes (the threshold line, the marks, the legend) is drawn over a saved
    copy of the rest (axes, ticks, score line, labels): the ticks are most of a full draw. Every
    render draws that way, the first one too, so a moved threshold and a fresh plot give the same
    pixels.
    """

    _DYNAMIC = ("threshold", "detections", "skipped")

    def __init__(self, width_px: int = WIDE_PX, height_px: int = 280, dpi: int = _DPI):
        super().__init__(width_px, height_px, dpi=dpi)
        self._drawn: tuple[Any, ...] = ()  # what the axes show now: (scores, labels, metric, columns)
        self._artists: dict[str, Any] = {}
        self._background: Any = None  # the canvas without the dynamic artists
        self._background_key: tuple[Any, ...] = ()

    def render(self, scores: pd.DataFrame, metric: str, threshold: float,
               detections: pd.DataFrame | None = None, labels: pd.DataFrame | None = None,
               columns: int | None = None, full: bool = False, skipped: pd.DataFrame | None = None) -> bytes:
        """PNG of the plot, redrawing no more than what changed since the last render.

        Same scores: only the threshold line, marks and legend move. New scores with the same metric,
        labels and width (a live batch): the line's data is replaced and the axes kept. Anything
        else, or `full=True`: the axes are rebuilt. `columns` (default: one per pixel) bounds the
        points drawn (`plotting.decimate`).
        """
        columns = self.width_px if columns is None else int(columns)
        with self.lock:
            drawn = (scores, labels, metric, columns)
            same_frame = (len(self._drawn) == 4 and labels is self._drawn[1] and metric == self._drawn[2]
                          and columns == self._drawn[3])
            static_changed = True
            if not full and same_frame and scores is self._drawn[0]:
                update_threshold(self.ax, self._artists, metric, threshold, detections, skipped)
                static_changed = False
            elif (not full and same_frame and self._artists.get("line") is not None and not scores.empty
                  and metric in scores):
                update_scores(self.ax, self._artists, scores, metric, columns)
                update_threshold(self.ax, self._artists, metric, threshold, detections, skipped)
                self._drawn = drawn
            else:
                self._artists = plot_scores(self.ax, scores, metric, threshold, detections, labels, columns=columns,
                                            skipped=skipped)
                self._drawn = drawn
            self._draw(static_changed)
            return self.encode()

    def _draw(self, static_changed: bool) -> None:
        canvas, ax = self.fig.canvas, self.ax
        dynamic = [self._artists[k] for k in self._DYNAMIC if self._artists.get(k) is not None]
        if ax.get_legend() is not None:
            dynamic.append(ax.get_legend())
        for artist in dynamic:
            artist.set_animated(True)  # left out of canvas.draw(): drawn over the background below
        key = (ax.get_xlim(), ax.get_ylim(), self.fig.subplotpars.top)  # the ticks and the axes' box
        if static_changed or self._background is None or key != self._background_key:
            canvas.draw()
            self._background, self._background_key = canvas.copy_from_bbox(self.fig.bbox), key
        else:
            canvas.restore_region(self._background)
        for artist in dynamic:
            ax.draw_artist(artist)


_PLOT_CSS = f"""<style>
.cht-plot-box {{ container-type: inline-size; width: 100%; }}
.cht-plot-box > img.cht-plot-narrow {{ display: none; }}
@container (max-width: {NARROW_BELOW_PX - 1}px) {{
  .cht-plot-box > img.cht-plot-wide {{ display: none; }}
  .cht-plot-box > img.cht-plot-narrow {{ display: block; }}
}}
</style>"""


class ScorePlotView(widgets.VBox):
    """The score plot as a widget: a wide and a narrow PNG, CSS shows the one that fits its box.

    Both are kept current (a render draws both), so resizing the window never shows a stale
    plot. Browsers without container queries show the wide one, as before.
    """

    def __init__(self, width_px: int = WIDE_PX, narrow_px: int = NARROW_PX, height_px: int = 280):
        narrow_px = min(int(narrow_px), int(width_px))
        self.renderers = {"wide": ScorePlot(width_px, height_px),
                          "narrow": ScorePlot(narrow_px, round(height_px * 1.15), dpi=NARROW_DPI)}
        self.wide = widgets.Image(format="png", layout=widgets.Layout(width="100%", max_width=f"{width_px}px"))
        self.narrow = widgets.Image(format="png", layout=widgets.Layout(width="100%",
                                                                         max_width=f"{NARROW_BELOW_PX}px"))
        for name, image in (("wide", self.wide), ("narrow", self.narrow)):
            image.add_class("cht-plot")
            image.add_class(f"cht-plot-{name}")
        self._style = widgets.HTML(_PLOT_CSS, layout=widgets.Layout(display="none"))
        super().__init__([self._style, self.wide, self.narrow], layout=widgets.Layout(width="100%"))
        self.add_class("cht-plot-box")

    @property
    def value(self) -> bytes:
        """The wide rendition's PNG bytes (what a test or a script wants to look at)."""
        return self.wide.value

    def render(self, *args: Any, **kwargs: Any) -> None:
        """`ScorePlot.render` for both renditions; arguments as there."""
        self.wide.value = self.renderers["wide"].render(*args, **kwargs)
        self.narrow.value = self.renderers["narrow"].render(*args, **kwargs)

    def close(self) -> None:
        for w in (self._style, self.wide, self.narrow):
            w.close()
        super().close()


class TuningPlot(_Figure):
    """Precision, recall and F1 against threshold, the best threshold and the current one."""

    def __init__(self, width_px: int = 560, height_px: int = 270):
        super().__init__(width_px, height_px, left_px=54)

    def render(self, sweep: pd.DataFrame, best: float | None, threshold: float, metric: str) -> bytes:
        with self.lock:
            ax = self.ax
            ax.clear()
            if not sweep.empty:
                x = sweep["threshold"].to_numpy(dtype=np.float64)
                for col, color in (("precision", SCORE_COLOR), ("recall", "#dd8452"), ("f1", LABEL_COLOR)):
                    if col in sweep:
                        ax.plot(x, sweep[col].to_numpy(dtype=np.float64), color=color,
                                lw=1.6 if col == "f1" else 1.0, label="F1" if col == "f1" else col)
                if best is not None and np.isfinite(best):
                    ax.axvline(best, color=LABEL_COLOR, ls=":", lw=1.2, label=f"best {best:.3g}")
            ax.axvline(threshold, color=THRESHOLD_COLOR, ls="--", lw=1.0, label=f"current {threshold:.3g}")
            ax.set_ylim(-0.02, 1.05)
            ax.set_xlabel(f"threshold ({metric})")
            ax.set_ylabel("precision · recall · F1")
            ax.grid(alpha=0.2)
            legend_above(ax)
            return self.png()


def detections_frame(frames: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Captured frames in the shape `plot_scores` marks: their `score` under the metric's column."""
    if frames.empty:
        return frames
    return frames.assign(**{metric: frames["score"]})
