"""Offline scoring: decode a finished recording once and score every frame (no captures)."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cht_lab.detect.decode import build_analysis_args, choose_backend
from cht_lab.detect.reader import AnalysisReader
from cht_lab.ffmpeg import video_header

# score_recording(fast_decode=True): the CPU decoder skips H.264's in-loop deblocking filter (a
# quarter of a 1080p decode). Off by default: the decoder's references are then unfiltered, the error
# builds up until the next keyframe, and on low-bitrate screen content that moves captures
# (benchmarks/throughput.py --check-f1 compares every sample). Never used live.
FAST_DECODE = ("-skip_loop_filter", "all")


def score_recording(path: str | os.PathLike[str], *, backend: str = "auto", segment: int = 0,
                    ts_offset: float = 0.0, progress: bool = False, scorer_params: dict[str, Any] | None = None,
                    fast_decode: bool = False) -> pd.DataFrame:
    """Decode a recording once and score every frame.

    Returns columns segment(int32) frame_index(int64) pts(f64) ts(f64) score(f32: ffmpeg's
    scene score) and one float32 column per Python metric (scoring.PYTHON_METRICS) and per aux
    column (scoring.AUX_COLUMNS: the event metric's onset and revisit, in frames); `ts = pts +
    ts_offset`. `df.attrs` holds backend, backend_reason, path, width/height (source), fps and
    error (set when decoding stopped early; a truncated fMP4 simply ends at its last complete
    fragment). `fast_decode=True` skips the deblocking filter (see FAST_DECODE): faster, but the
    scores are no longer a live session's and captures can move.
    Raises MediaError naming the file for missing / unreadable / video-less input.
    """
    from cht_lab.detect.scoring import AUX_COLUMNS, PYTHON_METRICS, FrameScorer

    p = Path(path)
    v = video_header(p)
    used, reason = choose_backend(backend)
    fps = v.fps if v.fps and v.fps > 0 else 30.0
    source = [*FAST_DECODE, "-i", str(p)] if fast_decode and used == "cpu" else str(p)  # NVDEC ignores it
    plan = build_analysis_args(source, backend=used, src_width=v.width, src_height=v.height)
    scorer = FrameScorer(plan.width, plan.height, fps=fps, **(scorer_params or {}))
    expected = v.frames_estimate
    n_hint = max(int((expected or 0) * 1.05) + 16, 1024)
    cols_pts = np.empty(n_hint, np.float64)
    cols_scene = np.empty(n_hint, np.float32)
    metrics = {m: np.empty(n_hint, np.float32) for m in (*PYTHON_METRICS, *AUX_COLUMNS)}
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=expected, desc=p.name, unit="frame", leave=False)
    n = 0
    reader = AnalysisReader(plan, path=p, reuse=True, name="score")
    try:
        for fa in reader:
            if n == len(cols_pts):  # more frames than the header promised: grow
                cols_pts = np.resize(cols_pts, 2 * n)
                cols_scene = np.resize(cols_scene, 2 * n)
                metrics = {m: np.resize(a, 2 * n) for m, a in metrics.items()}
            pts = fa.pts if math.isfinite(fa.pts) else (cols_pts[n - 1] + 1.0 / fps if n else 0.0)
            row = scorer.update(fa.gray, pts, fa.chroma)
            cols_pts[n] = pts
            cols_scene[n] = fa.scene
            for m, col in metrics.items():
                col[n] = row[m]
            n += 1
            if bar is not None and n % 64 == 0:
                bar.update(64)
    finally:
        reader.close()
        if bar is not None:
            bar.update(n % 64)
            bar.close()
    df = pd.DataFrame({
        "segment": np.full(n, segment, np.int32),
        "frame_index": np.arange(n, dtype=np.int64),
        "pts": cols_pts[:n],
        "ts": cols_pts[:n] + float(ts_offset),
        "score": cols_scene[:n],
        **{m: a[:n] for m, a in metrics.items()},
    })
    df.attrs.update(backend=used, backend_reason=reason, path=str(p), width=v.width, height=v.height, fps=fps,
                    error=reader.error)
    return df


__all__ = ["score_recording"]
