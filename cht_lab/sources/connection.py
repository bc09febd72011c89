"""One connection to cht's scene.sock, read by its own thread from connect to hang-up."""

from __future__ import annotations

import collections
import logging
import socket
import threading
import time
from typing import TYPE_CHECKING

from cht_lab.ffmpeg import MediaError
from cht_lab.sources.annexb import AnnexBScanner, starts_access_unit

if TYPE_CHECKING:
    from cht_lab.sources.socket import SocketSource

log = logging.getLogger(__name__)

SIGNATURE_UNITS = 24  # access units whose sizes are kept to find the stream in the recording


class Connection:
    """One connection to a SocketSource's server, read by its own thread from connect to hang-up.

    The thread connects (with the source's backoff), skips to the first complete keyframe, then
    keeps receiving into memory (up to SocketSource.MAX_BUFFER ahead of the feeder), so reading
    never waits for ffmpeg; the feeder takes the bytes with take().
    """

    def __init__(self, source: "SocketSource"):
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
            sock = src.connect(self.closed, src.emit)
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
                src.connection_ended(self)

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
                    src.emit("ended", f"{src.path}: server closed the connection before a keyframe")
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
                    and time.monotonic() - t0 >= src.garbage_after):
                reported = True
                msg = (f"{src.path}: received {skipped / 1024:.0f} KiB in {time.monotonic() - t0:.0f} s "
                       "but no H.264 (no SPS/keyframe): not H.264 Annex-B?")
                log.warning(msg)
                src.emit("garbage", msg)
        return False


__all__ = ["Connection", "SIGNATURE_UNITS"]
