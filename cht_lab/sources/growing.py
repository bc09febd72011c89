"""A recording another process is still writing (cht's growing fMP4), tailed into ffmpeg."""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import IO, Iterator

from cht_lab import layout
from cht_lab.ffmpeg import MediaError
from cht_lab.sources.base import SourceBase, StateCallback, VideoFormat, probe_recording
from cht_lab.sources.follow import GrowingFile, pump

log = logging.getLogger(__name__)


class FollowSource(SourceBase):
    """A recording another process is still writing (cht's growing fMP4), tailed into ffmpeg's stdin.

    Given a session directory, it follows the newest `stream/*` recording; when a newer one
    appears (recorder restart) and the current one has stopped growing, the run ends and the
    next run follows the new file. `idle_timeout`: seconds without growth (and without a newer
    file) after which the recording counts as finished; None follows forever.
    """

    kind = "follow"
    live = True

    def __init__(self, path: str | os.PathLike[str], *, idle_timeout: float | None = None,
                 switch_after: float = 1.0, wait_for_file: float = 10.0, realtime: bool = False):
        self.path = Path(path)
        self.is_session = self.path.is_dir()
        if not self.path.exists() and not self.path.parent.is_dir():
            raise MediaError(self.path, "no such file")
        self.idle_timeout = idle_timeout
        self.switch_after = float(switch_after)
        self.wait_for_file = float(wait_for_file)
        self.realtime = realtime  # a growing file is paced by its writer; kept for the interface
        self.current: Path | None = None
        self.finished = False  # set by feed() when the recording ended (idle_timeout passed)

    @property
    def name(self) -> str:
        return str(self.current or self.path)

    @property
    def has_feeder(self) -> bool:
        return True

    @property
    def recording(self) -> Path | None:
        return self.current

    def input_args(self, start: float | None = None) -> list[str]:
        return ["-i", "pipe:0"]

    def _newest(self) -> Path | None:
        if not self.is_session:
            return self.path
        recs = layout.recordings(self.path)
        return recs[-1] if recs else None

    def _wait_for_recording(self, stop: threading.Event) -> Path | None:
        deadline = None if self.wait_for_file <= 0 else self.wait_for_file
        waited = 0.0
        while not stop.is_set():
            target = self._newest()
            if target is not None:
                return target
            if deadline is not None and waited > deadline:
                raise FileNotFoundError(f"{self.path}: no recording in {layout.STREAM_DIR}/ (waited {waited:.0f} s)")
            stop.wait(0.1)
            waited += 0.1
        return None

    def prepare(self, stop: threading.Event, on_state: StateCallback | None = None) -> VideoFormat | None:
        """Pick the recording to follow and wait until its first frame is readable."""
        target = self._wait_for_recording(stop)
        if target is None:
            return None
        self.current = target
        deadline = time.monotonic() + self.wait_for_file
        while True:
            try:
                return probe_recording(target)[0]
            except MediaError:
                if time.monotonic() > deadline or stop.is_set():
                    if self.idle_timeout is not None and _quiet_for(target) >= self.idle_timeout:
                        self.finished = True  # nobody writes it any more: unreadable for good, not "yet"
                    raise
            stop.wait(0.1)  # the writer has not finished its first fragment yet

    def feed(self, sink: IO[bytes], stop: threading.Event, on_state: StateCallback | None = None) -> None:
        try:
            target = self.current or self._wait_for_recording(stop)
            if target is None:
                return
            self.current = target
            if on_state:
                on_state("connected", f"following {target}")
            pump(self._chunks(target, stop), sink, stop)
        finally:
            try:
                sink.close()
            except OSError:
                pass

    def _chunks(self, target: Path, stop: threading.Event) -> Iterator[bytes]:
        """Tail `target`; end when a newer recording takes over or the recording is finished."""
        poll = min(self.switch_after, self.idle_timeout or self.switch_after, 0.5)
        growing = GrowingFile(target, poll=poll, idle_timeout=self.idle_timeout, switch_after=self.switch_after,
                              newer=lambda: (n := self._newest()) is not None and n != target,
                              wait_for_file=self.wait_for_file)
        yield from growing.chunks(stop)
        self.finished = growing.finished


def _quiet_for(path: Path) -> float:
    """Seconds since `path` was last written (0 when it cannot be read)."""
    try:
        return max(0.0, time.time() - path.stat().st_mtime)
    except OSError:
        return 0.0


__all__ = ["FollowSource"]
