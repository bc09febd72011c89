"""The recorded samples (real applications on a virtual X screen): labels against their pictures.

Reads the committed recordings only: needs neither Xvfb nor Chromium (recording them does:
`cht-lab samples --real`). For every label: the frame at its time differs clearly from the frame
before it, in a way consistent with its kind, and no frame in the 0.5 s before it already shows
the change; the recordings decode as cht's recorder writes them; all samples stay small.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cht_lab import layout
from cht_lab.ffmpeg import find_ffmpeg, probe
from cht_lab.tools.samples.bundled import SAMPLES, samples_root
from cht_lab.tools.samples.draw import EVENT_KINDS, SampleSpec
from cht_lab.tools.samples.real.catalog import RECORDED

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data" / "samples"
REAL = [name for name, spec in SAMPLES.items() if spec.screen == RECORDED]

W, H = 384, 216  # analysis pictures: a fifth of 1080p, gray
PIXEL = 12  # gray levels: a pixel changed
CLEAR = 0.03  # a labeled frame changes at least this fraction of the (non-distractor) screen ...
FIRST_STEP = 0.01  # ... the first frame of a gradual change (an eased fade starts slowly) at least this,
#                    and the whole change (to its end) at least CLEAR (a typed character, the caret or
#                    the pointer change under 0.005 of the screen in a frame)
BEFORE = 0.5  # seconds before a label in which no frame may already show its change
EARLY = 0.15  # ... "already shows": this fraction of the label's changed pixels differ from the frame before it
TOTAL_MB = 15.0


@dataclass
class Recording:
    spec: SampleSpec
    dir: Path
    path: Path
    pts: np.ndarray
    frames: np.ndarray  # n x H x W uint8
    mask: np.ndarray  # H x W: outside every distractor rectangle
    labels: pd.DataFrame

    def index(self, t: float) -> int:
        k = int(np.argmin(np.abs(self.pts - t)))
        assert abs(self.pts[k] - t) < 1e-3, f"{self.spec.name}: {t} s is not a frame time"
        return k

    def changed(self, a: int, b: int) -> np.ndarray:
        """Pixels (inside the mask) where frames a and b differ."""
        d = np.abs(self.frames[b].astype(np.int16) - self.frames[a].astype(np.int16)) > PIXEL
        return d & self.mask


def decode(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Every frame, small and gray, with its pts as ffmpeg's decoder gives it (showinfo, microseconds)."""
    proc = subprocess.run([find_ffmpeg(), "-hide_banner", "-nostdin", "-i", str(path), "-map", "0:v:0", "-vf",
                           f"settb=1/1000000,showinfo,scale={W}:{H}:flags=area,format=gray", "-fps_mode", "passthrough",
                           "-f", "rawvideo", "-pix_fmt", "gray", "pipe:1"], capture_output=True, timeout=600)
    assert proc.returncode == 0, proc.stderr.decode()[-500:]
    pts = np.array([int(p) / 1e6 for p in re.findall(rb"\] n:\s*\d+\s+pts:\s*(-?\d+)", proc.stderr)])
    frames = np.frombuffer(proc.stdout, np.uint8).reshape(-1, H, W)
    assert len(frames) == len(pts)
    return pts, frames


def distractor_mask(spec: SampleSpec) -> np.ndarray:
    mask = np.ones((H, W), bool)
    sx, sy = W / spec.width, H / spec.height
    for x, y, w, h in spec.distractor_rects():
        mask[max(0, int(y * sy) - 1): int(np.ceil((y + h) * sy)) + 1,
             max(0, int(x * sx) - 1): int(np.ceil((x + w) * sx)) + 1] = False
    return mask


@pytest.fixture(scope="module", params=REAL or [pytest.param(None, marks=pytest.mark.skip("no recorded samples"))])
def rec(request: pytest.FixtureRequest) -> Recording:
    """One recorded sample decoded once (module scope: one sample's frames in memory at a time)."""
    spec = SAMPLES[request.param]
    d = samples_root() / spec.session_name
    (name,) = spec.segment_files()
    path = d / layout.STREAM_DIR / name
    if not path.is_file():
        pytest.fail(f"recorded sample {spec.name} is missing: {path}")
    pts, frames = decode(path)
    labels = pd.read_csv(d / layout.LABELS_CSV)
    return Recording(spec, d, path, pts, frames, distractor_mask(spec), labels)


