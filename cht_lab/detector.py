"""SceneDetector: score every frame of a live source, capture the frames that cross the threshold.

One worker thread, one ffmpeg process per run. ffmpeg decodes once and writes two things from
the same decode: small gray analysis frames with their pts and ffmpeg's scene score (for the
scorer, every frame), and full-resolution frames (kept only briefly, so a capture is the very
frame that crossed the threshold, never re-extracted from the recording later). Python scores,
decides with the shared capture rule, and writes:

    score rows  -> index.append_scores (buffered by the index)
    a capture   -> frames/<id>.jpg (atomic) -> index.append_frames (durable) -> on_frames callbacks

JPEG encoding runs on a small capture thread so it never stalls decoding. When ffmpeg dies
(killed, corrupt data, socket server gone) the run is logged, the error goes into `status`, and
a new run starts: a file resumes after the last decoded pts, a socket reconnects. Frame indices
and ids continue without duplicates; the lost time shows as a gap in ts and frame indices.
"""

from __future__ import annotations

import collections
import logging
import math
import os
import queue
import re
import select
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from . import layout
from .decision import DEFAULT_MIN_GAP, ThresholdDecider
from .ffmpeg import FfmpegProcess, MediaError
from .sources import FollowSource, SocketSource, Source, open_source

log = logging.getLogger(__name__)

FramesCallback = Callable[[list[dict[str, Any]]], None]
RunStartCallback = Callable[["SceneDetector", int, float], None]
ScoresCallback = Callable[[dict[str, np.ndarray]], None]

FULLRES_RING = 4  # full-res frames kept: the analysis can be this many frames behind the full-res pipe
_MAX_ERRORS = 50
GARBAGE_AFTER = 3.0  # seconds of incoming data without a decoded frame before status says so


class DetectorError(RuntimeError):
    """The detector cannot run (bad configuration); media problems are MediaError."""


# =========================================================================== analysis adapter
# ADAPTER until cht_lab.analysis provides a live plan with a full-resolution output: the plan
# below is the minimal one the detector needs. It is used only when cht_lab.analysis lacks it.


@dataclass
class AnalysisFrame:
    seq: int  # 0-based within the run; the same number as the full-res frame from the same decode
    pts: float  # seconds, from the start of the run's input (after any resume seek)
    scene: float  # ffmpeg's scene score for this frame (0..1)
    gray: np.ndarray  # small gray frame (uint8, H x W)


class _Pipe:
    """Non-blocking reader on a FIFO (opened read-write so neither side ever blocks on open).

    ffmpeg's end can vanish without us seeing EOF (we hold a write end too), so 'no more data'
    is: nothing readable and ffmpeg no longer running.
    """

    def __init__(self, path: str | None, alive: Callable[[], bool], stop: threading.Event, *, fd: int | None = None,
                 pipe_size: int = 1 << 20):
        self.fd = fd if fd is not None else os.open(path, os.O_RDWR | os.O_NONBLOCK)  # type: ignore[arg-type]
        if fd is not None:
            os.set_blocking(fd, False)
        try:
            import fcntl

            fcntl.fcntl(self.fd, 1031, pipe_size)  # F_SETPIPE_SZ: fewer wake-ups for big frames
        except OSError:
            pass
        self._alive = alive
        self._stop = stop
        self._buf = bytearray()
        self._own_fd = fd is None

    def _fill(self, want: int) -> bool:
        """Read until `want` bytes are buffered; False at the end of the stream or on stop."""
        while len(self._buf) < want:
            if self._stop.is_set():
                return False
            r, _, _ = select.select([self.fd], [], [], 0.1)
            if not r:
                if not self._alive():
                    # ffmpeg is gone: whatever it wrote is already in the pipe
                    try:
                        data = os.read(self.fd, max(want - len(self._buf), 1 << 16))
                    except BlockingIOError:
                        return False
                    if not data:
                        return False
                    self._buf += data
                continue
            try:
                data = os.read(self.fd, max(want - len(self._buf), 1 << 16))
            except BlockingIOError:
                continue
            if not data:
                return False
            self._buf += data
        return True

    def read_exact(self, n: int) -> bytes | None:
        if not self._fill(n):
            return None
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    def readline(self, limit: int = 4096) -> bytes | None:
        while True:
            i = self._buf.find(b"\n")
            if i >= 0:
                out = bytes(self._buf[: i + 1])
                del self._buf[: i + 1]
                return out
            if len(self._buf) > limit:
                raise MediaError("ffmpeg", "garbled analysis output (line too long)")
            if not self._fill(len(self._buf) + 1):
                return None

    def close(self) -> None:
        if self._own_fd:
            try:
                os.close(self.fd)
            except OSError:
                pass


