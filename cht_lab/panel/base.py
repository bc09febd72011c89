"""What the recorded and the live panel share: an ipywidgets VBox with traits, controls, plot, tabs.

`Panel` is a widget: it goes into `widgets.VBox([...])` or a `Tab`, and its `threshold` and
`metric` are traits (`ipywidgets.link((panel, "threshold"), (other, "value"))`). The slider and
the metric dropdown are linked to those traits; the trait is the only copy of the threshold the
panel keeps. Subclasses (`SessionPanel`, `LivePanel`) only say where the data comes from and what
a threshold change does to their session.

Every redraw goes through `UiUpdater` (sync.py): coalesced, throttled, on the kernel's thread.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any, ClassVar, Iterable, Iterator

import ipywidgets as widgets
import numpy as np
import pandas as pd
import traitlets

from cht_lab.frame_table import write_frames
from cht_lab.index.session_index import EXPORT_FORMATS
from cht_lab.panel.plot import WIDE_PX, ScorePlotView
from cht_lab.panel.plotting import skipped_peaks
from cht_lab.panel.sync import UiUpdater
from cht_lab.panel.tab import PanelTab, close_tree, dispatch, resolve_tabs
from cht_lab.panel.text import plural
from cht_lab.panel.thresholds import nice_ceil, slider_range
from cht_lab.panel.thumbs import CACHE_DIR, Thumbnails, Tile

log = logging.getLogger(__name__)

EXPORT_STEM = "frame_index"  # <session>/frame_index.parquet|csv
ALL_PARTS = frozenset({"threshold", "metric", "scores", "frames", "labels", "audio", "thumbs", "status", "tuning"})
_PLOT_PARTS = frozenset({"threshold", "metric", "scores", "frames", "labels"})  # the plot draws the labels


class PanelError(RuntimeError):
    """A panel action that cannot be done (e.g. exporting in an unknown format)."""


class Panel(widgets.VBox):
    """Header, threshold slider + metric, score plot, tabs, export row and status line, as one widget."""

    threshold = traitlets.Float(0.0, help="capture threshold; the slider is linked to it").tag(sync=True)
    metric = traitlets.Unicode("", help="the score column the threshold applies to").tag(sync=True)

    heading: ClassVar[str] = "session"  # the title's first word(s); behaviour never depends on it
    slider_shrinks: ClassVar[bool] = True  # False: the range only grows (never under a live user's hand)
    _ready = False  # observers and worker callbacks act only once the widgets exist
    _closed = False

    def __init__(self, session_dir: Path, segments: dict[int, Path], *, threshold: float, metric: str,
                 metrics: list[str], max_thumbs: int = 24, interval: float = 0.3, plot_width: int = WIDE_PX,
                 tabs: Iterable[str | type[PanelTab]] | None = None):
        self.session_dir = Path(session_dir)
        self.max_thumbs = int(max_thumbs)
        self.errors: deque[dict[str, Any]] = getattr(self, "errors", deque(maxlen=50))
        self._applying: tuple[set[str], int] | None = None  # (parts, thread) of the redraw in progress
        self._held: set[str] | None = None
        self._detections = pd.DataFrame()
        self._skipped = pd.DataFrame()
        super().__init__()
        self._updater = UiUpdater(self._apply, interval, on_error=lambda exc: self.report_error("update", exc))
        self.thumb_store = Thumbnails(self.session_dir / CACHE_DIR, segments,
                                      on_ready=lambda: self.request("thumbs"), on_error=self.report_error)
        self._metrics = list(metrics) or [metric]
        self.metric = metric
        self.threshold = float(threshold)
        self._build(plot_width, resolve_tabs(tabs))
        self._ready = True
        self.request(*ALL_PARTS, immediate=True)

    # ------------------------------------------------------------------ widgets

    def _build(self, plot_width: int, tab_classes: list[type[PanelTab]]) -> None:
        W = widgets
        self.header = W.HTML(f"<b>{self.heading}</b> <code>{self.session_dir.name}</code>")
        self.header.add_class("cht-header")
        hi, step = slider_range(self._metric_values(), self.threshold)
        self.slider = W.FloatSlider(value=self.threshold, min=0.0, max=max(hi, self.threshold), step=step,
                                    description="threshold", continuous_update=False, readout_format=".3f",
                                    layout=W.Layout(width="440px", max_width="100%"),
                                    style={"description_width": "70px"})
        self.slider.add_class("cht-slider")
        self.metric_dropdown = W.Dropdown(options=self._metrics, value=self.metric, description="metric",
                                          layout=W.Layout(width="220px"), style={"description_width": "50px"})
        self.metric_dropdown.add_class("cht-metric")
        if len(self._metrics) < 2:
            self.metric_dropdown.layout.display = "none"
        self._links = [traitlets.link((self, "threshold"), (self.slider, "value")),
                       traitlets.link((self, "metric"), (self.metric_dropdown, "value"))]
        self.count = W.HTML()
        self.count.add_class("cht-count")
        self.plot = ScorePlotView(width_px=plot_width)
        self.tabs: tuple[PanelTab, ...] = tuple(cls(self) for cls in tab_classes)
        self.tab_bar = W.Tab([t.widget for t in self.tabs], titles=tuple(t.title for t in self.tabs))
        self.tab_bar.observe(lambda _c: self.request("tab", immediate=True), names="selected_index")
        self.export_format = W.ToggleButtons(options=list(EXPORT_FORMATS), value="parquet",
                                             style={"button_width": "80px"})
        self.export_button = W.Button(description="export frame index", icon="download",
                                      layout=W.Layout(width="200px"))
        self.export_button.add_class("cht-export")
        self.export_button.on_click(lambda _b: self._export_clicked())
        self.export_info = W.HTML()
        self.status = W.HTML()
        self.status.add_class("cht-status")
        wrap = W.Layout(align_items="center", flex_flow="row wrap")
        self.children = [
            self.header,
            W.HBox([self.slider, self.metric_dropdown, self.count], layout=wrap),
            self.plot,
            self.tab_bar,
            W.HBox([self.export_format, self.export_button, self.export_info], layout=wrap),
            self.status,
        ]
        self.add_class("cht-panel")

    def tab(self, name: str) -> PanelTab:
        """The tab titled `name` (case-insensitive), e.g. `panel.tab("tuning").apply_best_button`."""
        for t in self.tabs:
            if t.name == name.lower():
                return t
        raise KeyError(f"no tab {name!r}; tabs: {', '.join(t.title for t in self.tabs)}")

    def show_tab(self, name: str) -> PanelTab:
        """Select a tab (what clicking its title does); returns it, redrawn."""
        t = self.tab(name)
        self.tab_bar.selected_index = self.tabs.index(t)
        return t

    @property
    def gallery(self) -> Any:
        """The Frames tab's thumbnail gallery."""
        return self.tab("frames").gallery  # type: ignore[attr-defined]

    def _metric_values(self) -> np.ndarray | None:
        scores = self.scores
        if scores.empty or self.metric not in scores:
            return None
        return scores[self.metric].to_numpy(dtype=np.float64)

    # ------------------------------------------------------------------ traits

    @traitlets.validate("threshold")
    def _valid_threshold(self, proposal: Any) -> float:
        value = float(proposal["value"])
        if not (math.isfinite(value) and value >= 0):
            raise traitlets.TraitError(f"threshold must be a finite number >= 0, not {value!r}")
        slider = getattr(self, "slider", None)
        if slider is not None and value > slider.max:  # grow first: the linked slider would clamp it
            hi = nice_ceil(value)
            slider.max, slider.step = hi, hi / 1000
        return value

    @traitlets.observe("threshold")
    def _threshold_changed(self, change: dict[str, Any]) -> None:
        self._on_threshold(float(change["new"]))
        if self._ready:
            self.request("threshold", immediate=True)

    @traitlets.observe("metric")
    def _metric_changed(self, change: dict[str, Any]) -> None:
        if not self._ready:
            return
        with self.hold_updates("metric", "scores"):
            self._on_metric(str(change["new"]))  # may set the threshold the metric had last time

    def _fit_slider(self) -> None:
        """Range and step of the slider for the current metric's scores (the value never moves)."""
        hi, step = slider_range(self._metric_values(), self.threshold)
        if not self.slider_shrinks:
            hi = max(hi, self.slider.max)
            step = hi / 1000
        if (hi, step) != (self.slider.max, self.slider.step):
            self.slider.max, self.slider.step = hi, step  # hi >= 2 × threshold: the value is never clamped

    # ------------------------------------------------------------------ the update path

    def request(self, *parts: str, immediate: bool = False) -> None:
        """Mark parts stale; one coalesced redraw follows (any thread). Inside a redraw they join it."""
        if self._held is not None:
            self._held.update(parts)
        elif self._applying is not None and self._applying[1] == threading.get_ident():
            self._applying[0].update(parts)  # a redraw that changes the threshold redraws it too
        else:
            self._updater.request(*parts, immediate=immediate)

    def request_later(self, delay: float, *parts: str) -> None:
        """`request(*parts)` in `delay` seconds (a throttled redraw that must still happen)."""
        self._updater.request_later(delay, *parts)

    @contextlib.contextmanager
    def hold_updates(self, *parts: str) -> Iterator[None]:
        """Collect the requests made inside into one immediate redraw at the end."""
        if self._held is not None:
            self._held.update(parts)
            yield
            return
        self._held = set(parts)
        try:
            yield
        finally:
            held, self._held = self._held, None
            if held:
                self.request(*held, immediate=True)

    def _apply(self, parts: set[str]) -> None:
        """Bring the widgets up to date with everything stale (runs on the kernel thread)."""
        if self._closed:
            return
        self._applying = (parts, threading.get_ident())
        try:
            self._take_pending(parts)
            if parts & _PLOT_PARTS:
                if parts & {"scores", "metric"}:
                    self._fit_slider()
                self._detections = self._detect()
                self._skipped = skipped_peaks(self.scores, self.metric, self.threshold, self._detections,
                                              self.min_gap)
                self.count.value = self._count_html()
                self.plot.render(self.scores, self.metric, self.threshold, self._detections, self.labels,
                                 skipped=self._skipped)
            dispatch(self.tabs, self.tab_bar.selected_index, parts, on_error=self.report_error)
            self.status.value = self._status_html()
        finally:
            self._applying = None

    def _count_html(self) -> str:
        text = f"<b>{len(self._detections):,}</b> {self._count_noun(len(self._detections))}"
        if len(self._skipped):
            text += (f" · {plural(len(self._skipped), 'peak')} skipped <small>(less than "
                     f"{self.min_gap:g} s after a detection: min_gap)</small>")
        return text

    def report_error(self, where: str, exc: BaseException | str) -> None:
        """Remember an error for the status line (never raises: called from worker threads)."""
        message = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"
        log.warning("panel %s: %s", where, message)
        self.errors.append({"time": time.time(), "where": where, "error": message})
        if not self._closed and self._ready:
            self.request("status")

    def _status_html(self) -> str:
        items = self._status_items()
        if self.errors:
            last = self.errors[-1]
            items.append(f"<span style='color:#c44e52'>last error ({last['where']}): {last['error']}</span>")
        return " · ".join(items)

    # ------------------------------------------------------------------ data, for the tabs

    @property
    def detections(self) -> pd.DataFrame:
        """What the plot marks: the frames the threshold selects (recorded) or captured (live)."""
        return self._detections

    @property
    def skipped(self) -> pd.DataFrame:
        """The peaks above the threshold that `min_gap` kept from being captured (grey marks)."""
        return self._skipped

    @property
    def detection_count(self) -> int:
        """Detections at the current threshold (recorded) or frames captured so far (live)."""
        return len(self._detections)

    @property
    def growing(self) -> bool:
        """Whether more scores may still arrive (a running live session)."""
        return False

    # Subclasses provide: scores, labels, audio (properties), min_gap, _detect(), tiles(limit),
    # no_frames_text(), no_audio_text(), _count_noun(n), _status_items(), _on_threshold(value),
    # _on_metric(metric), dataframe(); optionally _take_pending(parts) and _before_sync().

    def _take_pending(self, parts: set[str]) -> None:
        """Live: adopt the data the ticker read. Recorded: nothing to adopt."""

    def _before_sync(self) -> None:
        pass

    def tiles(self, limit: int) -> tuple[list[Tile], int]:
        raise NotImplementedError

    # ------------------------------------------------------------------ tuning

    @property
    def best_threshold(self) -> float | None:
        """The F1-best threshold for the current metric (None without labels or a Tuning tab)."""
        tuning = next((t for t in self.tabs if hasattr(t, "best_threshold")), None)
        if tuning is None:
            return None
        with self._updater.apply_lock:
            return tuning.best_threshold  # type: ignore[attr-defined]

    def apply_best(self) -> float | None:
        """Set the threshold to the best one (what the Tuning tab's button does)."""
        best = self.best_threshold
        if best is not None:
            self.threshold = best
        return best

    # ------------------------------------------------------------------ export

    def dataframe(self) -> pd.DataFrame:
        """The frame index of what the panel shows (see the subclasses)."""
        raise NotImplementedError

    def export(self, format: str | None = None, path: str | os.PathLike[str] | None = None) -> Path:
        """Write `dataframe()` as Parquet or CSV (default: `<session>/frame_index.<format>`), atomically,
        in the frame index's schema (the same writer as `Session.export`)."""
        fmt = (format or self.export_format.value).lower()
        if fmt not in EXPORT_FORMATS:
            raise PanelError(f"cannot export as {fmt!r}: choose one of {', '.join(EXPORT_FORMATS)}")
        target = Path(path) if path is not None else self.session_dir / f"{EXPORT_STEM}.{fmt}"
        df = self.dataframe()
        write_frames(target, df, fmt)
        log.info("exported %d frames to %s", len(df), target)
        return target

    def _export_clicked(self) -> None:
        try:
            path = self.export()
        except Exception as exc:  # a button callback must report, not raise into the void
            self.report_error("export", exc)
            self.export_info.value = f"<span style='color:#c44e52'>export failed: {exc}</span>"
            return
        self.export_info.value = f"wrote <code>{path}</code>"

    # ------------------------------------------------------------------ lifecycle

    @property
    def update_stats(self) -> dict[str, Any]:
        """How updates reached the widgets: mode ('loop'/'direct'), requests, applies, errors, off_thread."""
        return {"mode": self._updater.mode, **self._updater.stats}

    def sync(self, timeout: float = 60.0) -> bool:
        """Finish background work (thumbnails, live reads) and show it now; True when all of it finished.

        For scripts, tests and notebook cells that read the panel right after changing it.
        """
        deadline = time.monotonic() + timeout
        self._before_sync()
        ok = self.thumb_store.wait_idle(max(0.0, deadline - time.monotonic()))
        self.request("thumbs")
        self._updater.run_now()
        return ok and not self.thumb_store.busy

    def close(self) -> None:
        """Stop the panel's threads and close it and its widgets."""
        if self._closed:
            return
        self._closed = True
        if not hasattr(self, "_updater"):  # __init__ failed (ipywidgets' __del__ still closes)
            super().close()
            return
        self._updater.close()
        self.thumb_store.close()
        for link in self._links:
            link.unlink()
        for t in self.tabs:
            t.close()
        for child in self.children:
            if child is not self.tab_bar:
                close_tree(child)
        self.tab_bar.close()
        super().close()

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({str(self.session_dir)!r}, metric={self.metric!r}, "
                f"threshold={self.threshold:.4g}, detections={self.detection_count})")


__all__ = ["Panel", "PanelError", "PanelTab"]
