"""The `cht-lab` command: demo, samples, run, score, export, replay.

Exit codes (the same for every command, so scripts can tell a bad input from a failed run):

    0    done
    1    the work ran and failed: a live source that failed or gave no frame, a demo without
         captures, an unexpected error
    2    refused before any work: bad arguments, a missing or unusable path (not a recording, a
         session whose recordings are unreadable), an unknown sample, nothing to export yet
    130  interrupted (Ctrl-C before the command could stop cleanly)

Results go to stdout, errors and notes to stderr; `-v` (before or after the command) shows the
library's log, `-vv` its debug log.
"""

from __future__ import annotations

import argparse
import logging
import math
import shutil
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, Sequence

from cht_lab._version import __version__

log = logging.getLogger("cht_lab.cli")

EXIT_OK, EXIT_FAILED, EXIT_REFUSED, EXIT_INTERRUPTED = 0, 1, 2, 130
BACKENDS = ["auto", "cuda", "cpu"]
RECENT_WRITE = 10.0  # s: a recording written this recently may still lack its first fragment


class Refused(Exception):
    """An input the command will not start on; the message names it and why (exit 2)."""


def _table(rows: dict[str, object]) -> str:
    width = max(len(k) for k in rows)
    return "\n".join(f"  {k:<{width}}  {'-' if v is None else v}" for k, v in rows.items())


def _progress() -> bool:
    """Progress bars only for a person watching (stderr is a terminal), never in logs or CI."""
    return sys.stderr.isatty()


def _note(command: str, text: str) -> None:
    print(f"cht-lab {command}: {text}", file=sys.stderr, flush=True)


def _clock(seconds: float) -> str:
    """Session time as [h:]mm:ss.ss, the way a person looks it up in a player."""
    m, s = divmod(float(seconds), 60.0)
    h, m = divmod(int(m), 60)
    return f"{h}:{m:02d}:{s:05.2f}" if h else f"{m}:{s:05.2f}"


# --------------------------------------------------------------------------- argument types


def _non_negative(value: str) -> float:
    try:
        x = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
    if not (math.isfinite(x) and x >= 0):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, not {value}")
    return x


def _positive(value: str) -> float:
    x = _non_negative(value)
    if x == 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return x


# --------------------------------------------------------------------------- sessions by path or sample name


def _sample_names() -> list[str]:
    from cht_lab.tools.samples import SAMPLES

    return list(SAMPLES)


def _check_sample(name: str) -> None:
    names = _sample_names()
    if name not in names:
        raise Refused(f"unknown sample {name!r}; valid names: {', '.join(names)}")


def _session_path(args: argparse.Namespace) -> Path:
    """SESSION as given: a path, or the name of a bundled sample when no such path exists."""
    from cht_lab.tools.samples import sample_dir

    if args.sample is not None and args.session is not None:
        raise Refused("give a SESSION path or --sample NAME, not both")
    if args.sample is not None:
        _check_sample(args.sample)
        return sample_dir(args.sample)
    if args.session is None:
        raise Refused("give a SESSION path (a session directory or a recording) or --sample NAME")
    path = Path(args.session).expanduser()
    if not path.exists() and args.session in _sample_names():
        return sample_dir(args.session)
    return path


def _open(args: argparse.Namespace) -> Any:
    from cht_lab.session import open_session

    session = open_session(_session_path(args))
    if session.read_only_source:
        _note(args.command, f"{session.source_dir} is read-only; working directory {session.dir}")
    return session


# --------------------------------------------------------------------------- commands


def cmd_samples(args: argparse.Namespace) -> int:
    from cht_lab.tools.samples.render import generate

    if args.real:
        return _record_real(args)
    for name in args.names:
        _check_sample(name)
    paths = generate(root=args.out, names=args.names or None, force=args.force, progress=_progress())
    for p in paths:
        print(p)
    return EXIT_OK


