"""One decode of one audio source segment: its state, its feeder, its PCM reader, its verdict.

A segment is what one ffmpeg decodes: a file read to its end, or a growing file fed to ffmpeg's
stdin until following ends. When the writer recreates the file, the segment ends and the
extractor starts a new one; its timeline offset is only known once the new file's first bytes
arrive (`Segment.first_data`), so chunk placement waits for `ready`.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Callable, Iterable, Iterator

import numpy as np
import pandas as pd

from cht_lab import layout
from cht_lab.audio.chunking import EnergyVad
from cht_lab.audio.decode import BENIGN, READ_BLOCK, AudioSegment
from cht_lab.ffmpeg import FfmpegProcess, MediaError
from cht_lab.sources.follow import FileReplacedError, GrowingFile, Timeout, write_all

log = logging.getLogger(__name__)


@dataclass
class Segment:
    """State of one decode (one ffmpeg): shared between the reader and the feeder thread."""

    source: AudioSegment
    number: int
    offset: float | None  # None until known (a replaced file: set when its first bytes arrive)
    prev_end: float = 0.0
    prev_last_data: float | None = None
    skip: int = 0
    samples: int = 0  # samples of this segment chunked so far (including skipped ones)
    fed: int = 0
    first_data_at: float | None = None
    last_data_at: float | None = None
    replaced: FileReplacedError | None = None
    end_reason: str = ""
    feed_error: BaseException | None = None
    ready: threading.Event = field(default_factory=threading.Event)
    feed_stop: threading.Event = field(default_factory=threading.Event)

    def first_data(self) -> None:
        now = time.time()
        self.first_data_at = now
        if self.offset is None:
            gap = 0.0 if self.prev_last_data is None else max(0.0, now - self.prev_last_data)
            self.offset = self.prev_end + gap
        self.ready.set()


def feed(seg: Segment, sink: IO[bytes], *, poll: float, idle_timeout: Timeout,
         newer: Callable[[], bool] | None) -> None:
    """Feeder thread: the growing file into ffmpeg's stdin until `seg.feed_stop`, replacement,
    a newer recording or `idle_timeout`; records why in `seg`. Always closes stdin, so ffmpeg
    sees EOF and the reader drains."""
    path = seg.source.path
    follower = GrowingFile(path, poll=poll, idle_timeout=idle_timeout, newer=newer, wait_for_file=0.0)
    try:
        for data in follower.chunks(seg.feed_stop):
            if seg.first_data_at is None:
                seg.first_data()
            write_all(sink, data)
            seg.fed += len(data)
            seg.last_data_at = time.time()
        seg.end_reason = follower.end_reason
    except FileReplacedError as exc:
        seg.replaced = exc
        seg.end_reason = exc.reason
    except FileNotFoundError:  # removed before it could be (re)opened
        seg.replaced = FileReplacedError(path, "file was removed while being followed")
        seg.end_reason = seg.replaced.reason
    except (BrokenPipeError, ValueError):
        seg.end_reason = "ffmpeg closed its input"
    except Exception as exc:
        seg.feed_error = exc
    finally:
        if seg.first_data_at is None:
            seg.first_data()  # nothing fed: still give the segment an offset
        try:
            sink.close()
        except OSError:
            pass
    log.debug("audio feed %s ends: %s", path.name, seg.end_reason)


def read_pcm(stdout: IO[bytes], channels: int) -> Iterator[np.ndarray]:
    """ffmpeg's s16le output as int16 arrays of whole frames, shaped (n, channels), until EOF.

    Returns without error when the pipe is closed under it (stop() killed ffmpeg)."""
    frame_bytes = 2 * channels
    rest = b""
    while True:
        try:
            data = stdout.read(READ_BLOCK)
        except (OSError, ValueError):
            return
        if not data:
            return
        if rest:
            data = rest + data
        usable = len(data) - len(data) % frame_bytes
        rest = data[usable:]
        if usable:
            yield np.frombuffer(data, dtype="<i2", count=usable // 2).reshape(-1, channels)


def verdict(seg: Segment, proc: FfmpegProcess, decoded: int, sample_rate: int, *, stopping: bool,
            session: str) -> str | None:
    """How a finished decode went: MediaError when nothing could be decoded, a warning (returned)
    when ffmpeg complained about the input, None when all is well."""
    path = seg.source.path
    rc = proc.returncode
    lines = [ln for ln in proc.stderr_tail(200).splitlines() if ln.strip() and not BENIGN.search(ln)]
    if decoded == 0 and rc not in (0, None) and not stopping and seg.replaced is None:
        reason = proc.error_summary()
        if "matches no streams" in reason:
            reason = "no audio stream"
        raise MediaError(path, f"cannot decode audio: {reason}")
    log.info("audio %s: segment %d (%s) done: %.3f s decoded, ffmpeg exit %s", session, seg.number, path.name,
             decoded / sample_rate, rc)
    if lines and not stopping and seg.replaced is None:
        return (f"{path.name}: decoded {decoded / sample_rate:.3f} s; ffmpeg reported: {lines[-1].strip()} "
                "(truncated or damaged audio?)")
    if lines:  # a cut-off last packet is expected when we stop or the writer starts over
        log.info("audio %s: %s ended (%s): %s", session, path.name, "stop" if stopping else "file replaced",
                 lines[-1].strip())
    return None


def resume_point(src: AudioSegment, existing: pd.DataFrame | None, source_name: str,
                 sample_rate: int) -> tuple[int, float, int]:
    """(segment number, offset, samples to skip) for `src`, after chunks already indexed."""
    if existing is None:
        return src.segment, src.offset, 0
    rows = existing[existing["source"] == source_name]
    rows = rows[rows["segment"] >= src.segment]
    if rows.empty:
        return src.segment, src.offset, 0
    last = rows.sort_values(["segment", "local_start"]).iloc[-1]
    if int(last["sample_rate"]) == sample_rate:
        skip = int(round(float(last["local_start"]) * sample_rate)) + int(last["samples"])
    else:
        skip = int(round((float(last["local_start"]) + float(last["duration"])) * sample_rate))
    log.info("audio: resuming %s segment %d after %.3f s already chunked", src.path.name, int(last["segment"]),
             skip / sample_rate)
    return int(last["segment"]), float(last["start"]) - float(last["local_start"]), skip


def after_replacement(seg: Segment, used: set[int], sources: Iterable[AudioSegment], session_dir: Path,
                      sample_rate: int) -> tuple[Segment, str]:
    """The segment that continues after the writer recreated `seg`'s file, and a warning saying so."""
    src = seg.source
    assert seg.replaced is not None
    if seg.samples == 0:  # nothing came out of it: the next file keeps its number and origin
        nxt = Segment(src, seg.number, seg.offset if seg.fed == 0 else None, prev_end=seg.prev_end,
                      prev_last_data=seg.prev_last_data)
        return nxt, f"{src.path.name} was recreated ({seg.replaced.reason}) before any audio was decoded"
    end = (seg.offset or 0.0) + seg.samples / sample_rate
    number = next_segment_number(used, sources, session_dir)
    return (Segment(src, number, None, prev_end=end, prev_last_data=seg.last_data_at),
            f"{src.path.name} was recreated ({seg.replaced.reason}); segment {seg.number} ends at {end:.3f} s, "
            f"its audio continues as segment {number}")


