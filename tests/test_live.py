"""LiveSession end to end, with real processes: a replay serves a bundled sample as a live cht
session (growing fMP4 + scene.sock, 10x real time) and a LiveSession detects, captures and cuts
audio into that session directory.
"""

from __future__ import annotations

import inspect
import logging
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cht_lab import layout
from cht_lab.detect.offline import score_recording
from cht_lab.detect.scoring import AUX_COLUMNS, PYTHON_METRICS
from cht_lab.ffmpeg import MediaError, find_ffmpeg, live_processes, probe
from cht_lab.tuning.labels import load_labels
from cht_lab.live import LiveSession
from cht_lab.tools.replay_server import replay
from cht_lab.tools.samples.render import SAMPLES, sample_dir
from cht_lab.tuning.matching import scenes as tuning_scenes
from cht_lab.tuning.sweep import match
from conftest import wait_for

SPEED = 10
# replay keeps scene.sock through its recorder restarts and removes it only when it is done, so
# here a socket gone for 0.5 s means the session is over; cht's 5 s cost each test 4.5 s of idling
SERVER_GONE_AFTER = 0.5


def replayed_session(name: str, tmp_path: Path, speed: float = SPEED) -> dict:
    """Replay sample `name` and watch it with a LiveSession from the start; return what it produced."""
    with replay(sample_dir(name), out_dir=tmp_path, speed=speed) as server:
        live = LiveSession(server.session_dir, end_after=SERVER_GONE_AFTER)
        with live:
            assert server.wait(timeout=120), "replay did not finish"
            # wait() returns once the server is gone and the followed recording stopped growing
            # (it used to hang on the audio extractor, which follows the recording forever)
            assert live.wait(timeout=60), f"live session did not finish: {live.status}"
        status = live.status
        out = {"dir": Path(server.session_dir), "frames": live.frames(), "scores": live.scores(),
               "audio": live.audio(), "status": status, "live": live, "replay_errors": list(server.errors)}
    return out


def audio_seconds(session_dir: Path) -> float:
    """Seconds of audio the replayed recording holds (audio.aac, else the recordings' audio tracks)."""
    aac = session_dir / layout.STREAM_DIR / layout.AUDIO_AAC
    if aac.is_file():
        return probe(aac).duration
    return sum(probe(p).audio.duration for p in layout.recordings(session_dir) if probe(p).audio)


@pytest.mark.parametrize("name", list(SAMPLES))
def test_sample_end_to_end_through_replay(name, tmp_path):
    # twoseg: after the recorder restart the detector must join the second recording at its first
    # keyframe; it used to reconnect only once the previous ffmpeg had drained (~0.5 s), which at
    # 10x swallowed the second recording's first event (4.5 s in), so this case ran at 4x
    res = replayed_session(name, tmp_path)
    d, frames, audio, status = res["dir"], res["frames"], res["audio"], res["status"]
    assert not res["replay_errors"]
    assert status["errors"] == [], status["errors"]
    assert status["state"] == "stopped"

    # captured frames match the ground truth at the default threshold
    labels = load_labels(d / layout.LABELS_CSV)
    result = match(frames["ts"].to_numpy(), labels, tolerance=0.5)
    assert result.f1 >= 0.95, (result, frames[["ts", "score"]].to_string(), labels["time"].tolist())
    if name == "twoseg":  # global timestamps: detections in both recordings, with the second's offset
        assert set(frames["segment"]) == {0, 1}
        seg1 = layout.discover_segments(d)[1]
        second = frames[frames["segment"] == 1]
        np.testing.assert_allclose(second["ts"], second["pts"] + seg1.offset, atol=0.05)
        assert seg1.offset > 0
        # connected again and waiting when the restarted recorder sent its first keyframe: the second
        # recording is scored from its first frame (it used to join 2-6 s in, at a later keyframe)
        seg1_scores = res["scores"][res["scores"]["segment"] == 1]
        assert seg1_scores["pts"].min() == pytest.approx(0.0, abs=0.05), seg1_scores["pts"].min()

    # every frame row has its JPEG, every JPEG in frames/ has its row
    on_disk = {p.relative_to(d).as_posix() for p in (d / layout.FRAMES_DIR).glob("*.jpg")}
    assert set(frames["path"]) == on_disk
    assert frames["id"].is_unique

    # a score row for every decoded frame, increasing ts
    scores = res["scores"]
    assert len(scores) == status["frames"] > 0
    assert (np.diff(scores["ts"].to_numpy()) > 0).all()

    # audio chunks tile the audio: contiguous, no gap or overlap, the whole recording
    if not SAMPLES[name].audio:
        assert len(audio) == 0  # a recording without sound: nothing to cut, and no error either
        return
    assert len(audio) > 0
    audio = audio.sort_values("start")
    starts, durs = audio["start"].to_numpy(), audio["duration"].to_numpy()
    for seg, part in audio.groupby("segment"):
        s, e = part["start"].to_numpy(), (part["start"] + part["duration"]).to_numpy()
        np.testing.assert_allclose(s[1:], e[:-1], atol=1e-3, err_msg=f"segment {seg}: gap or overlap")
    total = float(durs.sum())
    assert total == pytest.approx(audio_seconds(d), abs=0.1)
    for rel in audio["path"]:
        assert (d / rel).is_file()
    assert starts[0] == pytest.approx(0.0, abs=0.1)


