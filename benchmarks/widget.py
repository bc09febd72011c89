"""Panel responsiveness on one hour of scores: plot redraw and slider-to-updated-panel time.

    python benchmarks/widget.py [--moves 9] [--repeat 7]

One hour at 30 fps is 108,000 score rows (synthetic: gamma noise, 300 cut spikes per hour,
labels at the cuts). Targets: a redraw and a slider move each ≤ 150 ms. The redraw is what a
live batch of scores costs (the line's data replaced, the axes kept), for one rendition; the panel
draws two (960 px, and 640 px at 130 dpi for narrow boxes: `cht_lab.panel.plot.ScorePlotView`),
timed in their own row. References measured in the
same run: the axes rebuilt (a new metric or labels), the same without decimation (1 h and 4 h: decimation keeps the cost
bounded as sessions grow), and the naive redraw (a new Figure, tight_layout, matplotlib's PNG
writer). The slider time is everything `slider.value = x` does
before it returns — detections from stored scores, skipped peaks, count, both plot PNGs
(threshold-only redraw: the axes are kept), gallery captions; the
thumbnails are extracted afterwards in the background and are not part of it (this session has
no recording, so the gallery shows placeholders).
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from _common import Timing, timing
from _common import median_ms as _median_ms

TARGET_MS = 150.0
FPS = 30
ROWS = 3600 * FPS


def synthetic_hours(hours: int = 1, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """Scores in [0, 1] like every cht_lab metric: noise near 0, 300 cuts per hour at 0.35–1."""
    from cht_lab.detect.scoring import DEFAULT_METRIC, METRICS

    rows = ROWS * hours
    rng = np.random.default_rng(seed)
    ts = np.arange(rows, dtype=np.float64) / FPS
    cuts = np.sort(rng.choice(np.arange(FPS, rows - FPS), 300 * hours, replace=False))
    table: dict[str, np.ndarray] = {
        "segment": np.zeros(rows, np.int32), "frame_index": np.arange(rows, dtype=np.int64),
        "pts": ts, "ts": ts,
    }
    for metric in METRICS:
        values = rng.gamma(1.0, 0.01, rows)
        values[cuts] = rng.uniform(0.35, 1.0, cuts.size)
        table[metric] = values.astype(np.float32)
    labels = pd.DataFrame({"time": ts[cuts], "end": np.nan, "kind": "cut", "note": ""})
    return pd.DataFrame(table), labels, DEFAULT_METRIC


def naive_redraw(scores: pd.DataFrame, metric: str, threshold: float, detections: pd.DataFrame,
                 labels: pd.DataFrame) -> bytes:
    """What a first version would do: a new Figure each time, every point, tight_layout, savefig."""
    from matplotlib.figure import Figure

    from cht_lab.panel.plotting import plot_scores

    fig = Figure(figsize=(9.6, 2.8), dpi=100)
    ax = fig.add_subplot(111)
    plot_scores(ax, scores, metric, threshold, detections, labels, columns=10**9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def build_session(root: Path, scores: pd.DataFrame, labels: pd.DataFrame) -> Path:
    """A session directory holding only an index with the hour of scores (and labels.csv)."""
    from cht_lab.index.session_index import SessionIndex

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

    from cht_lab.detect.decision import DEFAULT_MIN_GAP
    from cht_lab.session import open_session
    from cht_lab.tuning.sweep import scenes
    from cht_lab.panel.plot import ScorePlot, ScorePlotView

    threshold = 0.3
    plot = ScorePlot()
    rows: list[tuple[str, Timing, float | None]] = []
    for hours in (1, 4):
        scores, labels, metric = synthetic_hours(hours)
        detections = scenes(scores, threshold, metric=metric, min_gap=DEFAULT_MIN_GAP)
        # a live redraw: the session grew by a second (30 rows) since the last one, same labels
        growing = iter([scores.iloc[: len(scores) - 30 * k] for k in range(args.repeat + 1, -1, -1)])
        plot.render(next(growing), metric, threshold, detections, labels, full=True)
        redraw = _median_ms(lambda: plot.render(next(growing), metric, threshold, detections, labels),
                            args.repeat)
        rebuilt = _median_ms(lambda: plot.render(scores, metric, threshold, detections, labels, full=True),
                             args.repeat)
        undecimated = _median_ms(lambda: plot.render(scores, metric, threshold, detections, labels,
                                                     columns=10**9, full=True), args.repeat)
        rows += [(f"score plot redraw, {hours} h ({len(scores):,} rows), new scores (live batch)", redraw,
                  TARGET_MS if hours == 1 else None),
                 ("  same plot, axes rebuilt (metric or labels changed)", rebuilt, redraw),
                 ("  same plot, axes rebuilt, without decimation (reference)", undecimated, redraw)]
        if hours == 1:
            naive = _median_ms(lambda: naive_redraw(scores, metric, threshold, detections, labels),
                               max(3, args.repeat // 2))
            rows.append(("  naive redraw: new Figure + tight_layout + savefig (reference)", naive, redraw))
            redraw_1h = redraw
            thresholds = iter(np.resize(np.linspace(0.1, 0.6, 5), 1000))
            moved = _median_ms(lambda: plot.render(scores, metric, next(thresholds), detections, labels),
                               args.repeat)
            rows.append(("  threshold-only redraw (same scores: line and marks moved)", moved, redraw))
            view = ScorePlotView()
            growing = iter([scores.iloc[: len(scores) - 30 * k] for k in range(args.repeat + 1, -1, -1)])
            view.render(next(growing), metric, threshold, detections, labels, full=True)
            both = _median_ms(lambda: view.render(next(growing), metric, threshold, detections, labels),
                              args.repeat)
            view.close()
            rows.append(("  both renditions (what a panel draws), new scores", both, redraw))
    scores, labels, metric = synthetic_hours(1)

    with tempfile.TemporaryDirectory(prefix="cht_lab-bench-") as tmp:
        session = open_session(build_session(Path(tmp), scores, labels))
        t0 = time.perf_counter()
        panel = session.panel()
        build_ms = timing([(time.perf_counter() - t0) * 1000])
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
            slider = timing(move_times)
            rescan = _median_ms(lambda: session.scenes(float(values[0])), max(3, args.moves // 2))
            stats = panel.update_stats
        finally:
            panel.close()
    rows += [("slider move → updated panel, 1 h (median of %d moves)" % args.moves, slider, TARGET_MS),
             ("  session.scenes() alone, re-reading the index (reference)", rescan, None),
             ("panel creation, 1 h session (scores, sweep, first render)", build_ms, None)]

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"# widget benchmark on {os.cpu_count()} CPUs (load average {load:.1f} at the end): metric {metric}, detections {min(counts)}–{max(counts)} "
          f"over the moves; update path {stats['mode']}, {stats['applies']} applies, {stats['errors']} errors")
    print()
    print("| measurement | median ms | best ms | median vs target / reference |")
    print("|---|---:|---:|---|")
    for name, ms, ref in rows:
        if ref is None:
            verdict = ""
        elif name.startswith(" "):
            verdict = f"{ms / ref:.2f}× the live redraw above"
        else:
            verdict = f"{ms / ref:.2f}× the {ref:.0f} ms target ({'ok' if ms <= ref else 'OVER'})"
        print(f"| {name} | {ms:.1f} | {ms.best:.1f} | {verdict} |")
    return 0 if redraw_1h <= TARGET_MS and slider <= TARGET_MS else 1


if __name__ == "__main__":
    sys.exit(main())
