"""SceneDetector with real ffmpeg, real sockets (replay server) and the real Parquet index."""

from __future__ import annotations

import functools
import io
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cht_lab.detect import supervisor as detector_mod
from cht_lab.detect.supervisor import SceneDetector
from cht_lab.ffmpeg import FfmpegProcess, MediaError, find_ffmpeg, live_processes
from cht_lab.index.session_index import SessionIndex
from cht_lab.tools.replay_server import replay
from cht_lab.sources import FileSource, FollowSource, SocketSource, unix_address
from conftest import wait_for

# consecutive looks differ strongly (ffmpeg scene score >= 0.6 at every cut, < 0.01 between cuts)
LOOKS = ["testsrc2", "smptebars", "color=c=navy", "testsrc", "color=c=0xe0d8c0", "mandelbrot", "color=c=black",
         "yuvtestsrc"]
W, H, FPS = 320, 240, 30
THRESHOLD = 0.3
# ffmpeg's scene score peaks on the very frame of a cut, which makes "the captured frame is the
# crossing frame" checkable; the screen-content metrics are cht_lab.detect.scoring's business
Detector = functools.partial(SceneDetector, metric="score")


def make_scenes(path: Path, n: int, each: float = 1.0, *, gop: int = 15, extra: list[str] | None = None) -> Path:
    """n visibly different 'slides', `each` seconds long, with a small moving box (frames within a
    scene differ a little, as with a cursor); cuts at each, 2*each, ..."""
    inputs, graph = [], ""
    for i in range(n):
        look = LOOKS[i % len(LOOKS)]
        look = f"{look}{':' if '=' in look else '='}s={W}x{H}:r={FPS}"
        inputs += ["-f", "lavfi", "-t", f"{each}", "-i", look]
        graph += (f"color=c=red:s=12x12:r={FPS}:d={each}[c{i}];"
                  f"[{i}:v][c{i}]overlay=x='20+n*3':y=20:shortest=1,format=yuv420p[v{i}];")
    graph += "".join(f"[v{i}]" for i in range(n)) + f"concat=n={n}:v=1:a=0[out]"
    subprocess.run([find_ffmpeg(), "-hide_banner", "-v", "error", "-y", *inputs, "-filter_complex", graph,
                    "-map", "[out]", "-c:v", "libx264", "-preset", "ultrafast", "-bf", "0", "-g", str(gop),
                    "-pix_fmt", "yuv420p", *(extra or []), str(path)], check=True, timeout=60)
    return path


def decode_rgb(path: Path) -> np.ndarray:
    """Reference decode: every frame of `path` as RGB (frames x H x W x 3)."""
    out = subprocess.run([find_ffmpeg(), "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "rgb24",
                          "-fps_mode", "passthrough", "pipe:1"], capture_output=True, check=True, timeout=60).stdout
    return np.frombuffer(out, np.uint8).reshape(-1, H, W, 3)


def check_rows(scores) -> None:
    """What every run must guarantee: unique (segment, frame_index), ts strictly increasing."""
    assert not scores.duplicated(["segment", "frame_index"]).any()
    assert np.all(np.diff(scores["ts"].to_numpy()) > 0)
    assert np.all(np.diff(scores["frame_index"].to_numpy()) > 0)


@pytest.fixture(scope="module")
def cuts(tmp_path_factory) -> Path:
    """4 s, cuts at 1, 2, 3 s."""
    return make_scenes(tmp_path_factory.mktemp("clips") / "cuts.mp4", 4)


@pytest.fixture()
def session(tmp_path):
    idx = SessionIndex(tmp_path, writer=True)
    yield tmp_path, idx
    idx.close()


@pytest.fixture(autouse=True)
def no_leftovers():
    yield
    assert live_processes() == [], "every ffmpeg is reaped"
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        left = [t.name for t in threading.enumerate() if t.name.startswith(("scene-", "replay"))]
        if not left:
            break
        time.sleep(0.05)
    assert not left, f"threads left running: {left}"


