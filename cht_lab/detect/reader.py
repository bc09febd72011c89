"""Reading one analysis decode: gray frames on stdout, metadata and full-res frames on FIFOs.

`AnalysisReader` runs an `AnalysisPlan` (cht_lab.detect.decode) and iterates `FrameAnalysis`
items; a reader thread keeps a small ring of full-resolution frames for captures.
"""

from __future__ import annotations

import logging
import math
import os
import re
import subprocess
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import IO, Any, Iterator, Sequence

import numpy as np

from cht_lab.detect.decode import TIME_BASE, AnalysisPlan, BackendError
from cht_lab.detect.fifo import PIPE_SIZE, FifoReader, open_fifo, read_full
from cht_lab.ffmpeg import FfmpegProcess, MediaError, diagnose, grow_pipe

log = logging.getLogger(__name__)


@dataclass
class FrameAnalysis:
    """Analysis data of one decoded frame. `gray` (and u, v) may be a reused buffer (see AnalysisReader)."""

    frame_index: int  # 0-based decode order within this run; the n of select='eq(n,N)'
    pts: float  # seconds (exact to the microsecond); NaN when the frame had no timestamp
    gray: np.ndarray  # uint8, height x width: the luma plane
    scene: float  # ffmpeg's scene score for this frame (0 for the first frame)
    u: np.ndarray | None = None  # uint8, ceil(height/2) x ceil(width/2) chroma planes (None: gray analysis)
    v: np.ndarray | None = None

    @property
    def chroma(self) -> tuple[np.ndarray, np.ndarray] | None:
        return None if self.u is None or self.v is None else (self.u, self.v)


def _planes(buf: np.ndarray, width: int, height: int, pix_fmt: str) -> tuple[np.ndarray, np.ndarray | None,
                                                                               np.ndarray | None]:
    """Views of one analysis frame's planes in its buffer: (Y, U, V), U/V None for gray."""
    n = width * height
    y = buf[:n].reshape(height, width)
    if pix_fmt == "gray":
        return y, None, None
    cw, ch = (width + 1) // 2, (height + 1) // 2
    return y, buf[n: n + cw * ch].reshape(ch, cw), buf[n + cw * ch: n + 2 * cw * ch].reshape(ch, cw)


@dataclass
class FullFrame:
    """One full-resolution frame: yuv420p full range BT.601 (see FullResOutput)."""

    frame_index: int
    width: int
    height: int
    data: bytes

    def planes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        w, h = self.width, self.height
        cw, ch = (w + 1) // 2, (h + 1) // 2
        buf = np.frombuffer(self.data, np.uint8)
        return (buf[: w * h].reshape(h, w), buf[w * h: w * h + cw * ch].reshape(ch, cw),
                buf[w * h + cw * ch:].reshape(ch, cw))

    def to_image(self) -> Any:
        """A PIL YCbCr image at full resolution (save as JPEG without colour conversion)."""
        from PIL import Image

        y, u, v = self.planes()
        size = (self.width, self.height)
        return Image.merge("YCbCr", (Image.fromarray(y),
                                     Image.fromarray(u).resize(size, Image.Resampling.BILINEAR),
                                     Image.fromarray(v).resize(size, Image.Resampling.BILINEAR)))


_META_FRAME = re.compile(rb"frame:\s*(\d+)\s+pts:\s*(\S+)")


