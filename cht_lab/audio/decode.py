"""Audio sources of a session and the ffmpeg command that decodes them to PCM.

Sources, in cht's fallback order: the session's recordings that have an audio track (each on
its own segment offset), else `stream/audio.aac` (ADTS, starting at the session start).

The decode is one continuous ffmpeg per source segment to raw s16le on a pipe. `aresample`
with `first_pts=0` pins sample 0 to pts 0 (audio that starts late is padded, encoder-delay
samples before it trimmed) and fills timestamp gaps with silence, so a sample index is always
the segment time: that is what lets the chunks tile the timeline to the sample.
"""

from __future__ import annotations

import logging
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cht_lab import layout

log = logging.getLogger(__name__)

__all__ = ["AudioSegment", "find_audio_sources", "no_audio_reason", "StreamWatch", "decode_args", "decode_pcm",
           "pipe_format", "BENIGN", "READ_BLOCK"]

#: demuxer to name for a pipe input (a pipe cannot be probed by file name)
_PIPE_FORMATS = {".aac": "aac", ".adts": "aac", ".mp4": "mov", ".m4a": "mov", ".m4v": "mov",
                 ".mov": "mov", ".mkv": "matroska", ".ts": "mpegts"}
_LAYOUTS = {1: "mono", 2: "stereo"}
#: stderr lines that are ffmpeg being chatty about a normal input, not a problem with it
BENIGN = re.compile(r"Estimating duration from bitrate|has been deprecated|Guessed Channel Layout", re.I)
READ_BLOCK = 1 << 20
_STREAM_RE = re.compile(r"^\s*Stream #0:\d+.*?: (Audio|Video):", re.M)


@dataclass(frozen=True)
class AudioSegment:
    """One audio source on the session timeline: a file, its global offset, its segment number."""

    path: Path
    offset: float
    segment: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))
        object.__setattr__(self, "offset", float(self.offset))
        object.__setattr__(self, "segment", int(self.segment))


def probe_has_audio(path: Path, timeout: float = 20.0) -> bool | None:
    """True/False once the file's header can be read; None while it cannot (empty, growing, broken).

    Only the header is read (`ffmpeg -i FILE` lists the streams and stops), which stays fast for
    an hour-long recording where a full `probe()` walks every packet.
    """
    from cht_lab.ffmpeg import read_header

    header = read_header(path, timeout)
    if header is None:
        return None
    kinds = _STREAM_RE.findall(header)
    return ("Audio" in kinds) if kinds else None


def find_audio_sources(session_dir: str | os.PathLike[str], *,
                       _known: dict[Path, bool] | None = None) -> list[AudioSegment]:
    """The session's audio sources: recordings with an audio track, else `stream/audio.aac`.

    Recordings keep their segment numbers and global offsets (`layout.discover_segments`), so an
    audio chunk's `segment` matches the frames of the same recording. Empty list: no audio.
    `_known` caches what the headers said (a fragmented MP4's track list never changes once readable).
    """
    session_dir = Path(session_dir)
    found: list[AudioSegment] = []
    for seg in layout.discover_segments(session_dir):
        has = _known.get(seg.path) if _known is not None else None
        if has is None:
            has = probe_has_audio(seg.path)
            if has is not None and _known is not None:
                _known[seg.path] = has
        if has:
            found.append(AudioSegment(seg.path, seg.offset, seg.index))
    if found:
        return found
    aac = session_dir / layout.STREAM_DIR / layout.AUDIO_AAC
    if aac.is_file() and aac.stat().st_size > 0:
        return [AudioSegment(aac, 0.0, 0)]
    return []


def pipe_format(path: Path) -> str | None:
    """The demuxer ffmpeg needs to read `path` from a pipe (None: let it probe)."""
    return _PIPE_FORMATS.get(path.suffix.lower())


