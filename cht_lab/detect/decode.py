"""One ffmpeg decode that produces the analysis data of every frame (and, live, full-res frames).

ffmpeg decodes once (CPU, or CUDA/NVDEC), scales to a small gray frame (ANALYSIS_WIDTH wide) and
computes its scene score on it with the `select` filter, so the "score" column is exactly what
`select='gt(scene,X)'` sees on the same analysis frames. Per frame we get:

- the gray pixels on stdout (rawvideo, gray, W x H bytes, read with readinto into a reused buffer);
- `frame:N pts:P` and `lavfi.scene_score=S` lines from the `metadata` filter, on a FIFO (a named
  pipe in a private temp dir: FfmpegProcess has no pass_fds, and ffmpeg opens the metadata file
  twice while it sets the graph up, which a reader that keeps the FIFO open survives);
- optionally (live capture) the same frame at full source resolution from the same decode, via
  `split`, as rawvideo **yuv420p, full range (JPEG levels), BT.601 matrix** - exactly what
  JPEG/JFIF stores, so capturing needs no colour conversion - on a FIFO or a caller's pipe fd.
  Frame k of that output is analysis frame k (same decode, same order, passthrough timing).

Timestamps go through `settb=1/1000000`, so `pts` is exact to the microsecond for any length of
recording (ffmpeg's `pts_time` is printed with only 6 significant digits).

Output sizes are fixed from the source size at start: if a screen share changes resolution
mid-stream, ffmpeg rescales to the original sizes and the readers never lose frame sync.

Speed (benchmarks/throughput.py, 2 CPUs): scoring runs at ~0.9x the speed of a bare decode
(`-f null`). What it takes: zimg's averaging downscale reading every other row from 1080p up,
decoder threads = CPUs on small machines, gray frames read with readinto into one buffer,
the gray frame read before its metadata (one wake-up per frame), and a scorer that compares
only the blocks that changed.

CUDA (`-hwaccel cuda -hwaccel_output_format cuda`, `scale_cuda` to twice the analysis size,
`hwdownload`, then the same CPU downscale) cannot be exercised on a machine without a GPU; it is
checked by tests/test_analysis.py::test_cuda_scores_agree_with_cpu (runs when cuda_usable()) and
`python benchmarks/throughput.py --backend cuda`.
"""

from __future__ import annotations

import logging
import math
import os
import re
import select
import shutil
import subprocess
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Callable, Iterator, Sequence

import numpy as np
import pandas as pd

from cht_lab.ffmpeg import FfmpegProcess, MediaError, cuda_usable, find_ffmpeg, probe

log = logging.getLogger(__name__)

ANALYSIS_WIDTH = 320
BACKENDS = ("auto", "cpu", "cuda")
SCALE_FLAGS = "area"  # averaging downscale: compression noise and sub-pixel text jitter average out
# "zscale": zimg's bilinear, which widens its kernel when shrinking (an averaging downscale like
# swscale's area) at about half the CPU cost; used when this ffmpeg has it, else swscale area.
SCALER = "auto"
DECODE_THREADS: int | None = None  # force ffmpeg's -threads for the decoder (None: decode_threads() decides)
TIME_BASE = 1_000_000  # settb=1/TIME_BASE: pts printed as integer microseconds
FULL_RES_PIX_FMT = "yuv420p"
_PIPE_SIZE = 1 << 20
_F_SETPIPE_SZ = 1031


class BackendError(RuntimeError):
    """The requested decode backend cannot be used here (e.g. 'cuda' without a usable GPU)."""


# --------------------------------------------------------------------------- backend


def choose_backend(backend: str = "auto") -> tuple[str, str]:
    """("cuda" | "cpu", reason). "auto" tries CUDA and falls back to CPU, saying why.

    "cuda" raises BackendError when CUDA is not usable (this ffmpeg lacks it, no GPU, no driver).
    """
    b = (backend or "auto").lower()
    if b not in BACKENDS:
        raise BackendError(f"unknown backend {backend!r}: use one of {', '.join(BACKENDS)}")
    if b == "cpu":
        return "cpu", "CPU decode requested"
    ok, reason = cuda_usable()
    if ok:
        return "cuda", f"CUDA decode ({reason})"
    if b == "cuda":
        raise BackendError(f"backend 'cuda' requested but CUDA is not usable: {reason}")
    return "cpu", f"CPU decode: CUDA not usable ({reason})"


