"""Replay: turn a recording into a live cht server, so live mode can be built, tested and demoed without cht.

A replay creates a new session directory and, at real time × `speed`, writes a growing
fragmented MP4 into `stream/` and serves the same H.264 as Annex-B on `scene.sock` — exactly what
cht's recorder does. One ffmpeg per recorded segment reads the source once (`-readrate`) and
writes both outputs by stream copy, so file and socket advance together. Multi-segment sessions
are replayed as recorder restarts: a new stream file named by its start time, and socket clients
see a disconnect followed by a new stream.
"""

from __future__ import annotations

import itertools
import logging
import os
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Callable

from cht_lab import layout
from cht_lab.ffmpeg import FfmpegProcess, MediaError, probe
from cht_lab.sources import AnnexBScanner
from cht_lab.tools.stream_server import StreamServer

log = logging.getLogger(__name__)

MAX_SPEED = 10.0  # ffmpeg 9's -readrate falls into its catch-up logic and crawls above ~10x
FRAG_DURATION_US = 200_000  # a new fMP4 fragment at least every 0.2 s of media, so followers see data soon


def default_out_dir() -> Path:
    """Where replays put their sessions when no out_dir is given: a 'cht_lab-sessions' temp folder."""
    return Path(tempfile.gettempdir()) / "cht_lab-sessions"


@dataclass(frozen=True)
class _Plan:
    path: Path
    offset: float  # global seconds in the source session


