"""The analysis decode and offline scoring, with real ffmpeg on small synthetic screen recordings."""

from __future__ import annotations

import logging
import math
import re
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from cht_lab.detect.decode import BackendError, analysis_size, build_analysis_args, choose_backend
from cht_lab.detect.offline import score_recording
from cht_lab.detect.reader import AnalysisReader
from cht_lab.detect.decision import DEFAULT_MIN_GAP, select_scenes
from cht_lab.ffmpeg import FfmpegProcess, MediaError, cuda_usable, find_ffmpeg, live_processes, probe
from cht_lab.detect.scoring import AUX_COLUMNS, DEFAULT_METRIC, DEFAULT_THRESHOLDS, METRICS, PYTHON_METRICS
from cht_lab.tuning.matching import scenes as tuning_scenes

from conftest import make_clip

TOLERANCE = 0.5  # seconds between a labeled event and its capture

# --------------------------------------------------------------------------- a synthetic screen share

W, H, FPS = 640, 360, 30
# (time, end, what): every row should give exactly one capture
EVENTS = [
    (2.0, None, "slide change"),
    (4.0, None, "switch to a dark code editor"),
    (5.5, None, "another file in the same editor theme"),
    (6.5, None, "dialog covering a quarter of the screen"),
    (7.5, 8.5, "1 s cross-fade back to the first slide"),
]
DURATION = 10.0
WEBCAM = (W - 96, H - 72, 88, 64)  # changes every frame


def _font() -> ImageFont.ImageFont:
    return ImageFont.load_default()


def _slide(seed: int, bg=(255, 255, 255), ink=(20, 20, 20)) -> Image.Image:
    rng = np.random.default_rng(seed)
    img = Image.new("RGB", (W, H), bg)
    d = ImageDraw.Draw(img)
    d.rectangle((0, 0, W, 40), fill=tuple(int(x) for x in rng.integers(40, 200, 3)))
    d.text((20, 12), f"Slide {seed}: " + " ".join("word" * int(k) for k in rng.integers(1, 3, 4)), fill=(255, 255, 255),
           font=_font())
    for j in range(9):
        n = int(rng.integers(20, 70))
        text = "".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz    "), n))
        d.text((30, 60 + 24 * j), "- " + text, fill=ink, font=_font())
    d.rectangle((380, 80, 600, 250), fill=tuple(int(x) for x in rng.integers(0, 255, 3)))
    return img


