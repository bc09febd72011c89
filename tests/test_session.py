"""Recorded sessions: open_session on cht / cht_lab directories, and recovery after a live
session's process was killed with SIGKILL (real processes, a replay as the cht server)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from cht_lab import layout
from cht_lab.ffmpeg import MediaError
from cht_lab.index.session_index import SessionIndex
from cht_lab.live import LiveSession
from cht_lab.tools.replay_server import replay
from cht_lab.tools.samples.render import sample_dir
from cht_lab.session import open_session
from conftest import wait_for

HERE = Path(__file__).resolve().parent


def durable_frames(session_dir: Path):
    """The frames a reader sees now (no writer lock taken), or None while there is no index yet."""
    if not (session_dir / layout.INDEX_DIR).is_dir():
        return None
    try:
        return SessionIndex(session_dir).frames()
    except Exception:
        return None


def test_sigkill_recovery_and_continuation(tmp_path):
    with replay(sample_dir("slides"), out_dir=tmp_path, speed=10, loop=True) as server:
        d = Path(server.session_dir)
        child = subprocess.Popen([sys.executable, str(HERE / "live_session_proc.py"), str(d)],
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                 start_new_session=True)
        try:
            assert child.stdout.readline().strip() == "started"
            wait_for(lambda: (f := durable_frames(d)) is not None and len(f) >= 3, 60,
                       "3 durable frames from the child")
            seen = durable_frames(d)
        finally:
            os.killpg(child.pid, signal.SIGKILL)  # the child and its ffmpeg children, no clean-up
            child.wait(10)

        # everything flushed survives: rows with their JPEGs, scores, no half-written files read
        session = open_session(d)
        frames, scores = session.frames(), session.scores()
        assert len(frames) >= len(seen)
        assert set(seen["id"]) <= set(frames["id"])
        for rel in frames["path"]:
            assert (d / rel).is_file(), rel
        assert len(scores) > 0
        assert not scores.duplicated(["segment", "frame_index"]).any()

        # a new live session continues the same directory: the dead writer's lock is taken over,
        # ids and frame indices go on without repeats
        n_before, last_index = len(frames), int(scores["frame_index"].max())
        live = LiveSession(d, audio=False).start()
        try:
            wait_for(lambda: live.status["captures"] >= 2, 60, "captures after the restart")
        finally:
            live.stop()
        assert live.status["errors"] == [], live.status["errors"]
    frames2, scores2 = open_session(d).frames(), open_session(d).scores()
    assert frames2["id"].is_unique
    assert len(frames2) >= n_before + 2
    new = frames2[~frames2["id"].isin(frames["id"])]
    assert (new["id"] > frames["id"].max()).all()
    assert not scores2.duplicated(["segment", "frame_index"]).any()
    assert scores2["frame_index"].max() > last_index
    for rel in frames2["path"]:
        assert (d / rel).is_file()


def test_open_session_errors_name_the_path(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(MediaError, match="nope"):
        open_session(missing)
    (tmp_path / "plain").mkdir()
    with pytest.raises(MediaError, match="plain"):
        open_session(tmp_path / "plain")


def test_open_session_on_a_copied_sample_reads_segments_and_labels(tmp_path):
    d = tmp_path / "20260301_120000"
    shutil.copytree(sample_dir("twoseg"), d, ignore=shutil.ignore_patterns("index"))
    s = open_session(d)
    assert [seg.index for seg in s.segments] == [0, 1]
    assert s.segments[0].offset == 0.0 and s.segments[1].offset == pytest.approx(25.0)
    assert s.labels is not None and len(s.labels) == 6
    # the recording opened as a file maps to its session
    assert open_session(s.segments[1].path).dir == d.resolve()
