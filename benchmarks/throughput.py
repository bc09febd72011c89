"""Offline scoring throughput vs the decode floor and vs PySceneDetect, measured in one run.

    python benchmarks/throughput.py                 # 1080p30 and 2160p30, 60 s each, CPU backend
    python benchmarks/throughput.py --sizes 1080 --repeat 3 --backend cuda
    python benchmarks/throughput.py --check-f1      # fast decode vs full decode on every sample

Clips are rendered once (cht_lab.tools.samples.render.render_screen_clip: slides-like screen
content, H.264 fMP4 like cht's recorder) and cached in benchmarks/.cache/. Each repeat times, back
to back (benchmarks/_common.interleave: the first one rotates):

- decode-only:   `ffmpeg -i clip -map 0:v:0 -f null -` (the floor: every frame decoded with
                 ffmpeg's defaults, nothing else; the video only, so a little stricter than a
                 plain `ffmpeg -i clip -f null -`, which decodes the audio too)
- cht_lab:       score_recording(clip) as it is called (header + one decode + scale + scene
                 score + Python metrics)
- cht_lab 1 decode: score_recording(clip, workers=1): one decode, as a live session runs it (the
                 default decodes keyframe-aligned chunks side by side: cht_lab.detect.chunks)
- analysis decode: the same decode as cht_lab, its frames read and scored by nothing (the floor
                 of the pipeline: decode + downscale + scene score + reading the frames)
- cht_lab fast:  score_recording(clip, fast_decode=True): H.264's deblocking filter skipped
- PySceneDetect: `scenedetect.detect(clip, ContentDetector())` at its defaults (OpenCV decode)

Reported: frames per second (median of the repeats), each ratio to decode-only and to
PySceneDetect from the median wall times, the same from median CPU times (this process + ffmpeg;
what the work costs, whatever the neighbours do), and each tool's detection F1 against the clip's
labels. The ratios are what to compare, not the absolute fps.

--check-f1 scores every bundled sample that is on disk twice (full decode, fast decode) and
compares the default metric's captures (decision.select_scenes at DEFAULT_THRESHOLDS) and their
F1 against labels.csv (tuning.matching.match); exit status 1 when any capture differs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from _common import CACHE, Run, cpu_ratio, interleave, load_note, measure, median_wall, reference_decode, render_once

from cht_lab.ffmpeg import find_ffmpeg, probe  # _common put the repository on sys.path

SIZES = {720: (1280, 720), 1080: (1920, 1080), 1440: (2560, 1440), 2160: (3840, 2160)}
TARGET_DECODE = 1.0  # cht_lab vs decode-only
TARGET_PYSCENEDETECT = 2.2


def clip_path(height: int, duration: float, fps: int) -> tuple[Path, pd.DataFrame]:
    """The cached benchmark clip (rendered on first use) and its labels."""
    w, h = SIZES[height]
    path = CACHE / f"screen_{w}x{h}_{fps}fps_{int(duration)}s.mp4"
    labels_path = path.with_suffix(".labels.csv")
    if not labels_path.is_file():
        path.unlink(missing_ok=True)  # a clip without its labels is rendered again

    def render(tmp: Path) -> None:
        from cht_lab.tools.samples.render import render_screen_clip

        labels = render_screen_clip(tmp, width=w, height=h, fps=fps, duration=duration, seed=11, audio=True)
        labels.to_csv(labels_path, index=False)

    render_once(path, render)
    return path, pd.read_csv(labels_path)


def captures(df: pd.DataFrame) -> np.ndarray:
    """Positions of the frames the default metric captures at its default threshold."""
    from cht_lab.detect.decision import select_scenes
    from cht_lab.detect.scoring import DEFAULT_METRIC, DEFAULT_THRESHOLDS

    return select_scenes(df["ts"].to_numpy(), df[DEFAULT_METRIC].to_numpy(), DEFAULT_THRESHOLDS[DEFAULT_METRIC])


def f1(times: Any, labels: Any) -> float:
    from cht_lab.tuning.matching import match

    return match(np.asarray(times, float), labels).f1


def score(path: Path, backend: str, fast: bool, workers: int | None = None) -> pd.DataFrame:
    from cht_lab.detect.offline import score_recording

    return score_recording(path, backend=backend, fast_decode=fast, workers=workers)


def analysis_decode(path: Path, backend: str) -> int:
    """Frames of score_recording's decode, scored by nothing: the floor of its pipeline."""
    from cht_lab.detect.decode import choose_backend
    from cht_lab.detect.offline import open_analysis
    from cht_lab.ffmpeg import video_header

    reader = open_analysis(path, video_header(path), choose_backend(backend)[0])
    try:
        return sum(1 for _ in reader)
    finally:
        reader.close()


def pyscenedetect_available() -> bool:
    try:
        import scenedetect  # noqa: F401
    except ImportError:
        return False
    return True


