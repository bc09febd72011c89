"""Soak: a long stretch of slides-like content replayed at 8x through a LiveSession.

Does a session that runs for hours keep its memory and threads flat? A slides-like screen
recording with speech-like audio (cht_lab.tools.samples.render.render_screen_clip, rendered once into
benchmarks/.cache/) is looped by the replay server (growing fMP4 + scene.sock, like cht) at 8x
real time until `--minutes` of content have been played; a LiveSession attached to the replayed
session directory detects scenes from the socket and cuts audio from the growing recording.

Every `--every` seconds of content it prints RSS, thread count, open file descriptors, ffmpeg
children, rows written (scores), frames captured and audio chunks; at the end the RSS growth
against the 50 MB target and the thread count end/start. RSS growth is measured from the first
sample (after start-up: imports, buffers and ffmpeg are warm) to the end.

Usage: python benchmarks/soak.py [--minutes 60] [--speed 8] [--size 960x540] [--every 60]
Not part of the test run (an hour of content is 7.5 minutes of wall time at 8x).
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

from _common import CACHE, render_once

from cht_lab import LiveSession, replay  # _common put the repository on sys.path
from cht_lab.ffmpeg import live_processes
from cht_lab.tools.samples.render import render_screen_clip

TARGET_RSS_GROWTH_MB = 50.0
BASE_SECONDS = 120.0  # the rendered clip; the replay loops it


def base_clip(width: int, height: int) -> Path:
    path = CACHE / f"soak_{width}x{height}_{BASE_SECONDS:.0f}s.mp4"
    return render_once(path, lambda tmp: render_screen_clip(tmp, width=width, height=height, fps=30,
                                                            duration=BASE_SECONDS, audio=True),
                       f"{BASE_SECONDS:.0f} s of slides-like content at {width}x{height}")


def sample(proc: psutil.Process, live: LiveSession, t0: float, speed: float) -> dict:
    st = live.status
    return {
        "content_min": (time.monotonic() - t0) * speed / 60.0,
        "rss_mb": proc.memory_info().rss / 2**20,
        "threads": threading.active_count(),
        "fds": proc.num_fds(),
        "ffmpeg": len(live_processes()),
        "rows": st["frames"],
        "captures": st["captures"],
        "chunks": st["chunks"],
        "lag": st["lag"],
        "state": st["workers"]["detector"]["state"],
        "errors": len(st["errors"]),
    }


def line(s: dict) -> str:
    lag = "-" if s["lag"] is None else f"{s['lag']:.2f}s"
    return (f"{s['content_min']:6.1f} min  rss {s['rss_mb']:7.1f} MB  threads {s['threads']:3d}  fds {s['fds']:3d}  "
            f"ffmpeg {s['ffmpeg']}  score rows {s['rows']:7d}  frames {s['captures']:5d}  chunks {s['chunks']:4d}  "
            f"lag {lag}  detector {s['state']}  errors {s['errors']}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=60.0, help="minutes of content to play (default 60)")
    ap.add_argument("--speed", type=float, default=8.0, help="replay speed (default 8x)")
    ap.add_argument("--size", default="960x540", help="picture size of the content (default 960x540)")
    ap.add_argument("--every", type=float, default=60.0, help="report every N seconds of content (default 60)")
    ap.add_argument("--backend", default="auto")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    width, height = map(int, args.size.lower().split("x"))
    clip = base_clip(width, height)
    proc = psutil.Process()
    wall = args.minutes * 60.0 / args.speed
    with tempfile.TemporaryDirectory(prefix="cht_lab-soak-") as tmp:
        with replay(clip, out_dir=tmp, speed=args.speed, loop=True) as server:
            live = LiveSession(server.session_dir, backend=args.backend)
            t0 = time.monotonic()
            live.start()
            samples = []
            next_at = t0 + min(args.every / args.speed, wall)
            try:
                while True:
                    now = time.monotonic()
                    if now >= next_at:
                        samples.append(sample(proc, live, t0, args.speed))
                        print(line(samples[-1]), flush=True)
                        next_at += args.every / args.speed
                    if now - t0 >= wall:
                        break
                    time.sleep(min(0.5, max(0.0, min(next_at, t0 + wall) - now)))
                end = sample(proc, live, t0, args.speed)
            finally:
                live.stop()
            errors = live.status["errors"]
        stopped = sample(proc, live, t0, args.speed)
    first = samples[0] if samples else end
    growth = end["rss_mb"] - first["rss_mb"]
    print()
    print(f"content: {args.minutes:g} min of {width}x{height} slides at {args.speed:g}x "
          f"({wall / 60:.1f} min wall), backend {live.status['backend']}")
    print(f"end:     {line(end)}")
    print(f"rows written (scores): {end['rows']}, frames captured: {end['captures']}, audio chunks: {end['chunks']}")
    print(f"RSS: {first['rss_mb']:.1f} MB after {first['content_min']:.1f} min -> {end['rss_mb']:.1f} MB at the end: "
          f"growth {growth:+.1f} MB = {growth / TARGET_RSS_GROWTH_MB:.2f} of the {TARGET_RSS_GROWTH_MB:.0f} MB target")
    print(f"threads: {first['threads']} -> {end['threads']} (end/start {end['threads'] / first['threads']:.2f}); "
          f"after stop: {stopped['threads']} threads, {stopped['ffmpeg']} ffmpeg children, {stopped['fds']} fds")
    if errors:
        print(f"errors ({len(errors)}), last: {errors[-1]['error']}")
    ok = growth <= TARGET_RSS_GROWTH_MB and end["threads"] <= first["threads"]
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
