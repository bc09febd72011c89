"""ffmpeg as a well-behaved child process: stderr drained, always reaped, never outliving its owner."""

from __future__ import annotations

import atexit
import collections
import functools
import logging
import os
import re
import select
import shutil
import subprocess
import threading
import time
import weakref
from typing import IO, Any, Sequence

log = logging.getLogger(__name__)

from cht_lab.ffmpeg.binary import MediaError, _list_section, find_ffmpeg


# --------------------------------------------------------------------------- child processes

STOP_POLL = 0.05  # s: how often a running ffmpeg checks for SIGTERM (its -stats_period)


@functools.lru_cache(maxsize=8)
def _wakes_on_stats_period(exe: str) -> bool:
    """Whether `exe` is an ffmpeg that knows -stats_period (4.4+; older ones check SIGTERM every packet)."""
    if "ffmpeg" not in os.path.basename(exe).lower():
        return False
    try:
        return "-stats_period" in _list_section(exe, "-h", "long")
    except (OSError, subprocess.TimeoutExpired):
        return False


_live_processes: "weakref.WeakSet[FfmpegProcess]" = weakref.WeakSet()
_live_lock = threading.Lock()


class FfmpegProcess:
    """An ffmpeg child that is always reaped: stop() terminates, then kills after a timeout.

    stderr is drained by a daemon thread into a bounded buffer, so a chatty ffmpeg never blocks
    and the last lines are at hand for error messages.
    """

    def __init__(
        self,
        args: Sequence[str],
        *,
        stdin: int | IO[Any] | None = subprocess.DEVNULL,
        stdout: int | IO[Any] | None = subprocess.PIPE,
        stderr_lines: int = 200,
        name: str = "ffmpeg",
    ):
        self.args = [str(a) for a in args]
        if not self.args or os.path.basename(self.args[0]) == self.args[0] and not shutil.which(self.args[0]):
            self.args = [find_ffmpeg(), *self.args]
        if "-stats_period" not in self.args and _wakes_on_stats_period(self.args[0]):
            # ffmpeg >= 7 acts on SIGTERM only when its main loop wakes up, every stats period
            # (0.5 s by default): waking it more often makes stop() prompt
            self.args[1:1] = ["-stats_period", f"{STOP_POLL:g}"]
        self.name = name
        self._stderr = collections.deque(maxlen=stderr_lines)
        log.debug("starting %s: %s", name, " ".join(self.args))
        self.popen = subprocess.Popen(self.args, stdin=stdin, stdout=stdout, stderr=subprocess.PIPE, bufsize=0)
        self.stopped_by_us = False
        self._stop_lock = threading.Lock()  # stop() from two threads: one stops, the other finds it reaped
        with _live_lock:
            _live_processes.add(self)
        self._stderr_thread = threading.Thread(target=self._drain_stderr, name=f"{name}-stderr", daemon=True)
        self._stderr_thread.start()

    def _drain_stderr(self) -> None:
        stream = self.popen.stderr
        assert stream is not None
        for raw in iter(stream.readline, b""):
            self._stderr.append(raw.decode("utf-8", "replace").rstrip())
        stream.close()

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def stdin(self) -> IO[bytes] | None:
        return self.popen.stdin

    @property
    def stdout(self) -> IO[bytes] | None:
        return self.popen.stdout

    @property
    def returncode(self) -> int | None:
        return self.popen.poll()

    def running(self) -> bool:
        return self.popen.poll() is None

    def stderr_tail(self, n: int = 20) -> str:
        """The last n lines ffmpeg wrote to stderr (after the process ended, all of them are in)."""
        if self.popen.poll() is not None:
            self._stderr_thread.join(timeout=1.0)
        return "\n".join(list(self._stderr)[-n:])

    def error_summary(self) -> str:
        """The most telling stderr line, for an error message."""
        lines = [line for line in self._stderr if line.strip()]
        for line in reversed(lines):
            if re.search(r"(error|invalid|no such|not found|could not|failed|denied|moov atom)", line, re.I):
                return line.strip()
        return lines[-1].strip() if lines else f"ffmpeg exited with code {self.returncode}"

    def wait(self, timeout: float | None = None) -> int:
        rc = self.popen.wait(timeout)
        self._stderr_thread.join(timeout=1.0)
        return rc

    def stop(self, timeout: float = 2.0, *, drain: Sequence[int] = ()) -> int:
        """Close stdin, terminate, kill after `timeout`, and reap. Safe to call more than once, from any thread.

        Until ffmpeg has exited, its stdout (our pipe) and the `drain` fds (other outputs the caller
        reads, e.g. FIFOs; non-blocking) are read and discarded. ffmpeg blocked writing an output
        nobody reads any more cannot act on SIGTERM (the write resumes after the signal handler and
        the main thread waits for the blocked muxer), so without this it sat out the whole timeout
        and was killed. stdout is switched to non-blocking for that: a thread still reading it gets
        None (end of data), not a hang.
        """
        with self._stop_lock:
            p = self.popen
            for stream in (p.stdin,):
                if stream is not None:
                    try:
                        stream.close()
                    except OSError:
                        pass
            if p.poll() is None:
                fds = [fd for fd in drain if fd is not None]
                out = _open_fd(p.stdout)
                if out is not None:
                    os.set_blocking(out, False)
                    fds.append(out)
                self.stopped_by_us = True  # a signal exit from here on is ours, not a failure
                try:
                    p.terminate()
                except OSError:  # exited meanwhile
                    pass
                if not _wait_draining(p, fds, timeout):
                    log.warning("%s (pid %d) ignored SIGTERM for %.1fs; killing it", self.name, p.pid, timeout)
                    p.kill()
                    p.wait()
            if p.stdout is not None:
                try:
                    p.stdout.close()
                except OSError:
                    pass
            self._stderr_thread.join(timeout=1.0)
            with _live_lock:
                _live_processes.discard(self)
            return p.returncode

    def __enter__(self) -> "FfmpegProcess":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _open_fd(stream: IO[Any] | None) -> int | None:
    """The fd of a pipe we still hold open, else None."""
    if stream is None:
        return None
    try:
        return stream.fileno()
    except (ValueError, OSError):  # closed
        return None


