"""SceneDetector: score every frame of a live source, capture the frames that cross the threshold.

One worker thread, one ffmpeg process per run (cht_lab.detect.decode: one decode gives small gray
analysis frames with pts and ffmpeg's scene score for every frame, plus the same frames at full
resolution, kept only briefly). Python scores each frame (cht_lab.detect.scoring), decides with the
shared capture rule (cht_lab.detect.decision) and writes:

    score rows  -> index.append_scores (buffered by the index)
    a capture   -> frames/<id>.jpg (atomic) -> index.append_frames (durable) -> on_frames callbacks

A capture is the very frame that crossed the threshold, taken from the same decode (never
re-extracted from the recording later); JPEG encoding runs on a small capture thread so it never
stalls decoding. When ffmpeg dies (killed, corrupt data, socket server gone) the run is logged,
the error goes into `status`, and a new run starts: a file resumes right after the last decoded
frame, a socket reconnects. Frame indices and ids continue without duplicates; time lost while
restarting shows as a gap in ts and in frame indices.
"""

from __future__ import annotations

import collections
import logging
import math
import os
import queue
import subprocess
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np

from cht_lab import layout
from cht_lab.detect.decode import AnalysisReader, FullFrame, build_analysis_args, choose_backend
from cht_lab.detect.capture import save_jpeg
from cht_lab.detect.decision import DEFAULT_MIN_GAP, ThresholdDecider
from cht_lab.ffmpeg import MediaError
from cht_lab.detect.scoring import DEFAULT_METRIC, DEFAULT_THRESHOLDS, METRICS, PYTHON_METRICS, FrameScorer
from cht_lab.sources.base import FollowSource, SocketSource, Source, VideoFormat, open_source

log = logging.getLogger(__name__)

FramesCallback = Callable[[list[dict[str, Any]]], None]
RunStartCallback = Callable[["SceneDetector", int, float], None]
ScoresCallback = Callable[[dict[str, np.ndarray]], None]

FULLRES_RING = 4  # full-res frames kept per run: the analysis may trail the full-res pipe by this many
GARBAGE_AFTER = 3.0  # seconds of incoming bytes without video before status says so
_MAX_ERRORS = 50


class DetectorError(ValueError):
    """Bad detector settings (unknown metric, bad threshold)."""


@dataclass
class _CaptureJob:
    info: dict[str, Any]
    full: FullFrame | None
    done: threading.Event | None = None  # manual captures and barriers wait on it
    result: dict[str, Any] | None = None
    error: BaseException | None = None
    barrier: bool = False


@dataclass
class _Run:
    number: int
    reader: AnalysisReader
    stop: threading.Event
    feeder: threading.Thread | None = None
    feeder_error: BaseException | None = None
    first_bytes_at: float | None = None
    frames: int = 0
    started_at: float = field(default_factory=time.monotonic)

    @property
    def proc(self) -> Any:
        return self.reader.process


