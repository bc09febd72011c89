"""Audio extractor: gapless, pause-aware WAV chunks from a live or recorded session.

    ex = AudioExtractor(session_dir, index, follow=True, on_chunk=print).start()
    ...
    ex.stop()                       # flushes the tail chunk, reaps ffmpeg
    df = audio.offline.extract_audio(session_dir, index)   # offline: the same extractor, to the end

One continuous decode per source segment (`audio.decode`, `audio.segment`), chunked by sample
count (`audio.chunking`), so the chunks of a segment tile it exactly; chunks are written by their
own thread (`audio.writer`: WAV atomically, then the index row, then `on_chunk`). Growing files
are followed into ffmpeg's stdin (`sources.follow.GrowingFile`); a recreated file ends its
segment and a new one starts. Following ends on stop, or once nothing has changed for
`idle_timeout` s wherever the worker waits: in a recording, for a file's first bytes, or for a
session whose recordings have no audio track to get one (it then ends with note "no audio: ...").
Stop drains: the PCM already decoded is chunked and the partial last chunk written.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from cht_lab import layout
from cht_lab.audio.chunking import Chunker, EnergyVad
from cht_lab.audio.decode import (AudioSegment, StreamWatch, decode_args, decode_pcm, find_audio_sources,
                                  no_audio_reason, pipe_format)
from cht_lab.audio.segment import Segment, after_replacement, chunk_row, feed, read_pcm, resume_point, verdict
from cht_lab.audio.writer import AudioChunk, ChunkCallback, ChunkWriter, WriteFailed
from cht_lab.ffmpeg import FfmpegProcess, MediaError, grow_pipe
from cht_lab.index.protocols import IndexWriter
from cht_lab.sources.follow import wait_for_data
from cht_lab.status import ErrorLog, WorkerState

log = logging.getLogger(__name__)

__all__ = ["AudioSegment", "AudioChunk", "AudioExtractor", "find_audio_sources", "decode_args", "decode_pcm"]

_LINGER = 0.5  # offline: seconds the writer waits to fill a batch
NO_AUDIO = "no audio"  # how status["note"] begins when the session has no audio to cut


class AudioExtractor:
    """Cut a session's audio into pause-aware WAV chunks, in a background thread (one job).

    `sources=None` finds them (`find_audio_sources`); `[]` means no audio. `follow=True` tails the
    last source as it grows (live); otherwise every source is decoded to its end and the worker
    ends. `resume=True` continues after chunks already in the index for the same source and
    segment (a restarted live session does not cut the same audio twice). `idle_timeout`
    (follow mode; may be set while running) ends the work once nothing has grown or appeared
    for that many seconds.
    """

    def __init__(self, session_dir: str | os.PathLike[str], index: IndexWriter | None, *,
                 sources: Iterable[AudioSegment] | None = None, follow: bool = False,
                 sample_rate: int = 16000, channels: int = 1, min_chunk: float = 5.0,
                 max_chunk: float = 30.0, on_chunk: ChunkCallback | None = None, resume: bool = True,
                 idle_timeout: float | None = None, poll: float = 1.0,
                 recordings_dir: str | os.PathLike[str] | None = None):
        Chunker(sample_rate, channels, min_chunk, max_chunk)  # validates the parameters now
        self.session_dir = Path(session_dir).resolve()
        # where the recordings are (a cht session watched from a separate working directory)
        self.recordings_dir = Path(recordings_dir).resolve() if recordings_dir is not None else self.session_dir
        self.index = index
        self.sources = None if sources is None else [s if isinstance(s, AudioSegment) else AudioSegment(*s)
                                                     for s in sources]
        self.follow = bool(follow)
        self.sample_rate, self.channels = int(sample_rate), int(channels)
        self.min_chunk, self.max_chunk = float(min_chunk), float(max_chunk)
        self.on_chunk = on_chunk
        self.resume = resume
        self.idle_timeout = idle_timeout
        self.poll = poll
        self.audio_dir = self.session_dir / layout.AUDIO_DIR
        self.done = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._proc: FfmpegProcess | None = None
        self._proc_follows = False
        self._seg: Segment | None = None
        self._known: dict[Path, bool] = {}
        self._used_segments: set[int] = set()
        self._errors = ErrorLog("audio", log)
        self._warnings: list[dict[str, Any]] = []
        self._writer = ChunkWriter(self.session_dir, index, sample_rate=self.sample_rate, channels=self.channels,
                                   linger=0.0 if self.follow else _LINGER,  # offline nobody waits: commit in bulk
                                   on_chunk=on_chunk, report=self._error, on_written=self._written,
                                   on_fail=self._abort)
        self._status: dict[str, Any] = {
            "state": WorkerState.IDLE, "chunks": 0, "seconds": 0.0, "decoded": 0.0, "segment": None,
            "source": None, "sample_rate": self.sample_rate, "channels": self.channels, "replaced": 0, "note": "",
        }

    @property
    def rows(self) -> list[dict[str, Any]]:
        """Rows written by this extractor (also in the index)."""
        return self._writer.rows

    # ------------------------------------------------------------------ public control

    def start(self) -> "AudioExtractor":
        """Run in a background thread; returns self."""
        with self._lock:
            if self._thread is not None:
                return self
            self._thread = threading.Thread(target=self._thread_main, name=f"audio:{self.session_dir.name}",
                                            daemon=True)
        self._thread.start()
        return self

    def run(self) -> "AudioExtractor":
        """Run in the calling thread until the sources end (or stop() from another thread)."""
        self._thread_main()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop: drain what ffmpeg already decoded, write the tail chunk, reap ffmpeg. Safe twice."""
        deadline = time.monotonic() + timeout
        with self._lock:
            self._stop.set()
            if self._seg is not None:
                self._seg.feed_stop.set()  # following: the feeder closes ffmpeg's stdin (EOF)
            proc, follows = self._proc, self._proc_follows
            if not self._status["state"].ended:
                self._status["state"] = WorkerState.STOPPING
        if proc is not None and not follows and proc.running():
            try:
                proc.popen.send_signal(signal.SIGTERM)  # ffmpeg stops reading, flushes, exits
            except OSError:
                pass
        t = self._thread
        if t is None:  # never started: nothing to drain
            with self._lock:
                if self._status["state"] == WorkerState.STOPPING:
                    self._status["state"] = WorkerState.STOPPED
            return
        if t is threading.current_thread():
            return
        t.join(max(0.0, (deadline - time.monotonic()) * 0.8))
        if t.is_alive():
            with self._lock:
                proc = self._proc
            if proc is not None:
                log.warning("audio: ffmpeg did not drain within %.1f s of stop; killing it", timeout)
                proc.stop(timeout=0.5)
            t.join(max(0.5, deadline - time.monotonic()))
        if t.is_alive():
            self._error("stop", RuntimeError(f"audio worker did not end within {timeout:.1f} s of stop"))

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the worker to end; True when it has."""
        return self.done.wait(timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def status(self) -> dict[str, Any]:
        """state (a WorkerState), chunks, seconds (chunked), decoded (seconds decoded), segment,
        source, last_error, errors, warnings, replaced (file recreations seen), note (what it
        waits for; "no audio: <why>" when the session has none)."""
        with self._lock:
            st = dict(self._status)
            st["warnings"] = list(self._warnings)
        st["errors"] = self._errors.errors
        st["last_error"] = self._errors.last
        return st

    def __enter__(self) -> "AudioExtractor":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ status helpers

    def _update(self, **fields: Any) -> None:
        with self._lock:
            self._status.update(fields)

    def _error(self, where: str, exc: BaseException) -> None:
        if where:
            self._errors.exception(where, exc)
        else:
            self._errors.add(f"{type(exc).__name__}: {exc}", exc=exc)

    def _warn(self, msg: str, *, level: int = logging.WARNING) -> None:
        log.log(level, "audio %s: %s", self.session_dir.name, msg)
        with self._lock:
            self._warnings.append({"time": time.time(), "warning": msg})
            del self._warnings[:-50]

    def _written(self, rows: list[dict[str, Any]]) -> None:
        with self._lock:
            self._status["chunks"] += len(rows)
            self._status["seconds"] += sum(r["duration"] for r in rows)

    # ------------------------------------------------------------------ the worker

    def _thread_main(self) -> None:
        self._update(state=WorkerState.STARTING)
        final = WorkerState.FINISHED
        try:
            try:
                self._writer.start()
                final = self._work()
            finally:
                self._writer.close()
            if self._writer.error is not None:
                final = WorkerState.FAILED
        except WriteFailed:
            final = WorkerState.FAILED  # the writer reported why
        except BaseException as exc:  # never die silently; KeyboardInterrupt in run() still re-raises
            self._error("worker", exc)
            final = WorkerState.FAILED
            if not isinstance(exc, Exception):
                raise
        finally:
            with self._lock:
                proc, self._proc = self._proc, None
            if proc is not None:
                proc.stop(timeout=1.0)
            with self._lock:
                if self._status["state"] != WorkerState.FAILED:
                    self._status["state"] = final
            self.done.set()

    def _work(self) -> WorkerState:
        finished: set[Path] = set()
        existing = self._existing_rows()
        found_any = False
        watch = StreamWatch(self.recordings_dir)
        while not self._stop.is_set():
            sources = self.sources if self.sources is not None else find_audio_sources(
                self.recordings_dir, _known=self._known)
            found_any = found_any or bool(sources)
            pending = [s for s in sources if s.path not in finished]
            if not pending:
                if not self.follow or self.sources is not None:
                    break
                # a session that may still get (more) audio: wait, but not past idle_timeout
                limit = self.idle_timeout
                if limit is not None and watch.quiet() >= limit:
                    log.info("audio %s: nothing new in %s/ for %.1f s; the session is over",
                             self.session_dir.name, layout.STREAM_DIR, limit)
                    break
                self._update(state=WorkerState.RUNNING,
                             note="" if found_any else f"{NO_AUDIO} yet: {self._no_audio_reason()}")
                self._stop.wait(self.poll)
                continue
            src = pending[0]
            last = src is sources[-1]
            self._update(note="")
            self._run_source(src, follow=self.follow and last, existing=existing)
            finished.add(src.path)
            watch.reset()
            if (self.follow and last and self.sources is None and self.idle_timeout is not None
                    and not self._stop.is_set() and not self._newer_recording(src.path)):
                break  # the followed file went idle and nothing newer started: the session is over
        if not found_any:
            note = f"{NO_AUDIO}: {self._no_audio_reason()}"
            log.info("audio %s: %s", self.session_dir.name, note)
            self._update(note=note)
        return WorkerState.STOPPED if self._stop.is_set() else WorkerState.FINISHED

    def _no_audio_reason(self) -> str:
        return "no audio source given" if self.sources is not None else no_audio_reason(self.recordings_dir, self._known)

    def _existing_rows(self) -> pd.DataFrame | None:
        if not self.resume or self.index is None:
            return None
        try:
            df = self.index.audio()
        except Exception as exc:
            self._warn(f"cannot read existing audio chunks to resume after them: {exc}")
            return None
        for s in df.get("segment", []):
            self._used_segments.add(int(s))
        return df if len(df) else None

    def _run_source(self, src: AudioSegment, *, follow: bool, existing: pd.DataFrame | None) -> None:
        number, offset, skip = resume_point(src, existing, self._rel(src.path), self.sample_rate)
        seg = Segment(src, number, offset, skip=skip)
        while True:
            self._used_segments.add(seg.number)
            self._update(state=WorkerState.RUNNING, segment=seg.number, source=self._rel(src.path))
            try:
                self._decode(seg, follow=follow)
            except MediaError as exc:
                self._error("", exc)
            if seg.replaced is None or self._stop.is_set():
                return
            with self._lock:
                self._status["replaced"] += 1
            seg, message = after_replacement(seg, self._used_segments, self.sources or [], self.recordings_dir,
                                             self.sample_rate)
            self._warn(message)

    # ------------------------------------------------------------------ one decode

    def _decode(self, seg: Segment, *, follow: bool) -> None:
        """One ffmpeg over one segment: feed (follow) or read the file, chunk the PCM, queue chunks."""
        path = seg.source.path
        if follow and not self._wait_for_data(path):
            return
        if not follow and not path.is_file():
            raise MediaError(path, "no such file")
        args = decode_args(None if follow else path, sample_rate=self.sample_rate, channels=self.channels,
                           pipe_format=pipe_format(path), live=follow)
        chunker = Chunker(self.sample_rate, self.channels, self.min_chunk, self.max_chunk, skip=seg.skip)
        vad = EnergyVad(self.sample_rate)
        seg.samples = seg.skip
        with self._lock:
            if self._stop.is_set():
                return
            proc = FfmpegProcess(args, stdin=subprocess.PIPE if follow else subprocess.DEVNULL,
                                 name=f"audio-ffmpeg:{path.name}")
            self._proc, self._proc_follows, self._seg = proc, follow, seg
        grow_pipe(proc.stdout)
        feeder = None
        if follow:
            feeder = threading.Thread(target=self._feed, args=(seg, proc), name=f"audio-feed:{path.name}",
                                      daemon=True)
            feeder.start()
        else:
            seg.ready.set()
        decoded = 0
        try:
            assert proc.stdout is not None
            for pcm in read_pcm(proc.stdout, self.channels):
                decoded += len(pcm)
                for chunk in chunker.feed(pcm):
                    self._emit(seg, chunk, vad)
                with self._lock:
                    self._status["decoded"] += len(pcm) / self.sample_rate
            tail = chunker.flush()
            if tail is not None:
                self._emit(seg, tail, vad)
        finally:
            seg.feed_stop.set()
            if proc.running():
                try:
                    proc.wait(timeout=2.0)  # stdout at EOF (or closed): ffmpeg is exiting
                except subprocess.TimeoutExpired:
                    pass
            proc.stop(timeout=1.0)
            if feeder is not None:
                feeder.join(timeout=5.0)
            with self._lock:
                if self._proc is proc:
                    self._proc = None
        if seg.feed_error is not None:
            self._error(f"following {path.name}", seg.feed_error)
        warning = verdict(seg, proc, decoded, self.sample_rate, stopping=self._stop.is_set(),
                          session=self.session_dir.name)
        if warning:
            self._warn(warning)

    def _wait_for_data(self, path: Path) -> bool:
        """Follow mode: wait until the file has bytes; False on stop or after idle_timeout."""
        self._update(note=f"waiting for {self._rel(path)} to be written")
        if wait_for_data(path, self._stop, idle_timeout=lambda: self.idle_timeout):
            self._update(note="")
            return True
        if not self._stop.is_set():
            self._warn(f"{self._rel(path)} got no data within {self.idle_timeout or 0:.1f} s; nothing to decode")
        return False

    def _feed(self, seg: Segment, proc: FfmpegProcess) -> None:
        """Feeder thread (see segment.feed); idle_timeout is read live: LiveSession sets it once
        the video has ended."""
        assert proc.stdin is not None
        newer = (lambda: self._newer_recording(seg.source.path)) if self.sources is None else None
        feed(seg, proc.stdin, poll=self.poll, idle_timeout=lambda: self.idle_timeout, newer=newer)

    def _newer_recording(self, path: Path) -> bool:
        if path.name == layout.AUDIO_AAC:
            return False
        return any(p.name > path.name for p in layout.recordings(self.recordings_dir))

    # ------------------------------------------------------------------ one chunk

    def _emit(self, seg: Segment, pcm: np.ndarray, vad: EnergyVad) -> None:
        """Reader side: place the chunk on the timeline (sample counts), measure it, queue it."""
        row = chunk_row(seg, pcm, vad, self._writer.next_id(), self._rel(seg.source.path), self.sample_rate)
        self._writer.put(row, pcm)

    def _abort(self) -> None:
        """Stop decoding at once (the chunks cannot be written)."""
        with self._lock:
            self._stop.set()
            if self._seg is not None:
                self._seg.feed_stop.set()
            proc = self._proc
        if proc is not None and proc.running():
            try:
                proc.popen.send_signal(signal.SIGTERM)
            except OSError:
                pass

    def _rel(self, path: Path) -> str:
        return layout.session_relative(path, self.session_dir)

