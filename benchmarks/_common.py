"""What every benchmark shares: the repository on sys.path, the cache, timing, medians, reference runs.

    from _common import CACHE, Run, interleave, median_ms, reference_decode

The benchmarks run on a small machine that other work shares, so a figure is only worth
something next to a reference measured in the same run: `interleave` runs the candidates and
their reference back to back, repeat after repeat (rotating who goes first, so none always gets
the warm cache or the quiet moment), and the medians are compared. Every run records wall time
and CPU time (this process and its ffmpeg children), since CPU time does not depend on the
neighbours.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

CACHE = REPO / "benchmarks" / ".cache"


# --------------------------------------------------------------------------- one run


def cpu_seconds() -> tuple[float, float]:
    """(CPU seconds of this process, of its waited-for children): user + system."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime


@dataclass
class Run:
    """One timed call: wall seconds, CPU seconds of this process and of its children, its result."""

    wall: float
    cpu_self: float
    cpu_children: float
    result: Any = None

    @property
    def cpu(self) -> float:
        return self.cpu_self + self.cpu_children


def measure(fn: Callable[[], Any]) -> Run:
    """Call `fn()` once and time it (wall and CPU). CPU of children counts only children that
    ended (were waited for) during the call: ffmpeg run to its end."""
    c0 = cpu_seconds()
    t0 = time.perf_counter()
    result = fn()
    wall = time.perf_counter() - t0
    c1 = cpu_seconds()
    return Run(wall, c1[0] - c0[0], c1[1] - c0[1], result)


# --------------------------------------------------------------------------- medians


class Timing(float):
    """A median (the float's value) that also keeps the runs it came from and the best of them."""

    runs: list[float]

    @property
    def best(self) -> float:
        return min(self.runs)


def timing(values: Iterable[float]) -> Timing:
    runs = list(values)
    t = Timing(statistics.median(runs))
    t.runs = runs
    return t


def median_ms(fn: Callable[[], Any], repeat: int, *, warmup: bool = True) -> Timing:
    """Median wall time of `repeat` calls, in ms (after one untimed call: imports, caches, fonts)."""
    if warmup:
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return timing(times)


def interleave(candidates: dict[str, Callable[[], Any]], repeat: int, *,
               report: Callable[[int, dict[str, Run]], None] | None = None) -> dict[str, list[Run]]:
    """Run every candidate once per repeat, back to back, the first one rotating each repeat.

    Returns each candidate's runs in repeat order; `report(repeat_index, runs_of_this_repeat)`
    is called after each repeat (progress lines).
    """
    names = list(candidates)
    runs: dict[str, list[Run]] = {n: [] for n in names}
    for r in range(repeat):
        k = r % len(names)
        this: dict[str, Run] = {}
        for name in names[k:] + names[:k]:
            this[name] = measure(candidates[name])
            runs[name].append(this[name])
        if report is not None:
            report(r, {n: this[n] for n in names})
    return runs


def median_wall(runs: Sequence[Run]) -> float:
    return statistics.median(r.wall for r in runs)


def median_cpu(runs: Sequence[Run]) -> float:
    return statistics.median(r.cpu for r in runs)


def speed_ratio(ours: Sequence[Run], reference: Sequence[Run]) -> float:
    """Throughput of `ours` over the reference's, from median wall times (>1: ours is faster)."""
    return median_wall(reference) / median_wall(ours)


def cpu_ratio(ours: Sequence[Run], reference: Sequence[Run]) -> float:
    """The same from median CPU times: what the work costs, whatever the neighbours do."""
    return median_cpu(reference) / median_cpu(ours)


def load_note() -> str:
    return f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}"


# --------------------------------------------------------------------------- reference runs


def ffmpeg_null(input_args: Sequence[str], output_args: Sequence[str] = (), *, timeout: float = 900) -> None:
    """Run `ffmpeg <input_args> <output_args> -f null -` to its end (the decode-only reference)."""
    from cht_lab.ffmpeg import find_ffmpeg

    subprocess.run([find_ffmpeg(), "-hide_banner", "-nostdin", "-loglevel", "error", *map(str, input_args),
                    *map(str, output_args), "-f", "null", "-"],
                   check=True, timeout=timeout, stdin=subprocess.DEVNULL)


def reference_decode(path: str | os.PathLike[str], stream: str = "0:v:0") -> Callable[[], None]:
    """The decode-only floor of `path`: `ffmpeg -i X -map <stream> -f null -` (every frame decoded,
    with ffmpeg's defaults, nothing else), as a callable for `interleave`."""
    return lambda: ffmpeg_null(["-i", os.fspath(path)], ["-map", stream])


def render_once(path: Path, render: Callable[[Path], Any], what: str = "") -> Path:
    """`path` from the cache, rendered first (into a temp name, then renamed) when missing."""
    if path.is_file() and path.stat().st_size > 0:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    t0 = time.perf_counter()
    print(f"rendering {what or path.name} (once; cached in {path.parent}) ...", flush=True)
    render(tmp)
    os.replace(tmp, path)
    print(f"  rendered in {time.perf_counter() - t0:.0f} s, {path.stat().st_size / 1e6:.1f} MB", flush=True)
    return path


__all__ = ["CACHE", "REPO", "Run", "Timing", "cpu_ratio", "cpu_seconds", "ffmpeg_null", "interleave", "load_note",
           "measure", "median_cpu", "median_ms", "median_wall", "reference_decode", "render_once", "speed_ratio",
           "timing"]
