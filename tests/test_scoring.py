"""FrameScorer on synthetic analysis frames: what screen-share viewers call a change, and what not.

The frames are analysis-sized pictures (320 x 180 luma, chroma at half size where colour matters)
drawn directly, so each case isolates one property of the `event` metric: structure (a spread
change is an event, a compact or thin one is not), onset, colour, fades, motion, scrolls, revisits.
"""

from __future__ import annotations

import numpy as np
import pytest

from cht_lab.detect.decision import DEFAULT_MIN_GAP, select_scenes
from cht_lab.detect.scoring import (AUX_COLUMNS, DEFAULT_METRIC, DEFAULT_THRESHOLDS, METRICS, PYTHON_METRICS,
                                    FrameScorer, ScoringError, score_frames)
from cht_lab.detect.scoring.shapes import explain_shift, groups, structure

H, W, FPS = 180, 320, 30.0
THRESHOLD = DEFAULT_THRESHOLDS[DEFAULT_METRIC]


def text_page(seed: int, bg: int = 250, ink: int = 30, rows: range | None = None, thin: bool = False) -> np.ndarray:
    """A page of 'text': rows of short strokes of random lengths (what text looks like at 320 px).

    thin: 1-pixel strokes of a fifth of the contrast (small text on a 1440p screen, averaged down)."""
    rng = np.random.default_rng(seed)
    img = np.full((H, W), bg, np.uint8)
    for y in rows or range(14, H - 14, 9):
        x = 10
        while x < W - 30:
            n = int(rng.integers(3, 14))
            if thin:
                img[y:y + 2, x:x + n] = bg + (ink - bg) // 4 + rng.integers(-4, 5)
            else:
                img[y:y + 4, x:x + n] = ink + rng.integers(0, 30)
            x += n + int(rng.integers(2, 6))
    return img


def with_noise(frames: list[np.ndarray], seed: int = 0, sigma: float = 1.0) -> list[np.ndarray]:
    """Compression-like noise: a gray level or two everywhere."""
    rng = np.random.default_rng(seed)
    return [np.clip(f + rng.normal(0, sigma, f.shape), 0, 255).astype(np.uint8) for f in frames]


def detections(frames: list[np.ndarray], metric: str = DEFAULT_METRIC, chroma=None, **params) -> tuple:
    """(onset times, capture times, revisit frames back) the capture rule picks at the default threshold."""
    cols = score_frames(frames, fps=FPS, chroma=chroma, **params)
    ts = np.arange(len(frames)) / FPS
    pos = select_scenes(ts, cols[metric], DEFAULT_THRESHOLDS[metric], DEFAULT_MIN_GAP)
    onset = pos - cols["onset"][pos].astype(int) if metric == "event" else pos
    return ts[onset], ts[pos], cols["revisit"][pos].astype(int), cols



def captures(frames: list[np.ndarray], metric: str = DEFAULT_METRIC, **params) -> np.ndarray:
    """Onset times (s) of what the capture rule picks on these frames at the default threshold."""
    return detections(frames, metric, **params)[0]


# --------------------------------------------------------------------------- contract


def test_metrics_contract():
    assert METRICS[0] == "score" and set(PYTHON_METRICS) == set(METRICS) - {"score"}
    assert DEFAULT_METRIC == "event" and set(DEFAULT_THRESHOLDS) == set(METRICS)
    assert set(AUX_COLUMNS) == {"onset", "revisit"} and not set(AUX_COLUMNS) & set(METRICS)
    sc = FrameScorer(W, H, fps=FPS)
    first = sc.update(text_page(0))
    assert set(first) == set(PYTHON_METRICS) | set(AUX_COLUMNS) and all(v == 0.0 for v in first.values())
    row = sc.score(text_page(0), scene=0.25, pts=1 / FPS)
    assert set(row) == set(METRICS) | set(AUX_COLUMNS) and row["score"] == 0.25


# --------------------------------------------------------------------------- events and onsets


def test_a_cut_gives_one_capture_with_its_onset_on_the_cut_frame():
    frames = [text_page(1)] * 60 + [text_page(2)] * 60
    onset, capture, _, _ = detections(with_noise(frames))
    assert len(onset) == 1
    assert abs(onset[0] - 2.0) < 0.5 / FPS, onset  # the first frame of the new picture
    assert 2.0 < capture[0] <= 2.0 + 0.4  # captured once the picture has rested


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
    assert len(t) == 1 and abs(t[0] - 4.0) < 1.5 / FPS, t


def test_two_files_in_the_same_dark_theme_are_a_change():
    a, b = text_page(8, bg=30, ink=200), text_page(9, bg=30, ink=200)
    t = captures(with_noise([a] * 60 + [b] * 60))
    assert len(t) == 1 and abs(t[0] - 2.0) < 0.5 / FPS