# --------------------------------------------------------------------------- plan


def analysis_size(src_width: int, src_height: int, width: int = ANALYSIS_WIDTH) -> tuple[int, int]:
    """(width, height) of the analysis frames: `width` wide, the source's aspect, even height."""
    if src_width <= 0 or src_height <= 0:
        raise ValueError(f"bad source size {src_width}x{src_height}")
    h = max(2, int(round(width * src_height / src_width / 2.0)) * 2)
    return int(width), h


def yuv420p_frame_bytes(width: int, height: int) -> int:
    return width * height + 2 * ((width + 1) // 2) * ((height + 1) // 2)


@dataclass
class FullResOutput:
    """The full-resolution output of a plan: rawvideo yuv420p, full range, BT.601, `frame_bytes` per frame.

    Layout of one frame: Y (width*height), then U and V (each ceil(w/2)*ceil(h/2)), no padding.
    `target` is what ffmpeg writes to: a FIFO path (open it with open_fifo) or "pipe:N".
    """

    width: int
    height: int
    target: str
    pix_fmt: str = FULL_RES_PIX_FMT
    fd: int | None = None

    @property
    def frame_bytes(self) -> int:
        return yuv420p_frame_bytes(self.width, self.height)


@dataclass
class AnalysisPlan:
    """Arguments for FfmpegProcess and what its outputs look like.

    stdout: gray rawvideo, `width` x `height` bytes per frame. `meta_path`: FIFO with the
    metadata lines. `full_res`: see FullResOutput. `pass_fds`: fds the child must inherit
    (only when a caller gave full_res_fd; FfmpegProcess cannot pass fds, use Popen's pass_fds).
    Call cleanup() when done (removes the temp dir with the FIFOs).
    """

    args: list[str]
    backend: str
    width: int
    height: int
    src_width: int
    src_height: int
    meta_path: Path
    tmpdir: Path
    full_res: FullResOutput | None = None
    pass_fds: tuple[int, ...] = ()

    @property
    def frame_bytes(self) -> int:
        return self.width * self.height

    def cleanup(self) -> None:
        shutil.rmtree(self.tmpdir, ignore_errors=True)


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def decode_threads(src_width: int, src_height: int, cpus: int | None = None) -> int | None:
    """Decoder threads for the analysis decode: None (ffmpeg's default) unless CPUs are scarce.

    ffmpeg's default is one frame thread more than there are CPUs; on a 2-3 CPU machine that
    extra thread fights the downscale and the Python scorer, which need CPU time of their own.
    Measured on 2 CPUs (benchmarks/throughput.py, ratio to decode-only speed): 1080p 0.88-0.90x
    with 2 threads vs 0.85x with the default, 2160p 0.90x vs 0.88x. Source size does not change
    the choice; the arguments are there for callers that want to decide by it.
    """
    cpus = cpus or _cpus()
    if cpus >= 4:
        return None
    return max(1, cpus)


def _ffmpeg_lib() -> Any:
    import ffmpeg as ffmpeg_lib  # ffmpeg-python (our own module is cht_lab.ffmpeg)

    return ffmpeg_lib


def build_analysis_args(input_args: Sequence[str] | str | os.PathLike[str], *, backend: str, src_width: int,
                        src_height: int, full_res_fd: int | None = None, full_res: bool = False,
                        width: int = ANALYSIS_WIDTH, scale_flags: str | None = None, loglevel: str = "error",
                        tmpdir: str | os.PathLike[str] | None = None) -> AnalysisPlan:
    """The ffmpeg command of one analysis decode (built with ffmpeg-python), see the module docstring.

    input_args: a path, or ffmpeg input options ending with "-i <url>" (e.g. ["-f", "h264",
    "-i", "pipe:0"]); backend: "cpu" or "cuda" (resolve "auto" with choose_backend first);
    full_res / full_res_fd: add the full-resolution output, to a FIFO in the plan's temp dir, or
    to an inherited pipe fd ("pipe:N", listed in plan.pass_fds).
    """
    if backend not in ("cpu", "cuda"):
        raise BackendError(f"build_analysis_args needs backend 'cpu' or 'cuda', not {backend!r} "
                           "(resolve 'auto' with choose_backend())")
    if isinstance(input_args, (str, os.PathLike)):
        in_args = ["-i", os.fspath(input_args)]
    else:
        in_args = [str(a) for a in input_args]
        if "-i" not in in_args:
            raise ValueError(f"input_args must contain '-i <url>': {in_args}")
    src_width, src_height = int(src_width), int(src_height)
    scale_flags = scale_flags or SCALE_FLAGS
    aw, ah = analysis_size(src_width, src_height, width)
    tmp = Path(tempfile.mkdtemp(prefix="cht_lab-ana-", dir=tmpdir))
    meta = tmp / "meta"
    os.mkfifo(meta, 0o600)

    fl = _ffmpeg_lib()
    placeholder = "__CHT_LAB_INPUT__"
    video = fl.input(placeholder).video
    want_full = full_res or full_res_fd is not None
    if want_full:
        parts = video.split()
        video, full = parts[0], parts[1]
    if backend == "cuda":
        # NVDEC frames stay on the GPU; scale there to twice the analysis size (bilinear), then an
        # area downscale on the CPU matches the CPU backend's averaging closely (same thresholds)
        video = (video.filter("scale_cuda", 2 * aw, 2 * ah, interp_algo="bilinear", format="nv12")
                 .filter("hwdownload").filter("format", "nv12"))
    analysis = (_downscale(video, aw, ah, scale_flags, cuda=backend == "cuda", src_height=src_height)
                .filter("format", "gray")
                .filter("settb", f"1/{TIME_BASE}")
                .filter("select", "1+scene")  # every frame passes; "scene" makes select compute the score
                .filter("metadata", mode="print", file=str(meta), direct=1))  # direct: unbuffered lines
    outputs = [fl.output(analysis, "pipe:", format="rawvideo", fps_mode="passthrough")]
    full_out: FullResOutput | None = None
    pass_fds: tuple[int, ...] = ()
    if want_full:
        if backend == "cuda":
            full = full.filter("hwdownload").filter("format", "nv12")
        full = (full.filter("scale", src_width, src_height, out_range="full", out_color_matrix="bt601",
                            flags="bicubic")
                .filter("format", FULL_RES_PIX_FMT))
        if full_res_fd is not None:
            target = f"pipe:{int(full_res_fd)}"
            pass_fds = (int(full_res_fd),)
        else:
            target = str(tmp / "full")
            os.mkfifo(target, 0o600)
        full_out = FullResOutput(src_width, src_height, target, fd=full_res_fd)
        outputs.append(fl.output(full, target, format="rawvideo", fps_mode="passthrough"))
    compiled = fl.merge_outputs(*outputs).compile(cmd=find_ffmpeg())
    i = compiled.index(placeholder)
    hw = ["-hwaccel", "cuda", "-hwaccel_output_format", "cuda"] if backend == "cuda" else []
    threads = DECODE_THREADS or decode_threads(src_width, src_height)
    if threads:
        hw += ["-threads", str(threads)]
    args = [compiled[0], "-hide_banner", "-nostdin", "-loglevel", loglevel, "-y", *hw, *in_args,
            *compiled[i + 1:]]
    return AnalysisPlan(args, backend, aw, ah, src_width, src_height, meta, tmp, full_out, pass_fds)


def _use_zscale() -> bool:
    if SCALER == "zscale":
        return True
    if SCALER != "auto":
        return False
    from cht_lab.ffmpeg import ffmpeg_info

    return "zscale" in ffmpeg_info().filters


FIELD_FROM = 6  # sources at least this many times the analysis height: scale from every other row


def _downscale(stream: Any, width: int, height: int, flags: str, *, cuda: bool, src_height: int = 0) -> Any:
    """Averaging downscale to the analysis size (zimg when available, else swscale `flags`).

    From 1080p up, reading every source row is the biggest cost after decoding, so the scaler
    reads every other row (`field=top` only moves pointers: no copy) and still averages 3+ rows per
    output row. The bundled samples detect identically; 2160p scoring goes from 0.81x to 0.89x of
    decode-only speed on 2 cores.
    """
    if not cuda and src_height >= FIELD_FROM * height:
        stream = stream.filter("field", "top")
    if _use_zscale():
        return stream.filter("zscale", w=width, h=height, filter="bilinear")
    return stream.filter("scale", width, height, flags=flags)


# --------------------------------------------------------------------------- pipes


def open_fifo(path: str | os.PathLike[str], pipe_size: int = _PIPE_SIZE) -> int:
    """Open a FIFO for reading without ever blocking: read-write and non-blocking.

    Holding a write end too means ffmpeg's open never blocks and its close-and-reopen during
    setup is harmless; the flip side is that EOF never comes, so readers stop when ffmpeg exits.
    """
    fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
    _grow_pipe(fd, pipe_size)
    return fd


def _grow_pipe(fd: int, size: int) -> None:
    try:
        import fcntl

        fcntl.fcntl(fd, _F_SETPIPE_SZ, size)  # fewer wake-ups per frame
    except (OSError, ImportError, ValueError):
        pass


class _FifoReader:
    """Buffered reader on a non-blocking FIFO fd that ends when `alive()` turns false and it is drained."""

    def __init__(self, fd: int, alive: Callable[[], bool], stop: threading.Event | None = None):
        self.fd = fd
        self._alive = alive
        self._stop = stop
        self.buf = bytearray()

    def _more(self) -> bool:
        try:  # usually the data is already there: no select() round trip
            data = os.read(self.fd, 1 << 16)
            if data:
                self.buf += data
                return True
        except BlockingIOError:
            pass
        while True:
            if self._stop is not None and self._stop.is_set():
                return False
            r, _, _ = select.select([self.fd], [], [], 0.1)
            if r:
                try:
                    data = os.read(self.fd, 1 << 16)
                except BlockingIOError:
                    continue
                if data:
                    self.buf += data
                    return True
                return False
            if not self._alive():
                try:
                    data = os.read(self.fd, 1 << 16)  # ffmpeg is gone: take what it left
                except BlockingIOError:
                    return False
                if not data:
                    return False
                self.buf += data
                return True

    def readline(self, limit: int = 1 << 16) -> bytes | None:
        start = 0
        while True:
            i = self.buf.find(b"\n", start)
            if i >= 0:
                line = bytes(self.buf[: i + 1])
                del self.buf[: i + 1]
                return line
            start = len(self.buf)
            if start > limit:
                raise MediaError("ffmpeg", "garbled analysis metadata (line too long)")
            if not self._more():
                return None

    def readinto(self, view: memoryview) -> bool:
        """Fill `view` completely; False at the end of the stream."""
        n = len(view)
        got = 0
        while got < n:
            if self.buf:
                k = min(n - got, len(self.buf))
                view[got:got + k] = self.buf[:k]
                del self.buf[:k]
                got += k
                continue
            if self._stop is not None and self._stop.is_set():
                return False
            r, _, _ = select.select([self.fd], [], [], 0.1)
            if not r:
                if not self._alive():
                    try:
                        k = os.readv(self.fd, [view[got:]])
                    except BlockingIOError:
                        return False
                    if not k:
                        return False
                    got += k
                continue
            try:
                k = os.readv(self.fd, [view[got:]])
            except BlockingIOError:
                continue
            if not k:
                return False
            got += k
        return True


def _read_full(stream: IO[bytes], view: memoryview) -> bool:
    """readinto until `view` is full; False at EOF (a partial frame is dropped)."""
    got = 0
    n = len(view)
    while got < n:
        k = stream.readinto(view[got:])  # type: ignore[attr-defined]
        if not k:
            return False
        got += k
    return True


# --------------------------------------------------------------------------- reader


@dataclass
class FrameAnalysis:
    """Analysis data of one decoded frame. `gray` may be a reused buffer (see AnalysisReader)."""

    frame_index: int  # 0-based decode order within this run; the n of select='eq(n,N)'
    pts: float  # seconds (exact to the microsecond); NaN when the frame had no timestamp
    gray: np.ndarray  # uint8, height x width
    scene: float  # ffmpeg's scene score for this frame (0 for the first frame)


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
            _grow_pipe(self.process.stdout.fileno(), _PIPE_SIZE)
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
        meta = _FifoReader(self._meta_fd, proc.running, self._stop)
        stdout = proc.stdout
        assert stdout is not None
        buf = np.empty((plan.height, plan.width), np.uint8)
        view = memoryview(buf).cast("B")
        tb = float(TIME_BASE)
        index = 0
        ended = False
        try:
            while not self._stop.is_set():
                # the gray frame first: by the time it is out, ffmpeg has already printed its metadata
                # (the metadata filter runs before the frame leaves the graph), so reading the
                # metadata then costs no extra wait - one wake-up per frame instead of three
                if not self.reuse:
                    buf = np.empty((plan.height, plan.width), np.uint8)
                    view = memoryview(buf).cast("B")
                if not _read_full(stdout, view):
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
                yield FrameAnalysis(index, pts, buf, scene)
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
            reason = diagnose(proc, self.path)
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
        reader = _FifoReader(self._full_fd, self.process.running, self._stop)
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


_FRIENDLY = [  # most specific first
    (re.compile(r"moov atom not found", re.I), "truncated or unfinished MP4 (moov atom not found)"),
    (re.compile(r"Invalid data found", re.I), "not a video ffmpeg can read (invalid data)"),
    (re.compile(r"matches no streams|does not contain any stream|Output file .* does not contain", re.I),
     "no video stream"),
    (re.compile(r"No such file", re.I), "no such file"),
    (re.compile(r"Permission denied", re.I), "permission denied"),
]


def diagnose(proc: FfmpegProcess, path: str | None = None) -> str:
    """Why ffmpeg failed, in words a user can act on, with ffmpeg's own line for reference."""
    lines = [ln.strip() for ln in proc.stderr_tail(60).splitlines() if ln.strip()]
    for pattern, text in _FRIENDLY:
        for line in lines:
            if pattern.search(line):
                return f"{text} (ffmpeg: {line if len(line) <= 160 else line[:157] + '...'})"
    return proc.error_summary()


# --------------------------------------------------------------------------- offline scoring

_MP4_BOXES = (b"ftyp", b"styp", b"moov", b"moof", b"mdat", b"free", b"skip", b"wide", b"sidx")


@dataclass(frozen=True)
class VideoHeader:
    """What the container header says about the first video stream (no packet scan)."""

    width: int
    height: int
    fps: float | None
    duration: float | None

    @property
    def frames_estimate(self) -> int | None:
        if self.fps and self.duration:
            return int(round(self.fps * self.duration))
        return None


_HDR_VIDEO = re.compile(r"Stream #\d+:\d+.*?: Video: .*?(?<![\dx])(\d{2,5})x(\d{2,5})(?![\dx])")
_HDR_FPS = re.compile(r"Stream #\d+:\d+.*?: Video: .*?, ([\d.]+) (?:fps|tbr)")
_HDR_DURATION = re.compile(r"Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)")


def video_header(path: str | os.PathLike[str], timeout: float = 20.0) -> VideoHeader:
    """Size (and fps / duration when known) of a recording's video from its header.

    Cheap: ffmpeg reads the header only (~20 ms), where probe() scans every packet (seconds for an
    hour of video). Anything unusual (no video, unreadable, truncated) goes to probe_video() for
    the precise MediaError.
    """
    p = Path(path)
    if p.is_file() and p.stat().st_size > 0:
        try:
            res = subprocess.run([find_ffmpeg(), "-hide_banner", "-nostdin", "-i", str(p)], capture_output=True,
                                 timeout=timeout, stdin=subprocess.DEVNULL)
            err = res.stderr.decode("utf-8", "replace")
        except subprocess.TimeoutExpired:
            err = ""
        m = _HDR_VIDEO.search(err)
        if m and "Invalid data found" not in err and "moov atom not found" not in err:
            fps_m = _HDR_FPS.search(err)
            dur_m = _HDR_DURATION.search(err)
            duration = None
            if dur_m:
                duration = int(dur_m.group(1)) * 3600 + int(dur_m.group(2)) * 60 + float(dur_m.group(3))
            return VideoHeader(int(m.group(1)), int(m.group(2)), float(fps_m.group(1)) if fps_m else None,
                               duration or None)
    v = probe_video(p).video
    return VideoHeader(v.width, v.height, v.fps or None, v.duration or None)


def probe_video(path: str | os.PathLike[str]) -> Any:
    """probe() that insists on a usable video stream; MediaError(path, reason) otherwise."""
    p = Path(path)
    try:
        info = probe(p)
    except MediaError as exc:
        if "invalid data" in exc.reason and _starts_like_mp4(p):
            raise MediaError(p, "truncated or unfinished MP4 (no moov atom: the recorder did not finish "
                                "writing it; a fragmented MP4 would still be readable)") from exc
        raise
    if info.video is None:
        raise MediaError(p, "no video stream (audio only)" if info.audio is not None else "no video stream")
    if info.video.width <= 0 or info.video.height <= 0:
        raise MediaError(p, f"video stream has no usable size ({info.video.width}x{info.video.height})")
    return info


def _starts_like_mp4(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(8)[4:8] in _MP4_BOXES
    except OSError:
        return False



def score_recording(path: str | os.PathLike[str], *, backend: str = "auto", segment: int = 0,
                    ts_offset: float = 0.0, progress: bool = False, scorer_params: dict[str, Any] | None = None,
                    ) -> pd.DataFrame:
    """Decode a recording once and score every frame.

    Returns columns segment(int32) frame_index(int64) pts(f64) ts(f64) score(f32: ffmpeg's
    scene score) and one float32 column per Python metric (scoring.PYTHON_METRICS); `ts = pts +
    ts_offset`. `df.attrs` holds backend, backend_reason, path, width/height (source), fps and
    error (set when decoding stopped early; a truncated fMP4 simply ends at its last complete
    fragment).
    Raises MediaError naming the file for missing / unreadable / video-less input.
    """
    from cht_lab.detect.scoring import PYTHON_METRICS, FrameScorer

    p = Path(path)
    v = video_header(p)
    used, reason = choose_backend(backend)
    fps = v.fps if v.fps and v.fps > 0 else 30.0
    plan = build_analysis_args(str(p), backend=used, src_width=v.width, src_height=v.height)
    scorer = FrameScorer(plan.width, plan.height, fps=fps, **(scorer_params or {}))
    expected = v.frames_estimate
    n_hint = max(int((expected or 0) * 1.05) + 16, 1024)
    cols_pts = np.empty(n_hint, np.float64)
    cols_scene = np.empty(n_hint, np.float32)
    metrics = {m: np.empty(n_hint, np.float32) for m in PYTHON_METRICS}
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=expected, desc=p.name, unit="frame", leave=False)
    n = 0
    reader = AnalysisReader(plan, path=p, reuse=True, name="score")
    try:
        for fa in reader:
            if n == len(cols_pts):  # more frames than the header promised: grow
                cols_pts = np.resize(cols_pts, 2 * n)
                cols_scene = np.resize(cols_scene, 2 * n)
                metrics = {m: np.resize(a, 2 * n) for m, a in metrics.items()}
            pts = fa.pts if math.isfinite(fa.pts) else (cols_pts[n - 1] + 1.0 / fps if n else 0.0)
            row = scorer.update(fa.gray, pts)
            cols_pts[n] = pts
            cols_scene[n] = fa.scene
            for m in PYTHON_METRICS:
                metrics[m][n] = row[m]
            n += 1
            if bar is not None and n % 64 == 0:
                bar.update(64)
    finally:
        reader.close()
        if bar is not None:
            bar.update(n % 64)
            bar.close()
    df = pd.DataFrame({
        "segment": np.full(n, segment, np.int32),
        "frame_index": np.arange(n, dtype=np.int64),
        "pts": cols_pts[:n],
        "ts": cols_pts[:n] + float(ts_offset),
        "score": cols_scene[:n],
        **{m: a[:n] for m, a in metrics.items()},
    })
    df.attrs.update(backend=used, backend_reason=reason, path=str(p), width=v.width, height=v.height, fps=fps,
                    error=reader.error)
    return df


__all__ = ["ANALYSIS_WIDTH", "BACKENDS", "AnalysisPlan", "AnalysisReader", "BackendError", "FrameAnalysis",
           "FullFrame", "FullResOutput", "analysis_size", "build_analysis_args", "choose_backend", "diagnose",
           "VideoHeader", "decode_threads", "open_fifo", "probe_video", "score_recording", "video_header"]
