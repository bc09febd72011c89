"""FrameScorer on synthetic gray frames: what screen-share viewers call a change, and what not."""

from __future__ import annotations

import numpy as np
import pytest

from cht_lab.detect.decision import DEFAULT_MIN_GAP, select_scenes
from cht_lab.detect.scoring import (DEFAULT_METRIC, DEFAULT_THRESHOLDS, METRICS, PYTHON_METRICS, FrameScorer, ScoringError,
                             score_frames)

H, W, FPS = 180, 320, 30.0
THRESHOLD = DEFAULT_THRESHOLDS[DEFAULT_METRIC]


def text_page(seed: int, bg: int = 250, ink: int = 30) -> np.ndarray:
    """A page of 'text': rows of short dark strokes of random lengths (what text looks like at 320 px)."""
    rng = np.random.default_rng(seed)
    img = np.full((H, W), bg, np.uint8)
    for y in range(14, H - 14, 9):
        x = 10
        while x < W - 30:
            n = int(rng.integers(3, 14))
            img[y:y + 4, x:x + n] = ink + rng.integers(0, 30)
            x += n + int(rng.integers(2, 6))
    return img


def captures(frames: list[np.ndarray], metric: str = DEFAULT_METRIC, **params) -> np.ndarray:
    """Times (s) the capture rule picks on these frames at the default threshold."""
    cols = score_frames(frames, fps=FPS, **params)
    ts = np.arange(len(frames)) / FPS
    return ts[select_scenes(ts, cols[metric], DEFAULT_THRESHOLDS[metric], DEFAULT_MIN_GAP)]


def with_noise(frames: list[np.ndarray], seed: int = 0, sigma: float = 1.0) -> list[np.ndarray]:
    """Compression-like noise: a gray level or two everywhere."""
    rng = np.random.default_rng(seed)
    return [np.clip(f + rng.normal(0, sigma, f.shape), 0, 255).astype(np.uint8) for f in frames]


def test_metrics_contract():
    assert METRICS[0] == "score" and set(PYTHON_METRICS) == set(METRICS) - {"score"}
    assert DEFAULT_METRIC in METRICS and set(DEFAULT_THRESHOLDS) == set(METRICS)
    sc = FrameScorer(W, H, fps=FPS)
    first = sc.update(text_page(0))
    assert set(first) == set(PYTHON_METRICS) and all(v == 0.0 for v in first.values())
    row = sc.score(text_page(0), scene=0.25, pts=1 / FPS)
    assert set(row) == set(METRICS) and row["score"] == 0.25


def test_a_cut_gives_one_capture_shortly_after():
    frames = [text_page(1)] * 60 + [text_page(2)] * 60
    t = captures(with_noise(frames))
    assert len(t) == 1 and 2.0 <= t[0] <= 2.0 + 0.3


