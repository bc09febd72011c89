"""Probing media without ffprobe: packet listings (framecrc) and the container header."""

from __future__ import annotations

import collections
import logging
import os
import re
import subprocess
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

log = logging.getLogger(__name__)

from cht_lab.ffmpeg.binary import MediaError, find_ffmpeg
from cht_lab.ffmpeg.process import _telling_line


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
            raise MediaError(p, "truncated or unfinished MP4 (moov atom not found: the recorder did not finish "
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


@dataclass(frozen=True)
class VideoHeader:
    """What the container header says about the first video stream (no packet scan)."""

    width: int
    height: int
    fps: float | None
    duration: float | None
    start: float | None = None  # the file's start time (ffmpeg's `start:`; None: not known)

    @property
    def frames_estimate(self) -> int | None:
        if self.fps and self.duration:
            return int(round(self.fps * self.duration))
        return None


_HDR_VIDEO = re.compile(r"Stream #\d+:\d+.*?: Video: .*?(?<![\dx])(\d{2,5})x(\d{2,5})(?![\dx])")
_HDR_FPS = re.compile(r"Stream #\d+:\d+.*?: Video: .*?, ([\d.]+) (?:fps|tbr)")
_HDR_DURATION = re.compile(r"Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)")
_HDR_START = re.compile(r"Duration: [^,]+, start: (-?[\d.]+)")


def read_header(path: str | os.PathLike[str], timeout: float = 20.0) -> str | None:
    """What `ffmpeg -i FILE` says about a file's streams (the header only: fast for an hour of video).

    None when it cannot be read now (missing, empty, timed out): a growing file may be readable later.
    """
    try:
        if Path(path).stat().st_size == 0:
            return None
        res = subprocess.run([find_ffmpeg(), "-hide_banner", "-nostdin", "-i", str(path)], capture_output=True,
                             timeout=timeout, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.debug("cannot read the header of %s now: %s", path, exc)
        return None
    return res.stderr.decode("utf-8", "replace")


def video_header(path: str | os.PathLike[str], timeout: float = 20.0) -> VideoHeader:
    """Size (and fps / duration when known) of a recording's video from its header.

    Cheap: ffmpeg reads the header only (~20 ms), where probe() scans every packet (seconds for an
    hour of video). Anything unusual (no video, unreadable, truncated) goes to probe_video() for
    the precise MediaError.
    """
    p = Path(path)
    if p.is_file() and p.stat().st_size > 0:
        err = read_header(p, timeout) or ""
        m = _HDR_VIDEO.search(err)
        if m and "Invalid data found" not in err and "moov atom not found" not in err:
            fps_m = _HDR_FPS.search(err)
            dur_m = _HDR_DURATION.search(err)
            duration = None
            if dur_m:
                duration = int(dur_m.group(1)) * 3600 + int(dur_m.group(2)) * 60 + float(dur_m.group(3))
            start_m = _HDR_START.search(err)
            return VideoHeader(int(m.group(1)), int(m.group(2)), float(fps_m.group(1)) if fps_m else None,
                               duration or None, float(start_m.group(1)) if start_m else None)
    v = probe_video(p).video
    return VideoHeader(v.width, v.height, v.fps or None, v.duration or None)