def _decode_gray(path: Path, at: float | None, size=(320, 180)) -> np.ndarray:
    """One frame as a small gray array: the JPEG (at=None) or the recording's frame at `at` s."""
    w, h = size
    args = [find_ffmpeg(), "-hide_banner", "-loglevel", "error", "-nostdin"]
    if at is not None:
        args += ["-ss", f"{at:.4f}"]
    args += ["-i", str(path), "-frames:v", "1", "-vf", f"scale={w}:{h},format=gray", "-f", "rawvideo", "-"]
    out = subprocess.run(args, capture_output=True, check=True, timeout=30).stdout
    assert len(out) == w * h, f"no frame at {at} in {path}"
    return np.frombuffer(out, np.uint8).reshape(h, w).astype(np.float32)


def _vfr_session(src: Path, out: Path) -> Path:
    """A variable-frame-rate copy of a sample session: a still screen produces no frames, as screen
    recorders write it (irregular spans without frames, and every third frame dropped for a while)."""
    rec = layout.recordings(src)[0]
    dst = out / src.name
    (dst / layout.STREAM_DIR).mkdir(parents=True)
    (dst / layout.LABELS_CSV).write_bytes((src / layout.LABELS_CSV).read_bytes())
    drop = ("between(t,1.2,3.1)+between(t,5.3,6.0)+between(t,9.0,13.4)+between(t,20.1,21.0)+between(t,31,44)"
            "+between(t,47.5,55)+not(mod(n,3))*between(t,14,19)")
    subprocess.run([find_ffmpeg(), "-hide_banner", "-v", "error", "-y", "-i", str(rec), "-vf", f"select='not({drop})'",
                    "-fps_mode", "vfr", "-c:v", "libx264", "-preset", "ultrafast", "-bf", "0", "-g", "60",
                    "-pix_fmt", "yuv420p", "-c:a", "copy", "-movflags", "+frag_keyframe+empty_moov+default_base_moof",
                    str(dst / layout.STREAM_DIR / rec.name)], check=True, timeout=120)
    return dst


def _offline_scores(session_dir: Path) -> pd.DataFrame:
    # decoded as a live session decodes (no decoder shortcuts): the tables must be equal frame for frame
    exact = {"fast_decode": False} if "fast_decode" in inspect.signature(score_recording).parameters else {}
    parts = [score_recording(seg.path, segment=seg.index, ts_offset=seg.offset, **exact)
             for seg in layout.discover_segments(session_dir)]
    return pd.concat(parts, ignore_index=True).sort_values("ts", ignore_index=True)


def _recorded(path: Path) -> float:
    """Seconds of a recording being written (0 while the server has not written its first fragment)."""
    try:
        return probe(path).duration
    except MediaError:
        return 0.0


