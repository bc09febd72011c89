"""open_source: map what a user passes (path, socket, session directory, URL) onto a Source."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from cht_lab import layout
from cht_lab.ffmpeg import MediaError
from cht_lab.sources.base import SESSION_END_AFTER, SESSION_IDLE_TIMEOUT, Source, SourceBase
from cht_lab.sources.file import FileSource, UrlSource, is_url
from cht_lab.sources.growing import FollowSource
from cht_lab.sources.socket import SocketSource


def open_source(spec: Any, *, realtime: bool = False, end_after: float | None = None) -> Source:
    """Map a user's source spec onto a Source.

    - a Source: returned as is
    - `follow:PATH`: FollowSource; `unix:PATH`: SocketSource
    - a URL (`rtsp://`, `srt://`, `udp://`, `http://`, `file:`...) or `lavfi:`/`x11grab:` spec: UrlSource
    - an existing Unix socket: SocketSource
    - a cht session directory: its `scene.sock` if present, else follow its newest recording
      (either counts as finished once the server is gone: see SESSION_END_AFTER / SESSION_IDLE_TIMEOUT)
    - an existing regular file: FileSource (max speed, or real-time pace with realtime=True)
    - anything else: MediaError(path, "no such file")

    `end_after`: for a cht session's socket, the seconds it may be gone before the session counts
    as over (None: SESSION_END_AFTER, 5 s, longer than a recorder restart; math.inf: wait forever).
    Each finished session pays it once after its server has gone.
    """
    if isinstance(spec, SourceBase):
        return spec
    if not isinstance(spec, (str, os.PathLike)):
        raise TypeError(f"unsupported source {spec!r}: give a path, a URL, or a Source")
    text = os.fspath(spec)
    if isinstance(text, bytes):
        text = os.fsdecode(text)
    if isinstance(spec, str):
        if text.startswith("follow:"):
            return FollowSource(text[len("follow:"):], realtime=realtime)
        if text.startswith("unix:"):
            return SocketSource(text[len("unix:"):])
        if is_url(text):
            return UrlSource(text, realtime=realtime)
    path = Path(text).expanduser()
    try:
        st = path.stat()
    except FileNotFoundError:
        raise MediaError(path, "no such file") from None
    except OSError as exc:
        raise MediaError(path, f"cannot access ({exc.strerror or exc})") from None
    if stat.S_ISSOCK(st.st_mode):
        return SocketSource(path)
    if stat.S_ISDIR(st.st_mode):
        sock = path / layout.SOCKET_NAME
        if sock.exists() and stat.S_ISSOCK(sock.stat().st_mode):
            return SocketSource(sock, end_after=SESSION_END_AFTER if end_after is None else float(end_after))
        if layout.is_session_dir(path):
            return FollowSource(path, realtime=realtime, idle_timeout=SESSION_IDLE_TIMEOUT)
        raise MediaError(path, "a directory that is not a cht session (no scene.sock, no stream/)")
    if stat.S_ISREG(st.st_mode):
        return FileSource(path, realtime=realtime)
    if stat.S_ISFIFO(st.st_mode):
        return UrlSource(f"file:{path}", live=True)
    raise MediaError(path, "not a regular file, socket or session directory")


__all__ = ["open_source"]
