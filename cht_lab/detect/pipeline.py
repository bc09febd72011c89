"""One placed frame through the stages after the timeline: score -> store scores -> decide -> capture.

The scorer is kept per segment across decode runs, so a backfill run followed by the socket
stream scores exactly as one offline decode of the recording would. Score rows are batched
into the index (every row at once while live); a frame that crosses the threshold has its
full-resolution picture pinned and goes to the capture stage.
"""

from __future__ import annotations

import collections
import logging
import math
import threading
import time
from typing import Any, Callable

import numpy as np

from cht_lab.detect.capturer import CaptureJob, Capturer
from cht_lab.detect.decision import ThresholdDecider
from cht_lab.detect.reader import FrameAnalysis, FullFrame
from cht_lab.detect.scoring import AUX_COLUMNS, METRICS, ONSET_METRICS, PYTHON_METRICS, FrameScorer
from cht_lab.detect.timeline import Placement
from cht_lab.index.protocols import IndexWriter
from cht_lab.status import ErrorLog

log = logging.getLogger(__name__)

ScoresCallback = Callable[[dict[str, np.ndarray]], None]
FullFrameGetter = Callable[[int], "FullFrame | None"]

RECENT = 8  # placed frames remembered for capture_now()
HISTORY = 1 << 13  # placed frames remembered per segment for onsets (4.5 min at 30 fps, as the scorer)
REVISIT_HOPS = 64
BATCH_ROWS = 512