@pytest.mark.parametrize("kind", ["cfr", "vfr", "twoseg"])
def test_late_attach_scores_every_frame_of_the_recording_at_its_own_time(kind, tmp_path):
    """Started after the replay has served several seconds: the recording before the socket's first
    keyframe is backfilled, socket frames take the recording's pts (exact for VFR), and the live score
    table equals the offline one frame for frame; the captures are what scenes() gives offline."""
    src = {"cfr": sample_dir("slides"), "vfr": None, "twoseg": sample_dir("twoseg")}[kind]
    if src is None:
        src = _vfr_session(sample_dir("slides"), tmp_path / "vfr")
    with replay(src, out_dir=tmp_path / "srv", speed=4) as server:
        rec = wait_for(lambda: layout.recordings(server.session_dir), 10, "the recording")[0]
        wait_for(lambda: _recorded(rec) > 8.0, 30, "8 s of recording")  # the attach is late
        live = LiveSession(server.session_dir, audio=False, end_after=SERVER_GONE_AFTER)
        with live:
            assert server.wait(timeout=120)
            assert live.wait(timeout=60)
        status = live.status
        scores = live.scores().sort_values("ts", ignore_index=True)
        frames = live.frames()
    det = status["workers"]["detector"]
    assert status["errors"] == [], status["errors"]
    assert det["clock"] == "recording" and det["backfilled"] > 0, det
    offline = _offline_scores(Path(server.session_dir))
    assert len(scores) == len(offline), "every frame of the recording, each once"
    np.testing.assert_allclose(scores["ts"], offline["ts"], atol=1e-3)
    np.testing.assert_array_equal(scores[["segment", "frame_index"]], offline[["segment", "frame_index"]])
    for metric in (*PYTHON_METRICS, *AUX_COLUMNS):
        np.testing.assert_array_equal(scores[metric], offline[metric], err_msg=metric)
    metric, threshold = status["metric"], status["threshold"]
    # the same captures as offline scenes(): onset (ts, frame_index), captured frame, revisits
    scenes = tuning_scenes(offline, threshold, metric=metric)
    frames = frames.sort_values("capture_ts", ignore_index=True)
    assert len(frames) == len(scenes)
    np.testing.assert_allclose(frames["ts"].to_numpy(), scenes["ts"].to_numpy(), atol=1e-3)
    np.testing.assert_allclose(frames["capture_ts"].to_numpy(), scenes["capture_ts"].to_numpy(), atol=1e-3)
    np.testing.assert_array_equal(frames[["segment", "frame_index", "capture_frame_index"]].to_numpy(),
                                  scenes[["segment", "frame_index", "capture_frame_index"]].to_numpy())
    by_capture = dict(zip(zip(frames["segment"], frames["capture_frame_index"]), frames["id"]))
    expected = [by_capture.get((s, f)) if f >= 0 else None for s, f in zip(scenes["segment"], scenes["revisit_frame"])]
    assert [v if isinstance(v, str) else None for v in frames["revisit_of"]] == expected
    # frame-accurate: each JPEG is the recording's frame at its capture time, not a neighbour half a second away
    recs = {seg.index: seg for seg in layout.discover_segments(server.session_dir)}
    for row in frames.itertuples():
        jpeg = _decode_gray(Path(server.session_dir) / row.path, None)
        at = recs[row.segment]
        pts = row.capture_ts - (row.ts - row.pts) - 0.01  # (a hair early: -ss keeps the first frame at or after it)
        diffs = {dt: float(np.abs(jpeg - _decode_gray(at.path, pts + dt)).mean()) for dt in (-0.5, 0.0, 0.5)}
        assert diffs[0.0] < 2.0, (row.ts, diffs)


# ---------------------------------------------------------------------------------- lifecycle


def test_stop_under_load_is_quick_and_reaps_ffmpeg(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="cht_lab.ffmpeg")
    with replay(sample_dir("desktop"), out_dir=tmp_path, speed=SPEED) as server:
        live = LiveSession(server.session_dir, end_after=SERVER_GONE_AFTER).start()
        try:
            wait_for(lambda: live.status["frames"] > 60 and live.status["workers"]["audio"].get("chunks", 0) >= 0
                       and live.status["state"] == "running", 30, "frames flowing")
            mine_before = {p.pid for p in live_processes() if not p.name.startswith("replay")}
            assert mine_before, "the live session runs ffmpeg"
            t0 = time.monotonic()
            live.stop()
            took = time.monotonic() - t0
        finally:
            live.stop()
        print(f"stop() took {took:.2f} s")
        assert took < 5.0 + 1.0, f"stop() took {took:.2f} s"  # the 5 s, plus margin for a busy box
        # each ffmpeg ended on SIGTERM: none sat in a write nobody reads until it was SIGKILLed (2 s each)
        assert "ignored SIGTERM" not in caplog.text, caplog.text
        assert not ({p.pid for p in live_processes()} & mine_before), "an ffmpeg child survived stop()"
        assert live.status["state"] == "stopped"
        live.stop()  # twice: harmless
        assert live.status["state"] == "stopped"
    # what was captured before stop is durable and readable
    assert len(live.frames()) == live.status["captures"]


def test_never_started_session_stops_cleanly(tmp_path):
    live = LiveSession(sample_dir("slides") / layout.STREAM_DIR / "20260301_090000.mp4", session_dir=tmp_path / "s")
    live.stop()
    live.stop()
    assert live.status["state"] == "stopped"
    assert live.frames().empty
    assert live.wait(timeout=0.1) is False


def test_wait_returns_on_a_recording_without_audio(tmp_path):
    """The audio worker used to follow a video-only recording for ever, so wait() never returned."""
    from conftest import make_clip

    src = tmp_path / "20240101_120000"
    (src / layout.STREAM_DIR).mkdir(parents=True)
    make_clip(src / layout.STREAM_DIR / "20240101_120000.mp4", seconds=3.0, size="320x180", audio=False)
    with replay(src, out_dir=tmp_path / "srv", speed=4.0) as server:
        live = LiveSession(server.session_dir, audio=True, end_after=SERVER_GONE_AFTER)
        with live:
            assert server.wait(timeout=60)
            assert live.wait(timeout=30), "wait() returns once the video ended and there is no audio"
            status = live.status
    audio = status["workers"]["audio"]
    assert audio["state"] == "finished" and "no audio" in audio.get("note", ""), audio
    assert status["state"] == "finished" and status["chunks"] == 0
    assert len(live.scores()) == 90
