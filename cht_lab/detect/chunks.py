"""Offline decode in keyframe-aligned chunks, decoded side by side and handed on in order.

ffmpeg's frame-threaded H.264 decoder spends about a quarter more CPU than a single-threaded one
(threads wait on each other's reference rows), and on a small machine it leaves cores idle that
the downscale and the Python scorer need. A finished recording can instead be cut at its
keyframes (sync samples: decoding starts cleanly there) into chunks that single-threaded decodes
run on side by side; the scorer still sees every frame once, in order, with the same pixels and
timestamps as one decode (tests/test_offline_chunks.py compares them).

Two details keep the results identical:

- Times: a chunk is opened with `-ss <keyframe> -noaccurate_seek -copyts`, which keeps the file's
  own timestamps. A whole-file decode shifts them by the file's start time, so recordings that do
  not start at 0 are decoded in one piece.
- ffmpeg's scene score of a frame depends on the two frames before it, which a chunk's own decode
  has not seen for its first two frames: every chunk but the last decodes OVERLAP frames past its
  end, and those frames' scores replace the next chunk's.

Decoded chunks wait in memory until the scorer reaches them (about 86 KB per 320 x 180 frame), so a
chunk is at most CHUNK_FRAMES frames and at most `workers + 1` chunks are in flight.
"""

from __future__ import annotations

import bisect
import logging
import math
import os
import queue
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterator

from cht_lab.detect.decode import AnalysisPlan, usable_cpus
from cht_lab.detect.reader import AnalysisReader, FrameAnalysis
from cht_lab.ffmpeg import MediaError, VideoHeader, video_header, video_packets

log = logging.getLogger(__name__)

CHUNK_FRAMES = 900  # frames per chunk at most (memory: a decoded chunk waits for the scorer)
MIN_CHUNK_FRAMES = 150  # shorter chunks cost more in ffmpeg start-ups than they win
OVERLAP = 2  # frames decoded past a chunk's end: the scene score looks two frames back
MAX_WORKERS = 4  # one Python scorer keeps up with about this many single-threaded decodes
TOLERANCE = 1e-6  # s: decoded times are rounded to the microsecond, packet times are not


@dataclass(frozen=True)
class Chunk:
    """Frames with start <= pts < end (seconds; end None: to the end of the file), decoding from `start`."""

    index: int
    start: float
    end: float | None
    frames: int

    def before(self, pts: float) -> bool:
        """A frame at `pts` belongs to an earlier chunk."""
        return pts < self.start - TOLERANCE

    def after(self, pts: float) -> bool:
        """A frame at `pts` belongs to a later chunk."""
        return self.end is not None and pts >= self.end - TOLERANCE


def default_workers() -> int:
    """Side-by-side decodes for this machine: one per CPU, at most MAX_WORKERS (1: no chunking)."""
    return max(1, min(MAX_WORKERS, usable_cpus()))