def test_thin_text_switch_is_a_change_and_scores_far_above_a_toast():
    """Small text at 1440p: a file switch changes faint 2-pixel lines only; a toast is solid but compact."""
    a, b = text_page(20, bg=30, ink=220, thin=True), text_page(21, bg=30, ink=220, thin=True)
    switch = score_frames(with_noise([a] * 40 + [b] * 40), fps=FPS)["event"].max()
    toast = []
    for i in range(80):
        f = a.copy()
        k = min(max(i - 30, 0), 8)
        if k:
            f[140:172, 320 - 12 * k:320 - 12 * k + 90] = 60  # a 90 x 32 toast sliding in from the right
            f[150:154, 320 - 12 * k + 8:320 - 12 * k + 70] = 200
        toast.append(f)
    toast_score = score_frames(with_noise(toast), fps=FPS)["event"].max()
    assert switch >= THRESHOLD and toast_score < THRESHOLD / 2, (switch, toast_score)
    assert switch > 5 * toast_score


def test_a_progress_bar_wrapping_round_is_no_change():
    base = text_page(22)
    frames = []
    for i in range(150):
        f = base.copy()
        fill = int(W * ((i % 50) / 50))  # fills in 50 frames, then wraps to empty: the whole bar changes at once
        f[172:176, :fill] = 0
        frames.append(f)
    cols = score_frames(with_noise(frames), fps=FPS)
    assert cols["event"].max() < THRESHOLD / 2, cols["event"].max()


def test_a_popup_over_a_quarter_of_the_screen_is_a_change():
    base = text_page(10)
    popup = base.copy()
    popup[45:135, 80:240] = 235
    popup[60:64, 100:200] = 20
    t = captures(with_noise([base] * 60 + [popup] * 60))
    assert len(t) == 1 and abs(t[0] - 2.0) < 0.5 / FPS


def test_a_small_dialog_in_the_centre_is_a_change_the_same_box_in_a_corner_is_not():
    base = text_page(36)
    centre, corner = base.copy(), base.copy()
    for f, (y, x) in ((centre, (70, 120)), (corner, (140, 235))):
        f[y:y + 36, x:x + 80] = 235  # a 80 x 36 box: 4.5 % of the frame, with a line of text and a button
        f[y + 8:y + 12, x + 8:x + 70] = 30
        f[y + 22:y + 30, x + 50:x + 74] = 90
    dialog = captures(with_noise([base] * 60 + [centre] * 60))
    toast = captures(with_noise([base] * 60 + [corner] * 60))
    assert len(dialog) == 1 and abs(dialog[0] - 2.0) < 0.5 / FPS and toast.size == 0