class _LivePlan:
    """The ffmpeg arguments of one detector run and the readers of its outputs (ADAPTER)."""

    def __init__(self, input_args: list[str], *, backend: str, size: tuple[int, int] = (160, 90)):
        self.size = size
        self.tmp = Path(tempfile.mkdtemp(prefix="cht_lab-det-"))
        self.analysis_fifo = self.tmp / "analysis"
        self.full_fifo = self.tmp / "full"
        os.mkfifo(self.analysis_fifo, 0o600)
        os.mkfifo(self.full_fifo, 0o600)
        w, h = size
        hw: list[str] = []
        if backend == "cuda":
            hw = ["-hwaccel", "cuda"]  # decode on the GPU; frames come back for the CPU filters
        graph = (
            "[0:v:0]split=2[a][f];"
            f"[a]scale={w}:{h}:flags=area,format=gray,settb=1/1000000,select='gte(scene\\,0)',"
            "metadata=mode=print:file='pipe\\:1':direct=1[ao];"
            "[f]scale=out_range=full:out_color_matrix=bt601,format=yuv420p[fo]"
        )
        self.args = ["-hide_banner", "-nostdin", "-loglevel", "error", "-y", *hw, *input_args,
                     "-filter_complex", graph,
                     "-map", "[ao]", "-fps_mode", "passthrough", "-f", "rawvideo", str(self.analysis_fifo),
                     "-map", "[fo]", "-fps_mode", "passthrough", "-f", "yuv4mpegpipe", "-strict", "-1",
                     str(self.full_fifo)]

    def frames(self, proc: FfmpegProcess, stop: threading.Event) -> Iterator[AnalysisFrame]:
        """Analysis frames in decode order: pts and scene score from stdout, gray pixels from the FIFO."""
        assert proc.stdout is not None
        meta = _Pipe(None, proc.running, stop, fd=proc.stdout.fileno(), pipe_size=1 << 16)
        gray = _Pipe(str(self.analysis_fifo), proc.running, stop)
        w, h = self.size
        seq = 0
        pts: float | None = None
        try:
            while True:
                line = meta.readline()
                if line is None:
                    return
                text = line.decode("ascii", "replace")
                if text.startswith("frame:"):
                    m = re.search(r"\bpts:(-?\d+)", text)
                    pts = int(m.group(1)) / 1e6 if m else math.nan
                elif text.startswith("lavfi.scene_score="):
                    try:
                        scene = float(text.split("=", 1)[1])
                    except ValueError:
                        scene = math.nan
                    data = gray.read_exact(w * h)
                    if data is None:
                        return
                    yield AnalysisFrame(seq, pts if pts is not None else math.nan, scene,
                                        np.frombuffer(data, np.uint8).reshape(h, w))
                    seq += 1
                    pts = None
        finally:
            gray.close()

    def full_res_pipe(self, proc: FfmpegProcess, stop: threading.Event) -> "_Pipe":
        return _Pipe(str(self.full_fifo), proc.running, stop, pipe_size=1 << 22)

    def cleanup(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


def _choose_backend(backend: str) -> tuple[str, str]:
    """(backend, reason): cht_lab.analysis.choose_backend when available, else CPU (ADAPTER)."""
    try:
        from .analysis import choose_backend  # type: ignore[attr-defined]
    except ImportError:
        choose_backend = None
    if choose_backend is not None:
        res = choose_backend(backend)
        if isinstance(res, tuple):
            return str(res[0]), str(res[1])
        return str(getattr(res, "name", getattr(res, "backend", res))), str(getattr(res, "reason", ""))
    if backend in ("auto", "cpu"):
        return "cpu", "cht_lab.analysis not available: CPU decode" if backend == "auto" else "requested"
    if backend == "cuda":
        from .ffmpeg import cuda_usable

        ok, reason = cuda_usable()
        if not ok:
            raise DetectorError(f"backend 'cuda' requested but {reason}")
        return "cuda", reason
    raise DetectorError(f"unknown backend {backend!r}: use 'auto', 'cpu' or 'cuda'")


# =========================================================================== scoring adapter


class _Scorer:
    """Per-frame metrics for the score rows: cht_lab.scoring when available, else ffmpeg's scene score."""

    def __init__(self, metric: str | None):
        self.names: list[str] = ["scene"]
        self._impl: Any = None
        default_metric, default_thresholds = "scene", {"scene": 0.3}
        try:
            from . import scoring  # type: ignore[attr-defined]

            default_metric = scoring.DEFAULT_METRIC
            default_thresholds = dict(scoring.DEFAULT_THRESHOLDS)
            self._impl = scoring.FrameScorer()
            self.names = list(getattr(self._impl, "metrics", None) or scoring.METRICS)
        except (ImportError, AttributeError, TypeError) as exc:
            log.debug("cht_lab.scoring not usable (%s); scoring with ffmpeg's scene score only", exc)
        self.metric = metric or default_metric
        if self.metric not in self.names:
            raise DetectorError(f"unknown metric {self.metric!r}; known: {', '.join(self.names)}")
        self.default_threshold = float(default_thresholds.get(self.metric, 0.3))

    def reset(self) -> None:
        if self._impl is not None and hasattr(self._impl, "reset"):
            self._impl.reset()

    def score(self, frame: AnalysisFrame) -> dict[str, float]:
        if self._impl is None:
            return {"scene": frame.scene}
        values = self._impl.score(frame.gray, scene=frame.scene) if _accepts_scene(self._impl) else \
            self._impl.score(frame.gray)
        out = {k: float(v) for k, v in dict(values).items()}
        out.setdefault("scene", frame.scene)
        return out


def _accepts_scene(obj: Any) -> bool:
    import inspect

    try:
        return "scene" in inspect.signature(obj.score).parameters
    except (TypeError, ValueError):
        return False


# =========================================================================== full-res frames


@dataclass
class _FullFrame:
    seq: int
    width: int
    height: int
    data: bytes  # yuv420p, full range, BT.601 (what JPEG/JFIF expects)


class _FullResRing:
    """The last few full-resolution frames of the current run, read by their own thread.

    The reader never runs more than FULLRES_RING frames ahead of the analysis, so the frame a
    capture asks for is still here; a frame is copied out only when it is captured.
    """

    def __init__(self, pipe: _Pipe, stop: threading.Event):
        self.pipe = pipe
        self.stop = stop
        self.cond = threading.Condition()
        self.frames: collections.deque[_FullFrame] = collections.deque(maxlen=FULLRES_RING)
        self.analysis_seq = -1  # the newest analysis frame seen by the worker
        self.ended = False
        self.error: str | None = None
        self.size: tuple[int, int] | None = None
        self.thread = threading.Thread(target=self._run, name="scene-fullres", daemon=True)

    def _run(self) -> None:
        try:
            header = self.pipe.readline(limit=1 << 12)
            if header is None:
                return
            if not header.startswith(b"YUV4MPEG2"):
                raise MediaError("ffmpeg", "unexpected full-resolution output")
            fields = dict((f[:1], f[1:]) for f in header.decode("ascii").split()[1:])
            w, h = int(fields["W"]), int(fields["H"])
            self.size = (w, h)
            frame_bytes = w * h + 2 * ((w + 1) // 2) * ((h + 1) // 2)
            seq = 0
            while not self.stop.is_set():
                with self.cond:
                    while seq - self.analysis_seq >= FULLRES_RING and not self.stop.is_set():
                        self.cond.wait(0.1)
                tag = self.pipe.readline()
                if tag is None:
                    return
                data = self.pipe.read_exact(frame_bytes)
                if data is None:
                    return
                with self.cond:
                    self.frames.append(_FullFrame(seq, w, h, data))
                    self.cond.notify_all()
                seq += 1
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"
            log.error("full-resolution reader failed: %s", exc)
        finally:
            with self.cond:
                self.ended = True
                self.cond.notify_all()

    def advance(self, seq: int) -> None:
        with self.cond:
            self.analysis_seq = seq
            self.cond.notify_all()

    def get(self, seq: int, timeout: float = 5.0) -> _FullFrame | None:
        """Frame `seq` (or the nearest one kept, ±1 frame), waiting for it to arrive."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for f in self.frames:
                    if f.seq == seq:
                        return f
                newest = self.frames[-1].seq if self.frames else -1
                if newest > seq or self.ended or time.monotonic() > deadline:
                    break
                self.cond.wait(0.05)
            if not self.frames:
                return None
            best = min(self.frames, key=lambda f: abs(f.seq - seq))
            if abs(best.seq - seq) > 1:
                log.warning("full-res frame %d no longer kept; capturing frame %d instead", seq, best.seq)
            return best

    def latest(self) -> _FullFrame | None:
        with self.cond:
            return self.frames[-1] if self.frames else None


def encode_jpeg(frame: _FullFrame, quality: int = 90) -> bytes:
    """JPEG of a full-range BT.601 yuv420p frame without an RGB round trip."""
    import io

    from PIL import Image

    w, h = frame.width, frame.height
    cw, ch = (w + 1) // 2, (h + 1) // 2
    buf = memoryview(frame.data)
    y = Image.frombuffer("L", (w, h), buf[: w * h], "raw", "L", 0, 1)
    u = Image.frombuffer("L", (cw, ch), buf[w * h: w * h + cw * ch], "raw", "L", 0, 1)
    v = Image.frombuffer("L", (cw, ch), buf[w * h + cw * ch:], "raw", "L", 0, 1)
    img = Image.merge("YCbCr", (y, u.resize((w, h), Image.Resampling.NEAREST),
                                v.resize((w, h), Image.Resampling.NEAREST)))
    out = io.BytesIO()
    img.save(out, "JPEG", quality=int(quality), subsampling=2)
    return out.getvalue()


def _write_atomic(path: Path, data: bytes) -> None:
    """Write via a temporary name and rename: readers (the agent) never see half a JPEG."""
    try:
        from .capture import save_jpeg  # type: ignore[attr-defined]
    except ImportError:
        save_jpeg = None
    if save_jpeg is not None:
        try:
            save_jpeg(path, data)
            return
        except TypeError:
            pass  # a different signature: fall back to our own atomic write
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


# =========================================================================== detector


@dataclass
class _CaptureJob:
    seq: int
    info: dict[str, Any]
    full: _FullFrame | None
    done: threading.Event | None = None
    result: dict[str, Any] | None = None
    error: BaseException | None = None


@dataclass
class _Run:
    number: int
    proc: FfmpegProcess
    plan: _LivePlan
    ring: _FullResRing
    stop: threading.Event
    feeder: threading.Thread | None = None
    feeder_error: BaseException | None = None
    first_bytes_at: float | None = None
    frames: int = 0
    started_at: float = field(default_factory=time.monotonic)


class SceneDetector:
    """Live scene detection on one source; see the module docstring for the flow of a frame.

    `on_frames(rows)` fires after captured frames are durable in the index; `on_run_start(detector,
    run, first_pts)` fires at each new ffmpeg run before its first row, so the owner can place
    the run on the session timeline (set `segment` / `ts_offset`); `on_scores(columns)` sees each
    batch of score rows as it goes to the index (latency measurements).
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
        self._scorer = _Scorer(metric)
        self.metric = self._scorer.metric
        self._threshold = float(threshold if threshold is not None else self._scorer.default_threshold)
        self.min_gap = float(min_gap)
        self.backend_requested = backend
        self.segment = int(segment)
        self.ts_offset = float(ts_offset)
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
        self._last_pts: float | None = None  # for resuming a file after a crash
        self._fps: float | None = None

    # ------------------------------------------------------------------ public

    @property
    def threshold(self) -> float:
        return self._threshold

    def set_threshold(self, value: float) -> None:
        """Applies from the next frame; ffmpeg keeps running."""
        value = float(value)
        if math.isnan(value):
            raise ValueError("threshold must be a number")
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
        if len(rate) >= 2 and rate[-1] > rate[0]:
            fps = (len(rate) - 1) / (rate[-1] - rate[0])
            if time.monotonic() - rate[-1] > 2.0:
                fps = 0.0
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
            "last_error": self._last_error,
            "errors": errors,
        }

    def start(self) -> "SceneDetector":
        """Start the worker (and capture) threads; returns self. Starting twice is a no-op."""
        with self._lock:
            if self._state != "idle":
                return self
            self._state = "starting"
        self.backend, self.backend_reason = _choose_backend(self.backend_requested)
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
        run = self._run
        if run is not None:
            run.stop.set()
            run.proc.stop(timeout=min(2.0, timeout))
        deadline = time.monotonic() + timeout
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
        try:
            if self._worker is not None and hasattr(self.index, "flush"):
                self.index.flush()
        except Exception as exc:
            self._error(f"flushing scores failed: {exc}")

    def __enter__(self) -> "SceneDetector":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until a finite source has been processed completely (True) or `timeout` passes."""
        return self.done.wait(timeout)

    def capture_now(self, timeout: float = 10.0) -> dict[str, Any] | None:
        """Capture the most recently decoded full-resolution frame (kind 'manual'); None if none yet."""
        run = self._run
        if run is None or self._stop.is_set() or self._capturer is None or not self._capturer.is_alive():
            return None
        full = run.ring.latest()
        if full is None:
            return None
        info = next((r for r in reversed(self._recent) if r["run"] == run.number and r["seq"] <= full.seq), None)
        if info is None:
            return None
        with self._decide_lock:
            self._decider.note_capture(info["ts"])
        full = run.ring.get(info["seq"], timeout=0.0)
        job = _CaptureJob(info["seq"], {**info, "kind": "manual"}, full, done=threading.Event())
        self._captures.put(job)
        if not job.done.wait(timeout):  # type: ignore[union-attr]
            raise TimeoutError(f"manual capture did not finish within {timeout:.0f} s")
        if job.error is not None:
            raise job.error
        return job.result

    # ------------------------------------------------------------------ errors

    def _error(self, message: str, *, level: int = logging.ERROR) -> None:
        log.log(level, "%s", message)
        with self._lock:
            self._last_error = message
            self._errors.append({"time": time.time(), "error": message})
            del self._errors[:-_MAX_ERRORS]

    # ------------------------------------------------------------------ worker

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
                if outcome == "finished":
                    self._set_state("finished")
                    break
                if outcome == "failed":
                    self._set_state("failed")
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
                elif not isinstance(self.source, SocketSource):  # the socket feeder has its own backoff
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2, 5.0)
        except Exception as exc:  # never die silently
            log.exception("scene detector worker crashed")
            self._error(f"detector crashed: {type(exc).__name__}: {exc}")
            self._set_state("failed")
        finally:
            self._flush_scores(force=True)
            self._drain_captures()
            self._captures.put(None)
            if self._state in ("finished", "failed"):
                self.done.set()  # only now: every score row and capture of the source is in the index

    def _drain_captures(self, timeout: float = 10.0) -> None:
        """Wait until the captures queued so far are written (or the capture thread is gone)."""
        if self._capturer is None or not self._capturer.is_alive():
            return
        barrier = _CaptureJob(-1, {}, None, done=threading.Event())
        self._captures.put(barrier)
        if not barrier.done.wait(timeout):  # type: ignore[union-attr]
            self._error(f"captures still pending after {timeout:.0f} s")

    def _set_state(self, state: str) -> None:
        with self._lock:
            if self._state in ("failed", "finished", "stopped") and state not in ("failed", "finished"):
                return
            self._state = state

    def _resume_point(self) -> float | None:
        if not (self.source.seekable and self._last_pts is not None):
            return None
        step = 1.0 / self._fps if self._fps else 0.001
        return self._last_pts + step / 2

    def _one_run(self, number: int) -> str:
        """One ffmpeg process from start to end: 'finished', 'failed', 'ended' (restart) or 'ended-clean'."""
        resume = self._resume_point()
        plan = _LivePlan(self.source.input_args(start=resume), backend=self.backend or "cpu")
        stop = threading.Event()
        try:
            proc = FfmpegProcess(plan.args, stdin=subprocess.PIPE if self.source.has_feeder else subprocess.DEVNULL,
                                 name="scene-ffmpeg")
        except Exception:
            plan.cleanup()
            raise
        ring = _FullResRing(plan.full_res_pipe(proc, stop), stop)
        run = _Run(number, proc, plan, ring, stop)
        self._run = run
        if self._stop.is_set():  # stop() raced with the start of this run
            proc.stop()
        log.info("run %d: ffmpeg pid %d on %s%s", number, proc.pid, self.source.name,
                 f" (resuming at {resume:.3f} s)" if resume else "")
        ring.thread.start()
        monitor = threading.Thread(target=self._monitor, args=(run,), name="scene-monitor", daemon=True)
        monitor.start()
        if self.source.has_feeder:
            run.feeder = threading.Thread(target=self._feed, args=(run,), name="scene-feeder", daemon=True)
            run.feeder.start()
        if not isinstance(self.source, SocketSource):
            self._set_state("running" if number == 0 else "starting")
        try:
            self._process_frames(run)
        finally:
            stop.set()
            proc.stop(timeout=2.0)
            if run.feeder is not None:
                run.feeder.join(timeout=2.0)
            ring.thread.join(timeout=2.0)
            monitor.join(timeout=2.0)
            ring.pipe.close()
            self._flush_scores(force=True)
            plan.cleanup()
        log.info("run %d ended: %d frames, ffmpeg exit code %s", number, run.frames, proc.returncode)
        return self._judge_run(run)

    def _feed(self, run: _Run) -> None:
        sink = run.proc.stdin
        assert sink is not None

        def on_state(state: str, message: str | None) -> None:
            if state == "connected":
                if run.first_bytes_at is None:
                    run.first_bytes_at = time.monotonic()
                self._set_state("running")
            elif state in ("connecting", "reconnecting"):
                self._set_state(state if state == "reconnecting" else "starting")
                if message and state == "reconnecting":
                    with self._lock:
                        self._last_error = message

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
        while not run.stop.wait(0.5):
            lines = [ln for ln in run.proc.stderr_tail(50).splitlines() if ln.strip()]
            new = _new_lines(seen, lines)
            seen = lines
            for line in new[-3:]:
                self._error(f"ffmpeg: {line.strip()}", level=logging.WARNING)
            now = time.monotonic()
            received = getattr(self.source, "bytes_received", 0)
            if run.frames != last_frames:
                last_frames, last_progress, bytes_at_progress = run.frames, now, received
                if reported_garbage:
                    log.info("%s: video decodes again", self.source.name)
                reported_garbage = False
            elif (not reported_garbage and now - last_progress >= GARBAGE_AFTER
                  and received - bytes_at_progress >= 64 * 1024):
                reported_garbage = True
                self._error(f"{self.source.name}: received {(received - bytes_at_progress) / 1024:.0f} KiB in "
                            f"{now - last_progress:.0f} s but no video frame decodes from it (not H.264 Annex-B?)")

    def _judge_run(self, run: _Run) -> str:
        if self._stop.is_set():
            return "ended"
        rc = run.proc.returncode
        path = str(self.source.path) if isinstance(getattr(self.source, "path", None), Path) else None
        summary = _diagnose(run.proc, path) if rc not in (0, None) or run.frames == 0 else ""
        ring_error = run.ring.error
        finished_source = getattr(self.source, "finished", False)
        if rc == 0 and run.feeder_error is None and ring_error is None:
            if not self.source.live or finished_source:
                if run.frames == 0 and self._frames == 0:
                    self._error(f"{self.source.name}: no video frames could be decoded")
                    return "failed"
                return "finished"
            if run.frames == 0 and isinstance(self.source, SocketSource) and self.source.bytes_received:
                self._error(f"{self.source.name}: no decodable H.264 in the stream ({_diagnose(run.proc)})")
                return "ended"
            return "ended-clean"  # a live stream ended (server gone): restart
        if finished_source:
            return "finished"
        reason = summary or ring_error or f"ffmpeg exited with code {rc}"
        if rc is not None and rc < 0:
            reason = f"ffmpeg was killed (signal {-rc})" + (f": {reason}" if summary else "")
        if run.frames == 0 and self._frames == 0 and not self.source.live:
            self._error(f"{self.source.name}: {reason}")  # bad input: nothing to resume
            return "failed"
        self._error(f"{self.source.name}: run {run.number} ended after {run.frames} frames: {reason}")
        if not self.source.seekable and run.frames == 0 and not self.source.live:
            return "failed"
        return "ended"

    # ------------------------------------------------------------------ frames

    def _process_frames(self, run: _Run) -> None:
        self._scorer.reset()
        self._batch: dict[str, list[Any]] = collections.defaultdict(list)
        self._batch_started = 0.0
        live = self.source.live or self.source.realtime
        batch_age = 0.0 if live else 0.25
        first_pts: float | None = None
        t_first: float | None = None
        wall_origin: float | None = None
        for frame in run.plan.frames(run.proc, run.stop):
            if self._stop.is_set():
                break
            now = time.monotonic()
            pts = frame.pts  # a resumed file keeps its timestamps (see FileSource.input_args)
            if first_pts is None:
                first_pts = pts
                t_first = run.first_bytes_at or now
                wall_origin = self._wall_origin()
                self._start_run_timeline(run, pts)
                if not isinstance(self.source, SocketSource) or run.first_bytes_at is not None:
                    self._set_state("running")
            run.frames += 1
            ts = pts + self.ts_offset
            if self._last_ts is not None and ts <= self._last_ts:
                # timestamps must increase (tuning relies on it); a bad mapping is nudged forward
                step = 1.0 / self._fps if self._fps else 1e-3
                self.ts_offset += self._last_ts + step - ts
                log.warning("run %d: ts went backwards; shifted ts_offset to %.3f", run.number, self.ts_offset)
                ts = pts + self.ts_offset
            if self._last_pts is not None and run.frames > 1 and pts > self._last_pts:
                dt = pts - self._last_pts
                self._fps = 0.9 * self._fps + 0.1 / dt if self._fps else 1.0 / dt
            index = self._next_index
            if run.frames == 1 and self._last_ts is not None and self._fps:
                index += max(0, round((ts - self._last_ts) * self._fps) - 1)  # lost frames show as missing indices
            self._next_index = index + 1
            self._last_ts, self._last_pts = ts, pts
            values = self._scorer.score(frame)
            score = values.get(self.metric, math.nan)
            info = {"run": run.number, "seq": frame.seq, "segment": self.segment, "frame_index": index,
                    "pts": pts, "ts": ts, "score": score}
            self._recent.append(info)
            run.ring.advance(frame.seq)
            self._add_score_row(info, values)
            with self._decide_lock:
                capture = self._decider.decide(ts, score)
                threshold = self._threshold
            if capture:
                # pin the full-res frame now (a reference, no copy): the ring moves on with the decode
                full = run.ring.get(frame.seq)
                self._captures.put(_CaptureJob(frame.seq, {**info, "kind": "scene", "threshold": threshold}, full))
            self._frames += 1
            self._rate.append(now)
            if wall_origin is not None:  # a growing recording named by its start time: lag behind its live edge
                self._lag = max(0.0, time.time() - (wall_origin + pts))
            elif live and t_first is not None:  # a stream that arrives in real time
                self._lag = max(0.0, (now - t_first) - (pts - first_pts))  # type: ignore[operator]
            if len(self._batch["ts"]) >= 512 or now - self._batch_started >= batch_age:
                self._flush_scores()

    def _wall_origin(self) -> float | None:
        """Wall-clock time of pts 0 for a followed cht recording (its name is its start time)."""
        current = getattr(self.source, "current", None)
        if not isinstance(self.source, FollowSource) or current is None:
            return None
        start = layout.parse_start_time(Path(current).stem)
        return start.timestamp() if start is not None else None

    def _start_run_timeline(self, run: _Run, first_pts: float) -> None:
        """Place the run on the session timeline: the owner's callback, else a continuous clock."""
        if run.number > 0 and self.source.live and self._last_ts is not None:
            elapsed = time.monotonic() - self._t_last_frame if hasattr(self, "_t_last_frame") else 0.0
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
        b["score"].append(info["score"])
        for name in self._scorer.names:
            b[name].append(values.get(name, math.nan))
        self._t_last_frame = time.monotonic()

    def _flush_scores(self, force: bool = False) -> None:
        b = getattr(self, "_batch", None)
        if not b or not b["ts"]:
            return
        cols: dict[str, np.ndarray] = {
            "segment": np.asarray(b["segment"], np.int32),
            "frame_index": np.asarray(b["frame_index"], np.int64),
            "pts": np.asarray(b["pts"], np.float64),
            "ts": np.asarray(b["ts"], np.float64),
            "score": np.asarray(b["score"], np.float32),
        }
        for name in self._scorer.names:
            if name not in cols:
                cols[name] = np.asarray(b[name], np.float32)
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

    def _capture_loop(self) -> None:
        while True:
            job = self._captures.get()
            if job is None:
                if self._stop.is_set() or (self._worker is not None and not self._worker.is_alive()):
                    break
                continue
            if job.seq < 0:  # a barrier: everything before it is written
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
        # answer manual captures still waiting, so no caller hangs
        while True:
            try:
                job = self._captures.get_nowait()
            except queue.Empty:
                break
            if job is not None and job.done is not None:
                job.error = RuntimeError("the detector stopped before the capture was made")
                job.done.set()

    def _capture(self, job: _CaptureJob) -> dict[str, Any] | None:
        full = job.full
        if full is None:
            raise MediaError(self.source.name, "no full-resolution frame available to capture")
        data = encode_jpeg(full, self.jpeg_quality)
        frame_id = self.index.next_frame_id()
        rel = f"{layout.FRAMES_DIR}/{frame_id}.jpg"
        _write_atomic(self.session_dir / rel, data)
        info = job.info
        row = {
            "id": frame_id, "ts": float(info["ts"]), "pts": float(info["pts"]), "segment": int(info["segment"]),
            "frame_index": int(info["frame_index"]), "score": float(info["score"]), "metric": self.metric,
            "threshold": float(info.get("threshold", self._threshold)), "kind": info["kind"], "path": rel,
            "width": full.width, "height": full.height, "bytes": len(data),
            "captured_at": datetime.now(timezone.utc), "sent_to_agent": False,
        }
        self.index.append_frames([row])  # durable before anyone hears about it
        self._n_captures += 1
        log.info("captured %s at %.3f s (%s=%.3f, %s)", frame_id, row["ts"], self.metric, row["score"], row["kind"])
        for cb in list(self._frame_callbacks):
            try:
                cb([dict(row)])
            except Exception as exc:
                log.error("on_frames callback failed: %s", exc, exc_info=exc)
                self._error(f"on_frames callback failed: {type(exc).__name__}: {exc}", level=logging.DEBUG)
        return row


def _new_lines(before: list[str], now: list[str]) -> list[str]:
    """Lines of `now` (a bounded tail) that were not already in the tail `before`."""
    for k in range(min(len(before), len(now)), 0, -1):
        if before[-k:] == now[:k]:
            return now[k:]
    return now


_FRIENDLY = [  # most specific first: a truncated MP4 also says "Invalid data found" later
    (re.compile(r"moov atom not found", re.I), "truncated or unfinished MP4 (moov atom not found)"),
    (re.compile(r"Invalid data found|moov atom not found", re.I), "not a video ffmpeg can read (invalid data)"),
    (re.compile(r"matches no streams|does not contain any stream|no video|Stream specifier .* matches", re.I),
     "no video stream"),
    (re.compile(r"No such file", re.I), "no such file"),
    (re.compile(r"Permission denied", re.I), "permission denied"),
]


_MP4_BOXES = (b"ftyp", b"styp", b"moov", b"moof", b"mdat", b"free", b"skip", b"wide", b"pnot", b"sidx")


def _looks_like_mp4(path: str | None) -> bool:
    try:
        with open(path, "rb") as fh:  # type: ignore[arg-type]
            return fh.read(8)[4:8] in _MP4_BOXES
    except (OSError, TypeError):
        return True


def _diagnose(proc: FfmpegProcess, path: str | None = None) -> str:
    """Why ffmpeg failed, in words a user can act on, with ffmpeg's own line for reference."""
    lines = [ln.strip() for ln in proc.stderr_tail(40).splitlines() if ln.strip()]
    for pattern, text in _FRIENDLY:
        if text.startswith("truncated") and not _looks_like_mp4(path):
            continue  # ffmpeg says 'moov atom not found' for any junk named .mp4
        for line in lines:
            if pattern.search(line):
                return f"{text} (ffmpeg: {line if len(line) <= 120 else line[:117] + '...'})"
    return proc.error_summary()


__all__ = ["SceneDetector", "DetectorError", "encode_jpeg", "FULLRES_RING"]