class AnalysisReader:
    """Runs one analysis plan and iterates its frames: `for fa in reader: ...` -> FrameAnalysis.

    reuse=True hands out the same gray buffer every frame (no per-frame allocation: copy what you
    keep); reuse=False gives each frame its own array. With a full-res output, a reader thread keeps
    the last `ring` full-res frames; `full_frame(i)` returns frame i while it is kept (the decode is
    held back so it never runs more than `ring` frames ahead of the analysis iteration).

    Errors: if ffmpeg fails before the first frame, iteration raises MediaError(path, reason);
    a failure later ends the iteration and sets `error` (the frames so far are good).
    """

    def __init__(self, plan: AnalysisPlan, *, path: str | os.PathLike[str] | None = None,
                 stdin: int | IO[Any] | None = subprocess.DEVNULL, reuse: bool = False, ring: int = 4,
                 name: str = "analysis"):
        self.plan = plan
        self.path = str(path) if path is not None else _input_name(plan.args)
        self.reuse = reuse
        self.ring_size = max(2, int(ring))
        self.frames_read = 0
        self.error: str | None = None
        self._stop = threading.Event()
        # the FIFO fds are closed only once no thread reads them (a reused fd number must never be
        # read by a reader that has not noticed the close): see _use_fds / _close_fds
        self._fd_lock = threading.Lock()
        self._fd_users = 0
        self._fds_closing = False
        if plan.pass_fds:
            raise BackendError("AnalysisReader runs ffmpeg through FfmpegProcess, which cannot pass fds: "
                               "build the plan with full_res=True (a FIFO) instead of full_res_fd")
        self._meta_fd: int | None = open_fifo(plan.meta_path, 1 << 16)
        self._full_fd: int | None = None
        if plan.full_res is not None:
            self._full_fd = open_fifo(plan.full_res.target, 1 << 22)
        try:
            self.process = FfmpegProcess(plan.args, stdin=stdin, name=name)
        except Exception:
            self._close_fds()
            raise
        if self.process.stdout is not None:
            grow_pipe(self.process.stdout, PIPE_SIZE)
        self._cond = threading.Condition()
        self._full: deque[FullFrame] = deque(maxlen=self.ring_size)
        self._analysis_at = -1
        self._full_ended = False
        self._full_thread: threading.Thread | None = None
        if self._full_fd is not None:
            self._full_thread = threading.Thread(target=self._read_full_res, name=f"{name}-fullres", daemon=True)
            self._use_fds(+1)  # counted before it starts: a close() meanwhile must leave its fd open
            self._full_thread.start()

    # ------------------------------------------------------------------ iteration

    def __iter__(self) -> Iterator[FrameAnalysis]:
        self._use_fds(+1)
        try:
            yield from self._frames()
        finally:
            self._use_fds(-1)

    def _frames(self) -> Iterator[FrameAnalysis]:
        plan = self.plan
        proc = self.process
        meta = FifoReader(self._meta_fd, proc.running, self._stop)
        stdout = proc.stdout
        assert stdout is not None
        buf = np.empty(plan.frame_bytes, np.uint8)
        view = memoryview(buf).cast("B")
        planes = _planes(buf, plan.width, plan.height, plan.pix_fmt)
        tb = float(TIME_BASE)
        index = 0
        ended = False
        try:
            while not self._stop.is_set():
                # the gray frame first: by the time it is out, ffmpeg has already printed its metadata
                # (the metadata filter runs before the frame leaves the graph), so reading the
                # metadata then costs no extra wait - one wake-up per frame instead of three
                if not self.reuse:
                    buf = np.empty(plan.frame_bytes, np.uint8)
                    view = memoryview(buf).cast("B")
                    planes = _planes(buf, plan.width, plan.height, plan.pix_fmt)
                if not read_full(stdout, view):
                    break
                pts, scene = math.nan, None
                while scene is None:
                    line = meta.readline()
                    if line is None:
                        break
                    if line.startswith(b"frame:"):
                        m = _META_FRAME.match(line)
                        try:
                            pts = int(m.group(2)) / tb if m else math.nan
                        except ValueError:  # NOPTS
                            pts = math.nan
                    elif line.startswith(b"lavfi.scene_score="):
                        try:
                            scene = float(line[18:])
                        except ValueError:
                            scene = math.nan
                if scene is None:
                    break
                self.frames_read = index + 1
                self._advance(index)
                yield FrameAnalysis(index, pts, planes[0], scene, planes[1], planes[2])
                index += 1
            ended = True
        finally:
            if not ended:  # the consumer stopped early (or an error): stop ffmpeg now
                self.close()
        self._finish()

    def _finish(self) -> None:
        proc = self.process
        if not self._stop.is_set():
            try:
                proc.wait(timeout=10.0)
            except subprocess.TimeoutExpired:
                log.warning("%s: ffmpeg still running after its output ended; stopping it", self.path)
        rc = proc.stop(timeout=2.0, drain=self._fifo_fds())
        self._stop.set()
        if self._full_thread is not None:
            self._full_thread.join(timeout=2.0)
        self._close_fds()
        if rc not in (0, None) and not self._stopped_by_us:
            reason = diagnose(proc)
            if self.frames_read == 0:
                self.error = reason
                raise MediaError(self.path, reason)
            self.error = f"decoding stopped after {self.frames_read} frames: {reason}"
            log.warning("%s: %s", self.path, self.error)
        elif self.frames_read == 0 and not self._stopped_by_us:
            self.error = "no video frames could be decoded"
            raise MediaError(self.path, self.error)

    _stopped_by_us = False

    def close(self) -> None:
        """Stop ffmpeg (reaped) and release the pipes. Safe to call more than once, from any thread.

        Order matters: our readers stop first, so ffmpeg may be blocked writing an output; stop()
        drains stdout and the FIFOs until it has exited (else SIGTERM waits out its timeout and
        ffmpeg is killed); the FIFOs are closed once no reader thread uses them any more.
        """
        self._stopped_by_us = True
        self._stop.set()
        self.process.stop(timeout=2.0, drain=self._fifo_fds())
        if self._full_thread is not None:
            self._full_thread.join(timeout=2.0)
        self._close_fds()

    def _fifo_fds(self) -> list[int]:
        with self._fd_lock:
            return [fd for fd in (self._meta_fd, self._full_fd) if fd is not None]

    def _use_fds(self, delta: int) -> None:
        """A reader thread starts (+1) or stops (-1) using the FIFO fds; the last one out closes them if asked."""
        with self._fd_lock:
            self._fd_users += delta
            release = delta < 0 and self._fd_users == 0 and self._fds_closing
        if release:
            self._close_fds()

    def _close_fds(self) -> None:
        with self._fd_lock:
            self._fds_closing = True
            if self._fd_users > 0:
                return  # a reader is still inside: it closes them on its way out
            fds = [fd for fd in (self._meta_fd, self._full_fd) if fd is not None]
            self._meta_fd = self._full_fd = None
        for fd in fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self.plan.cleanup()

    def __enter__(self) -> "AnalysisReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ full resolution

    def _advance(self, index: int) -> None:
        if self._full_thread is None:
            return
        with self._cond:
            self._analysis_at = index
            self._cond.notify_all()

    def _read_full_res(self) -> None:
        try:
            self._read_full_res_frames()
        finally:
            self._use_fds(-1)

    def _read_full_res_frames(self) -> None:
        full = self.plan.full_res
        assert full is not None and self._full_fd is not None
        reader = FifoReader(self._full_fd, self.process.running, self._stop)
        n = full.frame_bytes
        index = 0
        try:
            while not self._stop.is_set():
                with self._cond:
                    while index - self._analysis_at >= self.ring_size and not self._stop.is_set():
                        self._cond.wait(0.1)
                data = bytearray(n)
                if not reader.readinto(memoryview(data)):
                    return
                with self._cond:
                    self._full.append(FullFrame(index, full.width, full.height, bytes(data)))
                    self._cond.notify_all()
                index += 1
        except Exception as exc:  # never die silently
            self.error = f"full-resolution reader failed: {type(exc).__name__}: {exc}"
            log.error("%s: %s", self.path, self.error)
        finally:
            with self._cond:
                self._full_ended = True
                self._cond.notify_all()

    def full_frame(self, frame_index: int, timeout: float = 5.0) -> FullFrame | None:
        """Full-res frame `frame_index` if still kept (waits for it to arrive), else None."""
        if self._full_thread is None:
            raise BackendError("this plan has no full-resolution output (build it with full_res=True)")
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for f in self._full:
                    if f.frame_index == frame_index:
                        return f
                newest = self._full[-1].frame_index if self._full else -1
                if newest > frame_index or self._full_ended or time.monotonic() >= deadline:
                    return None
                self._cond.wait(0.05)


def _input_name(args: Sequence[str]) -> str:
    args = list(args)
    for i, a in enumerate(args[:-1]):
        if a == "-i":
            return args[i + 1]
    return "ffmpeg"
