"""The bundled sample sessions: labels match the decoded pictures, files are what cht records,
generation is deterministic. Real ffmpeg throughout."""

from __future__ import annotations

import dataclasses
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cht_lab import layout
from cht_lab.ffmpeg import FfmpegProcess, find_ffmpeg, live_processes, probe
from cht_lab.tools.samples import bundled, draw, render
from cht_lab.tools.samples.audio import speech_like_audio
from cht_lab.tools.samples.bundled import SAMPLES
from cht_lab.tools.samples.draw import SampleError, SampleSpec
from cht_lab.tools.samples.slides import SlidesScreen

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data" / "samples"

AW, AH, BLOCK = 320, 180, 16  # analysis frames: small pictures, 20x11 blocks of 16x16
NOISE_FLOOR = 5.0  # a block "changed" when its mean absolute difference exceeds this (gray levels); the
#                   re-encoded picture at each keyframe moves text blocks by up to ~4
SHIFT_FLOOR = 2.0  # ... or, flat (std < FLAT), its mean moves by this much (a dark theme 3 gray levels brighter)
FLAT = 2.0
CHROMA_FLOOR = 6.0  # ... or its mean |U| + |V| difference exceeds this (a colour-only change keeps the luma)
CUT_MIN = {"cut": 0.15, "partial": 0.04}  # a labeled cut / partial (a tile, a dialog) changes at least this
#                                            fraction of the (non-distractor) blocks
QUIET_MAX = 0.05  # any other frame changes at most this fraction
SYNTHETIC = [name for name, spec in SAMPLES.items() if spec.screen != "recorded"]  # recorded: test_real_samples


# --------------------------------------------------------------------------- decoding helpers


