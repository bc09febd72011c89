"""`cht-lab samples`, `demo` and `replay`: the tools around the library."""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path




from cht_lab.cli.common import (EXIT_OK, EXIT_FAILED, EXIT_REFUSED, EXIT_INTERRUPTED, BACKENDS, RECENT_WRITE, Refused, _table, _progress, _note, _clock, _non_negative, _positive, _sample_names, _check_sample, _session_path, _open, _replay_source, log)  # noqa: F401


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
