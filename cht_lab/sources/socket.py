"""cht's scene.sock: H.264 Annex-B on a Unix socket, one reader thread per connection."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from pathlib import Path
from typing import IO

from cht_lab.sources.base import SourceBase, StateCallback, VideoFormat, probe_format, unix_address
from cht_lab.sources.connection import Connection

log = logging.getLogger(__name__)



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
        self._current: Connection | None = None  # prepared by prepare(), fed by feed()
        self._next: Connection | None = None  # connecting / buffering for the next prepare()
        self._on_state: StateCallback | None = None
        self.garbage_after = float(garbage_after)  # s of bytes without video before on_state('garbage')

    @property
    def name(self) -> str:
        return str(self.path)

    @property
    def has_feeder(self) -> bool:
        return True

    @property
    def stream(self) -> "Connection | None":
        """The current run's connection: when its keyframe came, its bytes, when each unit arrived."""
        return self._current

    def input_args(self, start: float | None = None) -> list[str]:
        # a short analysis: the SPS timing (frame rate) is found within 0.2 s, the first frame comes
        # right after instead of ~1.5 s later with the defaults
        args = ["-f", "h264", "-analyzeduration", "200000", "-flags", "low_delay"]
        if self.framerate:
            args += ["-framerate", f"{self.framerate:g}"]
        return args + ["-i", "pipe:0"]

    def emit(self, state: str, message: str | None) -> None:
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
                self._next = Connection(self)
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

    def connection_ended(self, conn: "Connection") -> None:
        """A streaming connection hung up: connect again now, while the run it fed drains."""
        with self._lock:
            if self._current is conn:  # else prepare() does it once the connection is ours
                self._start_next()

    def _start_next(self) -> None:
        if not self._closed.is_set() and self._next is None and not self.finished:
            self._next = Connection(self)

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

    def _feed_connection(self, conn: "Connection", sink: IO[bytes], stop: threading.Event) -> None:
        while not stop.is_set():
            data = conn.take(stop)
            if data is None:
                if conn.hung_up:
                    self.emit("ended", f"{self.path}: server closed the connection")
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


__all__ = ["SocketSource"]
