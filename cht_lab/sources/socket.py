"""cht's scene.sock: H.264 Annex-B on a Unix socket, one reader thread per connection."""

from __future__ import annotations

import collections
import logging
import os
import socket
import threading
import time
from pathlib import Path
from typing import IO

from cht_lab.ffmpeg import MediaError
from cht_lab.sources.annexb import AnnexBScanner, NalUnit, starts_access_unit
from cht_lab.sources.base import SourceBase, StateCallback, VideoFormat, probe_format, unix_address

log = logging.getLogger(__name__)

SIGNATURE_UNITS = 24  # access units whose sizes are kept to find the stream in the recording


class SocketSource(SourceBase):
    """cht's `scene.sock`: H.264 Annex-B on a Unix socket, piped into ffmpeg (`-f h264`).

    Each ffmpeg run is one connection. `prepare()` connects with backoff (0.2 s doubling to
    `max_backoff`; while the socket file is absent its return is watched every 50 ms) and reads
    up to the first complete keyframe. From then on a connection thread receives everything into
    memory as it arrives (noting when each access unit came, for lag and timeline mapping), and
    `feed()` passes it to ffmpeg. When the server hangs up, the thread connects again at once and
    buffers the next stream while the previous ffmpeg still drains its last frames: a recorder
    restart costs no keyframe. A server restart is a new run whose stream time starts again at 0.

    `end_after`: seconds the socket file may be absent before the stream counts as ended for good
    (`finished`); None waits forever. `close()` ends the connection threads.
    """

    kind = "socket"
    live = True
    backs_off = True
    MAX_BUFFER = 32 << 20  # bytes received ahead of ffmpeg before the connection stops reading

    def __init__(self, path: str | os.PathLike[str], *, min_backoff: float = 0.2, max_backoff: float = 5.0,
                 end_after: float | None = None, recv_size: int = 1 << 16, framerate: float | None = None,
                 garbage_after: float = 3.0):
        self.path = Path(path)
        self.min_backoff = float(min_backoff)
        self.max_backoff = float(max_backoff)
        # the server is gone for good once its socket file has been absent this long (None: wait forever)
        self.end_after = end_after
        self.recv_size = int(recv_size)
        self.framerate = framerate  # only for streams without timing info in their SPS
        self.connections = 0
        self.bytes_received = 0
        self.finished = False
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._current: _Connection | None = None  # prepared by prepare(), fed by feed()
        self._next: _Connection | None = None  # connecting / buffering for the next prepare()
        self._on_state: StateCallback | None = None
        self._garbage_after = float(garbage_after)  # s of bytes without video before on_state('garbage')

    @property
    def name(self) -> str:
        return str(self.path)

    @property
    def has_feeder(self) -> bool:
        return True

    @property
    def stream(self) -> "_Connection | None":
        """The current run's connection: when its keyframe came, its bytes, when each unit arrived."""
        return self._current

    def input_args(self, start: float | None = None) -> list[str]:
        # a short analysis: the SPS timing (frame rate) is found within 0.2 s, the first frame comes
        # right after instead of ~1.5 s later with the defaults
        args = ["-f", "h264", "-analyzeduration", "200000", "-flags", "low_delay"]
        if self.framerate:
            args += ["-framerate", f"{self.framerate:g}"]
        return args + ["-i", "pipe:0"]

    def _emit(self, state: str, message: str | None) -> None:
        on_state = self._on_state
        if on_state is not None:
            on_state(state, message)

    def connect(self, stop: threading.Event, on_state: StateCallback | None = None) -> socket.socket | None:
        """Connect, retrying with exponential backoff until connected or `stop` is set.

        Returns None when stopped, or when the socket file has been absent for `end_after` s
        (then `finished` is True and on_state('ended', ...) says so).
        """
        delay = self.min_backoff
        attempt = 0
        last_seen = time.monotonic()
        while not stop.is_set():
            present = self.path.exists()
            if present:
                last_seen = time.monotonic()
            elif self.end_after is not None and time.monotonic() - last_seen >= self.end_after:
                log.info("%s has been gone for %.1f s; the stream has ended", self.path, self.end_after)
                self.finished = True
                if on_state:
                    on_state("ended", f"{self.path}: server gone (socket absent for {self.end_after:g} s)")
                return None
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                with unix_address(self.path) as addr:
                    sock.connect(addr)
                self.connections += 1
                if on_state:
                    on_state("connected", f"connected to {self.path}")
                log.info("connected to %s", self.path)
                return sock
            except OSError as exc:
                sock.close()
                attempt += 1
                msg = f"{self.path}: cannot connect ({exc.strerror or exc}); retrying in {delay:.1f} s"
                if attempt == 1 or attempt % 10 == 0:
                    log.info(msg)
                if on_state:
                    on_state("reconnecting" if self.connections else "connecting", msg)
                waited, wait = 0.0, delay
                if self.end_after is not None:
                    wait = max(0.05, min(wait, self.end_after - (time.monotonic() - last_seen)))
                # while the socket file is absent, watch for it to come back rather than sleep the backoff
                while waited < wait and not stop.is_set():
                    step = min(0.05, wait - waited)
                    if stop.wait(step):
                        break
                    waited += step
                    if not present and self.path.exists():
                        break
                delay = min(delay * 2, self.max_backoff)
        return None

    def prepare(self, stop: threading.Event, on_state: StateCallback | None = None) -> VideoFormat | None:
        """Connect and read up to the first complete keyframe: it tells the picture size and opens the stream.

        Uses the connection already made in the background when the previous one hung up. Bytes
        before the first SPS are skipped (a client may join mid-stream; a broken server may send
        junk): after `garbage_after` seconds of them, on_state('garbage', ...) says so once, and
        reading goes on until valid H.264 arrives or the server hangs up (then None, as when
        `stop` is set or the server is gone for good).
        """
        self._on_state = on_state
        self._closed.clear()
        with self._lock:
            old, self._current = self._current, None
            if self._next is None:
                self._next = _Connection(self)
            conn = self._next  # stays there until it is ours: close() must find it
        if old is not None:
            old.close()
        if not conn.wait_keyframe(stop):
            with self._lock:
                if self._next is conn:
                    self._next = None
            conn.close()
            if conn.error is not None:
                raise conn.error
            return None
        try:
            fmt = probe_format(self.input_args(), name=str(self.path), data=conn.prefix)
        except BaseException:
            with self._lock:
                if self._next is conn:
                    self._next = None
            conn.close()
            raise
        with self._lock:
            if self._next is conn:
                self._next = None
            self._current = conn
            if conn.hung_up:  # the whole stream came before we got here: reconnect now
                self._start_next()
        return fmt

    def _connection_ended(self, conn: "_Connection") -> None:
        """A streaming connection hung up: connect again now, while the run it fed drains."""
        with self._lock:
            if self._current is conn:  # else prepare() does it once the connection is ours
                self._start_next()

    def _start_next(self) -> None:
        if not self._closed.is_set() and self._next is None and not self.finished:
            self._next = _Connection(self)

    def close(self) -> None:
        """End the connection threads (the current run's and one made for the next run)."""
        self._closed.set()
        with self._lock:
            conns = [c for c in (self._current, self._next) if c is not None]
            self._current = self._next = None
        for conn in conns:
            conn.close()

    def feed(self, sink: IO[bytes], stop: threading.Event, on_state: StateCallback | None = None) -> None:
        """Pump the prepared connection (keyframe first) into ffmpeg; without prepare(), connect and copy raw."""
        if on_state is not None:
            self._on_state = on_state
        conn = self._current
        try:
            if conn is not None:
                self._feed_connection(conn, sink, stop)
            else:
                self._feed_raw(sink, stop, on_state)
        except (BrokenPipeError, ValueError):  # ValueError: stdin closed by stop()
            log.debug("ffmpeg stdin closed; socket feeder ends")
        finally:
            try:
                sink.close()
            except OSError:
                pass

    def _feed_connection(self, conn: "_Connection", sink: IO[bytes], stop: threading.Event) -> None:
        while not stop.is_set():
            data = conn.take(stop)
            if data is None:
                if conn.hung_up:
                    self._emit("ended", f"{self.path}: server closed the connection")
                return
            sink.write(data)
            sink.flush()

    def _feed_raw(self, sink: IO[bytes], stop: threading.Event, on_state: StateCallback | None) -> None:
        sock = self.connect(stop, on_state)
        if sock is None:
            return
        try:
            sock.settimeout(0.25)  # wake up to notice `stop`
            while not stop.is_set():
                try:
                    data = sock.recv(self.recv_size)
                except socket.timeout:
                    continue
                except OSError as exc:
                    log.info("%s: connection lost: %s", self.path, exc)
                    break
                if not data:
                    log.info("%s: server closed the connection", self.path)
                    if on_state:
                        on_state("ended", f"{self.path}: server closed the connection")
                    break
                self.bytes_received += len(data)
                sink.write(data)
                sink.flush()
        finally:
            sock.close()


