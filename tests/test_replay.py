"""Replay: a recording served as a live cht session (growing fMP4 + scene.sock) with real ffmpeg and sockets."""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from cht_lab import layout
from cht_lab.ffmpeg import MediaError, find_ffmpeg, live_processes, probe
from cht_lab.tools.replay_server import AnnexBScanner, replay
from cht_lab.tools.stream_server import StreamServer
from conftest import make_clip, wait_for


def _read_all(path: Path, *, timeout: float = 20.0) -> bytes:
    """Connect to a Unix socket and read until the server closes it."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    sock.connect(str(path))
    chunks = []
    try:
        while True:
            data = sock.recv(1 << 16)
            if not data:
                break
            chunks.append(data)
    finally:
        sock.close()
    return b"".join(chunks)


def _decode_frames(h264: bytes) -> int:
    """Decode an Annex-B stream from scratch; returns the number of frames (raises on errors)."""
    res = subprocess.run([find_ffmpeg(), "-hide_banner", "-v", "error", "-xerror", "-f", "h264", "-i", "pipe:0",
                          "-f", "null", "-"], input=h264, capture_output=True, timeout=30, check=False)
    assert res.returncode == 0, res.stderr.decode()
    res = subprocess.run([find_ffmpeg(), "-hide_banner", "-f", "h264", "-i", "pipe:0", "-map", "0:v", "-c", "copy",
                          "-f", "framecrc", "-"], input=h264, capture_output=True, timeout=30, check=True)
    return sum(1 for line in res.stdout.decode().splitlines() if line and not line.startswith("#"))


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("replay_src")
    return make_clip(d / "clip.mp4", seconds=3.0, size="320x240", fps=30)


def test_replay_serves_a_live_session(clip, tmp_path):
    before = {t.name for t in threading.enumerate()}
    t0 = time.monotonic()
    with replay(clip, out_dir=tmp_path, speed=3.0) as server:
        session = server.session_dir
        assert session.parent == tmp_path and layout.parse_start_time(session.name) is not None
        sock = server.socket_path
        assert sock == session / "scene.sock"
        st = os.stat(sock)
        assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600
        data = _read_all(sock)  # one client, from connect to the end of the stream
        assert server.wait(10)
    elapsed = time.monotonic() - t0
    assert elapsed >= 3.0 / 3.0 * 0.7, "replay must be paced (3 s at 3x takes about 1 s)"
    # the client joined at a keyframe with parameter sets: the stream decodes cleanly on its own
    types = [n.type for n in AnnexBScanner().feed(data[:4096])]
    first_slice = next(i for i, t in enumerate(types) if 1 <= t <= 5)
    assert types[first_slice] == 5 and 7 in types[:first_slice] and 8 in types[:first_slice], types[:6]
    frames = _decode_frames(data)
    assert 30 <= frames <= 90
    # the growing fMP4 is complete: same frame count as the source, with audio
    (rec,) = layout.recordings(session)
    assert layout.parse_start_time(rec.stem) is not None
    info = probe(rec)
    assert info.video.frames == probe(clip).video.frames and info.has_audio
    assert not sock.exists(), "the socket goes away when the server ends"
    assert server.status["state"] == "finished" and not server.errors
    assert live_processes() == []
    leftover = {t.name for t in threading.enumerate()} - before
    assert not any(n.startswith("replay") for n in leftover), leftover


def test_a_replay_waiting_for_its_client_serves_it_every_frame(clip, tmp_path):
    """wait_for_client: a client that connects late (after something slow) still gets the first keyframe."""
    with replay(clip, out_dir=tmp_path, speed=3.0, wait_for_client=20) as server:
        time.sleep(0.5)  # the slow thing between starting the replay and connecting to it
        assert server.segments == [] and not layout.recordings(server.session_dir), "streaming before a client"
        assert server.status["elapsed"] == 0.0, "the clock starts with the stream"
        data = _read_all(server.socket_path)
        assert server.wait(10)
    frames = probe(clip).video.frames
    assert _decode_frames(data) == frames
    (rec,) = layout.recordings(server.session_dir)
    assert probe(rec).video.frames == frames
    assert server.status["state"] == "finished" and not server.errors


def test_a_replay_streams_anyway_when_no_client_comes_and_stops_while_waiting(clip, tmp_path):
    with replay(clip, out_dir=tmp_path / "a", speed=3.0, wait_for_client=0.2) as server:
        assert server.wait(20), "no client within wait_for_client: the replay streams on its own"
    assert len(layout.recordings(server.session_dir)) == 1 and not server.errors
    t0 = time.monotonic()
    with replay(clip, out_dir=tmp_path / "b", speed=3.0, wait_for_client=60) as server:
        pass
    assert time.monotonic() - t0 < 10 and server.done.is_set(), "stop() ends the wait"
    assert server.status["state"] == "stopped" and not layout.recordings(server.session_dir)
    assert live_processes() == []


def test_recording_grows_while_replaying(clip, tmp_path):
    with replay(clip, out_dir=tmp_path, speed=1.0) as server:
        rec = wait_for(lambda: layout.recordings(server.session_dir), what="stream file")[0]
        def readable() -> float:  # the recorder creates the file before its first fragment is in
            try:
                d = probe(rec).duration
            except MediaError:
                return 0.0
            return d if d > 0.3 else 0.0

        partial = wait_for(readable, what="first fragments")
        assert partial < 2.5, "a fragment must be readable long before the recording ends"
        server.stop()
        server.stop()  # twice is fine
    assert live_processes() == []


def test_multi_segment_session_with_separate_audio(tmp_path):
    ff = find_ffmpeg()
    src = tmp_path / "20240101_120000"
    (src / "stream").mkdir(parents=True)
    make_clip(src / "stream" / "20240101_120000.mp4", seconds=1.5, size="160x120", fps=20, audio=False)
    make_clip(src / "stream" / "20240101_120002.mp4", seconds=1.5, size="160x120", fps=20, audio=False)
    subprocess.run([ff, "-v", "error", "-y", "-f", "lavfi", "-i", "sine=d=3.5", "-c:a", "aac", "-f", "adts",
                    str(src / "stream" / "audio.aac")], check=True, timeout=30)
    (src / "labels.csv").write_text("time,end,kind,note\n2.5,,cut,second segment\n")
    seen_segments = []
    with replay(src, out_dir=tmp_path / "out", speed=4.0,
                on_segment=lambda n, p: seen_segments.append(p.name)) as server:
        # one client connection per recorder run: EOF at the restart, then a fresh stream on reconnect
        first = _read_all(server.socket_path)
        second = b""
        deadline = time.monotonic() + 10
        while not second and time.monotonic() < deadline:
            try:
                second = _read_all(server.socket_path)
            except (FileNotFoundError, ConnectionRefusedError):
                if server.done.is_set():
                    break
                time.sleep(0.05)
        assert server.wait(10)
    assert _decode_frames(first) > 0 and _decode_frames(second) > 0
    recs = layout.recordings(server.session_dir)
    assert [r.name for r in recs] == seen_segments and len(recs) == 2
    assert recs[0].name < recs[1].name
    segs = layout.discover_segments(server.session_dir)
    assert [s.offset for s in segs] == [0.0, 2.0], "the replayed session keeps the source's timeline"
    assert (server.session_dir / "labels.csv").read_text() == (src / "labels.csv").read_text()
    assert probe(server.session_dir / "stream" / "audio.aac").has_audio
    assert all(not probe(r).has_audio for r in recs), "video-only segments when audio.aac is separate"


def test_loop_keeps_streaming_until_stopped(tmp_path):
    clip = make_clip(tmp_path / "short.mp4", seconds=0.5, size="160x120", fps=20, audio=False)
    with replay(clip, out_dir=tmp_path / "out", speed=4.0, loop=True) as server:
        wait_for(lambda: server.server.access_units > 30, what="more access units than one pass has")
        assert not server.done.is_set()
    assert live_processes() == []


def test_bad_inputs(tmp_path):
    with pytest.raises(MediaError, match="no such file"):
        replay(tmp_path / "missing.mp4", out_dir=tmp_path)
    ff = find_ffmpeg()
    audio_only = tmp_path / "speech.m4a"
    subprocess.run([ff, "-v", "error", "-y", "-f", "lavfi", "-i", "sine=d=1", "-c:a", "aac", str(audio_only)],
                   check=True, timeout=30)
    with pytest.raises(MediaError, match="speech.m4a.*no video"):
        replay(audio_only, out_dir=tmp_path / "out").start()
    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n")
    with pytest.raises(MediaError, match="notes.mp4"):
        replay(text, out_dir=tmp_path / "out").start()
    assert live_processes() == []


def test_scanner_finds_nal_units_across_chunk_boundaries():
    stream = (b"\x00\x00\x00\x01\x67\x64\x00" + b"\x00\x00\x00\x01\x68\xee" + b"\x00\x00\x01\x65\x88\x84"
              + b"\x00\x00\x01\x41\x9a\x00")
    whole = [(n.pos, n.type) for n in AnnexBScanner().feed(stream)]
    for cut in range(1, len(stream)):
        sc = AnnexBScanner()
        parts = sc.feed(stream[:cut]) + sc.feed(stream[cut:]) + sc.feed(b"\x00" * 6)
        assert [(n.pos, n.type) for n in parts] == whole, cut
    assert [t for _, t in whole] == [7, 8, 5, 1]


def test_stream_server_socket_is_private_and_removed(tmp_path):
    path = tmp_path / ("d" * 90) / "scene.sock"  # longer than sun_path allows: still works
    server = StreamServer(path).start()
    try:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert len(str(path)) > 108
    finally:
        server.stop()
    assert not path.exists()
    shutil.rmtree(tmp_path / ("d" * 90))


def test_replay_of_the_bundled_recorder_restart_sample(tmp_path):
    """`twoseg`: two video-only segments with a gap and a standalone audio.aac, replayed as cht would record it."""
    from cht_lab.tools.samples import sample_dir

    src = sample_dir("twoseg", generate_missing=False)
    if not layout.recordings(src):
        pytest.skip("bundled sample 'twoseg' not generated")
    src_segments = layout.discover_segments(src)
    restarts = []
    t0 = time.monotonic()
    with replay(src, out_dir=tmp_path, speed=40.0, on_segment=lambda n, p: restarts.append(n)) as server:
        assert server.speed == 10.0  # capped: ffmpeg's -readrate crawls above that
        assert server.wait(30)
    assert time.monotonic() - t0 < 15, "45 s of session at 10x"
    assert restarts == [0, 1] and not server.errors
    out = server.session_dir
    assert [s.offset for s in layout.discover_segments(out)] == [s.offset for s in src_segments]
    for a, b in zip(layout.recordings(out), layout.recordings(src)):
        assert probe(a).video.frames == probe(b).video.frames  # every frame, stream-copied
    assert abs(probe(out / "stream" / "audio.aac").duration - probe(src / "stream" / "audio.aac").duration) < 0.1
    assert (out / "labels.csv").read_text() == (src / "labels.csv").read_text()


def test_public_replay_is_the_function_even_after_its_module_is_imported():
    # a lazily exported name that equals a submodule's name would be shadowed by the module
    code = ("import cht_lab.tools.replay_server, cht_lab.live, cht_lab.session\n"
            "from cht_lab import replay, Replay, LiveSession, open_session\n"
            "import inspect\n"
            "assert inspect.isfunction(replay) and inspect.isclass(Replay), (replay, Replay)\n"
            "assert inspect.isclass(LiveSession) and inspect.isfunction(open_session)\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