# --------------------------------------------------------------------------- the files


def test_recording_is_what_cht_records(rec: Recording) -> None:
    spec, info = rec.spec, probe(rec.path)
    assert info.complete and info.video is not None and info.video.codec == "h264"
    assert (info.video.width, info.video.height) == (spec.width, spec.height) == (1920, 1080)
    assert info.video.fps == pytest.approx(spec.fps) and spec.fps == 25
    assert info.video.frames == len(rec.frames) == spec.frame_count
    head = rec.path.read_bytes()[:4096]
    assert head[4:8] == b"ftyp" and b"moov" in head, "not a fragmented MP4 (empty moov first)"
    assert b"moof" in rec.path.read_bytes(), "not a fragmented MP4"
    assert info.audio is not None and info.audio.codec == "aac" and abs(info.audio.duration - spec.duration) < 0.1
    # the edit list: video from pts 0, one frame every 40 ms, the first picture not doubled
    np.testing.assert_allclose(rec.pts, np.arange(len(rec.pts)) / spec.fps, atol=1e-4)


def test_labels_follow_the_rules(rec: Recording) -> None:
    df, spec = rec.labels, rec.spec
    assert list(df.columns) == ["time", "end", "kind", "note"]
    pd.testing.assert_frame_equal(df, spec.labels(), check_dtype=False)
    assert set(df["kind"]) <= set(EVENT_KINDS)
    assert df["end"].notna().tolist() == (df["kind"] == "gradual").tolist()
    grid = df["time"] * spec.fps
    assert (grid - grid.round()).abs().max() < 1e-6, "label times are frame times"
    ends = df["end"].fillna(df["time"])
    assert (df["time"].iloc[1:].to_numpy() - ends.iloc[:-1].to_numpy() >= 1.5).all(), "events closer than 1.5 s"
    assert df["time"].min() >= 1.0 and ends.max() <= spec.duration - 1.0
    assert len(df) >= 8 and df["kind"].nunique() >= 2


def test_labels_agree_with_the_script(rec: Recording) -> None:
    """Each label lies after the script acted (less a frame of grab jitter) and before it had waited
    for the application to confirm (plus 1 s): the label is the action's picture, not another's."""
    script = pd.read_csv(rec.dir / "script.csv")
    script = script[script["kind"] != "distractor"]
    assert script["time"].tolist() == rec.labels["time"].tolist()
    assert (script["time"] >= script["estimate"] - 0.3).all()
    reach = np.maximum(script["estimate"] + 1.5, script["confirmed"].fillna(-1) + 0.8)
    assert (script["time"] <= reach + 1e-9).all()


# --------------------------------------------------------------------------- labels vs pictures


def test_every_label_is_the_first_frame_of_its_change(rec: Recording) -> None:
    fps = rec.spec.fps
    for row in rec.labels.itertuples():
        k = rec.index(row.time)
        last = rec.index(row.end) if row.kind == "gradual" else k
        step = rec.changed(k - 1, k)
        least = FIRST_STEP if row.kind == "gradual" else CLEAR
        frac = step.sum() / rec.mask.sum()
        assert frac >= least, f"{row.note} at {row.time}: only {frac:.3f} of the screen changed"
        # the change (to the end of a gradual one) had not begun in the 0.5 s before
        change = rec.changed(k - 1, last) | step
        for j in range(max(1, k - int(BEFORE * fps)), k):
            early = rec.changed(j - 1, j)[change].mean()
            assert early < EARLY, (f"{row.note} at {row.time}: frame {rec.pts[j]:.2f} s already changes "
                                   f"{early:.2f} of its pixels")