def test_file_scores_every_frame_and_captures_the_cut_frame(cuts, session):
    session_dir, idx = session
    seen_in_index = []

    def on_frames(rows):
        # the row is durable before we are told: a fresh reader sees it, and the JPEG is complete
        frames = SessionIndex(session_dir).frames()
        seen_in_index.extend(r["id"] in set(frames["id"]) and (session_dir / r["path"]).stat().st_size == r["bytes"]
                             for r in rows)

    det = Detector(cuts, session_dir=session_dir, index=idx, threshold=THRESHOLD, on_frames=on_frames)
    det.start()
    assert det.wait(30)
    det.stop()
    st = det.status
    assert st["state"] == "finished" and st["backend"] and st["backend_reason"], st
    ref = decode_rgb(cuts)
    idx.flush()
    scores = idx.scores()
    assert len(scores) == len(ref) == st["frames"]  # a score row for every frame
    check_rows(scores)
    frames = idx.frames()
    assert list(frames["ts"].round(3)) == [1.0, 2.0, 3.0]
    assert seen_in_index and all(seen_in_index)
    for row in frames.itertuples():
        img = np.asarray(Image.open(session_dir / row.path).convert("RGB"))
        assert img.shape == (H, W, 3) and (row.width, row.height) == (W, H)  # source resolution
        err = ((ref.astype(np.float32) - img) ** 2).mean(axis=(1, 2, 3))
        best = int(err.argmin())
        assert abs(best - row.frame_index) <= 1, (best, row.frame_index)
        assert err[best] < 0.2 * err[row.frame_index - 1], "clearly the new scene, not the frame before the cut"
        assert row.kind == "scene" and row.metric == det.metric and row.threshold == THRESHOLD


def test_socket_live_threshold_change_keeps_ffmpeg(tmp_path, session):
    session_dir, idx = session
    clip = make_scenes(tmp_path / "six.mp4", 6, each=0.8)  # cuts at 0.8, 1.6, ... 4.0
    with replay(clip, out_dir=tmp_path / "srv", speed=2.0) as server:
        det = Detector(server.socket_path, session_dir=session_dir, index=idx, threshold=5.0, min_gap=0.5)
        det.start()
        wait_for(lambda: det.status["frames"] >= 40, what="frames past the first cut")  # 1.33 s of stream
        pid = det.ffmpeg_pid
        assert pid and det.status["captures"] == 0, "nothing crosses an impossible threshold"
        assert det.status["state"] == "running" and det.status["lag"] is not None
        det.set_threshold(THRESHOLD)
        assert det.threshold == THRESHOLD
        assert server.wait(20)
        wait_for(lambda: det.status["frames"] >= 144 - 15, what="the rest of the stream")
        assert det.status["restarts"] == 0 and det.ffmpeg_pid in (pid, None)
        det.stop()
    idx.flush()
    frames = idx.frames()
    assert len(frames) >= 3 and frames["ts"].min() > 1.33 - 0.01
    assert set(frames["threshold"]) == {THRESHOLD}
    check_rows(idx.scores())


def test_socket_server_restart_reconnects(tmp_path, session):
    session_dir, idx = session
    clip = make_scenes(tmp_path / "three.mp4", 3, each=0.7)  # cuts at 0.7 and 1.4 s
    sock = tmp_path / "cht.sock"
    det = Detector(SocketSource(sock, min_backoff=0.05, max_backoff=0.2), session_dir=session_dir, index=idx,
                   threshold=THRESHOLD)
    det.start()  # the server is not there yet: the detector waits for it
    try:
        wait_for(lambda: det.status["state"] in ("starting", "reconnecting"), what="waiting for the server")
        for n in range(2):  # the server comes, streams, goes away, and comes back
            with replay(clip, out_dir=tmp_path / "srv", speed=2.0, socket_path=sock) as server:
                assert server.wait(20)
            # a client joins at the next keyframe: it sees at least the last cut of each server run
            wait_for(lambda: det.status["captures"] >= n + 1, what=f"the cut of server run {n}")
        st = det.status
        assert st["restarts"] >= 1 and st["state"] in ("running", "reconnecting", "starting")
        # no recording to take time from: status says the clock is the wall clock
        assert st["clock"] == "wall clock"
    finally:
        det.stop()
    idx.flush()
    scores = idx.scores()
    check_rows(scores)
    # each server run is a segment of its own, placed after the previous one on the session timeline
    segs = scores.groupby("segment")
    assert segs.ngroups >= 2
    assert (segs["pts"].min() < 0.1).all(), "stream time restarts at 0 with each server run"
    first, second = segs["ts"].max().iloc[0], segs["ts"].min().iloc[1]
    assert second > first


def _serve(path: Path, payloads: list, ready: threading.Event, stop: threading.Event) -> None:
    """A tiny cht-like server: one connection, sends each payload (bytes, or a callable to run), then
    hangs up and goes away for good (its socket file removed), as cht does when a session ends."""
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with unix_address(path) as addr:
        srv.bind(addr)
    srv.listen(1)
    srv.settimeout(10)
    ready.set()
    try:
        conn, _ = srv.accept()
        with conn:
            for p in payloads:
                if stop.is_set():
                    break
                p() if callable(p) else conn.sendall(p)
    except OSError:
        pass
    finally:
        srv.close()
        path.unlink(missing_ok=True)