def pyscenedetect(path: Path) -> list[float]:
    """Cut times of `scenedetect.detect(path, ContentDetector())`: the start of every later scene."""
    from scenedetect import ContentDetector, detect

    starts = [start for start, _ in detect(str(path), ContentDetector())[1:]]
    return [s.seconds if isinstance(getattr(type(s), "seconds", None), property) else s.get_seconds() for s in starts]


def throughput(args: argparse.Namespace) -> list[dict[str, Any]]:
    results = []
    for size in args.sizes:
        path, labels = clip_path(size, args.duration, args.fps)
        info = probe(path)
        frames = info.video.frames if info.video else 0
        candidates = {"decode-only": reference_decode(path),
                      "cht_lab": lambda p=path: score(p, args.backend, False)}
        if not args.no_parts:
            candidates["cht_lab 1 decode"] = lambda p=path: score(p, args.backend, False, workers=1)
            candidates["analysis decode"] = lambda p=path: analysis_decode(p, args.backend)
        if not args.no_fast:
            candidates["cht_lab fast"] = lambda p=path: score(p, args.backend, True)
        if not args.no_pyscenedetect and pyscenedetect_available():
            candidates["PySceneDetect"] = lambda p=path: pyscenedetect(p)

        def report(r: int, runs: dict[str, Run], size: int = size) -> None:
            times = ", ".join(f"{n} {x.wall:.2f} s (CPU {x.cpu:.2f} s)" for n, x in runs.items())
            print(f"  {size}p run {r + 1}: {times}", flush=True)

        runs = interleave(candidates, args.repeat, report=report)
        ref = runs["decode-only"]
        row: dict[str, Any] = {"clip": path.name, "frames": frames, "events": len(labels), "repeat": args.repeat,
                               "decode_only_fps": round(frames / median_wall(ref), 1)}
        psd = runs.get("PySceneDetect")
        if "analysis decode" in runs:
            row["analysis_decode_vs_decode_only"] = round(median_wall(ref) / median_wall(runs["analysis decode"]), 3)
            row["analysis_decode_vs_decode_only_cpu"] = round(cpu_ratio(runs["analysis decode"], ref), 3)
        for name in ("cht_lab", "cht_lab 1 decode", "cht_lab fast"):
            if name not in runs:
                continue
            key = name.replace(" ", "_")
            df = runs[name][-1].result
            if len(df) != frames:
                print(f"  warning: {name} scored {len(df)} frames, probe says {frames}")
            row[f"{key}_backend"] = df.attrs.get("backend", "?")
            row[f"{key}_fps"] = round(frames / median_wall(runs[name]), 1)
            row[f"{key}_vs_decode_only"] = round(median_wall(ref) / median_wall(runs[name]), 3)
            row[f"{key}_vs_decode_only_cpu"] = round(cpu_ratio(runs[name], ref), 3)
            if psd:
                row[f"{key}_vs_pyscenedetect"] = round(median_wall(psd) / median_wall(runs[name]), 2)
                row[f"{key}_vs_pyscenedetect_cpu"] = round(cpu_ratio(runs[name], psd), 2)
            row[f"{key}_f1"] = round(f1(df["ts"].to_numpy()[captures(df)], labels), 3)
        if psd:
            row["pyscenedetect_fps"] = round(frames / median_wall(psd), 1)
            row["decode_only_vs_pyscenedetect"] = round(median_wall(psd) / median_wall(ref), 2)
            row["pyscenedetect_f1"] = round(f1(psd[-1].result, labels), 3)
        results.append(row)
        print(f"{size}p ({frames} frames): decode-only {row['decode_only_fps']:.0f} fps", flush=True)
        for name in ("cht_lab", "cht_lab 1 decode", "cht_lab fast"):
            key = name.replace(" ", "_")
            if f"{key}_fps" not in row:
                continue
            print(f"  {name:13s} ({row[f'{key}_backend']}) {row[f'{key}_fps']:.0f} fps = "
                  f"{row[f'{key}_vs_decode_only']:.2f}x decode-only (CPU {row[f'{key}_vs_decode_only_cpu']:.2f}x; "
                  f"target >= {TARGET_DECODE})"
                  + (f", {row[f'{key}_vs_pyscenedetect']:.2f}x PySceneDetect (CPU "
                     f"{row[f'{key}_vs_pyscenedetect_cpu']:.2f}x; target >= {TARGET_PYSCENEDETECT})" if psd else "")
                  + f"; F1 {row[f'{key}_f1']}", flush=True)
        if "analysis_decode_vs_decode_only" in row:
            print(f"  analysis decode, no scoring (the pipeline's floor): {row['analysis_decode_vs_decode_only']:.2f}x "
                  f"decode-only (CPU {row['analysis_decode_vs_decode_only_cpu']:.2f}x)", flush=True)
        if psd:
            print(f"  PySceneDetect {row['pyscenedetect_fps']:.0f} fps (decode-only is "
                  f"{row['decode_only_vs_pyscenedetect']:.1f}x it); F1 {row['pyscenedetect_f1']}", flush=True)
        elif not args.no_pyscenedetect:
            print("  PySceneDetect not installed (pip install 'cht_lab[bench]')")
    return results


