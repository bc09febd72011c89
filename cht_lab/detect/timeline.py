"""The timeline stage: where each decoded frame sits (segment, frame index, pts, ts) and how late it is.

One place owns time for every source kind:

- **socket of a cht session**: the recording is the clock (`RecordingClock`): frame k of a
  connection is packet `start + k` of the recording, so `pts` is the recording's own pts (exact
  for variable frame rate) and `frame_index` is the packet's index, as offline scoring numbers
  it. A backfill run decodes the recording's frames before the stream's first keyframe with the
  same placement.
- **a recording** (a file, a followed cht recording): ffmpeg's pts; the segment and its offset
  come from the session's recordings when there are any.
- **anything else** (a socket without a recording, a URL): ffmpeg's pts, with runs placed one
  after the other by wall-clock time; status says the clock is estimated.

`ts = segment offset + pts`, strictly increasing. A run that repeats frames already placed (same
segment, pts not after the last one: a restarted follow, a resumed file) skips them until it
passes that point, so every frame is scored once.
"""

from __future__ import annotations

import bisect
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

from cht_lab import layout
from cht_lab.detect.recording_clock import RecordingClock
from cht_lab.sources.base import Source

log = logging.getLogger(__name__)

PTS_EPS = 5e-4  # s: two pts closer than this are the same frame


@dataclass(frozen=True)
class Placement:
    """Where one decoded frame sits on the session timeline."""

    segment: int
    frame_index: int
    pts: float  # seconds in the segment's recording
    ts: float  # seconds on the session timeline
    lag: float | None  # seconds behind the live edge (None: not a live source)


@dataclass
class _Run:
    clock: str  # "recording", "recording file", "decoder", "wall clock"
    segment: int
    offset: float
    clock_ref: RecordingClock | None = None
    packet_pts: list[float] | None = None  # backfill: the recording's packet pts, for frame indices
    wall_origin: float | None = None  # wall-clock time of pts 0 (a followed cht recording)
    first_pts: float | None = None
    first_mono: float | None = None
    seq_is_index: bool = False
    caught_up: bool = False  # past the frames placed before (after that, frames are never dropped)  # a recording decoded from its start: the decoder's frame number is the index


