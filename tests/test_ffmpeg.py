"""ffmpeg discovery, capabilities, child-process hygiene and ffprobe-free probing (real ffmpeg)."""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from cht_lab import ffmpeg as ff
from conftest import make_clip


def test_bundled_ffmpeg_is_found_and_reports_capabilities():
    exe = ff.find_ffmpeg()
    assert os.access(exe, os.X_OK)
    info = ff.ffmpeg_info()
    assert info.path == exe
    assert info.version[0].isdigit() or info.version.startswith("n")
    assert info.has_scdet, "scdet filter is needed for the reference scene score"
    assert "select" in info.filters and "scale" in info.filters
    assert "libx264" in info.encoders and "aac" in info.encoders
    usable, reason = ff.cuda_usable()
    assert isinstance(usable, bool) and reason  # a reason either way, never a silent False


def test_override_env_var_wins(monkeypatch, tmp_path):
    real = ff.find_ffmpeg()
    link = tmp_path / "my-ffmpeg"
    link.symlink_to(real)
    monkeypatch.setenv(ff.ENV_VAR, str(link))
    assert ff.find_ffmpeg() == str(link)
    assert ff.ffmpeg_info().path == str(link)


def test_bad_override_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv(ff.ENV_VAR, str(tmp_path / "nope"))
    with pytest.raises(ff.FfmpegNotFoundError, match="CHT_LAB_FFMPEG"):
        ff.find_ffmpeg()


def test_no_ffmpeg_anywhere_is_a_clear_error(monkeypatch):
    import imageio_ffmpeg

    monkeypatch.delenv(ff.ENV_VAR, raising=False)
    monkeypatch.setattr(imageio_ffmpeg, "get_ffmpeg_exe", lambda: (_ for _ in ()).throw(RuntimeError("none")))
    monkeypatch.setenv("PATH", "")
    with pytest.raises(ff.FfmpegNotFoundError, match="imageio-ffmpeg"):
        ff.find_ffmpeg()


def test_probe_fragmented_recording(tmp_path):
    clip = make_clip(tmp_path / "a.mp4", seconds=2.0, size="640x360", fps=25)
    info = ff.probe(clip)
    assert info.has_video and info.has_audio
    assert (info.video.width, info.video.height) == (640, 360)
    assert info.video.codec == "h264" and info.audio.codec == "aac"
    assert info.video.fps == pytest.approx(25)
    assert info.video.frames == 50
    assert info.video.duration == pytest.approx(2.0, abs=1 / 25)


def test_probe_video_only_and_audio_only(tmp_path):
    v = ff.probe(make_clip(tmp_path / "v.mp4", audio=False))
    assert v.has_video and not v.has_audio
    a = tmp_path / "a.aac"
    subprocess.run([ff.find_ffmpeg(), "-v", "error", "-f", "lavfi", "-i", "sine=d=1.5:r=16000",
                    "-c:a", "aac", str(a)], check=True, timeout=30)
    info = ff.probe(a)
    assert info.has_audio and not info.has_video
    assert info.audio.sample_rate == 16000
    assert info.duration == pytest.approx(1.5, abs=2 * 1024 / 16000)  # ADTS counts whole AAC frames


def test_probe_growing_fragmented_mp4(tmp_path):
    """While another ffmpeg is still writing, probe returns the readable part, not an error."""
    out = tmp_path / "growing.mp4"
    writer = ff.FfmpegProcess(
        ["-hide_banner", "-loglevel", "error", "-nostdin", "-re", "-f", "lavfi", "-i",
         "testsrc2=s=320x240:r=30:d=30", "-c:v", "libx264", "-preset", "ultrafast", "-g", "15",
         "-movflags", "+frag_keyframe+empty_moov+default_base_moof", "-f", "mp4", str(out)],
        stdout=subprocess.DEVNULL, name="writer")
    try:
        durations = []
        deadline = time.monotonic() + 20
        while len(durations) < 3 and time.monotonic() < deadline:
            if out.exists() and out.stat().st_size > 2000:
                try:
                    d = ff.probe(out).duration
                except ff.MediaError:
                    d = None  # only the empty moov so far
                if d and (not durations or d > durations[-1]):
                    durations.append(d)
            time.sleep(0.2)  # pacing of the poll, not synchronisation: the loop checks the state
        assert writer.running(), "the writer must still be writing while we probe"
        assert len(durations) >= 2 and durations == sorted(durations)
        assert durations[-1] < 30
    finally:
        writer.stop()
    assert not writer.running()


@pytest.mark.parametrize("case", ["missing", "directory", "empty", "text", "truncated"])
def test_bad_inputs_name_the_file_and_reason_quickly(tmp_path, case):
    if case == "missing":
        path, reason = tmp_path / "missing.mp4", "no such file"
    elif case == "directory":
        path, reason = tmp_path, "directory"
    elif case == "empty":
        path, reason = tmp_path / "empty.mp4", "empty"
        path.write_bytes(b"")
    elif case == "text":
        path, reason = tmp_path / "notes.mp4", "not a media file"
        path.write_text("this is not a video\n" * 50)
    else:
        full = make_clip(tmp_path / "full.mp4", seconds=2.0, fragmented=False)
        path, reason = tmp_path / "truncated.mp4", "truncated"
        path.write_bytes(full.read_bytes()[:-4000][:20000])  # regular MP4: moov is at the end, now gone
    t0 = time.monotonic()
    with pytest.raises(ff.MediaError) as err:
        ff.probe(path)
    assert time.monotonic() - t0 < 5
    assert str(path) in str(err.value)
    assert reason in str(err.value)


def test_stop_reaps_a_process_that_waits_forever():
    proc = ff.FfmpegProcess(["-hide_banner", "-f", "s16le", "-i", "pipe:0", "-f", "null", "-"],
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    assert proc.running() and proc in ff.live_processes()
    proc.stop(timeout=2)
    assert proc.returncode is not None
    assert proc not in ff.live_processes()
    proc.stop()  # idempotent


def test_stop_kills_after_timeout_when_sigterm_is_ignored(tmp_path):
    """A child that ignores SIGTERM is killed after the timeout and reaped."""
    import sys

    code = "import signal,sys,time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(60)"
    proc = ff.FfmpegProcess([sys.executable, "-c", code], stdout=subprocess.PIPE, name="stubborn")
    assert proc.stdout.readline().strip() == b"ready"
    t0 = time.monotonic()
    proc.stop(timeout=0.5)
    assert time.monotonic() - t0 < 5
    assert proc.returncode is not None and proc.returncode < 0


def test_error_summary_names_the_reason(tmp_path):
    proc = ff.FfmpegProcess(["-hide_banner", "-i", str(tmp_path / "nope.mp4"), "-f", "null", "-"],
                            stdout=subprocess.DEVNULL)
    proc.wait(timeout=10)
    assert "No such file" in proc.error_summary()
    proc.stop()


def test_run_ffmpeg_failure_names_path(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_text("garbage")
    with pytest.raises(ff.MediaError, match="bad.mp4"):
        ff.run_ffmpeg(["-i", str(bad), "-f", "null", "-"], path=bad, timeout=10)
