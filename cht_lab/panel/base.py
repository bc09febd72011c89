"""What the recorded and the live panel share: the widgets, the update path, tuning, audio, export.

`cht_lab.panel.session_panel` documents the panel; this module holds its common half so that `SessionPanel`
(widget.py) and `LivePanel` (widget_live.py) only say where their data comes from.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any, Iterable

import ipywidgets as widgets
import numpy as np
import pandas as pd

from cht_lab.panel.gallery import Gallery, format_time
from cht_lab.panel.plot import ScorePlot, TuningPlot
from cht_lab.panel.sync import UiUpdater
from cht_lab.panel.thumbs import CACHE_DIR, Thumbnails, Tile

log = logging.getLogger(__name__)

EXPORT_STEM = "frame_index"  # <session>/frame_index.parquet|csv
EXPORT_FORMATS = ("parquet", "csv")
TUNING_TAB = 1
LIVE_TUNING_INTERVAL = 5.0  # s between live sweeps: a sweep reads every score, a redraw does not
ALL_PARTS = frozenset({"threshold", "scores", "frames", "thumbs", "tuning", "audio", "status"})
_DETECTION_PARTS = frozenset({"threshold", "scores", "frames"})


# --------------------------------------------------------------------------- helpers


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


def _nice_ceil(x: float) -> float:
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
    hi = _nice_ceil(top)
    return hi, hi / 1000


def _write_table(df: pd.DataFrame, path: Path, fmt: str) -> Path:
    """Parquet or CSV, written to a temporary name and renamed: a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    if fmt == "parquet":
        df.to_parquet(tmp, index=False)
    else:
        df.to_csv(tmp, index=False)
    os.replace(tmp, path)
    return path


