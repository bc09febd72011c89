"""Audio extractor: gapless, pause-aware WAV chunks from a live or recorded session.

    ex = AudioExtractor(session_dir, index, follow=True, on_chunk=print).start()
    ...
    ex.stop()                       # flushes the tail chunk, reaps ffmpeg
    df = extract_audio(session_dir, index)   # offline: the same extractor, to the end

Why it looks like this (the seed polled the growing file and cut `-ss/-t` pieces, which left
gaps and overlaps at codec-frame boundaries and lost the audio after the last poll):

* **One continuous decode per source segment** (ffmpeg → raw s16le PCM on a pipe), chunked in
  Python by sample count (`cht_lab.audio.chunking`). Chunks tile the timeline to the sample: chunk i
  starts at `offset + samples_before / sample_rate`, and the chunks of a segment concatenated are
  exactly what one full decode of it gives with the same settings.
* **Sample 0 is pts 0.** The decode uses `aresample=first_pts=0`, so audio that starts after the
  segment start is padded (and encoder-delay samples before it trimmed), and timestamp gaps over
  0.1 s inside the stream are filled with silence: the sample index stays the segment time.
* **Growing files** are tailed (`follow.tail_file`) into ffmpeg's stdin, so nothing past the
  bytes already written is read. When the writer recreates the file (`FileReplacedError`) the
  current ffmpeg gets EOF, its audio is finished cleanly, and a new segment (next integer) starts
  on the new file; its offset is the previous segment's end plus the wall-clock time the writer
  was silent (our best knowledge of when the new file started).
* **Stop drains**: following, stop closes ffmpeg's stdin (EOF); reading a finished file, stop
  sends SIGTERM (ffmpeg stops reading and flushes). Either way the PCM already decoded is read
  to the end and the partial last chunk is written.
* Chunks are WAV files written with the stdlib `wave` module, atomically (temp + fsync + rename),
  then indexed (`SessionIndex.append_audio`, durable), then announced to `on_chunk`.

Sources, in the seed's fallback order: the session's recordings that have an audio track (each
on its own segment offset), else `stream/audio.aac` (ADTS, starting at the session start).
"""

from __future__ import annotations

import logging
import os
import queue
import re
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import pandas as pd

from cht_lab import layout
from cht_lab.audio.chunking import Chunker, EnergyVad, _fsync_dir, write_wav
from cht_lab.ffmpeg import FfmpegProcess, MediaError
from cht_lab.sources.follow import FileReplacedError, tail_file

log = logging.getLogger(__name__)

__all__ = ["AudioSegment", "AudioChunk", "AudioExtractor", "AudioExtractionError", "find_audio_sources",
           "extract_audio", "decode_args", "decode_pcm"]

ChunkCallback = Callable[["AudioChunk"], None]

#: demuxer to name for a pipe input (a pipe cannot be probed by file name)
_PIPE_FORMATS = {".aac": "aac", ".adts": "aac", ".mp4": "mov", ".m4a": "mov", ".m4v": "mov",
                 ".mov": "mov", ".mkv": "matroska", ".ts": "mpegts"}
_LAYOUTS = {1: "mono", 2: "stereo"}
#: stderr lines that are ffmpeg being chatty about a normal input, not a problem with it
_BENIGN = re.compile(r"Estimating duration from bitrate|has been deprecated|Guessed Channel Layout", re.I)
_READ_BLOCK = 1 << 20
_QUEUE = 16  # chunks decoded but not yet written (at most ~16 MB at 16 kHz mono, 30 s chunks)
_BATCH = 16  # chunks per group commit
_LINGER = 0.5  # offline: seconds the writer waits to fill a batch


class AudioExtractionError(RuntimeError):
    """Some audio source could not be decoded; names the source(s) and the reason."""


class _WriteFailed(RuntimeError):
    """Raised in the reader after the writer thread failed (already reported there)."""