def _wait_draining(p: "subprocess.Popen[bytes]", fds: list[int], timeout: float) -> bool:
    """Wait up to `timeout` s for `p` to exit, reading and discarding whatever it writes to `fds`."""
    deadline = time.monotonic() + timeout
    fds = list(fds)
    while p.poll() is None:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        if not fds:
            try:
                p.wait(left)
            except subprocess.TimeoutExpired:
                return False
            break
        try:
            ready, _, _ = select.select(fds, [], [], min(left, 0.05))
        except (OSError, ValueError):  # an fd closed under us: stop draining, just wait
            fds = []
            continue
        for fd in ready:
            try:
                if not os.read(fd, 1 << 16):
                    fds.remove(fd)  # EOF: nothing more will come
            except BlockingIOError:  # another reader took it first
                pass
            except OSError:
                fds.remove(fd)
    return True


def live_processes() -> list[FfmpegProcess]:
    """ffmpeg children started by this process that have not been reaped yet."""
    with _live_lock:
        return [p for p in _live_processes if p.popen.returncode is None and p.popen.poll() is None]


@atexit.register
def _stop_all() -> None:
    with _live_lock:
        procs = list(_live_processes)
    for p in procs:
        try:
            p.stop(timeout=1.0)
        except Exception:  # interpreter shutting down: best effort
            pass


def run_ffmpeg(args: Sequence[str], *, timeout: float = 60.0, input: bytes | None = None,
               path: str | os.PathLike[str] | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run ffmpeg to completion; on failure or timeout raise MediaError naming `path`."""
    full = [find_ffmpeg(), "-hide_banner", "-nostdin" if input is None else "-y", *map(str, args)]
    try:
        res = subprocess.run(full, input=input, capture_output=True, timeout=timeout,
                             stdin=None if input is not None else subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        raise MediaError(path or "ffmpeg", f"ffmpeg did not finish within {timeout:.0f} s") from exc
    if res.returncode != 0:
        err = _telling_line(res.stderr.decode("utf-8", "replace"))
        raise MediaError(path or "ffmpeg", f"ffmpeg failed: {err}")
    return res


def _telling_line(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in reversed(lines):
        if re.search(r"(error|invalid|no such|not found|could not|failed|denied|moov atom|unknown)", line, re.I):
            return line
    return lines[-1] if lines else "no output"


def grow_pipe(pipe: "int | IO[bytes] | None", size: int = 1 << 20) -> None:
    """Let ffmpeg run up to `size` bytes ahead of its reader on a pipe or FIFO (Linux; else a no-op)."""
    if pipe is None:
        return
    try:
        import fcntl

        fd = pipe if isinstance(pipe, int) else pipe.fileno()
        fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), size)
    except (OSError, ValueError, AttributeError, ImportError):
        pass


_FRIENDLY = [  # most specific first
    (re.compile(r"moov atom not found", re.I), "truncated or unfinished MP4 (moov atom not found)"),
    (re.compile(r"Invalid data found", re.I), "not a video ffmpeg can read (invalid data)"),
    (re.compile(r"matches no streams|does not contain any stream|Output file .* does not contain", re.I),
     "no video stream"),
    (re.compile(r"No such file", re.I), "no such file"),
    (re.compile(r"Permission denied", re.I), "permission denied"),
]


def diagnose(proc: FfmpegProcess) -> str:
    """Why ffmpeg failed, in words a user can act on, with ffmpeg's own line for reference."""
    lines = [ln.strip() for ln in proc.stderr_tail(60).splitlines() if ln.strip()]
    for pattern, text in _FRIENDLY:
        for line in lines:
            if pattern.search(line):
                return f"{text} (ffmpeg: {line if len(line) <= 160 else line[:157] + '...'})"
    return proc.error_summary()