def plan_chunks(path: str | os.PathLike[str], workers: int, header: VideoHeader | None = None) -> list[Chunk]:
    """Keyframe-aligned chunks of a finished recording, a multiple of `workers` of them with about the same
    number of frames each; one chunk (the whole file) when cutting would not help or not be exact.
    `header`: the file's video_header, when the caller has read it already."""
    p = Path(path)
    whole = [Chunk(0, 0.0, None, 0)]
    if workers < 2:
        return whole
    try:
        packets = video_packets(p)
    except MediaError as exc:
        log.debug("%s: decoded in one piece (%s)", p, exc.reason)
        return whole
    pts = [pk.pts for pk in packets]
    n = len(pts)
    if n < 2 * MIN_CHUNK_FRAMES or any(b <= a for a, b in zip(pts, pts[1:])):
        return whole  # short, or frames reordered (B-frames): a cut could split what references what
    if pts[0] != 0.0 or (header or video_header(p)).start != 0.0:
        return whole  # -copyts would keep an offset that a whole-file decode removes
    keys = [i for i, pk in enumerate(packets) if pk.key]
    count = workers * max(1, math.ceil(n / (workers * CHUNK_FRAMES)))
    count = min(count, n // MIN_CHUNK_FRAMES)
    cuts: list[int] = []
    for k in range(1, count):
        j = bisect.bisect_left(keys, round(k * n / count))  # the first keyframe at or after the ideal cut
        if j < len(keys) and keys[j] - (cuts[-1] if cuts else 0) >= MIN_CHUNK_FRAMES and n - keys[j] >= MIN_CHUNK_FRAMES:
            cuts.append(keys[j])
    if not cuts:
        return whole
    bounds = [0, *cuts, n]
    return [Chunk(i, pts[a], pts[b] if b < n else None, b - a) for i, (a, b) in enumerate(zip(bounds, bounds[1:]))]


def chunk_input(path: str | os.PathLike[str], chunk: Chunk) -> list[str]:
    """ffmpeg input options that decode `chunk` from its keyframe, with the file's own timestamps."""
    if chunk.index == 0:
        return ["-copyts", "-i", os.fspath(path)]
    # half a millisecond past the keyframe: a time printed a hair early would seek to the keyframe before
    return ["-ss", f"{chunk.start + 0.0005:.6f}", "-noaccurate_seek", "-copyts", "-i", os.fspath(path)]


class ChunkedReader:
    """Iterates the FrameAnalysis of every chunk in order (global frame_index), `workers` decodes at a time.

    `make_plan(input_args)` builds a chunk's analysis plan (build_analysis_args with one decoder
    thread). Like AnalysisReader: MediaError when the first chunk yields nothing; a later failure
    ends the iteration with `error` set (the frames so far are good); close() stops every decode.
    """

    def __init__(self, path: str | os.PathLike[str], chunks: list[Chunk],
                 make_plan: Callable[[list[str]], AnalysisPlan], workers: int):
        self.path = os.fspath(path)
        self.chunks = chunks
        self.workers = max(1, workers)
        self.error: str | None = None
        self._make_plan = make_plan
        self._stop = threading.Event()
        self._readers: set[AnalysisReader] = set()
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ decoding one chunk

    def _decode(self, chunk: Chunk, out: "queue.SimpleQueue[FrameAnalysis | BaseException | None]") -> None:
        """Frames of `chunk` into `out`, then the OVERLAP frames past its end, then None (or the error)."""
        try:
            reader = AnalysisReader(self._make_plan(chunk_input(self.path, chunk)), path=self.path, reuse=False,
                                    name=f"score-chunk{chunk.index}")
        except BaseException as exc:  # reported in order by the consumer
            out.put(exc)
            return
        with self._lock:
            self._readers.add(reader)
        try:
            past = 0
            for fa in reader:
                if self._stop.is_set():
                    break
                out.put(fa)
                if chunk.after(fa.pts):
                    past += 1
                    if past >= OVERLAP:
                        break
            if reader.error:
                out.put(MediaError(self.path, reader.error))
        except BaseException as exc:
            out.put(exc)
        finally:
            reader.close()
            with self._lock:
                self._readers.discard(reader)
            out.put(None)

    # ------------------------------------------------------------------ in order

    def __iter__(self) -> Iterator[FrameAnalysis]:
        queues: list[queue.SimpleQueue[FrameAnalysis | BaseException | None]] = [queue.SimpleQueue()
                                                                                for _ in self.chunks]
        pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="score-chunk")
        submitted = 0
        index = 0
        carried: dict[float, float] = {}  # pts -> scene score from the previous chunk's decode
        try:
            for i, chunk in enumerate(self.chunks):
                while submitted < min(len(self.chunks), i + self.workers + 1):
                    pool.submit(self._decode, self.chunks[submitted], queues[submitted])
                    submitted += 1
                overlap: dict[float, float] = {}
                for item in iter(queues[i].get, None):
                    if isinstance(item, BaseException):
                        self._fail(item, index)
                        return
                    if chunk.after(item.pts):
                        overlap[item.pts] = item.scene
                        continue
                    if chunk.before(item.pts):
                        continue  # the seek landed on an earlier keyframe: those frames are the chunk before's
                    if carried:
                        item = replace(item, scene=carried.pop(item.pts, item.scene))
                    yield replace(item, frame_index=index)
                    index += 1
                carried = overlap
                if self.error:
                    return
        finally:
            self.close()
            pool.shutdown(wait=True, cancel_futures=True)

    def _fail(self, exc: BaseException, frames: int) -> None:
        if frames == 0 or not isinstance(exc, MediaError):
            raise exc
        self.error = f"decoding stopped after {frames} frames: {exc.reason}"
        log.warning("%s: %s", self.path, self.error)

    def close(self) -> None:
        """Stop every decode still running (safe to call more than once)."""
        self._stop.set()
        with self._lock:
            readers = list(self._readers)
        for r in readers:
            r.close()


__all__ = ["CHUNK_FRAMES", "Chunk", "ChunkedReader", "chunk_input", "default_workers", "plan_chunks"]
