"""One decode run of the detector: prepare the source, place the run on the timeline, decode, judge the end.

For a socket of a cht session the run first locates the stream's first keyframe in the
recording (the recording is the clock) and, when the recording holds frames the session has not
scored (a late attach, a restart's gap), decodes those from the recording file first (backfill,
with full-resolution captures from that decode), then the socket stream: the pipeline sees the
recording's frames in order, each once.
"""

from __future__ import annotations

import enum
import logging
import subprocess
import threading
import time
from collections import deque
from pathlib import Path
from dataclasses import dataclass, field
from typing import Callable

from cht_lab import layout
from cht_lab.detect.decode import build_analysis_args
from cht_lab.detect.reader import AnalysisReader, FullFrame
from cht_lab.detect.pipeline import FramePipeline
from cht_lab.detect.recording_clock import MATCH_WAIT, RecordingClock
from cht_lab.detect.timeline import PTS_EPS, Timeline
from cht_lab.ffmpeg import MediaError, video_header
from cht_lab.sources.base import LiveStream, Source, VideoFormat
from cht_lab.status import ErrorLog, WorkerState

log = logging.getLogger(__name__)


class RunOutcome(str, enum.Enum):
    FINISHED = "finished"  # the source is done
    FAILED = "failed"  # bad input: nothing to resume
    ENDED = "ended"  # ended early: restart (resume a file, reconnect a socket)
    ENDED_CLEAN = "ended-clean"  # a live stream ended normally (server gone): restart


@dataclass
class _Decode:
    """One running analysis ffmpeg with its threads."""

    reader: AnalysisReader
    name: str
    fmt: VideoFormat
    stream: LiveStream | None
    ended: threading.Event = field(default_factory=threading.Event)
    consuming: threading.Event = field(default_factory=threading.Event)  # frames are being read
    threads: list[threading.Thread] = field(default_factory=list)


