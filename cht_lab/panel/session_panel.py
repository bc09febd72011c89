"""The interactive panel: `session.panel()` (recorded) and `live.panel()` (live), one ipywidgets VBox.

What it shows: a header, the threshold slider (+ metric dropdown), the score plot (threshold
line, detections, peaks skipped because of `min_gap`, labels), then tabs — Frames (thumbnails,
newest first, click a caption to enlarge), Tuning (precision/recall/F1 against threshold, apply
the best; needs labels.csv), Audio (the chunks, with a player) — an export row and a status line.

The panel is a widget: put it in a `VBox` or a `Tab`, link its traits:

    panel = session.panel()
    panel.threshold = 0.1            # the slider follows; detections are re-marked at once
    panel.slider.value = 0.1         # the same: the slider is linked to the trait
    ipywidgets.link((panel, "threshold"), (my_slider, "value"))
    panel.metric = "scene"           # recorded sessions: any stored metric; each keeps its threshold
    panel.show_tab("tuning").apply_best_button.click()

Recorded: moving the threshold re-marks detections from the stored scores (no decoding); the
thumbnails of frames never extracted are captured in the background (one decode per segment per
batch) and cached under `<session>/.cache/thumbs/`. Live: the threshold drives
`LiveSession.set_threshold()`; frames arrive through `on_new_frames`, scores and status are polled
by a ticker thread. Every update from a thread goes through `UiUpdater` (sync.py): coalesced,
throttled, applied on the kernel's event loop. So a cell that *blocks* (time.sleep, live.wait())
holds the updates back until it ends; a cell that *awaits* (`await live.wait_async()`) lets them
through as they come.

Widgets: `header`, `slider`, `metric_dropdown`, `count`, `plot` (`plot.value`: PNG bytes),
`tab_bar` (the `ipywidgets.Tab`), `tabs` (the tab objects; `tab(name)`), `gallery` (the Frames
tab's), `export_format`, `export_button`, `export_info`, `status`. `panel.sync()` waits for
background work.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import traitlets

from cht_lab.detect.decision import DEFAULT_MIN_GAP
from cht_lab.panel.base import ALL_PARTS, Panel, PanelError
from cht_lab.panel.live_panel import LivePanel
from cht_lab.panel.text import fmt_value, format_time, plural
from cht_lab.panel.thresholds import default_threshold, metric_columns, slider_range
from cht_lab.panel.thumbs import Tile

log = logging.getLogger(__name__)


class SessionPanel(Panel):
    """The panel of a recorded session: re-threshold from stored scores, thumbnails on demand.

    The threshold sets `session.threshold` (and the metric `session.metric`), so
    `session.scenes()` / `session.capture_frames()` afterwards use what was chosen here.
    """

    heading = "recorded session"

    def __init__(self, session: Any, *, max_thumbs: int = 24, interval: float = 0.3, plot_width: int = 960,
                 min_gap: float | None = None, tabs: Any = None):
        self.session = session
        self.min_gap = DEFAULT_MIN_GAP if min_gap is None else float(min_gap)
        self._per_metric: dict[str, float] = {}
        self.errors: deque[dict[str, Any]] = deque(maxlen=50)
        metric, threshold = self._load()
        super().__init__(Path(session.dir), {s.index: Path(s.path) for s in session.segments},
                         threshold=threshold, metric=metric, metrics=self._metrics, max_thumbs=max_thumbs,
                         interval=interval, plot_width=plot_width, tabs=tabs)

    def _load(self) -> tuple[str, float]:
        """Read the session's tables; returns the metric and threshold to start from."""
        from cht_lab.detect.scoring import DEFAULT_METRIC

        s = self.session
        self._scores = s.scores()
        try:
            self._labels = s.labels
        except ValueError as exc:  # a malformed labels.csv must not hide the rest of the panel
            self._labels = None
            self.errors.append({"time": time.time(), "where": "labels", "error": str(exc)})
        self._frames = s.frames()
        self._audio = s.audio()
        self._metadata = s.metadata()
        self._captured = {(int(r.segment), int(r.frame_index)): Path(s.dir) / str(r.path)
                          for r in self._frames.itertuples(index=False)} if not self._frames.empty else {}
        self._metrics = metric_columns(self._scores)
        if s.metric in self._metrics:
            metric = s.metric
        elif DEFAULT_METRIC in self._metrics or not self._metrics:
            metric = DEFAULT_METRIC
        else:
            metric = self._metrics[0]
        if s.threshold is not None and s.metric in (None, metric):
            threshold = float(s.threshold)
        else:
            threshold = default_threshold(metric, self._values(metric))
        self._per_metric[metric] = threshold
        s.metric, s.threshold = metric, threshold
        return metric, threshold

    def _values(self, metric: str) -> np.ndarray | None:
        return self._scores[metric].to_numpy(dtype=np.float64) if metric in self._scores else None

    def refresh(self) -> None:
        """Re-read scores, frames, labels and audio (after `session.score()` or new captures)."""
        with self._updater.apply_lock, self.hold_updates(*ALL_PARTS):
            self._per_metric.clear()
            metric, threshold = self._load()
            options = self._metrics or [metric]
            if list(self.metric_dropdown.options) != options:
                self.metric_dropdown.options = options  # may reset its value: the trait is set right after
            self.metric_dropdown.layout.display = None if len(options) > 1 else "none"
            self.metric = metric
            self.threshold = threshold

    # ------------------------------------------------------------------ data

    @property
    def scores(self) -> pd.DataFrame:
        return self._scores

    @property
    def labels(self) -> pd.DataFrame | None:
        return self._labels

    @property
    def audio(self) -> pd.DataFrame:
        return self._audio

    def set_labels(self, labels: pd.DataFrame | None) -> None:
        """Show new ground truth (the Label tab, after each decision): the plot and the Tuning tab redraw."""
        self._labels = labels
        self.request("labels", "status", immediate=True)

    @traitlets.validate("metric")
    def _valid_metric(self, proposal: Any) -> str:
        metric = str(proposal["value"])
        known = getattr(self, "_metrics", None)
        if known and metric not in known:
            raise traitlets.TraitError(f"no {metric!r} scores in this session; metrics: {', '.join(known)}")
        return metric

    def _on_threshold(self, value: float) -> None:
        self._per_metric[self.metric] = value
        self.session.threshold = value

    def _on_metric(self, metric: str) -> None:
        self.session.metric = metric
        if metric not in self._per_metric:
            self._per_metric[metric] = default_threshold(metric, self._values(metric))
        self.threshold = self._per_metric[metric]
        self.session.threshold = self.threshold

    def _detect(self) -> pd.DataFrame:
        from cht_lab.tuning import sweep as tuning

        if self._scores.empty or self.metric not in self._scores:
            return self._scores.iloc[:0]
        return tuning.scenes(self._scores, self.threshold, metric=self.metric, min_gap=self.min_gap)

    def tiles(self, limit: int) -> tuple[list[Tile], int]:
        det = self._detections
        if det.empty:
            return [], 0
        newest = det.iloc[::-1].iloc[:limit]
        # the frames table knows a capture by its onset (frame_index); the picture is the captured frame's
        shown = newest["capture_frame_index"] if "capture_frame_index" in newest.columns else newest["frame_index"]
        tiles = []
        for seg, onset, fi, ts, score in zip(newest["segment"].to_numpy(), newest["frame_index"].to_numpy(),
                                             shown.to_numpy(), newest["ts"].to_numpy(), newest[self.metric].to_numpy()):
            seg, onset, fi = int(seg), int(onset), int(fi)
            tiles.append(Tile(f"s{seg}-f{fi}", float(ts), float(score), self._captured.get((seg, onset)), seg, fi))
        return tiles, len(det)

    # ------------------------------------------------------------------ words

    @staticmethod
    def _count_noun(n: int) -> str:
        return "detection" if n == 1 else "detections"

    def no_frames_text(self) -> str:
        if self._scores.empty:
            return "no scores yet — run session.score(), then panel.refresh()"
        return "no detections at this threshold"

    def no_audio_text(self) -> str:
        return "no audio chunks — session.extract_audio() cuts them, then panel.refresh()"

    def _status_items(self) -> list[str]:
        sc = self._scores
        items = [f"backend {self._metadata.get('backend') or '–'}"]
        if not sc.empty:
            ts = sc["ts"].to_numpy()
            span = float(ts[-1] - ts[0]) if len(ts) > 1 else 0.0
            fps = (len(ts) - 1) / span if span > 0 else None
            items += [f"{plural(len(sc), 'frame')} scored", f"{fmt_value(fps, '.1f')} fps", f"{format_time(span)} long"]
        else:
            items.append("not scored yet")
        items.append(plural(len(self.session.segments), "recording"))
        if len(self._frames):  # JPEGs already in frames/ (session.capture_frames() or a live run)
            items.append(f"{plural(len(self._frames), 'frame')} saved in frames/")
        items += [plural(len(self._audio), "audio chunk"),
                  plural(0 if self._labels is None else len(self._labels), "labeled event")]
        return items

    def dataframe(self) -> pd.DataFrame:
        """The frame index at the panel's threshold, metric and min gap: `session.frame_index()`.

        Frames already captured into frames/ carry their id and path (else empty): use
        `session.capture_frames()` to write the JPEGs, which uses this panel's threshold.
        """
        return self.session.frame_index(self.threshold, self.metric, self.min_gap)


__all__ = ["SessionPanel", "LivePanel", "PanelError", "metric_columns", "slider_range", "default_threshold"]
