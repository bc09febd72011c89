"""Inputs ffmpeg reads by itself: a finished recording (seekable) and URLs / devices."""

from __future__ import annotations

import logging
import os
import re
import threading
from pathlib import Path

from cht_lab.ffmpeg import MediaError
from cht_lab.sources.base import SourceBase, StateCallback, VideoFormat, probe_format, probe_recording

log = logging.getLogger(__name__)

_URL_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_DEVICE_PREFIXES = ("lavfi:", "x11grab:", "v4l2:", "avfoundation:", "gdigrab:", "dshow:", "kmsgrab:", "pulse:")
_PROTOCOL_PREFIXES = ("file:", "pipe:", "concat:", "subfile:")


class FileSource(SourceBase):
    """A finished recording: ffmpeg reads it at maximum speed, or at `speed` × real time."""

    kind = "file"
    seekable = True

    def __init__(self, path: str | os.PathLike[str], *, realtime: bool = False, speed: float = 1.0):
        self.path = Path(path)
        if not self.path.exists():
            raise MediaError(self.path, "no such file")
        if not self.path.is_file():
            raise MediaError(self.path, "not a regular file")
        if self.path.stat().st_size == 0:
            raise MediaError(self.path, "empty file (0 bytes)")
        self.realtime = bool(realtime)
        self.speed = float(speed)
        self._format: VideoFormat | None = None

    @property
    def name(self) -> str:
        return str(self.path)

    @property
    def recording(self) -> Path | None:
        return self.path

    def prepare(self, stop: threading.Event, on_state: StateCallback | None = None) -> VideoFormat | None:
        if self._format is None:
            self._format, info = probe_recording(self.path)
            if not info.complete:  # decode what is there, and say why the end is missing
                msg = (f"{self.path}: truncated or damaged recording (its last packet is incomplete); "
                       f"decoding the {info.duration:.3f} s that can be read")
                log.warning("%s", msg)
                if on_state:
                    on_state("damaged", msg)
        return self._format

    def input_args(self, start: float | None = None) -> list[str]:
        args: list[str] = []
        if self.realtime:
            args += ["-readrate", f"{self.speed:g}"]
        if start is not None and start > 0:
            # accurate seek (frames before `start` are decoded and dropped) that keeps the recording's
            # timestamps: a resumed run reports the same pts a full run would, to the microsecond
            args += ["-copyts", "-start_at_zero", "-ss", f"{start:.6f}"]
        return args + ["-i", str(self.path)]



class UrlSource(SourceBase):
    """Anything ffmpeg opens by itself: rtsp/srt/udp/http URLs, `file:` paths, lavfi and grab devices.

    `lavfi:GRAPH` and `x11grab:DISPLAY` (and other `device:` prefixes) become `-f device -i ...`.
    """

    kind = "url"

    def __init__(self, url: str, *, realtime: bool = False, live: bool | None = None,
                 extra_input_args: list[str] | None = None):
        self.url = str(url)
        self.realtime = bool(realtime)
        self.extra_input_args = list(extra_input_args or [])
        scheme = self.url.split(":", 1)[0].lower()
        self.device = scheme if f"{scheme}:" in _DEVICE_PREFIXES else None
        if live is None:
            live = scheme in ("rtsp", "rtsps", "rtmp", "srt", "udp", "rtp", "tcp") or (
                self.device is not None and self.device != "lavfi")
        self.live = bool(live)

    @property
    def name(self) -> str:
        return self.url

    def prepare(self, stop: threading.Event, on_state: StateCallback | None = None) -> VideoFormat | None:
        args = [a for a in self.input_args() if a != "-re"]
        return probe_format(args, name=self.url, timeout=30.0)

    def input_args(self, start: float | None = None) -> list[str]:
        args = list(self.extra_input_args)
        if self.realtime and not self.live:
            args += ["-re"]
        if self.device is not None:
            return args + ["-f", self.device, "-i", self.url.split(":", 1)[1]]
        return args + ["-i", self.url]


def is_url(spec: str) -> bool:
    """True for specs ffmpeg opens by itself (URL schemes, protocol and device prefixes)."""
    return bool(_URL_RE.match(spec)) or spec.startswith(_DEVICE_PREFIXES) or spec.startswith(_PROTOCOL_PREFIXES)


__all__ = ["FileSource", "UrlSource", "is_url"]