def _record_real(args: argparse.Namespace) -> int:
    """`cht-lab samples --real`: record real applications on a virtual X screen (skipped, exit 0, when
    Xvfb, Chromium or Playwright is missing); prints each new session and its entry for catalog.py."""
    from cht_lab.tools.samples.bundled import samples_root
    from cht_lab.tools.samples.real import SCENARIOS, missing_tools, record

    unknown = [n for n in args.names if n not in SCENARIOS]
    if unknown:
        raise Refused(f"unknown recorded sample {unknown[0]!r}; valid names: {', '.join(SCENARIOS)}")
    missing = missing_tools()
    if missing:
        _note("samples", "--real skipped: recording real samples needs " + "; ".join(missing))
        return EXIT_OK
    root = Path(args.out).expanduser() if args.out else samples_root()

    def terminate(signum: int, frame: object) -> None:  # Xvfb, Chromium, JupyterLab are stopped on the way out
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, terminate)
    try:
        for name in args.names or list(SCENARIOS):
            _note("samples", f"recording {name} (about a minute, then encoding and measuring)")
            try:
                done = record(name, root)
            except RuntimeError as exc:
                _note("samples", f"{name} failed: {exc}")
                return EXIT_FAILED
            print(done.path)
            print(f"# entry for cht_lab/tools/samples/real/catalog.py (replaces the old {name}):\n{done.entry}")
    finally:
        signal.signal(signal.SIGTERM, old)
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from cht_lab.layout import default_data_dir
    from cht_lab.tools.demo import run_demo

    _check_sample(args.sample)  # before "replaying ...": an unknown name is refused, not half started
    out = Path(args.out) if args.out else default_data_dir()
    print(f"cht-lab demo: replaying sample '{args.sample}' at {args.speed:g}x as a live cht session ...", flush=True)
    result = run_demo(args.sample, speed=args.speed, out_dir=out, backend=args.backend, progress=_progress())
    print(_table(result.summary))
    print(f"session directory: {result.session_dir}")
    print(f"score plot:        {result.plot_path}")
    print(f"frame index:       {result.session_dir / 'index'}")
    if not result.summary.get("frames captured"):
        _note("demo", "no frame was captured (see 'errors' above; -v shows the log)")
        return EXIT_FAILED
    return EXIT_OK


def _check_run_source(source: str) -> None:
    """Refuse, before any directory exists, a local source that cannot give a frame.

    A file must be a recording with video; a cht session without a live scene.sock is followed
    from its newest recording, which must be readable (one written in the last RECENT_WRITE s may
    still lack its first fragment, and is given the benefit of the doubt). URLs and sockets are
    only known once opened: their failure ends the run with exit 1.
    """
    import stat

    from cht_lab import layout
    from cht_lab.ffmpeg import MediaError, video_header

    if source.startswith(("follow:", "unix:")) or "://" in source:
        return
    path = Path(source).expanduser()
    try:
        st = path.stat()
    except OSError:
        return  # LiveSession names a missing path (MediaError) before it creates anything
    if stat.S_ISREG(st.st_mode):
        video_header(path)  # MediaError: empty, not media, no video stream
    elif stat.S_ISDIR(st.st_mode) and layout.is_session_dir(path):
        sock = path / layout.SOCKET_NAME
        if sock.exists() and stat.S_ISSOCK(sock.stat().st_mode):
            return  # live: the server's stream decides
        recordings = layout.recordings(path)
        if not recordings:
            raise Refused(f"{path}: no scene.sock and no recording in {layout.STREAM_DIR}/: nothing to detect on")
        newest = recordings[-1]
        try:
            video_header(newest)
        except MediaError as exc:
            if time.time() - newest.stat().st_mtime > RECENT_WRITE:
                raise Refused(f"{path}: its recording cannot be read: {exc}") from None


def _new_dir_is_empty(d: Path) -> bool:
    """True when a directory this run created holds nothing but an index without rows."""
    from cht_lab.index.session_index import SessionIndex

    for p in d.rglob("*"):
        if p.is_file() and p.relative_to(d).parts[0] != "index":
            return False
    try:
        idx = SessionIndex(d)
        return idx.frames().empty and idx.scores().empty and idx.audio().empty
    except Exception:  # an index that cannot be read is not known to be empty: keep it
        return False


def _remove_if_empty(d: Path | None) -> None:
    if d is None or not d.is_dir() or not _new_dir_is_empty(d):
        return
    shutil.rmtree(d, ignore_errors=True)
    _note("run", f"removed {d}: the run left nothing in it")


