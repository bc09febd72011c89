"""The live panel: a running LiveSession's frames as they are captured, its scores as they arrive.

Frames come through `live.on_new_frames` (already durable in the index); scores, status and
audio are read by a ticker thread. Reads happen off the kernel thread; the kernel thread only
draws, through the coalescing, throttled `UiUpdater` (sync.py).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

import pandas as pd
import traitlets

from cht_lab.detect.decision import DEFAULT_MIN_GAP
from cht_lab.panel.base import Panel
from cht_lab.panel.plot import detections_frame
from cht_lab.panel.text import fmt_value, plural
from cht_lab.panel.thumbs import Tile

log = logging.getLogger(__name__)

_OVER = ("stopped", "failed", "finished")  # states after which no more data arrives


class LivePanel(Panel):
    """The panel of a running LiveSession: new frames as they are captured, scores as they arrive.

    Frames come through `live.on_new_frames` (already durable in the index); scores, status and
    audio are read by a ticker thread every `poll` seconds. Reads happen off the kernel thread;
    the kernel thread only draws, at most every `interval` seconds. The threshold drives
    `live.set_threshold()` (new frames only); `live.set_threshold()` from code moves it too.
    """

    heading = "live session"
    slider_shrinks = False  # scores keep arriving: the range only grows, never under the user's hand

    def __init__(self, live: Any, *, max_thumbs: int = 24, interval: float = 0.3, plot_width: int = 960,
                 poll: float = 1.0, tabs: Any = None):
        self.session = live
        self.poll = float(poll)
        self.min_gap = float(getattr(live, "min_gap", DEFAULT_MIN_GAP))
        self.errors: deque[dict[str, Any]] = deque(maxlen=50)
        self._data_lock = threading.Lock()  # data handed from worker threads to the next redraw
        self._frames_seen: dict[str, dict[str, Any]] = {}
        self._new_rows: list[dict[str, Any]] = []
        self._pending: dict[str, Any] = {}
        self._audio_stale = threading.Event()
        self._audio_stale.set()  # read the chunks once at the start
        self._rows_read = -1
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self._scores = pd.DataFrame()
        self._audio = pd.DataFrame()
        self._status: dict[str, Any] = {}
        try:
            self._labels = live.labels
        except ValueError as exc:
            self._labels = None
            self.errors.append({"time": time.time(), "where": "labels", "error": str(exc)})
        live.on_new_frames(self._on_frames)  # before the first read: no frame falls between the two
        live.on_new_audio(self._on_audio)
        self._read_all(frames=True)
        self._adopt(set())
        super().__init__(Path(live.session_dir), {}, threshold=float(live.threshold), metric=live.metric,
                         metrics=[live.metric], max_thumbs=max_thumbs, interval=interval, plot_width=plot_width,
                         tabs=tabs)
        self.metric_dropdown.disabled = True
        self.metric_dropdown.tooltip = "a live detector's metric is fixed when it starts"
        self._ensure_ticker()

    # ------------------------------------------------------------------ threads → data

    def _on_frames(self, rows: list[dict[str, Any]]) -> None:
        """Detector thread: keep the rows, ask for one (coalesced) redraw. Never raises."""
        try:
            with self._data_lock:
                self._new_rows.extend(rows)
            if self._ready:
                self.request("frames")
                self._ensure_ticker()
        except Exception as exc:
            self.report_error("on_new_frames", exc)

    def _on_audio(self, chunk: Any) -> None:
        self._audio_stale.set()
        if self._ready:
            self._ensure_ticker()

    def _read_all(self, frames: bool = False) -> set[str]:
        """Read scores, status (and audio when new chunks came) from the index; off the kernel thread."""
        live = self.session
        status = live.status
        scores = live.scores()
        pending: dict[str, Any] = {"status": status}
        parts = {"status"}
        if len(scores) != self._rows_read:
            self._rows_read = len(scores)
            pending["scores"] = scores
            parts.add("scores")
        if self._audio_stale.is_set():
            self._audio_stale.clear()
            pending["audio"] = live.audio()
            parts.add("audio")
        if frames or status.get("state") in _OVER:
            pending["frames"] = live.frames()  # the authoritative list (at the start, and after the last flush)
            parts.add("frames")
        with self._data_lock:
            self._pending.update(pending)
        return parts

    def _adopt(self, parts: set[str]) -> None:
        """Take what the threads handed over (kernel thread, at a redraw)."""
        with self._data_lock:
            pending = {k: self._pending.pop(k) for k in ("status", "scores", "audio", "frames") if k in self._pending}
            rows, self._new_rows = self._new_rows, []
        if "status" in pending:
            self._status = pending["status"]
        if "scores" in pending:
            self._scores = pending["scores"]
        if "audio" in pending:
            self._audio = pending["audio"]
        if "frames" in pending and not pending["frames"].empty:
            rows = [*pending["frames"].to_dict("records"), *rows]
        for row in rows:
            self._frames_seen[str(row["id"])] = row

    def _take_pending(self, parts: set[str]) -> None:
        self._adopt(parts)
        # live.set_threshold() from code rather than from the panel: follow it (read now, not from the
        # ticker's status, which may predate a slider move)
        current = float(self.session.threshold)
        if abs(current - self.threshold) > 1e-12:
            self.threshold = current

    def _tick(self) -> None:
        finishing = False
        while not self._stop.is_set():
            try:
                self.request(*self._read_all())
            except Exception as exc:  # keep ticking: the next read may work (index compacting, ...)
                self.report_error("refresh", exc)
            if self._state() in _OVER:
                if finishing:
                    break  # one full read after the end, then rest until something new happens
                finishing = True
                continue
            self._stop.wait(self.poll)

    def _state(self) -> str | None:
        with self._data_lock:
            status = self._pending.get("status") or self._status
        return status.get("state")

    def _ensure_ticker(self) -> None:
        if self._closed or self._stop.is_set():
            return
        t = self._ticker
        if t is None or not t.is_alive():
            self._ticker = threading.Thread(target=self._tick, name="cht_lab-panel-ticker", daemon=True)
            self._ticker.start()

    def _before_sync(self) -> None:
        try:
            self.request(*self._read_all())
        except Exception as exc:
            self.report_error("refresh", exc)

    # ------------------------------------------------------------------ data and hooks

    @property
    def scores(self) -> pd.DataFrame:
        return self._scores

    @property
    def labels(self) -> pd.DataFrame | None:
        return self._labels

    @property
    def audio(self) -> pd.DataFrame:
        return self._audio

    @property
    def growing(self) -> bool:
        return self._status.get("state") not in _OVER

    @traitlets.validate("metric")
    def _valid_metric(self, proposal: Any) -> str:
        if proposal["value"] != self.session.metric:
            raise traitlets.TraitError(f"a live detector's metric is fixed when it starts ({self.session.metric})")
        return str(proposal["value"])

    def _on_threshold(self, value: float) -> None:
        if abs(float(self.session.threshold) - value) > 1e-12:
            self.session.set_threshold(value)

    def _on_metric(self, metric: str) -> None:  # the validator allows only the detector's own metric
        pass

    def _captured_frame(self) -> pd.DataFrame:
        if not self._frames_seen:
            return pd.DataFrame(columns=["id", "ts", "score", "path"])
        return pd.DataFrame(list(self._frames_seen.values())).sort_values("ts", kind="stable")

    def _detect(self) -> pd.DataFrame:
        return detections_frame(self._captured_frame(), self.metric)

    def tiles(self, limit: int) -> tuple[list[Tile], int]:
        det = self._detections
        if det.empty:
            return [], 0
        newest = det.iloc[::-1].iloc[:limit]
        tiles = [Tile(str(r.id), float(r.ts), float(r.score), self.session_dir / str(r.path))
                 for r in newest.itertuples(index=False)]
        return tiles, len(det)

    # ------------------------------------------------------------------ words

    @staticmethod
    def _count_noun(n: int) -> str:
        return "capture" if n == 1 else "captures"

    def _count_html(self) -> str:
        return super()._count_html() + " <small>(a new threshold applies to new frames)</small>"

    def no_frames_text(self) -> str:
        return "no frames captured yet"

    def no_audio_text(self) -> str:
        return "no audio chunks yet" if self.session.audio_enabled else "audio is off for this live session"

    def _status_items(self) -> list[str]:
        """State, backend, rate, lag and counts; the capture count is the header's (one number, one place)."""
        st = self._status
        items = [f"<b>{st.get('state', '?')}</b>", f"backend {st.get('backend') or '–'}",
                 f"{fmt_value(st.get('fps'), '.1f')} fps", f"lag {fmt_value(st.get('lag'), '.2f', ' s')}",
                 f"{plural(int(st.get('frames') or 0), 'frame')} scored",
                 plural(len(self._audio), "audio chunk")]
        if st.get("last_error"):
            items.append(f"<span style='color:#c44e52'>last error: {st['last_error']}</span>")
        return items

    def dataframe(self) -> pd.DataFrame:
        """The live session's frame index (every captured frame, as stored)."""
        return self.session.frames()

    def close(self) -> None:
        self._stop.set()
        if self._ticker is not None and self._ticker is not threading.current_thread():
            self._ticker.join(timeout=5)
        super().close()
