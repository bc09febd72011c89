"""Video sources: every kind of input ends as ffmpeg input arguments (plus, maybe, a stdin feeder).

Before each ffmpeg run, `prepare()` finds the picture size (the analysis decode fixes its output
sizes up front, so frame sync survives resolution changes): a file or growing recording is
probed, a socket is read up to its first complete keyframe (which then opens the stream),
anything else is opened once by ffmpeg for one frame.

The detector does not care where frames come from. A finished recording is handed to ffmpeg by
path (seekable, so a crashed decode can resume where it stopped); a growing fMP4 is tailed and
piped into ffmpeg's stdin because ffmpeg alone stops at the current end of a file; cht's
`scene.sock` carries H.264 Annex-B that we read and pipe in, reconnecting with backoff when the
server goes away; anything ffmpeg opens itself (rtsp, srt, x11grab, lavfi, ...) is passed as is.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import re
import socket
import stat
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Callable, Iterator

from cht_lab import layout
from cht_lab.ffmpeg import MediaError, probe, run_ffmpeg
from cht_lab.sources.follow import FileReplacedError, pump, tail_file

log = logging.getLogger(__name__)

StateCallback = Callable[[str, "str | None"], None]
"""`on_state(state, message)` from a source: 'connecting', 'connected', 'reconnecting', 'ended', 'garbage',
'damaged' (a file decodes only in part)."""

_URL_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_DEVICE_PREFIXES = ("lavfi:", "x11grab:", "v4l2:", "avfoundation:", "gdigrab:", "dshow:", "kmsgrab:", "pulse:")
_PROTOCOL_PREFIXES = ("file:", "pipe:", "concat:", "subfile:")


_SUN_PATH_MAX = 107  # bytes in sockaddr_un.sun_path, minus the terminating NUL


@contextlib.contextmanager
def unix_address(path: str | os.PathLike[str]) -> Iterator[str]:
    """A path usable with bind()/connect() for `path`, even when it exceeds the sun_path limit.

    Long paths (deep temp or notebook directories) are reached through /proc/self/fd/N/name,
    where N is an O_PATH descriptor of the parent directory (Linux).
    """
    text = os.fspath(path)
    if len(os.fsencode(text)) <= _SUN_PATH_MAX or not os.path.isdir("/proc/self/fd"):
        yield text
        return
    parent, name = os.path.split(os.path.abspath(text))
    fd = os.open(parent or ".", getattr(os, "O_PATH", os.O_RDONLY) | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{fd}/{name}"
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- Annex-B parsing


@dataclass
class NalUnit:
    """Where a NAL unit starts in the stream, and what it is."""

    pos: int  # absolute stream offset of the start code
    type: int
    first_mb_zero: bool  # slices: first_mb_in_slice == 0 (a new picture starts)


class AnnexBScanner:
    """Find NAL unit starts in an H.264 Annex-B byte stream fed in arbitrary chunks."""

    def __init__(self) -> None:
        self._tail = b""
        self._pos = 0  # absolute offset of the next byte fed

    def feed(self, chunk: bytes) -> list[NalUnit]:
        data = self._tail + chunk
        base = self._pos - len(self._tail)
        self._pos += len(chunk)
        found: list[NalUnit] = []
        i = 0
        keep = max(0, len(data) - 4)
        while True:
            j = data.find(b"\x00\x00\x01", i)
            if j < 0:
                break
            if j + 4 >= len(data):  # header (and first slice byte) not here yet: rescan next time
                keep = max(0, j - 1)
                break
            start = j - 1 if j > 0 and data[j - 1] == 0 else j
            found.append(NalUnit(base + start, data[j + 3] & 0x1F, bool(data[j + 4] & 0x80)))
            i = j + 3
            keep = max(i, len(data) - 4)
        self._tail = data[keep:]
        return found


def starts_access_unit(nal: NalUnit, prev_type: int | None) -> bool:
    """H.264 7.4.1.2.3, simplified: an AUD, or SEI/SPS/PPS after a picture, or a new picture's first slice."""
    if nal.type == 9:
        return True
    if prev_type is None:
        return True
    prev_vcl = 1 <= prev_type <= 5
    if nal.type in (6, 7, 8) or 14 <= nal.type <= 18:
        return prev_vcl
    if 1 <= nal.type <= 5:
        return prev_vcl and nal.first_mb_zero
    return False



# --------------------------------------------------------------------------- picture size


