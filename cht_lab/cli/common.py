"""What every `cht-lab` command shares: exit codes, argument checks, sample names, output helpers."""

from __future__ import annotations

import argparse
import logging
import math
import sys
from pathlib import Path
from typing import Any


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


def _replay_source(arg: str) -> Path:
    path = Path(arg).expanduser()
    if not path.exists() and arg in _sample_names():
        from cht_lab.tools.samples import sample_dir

        return sample_dir(arg)
    return path


# --------------------------------------------------------------------------- parser