def test_typing_and_cursor_do_not_capture():
    base = text_page(3)
    frames = []
    for i in range(150):
        f = base.copy()
        f[150:156, 10:10 + (i // 2) * 3] = 20  # a line of text typed one character every other frame
        x, y = 40 + i, 60 + (i % 40)
        f[y:y + 6, x:x + 4] = 0  # a cursor gliding across
        frames.append(f)
    assert captures(with_noise(frames)).size == 0


def test_a_ticking_clock_and_a_spinner_do_not_capture():
    base = text_page(4)
    frames = []
    for i in range(150):
        f = base.copy()
        f[2:10, 280:316] = 40 + 50 * ((i // 30) % 4)  # the clock's digits change every second
        f[170:178, 150:158] = 255 if (i // 3) % 2 else 0  # a blinking spinner
        frames.append(f)
    assert captures(with_noise(frames)).size == 0


def test_webcam_overlay_does_not_drown_a_real_change():
    rng = np.random.default_rng(5)
    frames = []
    for i in range(180):
        f = (text_page(6) if i < 120 else text_page(7)).copy()
        f[110:180, 220:320] = rng.integers(0, 256, (70, 100))  # webcam: a fifth of the screen, changing every frame
        frames.append(f)
    t = captures(frames)
    assert len(t) == 1 and 4.0 <= t[0] <= 4.5, t


def test_two_files_in_the_same_dark_theme_are_a_change():
    a, b = text_page(8, bg=30, ink=200), text_page(9, bg=30, ink=200)
    t = captures(with_noise([a] * 60 + [b] * 60))
    assert len(t) == 1 and 2.0 <= t[0] <= 2.5


def test_a_popup_over_a_quarter_of_the_screen_is_a_change():
    base = text_page(10)
    popup = base.copy()
    popup[45:135, 80:240] = 235
    popup[60:64, 100:200] = 20
    t = captures(with_noise([base] * 60 + [popup] * 60))
    assert len(t) == 1 and 2.0 <= t[0] <= 2.5


def test_a_one_second_cross_fade_gives_one_capture_of_the_finished_picture():
    a, b = text_page(11).astype(float), text_page(12).astype(float)
    frames = [a] * 60 + [a + (b - a) * k / 30 for k in range(1, 31)] + [b] * 60
    t = captures(with_noise([f.astype(np.uint8) for f in frames]))
    assert len(t) == 1 and 2.0 - 0.5 <= t[0] <= 3.0 + 0.5, t
    assert t[0] >= 3.0  # the picture is complete when it is captured


def test_without_settling_a_block_metric_captures_a_fade_twice():
    """Why the default is `settled`: an instantaneous block metric stays high for the whole fade."""
    a, b = text_page(11).astype(float), text_page(12).astype(float)
    frames = [a] * 60 + [a + (b - a) * k / 45 for k in range(1, 46)] + [b] * 60
    frames = with_noise([f.astype(np.uint8) for f in frames])
    assert len(captures(frames, "lookback")) >= 2
    assert len(captures(frames, "settled")) == 1


def test_a_screen_that_never_settles_still_reports_after_max_wait():
    rng = np.random.default_rng(13)
    base = text_page(14)
    frames = [base] * 30
    for _ in range(120):  # a big animation that never stops for the scorer's max_wait
        f = base.copy()
        f[:, : 160] = rng.integers(0, 256, (H, 160))
        frames.append(f)
    cols = score_frames(frames, fps=FPS, max_wait=1.0, volatile_tau=100.0)
    assert (cols["settled"] > THRESHOLD).sum() >= 2


def test_pts_and_fps_agree_and_reset_forgets():
    frames = with_noise([text_page(15)] * 40 + [text_page(16)] * 40)
    by_fps = score_frames(frames, fps=FPS)
    by_pts = score_frames(frames, pts=np.arange(len(frames)) / FPS)
    for m in PYTHON_METRICS:
        np.testing.assert_allclose(by_fps[m], by_pts[m])
    sc = FrameScorer(fps=FPS)
    first = [sc.update(f)["settled"] for f in frames]
    sc.reset()
    again = [sc.update(f)["settled"] for f in frames]
    assert first == again


def test_odd_frame_sizes_are_covered_to_the_edge():
    sc = FrameScorer(fps=FPS)
    a = np.full((97, 211), 200, np.uint8)
    b = a.copy()
    b[:, 200:] = 0  # only the last few columns change
    sc.update(a)
    assert sc.update(b)["blocks"] > 0


def test_bad_frames_and_parameters_are_refused():
    with pytest.raises(ScoringError, match="unknown scorer parameter"):
        FrameScorer(W, H, thresholdd=3)
    with pytest.raises(ScoringError, match="fps"):
        FrameScorer(W, H, fps=0)
    sc = FrameScorer(W, H)
    with pytest.raises(ScoringError, match="uint8"):
        sc.update(np.zeros((H, W), np.float32))
    with pytest.raises(ScoringError, match="shape"):
        sc.update(np.zeros((H + 2, W), np.uint8))
