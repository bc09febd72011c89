"""Offline scoring in keyframe-aligned chunks decoded side by side: the same table as one decode."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from conftest import make_clip

from cht_lab.detect import chunks
from cht_lab.detect.chunks import ChunkedReader, chunk_input, plan_chunks
from cht_lab.detect.decode import build_analysis_args
from cht_lab.detect.offline import score_recording
from cht_lab.ffmpeg import live_processes, video_header, video_packets

SECONDS = 12.0  # 360 frames at 30 fps, a keyframe every second


@pytest.fixture(scope="module")
def moving_clip(tmp_path_factory) -> Path:
    """testsrc2 moves every frame, so every scene score (the chunk boundaries' too) is non-zero."""
    return make_clip(tmp_path_factory.mktemp("chunks") / "moving.mp4", seconds=SECONDS, audio=True)


@pytest.fixture
def small_chunks(monkeypatch):
    monkeypatch.setattr(chunks, "CHUNK_FRAMES", 100)
    monkeypatch.setattr(chunks, "MIN_CHUNK_FRAMES", 60)


def test_chunks_start_at_keyframes_and_cover_every_frame(moving_clip, small_chunks):
    plan = plan_chunks(moving_clip, workers=2)
    assert len(plan) == 4  # a multiple of the workers, about CHUNK_FRAMES each
    packets = video_packets(moving_clip)
    keys = [p.pts for p in packets if p.key]
    assert [c.start for c in plan] == [min(k for k in keys if k >= t - 1e-6) for t in (0.0, 3.0, 6.0, 9.0)]
    assert [c.end for c in plan] == [c.start for c in plan[1:]] + [None]
    assert sum(c.frames for c in plan) == len(packets) == 360


def test_chunked_scoring_equals_one_decode(moving_clip, small_chunks):
    one = score_recording(moving_clip, backend="cpu", workers=1)
    chunked = score_recording(moving_clip, backend="cpu", workers=2)
    assert len(one) == 360
    pd.testing.assert_frame_equal(chunked, one, check_exact=True)  # pixels, times and ffmpeg's scene score
    assert (one["score"].iloc[1:] > 0).all()  # the boundaries' scene scores were there to get wrong
    assert chunked.attrs["error"] is None
    assert not live_processes()


def test_a_chunk_alone_does_not_know_its_first_scene_scores(moving_clip, small_chunks):
    """Why chunks overlap: decoded from its keyframe, a chunk's first frames have no history."""
    plan = plan_chunks(moving_clip, workers=2)
    v = video_header(moving_clip)
    reader = ChunkedReader(moving_clip, plan[1:2], lambda args: build_analysis_args(
        args, backend="cpu", src_width=v.width, src_height=v.height, threads=1), workers=1)
    alone = [(fa.pts, fa.scene) for fa in reader]
    one = score_recording(moving_clip, backend="cpu", workers=1).set_index("pts")["score"]
    assert alone[0][0] == pytest.approx(plan[1].start, abs=1e-6)
    assert alone[0][1] != pytest.approx(float(one[alone[0][0]]))
    assert [round(s, 6) for _, s in alone[2:10]] == [round(float(one[p]), 6) for p, _ in alone[2:10]]


def test_stopping_early_stops_every_decode(moving_clip, small_chunks):
    v = video_header(moving_clip)
    reader = ChunkedReader(moving_clip, plan_chunks(moving_clip, workers=2), lambda args: build_analysis_args(
        args, backend="cpu", src_width=v.width, src_height=v.height, threads=1), workers=2)
    frames = iter(reader)
    got = [next(frames) for _ in range(10)]
    frames.close()
    assert [fa.frame_index for fa in got] == list(range(10))
    assert not live_processes()


def test_a_truncated_recording_scores_the_same_frames_chunked(moving_clip, small_chunks, tmp_path):
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(moving_clip.read_bytes()[: int(moving_clip.stat().st_size * 0.7)])
    assert len(plan_chunks(cut, workers=2)) > 1
    one = score_recording(cut, backend="cpu", workers=1)
    chunked = score_recording(cut, backend="cpu", workers=2)
    assert 0 < len(chunked) < 360
    pd.testing.assert_frame_equal(chunked, one, check_exact=True)


@pytest.mark.parametrize("kind", ["b-frames", "offset start", "short", "one worker"])
def test_recordings_that_cannot_be_cut_exactly_are_decoded_in_one_piece(tmp_path, small_chunks, kind):
    extra = ["-bf", "2"] if kind == "b-frames" else []
    name = "clip.ts" if kind == "offset start" else "clip.mp4"  # MPEG-TS timestamps start at 1.4 s
    clip = make_clip(tmp_path / name, seconds=2.0 if kind == "short" else SECONDS, audio=False, extra=extra,
                     fragmented=kind != "offset start")
    plan = plan_chunks(clip, workers=1 if kind == "one worker" else 2)
    assert len(plan) == 1 and plan[0].end is None
    assert chunk_input(clip, plan[0]) == ["-copyts", "-i", str(clip)]
