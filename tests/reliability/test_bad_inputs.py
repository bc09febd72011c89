"""Bad inputs: each gives an error naming the input and the reason, or a logged, graceful partial
result - within seconds, never a hang. Through the public API (probe, open_session, LiveSession)."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from cht_lab import LabelsError, LiveSession, MediaError, open_session, probe
from cht_lab.ffmpeg import find_ffmpeg
from cht_lab.index.session_index import LegacyIndexError
from cht_lab.sources import unix_address

from .conftest import encode, wait_for

pytestmark = pytest.mark.timeout(60)


def live(source, session_dir: Path, **kw) -> dict:
    """Run a LiveSession over a finite source to its end (bounded) and return its final status."""
    s = LiveSession(source, session_dir=session_dir, audio=kw.pop("audio", False), **kw).start()
    try:
        assert s.wait(20), f"{source}: the live session reached an end within 20 s"
        state_at_end = s.status["state"]
    finally:
        s.stop()
    st = s.status
    st["state_at_end"] = state_at_end
    st["scores"] = s.scores()
    st["frames_table"] = s.frames()
    return st


def detector_errors(st: dict) -> str:
    return "\n".join(e["error"] for e in st["errors"] if e["worker"] == "detector")


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("bad")
    good = encode(d / "good.mp4", "testsrc2=s=320x240:r=30:d=3", extra_out=["-g", "30"])
    data = good.read_bytes()
    truncated = d / "truncated.mp4"
    truncated.write_bytes(data[: len(data) * 2 // 3])  # inside a fragment's mdat
    corrupt = bytearray(data)
    mid = len(data) // 2
    corrupt[mid:mid + 3000] = np.random.default_rng(7).integers(0, 256, 3000, dtype=np.uint8).tobytes()
    (d / "corrupt.mp4").write_bytes(bytes(corrupt))
    empty = d / "empty.mp4"
    empty.write_bytes(b"")
    text = d / "notes.mp4"
    text.write_text("this is a meeting agenda, not a video\n" * 50)
    audio_only = d / "voice.m4a"
    subprocess.run([find_ffmpeg(), "-v", "error", "-y", "-f", "lavfi", "-i", "sine=f=300:d=2", "-c:a", "aac",
                    str(audio_only)], check=True, timeout=60)
    video_only = encode(d / "silent.mp4", "testsrc2=s=160x120:r=30:d=1")
    return {"good": good, "truncated": truncated, "corrupt": d / "corrupt.mp4", "empty": empty, "text": text,
            "audio_only": audio_only, "video_only": video_only, "dir": d}


@pytest.mark.parametrize("name, reason", [
    ("missing", "no such file"),
    ("empty", "empty file (0 bytes)"),
    ("text", "not a media file ffmpeg can read (invalid data)"),
])
def test_unusable_files_are_refused_naming_the_file_and_the_reason(clips, tmp_path, name, reason):
    path = clips["dir"] / "missing.mp4" if name == "missing" else clips[name]
    for attempt in (lambda: probe(path), lambda: open_session(path),
                    lambda: live(path, tmp_path / "s")):
        t0 = time.monotonic()
        try:
            result = attempt()
        except MediaError as exc:
            assert exc.path == str(path) and reason in exc.reason, exc
            assert str(path) in str(exc)
        else:
            # a LiveSession over a text file starts (the decode is the child's job), then fails its detector
            st = result
            assert st["workers"]["detector"]["state"] == "failed", st["workers"]["detector"]
            assert st["state_at_end"] == "failed", "a dead detector must not read as a running session"
            assert str(path) in st["last_error"] and reason in st["last_error"], st["last_error"]
        assert time.monotonic() - t0 < 10


def test_recording_truncated_mid_fragment_decodes_what_is_there_and_says_so(clips, tmp_path, caplog):
    path = clips["truncated"]
    info = probe(path)
    assert info.video is not None and not info.complete, "a cut-off recording is not reported complete"
    with caplog.at_level(logging.WARNING, logger="cht_lab"):
        st = live(path, tmp_path / "s")
    assert st["workers"]["detector"]["state"] == "finished"
    assert 40 <= len(st["scores"]) <= info.video.frames, "the readable part is scored"
    errors = detector_errors(st)
    assert str(path) in errors and "truncated or damaged" in errors, errors
    assert any("truncated or damaged" in r.getMessage() for r in caplog.records), "and it is logged"
    assert len(open_session(path).score(progress=False)) >= 40, "offline scoring also reads the readable part"


def test_a_corrupt_frame_in_the_middle_is_skipped_and_detection_goes_on(clips, tmp_path):
    path = clips["corrupt"]
    st = live(path, tmp_path / "s")
    assert st["workers"]["detector"]["state"] == "finished"
    scores = st["scores"]
    assert scores["pts"].max() > 2.9, "frames after the damage are scored"
    assert len(scores) >= 85, len(scores)
    errors = detector_errors(st)
    assert str(path) in errors and "ffmpeg:" in errors, "the decoder's complaint reaches the status"


def test_audio_only_and_video_only_recordings(clips, tmp_path):
    audio_only, video_only = clips["audio_only"], clips["video_only"]
    with pytest.raises(MediaError, match="voice.m4a: has no video stream"):
        open_session(audio_only)
    st = live(audio_only, tmp_path / "a", audio=True)
    assert st["workers"]["detector"]["state"] == "failed"
    assert "voice.m4a: no video stream (audio only)" in detector_errors(st)
    assert st["chunks"] >= 1, "the audio is still cut into chunks"
    st = live(video_only, tmp_path / "v", audio=True)
    assert st["workers"]["detector"]["state"] == "finished" and len(st["scores"]) == 30
    assert st["state_at_end"] == "finished", "a source processed to its end reads as finished, not running"
    aud = st["workers"]["audio"]
    assert st["chunks"] == 0 and aud["state"] == "finished" and aud["note"].startswith("no audio"), aud


def test_variable_frame_rate(tmp_path):
    # 30 fps with a 0.7 s hole and then jittered timestamps
    path = encode(tmp_path / "vfr.mp4", "testsrc2=s=160x120:r=30:d=2",
                  extra_out=["-vf", "setpts='(N/30+if(gt(N,20),0.7,0)+if(gt(N,40),0.013*mod(N,7),0))/TB'",
                             "-fps_mode", "passthrough", "-enc_time_base", "1/1000"])
    st = live(path, tmp_path / "s")
    scores = st["scores"]
    assert len(scores) == 60
    ts = scores["ts"].to_numpy()
    assert np.all(np.diff(ts) > 0), "ts strictly increases even where the source repeats a timestamp"
    assert np.diff(ts).max() > 0.6, "the hole in the recording is a hole in ts"
    assert scores["frame_index"].is_unique
    assert len(open_session(path).score(progress=False)) == 60


@pytest.mark.parametrize("size", ["1x1", "1921x1081", "321x241"])
def test_odd_picture_sizes_are_scored_and_captured_at_full_size(tmp_path, size):
    w, h = map(int, size.split("x"))
    src = f"testsrc2=s={w + (w % 2) or 2}x{h + (h % 2) or 2}:r=10:d=0.5,scale={w}:{h}"
    path = encode(tmp_path / f"{size}.mp4", src, pix_fmt="yuv444p")  # 4:4:4: odd sizes encode as they are
    info = probe(path)
    assert (info.video.width, info.video.height) == (w, h)
    st = live(path, tmp_path / "s", threshold=0.0, min_gap=0.0)  # capture every frame
    assert st["workers"]["detector"]["state"] == "finished"
    assert len(st["scores"]) == 5
    frames = st["frames_table"]
    assert len(frames) == 5 and set(zip(frames["width"], frames["height"])) == {(w, h)}
    from PIL import Image
    with Image.open(tmp_path / "s" / frames["path"].iloc[0]) as im:
        assert im.size == (w, h)


def test_very_large_resolution(tmp_path):
    # 8K (8192x4320, H.264 level 6.x): a few frames, to keep the test quick
    path = encode(tmp_path / "8k.mp4", "color=c=navy:s=8192x4320:r=5:d=0.6", extra_out=["-g", "1"])
    t0 = time.monotonic()
    st = live(path, tmp_path / "s", threshold=0.0, min_gap=0.0)
    assert st["workers"]["detector"]["state"] == "finished", detector_errors(st)
    assert len(st["scores"]) == 3
    assert set(st["frames_table"]["width"]) == {8192}
    assert time.monotonic() - t0 < 30


# ------------------------------------------------------------------ the socket


def _annexb(path: Path) -> bytes:
    return subprocess.run([find_ffmpeg(), "-v", "error", "-i", str(path), "-c:v", "copy", "-bsf:v",
                           "h264_mp4toannexb", "-f", "h264", "pipe:1"], capture_output=True, check=True,
                          timeout=60).stdout


class FlakyServer:
    """A cht-like scene.sock that, per connection, sends the next script: a list of payloads; after
    the last payload it hangs up abruptly (RST when `reset`)."""

    def __init__(self, path: Path, scripts: list[list[bytes]], reset: bool = True):
        self.path, self.scripts, self.reset = path, scripts, reset
        self.connections = 0
        self._stop = threading.Event()
        self._srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        with unix_address(path) as addr:
            self._srv.bind(addr)
        self._srv.listen(4)
        self._srv.settimeout(0.1)
        self._thread = threading.Thread(target=self._serve, name="flaky-server", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._srv.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            script = self.scripts[min(self.connections, len(self.scripts) - 1)]
            self.connections += 1
            try:
                for payload in script:
                    conn.sendall(payload)
                    if self._stop.wait(0.01):
                        break
            except OSError:
                pass
            if self.reset:  # an abrupt disconnect: RST-like close without shutdown
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._srv.close()
        self._thread.join(5)


def test_garbage_and_abrupt_disconnects_on_the_socket(tmp_path, clips):
    """Garbage, a stream cut mid-NAL, half a keyframe: each connection ends abruptly; the session keeps
    reconnecting and scores the valid stream when it comes, with distinct, increasing frame indices."""
    stream = _annexb(clips["good"])
    garbage = np.random.default_rng(3).integers(0, 256, 200_000, dtype=np.uint8).tobytes()
    chunks = [stream[i:i + 4096] for i in range(0, len(stream), 4096)]
    scripts = [
        [garbage[i:i + 20_000] for i in range(0, len(garbage), 20_000)],  # no H.264 at all
        chunks[:3],  # SPS and half a keyframe, then gone
        chunks[: len(chunks) // 3] + [garbage[:5000]],  # a third of the stream, then junk, then gone
        chunks,  # the whole stream
        [],  # later connections: accepted and closed at once
    ]
    sock = tmp_path / "scene.sock"
    server = FlakyServer(sock, scripts)
    from cht_lab.sources import SocketSource

    s = LiveSession(SocketSource(sock, min_backoff=0.05, max_backoff=0.2), session_dir=tmp_path / "s",
                    audio=False).start()
    try:
        wait_for(lambda: server.connections >= 5, 30, "the session to reconnect after each hang-up")
        wait_for(lambda: s.status["frames"] >= 60, 15, "the valid stream to be scored")
        st = s.status
        assert st["state"] == "running" and st["workers"]["detector"]["state"] != "failed"
    finally:
        s.stop()
        server.close()
    scores = s.scores()
    assert scores["frame_index"].is_unique and np.all(np.diff(scores["ts"].to_numpy()) > 0)
    assert st["workers"]["detector"]["restarts"] >= 3
    assert any(str(sock) in e["error"] for e in st["errors"]), st["errors"]


# ------------------------------------------------------------------ session files


@pytest.mark.parametrize("content, reason", [
    ("time,end,kind\n1.0,,cut\nabc,,cut\n", "line 3"),
    ("time,end,kind\n3.0,2.0,gradual\n", "line 2"),
    ("when,what\n1,2\n", "time"),
    (b"time\n\xff\xfe1.0\n", "not UTF-8"),
])
def test_malformed_labels_csv(clips, tmp_path, content, reason):
    session_dir = tmp_path / "sess"
    (session_dir / "stream").mkdir(parents=True)
    os.link(clips["video_only"], session_dir / "stream" / "20240101_100000.mp4")
    labels = session_dir / "labels.csv"
    labels.write_bytes(content if isinstance(content, bytes) else content.encode())
    session = open_session(session_dir)  # opening does not need labels
    with pytest.raises(LabelsError) as err:
        session.labels
    assert str(labels) in str(err.value) and reason in str(err.value), err.value


@pytest.mark.parametrize("content, reason", [
    ("{not json", "JSON"),
    ("[1, 2, 3]", ""),
    (json.dumps([{"id": "F0001", "timestamp": "yesterday", "path": "frames/F0001.jpg"}]), ""),
    (json.dumps({"frames": "nope"}), ""),
    (json.dumps([{"id": "../../../tmp/escape", "timestamp": 1.0, "path": "frames/F0001.jpg"}]), "plain file name"),
])
def test_malformed_legacy_frames_index(clips, tmp_path, content, reason):
    session_dir = tmp_path / "sess"
    (session_dir / "stream").mkdir(parents=True)
    (session_dir / "frames").mkdir()
    os.link(clips["video_only"], session_dir / "stream" / "20240101_100000.mp4")
    legacy = session_dir / "frames" / "index.json"
    legacy.write_text(content)
    try:
        session = open_session(session_dir)
    except LegacyIndexError as exc:  # a clear refusal naming the file and the reason ...
        assert str(legacy) in str(exc) and reason in str(exc), exc
        return
    # ... or a graceful skip: the session opens, nothing bogus was imported
    assert session.frames().empty