def cmd_run(args: argparse.Namespace) -> int:
    from cht_lab import layout
    from cht_lab.live import LiveSession

    _check_run_source(args.source)
    src = Path(args.source).expanduser()
    cht = src.is_dir() and ((src / layout.SOCKET_NAME).exists() or (src / layout.STREAM_DIR).is_dir())
    session_dir = Path(args.session_dir).expanduser() if args.session_dir else None
    # a directory this run creates is removed again when the run leaves nothing in it
    ours = (session_dir is None and not cht) or (session_dir is not None and not session_dir.exists())
    if session_dir is None and cht and layout.is_read_only(src):
        # a bundled sample is read, never written; each run gets its own new session directory
        # (sharing the sample's working directory would mix live rows into the recorded scores)
        session_dir, ours = layout.create_session_dir(layout.default_data_dir()), True
        _note("run", f"{src} is read-only; writing into {session_dir}")
    try:
        live = LiveSession(args.source, session_dir=session_dir, threshold=args.threshold, metric=args.metric,
                           backend=args.backend, audio=not args.no_audio, realtime=args.realtime)
    except BaseException:
        _remove_if_empty(session_dir if ours else None)
        raise
    created = Path(live.session_dir) if ours else None
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    @live.on_new_frames
    def _show(rows: list[dict]) -> None:
        for r in rows:
            print(f"{r['id']}  ts={r['ts']:9.3f}  score={r['score']:.3f}  {r['path']}", flush=True)

    try:
        live.start()
    except BaseException:
        live.stop()
        _remove_if_empty(created)
        raise
    ended = False
    try:
        print(f"session directory: {live.session_dir}  (Ctrl-C to stop)", flush=True)
        t0 = time.monotonic()
        while not stop.is_set():
            if live.wait(timeout=0.5):
                ended = True
                break
            if live.status["state"] == "failed":
                break
            if args.duration and time.monotonic() - t0 >= args.duration:
                break
        final_state = live.status["state"]
    finally:
        live.stop()
    status = live.status
    print(_table({k: status.get(k) for k in ("backend", "frames", "captures", "chunks", "last_error")}))
    failed = final_state == "failed" or (not status.get("frames") and (ended or status.get("errors")))
    if failed:
        reason = status.get("last_error") or "the source ended without a single decodable frame"
        _note("run", f"error: {reason}")
    _remove_if_empty(created)
    return EXIT_FAILED if failed else EXIT_OK


