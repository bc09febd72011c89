"""Tail a file that another process is still writing (cht's growing fMP4 or ADTS audio).

ffmpeg cannot follow a growing file by itself: it stops at the current end. So we read the file
as it grows and feed the bytes to ffmpeg's stdin; a partial fragment at the end simply makes
ffmpeg wait for more, which is exactly the 'never read past what is safely written' rule.
When the writer recreates the file (recorder restart: new inode, or the size shrinks) the tail
raises `FileReplacedError` so the caller can start a new segment cleanly.

`GrowingFile` is the follower the video source and the audio extractor share: it tails one
recording across quiet spells and decides when following ends (stop, a newer recording took
over, or no growth for `idle_timeout`), saying why in `end_reason`.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import IO, Callable, Iterator, Union

log = logging.getLogger(__name__)

__all__ = ["FileReplacedError", "GrowingFile", "tail_file", "pump", "write_all", "wait_for_data"]

#: a timeout, or a callable read at every check (an owner may set it while following runs)
Timeout = Union[float, None, Callable[[], Union[float, None]]]


class FileReplacedError(RuntimeError):
    """The followed file was replaced or truncated by its writer."""

    def __init__(self, path: str | os.PathLike[str], reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


def tail_file(
    path: str | os.PathLike[str],
    stop: threading.Event,
    *,
    poll_interval: float = 0.05,
    idle_timeout: float | None = None,
    start_offset: int = 0,
    block_size: int = 1 << 20,
    wait_for_file: float = 10.0,
) -> Iterator[bytes]:
    """Yield the bytes of `path` as they are written, until `stop` is set.

    `idle_timeout`: end the iteration when the file has not grown for that long (a finished
    recording); None follows forever. Raises FileNotFoundError when the file does not appear
    within `wait_for_file` seconds, FileReplacedError when its writer recreates or truncates it.
    """
    p = Path(path)
    deadline = time.monotonic() + wait_for_file
    while not p.exists():
        if stop.is_set():
            return
        if time.monotonic() > deadline:
            raise FileNotFoundError(f"{p}: no such file (waited {wait_for_file:.0f} s for it to appear)")
        stop.wait(poll_interval)
    with open(p, "rb") as fh:
        inode = os.fstat(fh.fileno()).st_ino
        fh.seek(start_offset)
        offset = start_offset
        last_growth = time.monotonic()
        while not stop.is_set():
            data = fh.read(block_size)
            if data:
                offset += len(data)
                last_growth = time.monotonic()
                yield data
                continue
            try:
                st = os.stat(p)
            except FileNotFoundError:
                raise FileReplacedError(p, "file was removed while being followed") from None
            if st.st_ino != inode:
                raise FileReplacedError(p, "file was replaced (new inode) while being followed")
            if st.st_size < offset:
                raise FileReplacedError(p, f"file shrank from {offset} to {st.st_size} bytes while being followed")
            if idle_timeout is not None and time.monotonic() - last_growth > idle_timeout:
                log.debug("%s stopped growing for %.1fs; treating as finished", p, idle_timeout)
                return
            stop.wait(poll_interval)


def pump(chunks: Iterator[bytes], sink: IO[bytes], stop: threading.Event) -> None:
    """Write chunks into `sink` (ffmpeg's stdin) until exhausted or stopped; always closes the sink.

    A closed pipe (ffmpeg exited) ends the pump quietly: the process owner reports why ffmpeg ended.
    Other errors (e.g. FileReplacedError) propagate to the caller's thread, which must report them.
    """
    try:
        for data in chunks:
            if stop.is_set():
                break
            write_all(sink, data)
            sink.flush()
    except (BrokenPipeError, ValueError):  # ValueError: write to a pipe closed by stop()
        log.debug("ffmpeg stdin closed; pump ends")
    finally:
        try:
            sink.close()
        except OSError:
            pass


def write_all(sink: IO[bytes], data: bytes) -> None:
    """Write all of `data`: an unbuffered pipe write may take only part of it (a signal arrived)."""
    view = memoryview(data)
    while view:
        n = sink.write(view)
        if n is None:  # only a non-blocking sink with a full pipe; our pipes block
            raise BlockingIOError("the pipe is not accepting data")
        view = view[n:]


def _seconds(timeout: Timeout) -> float | None:
    return timeout() if callable(timeout) else timeout


def wait_for_data(path: str | os.PathLike[str], stop: threading.Event, *, idle_timeout: Timeout = None,
                  poll: float = 0.05) -> bool:
    """Wait until `path` exists and holds bytes: True; False on stop or after `idle_timeout`
    seconds of waiting (read at every poll, so it may be set while this waits)."""
    p = Path(path)
    began = time.monotonic()
    while not stop.is_set():
        try:
            if p.stat().st_size > 0:
                return True
        except FileNotFoundError:
            pass
        limit = _seconds(idle_timeout)
        if limit is not None and time.monotonic() - began >= limit:
            return False
        stop.wait(poll)
    return False


class GrowingFile:
    """Follow one recording while its writer appends to it; iterate `chunks(stop)` for its bytes.

    Following ends (the iteration returns) on `stop`; when `newer()` says a newer recording has
    started and this one has been quiet for `switch_after` s; or when it has not grown for
    `idle_timeout` s (`finished` is then True). `end_reason` says which. A replaced, removed or
    truncated file raises FileReplacedError; a file that does not appear within `wait_for_file`
    s raises FileNotFoundError. `offset` counts the bytes yielded; `last_data_at` is the wall
    time of the last growth (None before any).
    """

    def __init__(self, path: str | os.PathLike[str], *, poll: float = 0.5, idle_timeout: Timeout = None,
                 newer: Callable[[], bool] | None = None, switch_after: float = 0.0,
                 wait_for_file: float = 10.0, start_offset: int = 0):
        self.path = Path(path)
        self.poll = float(poll)
        self.idle_timeout = idle_timeout
        self.newer = newer
        self.switch_after = float(switch_after)
        self.wait_for_file = float(wait_for_file)
        self.offset = int(start_offset)
        self.end_reason = ""
        self.finished = False
        self.last_data_at: float | None = None

    def chunks(self, stop: threading.Event) -> Iterator[bytes]:
        inode: int | None = None
        last_growth = time.monotonic()
        while not stop.is_set():
            inode = self._check_same_file(inode)
            for data in tail_file(self.path, stop, start_offset=self.offset, idle_timeout=self.poll,
                                  wait_for_file=self.wait_for_file):
                self.offset += len(data)
                last_growth = time.monotonic()
                self.last_data_at = time.time()
                yield data
            if stop.is_set():
                break
            inode = self._check_same_file(inode)
            quiet = time.monotonic() - last_growth
            if self.newer is not None and quiet >= self.switch_after and self.newer():
                self.end_reason = "a newer recording started"
                log.info("%s: a newer recording started; following ends", self.path)
                return
            limit = _seconds(self.idle_timeout)
            if limit is not None and quiet >= limit:
                self.end_reason = f"no growth for {limit:.1f} s"
                self.finished = True
                log.info("%s stopped growing for %.1f s; treating it as finished", self.path, limit)
                return
        self.end_reason = "stopped"

    def _check_same_file(self, inode: int | None) -> int | None:
        """The file's inode; FileReplacedError when it is no longer the file followed so far."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            if inode is not None:
                raise FileReplacedError(self.path, "file was removed while being followed") from None
            return None  # not there yet: tail_file waits for it
        if inode is not None and st.st_ino != inode:
            raise FileReplacedError(self.path, "file was replaced (new inode) while being followed")
        if st.st_size < self.offset:
            raise FileReplacedError(self.path, f"file shrank from {self.offset} to {st.st_size} bytes "
                                               "while being followed")
        return st.st_ino
