"""Recorded sessions: open_session on cht / cht_lab directories, the working-directory rule for
read-only sources, exports of the frame index, and recovery after a live session's process was
killed with SIGKILL (real processes, a replay as the cht server)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from cht_lab import layout
from cht_lab.detect.scoring import DEFAULT_METRIC, DEFAULT_THRESHOLDS
from cht_lab.ffmpeg import MediaError, find_ffmpeg
from cht_lab.index.schema import FRAMES_SCHEMA
from cht_lab.index.session_index import SessionIndex
from cht_lab.live import LiveSession
from cht_lab.tools.replay_server import replay
from cht_lab.tools.samples.render import sample_dir
from cht_lab.session import open_session
from conftest import wait_for

HERE = Path(__file__).resolve().parent
COLOR_CUTS = (1.5, 3.0)  # where make_color_session's picture changes


@pytest.fixture(autouse=True)
def data_dir(tmp_path, monkeypatch) -> Path:
    """Working directories of read-only sources go to a temp data dir, never the user's."""
    d = tmp_path / "cht_lab_data"
    monkeypatch.setenv(layout.DATA_DIR_ENV, str(d))
    return d


def make_color_session(root: Path, name: str = "20260301_130000") -> Path:
    """A small cht-style session: 4.5 s of red, blue, green (two labeled cuts) with a tone; decodes in
    well under a second, so export and working-directory tests need no bundled sample."""
    d = root / name
    (d / layout.STREAM_DIR).mkdir(parents=True)
    colors = ";".join(f"color=c={c}:s=320x240:r=30:d=1.5[{c}]" for c in ("red", "blue", "green"))
    subprocess.run([find_ffmpeg(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
                    "-f", "lavfi", "-i", f"{colors};[red][blue][green]concat=n=3[out0]",
                    "-f", "lavfi", "-i", "sine=f=440:r=48000:d=4.5", "-shortest", "-c:a", "aac",
                    "-c:v", "libx264", "-preset", "ultrafast", "-bf", "0", "-g", "30", "-pix_fmt", "yuv420p",
                    "-movflags", "+frag_keyframe+empty_moov+default_base_moof",
                    str(d / layout.STREAM_DIR / f"{name}.mp4")], check=True, timeout=60)
    (d / layout.LABELS_CSV).write_text("time,end,kind,note\n" + "".join(f"{t},,cut,\n" for t in COLOR_CUTS))
    return d


def tree(root: Path) -> dict[str, int]:
    """Every file under root with its size: what "nothing was written here" is checked against."""
    return {p.relative_to(root).as_posix(): p.stat().st_size for p in sorted(root.rglob("*")) if p.is_file()}


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


# --------------------------------------------------------------------------- the working-directory rule


def test_a_bundled_sample_is_read_in_place_and_worked_on_in_the_data_dir(tmp_path, monkeypatch, data_dir):
    monkeypatch.setenv("CHT_LAB_SAMPLES", str(tmp_path / "samples"))  # this folder holds "bundled" samples
    src = make_color_session(tmp_path / "samples")
    before = tree(src)
    s = open_session(src)
    assert s.source_dir == src.resolve() and s.read_only_source
    assert s.dir == s.session_dir == layout.work_dir_for(src) and data_dir.resolve() in s.dir.parents
    assert s.id == src.name and s.labels is not None and len(s.labels) == 2

    s.score(progress=False)
    s.capture_frames()
    s.extract_audio()
    exported = s.export("frames.csv")
    assert tree(src) == before  # nothing written into the sample: no index/, frames/, audio/, exports
    assert exported.parent == s.dir
    assert len(list((s.dir / layout.FRAMES_DIR).glob("*.jpg"))) == 2
    assert len(s.audio()) > 0 and all((s.dir / p).is_file() for p in s.audio()["path"])

    again = open_session(src)  # the same source finds the same working directory
    assert again.dir == s.dir and len(again.scores()) == len(s.scores())
    via_work = open_session(s.dir)  # and the working directory finds its source
    assert via_work.source_dir == src.resolve() and via_work.labels is not None
    assert [seg.path for seg in via_work.segments] == [seg.path for seg in s.segments]
    assert tree(src) == before


def test_two_read_only_sources_of_the_same_name_get_their_own_working_dirs(tmp_path, monkeypatch):
    monkeypatch.setenv("CHT_LAB_SAMPLES", str(tmp_path))
    a = make_color_session(tmp_path / "a")
    b = make_color_session(tmp_path / "b")
    assert open_session(a).dir != open_session(b).dir


def test_a_recording_in_a_read_only_folder_is_worked_on_in_the_data_dir(tmp_path, monkeypatch, data_dir):
    monkeypatch.setenv("CHT_LAB_SAMPLES", str(tmp_path / "samples"))
    clip = make_color_session(tmp_path / "samples" / "loose") / layout.STREAM_DIR / "20260301_130000.mp4"
    plain = clip.rename(tmp_path / "samples" / "loose" / "talk.mp4")  # a recording outside any stream/
    s = open_session(plain)
    assert s.recording == plain.resolve() and data_dir.resolve() in s.dir.parents
    assert not plain.with_name("talk.mp4.session").exists()


def test_a_writable_session_is_its_own_working_dir(tmp_path):
    src = make_color_session(tmp_path)
    s = open_session(src)
    assert s.dir == s.source_dir == src.resolve() and not s.read_only_source


# --------------------------------------------------------------------------- exports


def test_export_of_a_scored_session_gives_the_detections_with_every_column(tmp_path, caplog):
    s = open_session(make_color_session(tmp_path))
    with pytest.raises(RuntimeError, match="score it first"):
        s.export("frames.parquet")
    with pytest.raises(RuntimeError, match="score it first"):
        s.export("scores.parquet", table="scores")
    assert not (s.dir / "frames.parquet").exists()
    s.score(progress=False)

    table = pd.read_parquet(s.export("frames.parquet"))
    assert list(table.columns) == FRAMES_SCHEMA.names
    assert len(table) == len(COLOR_CUTS)
    assert (table["metric"] == DEFAULT_METRIC).all() and (table["threshold"] == DEFAULT_THRESHOLDS[DEFAULT_METRIC]).all()
    assert table["id"].isna().all() and table["path"].isna().all()  # no JPEG yet, and it says so
    assert (table["width"] == 320).all() and (table["height"] == 240).all()
    for t, cut in zip(table["ts"], COLOR_CUTS):
        assert cut <= t < cut + 0.5

    csv = pd.read_csv(s.export("exports/frames.csv", capture=True))  # format from the suffix
    assert len(csv) == len(COLOR_CUTS) and list(csv.columns) == FRAMES_SCHEMA.names
    assert csv["id"].notna().all() and (csv["bytes"] > 0).all()
    assert all((s.dir / p).is_file() for p in csv["path"])

    s.threshold = 0.9  # what the panel's slider sets is what export uses
    high = s.frame_index()
    assert (high["threshold"] == 0.9).all()
    with caplog.at_level("WARNING", logger="cht_lab.session"):
        empty = pd.read_parquet(s.export("none.parquet", threshold=5.0))
    assert empty.empty and list(empty.columns) == FRAMES_SCHEMA.names
    assert "lower the threshold" in caplog.text and "highest is" in caplog.text


def test_thresholds_must_be_finite_and_not_negative(tmp_path):
    s = open_session(make_color_session(tmp_path))
    for bad in (-0.1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="threshold"):
            s.resolve(bad)
    with pytest.raises(ValueError, match="min_gap"):
        s.resolve(0.1, min_gap=-1)