def _count(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {value!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError("must be >= 1")
    return n


def _is_corpus(args: argparse.Namespace) -> bool:
    """Several sessions, a folder of sessions, or a Dask option: scored through score_sessions."""
    from cht_lab import layout

    if len(args.session) > 1 or args.scheduler or args.workers:
        return True
    if len(args.session) == 1:
        p = Path(args.session[0]).expanduser()
        return p.is_dir() and not layout.is_session_dir(p) and any(
            layout.is_session_dir(c) for c in p.iterdir() if c.is_dir())
    return False


def cmd_score(args: argparse.Namespace) -> int:
    if _is_corpus(args):
        return _score_corpus(args)
    args.session = args.session[0] if args.session else None
    session = _open(args)
    threshold, metric, min_gap = session.resolve(args.threshold, args.metric, args.min_gap)  # bad values: before decoding
    scores = session.score(backend=args.backend, progress=_progress(), force=args.force)
    scenes = session.scenes(threshold, metric, min_gap)
    origin = "" if args.threshold is not None else f" (default for {metric})"
    rows: dict[str, object] = {"session": session.source_dir}
    if session.read_only_source:
        rows["working directory"] = session.dir
    rows.update({"segments": len(session.segments), "score rows": len(scores),
                 "backend": session.metadata().get("backend"), "metric": metric,
                 "threshold": f"{threshold:g}{origin}", "min gap (s)": f"{min_gap:g}",
                 "scenes at threshold": len(scenes)})
    labels = session.labels
    if labels is not None:
        best = session.best_threshold(metric=metric, min_gap=min_gap)
        ev = session.evaluate(threshold, metric=metric, min_gap=min_gap)
        rows.update({"labeled events": len(labels), "f1 at threshold": round(ev.f1, 3),
                     "best threshold": round(best, 4),
                     "f1 at best": round(session.evaluate(best, metric=metric, min_gap=min_gap).f1, 3)})
    if args.capture:
        rows["frames captured"] = len(session.capture_frames(threshold, metric, min_gap))
        rows["frames directory"] = session.dir / "frames"
    print(_table(rows))
    if len(scenes):
        shown = [_clock(t) for t in scenes["ts"].to_numpy()[:100]]
        more = f" ... and {len(scenes) - 100} more (cht-lab export lists all)" if len(scenes) > 100 else ""
        print("scenes at: " + ", ".join(shown) + more)
    else:
        print(f"scenes at: none — {session.why_no_detections(threshold, metric, min_gap)}")
    return EXIT_OK


def _score_corpus(args: argparse.Namespace) -> int:
    """`score DIR...` on Dask: a row per session, failures with their path and reason, corpus tuning."""
    from cht_lab.corpus.scoring import dashboard_link, dask_client, require_dask, score_sessions
    from cht_lab.corpus.view import evaluate_corpus, sweep_corpus
    from cht_lab.detect.scoring import DEFAULT_METRIC, DEFAULT_THRESHOLDS
    from cht_lab.tuning.matching import TuningError

    if args.sample is not None:
        raise Refused("--sample scores one bundled sample; give several sessions as SESSION paths or names")
    if args.capture:
        raise Refused("--capture: one session at a time (cht-lab score SESSION --capture)")
    metric = args.metric or DEFAULT_METRIC
    threshold = args.threshold if args.threshold is not None else DEFAULT_THRESHOLDS.get(metric)
    if threshold is None:
        raise Refused(f"metric {metric!r} has no default threshold: give --threshold")
    paths = [str(_replay_source(a)) for a in args.session]  # a path, else a bundled sample's name
    try:
        require_dask()  # importing it sets its loggers' levels: quieten them after
    except ImportError as exc:
        raise Refused(str(exc)) from None
    if getattr(args, "verbose", 0) < 2:  # the in-process scheduler's INFO log is not the user's business
        logging.getLogger("distributed").setLevel(logging.WARNING)
    with dask_client(args.scheduler, args.workers) as client:
        link = dashboard_link(client)
        _note("score", f"Dask: {len(client.scheduler_info().get('workers', {}))} worker(s)"
                       + (f", dashboard {link}" if link else ""))
        report = score_sessions(paths, client, backend=args.backend, force=args.force, progress=_progress())
        ok = report[report["status"] != "failed"]
        rows: dict[str, object] = {"sessions": len(report)}
        rows.update({status: int((report["status"] == status).sum()) for status in ("scored", "skipped", "failed")})
        rows.update({"score rows": int(ok["rows"].sum()),
                     "decode time (s)": round(float(report["seconds"].sum()), 1),
                     "wall time (s)": round(report.attrs["wall_s"], 1), "metric": metric,
                     "threshold": f"{threshold:g}"})
        if len(ok):
            try:
                ev = evaluate_corpus(ok, threshold, client, metric=metric, min_gap=args.min_gap)
                sw = sweep_corpus(ok, client, metric=metric, min_gap=args.min_gap)
                rows.update({"labeled events": int(ev["labels"].iloc[-1]),
                             "f1 at threshold": round(ev["f1"].iloc[-1], 3)})
                if sw.attrs.get("best_threshold") is not None:
                    rows.update({"best threshold": round(sw.attrs["best_threshold"], 4),
                                 "f1 at best": round(sw.attrs["best_f1"], 3)})
            except TuningError as exc:
                _note("score", f"no corpus tuning: {exc}")
    shown = report[["session", "status", "segments", "rows", "seconds"]].copy()
    shown["seconds"] = shown["seconds"].round(1)
    print(shown.to_string(index=False))
    print(_table(rows))
    for r in report[report["status"] == "failed"].itertuples():
        _note("score", f"error: {r.error}")
    return EXIT_FAILED if (report["status"] == "failed").any() else EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    frames_only = [flag for flag, value in (("--threshold", args.threshold), ("--metric", args.metric),
                                            ("--min-gap", args.min_gap), ("--capture", args.capture or None))
                   if value is not None]
    if args.table != "frames" and frames_only:
        raise Refused(f"{', '.join(frames_only)}: only with --table frames (the scenes at a threshold)")
    session = _open(args)
    fmt = args.format or ("csv" if args.out and str(args.out).lower().endswith(".csv") else "parquet")
    out = args.out or f"{args.table}.{fmt}"
    path = session.export(out, format=fmt, table=args.table, threshold=args.threshold, metric=args.metric,
                          min_gap=args.min_gap, capture=args.capture)
    if args.table == "frames":
        frames = session.frame_index(args.threshold, args.metric, args.min_gap)  # from stored scores: cheap
        what = ""
        if len(frames) and frames["metric"].nunique() == 1:
            what = f" ({frames['metric'].iloc[0]} >= {float(frames['threshold'].iloc[0]):g})"
        without = int(frames["id"].isna().sum()) if len(frames) else 0
        hint = f"; {without} without a JPEG yet (--capture writes them)" if without else ""
        _note("export", f"{len(frames)} frames{what}{hint}")
    print(path)
    return EXIT_OK


def cmd_replay(args: argparse.Namespace) -> int:
    from cht_lab.tools.replay_server import replay

    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with replay(_replay_source(args.recording), out_dir=args.out, speed=args.speed) as server:
        print(f"session directory: {server.session_dir}", flush=True)
        print(f"socket:            {server.socket_path}", flush=True)
        while not stop.is_set() and not server.done.wait(0.5):
            pass
    return EXIT_OK


def _replay_source(arg: str) -> Path:
    path = Path(arg).expanduser()
    if not path.exists() and arg in _sample_names():
        from cht_lab.tools.samples import sample_dir

        return sample_dir(arg)
    return path


# --------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    # -v is accepted before and after the command; SUPPRESS keeps a subcommand from resetting it
    verbose = argparse.ArgumentParser(add_help=False)
    verbose.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS,
                         help="show the log (-vv: debug details)")
    parser = argparse.ArgumentParser(prog="cht-lab", parents=[verbose],
                                     description="Watch and tune live scene detection on screen-share recordings.",
                                     epilog="exit codes: 0 done, 1 the work failed, 2 refused input, 130 interrupted")
    parser.add_argument("--version", action="version", version=f"cht-lab {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    samples_help = "a bundled sample's name (slides, desktop, coding, twoseg)"
    backend_help = "decoder: auto tries CUDA and falls back to CPU (default: auto)"
    metric_help = "the score column that decides a scene (default: settled)"
    threshold_help = "a scene is a frame whose metric reaches this value, >= 0 (default: the metric's default)"
    min_gap_help = "seconds that must separate two scenes (default: 1)"

    def add(name: str, help: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, description=help, parents=[verbose])

    p = add("demo", "replay a bundled sample as a live cht session and detect scenes on it")
    p.add_argument("--sample", default="slides", help=f"{samples_help} (default: slides)")
    p.add_argument("--speed", type=_positive, default=2.0, help="replay speed, times real time (default: 2)")
    p.add_argument("--out", help="where the new session directory goes (default: $CHT_LAB_DATA, else "
                                 "~/cht_lab/sessions)")
    p.add_argument("--backend", default="auto", choices=BACKENDS, help=backend_help)
    p.set_defaults(func=cmd_demo)

    p = add("samples", "(re)generate the bundled sample sessions, or record real ones (--real)")
    p.add_argument("names", nargs="*", help="sample names (default: all)")
    p.add_argument("--out", help="target directory (default: the repository's data/samples, or $CHT_LAB_SAMPLES)")
    p.add_argument("--force", action="store_true", help="regenerate samples that exist")
    p.add_argument("--real", action="store_true",
                   help="record the real-application samples (real_editor, real_slides, real_browser) on a "
                        "virtual X screen: needs Xvfb, Chromium and Playwright, else skipped; recorded samples "
                        "are never regenerated without it")
    p.set_defaults(func=cmd_samples)

    p = add("run", "run live scene detection on a source (cht session dir, socket, file, URL)")
    p.add_argument("source", help="a cht session directory, a Unix socket (unix:PATH), a recording, or a URL")
    p.add_argument("--session-dir", help="where frames, chunks and the index go (default: the cht session itself, "
                                         "else a new directory under $CHT_LAB_DATA)")
    p.add_argument("--threshold", type=_non_negative, help=threshold_help)
    p.add_argument("--metric", help=metric_help)
    p.add_argument("--backend", default="auto", choices=BACKENDS, help=backend_help)
    p.add_argument("--no-audio", action="store_true", help="do not cut the audio into chunks")
    p.add_argument("--realtime", action="store_true", help="read files at real-time pace (simulated live)")
    p.add_argument("--duration", type=_positive,
                   help="stop after this many seconds (default: until the source ends or Ctrl-C)")
    p.set_defaults(func=cmd_run)

    session_help = ("a session directory, a recording, or a bundled sample's name; a read-only one (a bundled "
                    "sample) is worked on in a directory under $CHT_LAB_DATA")
    p = add("score", "score recorded sessions (decode once) and report their scenes and, with labels, tuning")
    p.add_argument("session", nargs="*", metavar="SESSION",
                   help=f"{session_help}; several, or a folder of sessions, are scored as a corpus on Dask "
                        "(the dask extra)")
    p.add_argument("--sample", help=f"{samples_help}, instead of SESSION")
    p.add_argument("--metric", help=metric_help)
    p.add_argument("--threshold", type=_non_negative, help=threshold_help)
    p.add_argument("--min-gap", type=_non_negative, help=min_gap_help)
    p.add_argument("--backend", default="auto", choices=BACKENDS, help=backend_help)
    p.add_argument("--capture", action="store_true", help="also write the JPEGs of the scenes into frames/")
    p.add_argument("--force", action="store_true", help="re-score even when the scores are up to date")
    p.add_argument("--scheduler", help="score on Dask: a scheduler address (tcp://HOST:8786) whose workers see the "
                                       "sessions under the same paths, or 'local' for a LocalCluster on this "
                                       "machine (default: local when several sessions are given)")
    p.add_argument("--workers", type=_count, help="Dask workers: the LocalCluster's processes (default: one per "
                                                  "CPU), or with --scheduler how many to wait for")
    p.set_defaults(func=cmd_score)

    p = add("export", "export a session's frame index (the scenes at a threshold), scores or audio chunks")
    p.add_argument("session", nargs="?", help=session_help)
    p.add_argument("--sample", help=f"{samples_help}, instead of SESSION")
    p.add_argument("--table", default="frames", choices=["frames", "scores", "audio"],
                   help="frames: the scenes at the threshold, with every column of the frame index (default)")
    p.add_argument("--format", choices=["parquet", "csv"], help="file format (default: from --out's suffix, "
                                                                "else parquet)")
    p.add_argument("--out", help="output path; a relative one lands in the session's working directory "
                                 "(default: TABLE.FORMAT there)")
    p.add_argument("--metric", help=f"frames: {metric_help}")
    p.add_argument("--threshold", type=_non_negative, help=f"frames: {threshold_help}")
    p.add_argument("--min-gap", type=_non_negative, help=f"frames: {min_gap_help}")
    p.add_argument("--capture", action="store_true",
                   help="frames: write the JPEGs of scenes not captured yet, so every row has its image")
    p.set_defaults(func=cmd_export)

    p = add("replay", "serve a recording as a live cht session (growing fMP4 + scene.sock)")
    p.add_argument("recording", help="a recording, a session directory, or a bundled sample's name")
    p.add_argument("--speed", type=_positive, default=1.0, help="times real time (default: 1)")
    p.add_argument("--out", help="where the new session directory goes (default: a cht_lab-sessions temp folder)")
    p.set_defaults(func=cmd_replay)
    return parser


def _configure_logging(verbosity: int) -> None:
    """Warnings always; -v shows cht_lab's info log, -vv its debug log (other libraries stay quiet)."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if verbosity:
        logging.getLogger("cht_lab").setLevel(logging.DEBUG if verbosity > 1 else logging.INFO)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    verbosity = getattr(args, "verbose", 0)
    _configure_logging(verbosity)
    from cht_lab.ffmpeg import FfmpegNotFoundError, MediaError

    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except (Refused, MediaError, FfmpegNotFoundError, FileNotFoundError, PermissionError, ValueError,
            RuntimeError) as exc:  # RuntimeError: nothing scored yet, an index locked by a live writer, no CUDA
        _note(args.command, f"error: {exc}")
        return EXIT_REFUSED
    except Exception as exc:
        _note(args.command, f"error: {type(exc).__name__}: {exc}")
        if verbosity:
            log.exception("unexpected error")
        else:
            _note(args.command, "-v shows the traceback")
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
