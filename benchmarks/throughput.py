"""Offline scoring throughput vs the decode floor and vs PySceneDetect, measured in one run.

    python benchmarks/throughput.py                 # 1080p30 and 2160p30, 60 s each, CPU backend
    python benchmarks/throughput.py --sizes 1080 --repeat 3 --backend auto

Clips are rendered once (cht_lab.tools.samples.render.render_screen_clip: slides-like screen content, H.264
fMP4 like cht's recorder) and cached in benchmarks/.cache/. Each repeat times, back to back:

- decode-only: `ffmpeg -i clip -map 0:v:0 -f null -` (the floor: every frame decoded, nothing else)
- cht_lab:     cht_lab.detect.decode.score_recording(clip) (header + one decode + scale + scene score + metrics)
- PySceneDetect: `scenedetect.detect(clip, ContentDetector())` with its defaults (OpenCV decode)

Reported: frames per second (median of the repeats), the ratios cht_lab/decode-only (target >= 0.85)
and cht_lab/PySceneDetect (target >= 2), and each tool's detection F1 against the clip's labels.
Other processes share this machine's CPUs, so repeats are interleaved and the median is used; the
ratios are what to compare, not the absolute fps.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import pandas as pd  # noqa: E402

from cht_lab.ffmpeg import find_ffmpeg, probe  # noqa: E402

CACHE = REPO / "benchmarks" / ".cache"
SIZES = {720: (1280, 720), 1080: (1920, 1080), 1440: (2560, 1440), 2160: (3840, 2160)}


def clip_path(height: int, duration: float, fps: int) -> tuple[Path, pd.DataFrame]:
    """The cached benchmark clip (rendered on first use) and its labels."""
    w, h = SIZES[height]
    path = CACHE / f"screen_{w}x{h}_{fps}fps_{int(duration)}s.mp4"
    labels_path = path.with_suffix(".labels.csv")
    if path.is_file() and path.stat().st_size > 0 and labels_path.is_file():
        return path, pd.read_csv(labels_path)
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.mp4")
    t0 = time.perf_counter()
    print(f"rendering {path.name} (once; cached in {CACHE}) ...", flush=True)
    from cht_lab.tools.samples.render import render_screen_clip

    labels = render_screen_clip(tmp, width=w, height=h, fps=fps, duration=duration, seed=11, audio=True)
    labels.to_csv(labels_path, index=False)
    os.replace(tmp, path)
    print(f"  rendered in {time.perf_counter() - t0:.0f} s, {path.stat().st_size / 1e6:.1f} MB", flush=True)
    return path, labels


def f1_score(found: list[float], labels: pd.DataFrame, tolerance: float = 0.5) -> float:
    """F1 of detected times against labeled events (one capture per event within tolerance)."""
    import numpy as np

    found_a = np.asarray(sorted(found), float)
    used = np.zeros(len(found_a), bool)
    hits = 0
    for t in labels["time"]:
        inside = np.flatnonzero((np.abs(found_a - t) <= tolerance) & ~used)
        if inside.size:
            used[inside[0]] = True
            hits += 1
    precision = hits / len(found_a) if len(found_a) else 1.0
    recall = hits / len(labels) if len(labels) else 1.0
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def time_decode_only(path: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run([find_ffmpeg(), "-hide_banner", "-nostdin", "-loglevel", "error", "-i", str(path),
                    "-map", "0:v:0", "-f", "null", "-"], check=True)
    return time.perf_counter() - t0


def time_cht_lab(path: Path, backend: str) -> tuple[float, pd.DataFrame]:
    from cht_lab.detect.offline import score_recording

    t0 = time.perf_counter()
    df = score_recording(path, backend=backend)
    return time.perf_counter() - t0, df


def cht_lab_captures(df: pd.DataFrame) -> list[float]:
    from cht_lab.detect.decision import select_scenes
    from cht_lab.detect.scoring import DEFAULT_METRIC, DEFAULT_THRESHOLDS

    pos = select_scenes(df["ts"], df[DEFAULT_METRIC], DEFAULT_THRESHOLDS[DEFAULT_METRIC])
    return df["ts"].to_numpy()[pos].tolist()


def time_pyscenedetect(path: Path) -> tuple[float, list[float]] | None:
    try:
        from scenedetect import ContentDetector, detect
    except ImportError:
        return None
    t0 = time.perf_counter()
    scenes = detect(str(path), ContentDetector())
    elapsed = time.perf_counter() - t0
    starts = [getattr(start, "seconds", None) for start, _ in scenes[1:]]  # a cut starts each later scene
    return elapsed, [s if s is not None else start.get_seconds() for s, (start, _) in zip(starts, scenes[1:])]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1080, 2160], choices=sorted(SIZES))
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--fps", type=int, default=30)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--backend", default="cpu", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--no-pyscenedetect", action="store_true")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args(argv)

    print(f"cpus: {os.cpu_count()}  ffmpeg: {find_ffmpeg()}")
    results = []
    for size in args.sizes:
        path, labels = clip_path(size, args.duration, args.fps)
        info = probe(path)
        frames = info.video.frames if info.video else 0
        dec, ours, psd = [], [], []
        backend, f1_ours, f1_psd = "?", None, None
        for r in range(args.repeat):
            dec.append(time_decode_only(path))
            t, df = time_cht_lab(path, args.backend)
            backend = df.attrs.get("backend", "?")
            if len(df) != frames:
                print(f"  warning: scored {len(df)} frames, probe says {frames}")
            ours.append(t)
            f1_ours = f1_score(cht_lab_captures(df), labels)
            if not args.no_pyscenedetect:
                res = time_pyscenedetect(path)
                if res is not None:
                    psd.append(res[0])
                    f1_psd = f1_score(res[1], labels)
            print(f"  {size}p run {r + 1}: decode-only {dec[-1]:.2f} s, cht_lab {ours[-1]:.2f} s"
                  + (f", PySceneDetect {psd[-1]:.2f} s" if psd else ""), flush=True)
        fps_dec = frames / statistics.median(dec)
        fps_ours = frames / statistics.median(ours)
        fps_psd = frames / statistics.median(psd) if psd else None
        row = {"clip": path.name, "frames": frames, "events": len(labels), "backend": backend,
               "decode_only_fps": round(fps_dec, 1), "cht_lab_fps": round(fps_ours, 1),
               "pyscenedetect_fps": round(fps_psd, 1) if fps_psd else None,
               "vs_decode_only": round(fps_ours / fps_dec, 3),
               "vs_pyscenedetect": round(fps_ours / fps_psd, 2) if fps_psd else None,
               "decode_only_vs_pyscenedetect": round(fps_dec / fps_psd, 2) if fps_psd else None,
               "f1_cht_lab": None if f1_ours is None else round(f1_ours, 3),
               "f1_pyscenedetect": None if f1_psd is None else round(f1_psd, 3)}
        results.append(row)
        print(f"{size}p: decode-only {fps_dec:.0f} fps | cht_lab ({backend}) {fps_ours:.0f} fps "
              f"= {row['vs_decode_only']:.2f}x decode-only (target >= 0.85)"
              + (f" | PySceneDetect {fps_psd:.0f} fps -> cht_lab is {row['vs_pyscenedetect']:.1f}x (target >= 2; "
                 f"decode-only itself is {row['decode_only_vs_pyscenedetect']:.1f}x)"
                 if fps_psd else " | PySceneDetect not installed (pip install 'cht_lab[bench]')"), flush=True)
        print(f"      detection F1 on the clip's {len(labels)} labeled slide changes (0.5 s tolerance): "
              f"cht_lab {row['f1_cht_lab']}" + (f", PySceneDetect {row['f1_pyscenedetect']}" if fps_psd else ""),
              flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