def test_a_modal_dialog_that_dims_the_page_is_a_change():
    base = text_page(23)
    dimmed = (base.astype(np.int32) * 9 // 20).astype(np.uint8)
    dimmed[70:110, 110:210] = 90
    t = captures(with_noise([base] * 60 + [dimmed] * 60))
    assert len(t) == 1 and abs(t[0] - 2.0) < 0.5 / FPS


def test_a_one_second_cross_fade_gives_one_capture_of_the_finished_picture():
    a, b = text_page(11).astype(float), text_page(12).astype(float)
    frames = [a] * 60 + [a + (b - a) * k / 30 for k in range(1, 31)] + [b] * 60
    onset, capture, _, _ = detections(with_noise([f.astype(np.uint8) for f in frames]))
    assert len(onset) == 1 and 2.0 - 1 / FPS <= onset[0] <= 3.0, onset  # inside the fade
    assert capture[0] >= 3.0  # the picture is complete when it is captured


def test_a_slow_full_frame_fade_gives_one_capture():
    a, b = text_page(24).astype(float), text_page(25, bg=200).astype(float)
    frames = [a] * 40 + [a + (b - a) * k / 90 for k in range(1, 91)] + [b] * 60  # 3 s
    onset, capture, _, _ = detections(with_noise([f.astype(np.uint8) for f in frames]))
    assert len(onset) == 1 and 40 / FPS - 1 / FPS <= onset[0] <= 130 / FPS and capture[0] >= 130 / FPS


def test_a_fade_through_black_is_one_change():
    a, b = text_page(26).astype(float), text_page(27).astype(float)
    frames = [a] * 60 + [a * (1 - k / 12) for k in range(1, 13)] + [a * 0] * 9 + [b * k / 12 for k in range(1, 13)]
    frames += [b] * 60
    onset, _, _, _ = detections(with_noise([f.astype(np.uint8) for f in frames]))
    assert len(onset) == 1 and 2.0 - 1 / FPS <= onset[0] <= 93 / FPS, onset


def test_without_settling_a_block_metric_captures_a_fade_twice():
    """Why the default is an event score: an instantaneous block metric stays high for the whole fade."""
    a, b = text_page(11).astype(float), text_page(12).astype(float)
    frames = [a] * 60 + [a + (b - a) * k / 45 for k in range(1, 46)] + [b] * 60
    frames = with_noise([f.astype(np.uint8) for f in frames])
    assert len(captures(frames, "lookback")) >= 2
    assert len(captures(frames, "settled")) == 1
    assert len(captures(frames, "event")) == 1


def test_the_legacy_settled_metric_still_reports_after_max_wait():
    rng = np.random.default_rng(13)
    base = text_page(14)
    frames = [base] * 30
    for _ in range(120):  # a big animation that never stops for the scorer's max_wait
        f = base.copy()
        f[:, : 160] = rng.integers(0, 256, (H, 160))
        frames.append(f)
    cols = score_frames(frames, fps=FPS, max_wait=1.0, volatile_tau=100.0)
    assert (cols["settled"] > DEFAULT_THRESHOLDS["settled"]).sum() >= 2


def film(n: int, seed: int, cut_at: int | None = None) -> list[np.ndarray]:
    """Whole-frame motion: a smooth landscape-like picture panning 2 px a frame, with a ball moving
    across it; a different shot (other colours and shapes) from frame `cut_at` on."""
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    out = []
    for i in range(n):
        shot = 1 if cut_at is not None and i >= cut_at else 0
        rng = np.random.default_rng(seed + shot)
        k, ph = rng.uniform(0.02, 0.08, 4), rng.uniform(0, 6.3, 4)
        x = xx + 2 * i
        img = (110 + 60 * shot + 40 * np.sin(k[0] * x + ph[0]) * np.cos(k[1] * yy + ph[1])
               + 30 * np.sin(k[2] * x + k[3] * yy + ph[2]))
        bx, by = (40 + 5 * i) % W, 90 + 40 * np.sin(i / 9)
        img[(xx - bx) ** 2 + (yy - by) ** 2 < 144] = 240 - 200 * shot
        out.append(img.clip(0, 255).astype(np.uint8))
    return out


def test_continuous_whole_frame_motion_never_fires_periodically():
    frames = [text_page(28)] * 30 + film(240, 40)  # 8 s of film after a still start
    onset, _, _, _ = detections(frames)
    assert len(onset) == 1 and abs(onset[0] - 1.0) < 1.5 / FPS, onset  # only the cut into the film


def test_a_cut_inside_a_film_is_one_capture_at_the_cut():
    frames = [text_page(29)] * 30 + film(180, 50, cut_at=90) + [text_page(30)] * 60
    onset, _, _, _ = detections(frames)
    # the cut into the film, the film's own cut, the cut out of it
    assert len(onset) == 3, onset
    np.testing.assert_allclose(onset, [1.0, 4.0, 7.0], atol=1.5 / FPS)


# --------------------------------------------------------------------------- colour


def test_a_colour_only_change_needs_the_chroma():
    y = text_page(31, bg=101, ink=230)
    red = (np.full((H // 2, W // 2), 110, np.uint8), np.full((H // 2, W // 2), 190, np.uint8))
    green = (np.full((H // 2, W // 2), 100, np.uint8), np.full((H // 2, W // 2), 80, np.uint8))
    frames = [y] * 120
    chroma = [red] * 60 + [green] * 60
    t = detections(frames, chroma=chroma)[0]
    assert len(t) == 1 and abs(t[0] - 2.0) < 0.5 / FPS
    assert captures(frames).size == 0  # the same luma: without chroma nothing changed


def test_dark_theme_to_dark_theme_a_few_gray_levels_apart_is_a_change():
    a = text_page(32, bg=30, ink=200)
    b = a.copy()
    b[a == 30] = 34  # the background moves by 4 gray levels, the text stays
    t = captures(with_noise([a] * 60 + [b] * 60, sigma=0.7))
    assert len(t) == 1 and abs(t[0] - 2.0) < 0.5 / FPS


# --------------------------------------------------------------------------- scrolls


def scrolled(page: np.ndarray, lines: int, line_px: int = 9) -> np.ndarray:
    out = page.copy()
    k = lines * line_px
    out[:H - k] = page[k:]
    out[H - k:] = text_page(99)[H - k:]  # new text scrolls in at the bottom
    return out


def test_a_scroll_of_a_few_lines_is_no_change_a_page_is():
    page = text_page(33)
    small = scrolled(page, 3)  # 27 px of 180
    big = text_page(34)
    frames = [page] * 60 + [small] * 60 + [big] * 60
    onset = captures(with_noise(frames))
    assert len(onset) == 1 and abs(onset[0] - 4.0) < 0.5 / FPS, onset


def test_explain_shift_finds_a_fractional_scroll():
    page = text_page(35).astype(np.float32)
    k = 9.5
    rows = np.arange(H, dtype=np.float32) + k
    lo = np.clip(np.floor(rows).astype(int), 0, H - 1)
    hi = np.clip(lo + 1, 0, H - 1)
    f = rows - np.floor(rows)
    moved = (page[lo] * (1 - f)[:, None] + page[hi] * f[:, None]).round().astype(np.uint8)
    sh = explain_shift(page.astype(np.uint8), moved, 8, 15.0, 6)
    assert sh is not None and sh.axis == 0 and abs(sh.pixels - k) <= 0.25
    assert sh.unexplained[:-2].sum() <= 3  # only the band that scrolled in is unexplained


# --------------------------------------------------------------------------- structure


def test_structure_counts_groups_by_their_boxes():
    m = np.zeros((23, 40), bool)
    m[2:20, 5:30] = np.random.default_rng(0).random((18, 25)) > 0.4  # a spread change (a file switch)
    spread = structure(m)
    c = np.zeros((23, 40), bool)
    c[18:21, 30:38] = True  # a toast
    c[0, 0] = c[22, 39] = True  # two stray blocks far apart
    assert spread > 0.4 and structure(c) < 0.04
    assert len(groups(c)) == 3
    bar = np.zeros((23, 40), bool)
    bar[22, :] = True  # a full-width progress bar: one row counts a third
    assert structure(bar) == pytest.approx(40 / 3 / 920)


# --------------------------------------------------------------------------- revisits


def test_a_revisit_points_back_to_the_earlier_picture():
    a, b, c = text_page(40), text_page(41), text_page(42)
    frames = with_noise([a] * 60 + [b] * 60 + [c] * 60 + [b] * 60)
    onset, capture, revisit, cols = detections(frames)
    assert len(onset) == 3
    np.testing.assert_allclose(onset, [2.0, 4.0, 6.0], atol=0.5 / FPS)
    assert revisit[0] == 0 and revisit[1] == 0
    back = capture[2] - revisit[2] / FPS
    assert abs(back - capture[0]) < 0.5 / FPS, (revisit, capture)


# --------------------------------------------------------------------------- mechanics


def test_pts_and_fps_agree_and_reset_forgets():
    frames = with_noise([text_page(15)] * 40 + [text_page(16)] * 40)
    by_fps = score_frames(frames, fps=FPS)
    by_pts = score_frames(frames, pts=np.arange(len(frames)) / FPS)
    for m in (*PYTHON_METRICS, *AUX_COLUMNS):
        np.testing.assert_allclose(by_fps[m], by_pts[m])
    sc = FrameScorer(fps=FPS)
    first = [sc.update(f)["event"] for f in frames]
    sc.reset()
    again = [sc.update(f)["event"] for f in frames]
    assert first == again and max(first) > 0


def test_odd_frame_sizes_are_covered_to_the_edge():
    sc = FrameScorer(fps=FPS)
    a = np.full((97, 211), 200, np.uint8)
    b = a.copy()
    b[:, 200:] = 0  # only the last few columns change
    sc.update(a)
    assert sc.update(b)["blocks"] > 0
    sc = FrameScorer(fps=FPS)
    u = np.full((49, 106), 128, np.uint8)
    sc.update(a, chroma=(u, u))
    for _ in range(12):
        row = sc.update(b, chroma=(u, u))
    assert row["event"] == 0.0  # a thin strip at the edge: a column counts a third of its box


def test_bad_frames_and_parameters_are_refused():
    with pytest.raises(ScoringError, match="unknown scorer parameter"):
        FrameScorer(W, H, thresholdd=3)
    with pytest.raises(ScoringError, match="unknown event parameter"):
        FrameScorer(W, H, event_nope=3)
    with pytest.raises(ScoringError, match="fps"):
        FrameScorer(W, H, fps=0)
    sc = FrameScorer(W, H)
    with pytest.raises(ScoringError, match="uint8"):
        sc.update(np.zeros((H, W), np.float32))
    with pytest.raises(ScoringError, match="shape"):
        sc.update(np.zeros((H + 2, W), np.uint8))
    with pytest.raises(ScoringError, match="chroma"):
        sc.update(np.zeros((H, W), np.uint8), chroma=(np.zeros((H, W), np.uint8),) * 2)