class SceneDetector:
    """Live scene detection on one source; see the module docstring for the flow of a frame.

    `on_frames(rows)` fires after captured frames are durable in the index; `on_run_start(detector,
    run, first_pts)` fires at each new ffmpeg run before its first row, so the owner can place
    the run on the session timeline (set `segment` / `ts_offset`; by default a live source's runs
    follow each other by wall-clock time); `run_wall_start` then holds the wall-clock time at
    which first_pts was live (for a socket, when its keyframe arrived, not when ffmpeg decoded it); `on_scores(columns)` sees each batch of score rows as
    it goes to the index (latency measurements).
    """

    def __init__(self, source: Any, *, session_dir: str | os.PathLike[str], index: Any,
                 threshold: float | None = None, metric: str | None = None, min_gap: float = DEFAULT_MIN_GAP,
                 backend: str = "auto", segment: int = 0, ts_offset: float = 0.0, jpeg_quality: int = 90,
                 on_frames: FramesCallback | None = None, restart: bool = True, max_restarts: int | None = None,
                 on_run_start: RunStartCallback | None = None, on_scores: ScoresCallback | None = None,
                 realtime: bool = False):
        self.source: Source = open_source(source, realtime=realtime)
        self.session_dir = Path(session_dir)
        self.index = index
        self.metric = metric or DEFAULT_METRIC
        if self.metric not in METRICS:
            raise DetectorError(f"unknown metric {self.metric!r}; known: {', '.join(METRICS)}")
        self._threshold = float(threshold if threshold is not None else DEFAULT_THRESHOLDS[self.metric])
        if math.isnan(self._threshold):
            raise DetectorError("threshold must be a number")
        self.min_gap = float(min_gap)
        self.backend_requested = backend
        self.segment = int(segment)
        self.ts_offset = float(ts_offset)
        self.pts_offset = 0.0  # stream pts -> pts in the recording (a socket stream starts at 0 mid-recording)
        self.jpeg_quality = int(jpeg_quality)
        self._frame_callbacks: list[FramesCallback] = [on_frames] if on_frames else []
        self.on_run_start = on_run_start
        self.on_scores = on_scores
        self.restart = restart
        self.max_restarts = max_restarts
        self.done = threading.Event()

        self._decider = ThresholdDecider(self._threshold, self.min_gap)
        self._decide_lock = threading.Lock()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self._capturer: threading.Thread | None = None
        self._captures: "queue.Queue[_CaptureJob | None]" = queue.Queue()
        self._run: _Run | None = None
        self._recent: collections.deque[dict[str, Any]] = collections.deque(maxlen=FULLRES_RING * 2)
        self._batch: dict[str, list[Any]] = collections.defaultdict(list)
        self._batch_started = 0.0

        self._state = "idle"
        self.backend: str | None = None
        self.backend_reason: str | None = None
        self._frames = 0
        self._n_captures = 0
        self._restarts = 0
        self._errors: list[dict[str, Any]] = []
        self._last_error: str | None = None
        self._rate: collections.deque[float] = collections.deque(maxlen=120)
        self._lag: float | None = None
        self._next_index = self._initial_frame_index()
        self._last_ts: float | None = None
        self._last_pts: float | None = None  # where a crashed file run resumes
        self._t_last_frame: float | None = None
        self._fps: float | None = None
        # wall-clock time at which the current run's first frame was live (a socket: when its
        # keyframe arrived, before ffmpeg's start-up): what on_run_start should map first_pts to
        self.run_wall_start: float | None = None

    # ------------------------------------------------------------------ public

    @property
    def threshold(self) -> float:
        return self._threshold

    def set_threshold(self, value: float) -> None:
        """Applies from the next frame; ffmpeg keeps running."""
        value = float(value)
        if math.isnan(value):
            raise DetectorError("threshold must be a number")
        with self._decide_lock:
            self._threshold = value
            self._decider.threshold = value
        log.info("threshold set to %g", value)

    def on_frames(self, callback: FramesCallback) -> FramesCallback:
        """Add a callback for captured frames (usable as a decorator)."""
        self._frame_callbacks.append(callback)
        return callback

    @property
    def ffmpeg_pid(self) -> int | None:
        run = self._run
        return run.proc.pid if run is not None and run.proc.running() else None

    @property
    def status(self) -> dict[str, Any]:
        with self._lock:
            errors = list(self._errors)
        rate = list(self._rate)
        fps = 0.0
        if len(rate) >= 2 and rate[-1] > rate[0] and time.monotonic() - rate[-1] <= 2.0:
            fps = (len(rate) - 1) / (rate[-1] - rate[0])
        return {
            "state": self._state,
            "backend": self.backend,
            "backend_reason": self.backend_reason,
            "source": self.source.describe(),
            "metric": self.metric,
            "threshold": self._threshold,
            "fps": round(fps, 2),
            "lag": None if self._lag is None else round(self._lag, 3),
            "frames": self._frames,
            "captures": self._n_captures,
            "restarts": self._restarts,
            "run": self._run.number if self._run is not None else None,
            "pid": self.ffmpeg_pid,
            "segment": self.segment,
            "ts_offset": self.ts_offset,
            "run_wall_start": self.run_wall_start,
            "last_error": self._last_error,
            "errors": errors,
        }

    def start(self) -> "SceneDetector":
        """Start the worker (and capture) threads; returns self. Starting twice is a no-op.

        Raises analysis.BackendError when the requested backend cannot be used.
        """
        with self._lock:
            if self._state != "idle":
                return self
            self._state = "starting"
        try:
            self.backend, self.backend_reason = choose_backend(self.backend_requested)
        except Exception:
            self._state = "failed"
            raise
        log.info("scene detector on %s: backend %s (%s), metric %s, threshold %g", self.source.describe(),
                 self.backend, self.backend_reason, self.metric, self._threshold)
        self._capturer = threading.Thread(target=self._capture_loop, name="scene-capture", daemon=True)
        self._capturer.start()
        self._worker = threading.Thread(target=self._work, name="scene-detector", daemon=True)
        self._worker.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop ffmpeg (reaped), finish pending captures, flush scores, join threads. Idempotent."""
        self._stop.set()
        deadline = time.monotonic() + timeout
        self._close_source()  # a socket's connection threads: no new run can start from them
        run = self._run
        if run is not None:
            run.stop.set()
            run.reader.close()
        if self._worker is not None:
            self._worker.join(max(0.1, deadline - time.monotonic()))
            if self._worker.is_alive():
                log.warning("scene detector worker did not stop within %.1f s", timeout)
        if self._capturer is not None and self._capturer.is_alive():
            self._captures.put(None)
            self._capturer.join(max(0.1, deadline - time.monotonic()))
        with self._lock:
            if self._state not in ("failed", "finished"):
                self._state = "stopped"
        if self._worker is not None:
            try:
                self.index.flush()
            except Exception as exc:
                self._error(f"flushing scores failed: {type(exc).__name__}: {exc}")

    def __enter__(self) -> "SceneDetector":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until a finite source has been processed completely (True) or `timeout` passes."""
        return self.done.wait(timeout)

    def capture_now(self, timeout: float = 10.0) -> dict[str, Any] | None:
        """Capture the most recently decoded full-resolution frame (kind 'manual'); None if there is none."""
        run = self._run
        if run is None or self._stop.is_set() or self._capturer is None or not self._capturer.is_alive():
            return None
        recent = [r for r in list(self._recent) if r["run"] == run.number]
        for info in reversed(recent):  # the newest frame whose full-res picture is still kept
            full = run.reader.full_frame(info["seq"], timeout=0.5)
            if full is not None:
                break
        else:
            return None
        with self._decide_lock:
            self._decider.note_capture(info["ts"])
        job = _CaptureJob({**info, "kind": "manual", "threshold": self._threshold}, full, done=threading.Event())
        self._captures.put(job)
        if not job.done.wait(timeout):  # type: ignore[union-attr]
            raise TimeoutError(f"manual capture did not finish within {timeout:.0f} s")
        if job.error is not None:
            raise job.error
        return job.result

    # ------------------------------------------------------------------ errors and state

    def _error(self, message: str, *, level: int = logging.ERROR) -> None:
        log.log(level, "%s", message)
        with self._lock:
            self._last_error = message
            self._errors.append({"time": time.time(), "error": message})
            del self._errors[:-_MAX_ERRORS]

    def _set_state(self, state: str) -> None:
        with self._lock:
            if self._state in ("failed", "finished", "stopped") and state not in ("failed", "finished"):
                return
            self._state = state

    # ------------------------------------------------------------------ worker

    def _close_source(self) -> None:
        try:
            self.source.close()
        except Exception as exc:
            self._error(f"closing {self.source.name} failed: {type(exc).__name__}: {exc}", level=logging.WARNING)

    def _initial_frame_index(self) -> int:
        """Continue after frame indices already in the index (a restarted live session)."""
        try:
            scores = self.index.scores()
            if len(scores):
                return int(scores["frame_index"].max()) + 1
        except Exception as exc:
            log.debug("no previous frame indices: %s", exc)
        return 0

    def _work(self) -> None:
        run_number = 0
        failures_without_frames = 0
        backoff = 0.2
        try:
            while not self._stop.is_set():
                frames_before = self._frames
                outcome = self._one_run(run_number)
                run_number += 1
                if self._stop.is_set():
                    break
                if outcome in ("finished", "failed"):
                    self._set_state(outcome)
                    break
                # the run ended early: restart (resume a file, reconnect a socket)
                progressed = self._frames > frames_before
                failures_without_frames = 0 if progressed else failures_without_frames + 1
                if not self.restart:
                    clean = outcome == "ended-clean"
                    if not clean:
                        self._error(f"{self.source.name}: the run ended and restart=False")
                    self._set_state("finished" if clean else "failed")
                    break
                if self.max_restarts is not None and self._restarts >= self.max_restarts:
                    self._error(f"{self.source.name}: giving up after {self._restarts} restarts (max_restarts)")
                    self._set_state("failed")
                    break
                if not self.source.live and failures_without_frames >= 3:
                    self._error(f"{self.source.name}: giving up after {failures_without_frames} failed runs "
                                "without progress")
                    self._set_state("failed")
                    break
                self._restarts += 1
                self._set_state("reconnecting" if isinstance(self.source, SocketSource) else "starting")
                if progressed:
                    backoff = 0.2
                elif not isinstance(self.source, SocketSource):  # the socket has its own backoff
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2, 5.0)
        except Exception as exc:  # never die silently
            log.exception("scene detector worker crashed")
            self._error(f"detector crashed: {type(exc).__name__}: {exc}")
            self._set_state("failed")
        finally:
            self._close_source()
            self._flush_scores()
            self._drain_captures()
            self._captures.put(None)
            if self._state in ("finished", "failed"):
                self.done.set()  # only now: every score row and capture of the source is in the index

    def _resume_point(self) -> float | None:
        if not (self.source.seekable and self._last_pts is not None):
            return None
        step = 1.0 / self._fps if self._fps else 0.001
        return self._last_pts + step / 2

    def _on_state(self, run_holder: dict[str, Any]) -> Callable[[str, "str | None"], None]:
        def on_state(state: str, message: str | None) -> None:
            run = run_holder.get("run")
            if state == "connected":
                if run is not None and run.first_bytes_at is None:
                    run.first_bytes_at = time.monotonic()
                run_holder.setdefault("connected_at", time.monotonic())
            elif state in ("connecting", "reconnecting"):
                self._set_state("reconnecting" if state == "reconnecting" else "starting")
                if message and state == "reconnecting":
                    with self._lock:
                        self._last_error = message
            elif state == "garbage" and message:
                self._error(message)
            elif state == "damaged" and message:
                self._error(message, level=logging.WARNING)
        return on_state

    def _one_run(self, number: int) -> str:
        """One ffmpeg process from start to end: 'finished', 'failed', 'ended' (restart) or 'ended-clean'."""
        stop = threading.Event()
        holder: dict[str, Any] = {}
        on_state = self._on_state(holder)
        try:
            fmt = self._prepare(on_state)
        except MediaError as exc:
            return self._failed_to_open(exc)
        if fmt is None:  # stopped, or the stream ended before it started
            return "ended" if not getattr(self.source, "finished", False) else "finished"
        resume = self._resume_point()
        plan = build_analysis_args(self.source.input_args(start=resume), backend=self.backend or "cpu",
                                   src_width=fmt.width, src_height=fmt.height, full_res=True)
        try:
            reader = AnalysisReader(plan, path=self.source.name, reuse=True, ring=FULLRES_RING, name="scene-ffmpeg",
                                    stdin=subprocess.PIPE if self.source.has_feeder else subprocess.DEVNULL)
        except Exception:
            plan.cleanup()
            raise
        arrived = getattr(self.source, "keyframe_at", None) if isinstance(self.source, SocketSource) else None
        run = _Run(number, reader, stop, first_bytes_at=arrived[1] if arrived else holder.get("connected_at"))
        self.run_wall_start = arrived[0] if arrived else None
        holder["run"] = run
        self._run = run
        if self._stop.is_set():  # stop() raced with the start of this run
            reader.close()
        log.info("run %d: ffmpeg pid %d on %s (%dx%d, %s)%s", number, run.proc.pid, self.source.name, fmt.width,
                 fmt.height, plan.backend, f", resuming at {resume:.3f} s" if resume else "")
        monitor = threading.Thread(target=self._monitor, args=(run,), name="scene-monitor", daemon=True)
        monitor.start()
        if self.source.has_feeder:
            run.feeder = threading.Thread(target=self._feed, args=(run, on_state), name="scene-feeder", daemon=True)
            run.feeder.start()
        error: MediaError | None = None
        try:
            self._process_frames(run, fmt)
        except MediaError as exc:  # ffmpeg failed before its first frame
            error = exc
        finally:
            stop.set()
            reader.close()
            if run.feeder is not None:
                run.feeder.join(timeout=2.0)
            monitor.join(timeout=2.0)
            self._flush_scores()
        log.info("run %d ended: %d frames, ffmpeg exit code %s", number, run.frames, run.proc.returncode)
        return self._judge_run(run, error)

    def _prepare(self, on_state: Callable[[str, "str | None"], None]) -> VideoFormat | None:
        """The source's picture size for this run (a socket connects and reads its first keyframe)."""
        if isinstance(self.source, SocketSource):
            if self._state not in ("idle", "starting"):
                self._set_state("reconnecting")
            return self.source.prepare(self._stop, on_state, garbage_after=GARBAGE_AFTER)
        return self.source.prepare(self._stop, on_state)

    def _failed_to_open(self, exc: MediaError) -> str:
        message = str(exc)
        if self._frames == 0 and not self.source.live:
            self._error(message)  # bad input: nothing to resume
            return "failed"
        self._error(f"{message} (will retry)")
        return "ended"

    def _feed(self, run: _Run, on_state: Callable[[str, "str | None"], None]) -> None:
        sink = run.proc.stdin
        assert sink is not None
        try:
            self.source.feed(sink, run.stop, on_state)
        except Exception as exc:
            run.feeder_error = exc
            self._error(f"{type(exc).__name__}: {exc}")
            try:
                sink.close()
            except OSError:
                pass

    def _monitor(self, run: _Run) -> None:
        """Report what the frame loop cannot see: ffmpeg's error lines, and data that decodes to nothing."""
        seen: list[str] = []
        reported_garbage = False
        last_frames, last_progress = run.frames, time.monotonic()
        bytes_at_progress = getattr(self.source, "bytes_received", 0)
        while True:
            ended = run.stop.wait(0.5)
            if ended and self._stop.is_set():
                return  # stopped by us: what ffmpeg says while being stopped is no news
            # after the run: one last look, or a short run's complaints (a corrupt frame) go unseen
            lines = [ln for ln in run.proc.stderr_tail(50).splitlines() if ln.strip()]
            for line in _new_lines(seen, lines)[-3:]:
                self._error(f"{self.source.name}: ffmpeg: {line.strip()}", level=logging.WARNING)
            seen = lines
            if ended:
                return
            now = time.monotonic()
            received = getattr(self.source, "bytes_received", 0)
            if run.frames != last_frames:
                last_frames, last_progress, bytes_at_progress = run.frames, now, received
                reported_garbage = False
            elif (not reported_garbage and now - last_progress >= GARBAGE_AFTER
                  and received - bytes_at_progress >= 64 * 1024):
                reported_garbage = True
                self._error(f"{self.source.name}: received {(received - bytes_at_progress) / 1024:.0f} KiB in "
                            f"{now - last_progress:.0f} s but no video frame decodes from it (not H.264 Annex-B?)")

    def _judge_run(self, run: _Run, error: MediaError | None) -> str:
        if self._stop.is_set():
            return "ended"
        rc = run.proc.returncode
        finished_source = getattr(self.source, "finished", False)
        problem = error is not None or run.feeder_error is not None or rc not in (0, None) or run.reader.error
        if not problem:
            if not self.source.live or finished_source:
                return "finished"
            return "ended-clean"  # a live stream ended (server gone): restart
        if finished_source:
            return "finished"
        if rc is not None and rc < 0:
            reason = f"ffmpeg was killed (signal {-rc})"
        elif error is not None:
            reason = error.reason
        else:
            reason = run.reader.error or str(run.feeder_error) or f"ffmpeg exited with code {rc}"
        if run.frames == 0 and self._frames == 0 and not self.source.live:
            self._error(f"{self.source.name}: {reason}")  # bad input: nothing to resume
            return "failed"
        self._error(f"{self.source.name}: run {run.number} ended after {run.frames} frames: {reason}")
        if not self.source.seekable and not self.source.live:
            return "failed"  # a finite stream that cannot resume
        return "ended"

    # ------------------------------------------------------------------ frames

    def _process_frames(self, run: _Run, fmt: VideoFormat) -> None:
        plan = run.reader.plan
        scorer = FrameScorer(plan.width, plan.height, fps=fmt.fps or self._fps or 30.0)
        live = self.source.live or self.source.realtime
        batch_age = 0.0 if live else 0.25  # live: every row goes to the index buffer at once
        first_pts: float | None = None
        t_first: float | None = None
        wall_origin: float | None = None
        for fa in run.reader:
            if self._stop.is_set():
                break
            now = time.monotonic()
            pts = fa.pts  # a resumed file keeps its timestamps (see FileSource.input_args)
            if not math.isfinite(pts):
                step = 1.0 / (self._fps or fmt.fps or 30.0)
                pts = (self._last_pts + step) if (self._last_pts is not None and run.frames) else 0.0
            if first_pts is None:
                first_pts = pts
                t_first = run.first_bytes_at or now
                if self.run_wall_start is None:
                    self.run_wall_start = time.time() - (now - t_first)
                wall_origin = self._wall_origin()
                self._start_run_timeline(run, pts)
                self._set_state("running")
            run.frames += 1
            ts = pts + self.ts_offset
            if self._last_ts is not None and ts <= self._last_ts:
                # ts must increase (tuning relies on it): a mapping that goes backwards is nudged forward
                step = 1.0 / self._fps if self._fps else 1e-3
                self.ts_offset += self._last_ts + step - ts
                log.warning("run %d: ts went backwards; ts_offset moved to %.3f", run.number, self.ts_offset)
                ts = pts + self.ts_offset
            if self._last_pts is not None and run.frames > 1 and pts > self._last_pts:
                dt = pts - self._last_pts
                self._fps = 0.9 * self._fps + 0.1 / dt if self._fps else 1.0 / dt
            index = self._next_index
            if run.frames == 1 and self._last_ts is not None and self._fps:
                index += max(0, round((ts - self._last_ts) * self._fps) - 1)  # lost frames: missing indices
            self._next_index = index + 1
            self._last_ts, self._last_pts, self._t_last_frame = ts, pts, now
            values = scorer.score(fa.gray, scene=fa.scene, pts=pts)
            value = values.get(self.metric, math.nan)
            info = {"run": run.number, "seq": fa.frame_index, "segment": self.segment, "frame_index": index,
                    "pts": pts + self.pts_offset, "ts": ts, "score": value}
            self._recent.append(info)
            self._add_score_row(info, values)
            with self._decide_lock:
                capture = self._decider.decide(ts, value)
                threshold = self._threshold
            if capture:
                # pin the full-res frame now (a reference, no copy): the ring moves on with the decode
                full = run.reader.full_frame(fa.frame_index)
                if full is None:
                    full = run.reader.full_frame(fa.frame_index + 1, timeout=1.0)  # +-1 frame is fine
                self._captures.put(_CaptureJob({**info, "kind": "scene", "threshold": threshold}, full))
            self._frames += 1
            self._rate.append(now)
            arrived = self._unit_arrival(run.frames - 1)
            if arrived is not None:  # a socket: since this frame's bytes arrived (the live edge)
                self._lag = max(0.0, now - arrived)
            elif wall_origin is not None:  # a growing recording named by its start time: behind its live edge
                self._lag = max(0.0, time.time() - (wall_origin + pts))
            elif live and t_first is not None:  # a stream that arrives in real time
                self._lag = max(0.0, (now - t_first) - (pts - first_pts))  # type: ignore[operator]
            if len(self._batch["ts"]) >= 512 or now - self._batch_started >= batch_age:
                self._flush_scores()

    def _unit_arrival(self, number: int) -> float | None:
        """When access unit `number` of the current socket connection arrived (frame k of a run is unit k)."""
        arrival = getattr(self.source, "unit_arrival", None)
        return arrival(number) if arrival is not None else None

    def _wall_origin(self) -> float | None:
        """Wall-clock time of pts 0 for a followed cht recording (its name is its start time)."""
        current = getattr(self.source, "current", None)
        if not isinstance(self.source, FollowSource) or current is None:
            return None
        start = layout.parse_start_time(Path(current).stem)
        return start.timestamp() if start is not None else None

    def _start_run_timeline(self, run: _Run, first_pts: float) -> None:
        """Place the run on the session timeline: continue by wall clock, then let the owner decide."""
        if run.number > 0 and self.source.live and self._last_ts is not None:
            elapsed = time.monotonic() - self._t_last_frame if self._t_last_frame is not None else 0.0
            self.ts_offset = self._last_ts + max(elapsed, 1e-3) - first_pts
        if self.on_run_start is not None:
            try:
                self.on_run_start(self, run.number, first_pts)
            except Exception as exc:
                self._error(f"on_run_start callback failed: {type(exc).__name__}: {exc}")
        log.info("run %d: first pts %.3f -> segment %d, ts offset %.3f", run.number, first_pts, self.segment,
                 self.ts_offset)

    def _add_score_row(self, info: dict[str, Any], values: dict[str, float]) -> None:
        b = self._batch
        if not b["ts"]:
            self._batch_started = time.monotonic()
        b["segment"].append(info["segment"])
        b["frame_index"].append(info["frame_index"])
        b["pts"].append(info["pts"])
        b["ts"].append(info["ts"])
        for name in METRICS:  # "score" is ffmpeg's scene score, as in offline scoring
            b[name].append(values.get(name, math.nan))

    def _flush_scores(self) -> None:
        b = self._batch
        if not b["ts"]:
            return
        cols: dict[str, np.ndarray] = {
            "segment": np.asarray(b["segment"], np.int32),
            "frame_index": np.asarray(b["frame_index"], np.int64),
            "pts": np.asarray(b["pts"], np.float64),
            "ts": np.asarray(b["ts"], np.float64),
            "score": np.asarray(b["score"], np.float32),
            **{name: np.asarray(b[name], np.float32) for name in PYTHON_METRICS},
        }
        self._batch = collections.defaultdict(list)
        try:
            self.index.append_scores(cols)
        except Exception as exc:
            self._error(f"writing scores to the index failed: {type(exc).__name__}: {exc}")
        if self.on_scores is not None:
            try:
                self.on_scores(cols)
            except Exception as exc:
                log.error("on_scores callback failed: %s", exc, exc_info=exc)

    # ------------------------------------------------------------------ captures

    def _drain_captures(self, timeout: float = 10.0) -> None:
        """Wait until the captures queued so far are written (or the capture thread is gone)."""
        if self._capturer is None or not self._capturer.is_alive():
            return
        barrier = _CaptureJob({}, None, done=threading.Event(), barrier=True)
        self._captures.put(barrier)
        if not barrier.done.wait(timeout):  # type: ignore[union-attr]
            self._error(f"captures still pending after {timeout:.0f} s")

    def _capture_loop(self) -> None:
        while True:
            job = self._captures.get()
            if job is None:
                if self._stop.is_set() or (self._worker is not None and not self._worker.is_alive()):
                    break
                continue
            if job.barrier:
                job.done.set()  # type: ignore[union-attr]
                continue
            try:
                job.result = self._capture(job)
            except Exception as exc:
                job.error = exc
                self._error(f"capture of frame {job.info.get('frame_index')} failed: {type(exc).__name__}: {exc}")
            finally:
                if job.done is not None:
                    job.done.set()
        while True:  # answer whoever still waits, so no caller hangs
            try:
                job = self._captures.get_nowait()
            except queue.Empty:
                break
            if job is not None and job.done is not None:
                job.error = RuntimeError("the detector stopped before the capture was made")
                job.done.set()

    def _capture(self, job: _CaptureJob) -> dict[str, Any]:
        full = job.full
        if full is None:
            raise MediaError(self.source.name, "the full-resolution frame was no longer available")
        frame_id = self.index.next_frame_id()
        rel = f"{layout.FRAMES_DIR}/{frame_id}.jpg"
        size = save_jpeg(full.to_image(), self.session_dir / rel, self.jpeg_quality)
        info = job.info
        row = {
            "id": frame_id, "ts": float(info["ts"]), "pts": float(info["pts"]), "segment": int(info["segment"]),
            "frame_index": int(info["frame_index"]), "score": float(info["score"]), "metric": self.metric,
            "threshold": float(info["threshold"]), "kind": info["kind"], "path": rel,
            "width": full.width, "height": full.height, "bytes": int(size),
            "captured_at": datetime.now(timezone.utc), "sent_to_agent": False,
        }
        self.index.append_frames([row])  # durable before anyone hears about it
        self._n_captures += 1
        log.info("captured %s at %.3f s (%s=%.3f, %s)", frame_id, row["ts"], self.metric, row["score"], row["kind"])
        for cb in list(self._frame_callbacks):
            try:
                cb([dict(row)])
            except Exception as exc:  # a broken callback never stops detection
                log.error("on_frames callback failed: %s", exc, exc_info=exc)
                self._error(f"on_frames callback failed: {type(exc).__name__}: {exc}", level=logging.DEBUG)
        return row


def _new_lines(before: list[str], now: list[str]) -> list[str]:
    """Lines of `now` (a bounded tail) that were not already in the tail `before`."""
    for k in range(min(len(before), len(now)), 0, -1):
        if before[-k:] == now[:k]:
            return now[k:]
    return now


__all__ = ["SceneDetector", "DetectorError", "FULLRES_RING", "GARBAGE_AFTER"]
