"""`cht-lab score` and `export`: recorded sessions, one or a corpus."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path




from cht_lab.cli.common import (EXIT_OK, EXIT_FAILED, EXIT_REFUSED, EXIT_INTERRUPTED, BACKENDS, RECENT_WRITE, Refused, _table, _progress, _note, _clock, _non_negative, _positive, _sample_names, _check_sample, _session_path, _open, _replay_source, log)  # noqa: F401


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
