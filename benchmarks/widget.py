"""Panel responsiveness on one hour of scores: plot redraw and slider-to-updated-panel time.

    python benchmarks/widget.py [--moves 9] [--repeat 7]

One hour at 30 fps is 108,000 score rows (synthetic: gamma noise, a few hundred cut spikes,
labels at the cuts). Targets: a redraw and a slider move each ≤ 150 ms. References measured
in the same run: the same plot without decimation, and the naive redraw (a new Figure,
tight_layout, matplotlib's PNG writer). The slider time is everything `slider.value = x` does
before it returns — detections from stored scores, count, plot PNG, gallery captions; the
thumbnails are extracted afterwards in the background and are not part of it (this session has
no recording, so the gallery shows placeholders).
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

TARGET_MS = 150.0
FPS = 30
ROWS = 3600 * FPS


def synthetic_hour(seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    from cht_lab.scoring import DEFAULT_METRIC, METRICS

    rng = np.random.default_rng(seed)
    ts = np.arange(ROWS, dtype=np.float64) / FPS
    cuts = np.sort(rng.choice(np.arange(FPS, ROWS - FPS), 300, replace=False))
    table: dict[str, np.ndarray] = {
        "segment": np.zeros(ROWS, np.int32), "frame_index": np.arange(ROWS, dtype=np.int64),
        "pts": ts, "ts": ts,
    }
    for k, metric in enumerate(METRICS):
        values = rng.gamma(1.0, 0.01 * (k + 1), ROWS)
        values[cuts] = rng.uniform(0.35, 1.0, cuts.size) * (k + 1)
        table[metric] = values.astype(np.float32)
    table["score"] = table[DEFAULT_METRIC]
    labels = pd.DataFrame({"time": ts[cuts], "end": np.nan, "kind": "cut", "note": ""})
    return pd.DataFrame(table), labels, DEFAULT_METRIC


def _median_ms(fn, repeat: int) -> float:
    fn()  # warm-up: fonts, caches
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def naive_redraw(scores: pd.DataFrame, metric: str, threshold: float, detections: pd.DataFrame,
                 labels: pd.DataFrame) -> bytes:
    """What a first version would do: a new Figure each time, every point, tight_layout, savefig."""
    from matplotlib.figure import Figure

    from cht_lab.plotting import plot_scores

    fig = Figure(figsize=(9.6, 2.8), dpi=100)
    ax = fig.add_subplot(111)
    plot_scores(ax, scores, metric, threshold, detections, labels, columns=10**9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def build_session(root: Path, scores: pd.DataFrame, labels: pd.DataFrame) -> Path:
    """A session directory holding only an index with the hour of scores (and labels.csv)."""
    from cht_lab.index import SessionIndex

    session_dir = root / "20240101_090000"
    session_dir.mkdir(parents=True)
    idx = SessionIndex(session_dir, writer=True)
    try:
        idx.append_scores(scores)
    finally:
        idx.close()
    labels.to_csv(session_dir / "labels.csv", index=False)
    return session_dir


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--moves", type=int, default=9, help="slider moves to time (median)")
    ap.add_argument("--repeat", type=int, default=7, help="redraws to time (median)")
    args = ap.parse_args(argv)

    from cht_lab.decision import DEFAULT_MIN_GAP
    from cht_lab.session import open_session
    from cht_lab.tuning import scenes
    from cht_lab.widget_plot import ScorePlot

    scores, labels, metric = synthetic_hour()
    threshold = 0.3
    detections = scenes(scores, threshold, metric=metric, min_gap=DEFAULT_MIN_GAP)
    plot = ScorePlot()
    rows: list[tuple[str, float, float | None]] = []

    redraw = _median_ms(lambda: plot.render(scores, metric, threshold, detections, labels), args.repeat)
    undecimated = _median_ms(lambda: plot.render(scores, metric, threshold, detections, labels, columns=10**9),
                             args.repeat)
    naive = _median_ms(lambda: naive_redraw(scores, metric, threshold, detections, labels), max(3, args.repeat // 2))
    rows += [("score plot redraw, 1 h (108,000 rows), decimated", redraw, TARGET_MS),
             ("  same plot without decimation (reference)", undecimated, None),
             ("  naive redraw: new Figure + tight_layout + savefig (reference)", naive, None)]

    with tempfile.TemporaryDirectory(prefix="cht_lab-bench-") as tmp:
        session = open_session(build_session(Path(tmp), scores, labels))
        t0 = time.perf_counter()
        panel = session.panel()
        build_ms = (time.perf_counter() - t0) * 1000
        try:
            hi = panel.slider.max
            values = np.linspace(0.05 * hi, 0.6 * hi, args.moves)
            panel.slider.value = float(values[-1])  # warm-up
            move_times, counts = [], []
            for v in values:
                t0 = time.perf_counter()
                panel.slider.value = float(v)
                move_times.append((time.perf_counter() - t0) * 1000)
                counts.append(panel.detection_count)
            slider = statistics.median(move_times)
            rescan = _median_ms(lambda: session.scenes(float(values[0])), max(3, args.moves // 2))
            stats = panel.update_stats
        finally:
            panel.close()
    rows += [("slider move → updated panel (median of %d moves)" % args.moves, slider, TARGET_MS),
             ("  session.scenes() alone, re-reading the index (reference)", rescan, None),
             ("panel creation, 1 h session (scores, sweep, first render)", build_ms, None)]

    print(f"# widget benchmark: {ROWS:,} rows, metric {metric}, detections {min(counts)}–{max(counts)} "
          f"over the moves; update path {stats['mode']}, {stats['applies']} applies, {stats['errors']} errors")
    print()
    print("| measurement | ms | vs target / reference |")
    print("|---|---:|---|")
    for name, ms, target in rows:
        if target is not None:
            verdict = f"{ms / target:.2f}× of the {target:.0f} ms target ({'ok' if ms <= target else 'OVER'})"
        elif name.strip().startswith(("same plot", "naive")):
            verdict = f"decimated redraw is {ms / redraw:.1f}× faster"
        elif "session.scenes" in name:
            verdict = f"{ms / slider:.2f}× the whole slider move"
        else:
            verdict = ""
        print(f"| {name} | {ms:.1f} | {verdict} |")
    return 0 if redraw <= TARGET_MS and slider <= TARGET_MS else 1


if __name__ == "__main__":
    sys.exit(main())
