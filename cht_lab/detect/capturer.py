"""The capture stage: JPEG of a decided frame -> frame row (durable) -> callbacks, on its own thread.

JPEG encoding runs here so it never stalls decoding. A capture is the very frame that was
decided on, taken from the same decode (its full-resolution picture, pinned when the decision
was made): for the event metric the frame the change came to rest in, while the row's ts, pts
and frame_index say where the change began (its onset). The frame row is durable in the index before any callback hears of it.
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from cht_lab import layout
from cht_lab.detect.capture import save_jpeg
from cht_lab.detect.reader import FullFrame
from cht_lab.ffmpeg import MediaError
from cht_lab.index.protocols import IndexWriter
from cht_lab.status import ErrorLog

log = logging.getLogger(__name__)

FramesCallback = Callable[[list[dict[str, Any]]], None]


@dataclass
class CaptureJob:
    info: dict[str, Any]  # segment, frame_index, pts, ts (the onset), score, threshold, kind, capture_ts,
    #                       capture_frame_index (the captured frame), revisit_key (segment, captured frame) or None
    full: FullFrame | None
    done: threading.Event | None = None  # manual captures and barriers wait on it
    result: dict[str, Any] | None = None
    error: BaseException | None = None
    barrier: bool = False


@dataclass
class Capturer:
    """Writes captures queued by the pipeline; `drain()` waits until everything queued is written."""

    session_dir: Path
    index: IndexWriter
    errors: ErrorLog
    metric: str
    jpeg_quality: int = 90
    source_name: str = "source"
    callbacks: list[FramesCallback] = field(default_factory=list)
    captures: int = 0

    def __post_init__(self) -> None:
        self._ids: dict[tuple[int, int], str] = {}  # (segment, captured frame) -> id: revisits name earlier captures
        self._queue: "queue.Queue[CaptureJob | None]" = queue.Queue()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="scene-capture", daemon=True)
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def put(self, job: CaptureJob) -> None:
        self._queue.put(job)

    def drain(self, timeout: float = 10.0) -> None:
        """Wait until the captures queued so far are written (or the thread is gone)."""
        if not self.alive:
            return
        barrier = CaptureJob({}, None, done=threading.Event(), barrier=True)
        self._queue.put(barrier)
        if not barrier.done.wait(timeout):  # type: ignore[union-attr]
            self.errors.add(f"captures still pending after {timeout:.0f} s")

    def stop(self, timeout: float = 5.0) -> None:
        """Write what is queued, then end the thread; anyone still waiting gets an error, not a hang."""
        if self._thread is None:
            return
        self._queue.put(None)
        self._thread.join(timeout)

    def _loop(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                break
            if job.barrier:
                job.done.set()  # type: ignore[union-attr]
                continue
            try:
                job.result = self._capture(job)
            except Exception as exc:
                job.error = exc
                self.errors.exception(f"capture of frame {job.info.get('frame_index')}", exc)
            finally:
                if job.done is not None:
                    job.done.set()
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job is not None and job.done is not None:
                job.error = RuntimeError("the detector stopped before the capture was made")
                job.done.set()

    def _capture(self, job: CaptureJob) -> dict[str, Any]:
        full = job.full
        if full is None:
            raise MediaError(self.source_name, "the full-resolution frame was no longer available")
        frame_id = self.index.next_frame_id()
        rel = f"{layout.FRAMES_DIR}/{frame_id}.jpg"
        size = save_jpeg(full.to_image(), self.session_dir / rel, self.jpeg_quality)
        info = job.info
        capture_key = (int(info["segment"]), int(info.get("capture_frame_index", info["frame_index"])))
        revisit = info.get("revisit_key")
        row = {
            "id": frame_id, "ts": float(info["ts"]), "pts": float(info["pts"]), "segment": int(info["segment"]),
            "frame_index": int(info["frame_index"]), "score": float(info["score"]), "metric": self.metric,
            "threshold": float(info["threshold"]), "kind": info["kind"], "path": rel,
            "width": full.width, "height": full.height, "bytes": int(size),
            "captured_at": datetime.now(timezone.utc), "sent_to_agent": False,
            "capture_ts": float(info.get("capture_ts", info["ts"])), "capture_frame_index": capture_key[1],
            "revisit_of": self._ids.get(tuple(revisit)) if revisit is not None else None,
        }
        self._ids[capture_key] = frame_id
        self.index.append_frames([row])  # durable before anyone hears about it
        self.captures += 1
        log.info("captured %s at %.3f s (%s=%.3f, %s)", frame_id, row["ts"], self.metric, row["score"], row["kind"])
        for cb in list(self.callbacks):
            try:
                cb([dict(row)])
            except Exception as exc:  # a broken callback never stops detection
                self.errors.exception("on_frames callback", exc)
        return row


__all__ = ["CaptureJob", "Capturer", "FramesCallback"]
