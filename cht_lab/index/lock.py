"""The session index's writer lock: one writer per session directory, across processes.

The lock is an `flock` on `index/writer.lock`, so the kernel releases it when its holder dies
(a stale lock is simply taken over: nothing to break, no timeout to guess). The file records
the holder's pid, host, process start time and since-when, only to say who holds it: a pid
whose process started at another time is a reused pid, so the recorded writer is gone.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import socket
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

LOCK_FILE = "writer.lock"
HOST = socket.gethostname()

__all__ = ["IndexLockedError", "WriterLock", "LOCK_FILE", "pid_alive", "process_start", "read_holder",
           "write_holder"]


class IndexLockedError(RuntimeError):
    """Another writer holds the session's index; names the session directory and its pid."""

    def __init__(self, session_dir: str | os.PathLike[str], pid: int | None, host: str | None = None,
                 started: int | None = None):
        self.session_dir = Path(session_dir)
        self.pid = pid
        self.host = host
        local = host in (None, HOST)
        if pid is None:
            who = "another writer (pid unknown)"
        elif pid == os.getpid() and local:
            who = f"another SessionIndex in this process (pid {pid}); close it first"
        elif not local:
            who = f"pid {pid} on host {host}"
        elif holder_alive(pid, started):
            who = f"pid {pid}"
        else:
            who = (f"pid {pid}, which is not running; a process it started may have inherited the lock "
                   "and still hold it")
        super().__init__(f"{self.session_dir}: the index is already being written by {who}. "
                         "Readers need no lock: SessionIndex(session_dir) reads while it writes.")


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def process_start(pid: int) -> int | None:
    """When process `pid` started (clock ticks since boot, Linux /proc); None where unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read().decode("ascii", "replace")
        return int(stat.rsplit(")", 1)[1].split()[19])  # field 22: starttime
    except (OSError, IndexError, ValueError):
        return None


def holder_alive(pid: int, started: int | None) -> bool:
    """The recorded holder still runs: its pid is alive and (where known) started at the same time."""
    if not pid_alive(pid):
        return False
    now = process_start(pid)
    return started is None or now is None or now == started


def read_holder(fd: int) -> dict[str, Any]:
    try:
        raw = os.pread(fd, 4096, 0)
        data = json.loads(raw.decode("utf-8")) if raw.strip() else {}
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def write_holder(fd: int) -> None:
    info = {"pid": os.getpid(), "host": HOST, "started": process_start(os.getpid()),
            "since": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(info).encode("utf-8"), 0)


class WriterLock:
    """The flock on `<index_dir>/writer.lock`, held from `acquire()` to `release()`."""

    def __init__(self, index_dir: Path, session_dir: Path):
        self.path = index_dir / LOCK_FILE
        self.session_dir = session_dir
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock or raise IndexLockedError naming the holder; a dead holder's lock is taken over."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = read_holder(fd)
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            raise IndexLockedError(self.session_dir, holder.get("pid"), holder.get("host"),
                                   holder.get("started")) from None
        previous = read_holder(fd)
        old_pid = previous.get("pid")
        if isinstance(old_pid, int) and old_pid != os.getpid() and previous.get("host") in (None, HOST):
            state = ("still running (it released the lock)" if holder_alive(old_pid, previous.get("started"))
                     else "no longer running")
            log.info("%s: taking over the index lock last held by pid %s (%s)", self.session_dir, old_pid, state)
        try:
            write_holder(fd)
        except OSError as exc:
            log.warning("%s: could not record this writer's pid in %s: %s", self.session_dir, self.path, exc)
        self._fd = fd

    def release(self) -> None:
        """Unlock (and clear the holder record). Safe twice."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.ftruncate(fd, 0)
        except OSError:
            pass
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def forget_after_fork(self) -> None:
        """In a forked child: close the inherited descriptor without unlocking (which would release
        the parent's lock too)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass
