"""One vocabulary for worker state and one error collector, read by `status`, the log and the CLI.

Every background worker (detector, audio extractor, index writer) reports through an `ErrorLog`:
each error is logged once, kept with its time and worker, and a repeat of the same message is
counted instead of appended (a retry loop must not flood status or the log).
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from typing import Any


class WorkerState(str, enum.Enum):
    """The states every worker uses; `str` so status dicts stay plain and comparable to text."""

    IDLE = "idle"
    STARTING = "starting"
    RUNNING = "running"
    RECONNECTING = "reconnecting"
    STOPPING = "stopping"
    STOPPED = "stopped"
    FINISHED = "finished"
    FAILED = "failed"
    OFF = "off"

    def __str__(self) -> str:
        return self.value

    @property
    def ended(self) -> bool:
        return self in (WorkerState.STOPPED, WorkerState.FINISHED, WorkerState.FAILED, WorkerState.OFF)


MAX_ERRORS = 50


class ErrorLog:
    """Errors of one worker: logged, kept (newest MAX_ERRORS), repeats counted, thread-safe."""

    def __init__(self, worker: str, logger: logging.Logger, limit: int = MAX_ERRORS):
        self.worker = worker
        self._log = logger
        self._limit = limit
        self._lock = threading.Lock()
        self._errors: list[dict[str, Any]] = []

    def add(self, message: str, *, level: int = logging.ERROR, exc: BaseException | None = None) -> None:
        """Record `message`; the same message again only bumps its count and time (logged at DEBUG)."""
        now = time.time()
        with self._lock:
            for entry in reversed(self._errors[-5:]):
                if entry["error"] == message:
                    entry["count"] += 1
                    entry["time"] = now
                    repeat = entry["count"]
                    break
            else:
                repeat = 0
                self._errors.append({"time": now, "worker": self.worker, "error": message, "count": 1,
                                     "level": logging.getLevelName(level)})
                del self._errors[:-self._limit]
        if repeat:
            self._log.debug("%s (repeated, %d times so far)", message, repeat)
        else:
            self._log.log(level, "%s", message, exc_info=exc)

    def exception(self, where: str, exc: BaseException, *, level: int = logging.ERROR) -> None:
        self.add(f"{where}: {type(exc).__name__}: {exc}", level=level, exc=exc)

    @property
    def errors(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(e) for e in self._errors]

    @property
    def last(self) -> str | None:
        with self._lock:
            return self._errors[-1]["error"] if self._errors else None


def merge_errors(*groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Several workers' errors as one list, oldest first (so the last one is the newest)."""
    merged = [e for group in groups for e in group]
    merged.sort(key=lambda e: e.get("time") or 0.0)
    return merged