def test_garbage_on_the_socket_is_reported_and_recovered_from(tmp_path, session, monkeypatch, cuts):
    monkeypatch.setattr(detector_mod, "GARBAGE_AFTER", 1.0)
    session_dir, idx = session
    annexb = subprocess.run([find_ffmpeg(), "-v", "error", "-i", str(cuts), "-c:v", "copy", "-bsf:v",
                             "h264_mp4toannexb", "-f", "h264", "pipe:1"], capture_output=True, check=True).stdout
    path = tmp_path / "g.sock"
    ready, stop, errored = threading.Event(), threading.Event(), threading.Event()
    rng = np.random.default_rng(1)
    garbage = [rng.integers(0, 256, 40_000, dtype=np.uint8).tobytes() for _ in range(8)]

    def wait_for_error():
        wait_for(lambda: "not H.264 Annex-B" in (det.status["last_error"] or ""), what="a garbage error")
        errored.set()

    payloads = [*garbage, wait_for_error, annexb]
    server = threading.Thread(target=_serve, args=(path, payloads, ready, stop))
    server.start()
    ready.wait(5)
    det = Detector(SocketSource(path, min_backoff=0.05, end_after=0.5), session_dir=session_dir, index=idx,
                   threshold=THRESHOLD)
    det.start()
    try:
        assert errored.wait(20)
        st = det.status
        assert st["frames"] == 0 and st["state"] != "failed" and str(path) in st["last_error"]
        # then the clip, and the server goes away: `done` is set only once every capture is durable
        # (polling the capture count raced with JPEG writes still in flight)
        assert det.wait(30), det.status
        st = det.status
        assert st["state"] == "finished" and st["frames"] >= 100, st
        frames = idx.frames()
        assert len(frames) == st["captures"] >= 2, (st["captures"], frames)
        assert all((session_dir / rel).is_file() for rel in frames["path"])
    finally:
        stop.set()
        det.stop()
        server.join(10)
    check_rows(idx.scores())


def test_follow_a_recording_ffmpeg_is_still_writing(cuts, tmp_path, session):
    session_dir, idx = session
    target = tmp_path / "growing.mp4"
    writer = FfmpegProcess(["-hide_banner", "-v", "error", "-nostdin", "-readrate", "2", "-i", str(cuts), "-c", "copy",
                            "-movflags", "+frag_keyframe+empty_moov+default_base_moof", "-frag_duration", "200000",
                            "-flush_packets", "1", str(target)], stdout=None, name="writer")
    det = Detector(FollowSource(target, idle_timeout=1.0), session_dir=session_dir, index=idx,
                        threshold=THRESHOLD)
    try:
        det.start()
        wait_for(lambda: det.status["frames"] > 0, what="frames from the growing file")
        assert writer.running(), "scores arrive while the recording is still being written"
        assert writer.wait(20) == 0
        assert det.wait(20)
    finally:
        det.stop()
        writer.stop()
    assert det.status["state"] == "finished"
    assert det.status["frames"] == 120
    idx.flush()
    check_rows(idx.scores())
    assert list(idx.frames()["ts"].round(3)) == [1.0, 2.0, 3.0]


def test_ffmpeg_killed_mid_stream_restarts_without_duplicates(tmp_path, session):
    session_dir, idx = session
    clip = make_scenes(tmp_path / "five.mp4", 5, each=0.8, gop=12)
    with replay(clip, out_dir=tmp_path / "srv", speed=2.0) as server:
        det = Detector(SocketSource(server.socket_path, min_backoff=0.05), session_dir=session_dir, index=idx,
                            threshold=THRESHOLD)
        det.start()
        wait_for(lambda: det.status["frames"] >= 30, what="frames before the kill")
        pid = det.ffmpeg_pid
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: det.status["restarts"] >= 1 and det.ffmpeg_pid not in (None, pid), what="a new ffmpeg")
        assert server.wait(20)
        wait_for(lambda: det.status["frames"] > 60, what="frames after the restart")
        st = det.status
        det.stop()
    assert "killed" in st["last_error"] or any("killed" in e["error"] for e in st["errors"])
    assert st["errors"] and all("time" in e for e in st["errors"])
    idx.flush()
    scores = idx.scores()
    check_rows(scores)
    gaps = np.diff(scores["frame_index"].to_numpy())
    assert gaps.max() > 1, "the frames lost during the restart show as missing frame indices"
    ts_gaps = np.diff(scores["ts"].to_numpy())
    assert ts_gaps.max() > 3 / FPS, "... and as a gap in ts"
    frames = idx.frames()
    assert frames["id"].is_unique and frames["frame_index"].is_unique


