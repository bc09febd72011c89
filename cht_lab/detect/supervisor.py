"""SceneDetector: the supervisor of the live stages. It runs, restarts and reports; it holds no per-frame logic.

One decode run is one ffmpeg process (cht_lab.detect.runs). Each frame goes
decode -> timeline (where it sits) -> pipeline (score, store, decide) -> capturer (JPEG, row,
callbacks). When ffmpeg dies (killed, corrupt data, socket server gone) the error goes into
`status` and a new run starts: a file resumes after its last frame, a socket reconnects, and for
a cht session the recording fills whatever the socket did not deliver (backfill).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from cht_lab.detect.capturer import Capturer, FramesCallback
from cht_lab.detect.decision import DEFAULT_MIN_GAP
from cht_lab.detect.decode import choose_backend
from cht_lab.detect.pipeline import FramePipeline, ScoresCallback
from cht_lab.detect.runs import RunOutcome, RunRunner
from cht_lab.detect.scoring import DEFAULT_METRIC, DEFAULT_THRESHOLDS, METRICS
from cht_lab.detect.timeline import Timeline
from cht_lab.index.protocols import IndexWriter
from cht_lab.sources import Source, open_source
from cht_lab.status import ErrorLog, WorkerState

log = logging.getLogger(__name__)

FULLRES_RING = 4  # full-res frames kept per run: the analysis may trail the full-res pipe by this many
GARBAGE_AFTER = 3.0  # seconds of incoming bytes without video before status says so


class DetectorError(ValueError):
    """Bad detector settings (unknown metric, bad threshold)."""


class SceneDetector:
    """Live scene detection on one source.

    `on_frames(rows)` fires after captured frames are durable in the index; `on_scores(columns)`
    sees each batch of score rows as it goes to the index (latency measurements).
    `session_recordings`: a cht session directory whose recordings are the clock of a socket
    stream (see cht_lab.detect.timeline).
    """

    def __init__(self, source: Any, *, session_dir: str | Path, index: IndexWriter, threshold: float | None = None,
                 metric: str | None = None, min_gap: float = DEFAULT_MIN_GAP, backend: str = "auto",
                 segment: int = 0, ts_offset: float = 0.0, jpeg_quality: int = 90,
                 on_frames: FramesCallback | None = None, restart: bool = True, max_restarts: int | None = None,
                 on_scores: ScoresCallback | None = None, realtime: bool = False,
                 session_recordings: str | Path | None = None):
        self.source: Source = open_source(source, realtime=realtime)
        self.session_dir = Path(session_dir)
        self.index = index
        self.metric = metric or DEFAULT_METRIC
        if self.metric not in METRICS:
            raise DetectorError(f"unknown metric {self.metric!r}; known: {', '.join(METRICS)}")
        value = float(threshold if threshold is not None else DEFAULT_THRESHOLDS[self.metric])
        if math.isnan(value):
            raise DetectorError("threshold must be a number")
        self.backend_requested = backend
        self.restart = restart
        self.max_restarts = max_restarts
        self.done = threading.Event()
        self.errors = ErrorLog("detector", log)
        self.capturer = Capturer(self.session_dir, index, self.errors, self.metric, int(jpeg_quality),
                                 self.source.name, [on_frames] if on_frames else [])
        self.pipeline = FramePipeline(metric=self.metric, threshold=value, min_gap=float(min_gap), index=index,
                                      capturer=self.capturer, errors=self.errors, on_scores=on_scores)
        recordings = Path(session_recordings) if session_recordings is not None else None
        self.timeline = Timeline(session_recordings=recordings, segment=segment, ts_offset=ts_offset)
        self._continue_index(recordings is not None)
        self.backend: str | None = None
        self.backend_reason: str | None = None
        self._state = WorkerState.IDLE
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self._runner: RunRunner | None = None
        self._restarts = 0
        self._backfilled = 0  # frames scored from the recording before a run's socket stream

    # ------------------------------------------------------------------ public

    @property
    def threshold(self) -> float:
        return self.pipeline.threshold

    def set_threshold(self, value: float) -> None:
        """Applies from the next frame; ffmpeg keeps running."""
        value = float(value)
        if math.isnan(value):
            raise DetectorError("threshold must be a number")
        self.pipeline.set_threshold(value)
        log.info("threshold set to %g", value)

    def on_frames(self, callback: FramesCallback) -> FramesCallback:
        """Add a callback for captured frames (usable as a decorator)."""
        self.capturer.callbacks.append(callback)
        return callback

    @property
    def ffmpeg_pid(self) -> int | None:
        runner = self._runner
        return runner.pid if runner is not None else None

    @property
    def status(self) -> dict[str, Any]:
        runner = self._runner
        rate = runner.rate_snapshot() if runner is not None else []
        fps = 0.0
        if len(rate) >= 2 and rate[-1] > rate[0] and time.monotonic() - rate[-1] <= 2.0:
            fps = (len(rate) - 1) / (rate[-1] - rate[0])
        tl = self.timeline
        tl_status = tl.status()
        return {
            "state": str(self._state),
            "backend": self.backend,
            "backend_reason": self.backend_reason,
            "source": self.source.describe(),
            "metric": self.metric,
            "threshold": self.threshold,
            "fps": round(fps, 2),
            "lag": None if tl.lag is None else round(tl.lag, 3),
            "frames": self.pipeline.frames,
            "captures": self.capturer.captures,
            "restarts": self._restarts,
            "run": runner.number if runner is not None else None,
            "pid": self.ffmpeg_pid,
            "decoding": runner.phase if runner is not None else None,
            "segment": tl_status["segment"],
            "clock": tl.clock,
            "clock_note": tl.note,
            "estimated": tl_status["estimated"],
            "stream_start": tl_status["stream_start"],
            "mismatched": tl_status["mismatched"],
            "backfilled": self._backfilled + (runner.backfilled if runner is not None else 0),
            "last_error": self.errors.last,
            "errors": self.errors.errors,
        }

    def start(self) -> "SceneDetector":
        """Start the worker (and capture) threads; returns self. Starting twice is a no-op.

        Raises decode.BackendError when the requested backend cannot be used.
        """
        with self._lock:
            if self._state != WorkerState.IDLE:
                return self
            self._state = WorkerState.STARTING
        try:
            self.backend, self.backend_reason = choose_backend(self.backend_requested)
        except Exception:
            self._state = WorkerState.FAILED
            raise
        log.info("scene detector on %s: backend %s (%s), metric %s, threshold %g", self.source.describe(),
                 self.backend, self.backend_reason, self.metric, self.threshold)
        self.pipeline.batch_age = 0.0 if (self.source.live or self.source.realtime) else 0.25
        self.capturer.start()
        self._worker = threading.Thread(target=self._work, name="scene-detector", daemon=True)
        self._worker.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop ffmpeg (reaped), finish pending captures, flush scores, join threads. Idempotent."""
        self._stop.set()
        deadline = time.monotonic() + timeout
        self._close_source()  # a socket's connection threads: no new run can start from them
        runner = self._runner
        if runner is not None:
            runner.close()
        if self._worker is not None:
            self._worker.join(max(0.1, deadline - time.monotonic()))
            if self._worker.is_alive():
                log.warning("scene detector worker did not stop within %.1f s", timeout)
        self.capturer.stop(max(0.1, deadline - time.monotonic()))
        self._set_state(WorkerState.STOPPED)
        if self._worker is not None:
            try:
                self.index.flush()
            except Exception as exc:
                self.errors.exception("flushing scores", exc)

    def __enter__(self) -> "SceneDetector":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until a finite source has been processed completely (True) or `timeout` passes."""
        return self.done.wait(timeout)

    def capture_now(self, timeout: float = 10.0) -> dict[str, Any] | None:
        """Capture the most recently scored frame at full resolution (kind 'manual'); None when no frame
        is decoding (not started, stopped) or none is kept within `timeout`."""
        runner = self._runner
        if runner is None or self._stop.is_set() or not self.capturer.alive:
            return None
        # The newest scored frame. Its full-resolution picture is kept only a few frames: while the
        # next frame is being scored the decode may already have dropped it, so then the next one
        # scored is taken (until `timeout`).
        deadline = time.monotonic() + timeout
        tried = -1
        while True:
            recent = list(self.pipeline.recent)
            if not recent:
                return None
            if recent[-1][1] != tried:
                where, tried, value = recent[-1]
                full = runner.full_frame(tried, timeout=0.5)
                if full is not None:
                    break
            if time.monotonic() >= deadline or self._stop.wait(0.01) or self._runner is not runner:
                return None
        job = self.pipeline.manual_job(where, value, full)
        self.capturer.put(job)
        if not job.done.wait(timeout):  # type: ignore[union-attr]
            raise TimeoutError(f"manual capture did not finish within {timeout:.0f} s")
        if job.error is not None:
            raise job.error
        return job.result

    # ------------------------------------------------------------------ worker

    def _set_state(self, state: WorkerState) -> None:
        with self._lock:
            if self._state.ended and state not in (WorkerState.FAILED, WorkerState.FINISHED):
                return
            if self._state in (WorkerState.FAILED, WorkerState.FINISHED) and state == WorkerState.STOPPED:
                return
            self._state = state

    def _close_source(self) -> None:
        try:
            self.source.close()
        except Exception as exc:
            self.errors.exception(f"closing {self.source.name}", exc, level=logging.WARNING)

    def _continue_index(self, by_recording: bool) -> None:
        """Continue after the rows already in the index (a restarted live session).

        Attached to a cht session, the recording's frames already scored are not scored again
        (the timeline drops them; a gap is backfilled); otherwise frame indices just continue.
        """
        try:
            scores = self.index.scores()
        except Exception as exc:
            log.debug("no previous scores: %s", exc)
            return
        if not len(scores):
            return
        self.timeline.next_index = int(np.max(scores["frame_index"].to_numpy())) + 1
        if by_recording:
            last = scores.groupby("segment")["pts"].max()
            self.timeline.seed({int(k): float(v) for k, v in last.items()}, float(scores["ts"].max()))

    def _work(self) -> None:
        number, failures_without_frames, backoff = 0, 0, 0.2
        try:
            while not self._stop.is_set():
                frames_before = self.pipeline.frames
                runner = RunRunner(number, self.source, self.timeline, self.pipeline, self.errors,
                                   backend=self.backend or "cpu", stop=self._stop, ring=FULLRES_RING,
                                   garbage_after=GARBAGE_AFTER, on_state=self._set_state)
                self._runner = runner
                outcome = runner.run()
                number += 1
                self._backfilled += runner.backfilled
                runner.backfilled = 0
                if self._stop.is_set():
                    break
                if outcome in (RunOutcome.FINISHED, RunOutcome.FAILED):
                    self._set_state(WorkerState.FINISHED if outcome == RunOutcome.FINISHED else WorkerState.FAILED)
                    break
                progressed = self.pipeline.frames > frames_before
                failures_without_frames = 0 if progressed else failures_without_frames + 1
                if not self.restart:
                    if outcome != RunOutcome.ENDED_CLEAN:
                        self.errors.add(f"{self.source.name}: the run ended and restart=False")
                    self._set_state(WorkerState.FINISHED if outcome == RunOutcome.ENDED_CLEAN else WorkerState.FAILED)
                    break
                if self.max_restarts is not None and self._restarts >= self.max_restarts:
                    self.errors.add(f"{self.source.name}: giving up after {self._restarts} restarts (max_restarts)")
                    self._set_state(WorkerState.FAILED)
                    break
                if not self.source.live and failures_without_frames >= 3:
                    self.errors.add(f"{self.source.name}: giving up after {failures_without_frames} failed runs "
                                    "without progress")
                    self._set_state(WorkerState.FAILED)
                    break
                self._restarts += 1
                self._set_state(WorkerState.RECONNECTING if self.source.live else WorkerState.STARTING)
                if progressed:
                    backoff = 0.2
                elif not self.source.backs_off:
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2, 5.0)
        except Exception as exc:  # never die silently
            self.errors.exception("detector crashed", exc)
            self._set_state(WorkerState.FAILED)
        finally:
            self._close_source()
            self.pipeline.flush()
            self.capturer.drain()
            if self._state in (WorkerState.FINISHED, WorkerState.FAILED):
                self.done.set()  # only now: every score row and capture of the source is in the index


__all__ = ["SceneDetector", "DetectorError", "FULLRES_RING", "GARBAGE_AFTER"]
