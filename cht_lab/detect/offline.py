"""Offline scoring: decode a finished recording once and score every frame (no captures)."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Generator, Iterator, Protocol

import numpy as np
import pandas as pd

from cht_lab.detect.chunks import ChunkedReader, default_workers, plan_chunks
from cht_lab.detect.decode import AnalysisPlan, analysis_size, build_analysis_args, choose_backend
from cht_lab.detect.reader import AnalysisReader, FrameAnalysis
from cht_lab.ffmpeg import VideoHeader, video_header

# score_recording(fast_decode=True): the CPU decoder skips H.264's in-loop deblocking filter (a
# quarter of a 1080p decode). Off by default: the decoder's references are then unfiltered, the error
# builds up until the next keyframe, and on low-bitrate screen content that moves captures
# (benchmarks/throughput.py --check-f1 compares every sample). Never used live.
FAST_DECODE = ("-skip_loop_filter", "all")


class AnalysisFrames(Protocol):
    """The analysis frames of a recording, in order: one decode (AnalysisReader) or chunks (ChunkedReader)."""

    error: str | None

    def __iter__(self) -> Iterator[FrameAnalysis]: ...

    def close(self) -> None: ...


def open_analysis(path: str | os.PathLike[str], header: VideoHeader, backend: str, *, fast_decode: bool = False,
                  workers: int | None = None) -> AnalysisFrames:
    """Start decoding a finished recording's analysis frames (`backend` resolved: "cpu" or "cuda").

    On the CPU, keyframe-aligned chunks decode side by side (cht_lab.detect.chunks) when the file
    allows an exact cut; `workers` (None: one per CPU, at most 4; 1: one decode, as live).
    """
    p = Path(path)
    fast = list(FAST_DECODE) if fast_decode and backend == "cpu" else []  # NVDEC ignores it
    workers = default_workers() if workers is None else max(1, int(workers))
    chunks = plan_chunks(p, workers, header) if backend == "cpu" else []

    def make_plan(input_args: list[str], threads: int | None = None) -> AnalysisPlan:
        return build_analysis_args([*fast, *input_args], backend=backend, src_width=header.width,
                                   src_height=header.height, threads=threads)

    if len(chunks) > 1:
        return ChunkedReader(p, chunks, lambda args: make_plan(args, threads=1), workers)
    return AnalysisReader(make_plan(["-i", str(p)]), path=p, reuse=True, name="score")


def score_recording(path: str | os.PathLike[str], *, backend: str = "auto", segment: int = 0,
                    ts_offset: float = 0.0, progress: bool = False, scorer_params: dict[str, Any] | None = None,
                    fast_decode: bool = False, workers: int | None = None) -> pd.DataFrame:
    """Decode a recording once and score every frame.

    Returns columns segment(int32) frame_index(int64) pts(f64) ts(f64) score(f32: ffmpeg's
    scene score) and one float32 column per Python metric (scoring.PYTHON_METRICS) and per aux
    column (scoring.AUX_COLUMNS: the event metric's onset and revisit, in frames); `ts = pts +
    ts_offset`. `df.attrs` holds backend, backend_reason, path, width/height (source), fps and
    error (set when decoding stopped early; a truncated fMP4 simply ends at its last complete
    fragment). `fast_decode=True` skips the deblocking filter (see FAST_DECODE): faster, but the
    scores are no longer a live session's and captures can move. `workers`: single-threaded CPU decodes
    run side by side on keyframe-aligned chunks (cht_lab.detect.chunks; None: one per CPU, at most
    4; 1: one decode, as live); the results are the same either way.
    Raises MediaError naming the file for missing / unreadable / video-less input.
    """
    from cht_lab.detect.scoring import AUX_COLUMNS, PYTHON_METRICS, FrameScorer

    p = Path(path)
    v = video_header(p)
    used, reason = choose_backend(backend)
    fps = v.fps if v.fps and v.fps > 0 else 30.0
    reader = open_analysis(p, v, used, fast_decode=fast_decode, workers=workers)
    width, height = analysis_size(v.width, v.height)
    scorer = FrameScorer(width, height, fps=fps, **(scorer_params or {}))
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
    frames: Generator[FrameAnalysis, None, None] = iter(reader)  # type: ignore[assignment]
    try:
        for fa in frames:
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
        frames.close()  # a chunked reader's pool shuts down with its iteration
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


__all__ = ["AnalysisFrames", "open_analysis", "score_recording"]