def chunk_row(seg: Segment, pcm: np.ndarray, vad: EnergyVad, chunk_id: str, source: str,
              sample_rate: int) -> dict[str, Any]:
    """The index row of the next chunk of `seg`, placed by sample count (and counted in `seg`).

    Waits (bounded) for the segment's offset: a replaced file's is known at its first bytes."""
    n = len(pcm)
    first = seg.samples  # samples of this segment before the chunk: the truth for its start
    seg.ready.wait(5.0)
    offset = seg.offset if seg.offset is not None else 0.0
    local_start = first / sample_rate
    stats = vad.stats(pcm)
    seg.samples = first + n
    return {
        "id": chunk_id, "path": f"{layout.AUDIO_DIR}/{chunk_id}.wav", "start": offset + local_start,
        "duration": n / sample_rate, "local_start": local_start, "segment": seg.number, "source": source,
        "sample_rate": sample_rate, "channels": pcm.shape[1] if pcm.ndim > 1 else 1, "samples": n,
        "rms_dbfs": stats.rms_dbfs, "peak_dbfs": stats.peak_dbfs, "speech_ratio": stats.speech_ratio,
    }


def next_segment_number(used: Iterable[int], sources: Iterable[AudioSegment], session_dir: Path) -> int:
    """After every segment number in use: the extractor's, the index's, and the session's recordings."""
    known = set(used)
    known.update(s.segment for s in sources)
    known.update(s.index for s in layout.discover_segments(session_dir))
    return max(known, default=-1) + 1