def _editor(seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    img = Image.new("RGB", (W, H), (30, 30, 30))
    d = ImageDraw.Draw(img)
    d.rectangle((0, 0, 110, H), fill=(37, 37, 38))
    for j in range(20):
        d.text((8, 20 + 14 * j), f"file_{j}.py", fill=(150, 150, 150), font=_font())
        indent = 4 * int(rng.integers(0, 4))
        code = "".join(rng.choice(list("abcdefghijklmnop_()=:.,  "), int(rng.integers(10, 50))))
        d.text((120, 20 + 14 * j), f"{j + 1:3d}  " + " " * indent + code, fill=(212, 212, 212), font=_font())
    return img


def _dialog(base: Image.Image) -> Image.Image:
    img = base.copy()
    d = ImageDraw.Draw(img)
    x0, y0 = W // 4, H // 4
    d.rectangle((x0, y0, x0 + W // 2, y0 + H // 2), fill=(245, 245, 245), outline=(100, 100, 100))
    d.text((x0 + 20, y0 + 20), "Save changes before closing?", fill=(0, 0, 0), font=_font())
    d.rectangle((x0 + 200, y0 + 140, x0 + 300, y0 + 170), fill=(0, 120, 212))
    return img


def _scene_at(t: float, scenes: dict[str, Image.Image]) -> Image.Image:
    if t < 2.0:
        return scenes["a"]
    if t < 4.0:
        return scenes["b"]
    if t < 5.5:
        return scenes["e1"]
    if t < 6.5:
        return scenes["e2"]
    if t < 7.5:
        return scenes["dialog"]
    if t < 8.5:
        return Image.blend(scenes["dialog"], scenes["a"], (t - 7.5) / 1.0)
    return scenes["a"]


def render_frame(i: int, scenes: dict[str, Image.Image], rng: np.random.Generator, *,
                 events: bool = True) -> np.ndarray:
    t = i / FPS
    img = (_scene_at(t, scenes) if events else scenes["a"]).copy()
    d = ImageDraw.Draw(img)
    # typing: one more character every 2 frames in a notes strip
    typed = "notes: " + "the quick brown fox jumps over the lazy dog " * 3
    d.rectangle((20, H - 40, 520, H - 20), fill=(250, 250, 230))
    d.text((24, H - 36), typed[: 7 + (i // 2) % 90], fill=(0, 0, 0), font=_font())
    # clock ticking every second
    d.rectangle((W - 90, 4, W - 4, 20), fill=(60, 60, 60))
    d.text((W - 86, 6), time.strftime("%H:%M:%S", time.gmtime(3600 * 9 + int(t))), fill=(255, 255, 255), font=_font())
    # cursor gliding around
    cx, cy = int(320 + 200 * math.sin(t * 1.3)), int(180 + 100 * math.cos(t * 0.9))
    d.polygon([(cx, cy), (cx, cy + 16), (cx + 4, cy + 12), (cx + 11, cy + 12)], fill=(0, 0, 0), outline=(255, 255, 255))
    arr = np.asarray(img).copy()
    # webcam overlay: a noisy, moving picture
    x, y, w, h = WEBCAM
    yy, xx = np.mgrid[0:h, 0:w]
    face = 120 + 60 * np.sin((xx + 3 * i) / 7.0) * np.cos((yy - 2 * i) / 5.0)
    cam = np.clip(face[..., None] + rng.normal(0, 12, (h, w, 3)), 0, 255).astype(np.uint8)
    arr[y:y + h, x:x + w] = cam
    return arr


def write_clip(path: Path, frames, n: int, *, crf: int = 30) -> Path:
    """Encode RGB frames like cht's recorder: H.264 (no B-frames, 2 s GOP) in a fragmented MP4."""
    args = ["-hide_banner", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{W}x{H}",
            "-r", str(FPS), "-i", "pipe:0", "-c:v", "libx264", "-preset", "veryfast", "-crf", str(crf), "-bf", "0",
            "-g", str(2 * FPS), "-pix_fmt", "yuv420p", "-movflags", "+frag_keyframe+empty_moov+default_base_moof",
            str(path)]
    proc = FfmpegProcess(args, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, name="test-encode")
    try:
        assert proc.stdin is not None
        for i in range(n):
            proc.stdin.write(frames(i).tobytes())
        proc.stdin.close()
        assert proc.wait(timeout=60) == 0, proc.stderr_tail()
    finally:
        proc.stop()
    return path


@pytest.fixture(scope="session")
def screen_clip(tmp_path_factory) -> Path:
    scenes = {"a": _slide(1), "b": _slide(2), "e1": _editor(3), "e2": _editor(4)}
    scenes["dialog"] = _dialog(scenes["e2"])
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("screen") / "screen.mp4"
    return write_clip(path, lambda i: render_frame(i, scenes, rng), int(DURATION * FPS))


@pytest.fixture(scope="session")
def distractor_clip(tmp_path_factory) -> Path:
    """The same typing, cursor, clock and webcam, on one unchanging slide."""
    scenes = {"a": _slide(1)}
    rng = np.random.default_rng(1)
    path = tmp_path_factory.mktemp("distract") / "distract.mp4"
    return write_clip(path, lambda i: render_frame(i, scenes, rng, events=False), 6 * FPS)


def match_events(ts: np.ndarray, labels: list[tuple[float, float | None, str]],
                 tolerance: float = TOLERANCE) -> tuple[list[int], np.ndarray]:
    """Captures per labeled event (within tolerance of [time, end]) and the captures matching no event."""
    ts = np.asarray(ts, float)
    per_event = []
    matched = np.zeros(len(ts), bool)
    for t, end, _ in labels:
        inside = (ts >= t - tolerance) & (ts <= (end if end is not None else t) + tolerance)
        per_event.append(int(inside.sum()))
        matched |= inside
    return per_event, ts[~matched]


# --------------------------------------------------------------------------- scores


def test_score_recording_gives_a_typed_row_for_every_frame(screen_clip):
    df = score_recording(screen_clip, segment=3, ts_offset=100.0)
    info = probe(screen_clip)
    assert len(df) == info.video.frames
    assert list(df.columns[:5]) == ["segment", "frame_index", "pts", "ts", "score"]
    assert set(PYTHON_METRICS) <= set(df.columns) and set(METRICS) <= set(df.columns) and set(AUX_COLUMNS) <= set(df.columns)
    assert df.dtypes["segment"] == np.int32 and df.dtypes["frame_index"] == np.int64
    assert df.dtypes["pts"] == np.float64 and df.dtypes["ts"] == np.float64
    assert all(df.dtypes[m] == np.float32 for m in METRICS)
    assert (df["segment"] == 3).all()
    assert (df["frame_index"].to_numpy() == np.arange(len(df))).all()
    np.testing.assert_allclose(df["pts"], np.arange(len(df)) / FPS, atol=1e-6)
    np.testing.assert_allclose(df["ts"], df["pts"] + 100.0)
    assert df[list(METRICS)].notna().all().all()
    assert df.attrs["backend"] == "cpu" and df.attrs["backend_reason"]
    assert (df.attrs["width"], df.attrs["height"]) == (W, H)


def _select_pts(path: Path, plan_args: list[str], threshold: float) -> np.ndarray:
    """pts (µs) of the frames that ffmpeg's own `select='gt(scene,T)'` keeps on the same analysis frames."""
    graph = plan_args[plan_args.index("-filter_complex") + 1]
    chain = graph.split("select=")[0].rsplit(";", 1)[0]  # the downscale chain up to settb, as in the plan
    label = re.search(r"\[(\w+)\]$", chain).group(1)
    graph = f"{chain};[{label}]select='gt(scene\\,{threshold})'[out]"
    out = subprocess.run([find_ffmpeg(), "-hide_banner", "-nostdin", "-loglevel", "error", "-i", str(path),
                          "-filter_complex", graph, "-map", "[out]", "-fps_mode", "passthrough", "-f", "framecrc", "-"],
                         capture_output=True, text=True, check=True, timeout=60).stdout
    num, den = map(int, re.search(r"#tb 0: (\d+)/(\d+)", out).groups())
    pts = [int(line.split(",")[2]) for line in out.splitlines() if line and not line.startswith("#")]
    return np.array([round(p * num * 1_000_000 / den) for p in pts], np.int64)  # microseconds


def test_score_column_is_ffmpeg_select_scene_on_the_analysis_frames(screen_clip):
    df = score_recording(screen_clip)
    info = probe(screen_clip).video
    plan = build_analysis_args(str(screen_clip), backend="cpu", src_width=info.width, src_height=info.height)
    plan.cleanup()
    scores = df["score"].to_numpy(np.float64)
    assert scores.max() > 0.1 and (scores > 0).sum() > 5  # the clip has real scene changes
    for threshold in (0.002, 0.01, 0.05, 0.2):
        assert np.abs(scores - threshold).min() > 2e-6, "pick thresholds away from the printed scores"
        ours = np.round(df["pts"].to_numpy()[scores > threshold] * 1e6).astype(np.int64)
        theirs = _select_pts(screen_clip, plan.args, threshold)
        np.testing.assert_array_equal(ours, theirs)


def test_default_metric_captures_each_event_once_and_ignores_distractors(screen_clip):
    df = score_recording(screen_clip)
    found = tuning_scenes(df, DEFAULT_THRESHOLDS[DEFAULT_METRIC], metric=DEFAULT_METRIC, min_gap=DEFAULT_MIN_GAP)
    per_event, stray = match_events(found["ts"].to_numpy(), EVENTS)  # at their onsets
    assert per_event == [1] * len(EVENTS), dict(zip([e[2] for e in EVENTS], per_event))
    assert stray.size == 0, f"captures matching no event at {stray}"


def test_typing_cursor_clock_and_webcam_alone_capture_nothing(distractor_clip):
    df = score_recording(distractor_clip)
    threshold = DEFAULT_THRESHOLDS[DEFAULT_METRIC]
    captures = select_scenes(df["ts"], df[DEFAULT_METRIC], threshold)
    assert captures.size == 0, df["ts"].to_numpy()[captures]
    # and not by a narrow margin: the busiest moment stays well below the threshold
    assert df[DEFAULT_METRIC].max() < threshold / 2


def test_slide_changes_score_high_and_distractors_low(screen_clip, distractor_clip):
    df = score_recording(screen_clip)
    calm = score_recording(distractor_clip)
    metric = df[DEFAULT_METRIC].to_numpy()
    for t, end, what in EVENTS:
        window = (df["ts"] >= t) & (df["ts"] <= (end or t) + TOLERANCE)
        assert metric[window].max() >= 1.5 * calm[DEFAULT_METRIC].max(), what


# Every labeled sample at the defaults: tests/test_detection.py.


# --------------------------------------------------------------------------- the plan and the reader


def test_analysis_size_keeps_aspect_and_even_height():
    assert analysis_size(1920, 1080) == (320, 180)
    assert analysis_size(1280, 720) == (320, 180)
    w, h = analysis_size(1366, 768)
    assert w == 320 and h % 2 == 0 and abs(h - 320 * 768 / 1366) <= 1
    with pytest.raises(ValueError):
        analysis_size(0, 10)


def test_full_resolution_output_is_frame_accurate_and_jpeg_ready(tmp_path):
    clip = make_clip(tmp_path / "src.mp4", seconds=1.0, size="320x240", audio=False)  # moves every frame
    plan = build_analysis_args(["-i", str(clip)], backend="cpu", src_width=320, src_height=240, full_res=True)
    assert plan.full_res is not None and plan.full_res.pix_fmt == "yuv420p"
    assert plan.full_res.frame_bytes == 320 * 240 * 3 // 2
    grays, fulls = [], []
    with AnalysisReader(plan, path=clip) as reader:
        for fa in reader:
            full = reader.full_frame(fa.frame_index)
            assert full is not None and full.frame_index == fa.frame_index
            grays.append(fa.gray.astype(np.float64))
            fulls.append(full)
    assert len(grays) == 30 and not live_processes()
    # each full-res frame is the analysis frame of the same index (testsrc2 moves every frame)
    for i, full in enumerate(fulls):
        y, _, _ = full.planes()
        small = np.asarray(Image.fromarray(y).resize(grays[i].shape[::-1], Image.Resampling.BOX), np.float64)
        small = small * 219 / 255 + 16  # full range (JPEG) -> the analysis frames' video range
        dists = {j: np.abs(small - grays[j]).mean() for j in (i - 1, i, i + 1) if 0 <= j < len(grays)}
        assert min(dists, key=dists.get) == i, dists
    # colours: matches ffmpeg's own RGB decode of that frame
    ref = tmp_path / "ref.png"
    subprocess.run([find_ffmpeg(), "-hide_banner", "-loglevel", "error", "-i", str(clip), "-vf",
                    "select=eq(n\\,12)", "-frames:v", "1", str(ref)], check=True, timeout=30)
    want = np.asarray(Image.open(ref).convert("RGB"), np.float64)
    got = np.asarray(fulls[12].to_image().convert("RGB"), np.float64)
    assert got.shape == want.shape and np.abs(got - want).mean() < 4.0


def test_stopping_iteration_early_stops_ffmpeg(screen_clip):
    info = probe(screen_clip).video
    plan = build_analysis_args(str(screen_clip), backend="cpu", src_width=info.width, src_height=info.height)
    reader = AnalysisReader(plan, path=screen_clip)
    t0 = time.monotonic()
    for fa in reader:
        if fa.frame_index == 5:
            break
    assert time.monotonic() - t0 < 10 and not live_processes()
    assert not plan.tmpdir.exists()


def _blocked_writing(pid: int) -> bool:
    """Whether a thread of process `pid` sleeps in a pipe write (Linux /proc): an output is full."""
    for wchan in Path(f"/proc/{pid}/task").glob("*/wchan"):
        try:
            if "pipe_write" in wchan.read_text():
                return True
        except OSError:  # the thread ended meanwhile
            pass
    return False


def test_close_ends_an_ffmpeg_blocked_on_its_outputs_with_sigterm(caplog):
    """The consumer stopped reading, so ffmpeg sits in write() on a full output (the full-res FIFO,
    stdout). close() must still end it on SIGTERM by draining until it exits: it used to wait out
    the 2 s timeout and SIGKILL it ("ignored SIGTERM for 2.0s; killing it") on every live stop."""
    if not Path("/proc/self/task").is_dir():
        pytest.skip("needs Linux /proc to see that ffmpeg is blocked")
    plan = build_analysis_args(["-f", "lavfi", "-i", "testsrc2=s=640x480:r=30"], backend="cpu", src_width=640,
                               src_height=480, full_res=True)
    reader = AnalysisReader(plan, path="testsrc2", reuse=True)
    frames = iter(reader)
    for _ in range(3):
        next(frames)
    pid = reader.process.pid
    deadline = time.monotonic() + 20
    while not _blocked_writing(pid):  # an endless source: it fills every output within milliseconds
        assert time.monotonic() < deadline, "ffmpeg never blocked on its outputs"
        time.sleep(0.02)
    with caplog.at_level(logging.WARNING, logger="cht_lab.ffmpeg"):
        reader.close()
    assert reader.process.returncode not in (None, -signal.SIGKILL), reader.process.returncode
    assert "ignored SIGTERM" not in caplog.text
    frames.close()
    assert not live_processes() and not plan.tmpdir.exists()


def test_build_analysis_args_rejects_auto_and_inputs_without_i():
    with pytest.raises(BackendError, match="choose_backend"):
        build_analysis_args("x.mp4", backend="auto", src_width=640, src_height=360)
    with pytest.raises(ValueError, match="-i"):
        build_analysis_args(["x.mp4"], backend="cpu", src_width=640, src_height=360)


# --------------------------------------------------------------------------- backends


def test_choose_backend_auto_falls_back_to_cpu_with_a_reason():
    ok, why = cuda_usable()
    backend, reason = choose_backend("auto")
    if ok:
        assert backend == "cuda"
    else:
        assert backend == "cpu" and "CUDA" in reason and why in reason
    assert choose_backend("cpu")[0] == "cpu"


def test_choose_backend_cuda_raises_a_clear_error_without_cuda():
    ok, why = cuda_usable()
    if ok:
        pytest.skip("CUDA is usable here")
    with pytest.raises(BackendError, match="cuda") as info:
        choose_backend("cuda")
    assert why in str(info.value)
    with pytest.raises(BackendError, match="unknown backend"):
        choose_backend("opencl")


@pytest.mark.skipif(not cuda_usable()[0], reason="needs a usable CUDA device")
def test_cuda_scores_agree_with_cpu(screen_clip):
    cpu = score_recording(screen_clip, backend="cpu")
    gpu = score_recording(screen_clip, backend="cuda")
    assert gpu.attrs["backend"] == "cuda" and len(gpu) == len(cpu)
    for df in (cpu, gpu):
        pos = select_scenes(df["ts"], df[DEFAULT_METRIC], DEFAULT_THRESHOLDS[DEFAULT_METRIC])
        per_event, stray = match_events(df["ts"].to_numpy()[pos], EVENTS)
        assert per_event == [1] * len(EVENTS) and stray.size == 0
    assert np.corrcoef(cpu["score"], gpu["score"])[0, 1] > 0.95


# --------------------------------------------------------------------------- fast decode (offline, opt-in)


FAST_SAMPLE = "darkdark"  # 300 frames of 1080p: two dark editor themes 3.6 gray levels apart, typing


def test_fast_decode_is_opt_in_keeps_every_frame_and_the_captures(monkeypatch):
    """score_recording(fast_decode=True) skips H.264's deblocking filter: off unless asked for (the
    full decode is what a live session sees), the same frames, the metric moved but not the captures
    on this sample (benchmarks/throughput.py --check-f1 compares every sample)."""
    from cht_lab import layout
    from cht_lab.detect import offline
    from cht_lab.tools.samples import SAMPLES, sample_dir

    if FAST_SAMPLE not in SAMPLES:
        pytest.skip(f"no sample {FAST_SAMPLE!r} in this version")
    d = sample_dir(FAST_SAMPLE, generate_missing=False)
    segments = layout.discover_segments(d)
    if not segments:
        pytest.skip(f"sample {FAST_SAMPLE!r} is not generated in {d} (run `cht-lab samples` to create it)")
    inputs: list[object] = []
    build = offline.build_analysis_args
    monkeypatch.setattr(offline, "build_analysis_args",
                        lambda source, **kw: inputs.append(source) or build(source, **kw))
    full = score_recording(segments[0].path, backend="cpu")
    fast = score_recording(segments[0].path, backend="cpu", fast_decode=True)
    assert "-skip_loop_filter" not in list(inputs[0]) and "-skip_loop_filter" in list(inputs[1])
    assert len(fast) == len(full) > 0
    np.testing.assert_array_equal(fast["pts"], full["pts"])
    change = np.abs(fast[DEFAULT_METRIC].to_numpy(float) - full[DEFAULT_METRIC].to_numpy(float)).max()
    assert 0 < change < 0.05, change  # another decode, close to the full one
    threshold = DEFAULT_THRESHOLDS[DEFAULT_METRIC]
    np.testing.assert_array_equal(select_scenes(fast["ts"], fast[DEFAULT_METRIC], threshold),
                                  select_scenes(full["ts"], full[DEFAULT_METRIC], threshold))


# --------------------------------------------------------------------------- bad inputs


def _bad_inputs(tmp_path: Path) -> dict[str, Path]:
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 50)
    audio = tmp_path / "talk.m4a"
    subprocess.run([find_ffmpeg(), "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", "sine=d=1", "-c:a", "aac",
                    str(audio)], check=True, timeout=30)
    whole = make_clip(tmp_path / "whole.mp4", seconds=2.0, audio=False, fragmented=False)
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])  # moov is at the end: lost
    return {"missing": tmp_path / "missing.mp4", "text": text, "audio-only": audio, "truncated": truncated}


@pytest.mark.parametrize("kind", ["missing", "text", "audio-only", "truncated"])
def test_bad_input_raises_media_error_naming_the_file_quickly(tmp_path, kind):
    path = _bad_inputs(tmp_path)[kind]
    t0 = time.monotonic()
    with pytest.raises(MediaError) as info:
        score_recording(path)
    assert time.monotonic() - t0 < 5.0
    assert info.value.path == str(path) and str(path) in str(info.value) and info.value.reason
    assert not live_processes()


def test_truncated_fragmented_recording_scores_its_complete_fragments(tmp_path):
    whole = make_clip(tmp_path / "frag.mp4", seconds=3.0, audio=False, fragmented=True)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[: int(whole.stat().st_size * 0.6)])
    full, part = score_recording(whole), score_recording(cut)
    assert 0 < len(part) < len(full)
    np.testing.assert_allclose(part["pts"], full["pts"][: len(part)])
    assert not live_processes()