class Replay:
    """A live cht server made from a recording: growing fMP4 in `stream/` + H.264 on `scene.sock`.

    Use as a context manager (or start()/stop()). `session_dir` and `socket_path` exist once
    started; `done` is set when the source is exhausted (never with loop=True); `errors` lists
    what went wrong (ffmpeg failures), also shown in `status`.

    `wait_for_client` (seconds): hold the stream, and the clock that paces it, until the first
    socket client has connected (or that long has passed). A client joins at the next keyframe,
    so one started just after the replay (a LiveSession on `session_dir`) would otherwise miss
    the first GOP whenever anything slow runs in between. None streams at once, as cht does.
    """

    def __init__(self, source: str | os.PathLike[str], out_dir: str | os.PathLike[str] | None = None,
                 speed: float = 1.0, *, socket_name: str = layout.SOCKET_NAME, loop: bool = False,
                 socket_path: str | os.PathLike[str] | None = None, record_sends: bool = False,
                 on_segment: Callable[[int, Path], None] | None = None, wait_for_client: float | None = None):
        self.source = Path(source)
        if not self.source.exists():
            raise MediaError(self.source, "no such file")
        if speed <= 0:
            raise ValueError(f"speed must be positive, not {speed}")
        if speed > MAX_SPEED:
            log.warning("replay speed %gx capped at %gx: ffmpeg's -readrate stalls above that (it keeps "
                        "'catching up' and ends up far slower)", speed, MAX_SPEED)
        self.speed = float(min(speed, MAX_SPEED))
        self.loop = bool(loop)
        self.out_dir = Path(out_dir) if out_dir is not None else default_out_dir()
        self.socket_name = socket_name
        self._socket_path_override = Path(socket_path) if socket_path is not None else None
        self.record_sends = record_sends
        self.on_segment = on_segment
        self.wait_for_client = wait_for_client
        self._plan, self._audio_src = self._make_plan()
        self.session_dir: Path | None = None
        self.socket_path: Path | None = None
        self.server: StreamServer | None = None
        self.done = threading.Event()
        self.errors: list[dict[str, Any]] = []
        self.segments: list[Path] = []  # stream files written so far
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._proc: FfmpegProcess | None = None
        self._audio_proc: FfmpegProcess | None = None
        self._lock = threading.Lock()
        self._state = "idle"
        self._started_at: datetime | None = None
        self._t0 = 0.0

    def _make_plan(self) -> tuple[list[_Plan], Path | None]:
        src = self.source
        if src.is_dir():
            segments = layout.discover_segments(src)
            if not segments:
                raise MediaError(src, f"no recordings in {layout.STREAM_DIR}/ to replay")
            audio = src / layout.STREAM_DIR / layout.AUDIO_AAC
            return [_Plan(s.path, s.offset) for s in segments], audio if audio.is_file() else None
        if not src.is_file():
            raise MediaError(src, "not a recording file or session directory")
        return [_Plan(src, 0.0)], None

    # -------------------------------------------------------------- lifecycle

    def start(self) -> "Replay":
        """Create the session directory and the socket, then start streaming. Idempotent."""
        with self._lock:
            if self._state != "idle":
                return self
            self._state = "starting"
        first = probe(self._plan[0].path)  # fail now, naming the file, rather than in a thread
        if first.video is None:
            raise MediaError(self._plan[0].path, "no video stream to replay")
        self._started_at = datetime.now().replace(microsecond=0)
        self.session_dir = layout.create_session_dir(self.out_dir, self._started_at)
        self._started_at = layout.parse_start_time(self.session_dir.name) or self._started_at
        (self.session_dir / layout.STREAM_DIR).mkdir(exist_ok=True)
        labels = self.source / layout.LABELS_CSV if self.source.is_dir() else None
        if labels is not None and labels.is_file():  # same timeline, so the ground truth still holds
            shutil.copyfile(labels, self.session_dir / layout.LABELS_CSV)
        self.socket_path = self._socket_path_override or self.session_dir / self.socket_name
        self.server = StreamServer(self.socket_path, record_sends=self.record_sends).start()
        if self.wait_for_client is None:
            self._begin()
        self._thread = threading.Thread(target=self._run, name="replay", daemon=True)
        self._state = "running"
        self._thread.start()
        log.info("replaying %s at %gx into %s", self.source, self.speed, self.session_dir)
        return self

    def _begin(self) -> bool:
        """Start the clock (and the audio.aac writer); False when stop() came first."""
        with self._lock:  # stop() sets _stop before it takes the lock: it sees what starts here
            if self._stop.is_set():
                return False
            self._t0 = time.monotonic()
            if self._audio_src is not None:
                assert self.session_dir is not None
                self._audio_proc = FfmpegProcess(
                    ["-hide_banner", "-nostdin", "-loglevel", "error", "-readrate", f"{self.speed:g}",
                     "-i", str(self._audio_src), "-c", "copy", "-f", "adts", "-flush_packets", "1",
                     str(self.session_dir / layout.STREAM_DIR / layout.AUDIO_AAC)],
                    stdout=None, name="replay-audio")
        return True

    def _await_client(self, timeout: float) -> None:
        assert self.server is not None
        deadline = time.monotonic() + timeout
        while self.server.clients == 0 and not self._stop.is_set():
            if time.monotonic() >= deadline:
                log.warning("no client on %s after %.1f s; streaming anyway", self.socket_path, timeout)
                return
            self._stop.wait(0.01)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop streaming, reap ffmpeg, remove the socket. Safe to call twice or before start()."""
        self._stop.set()
        with self._lock:
            proc, audio = self._proc, self._audio_proc
        for p in (proc, audio):
            if p is not None:
                p.stop(timeout=2.0)
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("replay thread did not end within %.1f s", timeout)
        if self.server is not None:
            self.server.stop()
        if self._state not in ("idle", "finished", "failed"):
            self._state = "stopped"

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the source is exhausted (True) or `timeout` passes (False)."""
        return self.done.wait(timeout)

    def __enter__(self) -> "Replay":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def status(self) -> dict[str, Any]:
        return {
            "state": self._state,
            "session_dir": str(self.session_dir) if self.session_dir else None,
            "socket": str(self.socket_path) if self.socket_path else None,
            "segments": len(self.segments),
            "clients": self.server.clients if self.server else 0,
            "access_units": self.server.access_units if self.server else 0,
            "elapsed": time.monotonic() - self._t0 if self._t0 else 0.0,
            "errors": list(self.errors),
        }

    # -------------------------------------------------------------- worker

    def _error(self, message: str) -> None:
        log.error("replay of %s: %s", self.source, message)
        self.errors.append({"time": time.time(), "error": message})
        del self.errors[:-50]

    def _run(self) -> None:
        try:
            if self.wait_for_client is not None:
                self._await_client(self.wait_for_client)
                if not self._begin():
                    return  # stopped while waiting
            self._run_segments()
            if not self._stop.is_set():
                self._state = "finished" if not self.errors else "failed"
        except Exception as exc:  # never die silently
            self._error(f"{type(exc).__name__}: {exc}")
            self._state = "failed"
        finally:
            if self._audio_proc is not None and not self._stop.is_set():
                try:
                    self._audio_proc.wait(timeout=5.0)
                except Exception:
                    pass
                self._audio_proc.stop()
            if self.server is not None:
                self.server.stop()  # the server goes away, as cht's does when it ends
            self.done.set()
            log.info("replay of %s ended (%s)", self.source, self._state)

    def _run_segments(self) -> None:
        assert self.session_dir is not None and self._started_at is not None and self.server is not None
        single = len(self._plan) == 1
        base = 0.0
        last_name = ""
        for cycle in itertools.count():
            for k, plan in enumerate(self._plan):
                offset = base + plan.offset
                self._stop.wait(max(0.0, self._t0 + offset / self.speed - time.monotonic()))
                if self._stop.is_set():
                    return
                # named by media time, so the replayed session keeps the source's timeline (and labels)
                when = self._started_at + timedelta(seconds=offset)
                name = when.strftime(layout.TIME_FORMAT)
                while name <= last_name:  # one second resolution: keep names (= order) increasing
                    when += timedelta(seconds=1)
                    name = when.strftime(layout.TIME_FORMAT)
                last_name = name
                target = self.session_dir / layout.STREAM_DIR / f"{name}.mp4"
                if cycle > 0 or k > 0:
                    self.server.new_stream()  # recorder restart: clients see a disconnect
                self._stream_segment(plan.path, target, loop=self.loop and single)
                if self._stop.is_set():
                    return
            if not self.loop or single:
                return
            base = (time.monotonic() - self._t0) * self.speed

    def _stream_segment(self, src: Path, target: Path, *, loop: bool) -> None:
        info = probe(src)
        if info.video is None:
            self._error(f"{src}: no video stream; segment skipped")
            return
        vcodec = ["-c:v", "copy"] if info.video.codec == "h264" else [
            "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-pix_fmt", "yuv420p",
            "-g", str(max(1, round(info.video.fps or 30)))]
        has_audio = info.audio is not None and self._audio_src is None
        args = ["-hide_banner", "-nostdin", "-loglevel", "error", "-readrate", f"{self.speed:g}"]
        if loop:
            args += ["-stream_loop", "-1"]
        args += ["-i", str(src),
                 "-map", "0:v:0", *(["-map", "0:a:0", "-c:a", "copy"] if has_audio else []), *vcodec,
                 "-f", "mp4", "-movflags", "+frag_keyframe+empty_moov+default_base_moof",
                 "-frag_duration", str(FRAG_DURATION_US), "-flush_packets", "1", str(target),
                 "-map", "0:v:0", *vcodec, "-bsf:v", "h264_mp4toannexb", "-f", "h264", "-flush_packets", "1",
                 "pipe:1"]
        proc = FfmpegProcess(args, name="replay")
        with self._lock:
            self._proc = proc
        self.segments.append(target)
        log.info("replay segment %d: %s -> %s", len(self.segments) - 1, src.name, target.name)
        if self.on_segment is not None:
            try:
                self.on_segment(len(self.segments) - 1, target)
            except Exception as exc:
                log.error("on_segment callback failed: %s", exc, exc_info=exc)
        try:
            out = proc.stdout
            assert out is not None
            while True:
                chunk = out.read(1 << 16)  # unbuffered pipe: returns what one read() gives
                if not chunk:
                    break
                self.server.publish(chunk)  # type: ignore[union-attr]
            rc = proc.wait(timeout=10.0)
            if rc != 0 and not self._stop.is_set():
                self._error(f"{src}: ffmpeg failed while replaying ({proc.error_summary()})")
        finally:
            proc.stop()
            with self._lock:
                self._proc = None


def replay(recording_or_session: str | os.PathLike[str], out_dir: str | os.PathLike[str] | None = None,
           speed: float = 1.0, *, socket_name: str = layout.SOCKET_NAME, loop: bool = False,
           **kwargs: Any) -> Replay:
    """A live cht server from a recording or a session directory; starts when entered (or .start()).

    ``with replay("talk.mp4", speed=2) as server: LiveSession(server.session_dir)...``
    """
    return Replay(recording_or_session, out_dir, speed, socket_name=socket_name, loop=loop, **kwargs)


__all__ = ["Replay", "replay", "StreamServer", "AnnexBScanner", "default_out_dir", "FRAG_DURATION_US", "MAX_SPEED"]
