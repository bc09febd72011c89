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
import queue
import shutil
import socket
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Callable

from cht_lab import layout
from cht_lab.ffmpeg import FfmpegProcess, MediaError, probe
from cht_lab.sources.base import AnnexBScanner, NalUnit, starts_access_unit, unix_address

log = logging.getLogger(__name__)

MAX_SPEED = 10.0  # ffmpeg 9's -readrate falls into its catch-up logic and crawls above ~10x
FRAG_DURATION_US = 200_000  # a new fMP4 fragment at least every 0.2 s of media, so followers see data soon
_CLIENT_QUEUE = 512  # chunks queued for one client before it counts as too slow and is dropped


# --------------------------------------------------------------------------- socket server


class _Client:
    def __init__(self, conn: socket.socket, number: int, record: bool):
        self.conn = conn
        self.number = number
        self.queue: "queue.Queue[tuple[bytes, int] | None]" = queue.Queue(_CLIENT_QUEUE)
        self.active = False  # receiving the stream (joined at a keyframe)
        self.access_units = 0  # access units whose first bytes were sent
        self.sent: list[tuple[int, float]] | None = [] if record else None  # (access unit number, time.monotonic())
        self.closed = threading.Event()
        self.thread = threading.Thread(target=self._send_loop, name=f"replay-client-{number}", daemon=True)

    def _send_loop(self) -> None:
        try:
            while True:
                item = self.queue.get()
                if item is None:
                    break
                data, n_units = item
                self.conn.sendall(data)
                if n_units:
                    now = time.monotonic()
                    if self.sent is not None:
                        self.sent.extend((self.access_units + k, now) for k in range(n_units))
                    self.access_units += n_units
        except OSError as exc:
            log.info("replay client %d went away: %s", self.number, exc)
        finally:
            self.closed.set()
            try:
                self.conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.conn.close()

    def push(self, data: bytes, n_units: int) -> bool:
        if self.closed.is_set():
            return False
        try:
            self.queue.put_nowait((data, n_units))
            return True
        except queue.Full:
            log.warning("replay client %d is too slow; dropping it", self.number)
            self.close()
            return False

    def close(self) -> None:
        try:
            self.queue.put_nowait(None)
        except queue.Full:  # the sender is stuck: closing the socket unblocks it
            try:
                self.conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class StreamServer:
    """Serve a live H.264 Annex-B stream on a Unix socket, like cht's `scene.sock`.

    Each client gets the stream from the next keyframe on (parameter sets included), then
    everything live. `publish(chunk)` never blocks on clients: each has its own sender thread
    and queue, and a client that falls too far behind is dropped. `record_sends=True` keeps, per
    client, the time each access unit was sent (for latency measurements).
    """

    def __init__(self, socket_path: str | os.PathLike[str], *, record_sends: bool = False):
        self.socket_path = Path(socket_path)
        self.record_sends = record_sends
        self._listener: socket.socket | None = None
        self._clients: list[_Client] = []
        self._finished_clients: list[_Client] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._accept_thread: threading.Thread | None = None
        self._numbers = itertools.count()
        self._reset_stream()

    # -------------------------------------------------------------- lifecycle

    def start(self) -> "StreamServer":
        """Create the socket (owner-only permissions, from the first moment) and accept clients."""
        self.socket_path.parent.mkdir(parents=True, exist_ok=True)
        if self.socket_path.exists() or self.socket_path.is_symlink():
            self.socket_path.unlink()  # a stale socket from a server that died
        tmp = self.socket_path.with_name(f".{self.socket_path.name}.{os.getpid()}.tmp")
        if tmp.exists():
            tmp.unlink()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            with unix_address(tmp) as addr:
                sock.bind(addr)
            os.chmod(tmp, 0o600)  # before anyone can see it under its real name
            os.rename(tmp, self.socket_path)
            sock.listen(8)
        except OSError:
            sock.close()
            if tmp.exists():
                tmp.unlink()
            raise
        sock.settimeout(0.2)
        self._listener = sock
        self._stop.clear()
        self._accept_thread = threading.Thread(target=self._accept_loop, name="replay-accept", daemon=True)
        self._accept_thread.start()
        log.info("serving H.264 on %s", self.socket_path)
        return self

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except socket.timeout:
                continue
            except OSError as exc:
                if not self._stop.is_set():
                    log.error("replay server on %s stopped accepting: %s", self.socket_path, exc)
                break
            conn.setblocking(True)
            client = _Client(conn, next(self._numbers), self.record_sends)
            client.thread.start()
            with self._lock:
                self._clients.append(client)
            log.info("replay client %d connected to %s", client.number, self.socket_path)

    def stop(self) -> None:
        """Disconnect everyone, remove the socket file. Safe to call more than once."""
        self._stop.set()
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        if self._accept_thread is not None:
            self._accept_thread.join(timeout=2.0)
            self._accept_thread = None
        self.disconnect_all()
        try:
            if self.socket_path.exists():
                self.socket_path.unlink()
        except OSError as exc:
            log.warning("could not remove %s: %s", self.socket_path, exc)

    # -------------------------------------------------------------- stream

    def _reset_stream(self) -> None:
        self._scanner = AnnexBScanner()
        self._hist = bytearray()  # stream bytes from _hist_start (the current access unit's start) on
        self._hist_start = 0
        self._stream_end = 0
        self._au_start: int | None = None
        self._au_has_sps = False
        self._au_is_key = False
        self._prev_type: int | None = None
        self._prev_nal: NalUnit | None = None
        self._param_sets: dict[int, bytes] = {}
        self.access_units = 0

    def new_stream(self) -> None:
        """A new encoder run starts (recorder restart): clients are disconnected and must reconnect."""
        self.disconnect_all()
        self._reset_stream()

    def disconnect_all(self) -> None:
        with self._lock:
            clients, self._clients = self._clients, []
        for c in clients:
            c.close()
        for c in clients:
            c.thread.join(timeout=2.0)
        with self._lock:
            self._finished_clients.extend(clients)

    def publish(self, chunk: bytes) -> None:
        """Send the next bytes of the stream to every client (new clients join at a keyframe)."""
        if not chunk:
            return
        self._hist += chunk
        self._stream_end += len(chunk)
        with self._lock:
            clients = [c for c in self._clients if not c.closed.is_set()]
            self._finished_clients.extend(c for c in self._clients if c.closed.is_set())
            self._clients = clients
        active = [c for c in clients if c.active]
        pending = [c for c in clients if not c.active]
        joins: list[tuple[_Client, int, bytes]] = []  # client, join position, parameter sets to prepend
        unit_starts: list[int] = []
        for nal in self._scanner.feed(chunk):
            if self._prev_nal is not None and self._prev_nal.type in (7, 8):
                self._save_param_set(self._prev_nal, nal.pos)
            if starts_access_unit(nal, self._prev_type):
                self._au_start, self._au_has_sps, self._au_is_key = nal.pos, False, False
                unit_starts.append(nal.pos)
                self.access_units += 1
            self._prev_type, self._prev_nal = nal.type, nal
            if nal.type == 7:
                self._au_has_sps = True
            if nal.type in (5, 7) and not self._au_is_key and self._au_start is not None:
                self._au_is_key = True
                prefix = b"" if self._au_has_sps else b"".join(self._param_sets[t] for t in (7, 8)
                                                                if t in self._param_sets)
                joins.extend((c, self._au_start, prefix) for c in pending)
                pending = []
        for c in active:
            c.push(chunk, len(unit_starts))
        for c, pos, prefix in joins:
            data = prefix + bytes(self._hist[pos - self._hist_start:])
            if c.push(data, sum(1 for p in unit_starts if p >= pos)):
                c.active = True
                log.debug("replay client %d joined the stream at byte %d", c.number, pos)
        keep_from = self._au_start if self._au_start is not None else self._stream_end
        if self._prev_nal is not None and self._prev_nal.type in (7, 8):
            keep_from = min(keep_from, self._prev_nal.pos)  # its end is not known yet
        keep_from = max(keep_from, self._hist_start)
        del self._hist[: keep_from - self._hist_start]
        self._hist_start = keep_from

    def _save_param_set(self, nal: NalUnit, end: int) -> None:
        lo, hi = nal.pos - self._hist_start, end - self._hist_start
        if 0 <= lo < hi <= len(self._hist):
            self._param_sets[nal.type] = bytes(self._hist[lo:hi])

    # -------------------------------------------------------------- inspection

    @property
    def clients(self) -> int:
        with self._lock:
            return sum(1 for c in self._clients if not c.closed.is_set())

    def send_log(self) -> list[list[tuple[int, float]]]:
        """Per client (in connection order): (access unit number, time.monotonic() sent) pairs."""
        with self._lock:
            every = sorted([*self._finished_clients, *self._clients], key=lambda c: c.number)
            seen: set[int] = set()
            out = []
            for c in every:
                if c.number in seen:
                    continue
                seen.add(c.number)
                out.append(list(c.sent or []))
            return out


# --------------------------------------------------------------------------- replay


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
    """

    def __init__(self, source: str | os.PathLike[str], out_dir: str | os.PathLike[str] | None = None,
                 speed: float = 1.0, *, socket_name: str = layout.SOCKET_NAME, loop: bool = False,
                 socket_path: str | os.PathLike[str] | None = None, record_sends: bool = False,
                 on_segment: Callable[[int, Path], None] | None = None):
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
        self._t0 = time.monotonic()
        if self._audio_src is not None:
            self._audio_proc = FfmpegProcess(
                ["-hide_banner", "-nostdin", "-loglevel", "error", "-readrate", f"{self.speed:g}",
                 "-i", str(self._audio_src), "-c", "copy", "-f", "adts", "-flush_packets", "1",
                 str(self.session_dir / layout.STREAM_DIR / layout.AUDIO_AAC)],
                stdout=None, name="replay-audio")
        self._thread = threading.Thread(target=self._run, name="replay", daemon=True)
        self._state = "running"
        self._thread.start()
        log.info("replaying %s at %gx into %s", self.source, self.speed, self.session_dir)
        return self

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