class FramePipeline:
    """Scores every placed frame, stores the rows, applies the capture rule, queues captures."""

    def __init__(self, *, metric: str, threshold: float, min_gap: float, index: IndexWriter, capturer: Capturer,
                 errors: ErrorLog, on_scores: ScoresCallback | None = None):
        self.metric = metric
        self.index = index
        self.capturer = capturer
        self.errors = errors
        self.on_scores = on_scores
        self.frames = 0
        self.batch_age = 0.25  # s a batch may wait; 0 while live (every row goes to the index buffer at once)
        self._decider = ThresholdDecider(threshold, min_gap)
        self._lock = threading.Lock()
        self._scorers: dict[int, FrameScorer] = {}
        self._batch: dict[str, list[Any]] = collections.defaultdict(list)
        self._batch_started = 0.0
        self.recent: collections.deque[tuple[Placement, int, float]] = collections.deque(maxlen=RECENT)
        self._placed: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}  # per segment: frame, pts, ts rings
        self._revisits: dict[tuple[int, int], int] = {}  # (segment, frame) -> frames back to its earlier picture
        self._captured: set[tuple[int, int]] = set()  # (segment, frame) of scene captures

    @property
    def threshold(self) -> float:
        return self._decider.threshold

    def set_threshold(self, value: float) -> None:
        with self._lock:
            self._decider.threshold = float(value)

    def note_manual_capture(self, ts: float) -> None:
        with self._lock:
            self._decider.note_capture(ts)

    def frame(self, where: Placement, fa: FrameAnalysis, full_frame: FullFrameGetter, fps: float) -> None:
        """Score one frame, store its row, and queue a capture when the rule says so."""
        scorer = self._scorers.get(where.segment)
        if scorer is None:
            scorer = self._scorers[where.segment] = FrameScorer(fa.gray.shape[1], fa.gray.shape[0], fps=fps)
        values = scorer.score(fa.gray, scene=fa.scene, pts=where.pts, chroma=fa.chroma)
        value = values.get(self.metric, math.nan)
        self.recent.append((where, fa.frame_index, value))
        self._add_row(where, values)
        self._remember(where, values)
        with self._lock:
            capture = self._decider.decide(where.ts, value)
            threshold = self._decider.threshold
        if capture:
            # pin the full-res frame now (a reference, no copy): the ring moves on with the decode.
            # The decision is made on the frame the change came to rest in: that frame is the capture
            info = _info(where, value, threshold, "scene")
            if self.metric in ONSET_METRICS:
                info.update(self._onset(where, int(values.get("onset", 0))))
                info["revisit_key"] = self._revisit_key(where, int(values.get("revisit", 0)))
            self._captured.add((where.segment, where.frame_index))
            full = full_frame(fa.frame_index)
            self.capturer.put(CaptureJob(info, full))
        self.frames += 1
        now = time.monotonic()
        if len(self._batch["ts"]) >= BATCH_ROWS or now - self._batch_started >= self.batch_age:
            self.flush()

    def _remember(self, where: Placement, values: dict[str, float]) -> None:
        """Keep where recent frames sit (onsets point back to them) and which frames revisit which."""
        ring = self._placed.get(where.segment)
        if ring is None:
            ring = self._placed[where.segment] = (np.full(HISTORY, -1, np.int64), np.zeros(HISTORY), np.zeros(HISTORY))
        k = where.frame_index % HISTORY
        ring[0][k], ring[1][k], ring[2][k] = where.frame_index, where.pts, where.ts
        back = int(values.get("revisit", 0) or 0)
        if back > 0:
            self._revisits[(where.segment, where.frame_index)] = back

    def _onset(self, where: Placement, back: int) -> dict[str, Any]:
        """The onset frame's index, pts and ts (`back` frames before `where`), and the capture's own."""
        out = {"capture_ts": where.ts, "capture_frame_index": where.frame_index}
        if back <= 0:
            return out
        fi = where.frame_index - back
        ring = self._placed.get(where.segment)
        k = fi % HISTORY
        if ring is not None and ring[0][k] == fi:
            out.update(frame_index=fi, pts=float(ring[1][k]), ts=float(ring[2][k]))
        return out

    def _revisit_key(self, where: Placement, back: int) -> tuple[int, int] | None:
        """(segment, frame) of the earlier capture this one shows again: the scorer points to the newest
        earlier change with the same picture; one that was not captured points on to its own earlier one."""
        key = (where.segment, where.frame_index)
        for _ in range(REVISIT_HOPS):
            if back <= 0:
                return None
            key = (key[0], key[1] - back)
            if key in self._captured:
                return key
            back = self._revisits.get(key, 0)
        return None

    def manual_job(self, where: Placement, value: float, full: FullFrame) -> CaptureJob:
        self.note_manual_capture(where.ts)
        return CaptureJob(_info(where, value, self.threshold, "manual"), full, done=threading.Event())

    def _add_row(self, where: Placement, values: dict[str, float]) -> None:
        b = self._batch
        if not b["ts"]:
            self._batch_started = time.monotonic()
        b["segment"].append(where.segment)
        b["frame_index"].append(where.frame_index)
        b["pts"].append(where.pts)
        b["ts"].append(where.ts)
        for name in (*METRICS, *AUX_COLUMNS):  # "score" is ffmpeg's scene score, as in offline scoring
            b[name].append(values.get(name, math.nan))

    def flush(self) -> None:
        """Hand the batched score rows to the index (which buffers and flushes them durably)."""
        b = self._batch
        if not b["ts"]:
            return
        cols: dict[str, np.ndarray] = {
            "segment": np.asarray(b["segment"], np.int32),
            "frame_index": np.asarray(b["frame_index"], np.int64),
            "pts": np.asarray(b["pts"], np.float64),
            "ts": np.asarray(b["ts"], np.float64),
            "score": np.asarray(b["score"], np.float32),
            **{name: np.asarray(b[name], np.float32) for name in (*PYTHON_METRICS, *AUX_COLUMNS)},
        }
        self._batch = collections.defaultdict(list)
        try:
            self.index.append_scores(cols)
        except Exception as exc:
            self.errors.exception("writing scores to the index", exc)
        if self.on_scores is not None:
            try:
                self.on_scores(cols)
            except Exception as exc:
                self.errors.exception("on_scores callback", exc)


def _info(where: Placement, value: float, threshold: float, kind: str) -> dict[str, Any]:
    return {"segment": where.segment, "frame_index": where.frame_index, "pts": where.pts, "ts": where.ts,
            "score": value, "threshold": threshold, "kind": kind}


__all__ = ["FramePipeline", "ScoresCallback"]