@dataclass(frozen=True)
class AudioSegment:
    """One audio source on the session timeline: a file, its global offset, its segment number."""

    path: Path
    offset: float
    segment: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))
        object.__setattr__(self, "offset", float(self.offset))
        object.__setattr__(self, "segment", int(self.segment))


@dataclass(frozen=True)
class AudioChunk:
    """What `on_chunk` receives: the chunk's absolute WAV path, its global start and its row."""

    id: str
    path: str
    start: float
    duration: float
    segment: int
    local_start: float
    row: dict[str, Any] = field(default_factory=dict, repr=False)

    def __getitem__(self, key: str) -> Any:  # chunk["start"] works like the dict it replaces
        if key in ("id", "path", "start", "duration", "segment", "local_start"):
            return getattr(self, key)
        return self.row[key]

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def as_dict(self) -> dict[str, Any]:
        return {**self.row, "id": self.id, "path": self.path, "start": self.start, "duration": self.duration,
                "segment": self.segment, "local_start": self.local_start}


# --------------------------------------------------------------------------- sources


_STREAM_RE = re.compile(r"^\s*Stream #0:\d+.*?: (Audio|Video):", re.M)


def _probe_has_audio(path: Path, timeout: float = 20.0) -> bool | None:
    """True/False once the file's header can be read; None while it cannot (empty, growing, broken).

    Only the header is read (`ffmpeg -i FILE` lists the streams and stops): milliseconds even for
    an hour-long recording, where a full `probe()` walks every packet.
    """
    from cht_lab.ffmpeg import find_ffmpeg

    try:
        if path.stat().st_size == 0:
            return None
        res = subprocess.run([find_ffmpeg(), "-hide_banner", "-nostdin", "-i", str(path)], capture_output=True,
                             timeout=timeout, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.debug("cannot read the header of %s yet: %s", path, exc)
        return None
    kinds = _STREAM_RE.findall(res.stderr.decode("utf-8", "replace"))
    return ("Audio" in kinds) if kinds else None


def find_audio_sources(session_dir: str | os.PathLike[str], *,
                       _known: dict[Path, bool] | None = None) -> list[AudioSegment]:
    """The session's audio sources: recordings with an audio track, else `stream/audio.aac`.

    Recordings keep their segment numbers and global offsets (`layout.discover_segments`), so an
    audio chunk's `segment` matches the frames of the same recording. Empty list: no audio.
    """
    session_dir = Path(session_dir)
    found: list[AudioSegment] = []
    for seg in layout.discover_segments(session_dir):
        has = _known.get(seg.path) if _known is not None else None
        if has is None:
            has = _probe_has_audio(seg.path)
            if has is not None and _known is not None:
                _known[seg.path] = has  # a fragmented MP4's track list never changes once readable
        if has:
            found.append(AudioSegment(seg.path, seg.offset, seg.index))
    if found:
        return found
    aac = session_dir / layout.STREAM_DIR / layout.AUDIO_AAC
    if aac.is_file() and aac.stat().st_size > 0:
        return [AudioSegment(aac, 0.0, 0)]
    return []


# --------------------------------------------------------------------------- ffmpeg command


def decode_args(input_path: str | os.PathLike[str] | None, *, sample_rate: int = 16000, channels: int = 1,
                pipe_format: str | None = None, live: bool = False) -> list[str]:
    """ffmpeg arguments (without the binary) that decode the first audio stream to s16le on stdout.

    `input_path=None` reads stdin (`pipe_format` names the demuxer). One `aresample` does the
    rate, layout and format conversion and pins sample 0 to pts 0 (`first_pts=0`).
    """
    layout_name = _LAYOUTS.get(channels, f"{channels}c")
    af = f"aresample=osr={sample_rate}:ochl={layout_name}:osf=s16:first_pts=0"
    args = ["-hide_banner", "-nostdin", "-loglevel", "warning"]
    if input_path is None:
        if pipe_format:
            args += ["-f", pipe_format]
        args += ["-probesize", "32768", "-analyzeduration", "500000", "-i", "pipe:0"]
    else:
        args += ["-i", str(input_path)]
    args += ["-map", "0:a:0", "-vn", "-sn", "-dn", "-af", af, "-f", "s16le"]
    # live: hand over every packet at once (latency); a finished file: full 32 KB writes, which
    # cuts the pipe traffic ~25x (ffmpeg's default flushes each ~1.4 KB packet to a pipe)
    args += ["-flush_packets", "1" if live else "0"]
    return args + ["pipe:1"]


def decode_pcm(path: str | os.PathLike[str], *, sample_rate: int = 16000, channels: int = 1,
               timeout: float = 120.0) -> np.ndarray:
    """The whole audio of `path` decoded exactly as the extractor decodes it: int16, (n, channels)."""
    from cht_lab.ffmpeg import run_ffmpeg

    args = decode_args(path, sample_rate=sample_rate, channels=channels)[4:]  # run_ffmpeg adds its own flags
    res = run_ffmpeg(args, timeout=timeout, path=path)
    return np.frombuffer(res.stdout, dtype="<i2").reshape(-1, channels)


def _write_all(sink: Any, data: bytes) -> None:
    """An unbuffered pipe write may take only part of the data (a signal): write the rest too."""
    view = memoryview(data)
    while view:
        n = sink.write(view)
        if n is None:  # non-blocking sink with a full pipe: cannot happen with our blocking pipes
            raise BlockingIOError("ffmpeg's stdin is not accepting data")
        view = view[n:]


def _grow_pipe(stream: Any, size: int = 1 << 20) -> None:
    """Let ffmpeg run up to `size` bytes (~30 s of 16 kHz PCM) ahead of us (Linux; else a no-op)."""
    try:
        import fcntl

        fcntl.fcntl(stream.fileno(), getattr(fcntl, "F_SETPIPE_SZ", 1031), size)
    except (OSError, ValueError, AttributeError, ImportError):
        pass


# --------------------------------------------------------------------------- the extractor


@dataclass
class _Segment:
    """State of one decode (one ffmpeg): shared between the reader and the feeder thread."""

    source: AudioSegment
    number: int
    offset: float | None  # None until known (a replaced file: set when its first bytes arrive)
    prev_end: float = 0.0
    prev_last_data: float | None = None
    skip: int = 0
    samples: int = 0  # samples of this segment chunked so far (including skipped ones)
    fed: int = 0
    first_data_at: float | None = None
    last_data_at: float | None = None
    replaced: FileReplacedError | None = None
    end_reason: str = ""
    feed_error: BaseException | None = None
    ready: threading.Event = field(default_factory=threading.Event)
    feed_stop: threading.Event = field(default_factory=threading.Event)

    def first_data(self) -> None:
        now = time.time()
        self.first_data_at = now
        if self.offset is None:
            gap = 0.0 if self.prev_last_data is None else max(0.0, now - self.prev_last_data)
            self.offset = self.prev_end + gap
        self.ready.set()


class AudioExtractor:
    """Cut a session's audio into pause-aware WAV chunks, in a background thread (one job).

    `sources=None` finds them (`find_audio_sources`); `[]` means no audio. `follow=True` tails the
    last source as it grows (live); otherwise every source is decoded to its end and the worker
    ends. `resume=True` continues after chunks already in the index for the same source and
    segment (a restarted live session does not cut the same audio twice). `idle_timeout`
    (follow mode) ends the work once the followed file has not grown for that many seconds.
    """

    def __init__(self, session_dir: str | os.PathLike[str], index: Any, *,
                 sources: Iterable[AudioSegment] | None = None, follow: bool = False,
                 sample_rate: int = 16000, channels: int = 1, min_chunk: float = 5.0,
                 max_chunk: float = 30.0, on_chunk: ChunkCallback | None = None, resume: bool = True,
                 idle_timeout: float | None = None, poll: float = 1.0):
        Chunker(sample_rate, channels, min_chunk, max_chunk)  # validates the parameters now
        self.session_dir = Path(session_dir).resolve()
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
        self._seg: _Segment | None = None
        self._known: dict[Path, bool] = {}
        self._used_segments: set[int] = set()
        self._local_ids = 0
        self.rows: list[dict[str, Any]] = []  # rows written by this extractor (also in the index)
        self._out: queue.Queue[tuple[dict[str, Any], np.ndarray] | None] = queue.Queue(maxsize=_QUEUE)
        self._write_error: BaseException | None = None
        self._status: dict[str, Any] = {
            "state": "idle", "chunks": 0, "seconds": 0.0, "decoded": 0.0, "segment": None, "source": None,
            "sample_rate": self.sample_rate, "channels": self.channels, "last_error": None, "errors": [],
            "warnings": [], "replaced": 0, "note": "",
        }

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
            if self._status["state"] not in ("done", "stopped", "failed", "no audio"):
                self._set(state="stopping")
        if proc is not None and not follows and proc.running():
            try:
                proc.popen.send_signal(signal.SIGTERM)  # ffmpeg stops reading, flushes, exits
            except OSError:
                pass
        t = self._thread
        if t is None:  # never started: nothing to drain
            with self._lock:
                if self._status["state"] == "stopping":
                    self._set(state="stopped")
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
        """state, chunks, seconds (chunked), decoded (seconds decoded), segment, source, last_error,
        errors, warnings, replaced (file recreations seen), note ("no audio" when there is none)."""
        with self._lock:
            st = dict(self._status)
            st["errors"] = list(st["errors"])
            st["warnings"] = list(st["warnings"])
        return st

    def __enter__(self) -> "AudioExtractor":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ status helpers

    def _set(self, **fields: Any) -> None:
        self._status.update(fields)

    def _update(self, **fields: Any) -> None:
        with self._lock:
            self._status.update(fields)

    def _error(self, where: str, exc: BaseException) -> None:
        log.error("audio %s: %s: %s", self.session_dir.name, where, exc, exc_info=exc)
        with self._lock:
            msg = f"{where}: {type(exc).__name__}: {exc}" if where else f"{type(exc).__name__}: {exc}"
            self._status["errors"].append({"time": time.time(), "error": msg})
            del self._status["errors"][:-50]
            self._status["last_error"] = msg

    def _warn(self, msg: str, *, level: int = logging.WARNING) -> None:
        log.log(level, "audio %s: %s", self.session_dir.name, msg)
        with self._lock:
            self._status["warnings"].append({"time": time.time(), "warning": msg})
            del self._status["warnings"][:-50]

    # ------------------------------------------------------------------ the worker

    def _thread_main(self) -> None:
        self._update(state="starting")
        final = "done"
        writer = threading.Thread(target=self._writer_loop, name=f"audio-write:{self.session_dir.name}", daemon=True)
        writer.start()
        try:
            try:
                self.audio_dir.mkdir(parents=True, exist_ok=True)
                self._remove_temp_files()
                final = self._work()
            finally:
                self._out.put(None)
                writer.join()
            if self._write_error is not None:
                final = "failed"
        except _WriteFailed:
            final = "failed"  # the writer reported why
        except BaseException as exc:  # never die silently; KeyboardInterrupt in run() still re-raises
            self._error("worker", exc)
            final = "failed"
            if not isinstance(exc, Exception):
                raise
        finally:
            with self._lock:
                proc, self._proc = self._proc, None
            if proc is not None:
                proc.stop(timeout=1.0)
            with self._lock:
                if self._status["state"] != "failed":
                    self._status["state"] = final
            self.done.set()

    def _work(self) -> str:
        finished: set[Path] = set()
        existing = self._existing_rows()
        found_any = False
        while not self._stop.is_set():
            sources = self.sources if self.sources is not None else find_audio_sources(
                self.session_dir, _known=self._known)
            found_any = found_any or bool(sources)
            pending = [s for s in sources if s.path not in finished]
            if not pending:
                if not sources and not self.follow:
                    break
                if not self.follow or self.sources is not None:
                    break
                self._update(state="waiting", note="" if sources else "no audio yet")
                self._stop.wait(self.poll)
                continue
            src = pending[0]
            last = src is sources[-1]
            self._update(note="")
            self._run_source(src, follow=self.follow and last, existing=existing)
            finished.add(src.path)
            if (self.follow and last and self.sources is None and self.idle_timeout is not None
                    and not self._stop.is_set() and not self._newer_recording(src.path)):
                break  # the followed file went idle and nothing newer started: the session is over
        if not found_any:
            log.info("audio %s: no audio (no recording with an audio track, no %s/%s)",
                     self.session_dir.name, layout.STREAM_DIR, layout.AUDIO_AAC)
            self._update(note="no audio")
            return "no audio"
        return "stopped" if self._stop.is_set() else "done"

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

    def _resume_point(self, src: AudioSegment, existing: pd.DataFrame | None) -> tuple[int, float, int]:
        """(segment number, offset, samples to skip) for `src`, after chunks already indexed."""
        if existing is None:
            return src.segment, src.offset, 0
        rows = existing[existing["source"] == self._rel(src.path)]
        rows = rows[rows["segment"] >= src.segment]
        if rows.empty:
            return src.segment, src.offset, 0
        last = rows.sort_values(["segment", "local_start"]).iloc[-1]
        if int(last["sample_rate"]) == self.sample_rate:
            skip = int(round(float(last["local_start"]) * self.sample_rate)) + int(last["samples"])
        else:
            skip = int(round((float(last["local_start"]) + float(last["duration"])) * self.sample_rate))
        seg = int(last["segment"])
        offset = float(last["start"]) - float(last["local_start"])
        log.info("audio %s: resuming %s segment %d after %.3f s already chunked", self.session_dir.name,
                 src.path.name, seg, skip / self.sample_rate)
        return seg, offset, skip

    def _next_segment_number(self) -> int:
        """After every segment number in use: ours, the index's, and the session's recordings."""
        known = set(self._used_segments)
        known.update(s.segment for s in (self.sources or []))
        known.update(s.index for s in layout.discover_segments(self.session_dir))
        return max(known, default=-1) + 1

    def _run_source(self, src: AudioSegment, *, follow: bool, existing: pd.DataFrame | None) -> None:
        number, offset, skip = self._resume_point(src, existing)
        seg = _Segment(src, number, offset, skip=skip)
        while True:
            self._used_segments.add(seg.number)
            self._update(state="running", segment=seg.number, source=self._rel(src.path))
            try:
                self._decode(seg, follow=follow)
            except MediaError as exc:
                self._error("", exc)
            if seg.replaced is None or self._stop.is_set():
                return
            # the writer recreated the file: finish this segment (done) and start a new one
            with self._lock:
                self._status["replaced"] += 1
            if seg.samples == 0:  # nothing came out of it: the next file keeps its number and origin
                self._warn(f"{src.path.name} was recreated ({seg.replaced.reason}) before any audio was decoded")
                seg = _Segment(src, seg.number, seg.offset if seg.fed == 0 else None, prev_end=seg.prev_end,
                               prev_last_data=seg.prev_last_data)
                continue
            end = (seg.offset or 0.0) + seg.samples / self.sample_rate
            number = self._next_segment_number()
            self._warn(f"{src.path.name} was recreated ({seg.replaced.reason}); segment {seg.number} ends at "
                       f"{end:.3f} s, its audio continues as segment {number}")
            seg = _Segment(src, number, None, prev_end=end, prev_last_data=seg.last_data_at)

    # ------------------------------------------------------------------ one decode

    def _decode(self, seg: _Segment, *, follow: bool) -> None:
        """One ffmpeg over one segment: feed (follow) or read the file, chunk the PCM, write chunks."""
        path = seg.source.path
        if follow and not self._wait_for_file(path):
            return
        if not follow and not path.is_file():
            raise MediaError(path, "no such file")
        fmt = _PIPE_FORMATS.get(path.suffix.lower())
        args = decode_args(None if follow else path, sample_rate=self.sample_rate, channels=self.channels,
                           pipe_format=fmt, live=follow)
        chunker = Chunker(self.sample_rate, self.channels, self.min_chunk, self.max_chunk, skip=seg.skip)
        vad = EnergyVad(self.sample_rate)
        seg.samples = seg.skip
        with self._lock:
            if self._stop.is_set():
                return
            proc = FfmpegProcess(args, stdin=subprocess.PIPE if follow else subprocess.DEVNULL,
                                 name=f"audio-ffmpeg:{path.name}")
            self._proc, self._proc_follows, self._seg = proc, follow, seg
        _grow_pipe(proc.stdout)
        feeder = None
        if follow:
            feeder = threading.Thread(target=self._feed, args=(seg, proc), name=f"audio-feed:{path.name}",
                                      daemon=True)
            feeder.start()
        else:
            seg.ready.set()
        frame_bytes = 2 * self.channels
        rest = b""
        decoded = 0
        eof = False
        try:
            stdout = proc.stdout
            assert stdout is not None
            while True:
                try:
                    data = stdout.read(_READ_BLOCK)
                except (OSError, ValueError):  # stdout closed: killed by stop() after its deadline
                    break
                if not data:
                    eof = True
                    break
                if rest:
                    data = rest + data
                usable = len(data) - len(data) % frame_bytes
                rest = data[usable:]
                if not usable:
                    continue
                pcm = np.frombuffer(data, dtype="<i2", count=usable // 2).reshape(-1, self.channels)
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
            if eof and proc.running():
                try:
                    proc.wait(timeout=2.0)  # stdout at EOF: ffmpeg is exiting
                except subprocess.TimeoutExpired:
                    pass
            proc.stop(timeout=1.0)
            if feeder is not None:
                feeder.join(timeout=5.0)
            with self._lock:
                if self._proc is proc:
                    self._proc = None
        self._report_decode(seg, proc, proc.returncode, decoded, follow)

    def _report_decode(self, seg: _Segment, proc: FfmpegProcess, rc: int | None, decoded: int,
                       follow: bool) -> None:
        path = seg.source.path
        stopping = self._stop.is_set()
        lines = [ln for ln in proc.stderr_tail(200).splitlines() if ln.strip() and not _BENIGN.search(ln)]
        if seg.feed_error is not None:
            self._error(f"following {path.name}", seg.feed_error)
        if decoded == 0 and rc not in (0, None) and not stopping and seg.replaced is None:
            reason = proc.error_summary()
            if "matches no streams" in reason:
                reason = "no audio stream"
            raise MediaError(path, f"cannot decode audio: {reason}")
        if lines and not stopping and seg.replaced is None:
            self._warn(f"{path.name}: decoded {decoded / self.sample_rate:.3f} s; ffmpeg reported: "
                       f"{lines[-1].strip()} (truncated or damaged audio?)")
        elif lines:  # a cut-off last packet is expected when we stop or the writer starts over
            log.info("audio %s: %s ended (%s): %s", self.session_dir.name, path.name,
                     "stop" if stopping else "file replaced", lines[-1].strip())
        log.info("audio %s: segment %d (%s) done: %.3f s decoded, ffmpeg exit %s", self.session_dir.name,
                 seg.number, path.name, decoded / self.sample_rate, rc)

    def _wait_for_file(self, path: Path) -> bool:
        """Follow mode: wait until the file exists and has bytes (or stop)."""
        while not self._stop.is_set():
            try:
                if path.stat().st_size > 0:
                    return True
            except FileNotFoundError:
                pass
            self._update(state="waiting")
            self._stop.wait(0.05)
        return False

    def _feed(self, seg: _Segment, proc: FfmpegProcess) -> None:
        """Feeder thread: tail the growing file into ffmpeg's stdin; ends on stop, replacement,
        a newer recording (when idle) or idle_timeout. Always closes stdin (ffmpeg sees EOF)."""
        path = seg.source.path
        sink = proc.stdin
        assert sink is not None
        offset = 0
        last_growth = time.monotonic()
        try:
            try:
                ino = os.stat(path).st_ino
            except FileNotFoundError:
                raise FileReplacedError(path, "file was removed before it could be followed") from None
            while not seg.feed_stop.is_set():
                for data in tail_file(path, seg.feed_stop, idle_timeout=self.poll, start_offset=offset):
                    if seg.first_data_at is None:
                        seg.first_data()
                    _write_all(sink, data)
                    offset += len(data)
                    seg.fed = offset
                    seg.last_data_at = time.time()
                    last_growth = time.monotonic()
                if seg.feed_stop.is_set():
                    seg.end_reason = "stopped"
                    break
                try:
                    st = os.stat(path)
                except FileNotFoundError:
                    raise FileReplacedError(path, "file was removed while being followed") from None
                if st.st_ino != ino:
                    raise FileReplacedError(path, "file was replaced (new inode) while being followed")
                if st.st_size < offset:
                    raise FileReplacedError(path, f"file shrank from {offset} to {st.st_size} bytes")
                if self.sources is None and self._newer_recording(path):
                    seg.end_reason = "a newer recording started"
                    break
                if self.idle_timeout is not None and time.monotonic() - last_growth > self.idle_timeout:
                    seg.end_reason = f"no growth for {self.idle_timeout:.1f} s"
                    break
        except FileReplacedError as exc:
            seg.replaced = exc
            seg.end_reason = exc.reason
        except FileNotFoundError:  # removed between our stat and tail_file's open
            seg.replaced = FileReplacedError(path, "file was removed while being followed")
            seg.end_reason = seg.replaced.reason
        except (BrokenPipeError, ValueError):
            seg.end_reason = "ffmpeg closed its input"
        except Exception as exc:
            seg.feed_error = exc
        finally:
            if seg.first_data_at is None:
                seg.first_data()  # nothing fed: still give the segment an offset
            try:
                sink.close()
            except OSError:
                pass
        log.debug("audio feed %s ends: %s", path.name, seg.end_reason)

    def _newer_recording(self, path: Path) -> bool:
        if path.name == layout.AUDIO_AAC:
            return False
        return any(p.name > path.name for p in layout.recordings(self.session_dir))

    # ------------------------------------------------------------------ one chunk

    def _emit(self, seg: _Segment, pcm: np.ndarray, vad: EnergyVad) -> None:
        """Reader side: place the chunk on the timeline (sample counts), measure it, queue it."""
        if self._write_error is not None:
            raise _WriteFailed(f"writing audio chunks failed: {self._write_error}") from self._write_error
        n = len(pcm)
        first = seg.samples  # samples of this segment before the chunk: the truth for its start
        seg.ready.wait(5.0)
        offset = seg.offset if seg.offset is not None else 0.0
        local_start = first / self.sample_rate
        chunk_id = self._next_id()
        stats = vad.stats(pcm)
        row = {
            "id": chunk_id, "path": f"{layout.AUDIO_DIR}/{chunk_id}.wav", "start": offset + local_start,
            "duration": n / self.sample_rate, "local_start": local_start, "segment": seg.number,
            "source": self._rel(seg.source.path), "sample_rate": self.sample_rate, "channels": self.channels,
            "samples": n, "rms_dbfs": stats.rms_dbfs, "peak_dbfs": stats.peak_dbfs,
            "speech_ratio": stats.speech_ratio,
        }
        seg.samples = first + n
        self._out.put((row, pcm))  # blocks while the writer is _QUEUE chunks behind (back-pressure)

    def _writer_loop(self) -> None:
        """Writer thread: WAV files, then their index rows, then callbacks, in order.

        Group commit: chunks that queued up while the previous batch was written share one
        directory fsync and one index part; offline the writer also lingers up to _LINGER s to
        fill a batch, live it commits each chunk at once. A write failure stops the extraction
        (reported), never silently.
        """
        linger = 0.0 if self.follow else _LINGER  # offline nobody waits for a chunk: commit in bulk
        while True:
            batch = [self._out.get()]
            deadline = time.monotonic() + linger
            while batch[-1] is not None and len(batch) < _BATCH:
                try:
                    batch.append(self._out.get(timeout=max(0.0, deadline - time.monotonic()))
                                 if linger else self._out.get_nowait())
                except queue.Empty:
                    break
            items = [b for b in batch if b is not None]
            if items and self._write_error is None:
                try:
                    self._write_batch(items)
                except Exception as exc:
                    self._write_error = exc
                    self._error("writing chunks", exc)
                    self._abort()
            if batch[-1] is None:
                return

    def _write_batch(self, items: list[tuple[dict[str, Any], np.ndarray]]) -> None:
        for row, pcm in items:
            write_wav(self.session_dir / row["path"], pcm, self.sample_rate, self.channels, sync_dir=False)
        _fsync_dir(self.audio_dir)  # the renames are durable before any row points at them
        rows = [row for row, _ in items]
        if self.index is not None:
            self.index.append_audio(rows)
        self.rows.extend(rows)
        with self._lock:
            self._status["chunks"] += len(rows)
            self._status["seconds"] += sum(r["duration"] for r in rows)
        if self.on_chunk is None:
            return
        for row in rows:
            chunk = AudioChunk(row["id"], str(self.session_dir / row["path"]), row["start"], row["duration"],
                               row["segment"], row["local_start"], row)
            try:
                self.on_chunk(chunk)
            except Exception as exc:
                self._error("on_chunk callback", exc)

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

    def _next_id(self) -> str:
        if self.index is not None:
            return self.index.next_chunk_id()
        if not self._local_ids:
            nums = [int(m.group(1)) for p in self.audio_dir.glob("chunk_*.wav")
                    if (m := re.fullmatch(r"chunk_(\d+)", p.stem))]
            self._local_ids = max(nums, default=-1) + 1
        n, self._local_ids = self._local_ids, self._local_ids + 1
        return f"chunk_{n:04d}"

    def _rel(self, path: Path) -> str:
        try:
            return Path(os.path.abspath(path)).relative_to(self.session_dir).as_posix()
        except ValueError:
            return str(os.path.abspath(path))

    def _remove_temp_files(self) -> None:
        for p in self.audio_dir.glob(".chunk_*.tmp"):
            try:
                p.unlink()
            except OSError:
                pass


# --------------------------------------------------------------------------- offline


def extract_audio(session_dir: str | os.PathLike[str], index: Any, *, sources: Iterable[AudioSegment] | None = None,
                  replace: bool = True, on_chunk: ChunkCallback | None = None, **chunking: Any) -> pd.DataFrame:
    """Cut a recorded session's audio into chunks, to the end; returns the audio table.

    Re-running **replaces** the previous chunks (`replace=True`, the default): their rows are
    cleared from the index and their WAV files deleted before the new cut, so changed chunk
    settings take effect and nothing is duplicated. Chunk ids keep counting up (the index never
    reuses an id). `replace=False` resumes instead: only audio not yet chunked is cut.
    `chunking`: sample_rate, channels, min_chunk, max_chunk. Raises AudioExtractionError when a
    source could not be decoded (chunks of the other sources are kept); truncated audio is not an
    error (what is there is cut, with a warning in the log).
    """
    session_dir = Path(session_dir)
    if replace:
        _clear_chunks(session_dir, index)
    ex = AudioExtractor(session_dir, index, sources=sources, follow=False, on_chunk=on_chunk,
                        resume=not replace, **chunking)
    ex.run()
    st = ex.status
    if st["errors"]:
        raise AudioExtractionError("; ".join(e["error"] for e in st["errors"]))
    return index.audio() if index is not None else pd.DataFrame(ex.rows)


def _clear_chunks(session_dir: Path, index: Any) -> None:
    if index is None:
        return
    old = index.audio()
    index.clear("audio")
    for rel in old.get("path", []):
        p = session_dir / str(rel)
        if p.suffix == ".wav" and p.parent.name == layout.AUDIO_DIR:
            try:
                p.unlink()
            except FileNotFoundError:
                pass
