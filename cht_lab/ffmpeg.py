"""Find the ffmpeg binary, run it as a well-behaved child process, and probe media without ffprobe.

Everything in cht_lab that touches media goes through this module: one place decides which
ffmpeg runs, one place guarantees no child outlives its owner, and one place turns ffmpeg's
complaints into errors that name the file and the reason.
"""

from __future__ import annotations

import atexit
import collections
import functools
import logging
import os
import re
import select
import shutil
import subprocess
import threading
import time
import weakref
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import IO, Any, Sequence

log = logging.getLogger(__name__)

ENV_VAR = "CHT_LAB_FFMPEG"


class FfmpegNotFoundError(RuntimeError):
    """No usable ffmpeg binary could be found."""


class MediaError(ValueError):
    """A media input could not be used; names the input and the reason."""

    def __init__(self, path: str | os.PathLike[str], reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


# --------------------------------------------------------------------------- binary discovery


def find_ffmpeg() -> str:
    """Return the ffmpeg executable: $CHT_LAB_FFMPEG, then imageio-ffmpeg's bundled one, then PATH."""
    override = os.environ.get(ENV_VAR)
    if override:
        path = shutil.which(override) or override
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            raise FfmpegNotFoundError(f"{ENV_VAR}={override!r} is not an executable file")
        return path
    try:
        import imageio_ffmpeg

        path = imageio_ffmpeg.get_ffmpeg_exe()
        if path and os.path.isfile(path):
            return path
    except Exception as exc:  # imageio-ffmpeg missing or its binary absent for this platform
        log.debug("imageio-ffmpeg gave no binary: %s", exc)
    path = shutil.which("ffmpeg")
    if path:
        return path
    raise FfmpegNotFoundError(
        "no ffmpeg found: install imageio-ffmpeg (pip install imageio-ffmpeg), put ffmpeg on PATH, "
        f"or set {ENV_VAR} to an ffmpeg executable"
    )


@dataclass(frozen=True)
class FfmpegInfo:
    """What the chosen ffmpeg binary can do."""

    path: str
    version: str
    hwaccels: frozenset[str]
    filters: frozenset[str]
    encoders: frozenset[str] = field(default_factory=frozenset)

    @property
    def has_cuda(self) -> bool:
        """CUDA decode and scaling are compiled in (a GPU may still be absent: see cuda_usable)."""
        return "cuda" in self.hwaccels and "scale_cuda" in self.filters

    @property
    def has_scdet(self) -> bool:
        return "scdet" in self.filters


def _list_section(exe: str, *flags: str) -> str:
    out = subprocess.run([exe, "-hide_banner", *flags], capture_output=True, text=True, timeout=30)
    return out.stdout


@functools.lru_cache(maxsize=4)
def _info_for(exe: str) -> FfmpegInfo:
    version_out = subprocess.run([exe, "-hide_banner", "-version"], capture_output=True, text=True, timeout=30)
    m = re.search(r"ffmpeg version (\S+)", version_out.stdout)
    version = m.group(1) if m else "unknown"
    hw = _list_section(exe, "-hwaccels").splitlines()
    hwaccels = frozenset(line.strip() for line in hw[1:] if line.strip())
    filters = frozenset(
        parts[1]
        for line in _list_section(exe, "-filters").splitlines()
        if (parts := line.split()) and len(parts) >= 3 and re.fullmatch(r"[TSC.]{2,3}", parts[0])
    )
    encoders = frozenset(
        parts[1]
        for line in _list_section(exe, "-encoders").splitlines()
        if (parts := line.split()) and len(parts) >= 2 and re.fullmatch(r"[VASFXBD.]{6}", parts[0])
    )
    return FfmpegInfo(exe, version, hwaccels, filters, encoders)


def ffmpeg_info() -> FfmpegInfo:
    """Version and capabilities of the ffmpeg that find_ffmpeg() picks (cached per binary)."""
    return _info_for(find_ffmpeg())


@functools.lru_cache(maxsize=4)
def _cuda_usable_for(exe: str) -> tuple[bool, str]:
    if not _info_for(exe).has_cuda:
        return False, "this ffmpeg was built without CUDA (hwaccel cuda + scale_cuda)"
    try:
        res = subprocess.run(
            [exe, "-hide_banner", "-nostdin", "-init_hw_device", "cuda=gpu", "-f", "lavfi",
             "-i", "nullsrc=s=64x64:d=0.04", "-vf", "hwupload_cuda,scale_cuda=32:32", "-f", "null", "-"],
            capture_output=True, text=True, timeout=30,
        )
    except subprocess.TimeoutExpired:
        return False, "CUDA device initialisation timed out"
    if res.returncode == 0:
        return True, "CUDA device initialised"
    last = [line for line in res.stderr.splitlines() if line.strip()]
    return False, "no usable CUDA device: " + (last[-1] if last else f"ffmpeg exit {res.returncode}")


def cuda_usable() -> tuple[bool, str]:
    """Whether a CUDA device actually works with this ffmpeg, and why (cached)."""
    return _cuda_usable_for(find_ffmpeg())


# --------------------------------------------------------------------------- child processes

STOP_POLL = 0.05  # s: how often a running ffmpeg checks for SIGTERM (its -stats_period)


@functools.lru_cache(maxsize=8)
def _wakes_on_stats_period(exe: str) -> bool:
    """Whether `exe` is an ffmpeg that knows -stats_period (4.4+; older ones check SIGTERM every packet)."""
    if "ffmpeg" not in os.path.basename(exe).lower():
        return False
    try:
        return "-stats_period" in _list_section(exe, "-h", "long")
    except (OSError, subprocess.TimeoutExpired):
        return False


_live_processes: "weakref.WeakSet[FfmpegProcess]" = weakref.WeakSet()
_live_lock = threading.Lock()


class FfmpegProcess:
    """An ffmpeg child that is always reaped: stop() terminates, then kills after a timeout.

    stderr is drained by a daemon thread into a bounded buffer, so a chatty ffmpeg never blocks
    and the last lines are at hand for error messages.
    """

    def __init__(
        self,
        args: Sequence[str],
        *,
        stdin: int | IO[Any] | None = subprocess.DEVNULL,
        stdout: int | IO[Any] | None = subprocess.PIPE,
        stderr_lines: int = 200,
        name: str = "ffmpeg",
    ):
        self.args = [str(a) for a in args]
        if not self.args or os.path.basename(self.args[0]) == self.args[0] and not shutil.which(self.args[0]):
            self.args = [find_ffmpeg(), *self.args]
        if "-stats_period" not in self.args and _wakes_on_stats_period(self.args[0]):
            # ffmpeg >= 7 acts on SIGTERM only when its main loop wakes up, every stats period
            # (0.5 s by default): waking it more often makes stop() prompt
            self.args[1:1] = ["-stats_period", f"{STOP_POLL:g}"]
        self.name = name
        self._stderr = collections.deque(maxlen=stderr_lines)
        log.debug("starting %s: %s", name, " ".join(self.args))
        self.popen = subprocess.Popen(self.args, stdin=stdin, stdout=stdout, stderr=subprocess.PIPE, bufsize=0)
        self.stopped_by_us = False
        self._stop_lock = threading.Lock()  # stop() from two threads: one stops, the other finds it reaped
        with _live_lock:
            _live_processes.add(self)
        self._stderr_thread = threading.Thread(target=self._drain_stderr, name=f"{name}-stderr", daemon=True)
        self._stderr_thread.start()

    def _drain_stderr(self) -> None:
        stream = self.popen.stderr
        assert stream is not None
        for raw in iter(stream.readline, b""):
            self._stderr.append(raw.decode("utf-8", "replace").rstrip())
        stream.close()

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def stdin(self) -> IO[bytes] | None:
        return self.popen.stdin

    @property
    def stdout(self) -> IO[bytes] | None:
        return self.popen.stdout

    @property
    def returncode(self) -> int | None:
        return self.popen.poll()

    def running(self) -> bool:
        return self.popen.poll() is None

    def stderr_tail(self, n: int = 20) -> str:
        """The last n lines ffmpeg wrote to stderr (after the process ended, all of them are in)."""
        if self.popen.poll() is not None:
            self._stderr_thread.join(timeout=1.0)
        return "\n".join(list(self._stderr)[-n:])

    def error_summary(self) -> str:
        """The most telling stderr line, for an error message."""
        lines = [line for line in self._stderr if line.strip()]
        for line in reversed(lines):
            if re.search(r"(error|invalid|no such|not found|could not|failed|denied|moov atom)", line, re.I):
                return line.strip()
        return lines[-1].strip() if lines else f"ffmpeg exited with code {self.returncode}"

    def wait(self, timeout: float | None = None) -> int:
        rc = self.popen.wait(timeout)
        self._stderr_thread.join(timeout=1.0)
        return rc

    def stop(self, timeout: float = 2.0, *, drain: Sequence[int] = ()) -> int:
        """Close stdin, terminate, kill after `timeout`, and reap. Safe to call more than once, from any thread.

        Until ffmpeg has exited, its stdout (our pipe) and the `drain` fds (other outputs the caller
        reads, e.g. FIFOs; non-blocking) are read and discarded. ffmpeg blocked writing an output
        nobody reads any more cannot act on SIGTERM (the write resumes after the signal handler and
        the main thread waits for the blocked muxer), so without this it sat out the whole timeout
        and was killed. stdout is switched to non-blocking for that: a thread still reading it gets
        None (end of data), not a hang.
        """
        with self._stop_lock:
            p = self.popen
            for stream in (p.stdin,):
                if stream is not None:
                    try:
                        stream.close()
                    except OSError:
                        pass
            if p.poll() is None:
                fds = [fd for fd in drain if fd is not None]
                out = _open_fd(p.stdout)
                if out is not None:
                    os.set_blocking(out, False)
                    fds.append(out)
                self.stopped_by_us = True  # a signal exit from here on is ours, not a failure
                try:
                    p.terminate()
                except OSError:  # exited meanwhile
                    pass
                if not _wait_draining(p, fds, timeout):
                    log.warning("%s (pid %d) ignored SIGTERM for %.1fs; killing it", self.name, p.pid, timeout)
                    p.kill()
                    p.wait()
            if p.stdout is not None:
                try:
                    p.stdout.close()
                except OSError:
                    pass
            self._stderr_thread.join(timeout=1.0)
            with _live_lock:
                _live_processes.discard(self)
            return p.returncode

    def __enter__(self) -> "FfmpegProcess":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _open_fd(stream: IO[Any] | None) -> int | None:
    """The fd of a pipe we still hold open, else None."""
    if stream is None:
        return None
    try:
        return stream.fileno()
    except (ValueError, OSError):  # closed
        return None


def _wait_draining(p: "subprocess.Popen[bytes]", fds: list[int], timeout: float) -> bool:
    """Wait up to `timeout` s for `p` to exit, reading and discarding whatever it writes to `fds`."""
    deadline = time.monotonic() + timeout
    fds = list(fds)
    while p.poll() is None:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        if not fds:
            try:
                p.wait(left)
            except subprocess.TimeoutExpired:
                return False
            break
        try:
            ready, _, _ = select.select(fds, [], [], min(left, 0.05))
        except (OSError, ValueError):  # an fd closed under us: stop draining, just wait
            fds = []
            continue
        for fd in ready:
            try:
                if not os.read(fd, 1 << 16):
                    fds.remove(fd)  # EOF: nothing more will come
            except BlockingIOError:  # another reader took it first
                pass
            except OSError:
                fds.remove(fd)
    return True


def live_processes() -> list[FfmpegProcess]:
    """ffmpeg children started by this process that have not been reaped yet."""
    with _live_lock:
        return [p for p in _live_processes if p.popen.returncode is None and p.popen.poll() is None]


@atexit.register
def _stop_all() -> None:
    with _live_lock:
        procs = list(_live_processes)
    for p in procs:
        try:
            p.stop(timeout=1.0)
        except Exception:  # interpreter shutting down: best effort
            pass


def run_ffmpeg(args: Sequence[str], *, timeout: float = 60.0, input: bytes | None = None,
               path: str | os.PathLike[str] | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run ffmpeg to completion; on failure or timeout raise MediaError naming `path`."""
    full = [find_ffmpeg(), "-hide_banner", "-nostdin" if input is None else "-y", *map(str, args)]
    try:
        res = subprocess.run(full, input=input, capture_output=True, timeout=timeout,
                             stdin=None if input is not None else subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        raise MediaError(path or "ffmpeg", f"ffmpeg did not finish within {timeout:.0f} s") from exc
    if res.returncode != 0:
        err = _telling_line(res.stderr.decode("utf-8", "replace"))
        raise MediaError(path or "ffmpeg", f"ffmpeg failed: {err}")
    return res


def _telling_line(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in reversed(lines):
        if re.search(r"(error|invalid|no such|not found|could not|failed|denied|moov atom|unknown)", line, re.I):
            return line
    return lines[-1] if lines else "no output"


# --------------------------------------------------------------------------- probing


@dataclass(frozen=True)
class VideoStream:
    codec: str
    width: int
    height: int
    fps: float
    frames: int
    duration: float
    start: float


@dataclass(frozen=True)
class AudioStream:
    codec: str
    sample_rate: int
    channels: int
    duration: float
    start: float


@dataclass(frozen=True)
class MediaInfo:
    """What a recording holds. `duration` is what can safely be read now (a growing file grows)."""

    path: str
    format: str
    duration: float
    video: VideoStream | None
    audio: AudioStream | None
    complete: bool  # False when ffmpeg stopped early (growing or truncated file)

    @property
    def has_video(self) -> bool:
        return self.video is not None

    @property
    def has_audio(self) -> bool:
        return self.audio is not None


_CHANNELS = {"mono": 1, "stereo": 2, "2.1": 3, "quad": 4, "5.0": 5, "5.1": 6, "7.1": 8}


def probe(path: str | os.PathLike[str], *, timeout: float = 20.0) -> MediaInfo:
    """Describe a media file using only ffmpeg (no ffprobe).

    Packets are stream-copied to ffmpeg's framecrc muxer, which lists every packet's timestamp:
    that gives exact durations and frame counts, and on a fragmented MP4 that is still being
    written it gives the duration of the fragments complete so far instead of failing.
    """
    p = Path(path)
    if not p.exists():
        raise MediaError(p, "no such file")
    if p.is_dir():
        raise MediaError(p, "is a directory, not a media file")
    if p.stat().st_size == 0:
        raise MediaError(p, "empty file (0 bytes)")
    res, out, stderr = _list_packets(p, ["-map", "0:v:0?", "-map", "0:a:0?"], timeout, "probing")
    if "#media_type" not in out:
        if "Invalid data found" in stderr:
            raise MediaError(p, "not a media file ffmpeg can read (invalid data)")
        if "moov atom not found" in stderr:
            raise MediaError(p, "truncated or unfinished MP4 (moov atom not found)")
        raise MediaError(p, f"no audio or video stream found ({_telling_line(stderr)})")
    # a recording cut off mid-packet (truncated fMP4, a crash while writing) still exits 0; the
    # demuxer's "partial file" warning is the only sign that its last packet is incomplete
    complete = res.returncode == 0 and "partial file" not in stderr
    return _parse_framecrc(p, out, stderr, complete=complete)


_MP4_BOXES = (b"ftyp", b"styp", b"moov", b"moof", b"mdat", b"free", b"skip", b"wide", b"sidx")


def probe_video(path: str | os.PathLike[str], *, timeout: float = 20.0) -> MediaInfo:
    """probe() that insists on a decodable video stream; MediaError(path, reason) otherwise."""
    p = Path(path)
    try:
        info = probe(p, timeout=timeout)
    except MediaError as exc:
        if "invalid data" in exc.reason and _starts_like_mp4(p):
            raise MediaError(p, "truncated or unfinished MP4 (no moov atom: the recorder did not finish "
                                "writing it; a fragmented MP4 would still be readable)") from None
        raise
    if info.video is None:
        raise MediaError(p, "no video stream (audio only)" if info.audio is not None else "no video stream")
    if info.video.width <= 0 or info.video.height <= 0:
        raise MediaError(p, "no video frame could be read yet (still being written?)")
    return info


def _starts_like_mp4(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(8)[4:8] in _MP4_BOXES
    except OSError:
        return False


@dataclass(frozen=True)
class Packet:
    """One video packet as ffmpeg's framecrc lists it: times in seconds, size, Adler-32 of its bytes."""

    pts: float
    end: float
    size: int
    crc: int
    key: bool


def video_packets(path: str | os.PathLike[str], *, annexb: bool = False, timeout: float = 30.0) -> list[Packet]:
    """Every complete packet of the first video stream (a growing recording: those readable so far).

    `annexb=True` lists H.264 as Annex-B (`h264_mp4toannexb`), the form cht serves on its socket,
    so a packet received there can be found here by size and checksum.
    """
    p = Path(path)
    _, out, _ = _list_packets(p, _packet_args(annexb), timeout, "listing its packets")  # a partial tail may complain
    header, rows = _framecrc(out)
    tb = Fraction(header.get(0, {}).get("tb", "1/1"))
    packets = [packet_from_row(r, tb) for r in rows if r[0] == "0"]
    if not packets:
        raise MediaError(p, "no complete video packet yet")
    return packets


def _packet_args(annexb: bool) -> list[str]:
    return ["-map", "0:v:0", *(["-bsf:v", "h264_mp4toannexb"] if annexb else [])]


def packet_listing_args(*, annexb: bool = True) -> list[str]:
    """An ffmpeg command that lists the video packets of an MP4 fed on stdin, one framecrc line each,
    flushed as they are read (a growing recording: lines come as its fragments are written)."""
    return [find_ffmpeg(), "-hide_banner", "-nostdin", "-loglevel", "error", "-f", "mp4", "-i", "pipe:0",
            *_packet_args(annexb), "-c", "copy", "-flush_packets", "1", "-f", "framecrc", "pipe:1"]


def packet_from_row(row: list[str], tb: Fraction) -> Packet:
    """One framecrc packet row (stream, dts, pts, duration, size, crc[, flags]) as a Packet."""
    pts, dur = int(row[2]), int(row[3])
    return Packet(float(pts * tb), float((pts + dur) * tb), int(row[4]), int(row[5], 16),
                  not any(x.startswith("F=") for x in row[6:]))


def framecrc_line(line: str) -> tuple[str, int, str] | list[str] | None:
    """One line of a framecrc listing: ("header", stream, key, value) fields as a tuple for `#key N: value`
    header lines, the stripped fields of a packet row, or None for anything else."""
    if line.startswith("#"):
        m = re.match(r"#(\w+) (\d+): (.*)", line)
        return (m.group(1), int(m.group(2)), m.group(3).strip()) if m else None
    parts = [x.strip() for x in line.split(",")]
    return parts if len(parts) >= 6 else None


def _list_packets(path: Path, args: list[str], timeout: float,
                  what: str) -> tuple[subprocess.CompletedProcess[bytes], str, str]:
    """Stream-copy `path` into ffmpeg's framecrc muxer: (result, listing, stderr); MediaError on timeout."""
    cmd = [find_ffmpeg(), "-hide_banner", "-nostdin", "-i", str(path), *args, "-c", "copy", "-f", "framecrc", "-"]
    try:
        res = subprocess.run(cmd, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        raise MediaError(path, f"{what} did not finish within {timeout:.0f} s") from exc
    return res, res.stdout.decode("ascii", "replace"), res.stderr.decode("utf-8", "replace")


def _framecrc(out: str) -> tuple[dict[int, dict[str, str]], list[list[str]]]:
    """A framecrc listing: per-stream headers (`#tb 0: 1/15360` ...) and packet rows
    (stream, dts, pts, duration, size, crc[, flags]) with their fields stripped."""
    header: dict[int, dict[str, str]] = collections.defaultdict(dict)
    rows = []
    for line in out.splitlines():
        item = framecrc_line(line)
        if isinstance(item, tuple):
            header[item[1]][item[0]] = item[2]
        elif item is not None:
            rows.append(item)
    return header, rows


def _parse_framecrc(path: Path, out: str, stderr: str, complete: bool) -> MediaInfo:
    header, rows = _framecrc(out)
    first: dict[int, int] = {}
    end: dict[int, int] = {}
    count: dict[int, int] = collections.Counter()
    durs: dict[int, list[int]] = collections.defaultdict(list)
    for parts in rows:
        idx, pts, dur = int(parts[0]), int(parts[2]), int(parts[3])
        first[idx] = min(first.get(idx, pts), pts)
        end[idx] = max(end.get(idx, pts + dur), pts + dur)
        count[idx] += 1
        if dur > 0 and len(durs[idx]) < 2000:
            durs[idx].append(dur)
    fmt_m = re.search(r"Input #0, ([^,]+(?:,[^,]+)*?), from", stderr)
    fmt = fmt_m.group(1) if fmt_m else "unknown"
    video = audio = None
    for idx, h in header.items():
        tb = Fraction(h.get("tb", "1/1"))
        start = float(first.get(idx, 0) * tb)
        duration = float((end.get(idx, 0) - first.get(idx, 0)) * tb)
        if h.get("media_type") == "video" and video is None:
            w, _, hgt = h.get("dimensions", "0x0").partition("x")
            n = count.get(idx, 0)
            fps = _packet_fps(durs.get(idx), tb) or _stream_fps(stderr) or (n / duration if duration > 0 else 0.0)
            video = VideoStream(h.get("codec_id", "unknown"), int(w), int(hgt), fps, n, duration, start)
        elif h.get("media_type") == "audio" and audio is None:
            layout = h.get("channel_layout_name", "mono")
            m = re.match(r"(\d+) channels", layout)
            channels = int(m.group(1)) if m else _CHANNELS.get(layout, 1)
            audio = AudioStream(h.get("codec_id", "unknown"), int(h.get("sample_rate", 0)), channels, duration, start)
    if video is None and audio is None:
        raise MediaError(path, "no audio or video stream found")
    duration = max(s.duration for s in (video, audio) if s is not None)
    return MediaInfo(str(path), fmt, duration, video, audio, complete)


def _packet_fps(durations: list[int] | None, tb: Fraction) -> float | None:
    """Frame rate from the most common packet duration: exact for constant-rate recordings."""
    if not durations:
        return None
    common = collections.Counter(durations).most_common(1)[0][0]
    return round(float(1 / (common * tb)), 3)


def _stream_fps(stderr: str) -> float | None:
    m = re.search(r"Stream #0:\d+.*?: Video: .*?, ([\d.]+) fps", stderr)
    if m:
        return float(m.group(1))
    m = re.search(r"Stream #0:\d+.*?: Video: .*?, ([\d.]+k?) tbr", stderr)
    if m and not m.group(1).endswith("k"):
        return float(m.group(1))
    return None