@dataclass(frozen=True)
class VideoFormat:
    """What the analysis decode must know before it starts."""

    width: int
    height: int
    fps: float | None = None


_DIMENSIONS_RE = re.compile(r"#dimensions 0: (\d+)x(\d+)")
_MP4_BOXES = (b"ftyp", b"styp", b"moov", b"moof", b"mdat", b"free", b"skip", b"wide", b"sidx")


def probe_format(input_args: list[str], *, name: str, data: bytes | None = None, timeout: float = 20.0) -> VideoFormat:
    """Size of the first video frame of any ffmpeg input (or of `data` fed to it on stdin)."""
    res = run_ffmpeg([*input_args, "-map", "0:v:0", "-frames:v", "1", "-c", "copy", "-f", "framecrc", "-"],
                     timeout=timeout, input=data, path=name)
    m = _DIMENSIONS_RE.search(res.stdout.decode("ascii", "replace"))
    if not m or int(m.group(1)) <= 0:
        raise MediaError(name, "no video stream with a known picture size")
    return VideoFormat(int(m.group(1)), int(m.group(2)))


def probe_file_format(path: Path) -> VideoFormat:
    """Probe a recording for the analysis decode; MediaError naming the file when it cannot be used."""
    return _probe_file(path)[0]


def _probe_file(path: Path) -> tuple[VideoFormat, Any]:
    try:
        info = probe(path)
    except MediaError as exc:
        if "invalid data" in exc.reason and _starts_like_mp4(path):
            raise MediaError(path, "truncated or unfinished MP4 (moov atom not found)") from None
        raise
    if info.video is None:
        raise MediaError(path, "no video stream (audio only)" if info.audio is not None else "no video stream")
    if info.video.width <= 0 or info.video.height <= 0:
        raise MediaError(path, "no video frame could be read (still being written?)")
    return VideoFormat(info.video.width, info.video.height, info.video.fps or None), info


