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
import sys
from typing import Sequence

from cht_lab._version import __version__



from cht_lab.cli.common import (EXIT_OK, EXIT_FAILED, EXIT_REFUSED, EXIT_INTERRUPTED, BACKENDS, RECENT_WRITE, Refused, _table, _progress, _note, _clock, _non_negative, _positive, _sample_names, _check_sample, _session_path, _open, _replay_source, log)  # noqa: F401
from cht_lab.cli.run import cmd_run
from cht_lab.cli.score import _count, cmd_export, cmd_score
from cht_lab.cli.tools import cmd_demo, cmd_replay, cmd_samples


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
