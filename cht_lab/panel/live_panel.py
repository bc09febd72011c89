"""The live panel: a running LiveSession's frames as they are captured, its scores as they arrive.

Frames come through `live.on_new_frames` (already durable in the index); scores, status and
audio are read by a ticker thread. Reads happen off the kernel thread; the kernel thread only
draws, through the coalescing, throttled `UiUpdater` (widget_sync).
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

import pandas as pd

from cht_lab.detect.decision import DEFAULT_MIN_GAP
from cht_lab.panel.base import _Panel, fmt_value
from cht_lab.panel.plot import detections_frame
from cht_lab.panel.thumbs import Tile

log = logging.getLogger(__name__)


class LivePanel(_Panel):
    """The panel of a running LiveSession: new frames as they are captured, scores as they arrive.

    Frames come through `live.on_new_frames` (already durable in the index); scores, status and
    audio are read by a ticker thread every `poll` seconds. Reads happen off the kernel thread;
    the kernel thread only draws, at most every `interval` seconds.
    """

    kind = "live session"

    def __init__(self, live: Any, *, max_thumbs: int = 24, interval: float = 0.3, plot_width: int = 960,
                 poll: float = 1.0):
        self.session = live
        self._prepare(Path(live.session_dir))
        self.poll = float(poll)
        self.min_gap = float(getattr(live, "min_gap", DEFAULT_MIN_GAP))
        self._metric = live.metric
        self._metrics = [live.metric]
        self._threshold = float(live.threshold)
        self._frames_seen: dict[str, dict[str, Any]] = {}
        self._new_rows: list[dict[str, Any]] = []
        self._pending: dict[str, Any] = {}
        self._audio_stale = threading.Event()
        self._audio_stale.set()  # read the chunks once at the start
        self._rows_read = -1
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self._current = pd.DataFrame()
        self._scores = pd.DataFrame()
        self._audio = pd.DataFrame()
        self._status: dict[str, Any] = {}
        try:
            self._labels = live.labels
        except ValueError as exc:
            self._labels = None
            self.errors.append({"time": time.time(), "where": "labels", "error": str(exc)})
        live.on_new_frames(self._on_frames)
        live.on_new_audio(self._on_audio)
        self._read_all()
        self._take_pending(set())
        super().__init__({}, max_thumbs=max_thumbs, interval=interval,
                         plot_width=plot_width)
        self.metric.disabled = True
        self.metric.tooltip = "a live detector's metric is fixed when it starts"
        self._ensure_ticker()

    # ------------------------------------------------------------------ threads → data

    def _on_frames(self, rows: list[dict[str, Any]]) -> None:
        """Detector thread: keep the rows, ask for one (coalesced) redraw. Never raises."""
        try:
            with self._data_lock:
                self._new_rows.extend(rows)
            self._updater.request("frames")
            self._ensure_ticker()
        except Exception as exc:
            self._error("on_new_frames", exc)

    def _on_audio(self, chunk: Any) -> None:
        self._audio_stale.set()
        self._ensure_ticker()

    def _read_all(self) -> set[str]:
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
        if status.get("state") in ("stopped", "failed"):
            pending["frames"] = live.frames()  # the authoritative list, after the last flush
            parts.add("frames")
        with self._data_lock:
            self._pending.update(pending)
        return parts

    def _take_pending(self, parts: set[str]) -> None:
        with self._data_lock:
            pending = {k: self._pending.pop(k) for k in ("status", "scores", "audio", "frames") if k in self._pending}
            rows, self._new_rows = self._new_rows, []
        if "status" in pending:
            self._status = pending["status"]
        # set by code (live.set_threshold) rather than by the slider: follow it. Read now, not from
        # the ticker's status, which may predate a slider move.
        current = float(self.session.threshold)
        if abs(current - self._threshold) > 1e-12 and hasattr(self, "slider"):
            self._threshold = current
            parts.add("scores")
        if "scores" in pending:
            self._scores = pending["scores"]
        if "audio" in pending:
            self._audio = pending["audio"]
        if "frames" in pending and not pending["frames"].empty:
            rows = [*pending["frames"].to_dict("records"), *rows]
        for row in rows:
            self._frames_seen[str(row["id"])] = row

    def _tick(self) -> None:
        finishing = False
        while not self._stop.is_set():
            try:
                parts = self._read_all()
                self._updater.request(*parts)
            except Exception as exc:  # keep ticking: the next read may work (index compacting, ...)
                self._error("refresh", exc)
            state = self._status_state()
            if state in ("stopped", "failed"):
                if finishing:
                    break  # one full read after the stop, then rest until something new happens
                finishing = True
                continue
            self._stop.wait(self.poll)

    def _status_state(self) -> str | None:
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
            parts = self._read_all()
            self._updater.request(*parts)
        except Exception as exc:
            self._error("refresh", exc)

    # ------------------------------------------------------------------ panel hooks

    def _set_threshold(self, value: float) -> None:
        self._threshold = float(value)
        self.session.set_threshold(self._threshold)

    def _set_metric(self, metric: str) -> None:  # the dropdown is disabled; kept for completeness
        self._metric = metric

    def _captured_frame(self) -> pd.DataFrame:
        if not self._frames_seen:
            return pd.DataFrame(columns=["id", "ts", "score", "path"])
        return pd.DataFrame(list(self._frames_seen.values())).sort_values("ts", kind="stable")

    def _detections(self) -> pd.DataFrame:
        return detections_frame(self._captured_frame(), self._metric)

    def _tiles(self, limit: int) -> tuple[list[Tile], int]:
        det = self._current
        if det.empty:
            return [], 0
        newest = det.iloc[::-1].iloc[:limit]
        tiles = [Tile(str(r.id), float(r.ts), float(r.score), self.session_dir / str(r.path))
                 for r in newest.itertuples(index=False)]
        return tiles, len(det)

    def _count_html(self) -> str:
        return f"<b>{len(self._current)}</b> captured <small>(a new threshold applies to new frames)</small>"

    def _empty_text(self) -> str:
        return "no frames captured yet"

    def _no_audio_text(self) -> str:
        return "no audio chunks yet" if self.session.audio_enabled else "audio is off for this live session"

    def _status_items(self) -> list[str]:
        st = self._status
        items = [f"<b>{st.get('state', '?')}</b>", f"backend {st.get('backend') or '–'}",
                 f"{fmt_value(st.get('fps'), '.1f')} fps", f"lag {fmt_value(st.get('lag'), '.2f', ' s')}",
                 f"{st.get('frames') or 0:,} frames", f"{st.get('captures') or 0} captures",
                 f"{st.get('chunks') or 0} audio chunks"]
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