def _starts_like_mp4(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(8)[4:8] in _MP4_BOXES
    except OSError:
        return False


# A cht session's stream has ended when its socket has been gone (or its newest recording has not
# grown) this long; a recorder restart takes well under that. cht gives no other sign: its socket
# also goes away during a restart, and a finished recording looks the same either way. Defaults
# for open_source(end_after=...); a caller that knows its server is done sooner may pass less.
SESSION_END_AFTER = 5.0
SESSION_IDLE_TIMEOUT = 10.0


class Source:
    """What the detector needs to run ffmpeg on an input.

    `input_args(start)` are the arguments before the outputs (`-i` included); `start` asks a
    seekable source to resume at that time. A source with a feeder reads `pipe:0`: the detector
    runs `feed(sink, stop, on_state)` in a thread for each ffmpeg run; the feeder must close
    `sink` when it ends, which ends the run.
    """

    kind: str = "source"
    live: bool = False  # no natural end: restart when ffmpeg ends
    seekable: bool = False  # input_args(start=...) resumes at `start`
    realtime: bool = False

    @property
    def has_feeder(self) -> bool:
        return False

    def input_args(self, start: float | None = None) -> list[str]:
        raise NotImplementedError

    def prepare(self, stop: threading.Event, on_state: StateCallback | None = None) -> VideoFormat | None:
        """Get ready for the next run and tell its picture size; None when `stop` was set meanwhile.

        Raises MediaError (naming the input) when the input cannot be decoded.
        """
        raise NotImplementedError

    def feed(self, sink: IO[bytes], stop: threading.Event, on_state: StateCallback | None = None) -> None:
        """Write the input into ffmpeg's stdin until exhausted or stopped (sources with a feeder)."""
        raise NotImplementedError(f"{type(self).__name__} has no feeder")

    def close(self) -> None:
        """Release what the source holds between runs (a socket's connection threads); safe to call twice."""

    @property
    def name(self) -> str:
        """A short name for messages: the file, socket or URL."""
        raise NotImplementedError

    def describe(self) -> str:
        return f"{self.kind} {self.name}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


class FileSource(Source):
    """A finished recording: ffmpeg reads it at maximum speed, or at `speed` × real time."""

    kind = "file"
    seekable = True

    def __init__(self, path: str | os.PathLike[str], *, realtime: bool = False, speed: float = 1.0):
        self.path = Path(path)
        if not self.path.exists():
            raise MediaError(self.path, "no such file")
        if not self.path.is_file():
            raise MediaError(self.path, "not a regular file")
        if self.path.stat().st_size == 0:
            raise MediaError(self.path, "empty file (0 bytes)")
        self.realtime = bool(realtime)
        self.speed = float(speed)
        self._format: VideoFormat | None = None

    @property
    def name(self) -> str:
        return str(self.path)

    def prepare(self, stop: threading.Event, on_state: StateCallback | None = None) -> VideoFormat | None:
        if self._format is None:
            self._format, info = _probe_file(self.path)
            if not info.complete:  # decode what is there, and say why the end is missing
                msg = (f"{self.path}: truncated or damaged recording (its last packet is incomplete); "
                       f"decoding the {info.duration:.3f} s that can be read")
                log.warning("%s", msg)
                if on_state:
                    on_state("damaged", msg)
        return self._format

    def input_args(self, start: float | None = None) -> list[str]:
        args: list[str] = []
        if self.realtime:
            args += ["-readrate", f"{self.speed:g}"]
        if start is not None and start > 0:
            # accurate seek (frames before `start` are decoded and dropped) that keeps the recording's
            # timestamps: a resumed run reports the same pts a full run would, to the microsecond
            args += ["-copyts", "-start_at_zero", "-ss", f"{start:.6f}"]
        return args + ["-i", str(self.path)]


class FollowSource(Source):
    """A recording another process is still writing (cht's growing fMP4), tailed into ffmpeg's stdin.

    Given a session directory, it follows the newest `stream/*` recording; when a newer one
    appears (recorder restart) and the current one has stopped growing, the run ends and the
    next run follows the new file. `idle_timeout`: seconds without growth (and without a newer
    file) after which the recording counts as finished; None follows forever.
    """

    kind = "follow"
    live = True

    def __init__(self, path: str | os.PathLike[str], *, idle_timeout: float | None = None,
                 switch_after: float = 1.0, wait_for_file: float = 10.0, realtime: bool = False):
        self.path = Path(path)
        self.is_session = self.path.is_dir()
        if not self.path.exists() and not self.path.parent.is_dir():
            raise MediaError(self.path, "no such file")
        self.idle_timeout = idle_timeout
        self.switch_after = float(switch_after)
        self.wait_for_file = float(wait_for_file)
        self.realtime = realtime  # a growing file is paced by its writer; kept for the interface
        self.current: Path | None = None
        self.finished = False  # set by feed() when the recording ended (idle_timeout passed)

    @property
    def name(self) -> str:
        return str(self.current or self.path)

    @property
    def has_feeder(self) -> bool:
        return True

    def input_args(self, start: float | None = None) -> list[str]:
        return ["-i", "pipe:0"]

    def _newest(self) -> Path | None:
        if not self.is_session:
            return self.path
        recs = layout.recordings(self.path)
        return recs[-1] if recs else None

    def _wait_for_recording(self, stop: threading.Event) -> Path | None:
        deadline = None if self.wait_for_file <= 0 else self.wait_for_file
        waited = 0.0
        while not stop.is_set():
            target = self._newest()
            if target is not None:
                return target
            if deadline is not None and waited > deadline:
                raise FileNotFoundError(f"{self.path}: no recording in {layout.STREAM_DIR}/ (waited {waited:.0f} s)")
            stop.wait(0.1)
            waited += 0.1
        return None

    def prepare(self, stop: threading.Event, on_state: StateCallback | None = None) -> VideoFormat | None:
        """Pick the recording to follow and wait until its first frame is readable."""
        target = self._wait_for_recording(stop)
        if target is None:
            return None
        self.current = target
        deadline = time.monotonic() + self.wait_for_file
        while True:
            try:
                return probe_file_format(target)
            except MediaError:
                if time.monotonic() > deadline or stop.is_set():
                    raise
            stop.wait(0.1)  # the writer has not finished its first fragment yet

    def feed(self, sink: IO[bytes], stop: threading.Event, on_state: StateCallback | None = None) -> None:
        try:
            target = self.current or self._wait_for_recording(stop)
            if target is None:
                return
            self.current = target
            if on_state:
                on_state("connected", f"following {target}")
            pump(self._chunks(target, stop), sink, stop)
        finally:
            try:
                sink.close()
            except OSError:
                pass

    def _chunks(self, target: Path, stop: threading.Event):
        """Tail `target`; end when a newer recording takes over or the recording is finished."""
        offset = 0
        quiet = 0.0
        inode: int | None = None
        poll = min(self.switch_after, self.idle_timeout or self.switch_after, 0.5)
        while not stop.is_set():
            grew = False
            try:
                ino = target.stat().st_ino
            except FileNotFoundError:
                ino = None  # tail_file waits for it (and raises if it never comes back)
            if inode is not None and ino is not None and ino != inode:
                raise FileReplacedError(target, "file was replaced (new inode) while being followed")
            inode = ino if ino is not None else inode
            for data in tail_file(target, stop, start_offset=offset, idle_timeout=poll,
                                  wait_for_file=self.wait_for_file):
                offset += len(data)
                grew = True
                yield data
            if stop.is_set():
                return
            quiet = 0.0 if grew else quiet + poll
            newest = self._newest()
            if newest is not None and newest != target and quiet + poll >= self.switch_after:
                log.info("%s: newer recording %s; ending this run", target, newest.name)
                return
            if self.idle_timeout is not None and quiet + poll >= self.idle_timeout:
                log.info("%s stopped growing for %.1f s; treating it as finished", target, self.idle_timeout)
                self.finished = True
                return


class SocketSource(Source):
    """cht's `scene.sock`: H.264 Annex-B on a Unix socket, piped into ffmpeg (`-f h264`).

    Each ffmpeg run is one connection. `prepare()` connects with backoff (0.2 s doubling to
    `max_backoff`; while the socket file is absent its return is watched every 50 ms) and reads
    up to the first complete keyframe. From then on a connection thread receives everything into
    memory as it arrives (noting when each access unit came, for lag and timeline mapping), and
    `feed()` passes it to ffmpeg. When the server hangs up, the thread connects again at once and
    buffers the next stream while the previous ffmpeg still drains its last frames: a recorder
    restart costs no keyframe (it used to reconnect only after the drain, ~0.5 s, and then wait
    for the next keyframe). A server restart is a new run whose stream time starts again at 0.

    `end_after`: seconds the socket file may be absent before the stream counts as ended for good
    (`finished`); None waits forever. `close()` ends the connection threads.
    """

    kind = "socket"
    live = True
    MAX_BUFFER = 32 << 20  # bytes received ahead of ffmpeg before the connection stops reading

    def __init__(self, path: str | os.PathLike[str], *, min_backoff: float = 0.2, max_backoff: float = 5.0,
                 end_after: float | None = None, recv_size: int = 1 << 16, framerate: float | None = None):
        self.path = Path(path)
        self.min_backoff = float(min_backoff)
        self.max_backoff = float(max_backoff)
        # the server is gone for good once its socket file has been absent this long (None: wait forever)
        self.end_after = end_after
        self.recv_size = int(recv_size)
        self.framerate = framerate  # only for streams without timing info in their SPS
        self.connections = 0
        self.bytes_received = 0
        self.finished = False
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._current: _Connection | None = None  # prepared by prepare(), fed by feed()
        self._next: _Connection | None = None  # connecting / buffering for the next prepare()
        self._on_state: StateCallback | None = None
        self._garbage_after = 3.0

    @property
    def name(self) -> str:
        return str(self.path)

    @property
    def has_feeder(self) -> bool:
        return True

    # what the owner reads about the current run's connection (prepared by the last prepare())

    @property
    def keyframe_at(self) -> tuple[float, float] | None:
        """(wall, monotonic) time the current run's first keyframe began to arrive: stream time 0 "now"."""
        conn = self._current
        return conn.keyframe_at if conn is not None else None

    @property
    def keyframe_unit(self) -> bytes | None:
        """The bytes of that first access unit (SPS ... IDR): lets an owner find it in the recording."""
        conn = self._current
        return conn.keyframe_unit if conn is not None else None

    @property
    def units_received(self) -> int:
        """Access units received on the current run's connection so far (0 = none; the keyframe is the first)."""
        conn = self._current
        return conn.units_received if conn is not None else 0

    def unit_arrival(self, number: int) -> float | None:
        """time.monotonic() when access unit `number` of this connection (0 = its keyframe) began to arrive."""
        conn = self._current
        return conn.unit_arrival(number) if conn is not None else None

    def input_args(self, start: float | None = None) -> list[str]:
        # a short analysis: the SPS timing (frame rate) is found within 0.2 s, the first frame comes
        # right after instead of ~1.5 s later with the defaults
        args = ["-f", "h264", "-analyzeduration", "200000", "-flags", "low_delay"]
        if self.framerate:
            args += ["-framerate", f"{self.framerate:g}"]
        return args + ["-i", "pipe:0"]

    def _emit(self, state: str, message: str | None) -> None:
        on_state = self._on_state
        if on_state is not None:
            on_state(state, message)

    def connect(self, stop: threading.Event, on_state: StateCallback | None = None) -> socket.socket | None:
        """Connect, retrying with exponential backoff until connected or `stop` is set.

        Returns None when stopped, or when the socket file has been absent for `end_after` s
        (then `finished` is True and on_state('ended', ...) says so).
        """
        delay = self.min_backoff
        attempt = 0
        last_seen = time.monotonic()
        while not stop.is_set():
            present = self.path.exists()
            if present:
                last_seen = time.monotonic()
            elif self.end_after is not None and time.monotonic() - last_seen >= self.end_after:
                log.info("%s has been gone for %.1f s; the stream has ended", self.path, self.end_after)
                self.finished = True
                if on_state:
                    on_state("ended", f"{self.path}: server gone (socket absent for {self.end_after:g} s)")
                return None
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                with unix_address(self.path) as addr:
                    sock.connect(addr)
                self.connections += 1
                if on_state:
                    on_state("connected", f"connected to {self.path}")
                log.info("connected to %s", self.path)
                return sock
            except OSError as exc:
                sock.close()
                attempt += 1
                msg = f"{self.path}: cannot connect ({exc.strerror or exc}); retrying in {delay:.1f} s"
                if attempt == 1 or attempt % 10 == 0:
                    log.info(msg)
                if on_state:
                    on_state("reconnecting" if self.connections else "connecting", msg)
                waited, wait = 0.0, delay
                if self.end_after is not None:
                    wait = max(0.05, min(wait, self.end_after - (time.monotonic() - last_seen)))
                # while the socket file is absent, watch for it to come back rather than sleep the backoff
                while waited < wait and not stop.is_set():
                    step = min(0.05, wait - waited)
                    if stop.wait(step):
                        break
                    waited += step
                    if not present and self.path.exists():
                        break
                delay = min(delay * 2, self.max_backoff)
        return None

    def prepare(self, stop: threading.Event, on_state: StateCallback | None = None, *,
                garbage_after: float = 3.0) -> VideoFormat | None:
        """Connect and read up to the first complete keyframe: it tells the picture size and opens the stream.

        Uses the connection already made in the background when the previous one hung up. Bytes
        before the first SPS are skipped (a client may join mid-stream; a broken server may send
        junk): after `garbage_after` seconds of them, on_state('garbage', ...) says so once, and
        reading goes on until valid H.264 arrives or the server hangs up (then None, as when
        `stop` is set or the server is gone for good).
        """
        self._on_state, self._garbage_after = on_state, garbage_after
        self._closed.clear()
        with self._lock:
            old, self._current = self._current, None
            if self._next is None:
                self._next = _Connection(self)
            conn = self._next  # stays there until it is ours: close() must find it
        if old is not None:
            old.close()
        if not conn.wait_keyframe(stop):
            with self._lock:
                if self._next is conn:
                    self._next = None
            conn.close()
            if conn.error is not None:
                raise conn.error
            return None
        try:
            fmt = probe_format(self.input_args(), name=str(self.path), data=conn.prefix)
        except BaseException:
            with self._lock:
                if self._next is conn:
                    self._next = None
            conn.close()
            raise
        with self._lock:
            if self._next is conn:
                self._next = None
            self._current = conn
            if conn.hung_up:  # the whole stream came before we got here: reconnect now
                self._start_next()
        return fmt

    def _connection_ended(self, conn: "_Connection") -> None:
        """A streaming connection hung up: connect again now, while the run it fed drains."""
        with self._lock:
            if self._current is conn:  # else prepare() does it once the connection is ours
                self._start_next()

    def _start_next(self) -> None:
        if not self._closed.is_set() and self._next is None and not self.finished:
            self._next = _Connection(self)

    def close(self) -> None:
        """End the connection threads (the current run's and one made for the next run)."""
        self._closed.set()
        with self._lock:
            conns = [c for c in (self._current, self._next) if c is not None]
            self._current = self._next = None
        for conn in conns:
            conn.close()

    def feed(self, sink: IO[bytes], stop: threading.Event, on_state: StateCallback | None = None) -> None:
        """Pump the prepared connection (keyframe first) into ffmpeg; without prepare(), connect and copy raw."""
        if on_state is not None:
            self._on_state = on_state
        conn = self._current
        try:
            if conn is not None:
                self._feed_connection(conn, sink, stop)
            else:
                self._feed_raw(sink, stop, on_state)
        except (BrokenPipeError, ValueError):  # ValueError: stdin closed by stop()
            log.debug("ffmpeg stdin closed; socket feeder ends")
        finally:
            try:
                sink.close()
            except OSError:
                pass

    def _feed_connection(self, conn: "_Connection", sink: IO[bytes], stop: threading.Event) -> None:
        while not stop.is_set():
            data = conn.take(stop)
            if data is None:
                if conn.hung_up:
                    self._emit("ended", f"{self.path}: server closed the connection")
                return
            sink.write(data)
            sink.flush()

    def _feed_raw(self, sink: IO[bytes], stop: threading.Event, on_state: StateCallback | None) -> None:
        sock = self.connect(stop, on_state)
        if sock is None:
            return
        try:
            sock.settimeout(0.25)  # wake up to notice `stop`
            while not stop.is_set():
                try:
                    data = sock.recv(self.recv_size)
                except socket.timeout:
                    continue
                except OSError as exc:
                    log.info("%s: connection lost: %s", self.path, exc)
                    break
                if not data:
                    log.info("%s: server closed the connection", self.path)
                    if on_state:
                        on_state("ended", f"{self.path}: server closed the connection")
                    break
                self.bytes_received += len(data)
                sink.write(data)
                sink.flush()
        finally:
            sock.close()


class _Connection:
    """One connection to a SocketSource's server, read by its own thread from connect to hang-up.

    The thread connects (with the source's backoff), skips to the first complete keyframe, then
    keeps receiving into memory (up to SocketSource.MAX_BUFFER ahead of the feeder), so reading
    never waits for ffmpeg; the feeder takes the bytes with take().
    """

    def __init__(self, source: SocketSource):
        self.source = source
        self.closed = threading.Event()
        self.cond = threading.Condition()
        self.chunks: collections.deque[bytes] = collections.deque()
        self.buffered = 0
        self.streaming = False  # the first keyframe is in
        self.done = False  # the thread has ended (hang-up, error, server gone, close)
        self.hung_up = False  # ... because the server closed a streaming connection
        self.error: MediaError | None = None
        self.prefix: bytes | None = None  # SPS ... first complete picture (+ what came with it)
        self.keyframe_at: tuple[float, float] | None = None
        self.keyframe_unit: bytes | None = None
        # access units of this connection (0 = the keyframe) and when each began to arrive
        self.arrivals: collections.deque[float] = collections.deque(maxlen=4096)
        self.arrivals_base = 0  # access-unit number of arrivals[0]
        self.units_received = 0
        self._scanner = AnnexBScanner()
        self._prev: int | None = None
        self.sock: socket.socket | None = None
        self.thread = threading.Thread(target=self._run, name="scene-socket", daemon=True)
        self.thread.start()

    # ------------------------------------------------------------ the owner's side

    def wait_keyframe(self, stop: threading.Event) -> bool:
        """Block until the first keyframe is in (True), or the connection ended / `stop` was set (False)."""
        with self.cond:
            while not self.streaming and not self.done and not stop.is_set():
                self.cond.wait(0.1)
            return self.streaming and not stop.is_set()

    def take(self, stop: threading.Event) -> bytes | None:
        """The next received bytes; None once the connection is over and drained, or `stop` is set."""
        with self.cond:
            while not self.chunks and not self.done and not stop.is_set() and not self.closed.is_set():
                self.cond.wait(0.1)
            if stop.is_set() or self.closed.is_set() or not self.chunks:
                return None
            data = self.chunks.popleft()
            self.buffered -= len(data)
            self.cond.notify_all()  # room again for the receiving thread
            return data

    def unit_arrival(self, number: int) -> float | None:
        k = number - self.arrivals_base
        try:
            return self.arrivals[k] if k >= 0 else None
        except IndexError:
            return None

    def close(self) -> None:
        self.closed.set()
        with self.cond:
            self.cond.notify_all()
        sock = self.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # wakes a recv() at once
            except OSError:
                pass
        if self.thread is not threading.current_thread():
            self.thread.join(timeout=2.0)

    # ------------------------------------------------------------ the thread

    def _run(self) -> None:
        src = self.source
        sock: socket.socket | None = None
        try:
            sock = src.connect(self.closed, src._emit)
            if sock is None:
                return
            self.sock = sock
            if self.closed.is_set():  # close() came while connecting
                return
            if not self._read_keyframe(sock):
                return
            self._receive(sock)
        except MediaError as exc:
            self.error = exc
        except Exception as exc:  # never die silently
            log.exception("%s: socket connection thread failed", src.path)
            self.error = MediaError(src.path, f"connection failed: {type(exc).__name__}: {exc}")
        finally:
            if sock is not None:
                sock.close()
            with self.cond:
                self.done = True
                self.cond.notify_all()
            if self.hung_up and not self.closed.is_set():
                src._connection_ended(self)

    def _add(self, data: bytes, now: float) -> None:
        """Queue received stream bytes for the feeder and note the arrival of each access unit in them."""
        for nal in self._scanner.feed(data):
            if starts_access_unit(nal, self._prev):
                if len(self.arrivals) == self.arrivals.maxlen:
                    self.arrivals_base += 1
                self.arrivals.append(now)
                self.units_received += 1
            self._prev = nal.type
        with self.cond:
            self.chunks.append(data)
            self.buffered += len(data)
            self.cond.notify_all()

    def _receive(self, sock: socket.socket) -> None:
        src = self.source
        while not self.closed.is_set():
            with self.cond:
                while self.buffered >= src.MAX_BUFFER and not self.closed.is_set():
                    self.cond.wait(0.25)  # ffmpeg is far behind: let the server see a slow client
            try:
                data = sock.recv(src.recv_size)
            except socket.timeout:
                continue
            except OSError as exc:
                if not self.closed.is_set():
                    log.info("%s: connection lost: %s", src.path, exc)
                    self.hung_up = True
                return
            if not data:
                if not self.closed.is_set():  # not our own shutdown()
                    log.info("%s: server closed the connection", src.path)
                    self.hung_up = True
                return
            src.bytes_received += len(data)
            self._add(data, time.monotonic())

    def _read_keyframe(self, sock: socket.socket) -> bool:
        """Read up to the first complete keyframe and queue the stream from its SPS on; False if there was none."""
        src = self.source
        scanner = AnnexBScanner()
        buf = bytearray()  # stream bytes from `base` on
        base = 0
        sps: int | None = None  # where the keyframe's parameter sets start
        idr_seen = False
        skipped = 0
        t0 = time.monotonic()
        reported = False
        keyframe_at: tuple[float, float] | None = None
        sock.settimeout(0.25)
        while not self.closed.is_set():
            try:
                data = sock.recv(src.recv_size)
            except socket.timeout:
                data = None
            except OSError as exc:
                log.info("%s: connection lost: %s", src.path, exc)
                return False
            if data == b"":
                if not self.closed.is_set():
                    log.info("%s: server closed the connection before a keyframe", src.path)
                    src._emit("ended", f"{src.path}: server closed the connection before a keyframe")
                return False
            if data:
                src.bytes_received += len(data)
                buf += data
                for nal in scanner.feed(data):
                    if sps is None and nal.type == 7:
                        sps = nal.pos
                        keyframe_at = (time.time(), time.monotonic())
                    elif sps is not None and nal.type == 5:
                        idr_seen = True
                    elif idr_seen and starts_access_unit(nal, 5):
                        assert keyframe_at is not None
                        self.keyframe_unit = bytes(buf[sps - base:nal.pos - base])
                        self.keyframe_at = keyframe_at
                        self.prefix = bytes(buf[sps - base:])  # SPS ... first picture complete
                        self._add(self.prefix, keyframe_at[1])
                        with self.cond:
                            self.streaming = True
                            self.cond.notify_all()
                        return True
                if sps is None and len(buf) > 8:  # keep only what may hold a start code
                    skipped += len(buf) - 8
                    base += len(buf) - 8
                    del buf[:-8]
                elif sps is not None and len(buf) - (sps - base) > (32 << 20):
                    raise MediaError(src.path, "no complete H.264 keyframe in the first 32 MiB")
            if (not reported and sps is None and skipped >= 64 * 1024
                    and time.monotonic() - t0 >= src._garbage_after):
                reported = True
                msg = (f"{src.path}: received {skipped / 1024:.0f} KiB in {time.monotonic() - t0:.0f} s "
                       "but no H.264 (no SPS/keyframe): not H.264 Annex-B?")
                log.warning(msg)
                src._emit("garbage", msg)
        return False


class UrlSource(Source):
    """Anything ffmpeg opens by itself: rtsp/srt/udp/http URLs, `file:` paths, lavfi and grab devices.

    `lavfi:GRAPH` and `x11grab:DISPLAY` (and other `device:` prefixes) become `-f device -i ...`.
    """

    kind = "url"

    def __init__(self, url: str, *, realtime: bool = False, live: bool | None = None,
                 extra_input_args: list[str] | None = None):
        self.url = str(url)
        self.realtime = bool(realtime)
        self.extra_input_args = list(extra_input_args or [])
        scheme = self.url.split(":", 1)[0].lower()
        self.device = scheme if f"{scheme}:" in _DEVICE_PREFIXES else None
        if live is None:
            live = scheme in ("rtsp", "rtsps", "rtmp", "srt", "udp", "rtp", "tcp") or (
                self.device is not None and self.device != "lavfi")
        self.live = bool(live)

    @property
    def name(self) -> str:
        return self.url

    def prepare(self, stop: threading.Event, on_state: StateCallback | None = None) -> VideoFormat | None:
        args = [a for a in self.input_args() if a != "-re"]
        return probe_format(args, name=self.url, timeout=30.0)

    def input_args(self, start: float | None = None) -> list[str]:
        args = list(self.extra_input_args)
        if self.realtime and not self.live:
            args += ["-re"]
        if self.device is not None:
            return args + ["-f", self.device, "-i", self.url.split(":", 1)[1]]
        return args + ["-i", self.url]


def is_url(spec: str) -> bool:
    """True for specs ffmpeg opens by itself (URL schemes, protocol and device prefixes)."""
    return bool(_URL_RE.match(spec)) or spec.startswith(_DEVICE_PREFIXES) or spec.startswith(_PROTOCOL_PREFIXES)


def open_source(spec: Any, *, realtime: bool = False, end_after: float | None = None) -> Source:
    """Map a user's source spec onto a Source.

    - a Source: returned as is
    - `follow:PATH`: FollowSource; `unix:PATH`: SocketSource
    - a URL (`rtsp://`, `srt://`, `udp://`, `http://`, `file:`...) or `lavfi:`/`x11grab:` spec: UrlSource
    - an existing Unix socket: SocketSource
    - a cht session directory: its `scene.sock` if present, else follow its newest recording
      (either counts as finished once the server is gone: see SESSION_END_AFTER / SESSION_IDLE_TIMEOUT)
    - an existing regular file: FileSource (max speed, or real-time pace with realtime=True)
    - anything else: MediaError(path, "no such file")

    `end_after`: for a cht session's socket, the seconds it may be gone before the session counts
    as over (None: SESSION_END_AFTER, 5 s, longer than a recorder restart; math.inf: wait forever).
    Each finished session pays it once after its server has gone.
    """
    if isinstance(spec, Source):
        return spec
    if not isinstance(spec, (str, os.PathLike)):
        raise TypeError(f"unsupported source {spec!r}: give a path, a URL, or a Source")
    text = os.fspath(spec)
    if isinstance(text, bytes):
        text = os.fsdecode(text)
    if isinstance(spec, str):
        if text.startswith("follow:"):
            return FollowSource(text[len("follow:"):], realtime=realtime)
        if text.startswith("unix:"):
            return SocketSource(text[len("unix:"):])
        if is_url(text):
            return UrlSource(text, realtime=realtime)
    path = Path(text).expanduser()
    try:
        st = path.stat()
    except FileNotFoundError:
        raise MediaError(path, "no such file") from None
    except OSError as exc:
        raise MediaError(path, f"cannot access ({exc.strerror or exc})") from None
    if stat.S_ISSOCK(st.st_mode):
        return SocketSource(path)
    if stat.S_ISDIR(st.st_mode):
        sock = path / layout.SOCKET_NAME
        if sock.exists() and stat.S_ISSOCK(sock.stat().st_mode):
            return SocketSource(sock, end_after=SESSION_END_AFTER if end_after is None else float(end_after))
        if layout.is_session_dir(path):
            return FollowSource(path, realtime=realtime, idle_timeout=SESSION_IDLE_TIMEOUT)
        raise MediaError(path, "a directory that is not a cht session (no scene.sock, no stream/)")
    if stat.S_ISREG(st.st_mode):
        return FileSource(path, realtime=realtime)
    if stat.S_ISFIFO(st.st_mode):
        return UrlSource(f"file:{path}", live=True)
    raise MediaError(path, "not a regular file, socket or session directory")


__all__ = ["Source", "FileSource", "FollowSource", "SocketSource", "UrlSource", "VideoFormat", "open_source",
           "is_url", "probe_format", "probe_file_format", "AnnexBScanner", "NalUnit", "starts_access_unit",
           "unix_address", "FileReplacedError"]