class _Connection:
    """One connection to a SocketSource's server, read by its own thread from connect to hang-up.

    The thread connects (with the source's backoff), skips to the first complete keyframe, then
    keeps receiving into memory (up to SocketSource.MAX_BUFFER ahead of the feeder), so reading
    never waits for ffmpeg; the feeder takes the bytes with take().
    """

    def __init__(self, source: SocketSource):
        self.source = source
        self.closed = threading.Event()
        self.cond = threading.Condition()
        self.chunks: collections.deque[bytes] = collections.deque()
        self.buffered = 0
        self.streaming = False  # the first keyframe is in
        self.done = False  # the thread has ended (hang-up, error, server gone, close)
        self.hung_up = False  # ... because the server closed a streaming connection
        self.error: MediaError | None = None
        self.prefix: bytes | None = None  # SPS ... first complete picture (+ what came with it)
        self.keyframe_at: tuple[float, float] | None = None
        self.keyframe_unit: bytes | None = None
        # access units of this connection (0 = the keyframe) and when each began to arrive
        self.arrivals: collections.deque[float] = collections.deque(maxlen=4096)
        self.arrivals_base = 0  # access-unit number of arrivals[0]
        self.units_received = 0
        self.unit_starts: list[int] = []  # stream offsets of the first SIGNATURE_UNITS access units
        self._scanner = AnnexBScanner()
        self._prev: int | None = None
        self.sock: socket.socket | None = None
        self.thread = threading.Thread(target=self._run, name="scene-socket", daemon=True)
        self.thread.start()

    # ------------------------------------------------------------ the owner's side

    def wait_keyframe(self, stop: threading.Event) -> bool:
        """Block until the first keyframe is in (True), or the connection ended / `stop` was set (False)."""
        with self.cond:
            while not self.streaming and not self.done and not stop.is_set():
                self.cond.wait(0.1)
            return self.streaming and not stop.is_set()

    def take(self, stop: threading.Event) -> bytes | None:
        """The next received bytes; None once the connection is over and drained, or `stop` is set."""
        with self.cond:
            while not self.chunks and not self.done and not stop.is_set() and not self.closed.is_set():
                self.cond.wait(0.1)
            if stop.is_set() or self.closed.is_set() or not self.chunks:
                return None
            data = self.chunks.popleft()
            self.buffered -= len(data)
            self.cond.notify_all()  # room again for the receiving thread
            return data

    def unit_sizes(self) -> list[int]:
        """Byte sizes of the connection's first complete access units (0 = the keyframe's), up to
        SIGNATURE_UNITS: with the bytes of later units they identify where the stream began."""
        starts = list(self.unit_starts)
        return [b - a for a, b in zip(starts, starts[1:])]

    def unit_arrival(self, number: int) -> float | None:
        k = number - self.arrivals_base
        try:
            return self.arrivals[k] if k >= 0 else None
        except IndexError:
            return None

    def close(self) -> None:
        self.closed.set()
        with self.cond:
            self.cond.notify_all()
        sock = self.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # wakes a recv() at once
            except OSError:
                pass
        if self.thread is not threading.current_thread():
            self.thread.join(timeout=2.0)

    # ------------------------------------------------------------ the thread

    def _run(self) -> None:
        src = self.source
        sock: socket.socket | None = None
        try:
            sock = src.connect(self.closed, src._emit)
            if sock is None:
                return
            self.sock = sock
            if self.closed.is_set():  # close() came while connecting
                return
            if not self._read_keyframe(sock):
                return
            self._receive(sock)
        except MediaError as exc:
            self.error = exc
        except Exception as exc:  # never die silently
            log.exception("%s: socket connection thread failed", src.path)
            self.error = MediaError(src.path, f"connection failed: {type(exc).__name__}: {exc}")
        finally:
            if sock is not None:
                sock.close()
            with self.cond:
                self.done = True
                self.cond.notify_all()
            if self.hung_up and not self.closed.is_set():
                src._connection_ended(self)

    def _add(self, data: bytes, now: float) -> None:
        """Queue received stream bytes for the feeder and note the arrival of each access unit in them."""
        for nal in self._scanner.feed(data):
            if starts_access_unit(nal, self._prev):
                if len(self.arrivals) == self.arrivals.maxlen:
                    self.arrivals_base += 1
                self.arrivals.append(now)
                self.units_received += 1
                if len(self.unit_starts) <= SIGNATURE_UNITS:
                    self.unit_starts.append(nal.pos)
            self._prev = nal.type
        with self.cond:
            self.chunks.append(data)
            self.buffered += len(data)
            self.cond.notify_all()

    def _receive(self, sock: socket.socket) -> None:
        src = self.source
        while not self.closed.is_set():
            with self.cond:
                while self.buffered >= src.MAX_BUFFER and not self.closed.is_set():
                    self.cond.wait(0.25)  # ffmpeg is far behind: let the server see a slow client
            try:
                data = sock.recv(src.recv_size)
            except socket.timeout:
                continue
            except OSError as exc:
                if not self.closed.is_set():
                    log.info("%s: connection lost: %s", src.path, exc)
                    self.hung_up = True
                return
            if not data:
                if not self.closed.is_set():  # not our own shutdown()
                    log.info("%s: server closed the connection", src.path)
                    self.hung_up = True
                return
            src.bytes_received += len(data)
            self._add(data, time.monotonic())

    def _read_keyframe(self, sock: socket.socket) -> bool:
        """Read up to the first complete keyframe and queue the stream from its SPS on; False if there was none."""
        src = self.source
        scanner = AnnexBScanner()
        buf = bytearray()  # stream bytes from `base` on
        base = 0
        sps: int | None = None  # where the keyframe's parameter sets start
        idr_seen = False
        skipped = 0
        t0 = time.monotonic()
        reported = False
        keyframe_at: tuple[float, float] | None = None
        sock.settimeout(0.25)
        while not self.closed.is_set():
            try:
                data = sock.recv(src.recv_size)
            except socket.timeout:
                data = None
            except OSError as exc:
                log.info("%s: connection lost: %s", src.path, exc)
                return False
            if data == b"":
                if not self.closed.is_set():
                    log.info("%s: server closed the connection before a keyframe", src.path)
                    src._emit("ended", f"{src.path}: server closed the connection before a keyframe")
                return False
            if data:
                src.bytes_received += len(data)
                buf += data
                for nal in scanner.feed(data):
                    if sps is None and nal.type == 7:
                        sps = nal.pos
                        keyframe_at = (time.time(), time.monotonic())
                    elif sps is not None and nal.type == 5:
                        idr_seen = True
                    elif idr_seen and starts_access_unit(nal, 5):
                        assert keyframe_at is not None
                        self.keyframe_unit = bytes(buf[sps - base:nal.pos - base])
                        self.keyframe_at = keyframe_at
                        self.prefix = bytes(buf[sps - base:])  # SPS ... first picture complete
                        self._add(self.prefix, keyframe_at[1])
                        with self.cond:
                            self.streaming = True
                            self.cond.notify_all()
                        return True
                if sps is None and len(buf) > 8:  # keep only what may hold a start code
                    skipped += len(buf) - 8
                    base += len(buf) - 8
                    del buf[:-8]
                elif sps is not None and len(buf) - (sps - base) > (32 << 20):
                    raise MediaError(src.path, "no complete H.264 keyframe in the first 32 MiB")
            if (not reported and sps is None and skipped >= 64 * 1024
                    and time.monotonic() - t0 >= src._garbage_after):
                reported = True
                msg = (f"{src.path}: received {skipped / 1024:.0f} KiB in {time.monotonic() - t0:.0f} s "
                       "but no H.264 (no SPS/keyframe): not H.264 Annex-B?")
                log.warning(msg)
                src._emit("garbage", msg)
        return False


__all__ = ["SocketSource"]