def test_kinds_match_the_pictures(rec: Recording) -> None:
    fps = rec.spec.fps
    for row in rec.labels.itertuples():
        k = rec.index(row.time)
        if row.kind == "gradual":
            last = rec.index(row.end)
            moving = [rec.changed(j - 1, j).sum() > 0.004 * rec.mask.sum() for j in range(k, last + 1)]
            assert last > k and sum(moving) >= 2, f"{row.note}: a gradual change in one step"
            assert rec.changed(k - 1, last).mean() >= CLEAR, f"{row.note}: too little changes from start to end"
            after = [rec.changed(j - 1, j).mean() for j in range(last + 1, min(len(rec.pts), last + 1 + fps // 5))]
            assert max(after, default=0) < 0.01, f"{row.note}: still changing after its end {row.end}"
        elif row.kind == "cut":
            # a cut lands at once: the next frames add little to it
            first = rec.changed(k - 1, k).sum()
            more = rec.changed(k, min(len(rec.pts) - 1, k + 2)).sum()
            assert more < 0.5 * first, f"{row.note} at {row.time}: goes on changing after the cut"
        else:
            assert_centred(rec, k, row.note)


def assert_centred(rec: Recording, k: int, note: str) -> None:
    """A dialog: new content in the middle of the screen; away from the middle nothing changes, or
    the whole page is dimmed (or brightened back) uniformly, which one linear map of gray levels
    explains. A changed pixel the map does not explain is new content: most of it lies in the
    middle two thirds of the screen and it covers only part of the screen. (A switch of tab or
    file changes the page structurally everywhere: the map explains 6-90 % of its pixels outside
    the middle, against 99-100 % for the dialogs.) A 5-pixel margin (25 px of the screen) along
    the edges is left out: JupyterLab's backdrop draws a line there."""
    a = rec.frames[k - 1].astype(np.float64)
    b = rec.frames[k].astype(np.float64)
    middle = np.zeros((H, W), bool)
    middle[H // 6: 5 * H // 6, W // 6: 5 * W // 6] = True
    area = rec.mask.copy()
    area[:5], area[-5:], area[:, :5], area[:, -5:] = False, False, False, False
    changed = area & (np.abs(b - a) > PIXEL)
    outer = changed & ~middle
    new = changed
    if outer.sum() > 100:
        gain, offset = np.polyfit(a[outer], b[outer], 1)
        new = changed & (np.abs(b - (gain * a + offset)) > 2 * PIXEL)
    outer_changed = outer.sum() / (area & ~middle).sum()
    explained = 1 - (new & ~middle).sum() / max(1, outer.sum())
    assert outer_changed < 0.02 or explained >= 0.95, (
        f"{note}: {outer_changed:.2f} of the screen away from the middle changes, only {explained:.2f} of it "
        "as a uniform dimming")
    assert new.sum() >= 200, f"{note}: no new content"
    assert new.mean() < 0.25, f"{note}: new content on {new.mean():.2f} of the screen: not partial"
    share = new[middle].sum() / new.sum()
    assert share >= 0.75, f"{note}: only {share:.2f} of the new content is in the middle of the screen"


# --------------------------------------------------------------------------- all samples


def test_recorded_samples_are_registered_and_small() -> None:
    assert {"real_editor", "real_slides", "real_browser"} <= set(REAL)
    total = sum(p.stat().st_size for p in DATA.rglob("*")
                if p.is_file() and not any(part.startswith(".") for part in p.relative_to(DATA).parts))
    recorded = sum(p.stat().st_size for n in REAL for p in (DATA / SAMPLES[n].session_name).rglob("*") if p.is_file())
    assert recorded <= total
    assert total <= TOTAL_MB * 1024 * 1024, f"data/samples holds {total / 1e6:.1f} MB"


def test_samples_command_never_regenerates_a_recording(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cht_lab.tools.samples import bundled
    from cht_lab.tools.samples.draw import SampleError

    name = REAL[0] if REAL else "real_slides"
    assert bundled.generate(tmp_path, names=[name], force=True) == [tmp_path / SAMPLES[name].session_name]
    assert not any(tmp_path.iterdir()), "a recorded sample was rendered"
    monkeypatch.setenv(bundled.ENV_VAR, str(tmp_path))
    with pytest.raises(SampleError, match="--real"):
        bundled.sample_dir(name)


def test_samples_real_skips_with_a_clear_message_without_xvfb(monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    import shutil

    from cht_lab.cli import main
    from cht_lab.tools.samples.real import xvfb

    which = shutil.which
    monkeypatch.setattr(xvfb.shutil, "which", lambda name: None if name == "Xvfb" else which(name))
    assert main(["samples", "--real", "real_slides"]) == 0
    err = capsys.readouterr().err
    assert "--real skipped" in err and "Xvfb (apt-get install xvfb)" in err
    assert main(["samples", "--real", "slides"]) == 2  # a synthetic sample is not recorded
    assert "unknown recorded sample 'slides'" in capsys.readouterr().err