def fmt_value(value: Any, spec: str, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "–"
    return f"{value:{spec}}{unit}"


class PanelError(RuntimeError):
    """A panel action that cannot be done (e.g. exporting in an unknown format)."""


# --------------------------------------------------------------------------- the shared panel


class _Panel:
    """Widgets, update path and actions shared by the recorded and the live panel."""

    kind = "session"

    def _prepare(self, session_dir: Path) -> None:
        """State the subclasses need while they load their data, before the widgets exist."""
        self.session_dir = Path(session_dir)
        self.errors: deque[dict[str, Any]] = deque(maxlen=50)
        self._data_lock = threading.Lock()  # data handed from worker threads to the next apply
        self._closed = False

    def __init__(self, segments: dict[int, Path], *, max_thumbs: int = 24, interval: float = 0.3,
                 plot_width: int = 960):
        self._updater = UiUpdater(self._apply, interval, on_error=lambda exc: self._error("update", exc))
        self._score_plot = ScorePlot(width_px=plot_width)
        self._tuning_plot: TuningPlot | None = None
        self._tuning_cache: dict[str, tuple[pd.DataFrame, float | None]] = {}
        self._tuning_at = float("-inf")
        self._thumbs = Thumbnails(self.session_dir / CACHE_DIR, segments,
                                  on_ready=lambda: self._updater.request("thumbs"), on_error=self._error)
        self._build(max_thumbs, plot_width)
        self._updater.request(*ALL_PARTS, immediate=True)

    # ------------------------------------------------------------------ data (subclasses)

    # The subclass keeps: self._scores (DataFrame), self._labels (DataFrame | None), self._audio
    # (DataFrame), self._metric (str), self._threshold (float), self._metrics (list[str]).

    def _detections(self) -> pd.DataFrame:
        raise NotImplementedError

    def _tiles(self, limit: int) -> tuple[list[Tile], int]:
        raise NotImplementedError

    def _status_items(self) -> list[str]:
        raise NotImplementedError

    def _set_threshold(self, value: float) -> None:
        self._threshold = float(value)

    def _set_metric(self, metric: str) -> None:
        raise NotImplementedError

    def dataframe(self) -> pd.DataFrame:
        """The frame index of what the panel shows (see the subclasses)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ widgets

    def _build(self, max_thumbs: int, plot_width: int) -> None:
        W = widgets
        values = self._metric_values()
        hi, step = slider_range(values, self._threshold)
        self.title = W.HTML(f"<b>{self.kind}</b> <code>{self.session_dir.name}</code>")
        self.slider = W.FloatSlider(value=min(self._threshold, hi), min=0.0, max=hi, step=step,
                                    description="threshold", continuous_update=False, readout_format=".3f",
                                    layout=W.Layout(width="440px"), style={"description_width": "70px"})
        self.slider.add_class("cht-slider")
        self.metric = W.Dropdown(options=self._metrics or [self._metric], value=self._metric, description="metric",
                                 layout=W.Layout(width="220px"), style={"description_width": "50px"})
        self.metric.add_class("cht-metric")
        if len(self._metrics) < 2:
            self.metric.layout.display = "none"
        self.count = W.HTML()
        self.count.add_class("cht-count")
        self.plot = W.Image(format="png", layout=W.Layout(width="100%", max_width=f"{plot_width}px"))
        self.plot.add_class("cht-plot")
        self.thumbs = Gallery(max_thumbs)
        self.thumbs.add_class("cht-gallery")

        self.tuning_plot = W.Image(format="png", layout=W.Layout(max_width="640px"))
        self.tuning_info = W.HTML()
        self.apply_best_button = W.Button(description="apply best threshold", icon="check", disabled=True,
                                          layout=W.Layout(width="240px"))
        self.apply_best_button.add_class("cht-apply-best")
        self.apply_best_button.on_click(lambda _b: self.apply_best())
        tuning_box = W.VBox([self.tuning_info, self.apply_best_button, self.tuning_plot])

        self.audio_list = W.Select(options=[], rows=8, layout=W.Layout(width="520px"))
        self.audio_list.add_class("cht-audio-list")
        self.player = W.Audio(value=b"", format="wav", autoplay=False, loop=False, controls=True)
        self.audio_info = W.HTML()
        audio_box = W.VBox([self.audio_info, W.HBox([self.audio_list, W.VBox([self.player])])])

        self.tabs = W.Tab([self.thumbs, tuning_box, audio_box], titles=("Frames", "Tuning", "Audio"))
        self.export_format = W.ToggleButtons(options=list(EXPORT_FORMATS), value="parquet",
                                             style={"button_width": "80px"})
        self.export_button = W.Button(description="export frame index", icon="download",
                                      layout=W.Layout(width="200px"))
        self.export_button.add_class("cht-export")
        self.export_button.on_click(lambda _b: self._export_clicked())
        self.export_info = W.HTML()
        self.status = W.HTML()
        self.status.add_class("cht-status")
        self.widget = W.VBox([
            self.title,
            W.HBox([self.slider, self.metric, self.count], layout=W.Layout(align_items="center")),
            self.plot,
            self.tabs,
            W.HBox([self.export_format, self.export_button, self.export_info], layout=W.Layout(align_items="center")),
            self.status,
        ])
        self.widget.add_class("cht-panel")
        self.slider.observe(self._on_slider, names="value")
        self.metric.observe(self._on_metric, names="value")
        self.tabs.observe(lambda _c: self._updater.request("tuning", immediate=True), names="selected_index")
        self.audio_list.observe(self._on_audio_selected, names="value")

    def _metric_values(self) -> np.ndarray | None:
        if self._scores.empty or self._metric not in self._scores:
            return None
        return self._scores[self._metric].to_numpy(dtype=np.float64)

    def _on_slider(self, change: dict[str, Any]) -> None:
        if self._syncing_controls:
            return
        self._set_threshold(float(change["new"]))
        self._updater.request("threshold", "tuning", immediate=True)

    def _on_metric(self, change: dict[str, Any]) -> None:
        if self._syncing_controls or change["new"] == self._metric:
            return
        self._set_metric(str(change["new"]))
        self._sync_slider()
        self._updater.request("threshold", "tuning", immediate=True)

    _syncing_controls = False

    def _sync_slider(self) -> None:
        """Range and value of the slider for the current metric and scores, without feedback."""
        hi, step = slider_range(self._metric_values(), self._threshold)
        if self.kind == "live":
            hi = max(hi, self.slider.max)  # never shrink under a live user's hand
        self._syncing_controls = True
        try:
            with self.slider.hold_trait_notifications():
                if hi >= self.slider.max:
                    self.slider.max, self.slider.step = hi, step
                    self.slider.value = self._threshold
                else:
                    self.slider.value = min(self._threshold, hi)
                    self.slider.max, self.slider.step = hi, step
            if self.metric.value != self._metric:
                self.metric.value = self._metric
        finally:
            self._syncing_controls = False

    # ------------------------------------------------------------------ the update path

    def _apply(self, parts: set[str]) -> None:
        """Bring the widgets up to date with everything stale (runs on the kernel thread)."""
        if self._closed:
            return
        self._take_pending(parts)
        if parts & _DETECTION_PARTS:
            self._current = self._detections()
            if "scores" in parts:
                self._sync_slider()
            self.count.value = self._count_html()
            self.plot.value = self._score_plot.render(self._scores, self._metric, self._threshold,
                                                      self._current, self._labels)
        if parts & (_DETECTION_PARTS | {"thumbs"}):
            tiles, total = self._tiles(self.thumbs.max_tiles)
            missing = self.thumbs.show(tiles, total, self._thumbs, empty_text=self._empty_text())
            if missing:
                self._thumbs.request(tiles)
        if parts & (_DETECTION_PARTS | {"tuning"}):
            self._update_tuning()
        if "audio" in parts:
            self._update_audio()
        self.status.value = self._status_html()

    def _take_pending(self, parts: set[str]) -> None:
        """Live: adopt the data the ticker read. Recorded: nothing to adopt."""

    def _count_html(self) -> str:
        return f"<b>{len(self._current)}</b> detections"

    def _empty_text(self) -> str:
        return "no detections at this threshold"

    def _error(self, where: str, exc: BaseException | str) -> None:
        """Remember an error for the status line (never raises: called from worker threads)."""
        message = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"
        log.warning("panel %s: %s", where, message)
        self.errors.append({"time": time.time(), "where": where, "error": message})
        if not self._closed:
            self._updater.request("status")

    def _status_html(self) -> str:
        items = self._status_items()
        if self.errors:
            last = self.errors[-1]
            items.append(f"<span style='color:#c44e52'>last error ({last['where']}): {last['error']}</span>")
        return " · ".join(items)

    # ------------------------------------------------------------------ tuning

    def _update_tuning(self) -> None:
        if self._labels is None or self._labels.empty:
            self.tuning_info.value = ("<i>no labels.csv in this session: tuning needs ground truth "
                                      "(columns time,end,kind,note)</i>")
            self.apply_best_button.disabled = True
            return
        if self.tabs.selected_index != TUNING_TAB and self._tuning_cache.get(self._metric) is not None:
            return  # drawn when the tab is opened; the best threshold is already known
        if self._scores.empty or self._metric not in self._scores:
            self.tuning_info.value = "<i>no scores yet</i>"
            return
        from cht_lab.tuning import sweep as tuning

        cached = self._tuning_cache.get(self._metric)
        stale = cached is None or (self.kind == "live" and time.monotonic() - self._tuning_at > LIVE_TUNING_INTERVAL)
        if stale:
            try:  # one sweep gives the curves and the best threshold (the same call as session.best_threshold)
                found = tuning.find_best(self._scores, self._labels, metric=self._metric, min_gap=self.min_gap)
                sweep, best = found.sweep, float(found.threshold)
            except ValueError as exc:  # TuningError: no threshold finds any labeled event (yet)
                log.info("no best threshold for %s: %s", self._metric, exc)
                sweep = tuning.sweep(self._scores, self._labels, metric=self._metric, min_gap=self.min_gap)
                best = None
            cached = self._tuning_cache[self._metric] = (sweep, best)
            self._tuning_at = time.monotonic()
        sweep, best = cached  # type: ignore[misc]
        now = tuning.evaluate(self._scores, self._labels, self._threshold, metric=self._metric, min_gap=self.min_gap)
        text = (f"current {self._threshold:.3f}: precision {now.precision:.2f} · recall {now.recall:.2f} · "
                f"<b>F1 {now.f1:.2f}</b>")
        if best is not None:
            at_best = tuning.evaluate(self._scores, self._labels, best, metric=self._metric, min_gap=self.min_gap)
            text = (f"best threshold <b>{best:.3f}</b> ({self._metric}): precision {at_best.precision:.2f} · "
                    f"recall {at_best.recall:.2f} · <b>F1 {at_best.f1:.2f}</b><br>{text}")
        self.tuning_info.value = text + f"<br><small>{len(self._labels)} labeled events</small>"
        self.apply_best_button.disabled = best is None
        self.apply_best_button.description = "apply best threshold" if best is None else f"apply best ({best:.3f})"
        if self.tabs.selected_index == TUNING_TAB:
            if self._tuning_plot is None:
                self._tuning_plot = TuningPlot()
            self.tuning_plot.value = self._tuning_plot.render(sweep, best, self._threshold, self._metric)

    @property
    def best_threshold(self) -> float | None:
        """The F1-best threshold for the current metric (None without labels)."""
        if self._labels is None or self._labels.empty:
            return None
        if self._metric not in self._tuning_cache:
            with self._updater.apply_lock:
                self._update_tuning()
        cached = self._tuning_cache.get(self._metric)
        return None if cached is None else cached[1]

    def apply_best(self) -> float | None:
        """Move the slider to the best threshold (what the 'apply best' button does)."""
        best = self.best_threshold
        if best is None:
            return None
        if best > self.slider.max:
            self.slider.max = _nice_ceil(best)
        self.slider.value = best
        return best

    # ------------------------------------------------------------------ audio

    def _update_audio(self) -> None:
        audio = self._audio
        if audio.empty:
            self.audio_info.value = f"<i>{self._no_audio_text()}</i>"
            if self.audio_list.options:
                self.audio_list.options = []
            return
        options = [(self._chunk_label(r), str(r.id)) for r in audio.sort_values("start").itertuples(index=False)]
        if list(self.audio_list.options) != options:
            keep = self.audio_list.value
            self.audio_list.options = options
            if keep in {v for _, v in options}:
                self.audio_list.value = keep
        total = float(audio["duration"].sum()) if "duration" in audio else 0.0
        self.audio_info.value = f"{len(audio)} chunks, {format_time(total)} of audio — select one to play"

    @staticmethod
    def _chunk_label(r: Any) -> str:
        level = getattr(r, "rms_dbfs", None)
        speech = getattr(r, "speech_ratio", None)
        return (f"{r.id}  {format_time(float(r.start))}–{format_time(float(r.start) + float(r.duration))}  "
                f"{fmt_value(level, '.0f', ' dBFS')}  speech {fmt_value(None if speech is None else 100 * speech, '.0f', '%')}")

    def _no_audio_text(self) -> str:
        return "no audio chunks"

    def _on_audio_selected(self, change: dict[str, Any]) -> None:
        chunk_id = change["new"]
        if chunk_id is None:
            return
        rows = self._audio[self._audio["id"].astype(str) == chunk_id]
        if rows.empty:
            return
        row = rows.iloc[0]
        path = self.session_dir / str(row["path"])
        try:
            self.player.value = path.read_bytes()
        except OSError as exc:
            self._error(f"audio {chunk_id}", exc)
            return
        level = row.get("rms_dbfs")
        peak = row.get("peak_dbfs")
        speech = row.get("speech_ratio")
        self.audio_info.value = (f"<b>{chunk_id}</b> {format_time(float(row['start']))}, "
                                 f"{float(row['duration']):.1f} s · level {fmt_value(level, '.1f', ' dBFS')} "
                                 f"(peak {fmt_value(peak, '.1f', ' dBFS')}) · speech "
                                 f"{fmt_value(None if speech is None else 100 * float(speech), '.0f', '%')}")

    # ------------------------------------------------------------------ export

    def export(self, format: str | None = None, path: str | os.PathLike[str] | None = None) -> Path:
        """Write `dataframe()` as Parquet or CSV (default: `<session>/frame_index.<format>`)."""
        fmt = (format or self.export_format.value).lower()
        if fmt not in EXPORT_FORMATS:
            raise PanelError(f"cannot export as {fmt!r}: choose one of {', '.join(EXPORT_FORMATS)}")
        target = Path(path) if path is not None else self.session_dir / f"{EXPORT_STEM}.{fmt}"
        df = self.dataframe()
        _write_table(df, target, fmt)
        log.info("exported %d frames to %s", len(df), target)
        return target

    def _export_clicked(self) -> None:
        try:
            path = self.export()
        except Exception as exc:  # a button callback must report, not raise into the void
            self._error("export", exc)
            self.export_info.value = f"<span style='color:#c44e52'>export failed: {exc}</span>"
            return
        self.export_info.value = f"wrote <code>{path}</code>"

    # ------------------------------------------------------------------ public

    @property
    def threshold(self) -> float:
        return self._threshold

    @property
    def detection_count(self) -> int:
        """Detections at the current threshold (recorded) or frames captured so far (live)."""
        return len(self._current)

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
        ok = self._thumbs.wait_idle(max(0.0, deadline - time.monotonic()))
        self._updater.request("thumbs")
        self._updater.run_now()
        return ok and not self._thumbs.busy

    def _before_sync(self) -> None:
        pass

    def close(self) -> None:
        """Stop the panel's threads and close its widgets."""
        self._closed = True
        self._updater.close()
        self._thumbs.close()
        self.thumbs.close()
        for w in _walk(self.widget):
            w.close()

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({str(self.session_dir)!r}, metric={self._metric!r}, "
                f"threshold={self._threshold:.4g}, detections={self.detection_count})")


def _walk(w: widgets.Widget) -> Iterable[widgets.Widget]:
    for child in getattr(w, "children", ()):
        if isinstance(child, Gallery):
            continue
        yield from _walk(child)
    yield w
