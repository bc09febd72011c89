"""The `cht-lab` command: demo, samples, run, score, export, replay."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from typing import Sequence

from cht_lab._version import __version__


def _table(rows: dict[str, object]) -> str:
    width = max(len(k) for k in rows)
    return "\n".join(f"  {k:<{width}}  {'-' if v is None else v}" for k, v in rows.items())


def _progress() -> bool:
    """Progress bars only for a person watching (stderr is a terminal), never in logs or CI."""
    return sys.stderr.isatty()


def cmd_samples(args: argparse.Namespace) -> int:
    from cht_lab.tools.samples.render import generate

    paths = generate(root=args.out, names=args.names or None, force=args.force, progress=_progress())
    for p in paths:
        print(p)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from cht_lab.tools.demo import run_demo

    print(f"cht-lab demo: replaying sample '{args.sample}' at {args.speed:g}x as a live cht session ...")
    result = run_demo(args.sample, speed=args.speed, out_dir=args.out, backend=args.backend,
                      progress=_progress())
    print(_table(result.summary))
    print(f"session directory: {result.session_dir}")
    print(f"score plot:        {result.plot_path}")
    print(f"frame index:       {result.session_dir / 'index'}")
    return 0 if result.summary.get("frames captured") else 1


def cmd_run(args: argparse.Namespace) -> int:
    from cht_lab.live import LiveSession

    live = LiveSession(args.source, session_dir=args.session_dir, threshold=args.threshold,
                       backend=args.backend, audio=not args.no_audio, realtime=args.realtime)
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    @live.on_new_frames
    def _show(rows: list[dict]) -> None:
        for r in rows:
            print(f"{r['id']}  ts={r['ts']:9.3f}  score={r['score']:.3f}  {r['path']}", flush=True)

    with live:
        print(f"session directory: {live.session_dir}  (Ctrl-C to stop)", flush=True)
        t0 = time.monotonic()
        while not stop.is_set() and not live.wait(timeout=0.5):
            if args.duration and time.monotonic() - t0 >= args.duration:
                break
        status = live.status
    print(_table({k: status[k] for k in ("backend", "frames", "captures", "chunks", "last_error")}))
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from cht_lab.session import open_session

    session = open_session(args.session)
    scores = session.score(backend=args.backend, progress=_progress(), force=args.force)
    scenes = session.scenes(args.threshold)
    rows: dict[str, object] = {"session": session.dir, "segments": len(session.segments),
                               "score rows": len(scores), "scenes at threshold": len(scenes)}
    if session.labels is not None:
        best = session.best_threshold()
        ev = session.evaluate(args.threshold)
        rows.update({"labeled events": len(session.labels), "f1 at threshold": round(ev.f1, 3),
                     "best threshold": round(best, 4), "f1 at best": round(session.evaluate(best).f1, 3)})
    if args.capture:
        rows["frames captured"] = len(session.capture_frames(args.threshold))
    print(_table(rows))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from cht_lab.session import open_session

    session = open_session(args.session)
    out = args.out or f"{args.table}.{ 'csv' if args.format == 'csv' else 'parquet'}"
    print(session.export(out, format=args.format, table=args.table))
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from cht_lab.tools.replay_server import replay

    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with replay(args.recording, out_dir=args.out, speed=args.speed) as server:
        print(f"session directory: {server.session_dir}", flush=True)
        print(f"socket:            {server.socket_path}", flush=True)
        while not stop.is_set() and not server.done.wait(0.5):
            pass
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cht-lab", description="Watch and tune live scene detection on screen-share recordings.")
    parser.add_argument("--version", action="version", version=f"cht-lab {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress and details")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="replay a bundled sample as a live cht session and detect scenes on it")
    p.add_argument("--sample", default="slides", help="bundled sample name (default: slides)")
    p.add_argument("--speed", type=float, default=2.0, help="replay speed, times real time (default: 2)")
    p.add_argument("--out", help="where the new session directory goes (default: ./sessions)")
    p.add_argument("--backend", default="auto", choices=["auto", "cuda", "cpu"])
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("samples", help="(re)generate the bundled sample sessions")
    p.add_argument("names", nargs="*", help="sample names (default: all)")
    p.add_argument("--out", help="target directory (default: the repo's data/samples)")
    p.add_argument("--force", action="store_true", help="regenerate samples that exist")
    p.set_defaults(func=cmd_samples)

    p = sub.add_parser("run", help="run live scene detection on a source (session dir, socket, file, URL)")
    p.add_argument("source")
    p.add_argument("--session-dir", help="where to write frames, chunks and the index")
    p.add_argument("--threshold", type=float)
    p.add_argument("--backend", default="auto", choices=["auto", "cuda", "cpu"])
    p.add_argument("--no-audio", action="store_true")
    p.add_argument("--realtime", action="store_true", help="read files at real-time pace (simulated live)")
    p.add_argument("--duration", type=float, help="stop after this many seconds (default: until the source ends or Ctrl-C)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("score", help="score a recorded session (decode once) and report scenes / tuning")
    p.add_argument("session")
    p.add_argument("--threshold", type=float)
    p.add_argument("--backend", default="auto", choices=["auto", "cuda", "cpu"])
    p.add_argument("--capture", action="store_true", help="also write the JPEGs of the detected scenes")
    p.add_argument("--force", action="store_true", help="re-score even when scores exist")
    p.set_defaults(func=cmd_score)

    p = sub.add_parser("export", help="export a session's table as Parquet or CSV")
    p.add_argument("session")
    p.add_argument("--format", default="parquet", choices=["parquet", "csv"])
    p.add_argument("--table", default="frames", choices=["frames", "scores", "audio"])
    p.add_argument("--out", help="output path (relative paths land inside the session directory)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("replay", help="serve a recording as a live cht session (growing fMP4 + scene.sock)")
    p.add_argument("recording")
    p.add_argument("--speed", type=float, default=1.0)
    p.add_argument("--out", help="where the new session directory goes")
    p.set_defaults(func=cmd_replay)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    from cht_lab.ffmpeg import FfmpegNotFoundError, MediaError

    try:
        return int(args.func(args) or 0)
    except (MediaError, FfmpegNotFoundError, FileNotFoundError, ValueError, RuntimeError) as exc:
        print(f"cht-lab {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
