"""Scoring a corpus on Dask: speed-up from 1 to 2 workers, and the per-task overhead vs serial scoring.

    python benchmarks/scale.py [--sessions 8] [--workers 1 2] [--repeat 3]
    python benchmarks/scale.py --scheduler tcp://HOST:8786 --dir /shared/tmp

The corpus is `--sessions` copies of the generated samples (slides, desktop, coding, twoseg, in
turn; twoseg has two recordings, so 8 sessions are 10 recordings). Each configuration scores
fresh copies, so every run decodes everything:

- serial: `Session.score()` on each session, one after the other, in a fresh process (the
  reference; this one runs the LocalClusters' schedulers, whose threads would slow it down);
- `score_sessions` on a LocalCluster of N worker processes (one thread each), for each N in
  `--workers`; the clusters are started first and their start-up is timed apart, since a
  notebook starts one once.

The configurations run `--repeat` rounds in a rotating order (a shared machine's load drifts);
each figure is computed within a round and the median over rounds is reported. Figures (each a
ratio of times measured in the same round): speed-up = wall(1 worker) / wall(N) (ideal N on N
free cores), Dask vs serial, and the per-task overhead = (wall(1 worker) - serial) / tasks, as a
share of the mean serial time per recording. Every run's score tables are checked identical to
the first run's (serial).

With `--scheduler`, the Dask runs go to that cluster instead (its workers must see `--dir` under
the same path); `--workers` is then ignored and the speed-up is against this machine's serial run.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

from cht_lab import layout
from cht_lab.corpus.scoring import score_sessions
from cht_lab.session import open_session
from cht_lab.tools.samples import SAMPLES, sample_dir


SYNTHETIC = ("slides", "desktop", "coding", "twoseg")  # the generated samples (the recorded ones vary in length)


def make_corpus(root: Path, n: int) -> list[Path]:
    """n session directories copied from the bundled samples (index left out: nothing scored yet)."""
    names = [n for n in SYNTHETIC if n in SAMPLES] or list(SAMPLES)
    out = []
    for i in range(n):
        src = sample_dir(names[i % len(names)])
        dest = root / f"{i:02d}-{src.name}"
        shutil.copytree(src, dest, ignore=shutil.ignore_patterns(layout.INDEX_DIR))
        out.append(dest)
    return out


def scores_of(paths: list[Path]) -> list[pd.DataFrame]:
    return [open_session(p).scores() for p in paths]


_SERIAL = """
import sys, time
from cht_lab.session import open_session
paths = sys.argv[1:]
t0 = time.perf_counter()
for p in paths:
    open_session(p).score(progress=False)
print(time.perf_counter() - t0)
"""


def run_serial(root: Path, n: int) -> tuple[float, list[pd.DataFrame], int]:
    """Session.score on each session in a fresh process (this one hosts the schedulers' threads)."""
    paths = make_corpus(root / "serial", n)
    done = subprocess.run([sys.executable, "-c", _SERIAL, *map(str, paths)], check=True, capture_output=True,
                          text=True)
    wall = float(done.stdout.strip().splitlines()[-1])
    return wall, scores_of(paths), sum(len(open_session(p).segments) for p in paths)


def run_dask(root: Path, n: int, client: Any, label: str) -> tuple[float, list[pd.DataFrame], int]:
    paths = make_corpus(root / label, n)
    t0 = time.perf_counter()
    report = score_sessions(paths, client, progress=False)
    wall = time.perf_counter() - t0
    failed = report[report["status"] != "scored"]
    if len(failed):
        raise SystemExit(f"{label}: not scored:\n{failed.to_string()}")
    return wall, scores_of(paths), int(report.attrs["tasks"])


def identical(a: list[pd.DataFrame], b: list[pd.DataFrame]) -> bool:
    try:
        for x, y in zip(a, b, strict=True):
            pd.testing.assert_frame_equal(x, y)
    except AssertionError:
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, default=8, help="sessions in the corpus (default: 8)")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="LocalCluster sizes (default: 1 2)")
    ap.add_argument("--repeat", type=int, default=3, help="rounds, each configuration once per round in a "
                                                         "rotating order; medians are reported (default: 3)")
    ap.add_argument("--scheduler", help="a Dask scheduler address to run on instead of LocalClusters")
    ap.add_argument("--dir", help="where the copies go (default: a temp dir; shared storage with --scheduler)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    import distributed

    logging.getLogger("distributed").setLevel(logging.ERROR)
    root = Path(tempfile.mkdtemp(prefix="cht-scale-", dir=args.dir))
    os.environ.setdefault(layout.DATA_DIR_ENV, str(root / "data"))  # before any worker starts
    print(f"cpus: {len(os.sched_getaffinity(0))}  sessions: {args.sessions}  load average: {os.getloadavg()[0]:.1f}"
          f"  copies under {root}", flush=True)
    clients: dict[str, Any] = {}
    clusters = []
    try:
        if args.scheduler:
            clients["scheduler"] = distributed.Client(args.scheduler)
        for n in [] if args.scheduler else args.workers:
            t0 = time.perf_counter()
            cluster = distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                               dashboard_address=":0", silence_logs=logging.ERROR)
            clusters.append(cluster)
            clients[f"{n} worker(s)"] = distributed.Client(cluster, set_as_default=False)
            print(f"{n} worker(s): cluster started in {time.perf_counter() - t0:.1f} s (not in the timings)")
        configs = ["serial", *clients]
        walls: dict[str, list[float]] = {c: [] for c in configs}
        tasks = recordings = 0
        reference = None
        for r in range(args.repeat):
            for label in configs[r % len(configs):] + configs[:r % len(configs)]:
                where = root / f"r{r}-{label.split()[0]}"
                if label == "serial":
                    wall, scores, recordings = run_serial(where, args.sessions)
                else:
                    wall, scores, tasks = run_dask(where, args.sessions, clients[label], label)
                reference = scores if reference is None else reference
                walls[label].append(wall)
                print(f"round {r + 1} {label}: {wall:.1f} s; identical to the first run: "
                      f"{'yes' if identical(scores, reference) else 'NO'}", flush=True)
                shutil.rmtree(where, ignore_errors=True)
    finally:
        for c in clients.values():
            c.close()
        for cluster in clusters:
            cluster.close()
        shutil.rmtree(root, ignore_errors=True)
    # ratios within each round (runs minutes apart), then their median: a shared machine's load drifts
    rounds = range(len(walls["serial"]))
    print(f"\nload average now {os.getloadavg()[0]:.1f}; serial: {recordings} recordings, Dask: {tasks} tasks")
    print("walls (s): " + "; ".join(f"{k} " + ", ".join(f"{w:.1f}" for w in v) for k, v in walls.items()))

    def ratio(name: str, values: list[float]) -> None:
        print(f"{name}: {statistics.median(values):.2f}x (rounds: {', '.join(f'{v:.2f}' for v in values)})")

    dask = [k for k in walls if k != "serial"]
    for label in dask:
        ratio(f"{label} vs serial, speed-up", [walls["serial"][r] / walls[label][r] for r in rounds])
        if label != dask[0]:
            ratio(f"{label} vs {dask[0]}, speed-up", [walls[dask[0]][r] / walls[label][r] for r in rounds])
    if "1 worker(s)" in walls:
        ratio("per-task overhead, (1 worker - serial) / tasks, vs the serial time per recording",
              [(walls["1 worker(s)"][r] - walls["serial"][r]) / tasks / (walls["serial"][r] / recordings)
               for r in rounds])
    return 0


if __name__ == "__main__":
    sys.exit(main())
