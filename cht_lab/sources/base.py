"""Video sources: every kind of input ends as ffmpeg input arguments (plus, maybe, a stdin feeder).

Before each ffmpeg run, `prepare()` finds the picture size (the analysis decode fixes its output
sizes up front, so frame sync survives resolution changes): a file or growing recording is
probed, a socket is read up to its first complete keyframe (which then opens the stream),
anything else is opened once by ffmpeg for one frame.

The `Source` protocol also declares the telemetry its consumers read (`bytes_received`,
`recording`, `stream`), so the detector and the timeline never probe concrete classes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Callable, Iterator, Protocol, runtime_checkable

from cht_lab.ffmpeg import MediaError, MediaInfo, probe_video, run_ffmpeg

log = logging.getLogger(__name__)

StateCallback = Callable[[str, "str | None"], None]
"""`on_state(state, message)` from a source: 'connecting', 'connected', 'reconnecting', 'ended', 'garbage',
'damaged' (a file decodes only in part)."""

_SUN_PATH_MAX = 107  # bytes in sockaddr_un.sun_path, minus the terminating NUL

# A cht session's stream has ended when its socket has been gone (or its newest recording has not
# grown) this long; a recorder restart takes well under that. cht gives no other sign: its socket
# also goes away during a restart, and a finished recording looks the same either way. Defaults
# for open_source(end_after=...); a caller that knows its server is done sooner may pass less.
SESSION_END_AFTER = 5.0
SESSION_IDLE_TIMEOUT = 10.0


@contextlib.contextmanager
def unix_address(path: str | os.PathLike[str]) -> Iterator[str]:
    """A path usable with bind()/connect() for `path`, even when it exceeds the sun_path limit.

    Long paths (deep temp or notebook directories) are reached through /proc/self/fd/N/name,
    where N is an O_PATH descriptor of the parent directory (Linux).
    """
    text = os.fspath(path)
    if len(os.fsencode(text)) <= _SUN_PATH_MAX or not os.path.isdir("/proc/self/fd"):
        yield text
        return
    parent, name = os.path.split(os.path.abspath(text))
    fd = os.open(parent or ".", getattr(os, "O_PATH", os.O_RDONLY) | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{fd}/{name}"
    finally:
        os.close(fd)


@dataclass(frozen=True)
class VideoFormat:
    """What the analysis decode must know before it starts."""

    width: int
    height: int
    fps: float | None = None


_DIMENSIONS_RE = re.compile(r"#dimensions 0: (\d+)x(\d+)")


def probe_format(input_args: list[str], *, name: str, data: bytes | None = None, timeout: float = 20.0) -> VideoFormat:
    """Size of the first video frame of any ffmpeg input (or of `data` fed to it on stdin)."""
    res = run_ffmpeg([*input_args, "-map", "0:v:0", "-frames:v", "1", "-c", "copy", "-f", "framecrc", "-"],
                     timeout=timeout, input=data, path=name)
    m = _DIMENSIONS_RE.search(res.stdout.decode("ascii", "replace"))
    if not m or int(m.group(1)) <= 0:
        raise MediaError(name, "no video stream with a known picture size")
    return VideoFormat(int(m.group(1)), int(m.group(2)))


def probe_recording(path: Path) -> tuple[VideoFormat, MediaInfo]:
    """Probe a recording for the analysis decode; MediaError naming the file when it cannot be used."""
    info = probe_video(path)
    assert info.video is not None
    return VideoFormat(info.video.width, info.video.height, info.video.fps or None), info


class LiveStream(Protocol):
    """What a socket connection tells the timeline about the stream it delivers (frame k = unit k)."""

    keyframe_at: tuple[float, float] | None  # (wall, monotonic) time its first keyframe began to arrive
    keyframe_unit: bytes | None  # that access unit's bytes (SPS ... IDR), to find it in the recording

    @property
    def units_received(self) -> int: ...

    def unit_arrival(self, number: int) -> float | None: ...

    def unit_sizes(self) -> list[int]: ...


@runtime_checkable
class Source(Protocol):
    """What the detector needs to run ffmpeg on an input, and the telemetry the timeline reads.

    `input_args(start)` are the arguments before the outputs (`-i` included); `start` asks a
    seekable source to resume at that time. A source with a feeder reads `pipe:0`: the detector
    runs `feed(sink, stop, on_state)` in a thread for each ffmpeg run; the feeder must close
    `sink` when it ends, which ends the run.
    """

    kind: str
    live: bool  # no natural end: restart when ffmpeg ends
    seekable: bool  # input_args(start=...) resumes at `start`
    realtime: bool
    finished: bool  # a live source that has ended for good
    backs_off: bool  # prepare() waits between its own connection attempts

    @property
    def name(self) -> str: ...

    @property
    def has_feeder(self) -> bool: ...

    @property
    def bytes_received(self) -> int: ...

    @property
    def recording(self) -> Path | None:
        """The recording file this source reads, when it is one (a file, a followed recording)."""

    @property
    def stream(self) -> LiveStream | None:
        """The current connection of a socket source; None for every other kind."""

    def input_args(self, start: float | None = None) -> list[str]: ...

    def prepare(self, stop: threading.Event, on_state: StateCallback | None = None) -> VideoFormat | None: ...

    def feed(self, sink: IO[bytes], stop: threading.Event, on_state: StateCallback | None = None) -> None: ...

    def close(self) -> None: ...

    def describe(self) -> str: ...


class SourceBase:
    """Defaults shared by the concrete sources (no telemetry, no feeder, nothing to close)."""

    kind: str = "source"
    live: bool = False
    seekable: bool = False
    realtime: bool = False
    finished: bool = False
    backs_off: bool = False
    bytes_received: int = 0

    @property
    def has_feeder(self) -> bool:
        return False

    @property
    def recording(self) -> Path | None:
        return None

    @property
    def stream(self) -> LiveStream | None:
        return None

    def input_args(self, start: float | None = None) -> list[str]:
        raise NotImplementedError

    def prepare(self, stop: threading.Event, on_state: StateCallback | None = None) -> VideoFormat | None:
        """Get ready for the next run and tell its picture size; None when `stop` was set meanwhile.

        Raises MediaError (naming the input) when the input cannot be decoded.
        """
        raise NotImplementedError

    def feed(self, sink: IO[bytes], stop: threading.Event, on_state: StateCallback | None = None) -> None:
        """Write the input into ffmpeg's stdin until exhausted or stopped (sources with a feeder)."""
        raise NotImplementedError(f"{type(self).__name__} has no feeder")

    def close(self) -> None:
        """Release what the source holds between runs (a socket's connection threads); safe to call twice."""

    @property
    def name(self) -> str:
        raise NotImplementedError

    def describe(self) -> str:
        return f"{self.kind} {self.name}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


__all__ = ["LiveStream", "SESSION_END_AFTER", "SESSION_IDLE_TIMEOUT", "Source", "SourceBase", "StateCallback",
           "VideoFormat", "probe_format", "probe_recording", "unix_address"]