# --------------------------------------------------------------------------- --check-f1


def sample_scores(d: Path, backend: str, fast: bool) -> tuple[pd.DataFrame, Run]:
    from cht_lab import layout
    from cht_lab.detect.offline import score_recording

    def run() -> pd.DataFrame:
        parts = [score_recording(s.path, backend=backend, segment=s.index, ts_offset=s.offset, fast_decode=fast)
                 for s in layout.discover_segments(d)]
        return pd.concat(parts, ignore_index=True)

    r = measure(run)
    return r.result, r


def check_f1(names: list[str] | None, backend: str, generate_missing: bool) -> list[dict[str, Any]]:
    """Full vs fast decode on every sample on disk: captures, F1, the largest change of the metric."""
    from cht_lab import layout
    from cht_lab.detect.scoring import DEFAULT_METRIC, DEFAULT_THRESHOLDS
    from cht_lab.tools.samples import SAMPLES, generate, sample_dir
    from cht_lab.tuning.labels import load_labels
    from cht_lab.tuning.matching import match

    print(f"default metric {DEFAULT_METRIC!r} at {DEFAULT_THRESHOLDS[DEFAULT_METRIC]}; backend {backend}", flush=True)
    rows = []
    for name in names or list(SAMPLES):
        d = sample_dir(name, generate_missing=False)
        if not layout.discover_segments(d) or not (d / layout.LABELS_CSV).is_file():
            if not generate_missing:
                print(f"{name}: not on disk ({d}); --generate-missing renders it into {CACHE / 'samples'}")
                rows.append({"sample": name, "skipped": "not on disk"})
                continue
            d = generate(root=CACHE / "samples", names=[name])[0]
        labels = load_labels(d / layout.LABELS_CSV)
        full, run_full = sample_scores(d, backend, False)
        fast, run_fast = sample_scores(d, backend, True)
        pos_full, pos_fast = captures(full), captures(fast)
        m_full = match(full["ts"].to_numpy()[pos_full], labels)
        m_fast = match(fast["ts"].to_numpy()[pos_fast], labels)
        same = len(full) == len(fast) and np.array_equal(pos_full, pos_fast)
        delta = (float(np.nanmax(np.abs(full[DEFAULT_METRIC].to_numpy(float) - fast[DEFAULT_METRIC].to_numpy(float))))
                 if len(full) == len(fast) else float("nan"))
        t_full = {round(float(t), 3) for t in full["ts"].to_numpy()[pos_full]}
        t_fast = {round(float(t), 3) for t in fast["ts"].to_numpy()[pos_fast]}
        only_full, only_fast = sorted(t_full - t_fast), sorted(t_fast - t_full)
        row = {"sample": name, "frames": len(full), "events": len(labels), "captures_full": len(pos_full),
               "captures_fast": len(pos_fast), "same_captures": bool(same), "f1_full": round(m_full.f1, 3),
               "f1_fast": round(m_fast.f1, 3), "max_metric_change": round(delta, 4),
               "only_full": only_full, "only_fast": only_fast,
               "cpu_fast_vs_full": round(run_full.cpu / run_fast.cpu, 2) if run_fast.cpu else None}
        rows.append(row)
        print(f"{name}: {row['frames']} frames, {row['events']} events; captures {row['captures_full']} -> "
              f"{row['captures_fast']} ({'same' if same else 'DIFFERENT'}: only full {only_full}, only fast "
              f"{only_fast}); F1 {row['f1_full']} -> {row['f1_fast']}; largest |change| of {DEFAULT_METRIC} "
              f"{row['max_metric_change']}; fast decode costs {1 / row['cpu_fast_vs_full']:.2f}x the CPU",
              flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1080, 2160], choices=sorted(SIZES))
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--fps", type=int, default=30)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--backend", default="cpu", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--no-pyscenedetect", action="store_true")
    ap.add_argument("--no-fast", action="store_true", help="do not time score_recording(fast_decode=True)")
    ap.add_argument("--no-parts", action="store_true",
                    help="do not time score_recording(workers=1) (one decode) and the analysis decode alone")
    ap.add_argument("--check-f1", action="store_true", help="fast vs full decode on every sample, then exit")
    ap.add_argument("--samples", nargs="+", help="with --check-f1: only these samples")
    ap.add_argument("--generate-missing", action="store_true",
                    help=f"with --check-f1: render samples that are not on disk into {CACHE / 'samples'}")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args(argv)

    print(f"{load_note()}; ffmpeg: {find_ffmpeg()}", flush=True)
    if args.check_f1:
        rows = check_f1(args.samples, args.backend, args.generate_missing)
        status = 0 if all(r.get("same_captures", True) for r in rows) else 1
    else:
        rows = throughput(args)
        status = 0
    print(f"({load_note()} at the end)")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return status


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