def decode_args(input_path: str | os.PathLike[str] | None, *, sample_rate: int = 16000, channels: int = 1,
                pipe_format: str | None = None, live: bool = False) -> list[str]:
    """ffmpeg arguments (without the binary) that decode the first audio stream to s16le on stdout.

    `input_path=None` reads stdin (`pipe_format` names the demuxer). One `aresample` does the
    rate, layout and format conversion and pins sample 0 to pts 0 (`first_pts=0`).

    A finished file (`live=False`) leaves the graph in frames of one second (`asetnsamples`
    after the resampler: the same samples, regrouped). AAC gives a frame per 1024 source samples,
    and every frame crosses ffmpeg's encoder and muxer threads one by one: for an hour of audio
    that hand-over costs more than a third of a plain decode's CPU time (benchmarks/audio.py).
    Live keeps the small frames: PCM goes out as soon as it is decoded.
    """
    layout_name = _LAYOUTS.get(channels, f"{channels}c")
    af = f"aresample=osr={sample_rate}:ochl={layout_name}:osf=s16:first_pts=0"
    if not live:
        af += f",asetnsamples=n={int(sample_rate)}:p=0"
    args = ["-hide_banner", "-nostdin", "-loglevel", "warning"]
    if input_path is None:
        if pipe_format:
            args += ["-f", pipe_format]
        args += ["-probesize", "32768", "-analyzeduration", "500000", "-i", "pipe:0"]
    else:
        args += ["-i", str(input_path)]
    args += ["-map", "0:a:0", "-vn", "-sn", "-dn", "-af", af, "-f", "s16le"]
    # live: hand over every packet at once (latency); a finished file: full writes, far fewer
    # pipe transfers than ffmpeg's default flush of each small packet to a pipe
    args += ["-flush_packets", "1" if live else "0"]
    return args + ["pipe:1"]


def decode_pcm(path: str | os.PathLike[str], *, sample_rate: int = 16000, channels: int = 1,
               timeout: float = 120.0) -> np.ndarray:
    """The whole audio of `path` decoded exactly as the extractor decodes it: int16, (n, channels)."""
    from cht_lab.ffmpeg import run_ffmpeg

    args = decode_args(path, sample_rate=sample_rate, channels=channels)[4:]  # run_ffmpeg adds its own flags
    res = run_ffmpeg(args, timeout=timeout, path=path)
    return np.frombuffer(res.stdout, dtype="<i2").reshape(-1, channels)


def no_audio_reason(session_dir: Path, known: dict[Path, bool]) -> str:
    """Why `find_audio_sources` finds nothing, in words (`known`: what the headers said so far)."""
    recs = layout.recordings(session_dir)
    aac = f"{layout.STREAM_DIR}/{layout.AUDIO_AAC}"
    if not recs:
        return f"no recording in {layout.STREAM_DIR}/ and no {aac}"
    unread = [p.name for p in recs if known.get(p) is None]
    if unread:
        return f"{', '.join(unread)}: no readable header (yet); no {aac}"
    return f"{', '.join(p.name for p in recs)}: no audio track, and no {aac}"


class StreamWatch:
    """Seconds since anything in a session's stream/ last changed (a file appeared, grew or went):
    how long a session that may still get audio has been idle."""

    def __init__(self, session_dir: Path):
        self._stream = session_dir / layout.STREAM_DIR
        self._seen: tuple[tuple[str, int, int], ...] | None = None
        self._since = time.monotonic()

    def reset(self) -> None:
        self._seen, self._since = None, time.monotonic()

    def quiet(self) -> float:
        try:
            stats = [(e.name, e.stat()) for e in os.scandir(self._stream) if not e.name.startswith(".")]
            entries = tuple(sorted((name, st.st_size, st.st_mtime_ns) for name, st in stats))
        except OSError:  # stream/ missing, or a file went while listing: changed either way
            entries = ()
        if entries != self._seen:
            self._seen, self._since = entries, time.monotonic()
        return time.monotonic() - self._since
