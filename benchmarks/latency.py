"""Live latency: frame sent on scene.sock -> score row, and scene frame sent -> JPEG on disk.

A 1080p30 screen-like clip (generated once into benchmarks/.cache/) is replayed at real-time
pace by cht_lab's replay server, which records when each H.264 access unit is written to the
socket. A SceneDetector reads the socket like cht's processor would. The n-th frame the detector
decodes is the n-th access unit the server sent to it (no B-frames), so per frame:

    score latency   = time the score row is handed to the index  - time the frame was sent
    capture latency = time the capture's row is durable (JPEG on disk) - time the captured frame was sent
    change -> JPEG  = the same from the change's onset (its first frame): the `event` metric captures
                      the screen once it has come to rest, so this adds the time the change took

Usage: python benchmarks/latency.py [--seconds 30] [--backend auto] [--markdown]
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import CACHE

from cht_lab.detect.supervisor import SceneDetector  # _common put the repository on sys.path
from cht_lab.ffmpeg import find_ffmpeg, live_processes
from cht_lab.index.session_index import SessionIndex
from cht_lab.tools.replay_server import replay

TARGET_SCORE_P95 = 0.250
TARGET_CAPTURE_P95 = 0.300
SCENE_SECONDS = 3.0


def make_clip(seconds: float, path: Path) -> Path:
    """1080p30 'slides': a different full-screen picture every SCENE_SECONDS, small motion between cuts."""
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    looks = ["testsrc2=s=1920x1080:r=30", "smptehdbars=s=1920x1080:r=30", "rgbtestsrc=s=1920x1080:r=30",
             "color=c=0x2040a0:s=1920x1080:r=30", "testsrc=s=1920x1080:r=30", "color=c=0xf0f0e8:s=1920x1080:r=30"]
    n = max(2, int(round(seconds / SCENE_SECONDS)))
    inputs: list[str] = []
    for i in range(n):
        inputs += ["-f", "lavfi", "-t", f"{SCENE_SECONDS}", "-i", looks[i % len(looks)]]
    graph = "".join(f"[{i}:v]drawbox=x=100+{i * 40}:y=900:w=200:h=60:c=white@0.8:t=fill[b{i}];"
                    f"color=c=red:s=24x24:r=30:d={SCENE_SECONDS}[c{i}];"  # a moving 'cursor'
                    f"[b{i}][c{i}]overlay=x='200+mod(n*7,800)':y=100:shortest=1,format=yuv420p[v{i}];"
                    for i in range(n))
    graph += "".join(f"[v{i}]" for i in range(n)) + f"concat=n={n}:v=1:a=0[out]"
    tmp = path.with_suffix(".tmp.mp4")
    subprocess.run([find_ffmpeg(), "-hide_banner", "-v", "error", "-y", *inputs, "-filter_complex", graph,
                    "-map", "[out]", "-c:v", "libx264", "-preset", "veryfast", "-bf", "0", "-g", "60",
                    "-pix_fmt", "yuv420p", "-movflags", "+faststart", str(tmp)], check=True, timeout=600)
    tmp.rename(path)
    return path


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def run(seconds: float, backend: str, clock: str = "session") -> dict[str, float]:
    clip = make_clip(seconds, CACHE / f"slides_1080p30_{int(seconds)}s.mp4")
    score_times: dict[int, float] = {}
    capture_times: list[tuple[int, int, float]] = []  # (captured frame, onset frame, when durable)

    def on_scores(cols) -> None:
        now = time.monotonic()
        for fi in cols["frame_index"]:
            score_times[int(fi)] = now

    def on_frames(rows) -> None:
        now = time.monotonic()
        capture_times.extend((int(r["capture_frame_index"]), int(r["frame_index"]), now)
                             for r in rows if r["kind"] == "scene")

    with tempfile.TemporaryDirectory(prefix="cht_lab-bench-") as tmp:
        session_dir = Path(tmp) / "detector"
        session_dir.mkdir()
        index = SessionIndex(session_dir, writer=True)
        with replay(clip, out_dir=Path(tmp) / "sessions", speed=1.0, record_sends=True) as server:
            # "session": attached to the cht session (the recording is the clock, as LiveSession does);
            # "socket": the bare socket (stream time only)
            source = server.session_dir if clock == "session" else server.socket_path
            det = SceneDetector(source, session_dir=session_dir, index=index, backend=backend,
                                on_frames=on_frames, on_scores=on_scores, restart=False,
                                session_recordings=server.session_dir if clock == "session" else None)
            det.start()
            server.wait(seconds * 3 + 30)
            deadline = time.monotonic() + 10
            sent = server.server.send_log()[0] if server.server.send_log() else []
            while len(score_times) < len(sent) and time.monotonic() < deadline:
                time.sleep(0.05)
            status = det.status
            det.stop()
        index.close()
        sent = server.server.send_log()[0]
    assert not live_processes(), "ffmpeg children left running"
    start = status.get("stream_start") or 0  # frame k of the connection is frame start+k of the recording
    sent_at = {i + start: t for i, t in sent}
    score_lat = [score_times[i] - sent_at[i] for i in score_times if i in sent_at]
    first = min(sent_at.values()) if sent_at else 0.0
    print("latency by second of the stream (p95, ms):", [round(1000 * _pct([score_times[i] - t for i, t in sent_at.items()
          if i in score_times and int(t - first) == sec], 95)) for sec in range(0, int(seconds), 3)])
    cap_lat = [t - sent_at[i] for i, _, t in capture_times if i in sent_at]
    change_lat = [t - sent_at[o] for _, o, t in capture_times if o in sent_at]
    return {
        "frames_sent": len(sent), "frames_scored": len(score_times), "captures": len(cap_lat),
        "score_p50": _pct(score_lat, 50), "score_p95": _pct(score_lat, 95),
        "capture_p50": _pct(cap_lat, 50), "capture_p95": _pct(cap_lat, 95),
        "change_p50": _pct(change_lat, 50), "change_p95": _pct(change_lat, 95),
        "backend": status["backend"], "fps": status["fps"], "clock": status.get("clock"),
        "estimated": status.get("estimated"), "mismatched": status.get("mismatched"),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=30.0, help="clip length (default 30)")
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--clock", nargs="+", choices=["session", "socket"], default=["session", "socket"],
                    help="attach to the cht session (recording clock) and/or the bare socket (default both)")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(relativeCreated)7.0f %(threadName)s %(name)s: %(message)s")
    ms = lambda x: f"{x * 1000:.0f} ms"  # noqa: E731
    rows = []
    for clock in args.clock:
        r = run(args.seconds, args.backend, clock)
        print(f"[{clock}] clock {r['clock']}: frames sent {r['frames_sent']}, scored {r['frames_scored']}, "
              f"scene captures {r['captures']}, backend {r['backend']}, placed ahead of the recording "
              f"{r['estimated']} (wrong {r['mismatched']})")
        print(f"[{clock}] frame sent -> score row : p50 {ms(r['score_p50'])}  p95 {ms(r['score_p95'])}  "
              f"({r['score_p95'] / TARGET_SCORE_P95:.2f}x of the {ms(TARGET_SCORE_P95)} target)")
        print(f"[{clock}] scene sent -> JPEG      : p50 {ms(r['capture_p50'])}  p95 {ms(r['capture_p95'])}  "
              f"({r['capture_p95'] / TARGET_CAPTURE_P95:.2f}x of the {ms(TARGET_CAPTURE_P95)} target)")
        print(f"[{clock}] change onset -> JPEG    : p50 {ms(r['change_p50'])}  p95 {ms(r['change_p95'])}  "
              "(includes the wait for the screen to rest)")
        rows.append((clock, r))
    print()
    print("| source | clock | backend | frame → score p50 / p95 | scene → JPEG p50 / p95 | vs target (p95) "
          "| change onset → JPEG p50 / p95 |")
    print("|---|---|---|---|---|---|---|")
    for clock, r in rows:
        what = "cht session (scene.sock + recording)" if clock == "session" else "bare scene.sock"
        print(f"| {what}, 1080p30 real time | {r['clock']} | {r['backend']} | {ms(r['score_p50'])} / "
              f"{ms(r['score_p95'])} | {ms(r['capture_p50'])} / {ms(r['capture_p95'])} "
              f"| {r['score_p95'] / TARGET_SCORE_P95:.2f}× / {r['capture_p95'] / TARGET_CAPTURE_P95:.2f}× "
              f"| {ms(r['change_p50'])} / {ms(r['change_p95'])} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
