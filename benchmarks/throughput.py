"""Offline scoring throughput vs the decode floor and vs PySceneDetect, measured in one run.

    python benchmarks/throughput.py                 # 1080p30 and 2160p30, 60 s each, CPU backend
    python benchmarks/throughput.py --sizes 1080 --repeat 3 --backend auto

Clips are rendered once (cht_lab.samples.render_screen_clip: slides-like screen content, H.264
fMP4 like cht's recorder) and cached in benchmarks/.cache/. Each repeat times, back to back:

- decode-only: `ffmpeg -i clip -map 0:v:0 -f null -` (the floor: every frame decoded, nothing else)
- cht_lab:     cht_lab.analysis.score_recording(clip) (probe + one decode + scale + scene score + metrics)
- PySceneDetect: `scenedetect.detect(clip, ContentDetector())` with its defaults (OpenCV decode)

Reported: frames per second (median of the repeats) and the ratios cht_lab/decode-only (target >= 0.85)
and cht_lab/PySceneDetect (target >= 2). Other processes share this machine's CPUs, so repeats are
interleaved and the median is used; the ratios are what to compare, not the absolute fps.
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

from cht_lab.ffmpeg import find_ffmpeg, probe  # noqa: E402

CACHE = REPO / "benchmarks" / ".cache"
SIZES = {720: (1280, 720), 1080: (1920, 1080), 1440: (2560, 1440), 2160: (3840, 2160)}


def clip_path(height: int, duration: float, fps: int) -> Path:
    w, h = SIZES[height]
    path = CACHE / f"screen_{w}x{h}_{fps}fps_{int(duration)}s.mp4"
    if path.is_file() and path.stat().st_size > 0:
        return path
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.mp4")
    t0 = time.perf_counter()
    print(f"rendering {path.name} (once; cached in {CACHE}) ...", flush=True)
    from cht_lab.samples import render_screen_clip

    render_screen_clip(tmp, width=w, height=h, fps=fps, duration=duration, seed=11, audio=True)
    os.replace(tmp, path)
    print(f"  rendered in {time.perf_counter() - t0:.0f} s, {path.stat().st_size / 1e6:.1f} MB", flush=True)
    return path


def time_decode_only(path: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run([find_ffmpeg(), "-hide_banner", "-nostdin", "-loglevel", "error", "-i", str(path),
                    "-map", "0:v:0", "-f", "null", "-"], check=True)
    return time.perf_counter() - t0


def time_cht_lab(path: Path, backend: str) -> tuple[float, int, str]:
    from cht_lab.analysis import score_recording

    t0 = time.perf_counter()
    df = score_recording(path, backend=backend)
    return time.perf_counter() - t0, len(df), df.attrs.get("backend", "?")


def time_pyscenedetect(path: Path) -> float | None:
    try:
        from scenedetect import ContentDetector, detect
    except ImportError:
        return None
    t0 = time.perf_counter()
    detect(str(path), ContentDetector())
    return time.perf_counter() - t0


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
        path = clip_path(size, args.duration, args.fps)
        info = probe(path)
        frames = info.video.frames if info.video else 0
        dec, ours, psd = [], [], []
        backend = "?"
        for r in range(args.repeat):
            dec.append(time_decode_only(path))
            t, n, backend = time_cht_lab(path, args.backend)
            if n != frames:
                print(f"  warning: scored {n} frames, probe says {frames}")
            ours.append(t)
            if not args.no_pyscenedetect:
                p = time_pyscenedetect(path)
                if p is not None:
                    psd.append(p)
            print(f"  {size}p run {r + 1}: decode-only {dec[-1]:.2f} s, cht_lab {ours[-1]:.2f} s"
                  + (f", PySceneDetect {psd[-1]:.2f} s" if psd else ""), flush=True)
        fps_dec = frames / statistics.median(dec)
        fps_ours = frames / statistics.median(ours)
        fps_psd = frames / statistics.median(psd) if psd else None
        row = {"clip": path.name, "frames": frames, "backend": backend, "decode_only_fps": round(fps_dec, 1),
               "cht_lab_fps": round(fps_ours, 1), "pyscenedetect_fps": round(fps_psd, 1) if fps_psd else None,
               "vs_decode_only": round(fps_ours / fps_dec, 3),
               "vs_pyscenedetect": round(fps_ours / fps_psd, 2) if fps_psd else None}
        results.append(row)
        print(f"{size}p: decode-only {fps_dec:.0f} fps | cht_lab ({backend}) {fps_ours:.0f} fps "
              f"= {row['vs_decode_only']:.2f}x decode-only (target >= 0.85)"
              + (f" | PySceneDetect {fps_psd:.0f} fps -> cht_lab is {row['vs_pyscenedetect']:.1f}x (target >= 2)"
                 if fps_psd else " | PySceneDetect not installed (pip install 'cht_lab[bench]')"), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
