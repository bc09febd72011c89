"""The interactive panel: `session.panel()` (recorded) and `live.panel()` (live), one ipywidgets layout.

What it shows: thumbnails of the captured frames (newest first, click to enlarge), a threshold
slider (+ metric dropdown), the score plot with the threshold line, detections and labels, a
tuning view (precision/recall/F1 against threshold, apply the best) when labels exist, the audio
chunks with a player, a status line, and an export button for the frame index.

Recorded: moving the slider re-marks detections from the stored scores at once (no decoding);
the thumbnails of frames never extracted are captured in the background (one decode per
segment per batch) and cached under `<session>/.cache/thumbs/`. Live: the slider drives
`LiveSession.set_threshold()`; frames arrive through `on_new_frames`, scores and status are
polled by a ticker thread. Every update from a thread goes through `UiUpdater` (widget_sync):
coalesced, throttled, applied on the kernel's event loop. So a cell that *blocks* (time.sleep,
live.wait()) holds the updates back until it ends — nothing is lost, they arrive together; a
cell that *awaits* (`await asyncio.sleep(1)`) lets them through as they come.

Child widgets: `slider`, `metric`, `count`, `plot`, `thumbs` (the gallery), `tabs`,
`tuning_plot`, `tuning_info`, `apply_best_button`, `audio_list`, `player`, `audio_info`,
`export_format`, `export_button`, `export_info`, `status`; the whole layout is `widget`.

The widget logic is plain Python: `panel.slider.value = 0.2` then `panel.detection_count`,
`panel.plot.value` (PNG bytes), `panel.sync()` to wait for background work.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cht_lab.detect.decision import DEFAULT_MIN_GAP
from cht_lab.panel.base import (
    ALL_PARTS,
    PanelError,
    _Panel,
    default_threshold,
    fmt_value,
    metric_columns,
    slider_range,
)
from cht_lab.panel.gallery import format_time
from cht_lab.panel.live_panel import LivePanel
from cht_lab.panel.thumbs import Tile

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- recorded


class SessionPanel(_Panel):
    """The panel of a recorded session: re-threshold from stored scores, thumbnails on demand.

    The slider sets `session.threshold` (and the dropdown `session.metric`), so
    `session.scenes()` / `session.capture_frames()` afterwards use what was chosen here.
    """

    kind = "recorded session"

    def __init__(self, session: Any, *, max_thumbs: int = 24, interval: float = 0.3, plot_width: int = 960,
                 min_gap: float | None = None):
        self.session = session
        self.min_gap = DEFAULT_MIN_GAP if min_gap is None else float(min_gap)
        self._current = pd.DataFrame()
        self._prepare(Path(session.dir))
        self._load()
        super().__init__({s.index: Path(s.path) for s in session.segments},
                         max_thumbs=max_thumbs, interval=interval, plot_width=plot_width)

    def _load(self) -> None:
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
        self._metric = metric
        values = self._scores[metric].to_numpy(dtype=np.float64) if metric in self._scores else None
        self._threshold = (float(s.threshold) if s.threshold is not None and s.metric in (None, metric)
                           else default_threshold(metric, values))
        self._per_metric = {metric: self._threshold}
        s.metric, s.threshold = self._metric, self._threshold

    def refresh(self) -> None:
        """Re-read scores, frames, labels and audio (after `session.score()` or new captures)."""
        with self._updater.apply_lock:
            self._load()
            self._tuning_cache.clear()
            self._syncing_controls = True
            try:
                self.metric.options = self._metrics or [self._metric]
                self.metric.value = self._metric
                self.metric.layout.display = None if len(self._metrics) > 1 else "none"
            finally:
                self._syncing_controls = False
        self._updater.request(*ALL_PARTS, immediate=True)

    def _set_threshold(self, value: float) -> None:
        self._threshold = float(value)
        self._per_metric[self._metric] = self._threshold
        self.session.threshold = self._threshold

    def _set_metric(self, metric: str) -> None:
        self._metric = metric
        if metric not in self._per_metric:
            values = self._scores[metric].to_numpy(dtype=np.float64) if metric in self._scores else None
            self._per_metric[metric] = default_threshold(metric, values)
        self._threshold = self._per_metric[metric]
        self.session.metric, self.session.threshold = self._metric, self._threshold

    def _detections(self) -> pd.DataFrame:
        from cht_lab.tuning import sweep as tuning

        if self._scores.empty or self._metric not in self._scores:
            return self._scores.iloc[:0]
        return tuning.scenes(self._scores, self._threshold, metric=self._metric, min_gap=self.min_gap)

    def _tiles(self, limit: int) -> tuple[list[Tile], int]:
        det = self._current
        newest = det.iloc[::-1].iloc[:limit]
        tiles = []
        for seg, fi, ts, score in zip(newest["segment"].to_numpy(), newest["frame_index"].to_numpy(),
                                      newest["ts"].to_numpy(), newest[self._metric].to_numpy()):
            seg, fi = int(seg), int(fi)
            tiles.append(Tile(f"s{seg}-f{fi}", float(ts), float(score), self._captured.get((seg, fi)), seg, fi))
        return tiles, len(det)

    def _empty_text(self) -> str:
        if self._scores.empty:
            return "no scores yet — run session.score(), then panel.refresh()"
        return "no detections at this threshold"

    def _no_audio_text(self) -> str:
        return "no audio chunks — session.extract_audio() cuts them, then panel.refresh()"

    def _status_items(self) -> list[str]:
        sc = self._scores
        items = [f"backend {self._metadata.get('backend') or '–'}"]
        if not sc.empty:
            ts = sc["ts"].to_numpy()
            span = float(ts[-1] - ts[0]) if len(ts) > 1 else 0.0
            fps = (len(ts) - 1) / span if span > 0 else None
            items += [f"{len(sc):,} frames scored", f"{fmt_value(fps, '.1f')} fps", f"{format_time(span)} long"]
        else:
            items.append("not scored yet")
        items += [f"{len(self.session.segments)} segment(s)", f"{len(self._frames)} captured",
                  f"{len(self._audio)} audio chunks",
                  f"{0 if self._labels is None else len(self._labels)} labeled events"]
        return items

    def dataframe(self) -> pd.DataFrame:
        """The frames the current threshold selects, in the frame index's columns.

        `id`/`path` are filled for frames already captured into frames/ (else empty): use
        `session.capture_frames()` to write the JPEGs, which uses this panel's threshold.
        """
        det = self._current
        out = pd.DataFrame({
            "ts": det["ts"].to_numpy(dtype=np.float64),
            "pts": det["pts"].to_numpy(dtype=np.float64),
            "segment": det["segment"].to_numpy(dtype=np.int32),
            "frame_index": det["frame_index"].to_numpy(dtype=np.int64),
            "score": det[self._metric].to_numpy(dtype=np.float64) if len(det) else np.empty(0),
        })
        out["metric"] = self._metric
        out["threshold"] = self._threshold
        out["kind"] = "scene"
        if not self._frames.empty:
            known = self._frames[["segment", "frame_index", "id", "path"]].astype(
                {"segment": np.int32, "frame_index": np.int64}).drop_duplicates(["segment", "frame_index"])
            out = out.merge(known, on=["segment", "frame_index"], how="left")
        else:
            out["id"] = pd.Series([None] * len(out), dtype=object)
            out["path"] = pd.Series([None] * len(out), dtype=object)
        return out[["id", "ts", "pts", "segment", "frame_index", "score", "metric", "threshold", "kind", "path"]]


__all__ = ["SessionPanel", "LivePanel", "PanelError", "metric_columns", "slider_range", "default_threshold"]
