"""LiveSession: the scene detector and the audio extractor running in the background of a notebook.

It owns three workers — detector, audio extractor, index writer (the index's flush timer) — and
wires them together: rows go to the Parquet index first, then the user's callbacks fire. Attached
to a cht session directory it does what cht's processor does: video from `scene.sock`, audio
from the growing recording (or `audio.aac`), frames and chunks into the same directory.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import pandas as pd

from cht_lab import layout
from cht_lab._version import __version__
from cht_lab.detect.decision import DEFAULT_MIN_GAP
from cht_lab.ffmpeg import MediaError, probe
from cht_lab.index.session_index import SessionIndex
from cht_lab.status import ErrorLog, WorkerState, merge_errors

if TYPE_CHECKING:
    from cht_lab.audio.extractor import AudioExtractor
    from cht_lab.detect.supervisor import SceneDetector

log = logging.getLogger(__name__)

FramesCallback = Callable[[list[dict[str, Any]]], None]
AudioCallback = Callable[[dict[str, Any]], None]

AUDIO_END_IDLE = 1.0  # s without growth after the video ended: the recording is finished


class LiveSession:
    """Run scene detection and audio chunking on a live (or replayed) source in background threads."""

    def __init__(self, source: Any, session_dir: str | os.PathLike[str] | None = None,
                 threshold: float | None = None, backend: str = "auto", audio: bool = True, *,
                 metric: str | None = None, min_gap: float = DEFAULT_MIN_GAP,
                 data_dir: str | os.PathLike[str] | None = None, realtime: bool = False,
                 end_after: float | None = None):
        from cht_lab.detect.scoring import DEFAULT_METRIC, DEFAULT_THRESHOLDS

        self.source = source
        self.metric = metric or DEFAULT_METRIC
        self._threshold = float(threshold if threshold is not None else DEFAULT_THRESHOLDS[self.metric])
        self.min_gap = float(min_gap)
        self.backend = backend
        self.audio_enabled = audio
        self.realtime = realtime
        self.end_after = end_after  # a cht socket gone this long ends the session (None: sources.SESSION_END_AFTER)
        self._cht_dir = Path(source).resolve() if _is_cht_session(source) else None
        if self._cht_dir is None:
            from cht_lab.sources import open_source

            # a missing path or a file that is no media fails here, before a session dir exists
            # (an audio-only recording is still cut into chunks; its detector reports the missing video)
            opened = open_source(source, realtime=realtime)
            if opened.recording is not None and not opened.live:
                probe(opened.recording)
        if session_dir is not None:
            self.session_dir = Path(session_dir).resolve()
            self.session_dir.mkdir(parents=True, exist_ok=True)
        elif self._cht_dir is not None and not layout.is_read_only(self._cht_dir):
            self.session_dir = self._cht_dir  # like cht's processor: frames and chunks go into the session
        else:  # a bundled sample or an unwritable session stays untouched
            self.session_dir = layout.create_session_dir(data_dir or layout.default_data_dir())
        self._frame_callbacks: list[FramesCallback] = []
        self._audio_callbacks: list[AudioCallback] = []
        self._lock = threading.Lock()
        self._state = "idle"
        self._index: SessionIndex | None = None
        self._detector: SceneDetector | None = None
        self._audio: AudioExtractor | None = None
        self._started_at: float | None = None
        self._errors = ErrorLog("session", log)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> "LiveSession":
        """Start the workers; returns self so `LiveSession(...).start()` reads well."""
        from cht_lab.detect.supervisor import SceneDetector
        from cht_lab.sources import open_source

        with self._lock:
            if self._state not in ("idle", "stopped"):
                return self
            self._state = "starting"
        try:
            self._index = SessionIndex(self.session_dir, writer=True)
            self._index.update_metadata(session_id=self.session_dir.name, source=str(self.source),
                                        package_version=__version__)
            video_source = open_source(self._cht_dir if self._cht_dir is not None else self.source,
                                       realtime=self.realtime, end_after=self.end_after)
            self._detector = SceneDetector(
                video_source, session_dir=self.session_dir, index=self._index, threshold=self._threshold,
                metric=self.metric, min_gap=self.min_gap, backend=self.backend,
                on_frames=self._emit_frames, session_recordings=self._cht_dir,
            )
            if self.audio_enabled:
                self._audio = self._make_audio_extractor()
            self._detector.start()
            if self._audio is not None:
                self._audio.start()
        except Exception:
            self._state = "failed"
            self._shutdown()
            raise
        self._started_at = time.monotonic()
        self._state = "running"
        log.info("live session %s started (source %s)", self.session_dir, self.source)
        return self

    def _make_audio_extractor(self) -> AudioExtractor | None:
        from cht_lab.audio.extractor import AudioExtractor

        if self._cht_dir is not None:
            return AudioExtractor(self.session_dir, self._index, follow=True, on_chunk=self._emit_audio,
                                  recordings_dir=self._cht_dir)
        src = Path(str(self.source))
        if src.is_file():
            try:
                has_audio = probe(src).has_audio
            except MediaError:
                has_audio = False
            sources = None
            if has_audio:
                from cht_lab.audio.extractor import AudioSegment

                sources = [AudioSegment(src, 0.0, 0)]
            return AudioExtractor(self.session_dir, self._index, sources=sources or [], follow=False,
                                  on_chunk=self._emit_audio)
        return None  # sockets and URLs carry no audio we can read

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the workers, reap every ffmpeg, flush and compact the index. Safe to call twice."""
        with self._lock:
            if self._state in ("idle", "stopped"):
                self._state = "stopped"
                return
            self._state = "stopping"
        self._shutdown(timeout)
        self._state = "stopped"
        log.info("live session %s stopped", self.session_dir)

    def _shutdown(self, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        for worker in (self._detector, self._audio):
            if worker is not None:
                try:
                    worker.stop(timeout=max(0.5, (deadline - time.monotonic()) / 2))
                except Exception as exc:  # a failing stop must not keep the index from closing
                    self._record_error("stop", exc)
        if self._index is not None:
            try:
                self._index.close()
            except Exception as exc:
                self._record_error("index", exc)

    def __enter__(self) -> "LiveSession":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until a finite source has been processed completely (True) or the timeout passes.

        For a cht session, the video ends when its server is gone; the audio extractor, which
        follows the growing recording forever, is then told to finish once the file stops growing
        (AUDIO_END_IDLE s), so it still cuts everything the recording holds and wait() returns.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        if self._detector is None:
            return False
        if not self._detector.done.wait(timeout):
            return False
        audio = self._audio
        if audio is None:
            return True
        if audio.follow and audio.idle_timeout is None:
            audio.idle_timeout = AUDIO_END_IDLE  # the session is over: no recording grows any more
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        return bool(audio.join(left))

    async def wait_async(self, timeout: float | None = None) -> bool:
        """`await live.wait_async()` in a notebook: like wait(), but the kernel keeps serving the panel."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, self.wait, timeout)

    # ------------------------------------------------------------------ control

    @property
    def threshold(self) -> float:
        return self._threshold

    def set_threshold(self, value: float) -> None:
        """Takes effect from the next frame; ffmpeg keeps running."""
        self._threshold = float(value)
        if self._detector is not None:
            self._detector.set_threshold(self._threshold)

    def capture_now(self) -> dict[str, Any] | None:
        """Capture the most recently decoded frame (kind 'manual')."""
        if self._detector is None:
            raise RuntimeError("the live session is not running; call start() first")
        return self._detector.capture_now()

    def on_new_frames(self, callback: FramesCallback) -> FramesCallback:
        """Call `callback(rows)` after captured frames are durable in the index (usable as decorator)."""
        self._frame_callbacks.append(callback)
        return callback

    def on_new_audio(self, callback: AudioCallback) -> AudioCallback:
        """Call `callback(chunk)` with path, start, duration, segment, local_start of each WAV chunk."""
        self._audio_callbacks.append(callback)
        return callback

    def _emit_frames(self, rows: list[dict[str, Any]]) -> None:
        for cb in list(self._frame_callbacks):
            try:
                cb(rows)
            except Exception as exc:
                self._record_error("on_new_frames callback", exc)

    def _emit_audio(self, chunk: Any) -> None:
        for cb in list(self._audio_callbacks):
            try:
                cb(chunk)
            except Exception as exc:
                self._record_error("on_new_audio callback", exc)

    def _record_error(self, where: str, exc: BaseException) -> None:
        self._errors.exception(f"{self.session_dir}: {where}", exc)

    # ------------------------------------------------------------------ reading

    @property
    def status(self) -> dict[str, Any]:
        """State, backend, fps, lag, counts, errors and per-worker health, in one dict."""
        det = self._detector.status if self._detector is not None else {}
        aud = self._audio.status if self._audio is not None else {"state": "off" if not self.audio_enabled else "idle"}
        idx_health = self._index.health() if self._index is not None and hasattr(self._index, "health") else {}
        errors = merge_errors(self._errors.errors, _worker_errors("detector", det), _worker_errors("audio", aud),
                              _worker_errors("index", idx_health))  # last_error is the newest, whichever worker
        last_error = errors[-1].get("error") if errors else None
        return {
            "state": self._overall_state(det, aud),
            "session_dir": str(self.session_dir),
            "backend": det.get("backend"),
            "backend_reason": det.get("backend_reason"),
            "threshold": self._threshold,
            "metric": self.metric,
            "fps": det.get("fps"),
            "lag": det.get("lag"),
            "frames": det.get("frames", 0),
            "captures": det.get("captures", 0),
            "chunks": aud.get("chunks", 0),
            "errors": errors,
            "last_error": last_error,
            "workers": {"detector": det, "audio": aud, "index": idx_health},
        }

    def _overall_state(self, det: dict[str, Any], aud: dict[str, Any]) -> str:
        """'running' only while the detector is: a dead or finished source must not read as running."""
        if self._state != "running":
            return self._state
        det_state = det.get("state")
        if det_state == "failed":
            return "failed"
        if det_state == "finished" and (aud.get("state") in (None, "off", "idle") or WorkerState(aud["state"]).ended):
            return "finished"
        return "running"

    def _reader(self) -> SessionIndex:
        return self._index if self._index is not None else SessionIndex(self.session_dir)

    def frames(self) -> pd.DataFrame:
        return self._reader().frames()

    def scores(self) -> pd.DataFrame:
        return self._reader().scores()

    def audio(self) -> pd.DataFrame:
        return self._reader().audio()

    @property
    def labels(self) -> pd.DataFrame | None:
        from cht_lab.tuning.labels import load_labels

        path = (self._cht_dir or self.session_dir) / layout.LABELS_CSV
        return load_labels(path) if path.exists() else None

    def panel(self, **kwargs: Any) -> Any:
        from cht_lab.panel.session_panel import LivePanel

        return LivePanel(self, **kwargs)

    def __repr__(self) -> str:
        return f"LiveSession({str(self.source)!r}, session_dir={str(self.session_dir)!r}, state={self._state!r})"


def _worker_errors(worker: str, status: dict[str, Any]) -> list[dict[str, Any]]:
    """A worker's error list in the session's shape: dicts with worker, time and error."""
    return [{"worker": worker, **e} if isinstance(e, dict) else {"worker": worker, "error": str(e)}
            for e in status.get("errors", [])]


def _is_cht_session(source: Any) -> bool:
    if not isinstance(source, (str, os.PathLike)):
        return False
    p = Path(source)
    return p.is_dir() and ((p / layout.SOCKET_NAME).exists() or (p / layout.STREAM_DIR).is_dir())
