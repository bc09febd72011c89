"""Sources: how each kind of spec becomes ffmpeg input, and the feeders for growing files and sockets."""

from __future__ import annotations

import io
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from cht_lab.ffmpeg import FfmpegProcess, MediaError, find_ffmpeg, live_processes
from cht_lab.sources import (SESSION_END_AFTER, FileSource, FollowSource, SocketSource, UrlSource, open_source,
                             unix_address)
from conftest import make_clip


class _Sink(io.RawIOBase):
    """Collects what a feeder writes into 'ffmpeg stdin'; records that the feeder closed it."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.closed_by_feeder = threading.Event()

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:
        self.data += bytes(b)
        return len(b)

    def close(self) -> None:
        self.closed_by_feeder.set()
        super().close()


def _listen(path: Path) -> socket.socket:
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with unix_address(path) as addr:
        srv.bind(addr)
    srv.listen(1)
    return srv


def test_specs_map_onto_sources(tmp_path):
    clip = make_clip(tmp_path / "rec.mp4", seconds=0.5, audio=False)
    src = open_source(clip)
    assert isinstance(src, FileSource) and src.seekable and not src.live and not src.has_feeder
    assert src.input_args() == ["-i", str(clip)]
    assert open_source(str(clip), realtime=True).input_args(start=1.5) == [
        "-readrate", "1", "-copyts", "-start_at_zero", "-ss", "1.500000", "-i", str(clip)]

    assert isinstance(open_source(f"follow:{clip}"), FollowSource)
    follow = open_source(f"follow:{clip}")
    assert follow.live and follow.has_feeder and follow.input_args() == ["-i", "pipe:0"]

    sock_path = tmp_path / "s.sock"
    srv = _listen(sock_path)
    try:
        s = open_source(sock_path)
        assert isinstance(s, SocketSource) and s.live and not s.seekable
        assert s.input_args()[:2] == ["-f", "h264"] and s.input_args()[-2:] == ["-i", "pipe:0"]
        assert isinstance(open_source(f"unix:{sock_path}"), SocketSource)
        # a cht session directory: its socket when present ...
        session = tmp_path / "20240101_120000"
        (session / "stream").mkdir(parents=True)
        (session / "stream" / "20240101_120000.mp4").write_bytes(clip.read_bytes())
        assert isinstance(open_source(session), FollowSource)  # ... else its newest recording
        srv2 = _listen(session / "scene.sock")
        try:
            chosen = open_source(session)
            assert isinstance(chosen, SocketSource) and chosen.path == session / "scene.sock"
            assert chosen.end_after == SESSION_END_AFTER == 5.0  # a session ends once its server is gone
            assert open_source(session, end_after=0.5).end_after == 0.5  # a caller that knows sooner
        finally:
            srv2.close()
    finally:
        srv.close()

    for url in ("rtsp://127.0.0.1:8554/live", "srt://127.0.0.1:9000", "udp://127.0.0.1:1234", "http://x/y.mp4"):
        u = open_source(url)
        assert isinstance(u, UrlSource) and u.input_args()[-2:] == ["-i", url]
    assert open_source("rtsp://h/x").live and not open_source("http://h/x.mp4").live
    assert open_source("lavfi:testsrc2=d=1").input_args() == ["-f", "lavfi", "-i", "testsrc2=d=1"]
    grab = open_source("x11grab::0.0+0,0")
    assert grab.live and grab.input_args() == ["-f", "x11grab", "-i", ":0.0+0,0"]


def test_bad_specs_fail_immediately_naming_the_path(tmp_path):
    t0 = time.monotonic()
    with pytest.raises(MediaError, match=r"nothere\.mp4: no such file"):
        open_source(tmp_path / "nothere.mp4")
    with pytest.raises(MediaError, match="no such file"):
        open_source(str(tmp_path / "nothere.mp4"))
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(MediaError, match="empty.mp4: empty"):
        open_source(empty)
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(MediaError, match="not a cht session"):
        open_source(plain)
    with pytest.raises(TypeError):
        open_source(42)
    assert time.monotonic() - t0 < 5.0


def test_socket_feeder_waits_for_the_server_and_copies_the_stream(tmp_path):
    path = tmp_path / "scene.sock"
    src = SocketSource(path, min_backoff=0.05, max_backoff=0.2)
    sink, stop, states = _Sink(), threading.Event(), []
    feeder = threading.Thread(target=src.feed, args=(sink, stop, lambda s, m: states.append(s)))
    feeder.start()
    try:
        deadline = time.monotonic() + 10
        while "connecting" not in states and time.monotonic() < deadline:
            time.sleep(0.01)
        assert "connecting" in states, "the feeder retries while the server is not there"
        srv = _listen(path)  # the server appears later
        conn, _ = srv.accept()
        payload = bytes(range(256)) * 400
        conn.sendall(payload)
        conn.close()  # server goes away: the feeder ends and closes ffmpeg's stdin (this run ends)
        assert sink.closed_by_feeder.wait(10)
        feeder.join(10)
        srv.close()
    finally:
        stop.set()
        feeder.join(5)
    assert bytes(sink.data) == payload
    assert states[-2:] == ["connected", "ended"] and src.connections == 1


def test_socket_source_ends_when_the_server_is_gone_for_good(tmp_path):
    path = tmp_path / "scene.sock"
    srv = _listen(path)
    srv.close()
    path.unlink()
    src = SocketSource(path, min_backoff=0.05, end_after=0.3)
    t0 = time.monotonic()
    src.feed(_Sink(), threading.Event())
    assert src.finished and time.monotonic() - t0 < 5


def test_follow_feeder_tails_a_file_ffmpeg_is_still_writing(tmp_path):
    target = tmp_path / "growing.mp4"
    writer = FfmpegProcess(["-hide_banner", "-v", "error", "-nostdin", "-re", "-f", "lavfi", "-i",
                            "testsrc2=s=160x120:r=20:d=1.5", "-c:v", "libx264", "-preset", "ultrafast",
                            "-movflags", "+frag_keyframe+empty_moov+default_base_moof", "-frag_duration", "200000",
                            "-flush_packets", "1", str(target)], stdout=None, name="writer")
    src = FollowSource(target, idle_timeout=0.6)
    sink, stop = _Sink(), threading.Event()
    grew_while_writing = []
    feeder = threading.Thread(target=src.feed, args=(sink, stop))
    feeder.start()
    try:
        deadline = time.monotonic() + 10
        while writer.running() and time.monotonic() < deadline:
            if sink.data:
                grew_while_writing.append(len(sink.data))
            time.sleep(0.05)
        writer.wait(10)
        assert sink.closed_by_feeder.wait(10), "the feeder ends once the file stops growing"
    finally:
        stop.set()
        feeder.join(5)
        writer.stop()
    assert grew_while_writing, "bytes were fed before the writer finished"
    assert bytes(sink.data) == target.read_bytes() and src.finished
    # what was fed is a readable recording
    res = subprocess.run([find_ffmpeg(), "-v", "error", "-i", "pipe:0", "-f", "null", "-"], input=bytes(sink.data),
                         capture_output=True, timeout=30)
    assert res.returncode == 0, res.stderr
    assert live_processes() == []


def test_follow_session_switches_to_a_newer_recording(tmp_path):
    session = tmp_path / "20240101_120000"
    (session / "stream").mkdir(parents=True)
    first = make_clip(session / "stream" / "20240101_120000.mp4", seconds=0.3, audio=False)
    src = FollowSource(session, switch_after=0.2, idle_timeout=30)
    sink, stop = _Sink(), threading.Event()
    fmt = src.prepare(stop)
    assert (fmt.width, fmt.height) == (320, 240) and src.current == first
    feeder = threading.Thread(target=src.feed, args=(sink, stop))
    feeder.start()
    try:
        deadline = time.monotonic() + 10
        while len(sink.data) < first.stat().st_size and time.monotonic() < deadline:
            time.sleep(0.02)
        make_clip(session / "stream" / "20240101_120005.mp4", seconds=0.3, audio=False)  # recorder restart
        assert sink.closed_by_feeder.wait(10), "a newer recording ends the run"
    finally:
        stop.set()
        feeder.join(5)
    assert bytes(sink.data) == first.read_bytes() and not src.finished
    second = _Sink()
    stop2 = threading.Event()
    assert src.prepare(stop2) is not None  # each run follows the newest recording
    t = threading.Thread(target=src.feed, args=(second, stop2))
    t.start()
    try:
        deadline = time.monotonic() + 10
        while len(second.data) == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        stop2.set()
        t.join(5)
    assert src.current.name == "20240101_120005.mp4" and len(second.data) > 0


def test_prepare_tells_the_picture_size_or_a_clear_error(tmp_path):
    clip = make_clip(tmp_path / "rec.mp4", seconds=0.5, size="352x288", audio=False)
    stop = threading.Event()
    assert (open_source(clip).prepare(stop).width, open_source(clip).prepare(stop).height) == (352, 288)
    assert open_source("lavfi:testsrc2=s=200x100:d=1").prepare(stop).width == 200
    audio = tmp_path / "talk.m4a"
    subprocess.run([find_ffmpeg(), "-v", "error", "-f", "lavfi", "-i", "sine=d=0.5", "-c:a", "aac", str(audio)],
                   check=True, timeout=30)
    with pytest.raises(MediaError, match=r"talk\.m4a: no video stream \(audio only\)"):
        open_source(audio).prepare(stop)
    cut = tmp_path / "cut.mp4"
    make_clip(tmp_path / "plain.mp4", seconds=1.0, audio=False, fragmented=False)
    cut.write_bytes((tmp_path / "plain.mp4").read_bytes()[:2000])
    with pytest.raises(MediaError, match=r"cut\.mp4: truncated or unfinished MP4"):
        open_source(cut).prepare(stop)


def test_socket_prepare_skips_junk_and_starts_at_a_keyframe(tmp_path):
    clip = make_clip(tmp_path / "rec.mp4", seconds=1.0, size="320x180", audio=False)
    annexb = subprocess.run([find_ffmpeg(), "-v", "error", "-i", str(clip), "-c:v", "copy", "-bsf:v",
                             "h264_mp4toannexb", "-f", "h264", "pipe:1"], capture_output=True, check=True).stdout
    path = tmp_path / "scene.sock"
    srv = _listen(path)
    junk = bytes(range(1, 256)) * 800  # ~200 KB without a single start code

    def serve():
        conn, _ = srv.accept()
        with conn:
            conn.sendall(junk)
            conn.sendall(annexb)

    t = threading.Thread(target=serve)
    t.start()
    states = []
    src = SocketSource(path, garbage_after=0.0)
    fmt = src.prepare(threading.Event(), lambda s, m: states.append((s, m)))
    t.join(10)
    srv.close()
    assert (fmt.width, fmt.height) == (320, 180)
    assert any(s == "garbage" and "not H.264" in m for s, m in states), states
    sink = _Sink()
    src.feed(sink, threading.Event())  # the prepared connection: keyframe first, then the rest
    src.close()  # the server hung up: the source is already connecting again (for the next run)
    fed = bytes(sink.data)
    assert annexb.endswith(fed) and fed.lstrip(b"\x00")[1] & 0x1F == 7  # from the first SPS to the end
    res = subprocess.run([find_ffmpeg(), "-v", "error", "-xerror", "-f", "h264", "-i", "pipe:0", "-f", "null", "-"],
                         input=bytes(sink.data), capture_output=True, timeout=30)
    assert res.returncode == 0, res.stderr


def _annexb(clip: Path) -> bytes:
    """The clip as an Annex-B stream that starts at its SPS (as a source hands it on: x264 puts an SEI first)."""
    out = subprocess.run([find_ffmpeg(), "-v", "error", "-i", str(clip), "-c:v", "copy", "-bsf:v", "h264_mp4toannexb",
                          "-f", "h264", "pipe:1"], capture_output=True, check=True, timeout=30).stdout
    return out[out.index(b"\x00\x00\x00\x01\x67"):]


def test_socket_reconnects_when_the_server_hangs_up_and_buffers_the_next_stream(tmp_path):
    """A recorder restart: the server hangs up and at once starts a new stream, beginning with its
    only SPS + keyframe. The source must connect again by itself and keep that stream while the
    previous run is still draining (here: before anyone calls prepare() again); it used to connect
    only in the next prepare() and so joined the new stream late, at its next keyframe."""
    first = _annexb(make_clip(tmp_path / "a.mp4", seconds=1.0, size="320x180", audio=False))
    second = _annexb(make_clip(tmp_path / "b.mp4", seconds=1.0, size="352x288", audio=False))
    path = tmp_path / "scene.sock"
    srv = _listen(path)
    srv.settimeout(10)
    second_sent = threading.Event()

    def serve():
        try:
            conn, _ = srv.accept()
            with conn:
                conn.sendall(first)
            conn, _ = srv.accept()  # the client's own reconnect
            with conn:
                conn.sendall(second)
                second_sent.set()
                stop_server.wait(10)
        except OSError:
            pass

    stop_server = threading.Event()
    server = threading.Thread(target=serve)
    server.start()
    src = SocketSource(path, min_backoff=0.05)
    try:
        fmt = src.prepare(threading.Event())
        assert (fmt.width, fmt.height) == (320, 180)
        sink = _Sink()
        src.feed(sink, threading.Event())  # the first stream, until the server hangs up
        assert bytes(sink.data) == first
        assert second_sent.wait(10), "no reconnect until the next prepare(): the new stream's start is lost"
        fmt = src.prepare(threading.Event())
        assert (fmt.width, fmt.height) == (352, 288) and src.connections == 2
        sink2, stop2 = _Sink(), threading.Event()
        feeder = threading.Thread(target=src.feed, args=(sink2, stop2))
        feeder.start()
        deadline = time.monotonic() + 10
        while len(sink2.data) < len(second) and time.monotonic() < deadline:
            time.sleep(0.02)
        stop2.set()
        feeder.join(5)
        assert bytes(sink2.data) == second, "the whole new stream, from its first keyframe"
        assert src.stream.units_received >= 30 and src.stream.unit_arrival(0) == src.stream.keyframe_at[1]
    finally:
        stop_server.set()
        src.close()
        server.join(10)
        srv.close()
    assert not [t.name for t in threading.enumerate() if t.name == "scene-socket"], "close() ends the threads"