def test_file_resumes_after_a_kill(cuts, session):
    session_dir, idx = session
    det = Detector(FileSource(cuts, realtime=True, speed=2.0), session_dir=session_dir, index=idx,
                        threshold=THRESHOLD)
    det.start()
    wait_for(lambda: det.status["frames"] >= 45, what="frames before the kill")
    os.kill(det.ffmpeg_pid, signal.SIGKILL)
    assert det.wait(20)
    det.stop()
    st = det.status
    assert st["state"] == "finished" and st["restarts"] == 1
    assert any("killed" in e["error"] for e in st["errors"])
    idx.flush()
    scores = idx.scores()
    check_rows(scores)
    # resumed after the last decoded frame: nothing lost, nothing twice
    assert len(scores) == 120 and np.allclose(scores["pts"], np.arange(120) / FPS, atol=1e-3)
    assert list(idx.frames()["ts"].round(3)) == [1.0, 2.0, 3.0]


def test_bad_inputs_fail_fast_and_keep_the_index(tmp_path, session, cuts):
    session_dir, idx = session
    earlier = {"id": idx.next_frame_id(), "ts": 0.5, "pts": 0.5, "segment": 0, "frame_index": 15, "score": 0.9,
               "metric": "scene", "threshold": 0.3, "kind": "manual", "path": "frames/F0001.jpg", "width": W,
               "height": H, "bytes": 1, "captured_at": None, "sent_to_agent": False}
    idx.append_frames([earlier])
    with pytest.raises(MediaError, match="missing.mp4: no such file"):
        SceneDetector(tmp_path / "missing.mp4", session_dir=session_dir, index=idx)
    ff = find_ffmpeg()
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 100)
    audio = tmp_path / "voice.m4a"
    subprocess.run([ff, "-v", "error", "-f", "lavfi", "-i", "sine=d=1", "-c:a", "aac", str(audio)], check=True)
    truncated = tmp_path / "cut_short.mp4"
    make_scenes(tmp_path / "plain.mp4", 2)  # moov atom at the end: cutting the file loses it
    truncated.write_bytes((tmp_path / "plain.mp4").read_bytes()[: (tmp_path / "plain.mp4").stat().st_size // 2])
    for bad, reason in [(text, "invalid data"), (audio, "no video"), (truncated, "moov atom not found")]:
        t0 = time.monotonic()
        det = Detector(bad, session_dir=session_dir, index=idx)
        det.start()
        assert det.wait(5), f"{bad.name}: an answer within 5 s, never a hang"
        det.stop()
        assert time.monotonic() - t0 < 5
        st = det.status
        assert st["state"] == "failed", st
        assert bad.name in st["last_error"] and reason in st["last_error"], st["last_error"]
    assert earlier["id"] in set(idx.frames()["id"]), "nothing already in the index is lost"


def test_capture_now_and_lifecycle(cuts, session):
    session_dir, idx = session
    never = Detector(cuts, session_dir=session_dir, index=idx)
    never.stop()  # never started: stops cleanly
    assert never.status["state"] == "stopped" and never.capture_now() is None
    got = []
    det = Detector(FileSource(cuts, realtime=True), session_dir=session_dir, index=idx, threshold=5.0,
                        on_frames=got.extend)
    det.start()
    try:
        wait_for(lambda: det.status["frames"] >= 10, what="a few frames")
        row = det.capture_now()
        assert row is not None and row["kind"] == "manual" and (session_dir / row["path"]).is_file()
        assert got and got[-1]["id"] == row["id"]
        img = Image.open(io.BytesIO((session_dir / row["path"]).read_bytes()))
        assert img.size == (W, H) and row["bytes"] == (session_dir / row["path"]).stat().st_size
    finally:
        det.stop()
    det.stop()  # twice is fine
    assert det.status["state"] == "stopped" and det.ffmpeg_pid is None
    assert row["id"] in set(idx.frames()["id"])


def test_cht_session_directory_ends_when_its_server_is_gone(tmp_path, session, cuts):
    from cht_lab.sources import open_source

    session_dir, idx = session
    with replay(cuts, out_dir=tmp_path / "srv", speed=4.0) as server:
        det = Detector(open_source(server.session_dir, end_after=0.5), session_dir=session_dir, index=idx,
                       threshold=THRESHOLD)
        assert isinstance(det.source, SocketSource)  # a live cht session: its scene.sock
        det.start()
        assert server.wait(20)
    assert det.wait(10), "the stream ended for good once the socket is gone"
    det.stop()
    assert det.status["state"] == "finished" and det.status["frames"] > 0