def yuv_frames(path: Path, width: int = AW, height: int = AH):
    """Yield every decoded frame of `path` as small (Y, U, V) planes (uint8; U, V at half size)."""
    args = [find_ffmpeg(), "-hide_banner", "-loglevel", "error", "-nostdin", "-i", str(path), "-map", "0:v:0",
            "-vf", f"scale={width}:{height}:flags=area,format=yuv420p", "-f", "rawvideo", "pipe:1"]
    n = width * height
    size = n * 3 // 2
    with FfmpegProcess(args, name="test-decode") as proc:
        assert proc.stdout is not None
        while True:
            buf = bytearray(size)
            view, got = memoryview(buf), 0
            while got < size:
                k = proc.stdout.readinto(view[got:])
                if not k:
                    break
                got += k
            if got < size:
                assert got == 0, f"{path}: truncated frame ({got} of {size} bytes)"
                break
            a = np.frombuffer(buf, np.uint8)
            yield (a[:n].reshape(height, width), a[n: n + n // 4].reshape(height // 2, width // 2),
                   a[n + n // 4:].reshape(height // 2, width // 2))
        assert proc.wait(timeout=30) == 0, proc.error_summary()


def gray_frames(path: Path, width: int = AW, height: int = AH):
    """Yield every decoded frame of `path` as a small gray picture (uint8, height x width)."""
    for y, _, _ in yuv_frames(path, width, height):
        yield y


def changed_blocks(prev: tuple[np.ndarray, ...], cur: tuple[np.ndarray, ...], ny: int, nx: int) -> np.ndarray:
    """Blocks that changed between two (Y, U, V) pictures: mean |dY| > NOISE_FLOOR, a flat block whose
    mean moved by SHIFT_FLOOR, or mean |dU| + |dV| > CHROMA_FLOOR."""
    a, b = (x.astype(np.int16) for x in (prev[0], cur[0]))
    yb = (slice(0, ny * BLOCK), slice(0, nx * BLOCK))
    d = np.abs(b - a)[yb].reshape(ny, BLOCK, nx, BLOCK).mean(axis=(1, 3))
    shift = np.abs((b - a)[yb].reshape(ny, BLOCK, nx, BLOCK).mean(axis=(1, 3)))
    flat = a[yb].reshape(ny, BLOCK, nx, BLOCK).std(axis=(1, 3)) < FLAT
    hb = BLOCK // 2
    cb = (slice(0, ny * hb), slice(0, nx * hb))
    chroma = sum(np.abs(c1.astype(np.int16) - c0)[cb].reshape(ny, hb, nx, hb).mean(axis=(1, 3))
                 for c0, c1 in zip(prev[1:], cur[1:]))
    return (d > NOISE_FLOOR) | (flat & (shift > SHIFT_FLOOR)) | (chroma > CHROMA_FLOOR)


def block_mask(spec: SampleSpec, rects: list[tuple[int, int, int, int]], width: int = AW,
               height: int = AH) -> np.ndarray:
    """True for analysis blocks that touch none of `rects` (given in the sample's pixels)."""
    ny, nx = height // BLOCK, width // BLOCK
    mask = np.ones((ny, nx), bool)
    sx, sy = width / spec.width, height / spec.height
    for x, y, w, h in rects:
        x0, x1 = int((x * sx - 1) // BLOCK), int((x + w) * sx + 1) // BLOCK
        y0, y1 = int((y * sy - 1) // BLOCK), int((y + h) * sy + 1) // BLOCK
        mask[max(0, y0): y1 + 1, max(0, x0): x1 + 1] = False
    return mask


def pixel_box(spec: SampleSpec, rect: tuple[int, int, int, int], width: int = AW,
              height: int = AH) -> tuple[slice, slice]:
    sx, sy = width / spec.width, height / spec.height
    x, y, w, h = rect
    return (slice(int(y * sy), max(int(y * sy) + 1, int(np.ceil((y + h) * sy)))),
            slice(int(x * sx), max(int(x * sx) + 1, int(np.ceil((x + w) * sx)))))


@dataclass
class Analysis:
    spec: SampleSpec
    frac: np.ndarray  # per global frame: fraction of non-distractor blocks that changed (NaN: no predecessor)
    mad: np.ndarray  # per global frame: mean absolute difference over the non-distractor pixels
    distractor_change: dict[str, np.ndarray]  # per distractor, per frame: mean abs diff inside its rect
    kept: dict[int, np.ndarray] = field(default_factory=dict)  # frames kept for gradual checks
    decoded: int = 0


def event_frames(spec: SampleSpec) -> list[tuple[int, int, str]]:
    """(first, last) frame of each labeled event and its kind."""
    out = []
    for e in spec.active_events():
        f = int(round(e.time * spec.fps))
        out.append((f, int(round(e.end * spec.fps)) if e.end is not None else f, e.kind))
    return out


def roaming(spec: SampleSpec) -> np.ndarray:
    """Per frame: True where a distractor without a rectangle (a small scroll, a film) changes the picture."""
    out = np.zeros(spec.frame_count, bool)
    for start, end, _ in spec.roaming:
        out[int(round(start * spec.fps)): int(round(end * spec.fps)) + 1] = True
    return out


def analyse(spec: SampleSpec, session_dir: Path) -> Analysis:
    ny, nx = AH // BLOCK, AW // BLOCK
    mask = block_mask(spec, spec.distractor_rects())
    keep = {f - 1 for f, last, kind in event_frames(spec) if kind == "gradual"} | {
        last for f, last, kind in event_frames(spec) if kind == "gradual"}
    frac = np.full(spec.frame_count, np.nan)
    mad = np.full(spec.frame_count, np.nan)
    pixels = np.kron(mask, np.ones((BLOCK, BLOCK), bool))
    dchange = {d.name: np.full(spec.frame_count, np.nan) for d in spec.distractors}
    boxes = {d.name: pixel_box(spec, d.rect) for d in spec.distractors}
    result = Analysis(spec, frac, mad, dchange)
    for seg, name in zip(spec.segment_list(), spec.segment_files()):
        first = int(round(seg.offset * spec.fps))
        prev = None
        for k, frame in enumerate(yuv_frames(session_dir / layout.STREAM_DIR / name)):
            i = first + k
            result.decoded += 1
            if i in keep:
                result.kept[i] = frame[0].copy()
            cur = tuple(p.copy() for p in frame)
            if prev is not None and i < spec.frame_count:
                diff = np.abs(cur[0].astype(np.int16) - prev[0])
                frac[i] = float(changed_blocks(prev, cur, ny, nx)[mask].mean())
                mad[i] = float(diff[: ny * BLOCK, : nx * BLOCK][pixels].mean())
                for dname, (ys, xs) in boxes.items():  # luma and chroma (a dot blinking in equal-luma colours)
                    cys, cxs = slice(ys.start // 2, max(ys.start // 2 + 1, ys.stop // 2)), slice(
                        xs.start // 2, max(xs.start // 2 + 1, xs.stop // 2))
                    dchange[dname][i] = float(diff[ys, xs].mean()) + sum(
                        float(np.abs(c1[cys, cxs].astype(np.int16) - c0[cys, cxs]).mean())
                        for c0, c1 in zip(prev[1:], cur[1:]))
            prev = cur
    return result


@pytest.fixture(scope="module")
def analyses() -> dict[str, Analysis]:
    """Each synthetic sample decoded once (all segments) and measured."""
    return {name: analyse(SAMPLES[name], DATA / SAMPLES[name].session_name) for name in SYNTHETIC}


# --------------------------------------------------------------------------- labels vs pictures


@pytest.mark.parametrize("name", SYNTHETIC)
def test_every_labeled_cut_changes_the_picture_at_its_frame(analyses: dict[str, Analysis], name: str) -> None:
    a = analyses[name]
    spec = a.spec
    assert a.decoded == sum(int(round(s.duration * spec.fps)) for s in spec.segment_list()), "frames missing"
    for f, _, kind in event_frames(spec):
        if kind == "gradual":
            continue
        window = np.nan_to_num(a.frac[f - 3: f + 4], nan=0.0)
        peak = f - 3 + int(np.argmax(window))
        assert abs(peak - f) <= 1, f"{name}: {kind} labeled at frame {f} but the picture changes at {peak}"
        assert a.frac[peak] >= CUT_MIN[kind], f"{name}: {kind} at frame {f} changes only {a.frac[peak]:.3f} of the frame"


@pytest.mark.parametrize("name", SYNTHETIC)
def test_nothing_else_changes_outside_the_distractors(analyses: dict[str, Analysis], name: str) -> None:
    a = analyses[name]
    quiet = ~np.isnan(a.frac) & ~roaming(a.spec)
    for f, last, _ in event_frames(a.spec):
        quiet[f: last + 1] = False
    worst = int(np.argmax(np.where(quiet, a.frac, -1)))
    assert a.frac[worst] <= QUIET_MAX, (
        f"{name}: unlabeled change of {a.frac[worst]:.3f} of the frame at frame {worst} "
        f"({worst / a.spec.fps:.3f} s)")
    cuts = [a.frac[f] for f, _, kind in event_frames(a.spec) if kind != "gradual"]
    assert min(cuts) > 3 * a.frac[worst], f"{name}: the weakest labeled change is not clearly above the noise"


def test_gradual_change_is_spread_over_its_span(analyses: dict[str, Analysis]) -> None:
    spans = [(name, f, last, e) for name, a in analyses.items()
             for (f, last, kind), e in zip(event_frames(a.spec), a.spec.active_events()) if kind == "gradual"]
    assert spans, "no sample has a gradual event"
    for name, f, last, event in spans:
        a = analyses[name]
        mask = np.kron(block_mask(a.spec, a.spec.distractor_rects()), np.ones((BLOCK, BLOCK), bool))
        h, w = mask.shape
        before = a.kept[f - 1][:h, :w].astype(np.int16)
        after = a.kept[last][:h, :w].astype(np.int16)
        total = np.abs(after - before)[mask].mean()
        assert total > NOISE_FLOOR, f"{name}: the picture after the fade is not a new picture ({total:.1f})"
        steps = a.mad[f: last + 1]
        assert (steps > 0.05 * total / len(steps)).mean() >= 0.6, f"{name}: the change stalls inside [{f}, {last}]"
        how = getattr(event.scene, "transition", "dissolve")
        if how != "push":  # a push moves the whole picture on every frame: each step is big by nature
            assert steps.max() < 0.2 * total, f"{name}: one step of the {how} is a cut ({steps.max():.1f} of {total:.1f})"
        assert steps.sum() > 0.8 * total, f"{name}: the change happens outside the labeled span"
        assert a.frac[last + 1] <= QUIET_MAX and a.frac[f - 1] <= QUIET_MAX, f"{name}: fade longer than labeled"


@pytest.mark.parametrize("name", SYNTHETIC)
def test_distractors_really_move(analyses: dict[str, Analysis], name: str) -> None:
    """Each distractor changes on many frames away from labeled events (else it distracts nobody)."""
    a = analyses[name]
    away = ~np.isnan(a.frac)
    for f, last, _ in event_frames(a.spec):
        away[max(0, f - 3): last + 4] = False
    for d in a.spec.distractors:
        moving = int((a.distractor_change[d.name][away] > 0.05).sum())
        assert moving >= min(20, int(a.spec.duration) // 2), f"{name}: distractor {d.name} changes on only {moving} frames"


# --------------------------------------------------------------------------- files as cht writes them


@pytest.mark.parametrize("name", SYNTHETIC)
def test_streams_probe_as_the_spec_says(name: str) -> None:
    spec = SAMPLES[name]
    d = DATA / spec.session_name
    frame = 1.0 / spec.fps
    for seg, fname in zip(spec.segment_list(), spec.segment_files()):
        path = d / layout.STREAM_DIR / fname
        info = probe(path)
        assert info.complete
        assert info.video is not None and info.video.codec == "h264"
        assert (info.video.width, info.video.height) == (spec.width, spec.height)
        assert info.video.fps == pytest.approx(spec.fps, abs=0.01)
        assert info.video.frames == int(round(seg.duration * spec.fps))
        assert abs(info.video.duration - seg.duration) <= frame + 1e-6
        assert abs(info.video.start) < 1e-6, "video must start at pts 0"
        head = path.read_bytes()
        assert head[4:8] == b"ftyp" and b"moof" in head, f"{path} is not a fragmented MP4"
        if spec.audio_file or not spec.audio:
            assert info.audio is None, f"{path}: segments of a session with audio.aac (or no audio) are video-only"
        else:
            assert info.audio is not None and info.audio.codec == "aac" and info.audio.channels == 1
            assert info.audio.sample_rate == draw.AUDIO_RATE
            assert abs(info.audio.duration - seg.duration) < 0.05
    aac = d / layout.STREAM_DIR / layout.AUDIO_AAC
    assert aac.exists() == (spec.audio_file and spec.audio)
    if spec.audio_file:
        info = probe(aac)
        assert info.video is None and info.audio is not None and info.audio.codec == "aac"
        assert aac.read_bytes()[:2] in (b"\xff\xf1", b"\xff\xf9"), "audio.aac is not ADTS"
        assert abs(info.audio.duration - spec.duration) < 0.05, "audio.aac must cover the whole session incl. gaps"


def test_segments_sit_on_the_session_timeline() -> None:
    for spec in (SAMPLES[n] for n in SYNTHETIC):
        d = DATA / spec.session_name
        assert layout.is_session_dir(d)
        segs = layout.discover_segments(d)
        assert [s.path.name for s in segs] == spec.segment_files()
        assert [s.offset for s in segs] == pytest.approx([s.offset for s in spec.segment_list()])
    assert [s.offset for s in SAMPLES["twoseg"].segment_list()] == [0.0, 25.0]


@pytest.mark.parametrize("name", SYNTHETIC)
def test_labels_csv_is_the_spec_and_follows_the_rules(name: str) -> None:
    spec = SAMPLES[name]
    df = pd.read_csv(DATA / spec.session_name / layout.LABELS_CSV)
    assert list(df.columns) == ["time", "end", "kind", "note"]
    pd.testing.assert_frame_equal(df, spec.labels(), check_dtype=False)
    assert set(df["kind"]) <= set(draw.EVENT_KINDS)
    assert df["end"].notna().tolist() == (df["kind"] == "gradual").tolist()
    assert (df["time"] * spec.fps).sub((df["time"] * spec.fps).round()).abs().max() < 1e-6
    ends = df["end"].fillna(df["time"])
    assert (df["time"].iloc[1:].to_numpy() - ends.iloc[:-1].to_numpy() >= 2.0).all(), "events closer than 2 s"
    for t, e in zip(df["time"], ends):
        seg = [s for s in spec.segment_list() if s.offset <= t <= s.offset + s.duration]
        assert seg and t - seg[0].offset >= 2.0 and seg[0].offset + seg[0].duration - e >= 2.0, (
            f"{name}: event at {t} is within 2 s of a recording edge")
    frame_area = spec.width * spec.height
    for d in spec.distractors:
        x, y, w, h = d.rect
        assert 0 <= x and 0 <= y and x + w <= spec.width and y + h <= spec.height
        if d.name == "chat_scroll":
            assert d.area <= 0.08 * frame_area, f"{name}: the scrolling panel is not small"
    assert block_mask(spec, spec.distractor_rects()).mean() > 0.5, f"{name}: distractors hide half the screen"


def test_bundled_samples_stay_small() -> None:
    """The synthetic samples together (recorded ones are budgeted on their own)."""
    total = sum(p.stat().st_size for name in SYNTHETIC for p in (DATA / SAMPLES[name].session_name).rglob("*")
                if p.is_file())
    assert total < 5 * 1024 * 1024, f"the synthetic samples in data/samples hold {total / 1e6:.2f} MB"


# --------------------------------------------------------------------------- generation


def framemd5(path: Path) -> list[str]:
    out = subprocess.run([find_ffmpeg(), "-hide_banner", "-loglevel", "error", "-nostdin", "-i", str(path),
                          "-map", "0", "-f", "framemd5", "-"], capture_output=True, timeout=60, check=True)
    return [line for line in out.stdout.decode().splitlines() if line and not line.startswith("#")]


def test_generation_is_deterministic(tmp_path: Path) -> None:
    spec = dataclasses.replace(SAMPLES["desktop"], duration=4.0)  # one cut at 3.5 s, the video overlay, audio
    a = render.write_sample(spec, tmp_path / "a")
    b = render.write_sample(spec, tmp_path / "b")
    (name,) = spec.segment_files()
    sums_a = framemd5(a / "stream" / name)
    assert len([s for s in sums_a if s.startswith("0,")]) == 120
    assert len([s for s in sums_a if s.startswith("1,")]) > 0, "audio missing"
    assert sums_a == framemd5(b / "stream" / name), "decoded pictures or audio differ between two runs"
    assert (a / "labels.csv").read_text() == (b / "labels.csv").read_text()
    assert pd.read_csv(a / "labels.csv")["time"].tolist() == [3.5]
    assert not list(a.glob("*.wav")) and not list(a.glob(".*")), "temporary files left in the session"


def test_render_screen_clip_labels_match_its_pictures(tmp_path: Path) -> None:
    path = tmp_path / "clip.mp4"
    labels = render.render_screen_clip(path, 320, 180, fps=30, duration=10.0, seed=5)
    assert list(labels.columns) == ["time", "end", "kind", "note"] and len(labels) >= 1
    assert (labels["time"] >= 2.0).all() and (labels["time"] <= 8.0).all()
    info = probe(path)
    assert info.video is not None and (info.video.width, info.video.height, info.video.frames) == (320, 180, 300)
    assert info.audio is not None
    spec = SampleSpec("clip", SAMPLES["slides"].start, 320, 180, 30, 10.0, "slides", (),
                      SlidesScreen.layout(320, 180))
    mask = block_mask(spec, spec.distractor_rects(), 320, 180)
    changes, prev = [], None
    for frame in gray_frames(path, 320, 180):
        cur = frame.astype(np.int16)
        if prev is not None:
            blocks = np.abs(cur - prev)[:176, :320].reshape(11, 16, 20, 16).mean(axis=(1, 3))
            changes.append(float((blocks[mask] > NOISE_FLOOR).mean()))
        prev = cur
    big = [i + 1 for i, c in enumerate(changes) if c >= CUT_MIN["cut"]]
    assert big == [int(round(t * 30)) for t in labels["time"]]


def test_speech_like_audio_has_bursts_and_silences() -> None:
    rate = 16000
    audio = speech_like_audio(30.0, rate, seed=3)
    assert audio.dtype == np.float32 and audio.ndim == 1 and len(audio) == 30 * rate
    assert np.array_equal(audio, speech_like_audio(30.0, rate, seed=3))
    assert not np.array_equal(audio, speech_like_audio(30.0, rate, seed=4))
    assert np.abs(audio).max() <= 1.0
    frames = audio[: len(audio) // 160 * 160].reshape(-1, 160).astype(np.float64)  # 10 ms
    voiced = 20 * np.log10(np.sqrt((frames ** 2).mean(axis=1)) + 1e-12) > -40
    assert 0.15 < voiced.mean() < 0.8
    edges = np.flatnonzero(np.diff(voiced.astype(int))) + 1
    runs = np.split(voiced, edges)
    bursts = [len(r) / 100 for r in runs if r[0]]
    pauses = [len(r) / 100 for r in runs[1:-1] if not r[0]]
    assert len(bursts) >= 5 and max(bursts) <= 1.6
    assert max(pauses) >= 2.0, "no longer silence"


# --------------------------------------------------------------------------- paths and errors


def test_unknown_sample_is_a_clear_error() -> None:
    with pytest.raises(SampleError) as err:
        bundled.sample_dir("nope")
    assert "nope" in str(err.value)
    for name in SAMPLES:
        assert name in str(err.value)
    assert isinstance(err.value, ValueError)


def test_sample_dir_and_root_override(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(bundled.ENV_VAR, raising=False)
    assert bundled.samples_root() == DATA
    assert bundled.sample_dir("coding") == DATA / "20260301_110000"
    monkeypatch.setenv(bundled.ENV_VAR, str(tmp_path))
    assert bundled.samples_root() == tmp_path
    assert bundled.sample_dir("slides", generate_missing=False) == tmp_path / "20260301_090000"


def test_generate_skips_present_samples_and_leaves_nothing_behind_on_failure(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = SAMPLES["twoseg"]
    present = tmp_path / spec.session_name
    (present / "stream").mkdir(parents=True)
    for f in [*spec.segment_files(), layout.AUDIO_AAC]:
        (present / "stream" / f).write_bytes(b"x")
    (present / layout.LABELS_CSV).write_text("time,end,kind,note\n")
    assert bundled.generate(tmp_path, names=["twoseg"]) == [present]
    assert (present / layout.LABELS_CSV).read_text() == "time,end,kind,note\n", "a present sample was rewritten"

    def broken(*args: object, **kw: object) -> np.ndarray:
        raise RuntimeError("simulated crash while rendering")

    monkeypatch.setattr(render, "speech_like_audio", broken)
    with pytest.raises(RuntimeError, match="simulated crash"):
        bundled.generate(tmp_path, names=["slides"])
    assert sorted(p.name for p in tmp_path.iterdir()) == [spec.session_name], "half a sample was left behind"
    with pytest.raises(RuntimeError, match="simulated crash"):
        bundled.generate(tmp_path, names=["twoseg"], force=True)
    assert (present / layout.LABELS_CSV).read_text() == "time,end,kind,note\n", "failed --force lost the old sample"


def test_no_ffmpeg_left_running() -> None:
    assert live_processes() == []
