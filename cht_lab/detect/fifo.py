"""FIFOs between ffmpeg and the readers: opened without blocking, read with a stop flag, grown pipes."""

from __future__ import annotations

import logging
import os
import select
import threading
from typing import IO, Callable

from cht_lab.ffmpeg import MediaError, grow_pipe

log = logging.getLogger(__name__)

PIPE_SIZE = 1 << 20


def open_fifo(path: str | os.PathLike[str], pipe_size: int = PIPE_SIZE) -> int:
    """Open a FIFO for reading without ever blocking: read-write and non-blocking.

    Holding a write end too means ffmpeg's open never blocks and its close-and-reopen during
    setup is harmless; the flip side is that EOF never comes, so readers stop when ffmpeg exits.
    """
    fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
    grow_pipe(fd, pipe_size)
    return fd


class FifoReader:
    """Buffered reader on a non-blocking FIFO fd that ends when `alive()` turns false and it is drained."""

    def __init__(self, fd: int, alive: Callable[[], bool], stop: threading.Event | None = None):
        self.fd = fd
        self._alive = alive
        self._stop = stop
        self.buf = bytearray()

    def _more(self) -> bool:
        try:  # usually the data is already there: no select() round trip
            data = os.read(self.fd, 1 << 16)
            if data:
                self.buf += data
                return True
        except BlockingIOError:
            pass
        while True:
            if self._stop is not None and self._stop.is_set():
                return False
            r, _, _ = select.select([self.fd], [], [], 0.1)
            if r:
                try:
                    data = os.read(self.fd, 1 << 16)
                except BlockingIOError:
                    continue
                if data:
                    self.buf += data
                    return True
                return False
            if not self._alive():
                try:
                    data = os.read(self.fd, 1 << 16)  # ffmpeg is gone: take what it left
                except BlockingIOError:
                    return False
                if not data:
                    return False
                self.buf += data
                return True

    def readline(self, limit: int = 1 << 16) -> bytes | None:
        start = 0
        while True:
            i = self.buf.find(b"\n", start)
            if i >= 0:
                line = bytes(self.buf[: i + 1])
                del self.buf[: i + 1]
                return line
            start = len(self.buf)
            if start > limit:
                raise MediaError("ffmpeg", "garbled analysis metadata (line too long)")
            if not self._more():
                return None

    def readinto(self, view: memoryview) -> bool:
        """Fill `view` completely; False at the end of the stream."""
        n = len(view)
        got = 0
        while got < n:
            if self.buf:
                k = min(n - got, len(self.buf))
                view[got:got + k] = self.buf[:k]
                del self.buf[:k]
                got += k
                continue
            if self._stop is not None and self._stop.is_set():
                return False
            r, _, _ = select.select([self.fd], [], [], 0.1)
            if not r:
                if not self._alive():
                    try:
                        k = os.readv(self.fd, [view[got:]])
                    except BlockingIOError:
                        return False
                    if not k:
                        return False
                    got += k
                continue
            try:
                k = os.readv(self.fd, [view[got:]])
            except BlockingIOError:
                continue
            if not k:
                return False
            got += k
        return True


def read_full(stream: IO[bytes], view: memoryview) -> bool:
    """readinto until `view` is full; False at EOF (a partial frame is dropped)."""
    got = 0
    n = len(view)
    while got < n:
        k = stream.readinto(view[got:])  # type: ignore[attr-defined]
        if not k:
            return False
        got += k
    return True



__all__ = ["FifoReader", "PIPE_SIZE", "open_fifo", "read_full"]