class Timeline:
    """Places the frames of successive decode runs on one session timeline (see the module docstring)."""

    def __init__(self, *, session_recordings: Path | None = None, segment: int = 0, ts_offset: float = 0.0):
        self.session_recordings = session_recordings  # a cht session directory: its stream/ is the clock
        self.segment = int(segment)
        self.ts_offset = float(ts_offset)
        self.fps: float | None = None
        self.lag: float | None = None
        self.note: str | None = None  # why the clock is not exact
        self.next_index = 0  # the next frame index where the decoder, not the recording, numbers frames
        self._last_ts: float | None = None
        self._last_pts: dict[int, float] = {}
        self._last_mono: float | None = None
        self._run: _Run | None = None
        self._runs = 0

    def seed(self, last_pts: dict[int, float], last_ts: float | None) -> None:
        """Continue a session scored before (a restarted LiveSession): its frames are not scored again."""
        self._last_pts.update(last_pts)
        if last_ts is not None:
            self._last_ts = last_ts

    # ------------------------------------------------------------------ runs

    @property
    def clock(self) -> str | None:
        return self._run.clock if self._run is not None else None

    def last_pts(self, segment: int) -> float | None:
        return self._last_pts.get(segment)

    def segment_of(self, recording: Path | None) -> layout.Segment | None:
        """The session segment recorded in `recording` (None without a cht session or a match)."""
        if self.session_recordings is None or recording is None:
            return None
        target = Path(recording).resolve()
        for seg in layout.discover_segments(self.session_recordings):
            if seg.path.resolve() == target:
                return seg
        return None

    def begin_recording_run(self, clock: RecordingClock, segment: layout.Segment) -> None:
        """A socket connection whose frames are packets of `segment`'s recording from `clock.start` on."""
        self._begin(_Run("recording", segment.index, segment.offset, clock_ref=clock))
        log.info("run %d: recording clock, segment %d from packet %d", self._runs, segment.index, clock.start)

    def begin_backfill_run(self, segment: layout.Segment, packet_pts: list[float]) -> None:
        """A decode of `segment`'s recording file for the frames the socket stream did not deliver."""
        self._begin(_Run("recording file", segment.index, segment.offset, packet_pts=packet_pts))

    def begin_run(self, source: Source, *, live: bool) -> None:
        """A run whose times come from the decoder: a recording, or a stream without one."""
        seg = self.segment_of(source.recording)
        if seg is not None:
            start = layout.parse_start_time(seg.path.stem)
            run = _Run("decoder", seg.index, seg.offset, wall_origin=start.timestamp() if start else None,
                       seq_is_index=True)
        elif live and self._runs > 0 and self._last_ts is not None:
            # no recording to tell: this run continues by wall clock after the previous one
            self.segment += 1
            run = _Run("wall clock", self.segment, math.nan)
        else:
            run = _Run("decoder" if source.recording is not None else "wall clock", self.segment, self.ts_offset)
        self._begin(run)

    def fallback(self, note: str) -> None:
        """The recording could not be used for this run: say so (status) and place by the decoder."""
        self.note = note
        log.warning("%s; timestamps follow the decoder and wall clock", note)

    def _begin(self, run: _Run) -> None:
        self._runs += 1
        self._run = run
        if run.clock in ("recording", "recording file") or (run.clock == "decoder" and run.wall_origin is not None):
            self.note = run.clock_ref.note if run.clock_ref is not None else None

    # ------------------------------------------------------------------ frames

    def place(self, seq: int, decoder_pts: float, now: float, arrival: float | None = None) -> Placement | None:
        """The frame's placement, or None when it was placed before (a repeated or resumed decode)."""
        run = self._run
        assert run is not None, "begin a run first"
        if run.first_mono is None:
            run.first_mono = now
        index: int | None = None
        pts = decoder_pts
        if run.clock == "recording":
            assert run.clock_ref is not None
            found = run.clock_ref.frame(seq)
            if found is None:
                if self.note is None:
                    self.fallback(f"{run.clock_ref.recording.name} does not hold stream frame {seq}")
                pts = math.nan
            else:
                index, pts, _exact = found
        if not math.isfinite(pts):
            step = 1.0 / (self.fps or 30.0)
            last = self._last_pts.get(run.segment)
            pts = last + step if last is not None else 0.0
        if run.first_pts is None:
            run.first_pts = pts
            if math.isnan(run.offset):  # wall clock: continue after the previous run
                gap = now - self._last_mono if self._last_mono is not None else 0.0
                run.offset = (self._last_ts or 0.0) + max(gap, 1e-3) - pts
        last = self._last_pts.get(run.segment)
        if not run.caught_up:
            if last is not None and pts <= last + PTS_EPS:
                return None  # a repeated or resumed decode, still before where the last one ended
            run.caught_up = True
        if run.packet_pts is not None:
            k = bisect.bisect_left(run.packet_pts, pts - PTS_EPS)
            if k < len(run.packet_pts) and abs(run.packet_pts[k] - pts) <= PTS_EPS:
                index = k
        ts = run.offset + pts
        if self._last_ts is not None and ts <= self._last_ts:
            # ts must increase (tuning relies on it): a placement that goes backwards is nudged forward
            step = 1.0 / self.fps if self.fps else 1e-3
            run.offset += self._last_ts + step - ts
            log.warning("segment %d: ts went backwards; offset moved to %.3f", run.segment, run.offset)
            ts = run.offset + pts
        if last is not None and pts > last:
            dt = pts - last
            self.fps = 0.9 * self.fps + 0.1 / dt if self.fps else 1.0 / dt
        if index is None and run.seq_is_index:
            index = seq
        if index is None:
            index = self.next_index
            if seq == 0 and self._last_ts is not None and self.fps and run.clock == "wall clock":
                index += max(0, round((ts - self._last_ts) * self.fps) - 1)  # lost frames: missing indices
        self.next_index = max(self.next_index, index + 1)
        self._last_pts[run.segment] = pts
        self._last_ts, self._last_mono = ts, now
        self.lag = self._lag(run, pts, now, arrival)
        return Placement(run.segment, index, pts, ts, self.lag)

    def _lag(self, run: _Run, pts: float, now: float, arrival: float | None) -> float | None:
        if arrival is not None:  # a socket: since this frame's bytes arrived (the live edge)
            return max(0.0, now - arrival)
        if run.wall_origin is not None:  # a growing recording named by its start time
            return max(0.0, time.time() - (run.wall_origin + pts))
        if run.clock == "wall clock" and run.first_pts is not None and run.first_mono is not None:
            return max(0.0, (now - run.first_mono) - (pts - run.first_pts))
        return None

    def status(self) -> dict[str, object]:
        run = self._run
        clock = run.clock_ref if run is not None else None
        return {"clock": self.clock, "clock_note": self.note, "segment": run.segment if run else self.segment,
                "fps": self.fps, "lag": self.lag, "estimated": clock.estimated if clock else 0,
                "mismatched": clock.mismatched if clock else 0,
                "vfr": clock.vfr if clock else None, "stream_start": clock.start if clock else None}


__all__ = ["Placement", "Timeline", "PTS_EPS"]
