"""One ffmpeg decode that produces the analysis data of every frame (and, live, full-res frames).

ffmpeg decodes once (CPU, or CUDA/NVDEC), scales to a small frame (ANALYSIS_WIDTH wide) and
computes its scene score on it with the `select` filter, so the "score" column is exactly what
`select='gt(scene,X)'` sees on the same analysis frames. Per frame we get:

- the small frame on stdout (rawvideo yuv420p: W x H luma bytes, then the two W/2 x H/2 chroma
  planes, so a colour-only change is visible to the scorer; ANALYSIS_PIX_FMT "gray" gives luma
  only; read with readinto into a reused buffer);
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

What keeps it cheap: swscale's averaging (area) downscale reading every other row from 1080p up,
decoder threads = CPUs on small machines, analysis frames read with readinto into one buffer, the
frame read before its metadata (one wake-up per frame).

CUDA (`-hwaccel cuda -hwaccel_output_format cuda`, `scale_cuda` to twice the analysis size,
`hwdownload`, then the same CPU downscale) cannot be exercised on a machine without a GPU; it is
checked by tests/test_analysis.py (the CUDA test) (runs when cuda_usable()) and
`python benchmarks/throughput.py --backend cuda`.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from cht_lab.ffmpeg import cuda_usable, find_ffmpeg

log = logging.getLogger(__name__)

ANALYSIS_WIDTH = 320
BACKENDS = ("auto", "cpu", "cuda")
SCALE_FLAGS = "area"  # averaging downscale: compression noise and sub-pixel text jitter average out
# "swscale": swscale with SCALE_FLAGS. "zscale": zimg's bilinear, which widens its kernel when
# shrinking (also an averaging downscale); once cheaper on gray frames, it costs more than swscale's
# area on the yuv420p analysis frames (benchmarks/throughput.py). "auto": zscale when available.
SCALER = "swscale"
DECODE_THREADS: int | None = None  # force ffmpeg's -threads for the decoder (None: decode_threads() decides)
TIME_BASE = 1_000_000  # settb=1/TIME_BASE: pts printed as integer microseconds
FULL_RES_PIX_FMT = "yuv420p"
ANALYSIS_PIX_FMT = "yuv420p"  # the analysis frames: luma + chroma at half size ("gray": luma only)


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
    return "cpu", f"CPU decode ({reason})"


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

    stdout: rawvideo `pix_fmt` (yuv420p: Y `width` x `height`, then U and V at half size; gray: Y
    only), `frame_bytes` per frame. `meta_path`: FIFO with the
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
    pix_fmt: str = ANALYSIS_PIX_FMT

    @property
    def frame_bytes(self) -> int:
        if self.pix_fmt == "gray":
            return self.width * self.height
        return yuv420p_frame_bytes(self.width, self.height)

    def cleanup(self) -> None:
        shutil.rmtree(self.tmpdir, ignore_errors=True)


def usable_cpus() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def decode_threads(src_width: int, src_height: int, cpus: int | None = None) -> int | None:
    """Decoder threads for the analysis decode: None (ffmpeg's default) unless CPUs are scarce.

    ffmpeg's default is one frame thread more than there are CPUs; on a 2-3 CPU machine that
    extra thread fights the downscale and the Python scorer, which need CPU time of their own
    (benchmarks/throughput.py measures it). Source size does not change the choice; the
    arguments are there for callers that want to decide by it.
    """
    cpus = cpus or usable_cpus()
    if cpus >= 4:
        return None
    return max(1, cpus)


def _ffmpeg_lib() -> Any:
    import ffmpeg as ffmpeg_lib  # ffmpeg-python (our own module is cht_lab.ffmpeg)

    return ffmpeg_lib


PLAN_PREFIX = "cht_lab-ana-"  # + owner pid: a plan's FIFOs live in a private temp dir of that name


def _remove_stale_plans(tmpdir: str | os.PathLike[str] | None) -> None:
    """Remove plan dirs whose process died without cleaning up (SIGKILL). Looked for at every plan: a
    session killed while this process runs leaves its dirs too, and listing the temp dir is cheap."""
    root = Path(tmpdir or tempfile.gettempdir())
    for d in root.glob(f"{PLAN_PREFIX}*"):
        owner = d.name[len(PLAN_PREFIX):].split("-", 1)[0]
        if owner.isdigit() and _alive(int(owner)):
            continue
        if not owner.isdigit() and time.time() - _mtime(d) < 24 * 3600:
            continue  # an older name without its owner: only once it is clearly abandoned
        shutil.rmtree(d, ignore_errors=True)
        log.debug("removed %s, left by a process that is gone", d)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return time.time()


def build_analysis_args(input_args: Sequence[str] | str | os.PathLike[str], *, backend: str, src_width: int,
                        src_height: int, full_res_fd: int | None = None, full_res: bool = False,
                        width: int = ANALYSIS_WIDTH, scale_flags: str | None = None, loglevel: str = "error",
                        tmpdir: str | os.PathLike[str] | None = None, threads: int | None = None) -> AnalysisPlan:
    """The ffmpeg command of one analysis decode (built with ffmpeg-python), see the module docstring.

    input_args: a path, or ffmpeg input options ending with "-i <url>" (e.g. ["-f", "h264",
    "-i", "pipe:0"]); backend: "cpu" or "cuda" (resolve "auto" with choose_backend first);
    full_res / full_res_fd: add the full-resolution output, to a FIFO in the plan's temp dir, or
    to an inherited pipe fd ("pipe:N", listed in plan.pass_fds); threads: the decoder's thread count
    (None: DECODE_THREADS, else decode_threads() decides).
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
    _remove_stale_plans(tmpdir)
    tmp = Path(tempfile.mkdtemp(prefix=f"{PLAN_PREFIX}{os.getpid()}-", dir=tmpdir))
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
                .filter("format", ANALYSIS_PIX_FMT)
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
    threads = threads or DECODE_THREADS or decode_threads(src_width, src_height)
    if threads:
        hw += ["-threads", str(threads)]
    args = [compiled[0], "-hide_banner", "-nostdin", "-loglevel", loglevel, "-y", *hw, *in_args,
            *compiled[i + 1:]]
    return AnalysisPlan(args, backend, aw, ah, src_width, src_height, meta, tmp, full_out, pass_fds,
                        pix_fmt=ANALYSIS_PIX_FMT)


def _use_zscale() -> bool:
    if SCALER == "zscale":
        return True
    if SCALER != "auto":
        return False
    from cht_lab.ffmpeg import ffmpeg_info

    return "zscale" in ffmpeg_info().filters


FIELD_FROM = 6  # sources at least this many times the analysis height: scale from every other row


def _downscale(stream: Any, width: int, height: int, flags: str, *, cuda: bool, src_height: int = 0) -> Any:
    """Averaging downscale to the analysis size (swscale `flags`; zimg when SCALER asks for it).

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