class RunRunner:
    """Runs one ffmpeg decode (plus a backfill decode when needed) and says how it ended."""

    def __init__(self, number: int, source: Source, timeline: Timeline, pipeline: FramePipeline, errors: ErrorLog,
                 *, backend: str, stop: threading.Event, ring: int, garbage_after: float,
                 on_state: Callable[[WorkerState], None]):
        self.number = number
        self.source = source
        self.timeline = timeline
        self.pipeline = pipeline
        self.errors = errors
        self.backend = backend
        self.stop_all = stop
        self.ring = ring
        self.garbage_after = garbage_after
        self.on_state = on_state
        self.backfilled = 0
        self.frames = 0
        self.phase = "starting"  # "backfill" while decoding the recording, "stream" while decoding the source
        self._reader: AnalysisReader | None = None
        self._rate: deque[float] = deque(maxlen=120)
        self._first_bytes_at: float | None = None
        self._feed_error: BaseException | None = None
        self._eof = False  # the last decode read every frame ffmpeg produced
        self._backfill_error: str | None = None
        self._fps_hint: float | None = None  # the recording's frame rate, as offline scoring uses it

    # ------------------------------------------------------------------ what the supervisor reads

    @property
    def pid(self) -> int | None:
        reader = self._reader
        return reader.process.pid if reader is not None and reader.process.running() else None

    def rate_snapshot(self) -> list[float]:
        return list(self._rate)

    def full_frame(self, seq: int, timeout: float = 0.5) -> FullFrame | None:
        reader = self._reader
        return reader.full_frame(seq, timeout=timeout) if reader is not None else None

    def close(self) -> None:
        reader = self._reader
        if reader is not None:
            reader.close()

    # ------------------------------------------------------------------ the run

    def _on_source_state(self, state: str, message: str | None) -> None:
        if state == "connected" and self._first_bytes_at is None:
            self._first_bytes_at = time.monotonic()
        elif state in ("connecting", "reconnecting"):
            self.on_state(WorkerState.RECONNECTING if state == "reconnecting" else WorkerState.STARTING)
        elif state == "garbage" and message:
            self.errors.add(message)
        elif state == "damaged" and message:
            self.errors.add(message, level=logging.WARNING)

    def run(self) -> RunOutcome:
        try:
            fmt = self.source.prepare(self.stop_all, self._on_source_state)
        except MediaError as exc:
            if self.pipeline.frames == 0 and (not self.source.live or self.source.finished):
                self.errors.add(str(exc))  # bad input: nothing to resume (or a finished recording that never was)
                return RunOutcome.FAILED
            self.errors.add(f"{exc} (will retry)")
            return RunOutcome.ENDED
        if fmt is None:  # stopped, or the stream ended before it started
            return RunOutcome.FINISHED if self.source.finished else RunOutcome.ENDED
        early: _Decode | None = None
        if self.source.stream is not None and self.timeline.session_recordings is not None:
            # ffmpeg starts while the stream is located in the recording (and backfilled): its
            # start-up overlaps, and the socket's frames wait in its pipes meanwhile
            early = self._open(self.source.input_args(), fmt, name=self.source.name, feeder=True)
        clock = self._recording_clock()
        try:
            if self._backfill_error is not None:  # restart: the next run backfills from where this one got
                self.errors.add(f"{self.source.name}: run {self.number}: {self._backfill_error}")
                return RunOutcome.ENDED
            decode, early = early, None
            return self._decode_source(fmt, decode)
        finally:
            if early is not None:
                self._close(early)
            if clock is not None:
                clock.close()

    def _recording_clock(self) -> RecordingClock | None:
        """For a socket of a cht session: locate the stream in the recording, backfill, begin the run."""
        stream, root = self.source.stream, self.timeline.session_recordings
        if stream is None or root is None:
            self.timeline.begin_run(self.source, live=self.source.live)
            return None
        clock, seg = self._locate(root, stream)
        if clock is None or seg is None:
            self.timeline.begin_run(self.source, live=True)
            return None
        try:
            self._recording_format(seg.path)
        except MediaError as exc:
            log.warning("%s: %s", seg.path.name, exc.reason)
        self._backfill(clock, seg)
        self.timeline.begin_recording_run(clock, seg)
        return clock

    def _locate(self, root, stream) -> tuple[RecordingClock | None, layout.Segment | None]:
        """The newest recording holding the stream's first keyframe (a restarted recorder's new file may
        appear a moment after its stream starts on the socket)."""
        deadline = time.monotonic() + MATCH_WAIT
        note = f"{root}: no recording to take the stream's time from"
        while not self.stop_all.is_set():
            recs = layout.recordings(root)
            if recs:
                clock = RecordingClock(recs[-1], stream)
                seg = self.timeline.segment_of(recs[-1])
                if seg is not None and clock.locate(self.stop_all, timeout=1.0):
                    return clock, seg
                note = clock.note or f"{recs[-1].name} is not a segment of {root}"
                clock.close()
            if time.monotonic() >= deadline:
                break
            self.stop_all.wait(0.1)
        self.timeline.fallback(note)
        return None, None

    def _backfill(self, clock: RecordingClock, seg: layout.Segment) -> None:
        """Score the recording's frames before the stream's first keyframe that are not scored yet."""
        before = clock.packets_before_start()
        last = self.timeline.last_pts(seg.index)
        todo = [p for p in before if last is None or p.pts > last + PTS_EPS]
        if not todo or self.stop_all.is_set():
            return
        start_pts = clock.start_pts
        assert start_pts is not None
        log.info("backfill: %d frames of %s (%.3f-%.3f s) before the stream's first keyframe", len(todo),
                 seg.path.name, todo[0].pts, start_pts)
        args = ["-i", str(seg.path)]
        if todo[0].pts > 0:
            args = ["-copyts", "-start_at_zero", "-ss", f"{max(0.0, todo[0].pts - PTS_EPS):.6f}", *args]
        fmt = self._recording_format(seg.path)
        self.timeline.begin_backfill_run(seg, [p.pts for p in clock.packets_before_start()] + [start_pts])
        before_frames = self.pipeline.frames
        self.phase = "backfill"
        try:
            self._decode(args, fmt, name=f"{seg.path.name} (backfill)", until_pts=start_pts - PTS_EPS)
        except MediaError as exc:
            self._backfill_error = f"backfill from {seg.path.name} failed: {exc.reason}"
        self.backfilled += self.pipeline.frames - before_frames
        reader = self._reader
        if self._eof and reader is not None and not self.stop_all.is_set():  # ended before the stream's start
            rc = reader.process.returncode
            reason = f"ffmpeg was killed (signal {-rc})" if rc is not None and rc < 0 else reader.error or \
                f"ffmpeg exited with code {rc}"
            self._backfill_error = f"backfill from {seg.path.name} ended at frame {self.backfilled}: {reason}"

    def _recording_format(self, path: Path) -> VideoFormat:
        """The recording's size and frame rate from its header, as offline scoring reads them."""
        header = video_header(path)
        self._fps_hint = header.fps
        return VideoFormat(header.width, header.height, header.fps)

    def _decode_source(self, fmt: VideoFormat, decode: "_Decode | None") -> RunOutcome:
        error: MediaError | None = None
        self.phase = "stream"
        try:
            if decode is None:
                resume = None
                last = self.timeline.last_pts(self.timeline.segment)
                if self.source.seekable and last is not None:
                    resume = last + 0.5 / (self.timeline.fps or 1000.0)
                decode = self._open(self.source.input_args(start=resume), fmt, name=self.source.name,
                                    feeder=self.source.has_feeder)
            self._consume(decode)
        except MediaError as exc:  # ffmpeg failed before its first frame
            error = exc
        return self._judge(error)

    def _decode(self, input_args: list[str], fmt: VideoFormat, *, name: str,
                until_pts: float | None = None) -> None:
        self._consume(self._open(input_args, fmt, name=name, feeder=False), until_pts=until_pts)

    def _open(self, input_args: list[str], fmt: VideoFormat, *, name: str, feeder: bool) -> "_Decode":
        """Start one analysis ffmpeg (and its feeder and monitor threads)."""
        plan = build_analysis_args(input_args, backend=self.backend, src_width=fmt.width, src_height=fmt.height,
                                   full_res=True)
        try:
            reader = AnalysisReader(plan, path=name, reuse=True, ring=self.ring, name="scene-ffmpeg",
                                    stdin=subprocess.PIPE if feeder else subprocess.DEVNULL)
        except Exception:
            plan.cleanup()
            raise
        if self.stop_all.is_set():  # stop() raced with the start of this run
            reader.close()
        log.info("run %d: ffmpeg pid %d on %s (%dx%d, %s)", self.number, reader.process.pid, name, fmt.width,
                 fmt.height, plan.backend)
        decode = _Decode(reader, name, fmt, self.source.stream if feeder else None)
        decode.threads.append(threading.Thread(target=self._monitor, args=(decode,), name="scene-monitor",
                                               daemon=True))
        if feeder:
            decode.threads.append(threading.Thread(target=self._feed, args=(reader, decode.ended),
                                                   name="scene-feeder", daemon=True))
        for t in decode.threads:
            t.start()
        return decode

    def _consume(self, decode: "_Decode", until_pts: float | None = None) -> None:
        """Every frame of the decode through the timeline and the pipeline (up to `until_pts`)."""
        reader, stream = decode.reader, decode.stream
        self._reader = reader
        self._eof = False
        decode.consuming.set()
        fps = self._fps_hint or decode.fmt.fps or self.timeline.fps or 30.0
        try:
            for fa in reader:
                if self.stop_all.is_set():
                    break
                now = time.monotonic()
                arrival = stream.unit_arrival(fa.frame_index) if stream is not None else None
                if until_pts is not None and fa.pts >= until_pts:
                    break
                where = self.timeline.place(fa.frame_index, fa.pts, now, arrival)
                if where is None:
                    continue
                if self.frames == 0:
                    self.on_state(WorkerState.RUNNING)
                self.frames += 1
                self.pipeline.frame(where, fa, reader.full_frame, fps)
                self._rate.append(now)
            else:
                self._eof = True
        finally:
            self._close(decode)
            self.pipeline.flush()
        log.info("run %d on %s ended: %d frames, ffmpeg exit code %s", self.number, decode.name, self.frames,
                 reader.process.returncode)

    def _close(self, decode: "_Decode") -> None:
        decode.ended.set()
        decode.reader.close()
        for t in decode.threads:
            t.join(timeout=2.0)

    def _feed(self, reader: AnalysisReader, ended: threading.Event) -> None:
        sink = reader.process.stdin
        assert sink is not None
        try:
            self.source.feed(sink, ended, self._on_source_state)
        except Exception as exc:
            self._feed_error = exc
            self.errors.exception(self.source.name, exc)
            try:
                sink.close()
            except OSError:
                pass

    def _monitor(self, decode: "_Decode") -> None:
        """Report what the frame loop cannot see: ffmpeg's error lines, and data that decodes to nothing."""
        reader, ended, name = decode.reader, decode.ended, decode.name
        seen: list[str] = []
        reported_garbage = False
        last_frames, last_progress = reader.frames_read, time.monotonic()
        bytes_at_progress = self.source.bytes_received
        while True:
            done = ended.wait(0.5)
            if done and self.stop_all.is_set():
                return  # stopped by us: what ffmpeg says while being stopped is no news
            lines = [ln for ln in reader.process.stderr_tail(50).splitlines() if ln.strip()]
            for line in _new_lines(seen, lines)[-3:]:
                self.errors.add(f"{name}: ffmpeg: {line.strip()}", level=logging.WARNING)
            seen = lines
            if done:
                return
            now = time.monotonic()
            received = self.source.bytes_received
            if reader.frames_read != last_frames or not decode.consuming.is_set():
                last_frames, last_progress, bytes_at_progress = reader.frames_read, now, received
                reported_garbage = False
            elif (not reported_garbage and now - last_progress >= self.garbage_after
                  and received - bytes_at_progress >= 64 * 1024):
                reported_garbage = True
                self.errors.add(f"{name}: received {(received - bytes_at_progress) / 1024:.0f} KiB in "
                                f"{now - last_progress:.0f} s but no video frame decodes from it (not H.264 Annex-B?)")

    def _judge(self, error: MediaError | None) -> RunOutcome:
        if self.stop_all.is_set():
            return RunOutcome.ENDED
        reader = self._reader
        assert reader is not None
        proc = reader.process
        rc = proc.returncode
        if rc is not None and rc < 0 and proc.stopped_by_us and self._eof:
            rc = 0  # every frame was read; the signal was our own clean-up of a finishing ffmpeg
        problem = error is not None or self._feed_error is not None or rc not in (0, None) or reader.error
        if not problem:
            if not self.source.live or self.source.finished:
                return RunOutcome.FINISHED
            return RunOutcome.ENDED_CLEAN
        if self.source.finished:
            return RunOutcome.FINISHED
        if rc is not None and rc < 0:
            reason = f"ffmpeg was killed (signal {-rc})"
        elif error is not None:
            reason = error.reason
        else:
            reason = reader.error or str(self._feed_error) or f"ffmpeg exited with code {rc}"
        if self.frames == 0 and self.pipeline.frames == 0 and not self.source.live:
            self.errors.add(f"{self.source.name}: {reason}")  # bad input: nothing to resume
            return RunOutcome.FAILED
        self.errors.add(f"{self.source.name}: run {self.number} ended after {self.frames} frames: {reason}")
        if not self.source.seekable and not self.source.live:
            return RunOutcome.FAILED  # a finite stream that cannot resume
        return RunOutcome.ENDED


def _new_lines(before: list[str], now: list[str]) -> list[str]:
    """Lines of `now` (a bounded tail) that were not already in the tail `before`."""
    for k in range(min(len(before), len(now)), 0, -1):
        if before[-k:] == now[:k]:
            return now[k:]
    return now


__all__ = ["RunOutcome", "RunRunner"]
