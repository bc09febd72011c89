"""Frame capture: JPEGs of exactly the requested frames, at source resolution, written atomically."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cht_lab.detect.capture import CaptureError, capture_frames, save_jpeg
from cht_lab.ffmpeg import MediaError, find_ffmpeg, live_processes

from conftest import make_clip


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    # testsrc2 moves every frame: a neighbouring frame would not match the reference
    return make_clip(tmp_path_factory.mktemp("cap") / "clip.mp4", seconds=3.0, size="480x270", audio=True)


def reference_frame(path: Path, n: int, out: Path) -> np.ndarray:
    subprocess.run([find_ffmpeg(), "-hide_banner", "-loglevel", "error", "-y", "-i", str(path), "-vf",
                    f"select=eq(n\\,{n})", "-fps_mode", "passthrough", "-frames:v", "1", str(out)],
                   check=True, timeout=60)
    return np.asarray(Image.open(out).convert("RGB"), np.float64)


def test_capture_frames_match_a_reference_decode_at_source_resolution(clip, tmp_path):
    wanted = [45, 0, 89, 17]
    outs = [tmp_path / f"F{i}.jpg" for i in range(len(wanted))]
    rows = capture_frames(clip, wanted, outs, quality=90)
    assert [r["frame_index"] for r in rows] == wanted
    for n, out, row in zip(wanted, outs, rows):
        img = Image.open(out)
        assert img.format == "JPEG" and img.size == (480, 270) == (row["width"], row["height"])
        assert row["bytes"] == out.stat().st_size and row["path"] == str(out)
        got = np.asarray(img.convert("RGB"), np.float64)
        ref = reference_frame(clip, n, tmp_path / f"ref{n}.png")
        err = np.abs(got - ref).mean()
        assert err < 4.0, f"frame {n}: mean error {err:.2f}"
        if n > 0:  # and it is not the neighbouring frame
            assert err < np.abs(got - reference_frame(clip, n - 1, tmp_path / f"ref{n - 1}.png")).mean()
    assert not list(tmp_path.glob(".*.tmp")) and not live_processes()


def test_the_same_frame_twice_and_an_empty_request(clip, tmp_path):
    rows = capture_frames(clip, [10, 10], [tmp_path / "a.jpg", tmp_path / "b.jpg"])
    assert (tmp_path / "a.jpg").read_bytes() == (tmp_path / "b.jpg").read_bytes()
    assert rows[0]["bytes"] == rows[1]["bytes"]
    assert capture_frames(clip, [], []) == []


def test_frame_past_the_end_is_a_clear_error(clip, tmp_path):
    with pytest.raises(MediaError, match="past the end") as info:
        capture_frames(clip, [5, 500], [tmp_path / "a.jpg", tmp_path / "b.jpg"])
    assert info.value.path == str(clip)
    assert not live_processes()


def test_bad_arguments_are_refused(clip, tmp_path):
    with pytest.raises(CaptureError, match="output paths"):
        capture_frames(clip, [1, 2], [tmp_path / "a.jpg"])
    with pytest.raises(CaptureError, match=">= 0"):
        capture_frames(clip, [-1], [tmp_path / "a.jpg"])
    with pytest.raises(CaptureError, match="distinct"):
        capture_frames(clip, [1, 2], [tmp_path / "a.jpg", tmp_path / "a.jpg"])


@pytest.mark.parametrize("kind", ["missing", "text", "audio-only"])
def test_bad_input_raises_media_error_naming_the_file(tmp_path, kind):
    path = tmp_path / f"{kind}.mp4"
    if kind == "text":
        path.write_text("not a video\n" * 20)
    elif kind == "audio-only":
        subprocess.run([find_ffmpeg(), "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", "sine=d=1",
                        "-c:a", "aac", str(path)], check=True, timeout=30)
    t0 = time.monotonic()
    with pytest.raises(MediaError) as info:
        capture_frames(path, [0], [tmp_path / "out.jpg"])
    assert time.monotonic() - t0 < 5.0 and info.value.path == str(path)
    assert not (tmp_path / "out.jpg").exists() and not live_processes()


def test_save_jpeg_accepts_arrays_images_and_bytes_atomically(tmp_path):
    rgb = np.zeros((60, 80, 3), np.uint8)
    rgb[:, :40] = (255, 0, 0)
    n = save_jpeg(rgb, tmp_path / "rgb.jpg")
    assert n == (tmp_path / "rgb.jpg").stat().st_size
    back = np.asarray(Image.open(tmp_path / "rgb.jpg").convert("RGB"), np.int16)
    assert back.shape == (60, 80, 3) and abs(int(back[30, 10, 0]) - 255) < 10 and back[30, 70].max() < 10
    gray = np.full((40, 50), 128, np.uint8)
    assert save_jpeg(gray, tmp_path / "sub" / "gray.jpg", quality=50) > 0  # creates the directory
    assert Image.open(tmp_path / "sub" / "gray.jpg").mode == "L"
    save_jpeg(Image.fromarray(rgb), str(tmp_path / "pil.jpg"))
    data = (tmp_path / "pil.jpg").read_bytes()
    assert save_jpeg(tmp_path / "copy.jpg", data) == len(data)  # (path, bytes) order, as the detector calls it
    assert (tmp_path / "copy.jpg").read_bytes() == data
    assert not list(tmp_path.rglob("*.tmp"))
    with pytest.raises(CaptureError):
        save_jpeg(np.zeros((4, 4), np.float64), tmp_path / "bad.jpg")
    assert not (tmp_path / "bad.jpg").exists()


def test_save_jpeg_replaces_an_existing_file_in_one_step(tmp_path):
    target = tmp_path / "F0001.jpg"
    save_jpeg(np.zeros((20, 20, 3), np.uint8), target)
    first = target.read_bytes()
    save_jpeg(np.full((20, 20, 3), 255, np.uint8), target)
    assert target.read_bytes() != first and Image.open(target).getpixel((5, 5))[0] > 240
