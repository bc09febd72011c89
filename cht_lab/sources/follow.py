"""Tail a file that another process is still writing (cht's growing fMP4 or ADTS audio).

ffmpeg cannot follow a growing file by itself: it stops at the current end. So we read the file
as it grows and feed the bytes to ffmpeg's stdin; a partial fragment at the end simply makes
ffmpeg wait for more, which is exactly the 'never read past what is safely written' rule.
When the writer recreates the file (recorder restart: new inode, or the size shrinks) the tail
raises `FileReplacedError` so the caller can start a new segment cleanly.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import IO, Iterator

log = logging.getLogger(__name__)


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
            sink.write(data)
            sink.flush()
    except (BrokenPipeError, ValueError):  # ValueError: write to a pipe closed by stop()
        log.debug("ffmpeg stdin closed; pump ends")
    finally:
        try:
            sink.close()
        except OSError:
            pass
