"""score_sessions: score many sessions on Dask, one task per recording, one index commit per session.

The graph of one session: `plan_path` (on a worker: open it, list its segments, tell whether
they are scored) -> `score_segment` per segment (a pure function of the recording: its score
table) -> `commit_session` (writes the session's index once all its segments are done).

Why this split:

- The session lock holds by construction: only the commit writes, there is one commit per
  session, and it takes the index's writer lock (a holder, e.g. a notebook or a live run, is
  waited for `lock_wait` seconds, then reported).
- Identical to serial scoring: the tables are `offline.score_recording`'s, and the commit writes
  them as `Session.score` does (same rows, same `scored` stamps and metadata), so `Session.score`
  afterwards finds the session up to date, and an already scored session is skipped here.
- A worker killed mid-task: Dask runs the task again elsewhere (`allowed-failures`; exceptions
  get `retries`). A segment task has no side effect. A commit is a rebuild (clear the scores,
  then append every segment, each append an atomic part file) whose `scored` stamps are written
  after the rows, so a rerun, after a half-done commit or a finished one, leaves one copy of
  every row.

Paths are opened where the task runs: with a remote scheduler the sessions must be on storage
the workers share (under the same path). Expected failures (a file that is no recording, a
locked index) come back as values and are reported with the path and the reason; the other
sessions finish.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from cht_lab import layout

log = logging.getLogger(__name__)

DASK_HINT = 'scoring on Dask needs the dask extra: pip install "cht_lab[dask]"'
REPORT_COLUMNS = ("session", "path", "work_dir", "status", "segments", "rows", "backend", "seconds", "error")
DEFAULT_RETRIES = 2  # reruns of a task that raised an unexpected error (a lost worker is rerun by the scheduler)
LOCK_WAIT = 30.0  # s: how long a commit waits for another writer of the same session
_EXPECTED = (ValueError, OSError, RuntimeError)  # MediaError, missing files, IndexLockedError, FfmpegNotFoundError


@dataclass(frozen=True)
class SegmentJob:
    """One recording to score, with the stamp `Session.score` records for it."""

    index: int
    path: str
    offset: float
    key: str
    stamp: dict[str, Any]


@dataclass(frozen=True)
class SessionPlan:
    """A session as a worker found it: where it reads and writes, its segments, whether it is scored."""

    given: str  # the path it was opened from (the commit opens it again from there)
    source: str
    work_dir: str
    session: str
    segments: tuple[SegmentJob, ...]
    up_to_date: bool
    rows: int  # score rows already stored (when up to date)


@dataclass(frozen=True)
class Failure:
    """An expected failure, returned (not raised) so that it is reported once, not retried."""

    given: str
    where: str  # the file or directory that failed
    reason: str
    stage: str  # open | score | write

    def message(self) -> str:
        return self.reason if self.reason.startswith(self.where) else f"{self.where}: {self.reason}"


# --------------------------------------------------------------------------- worker side

def expand(path: str | os.PathLike[str]) -> list[Path]:
    """A session directory or a recording as it is; a folder of sessions as its session directories."""
    p = Path(path).expanduser()
    if p.is_dir() and not layout.is_session_dir(p):
        found = sorted(c for c in p.iterdir() if c.is_dir() and layout.is_session_dir(c))
        return found or [p]  # [p]: opening it says why it is no session
    return [p]


def segment_jobs(session: Any) -> list[SegmentJob]:
    """The segments with the stamps Session.score compares (same keys, same values)."""
    from cht_lab._version import __version__
    from cht_lab.detect import decode, scoring
    from cht_lab.layout import session_relative as _rel

    signature = {"version": __version__, "width": decode.ANALYSIS_WIDTH, "metrics": list(scoring.METRICS)}
    return [SegmentJob(seg.index, str(seg.path), float(seg.offset), _rel(seg.path, session.dir),
                       {"signature": signature, "size": seg.path.stat().st_size, "offset": seg.offset})
            for seg in session.segments]


def _failure(given: Any, exc: BaseException, stage: str) -> Failure:
    where = getattr(exc, "path", None) or getattr(exc, "session_dir", None) or getattr(exc, "filename", None) or given
    reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or str(exc)
    return Failure(str(given), str(where), str(reason), stage)


def plan_path(path: str, force: bool = False) -> list[SessionPlan | Failure]:
    """Task: open the session(s) at `path` and say what scoring each needs."""
    from cht_lab.ffmpeg import MediaError
    from cht_lab.session import open_session

    out: list[SessionPlan | Failure] = []
    for p in expand(path):
        try:
            s = open_session(p)
            if not s.segments:
                raise MediaError(s.source_dir, f"no recordings found in {layout.STREAM_DIR}/ to score")
            jobs = segment_jobs(s)
            done = s.metadata().get("scored", {})
            up = not force and all(done.get(j.key) == j.stamp for j in jobs)
            out.append(SessionPlan(str(p), str(s.source_dir), str(s.dir), s.id, tuple(jobs), up,
                                   len(s.scores()) if up else 0))
        except _EXPECTED as exc:
            out.append(_failure(p, exc, "open"))
    return out


def score_segment(job: SegmentJob, backend: str = "auto") -> pd.DataFrame | Failure:
    """Task: one recording's score table (no side effect: a rerun computes the same table)."""
    from cht_lab.detect import offline

    t0 = time.monotonic()
    try:
        table = offline.score_recording(job.path, backend=backend, segment=job.index, ts_offset=job.offset,
                                        progress=False)
    except _EXPECTED as exc:
        return _failure(job.path, exc, "score")
    if table.attrs.get("error"):
        log.warning("%s: decoding stopped early: %s", job.path, table.attrs["error"])
    table.attrs["seconds"] = time.monotonic() - t0
    return table


def _open_writer(work_dir: Path, lock_wait: float) -> Any:
    from cht_lab.index.session_index import IndexLockedError, SessionIndex

    deadline = time.monotonic() + lock_wait
    while True:
        try:
            return SessionIndex(work_dir, writer=True)
        except IndexLockedError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.5)


def commit_session(plan: SessionPlan, *tables: pd.DataFrame | Failure, lock_wait: float = LOCK_WAIT) -> dict[str, Any]:
    """Task: write a session's score tables into its index under the writer lock, as Session.score does."""
    from cht_lab.frame_table import VIDEO_SIZES_KEY as _SIZES_KEY

    failed = [t for t in tables if isinstance(t, Failure)]
    seconds = sum(float(t.attrs.get("seconds", 0.0)) for t in tables if not isinstance(t, Failure))
    if failed:
        return report_row(plan, "failed", seconds=seconds, error="; ".join(f.message() for f in failed))
    try:
        # the plan's segments and stamps are what was scored (Session.score stamps before decoding too)
        idx = _open_writer(Path(plan.work_dir), lock_wait)
    except _EXPECTED as exc:
        return report_row(plan, "failed", seconds=seconds, error=_failure(plan.given, exc, "write").message())
    try:
        rows = sum(len(t) for t in tables)
        sizes = dict(idx.metadata().get(_SIZES_KEY) or {})
        if idx.metadata().get("scored") or not idx.scores().empty:
            idx.clear("scores")  # a rebuild, as Session.score does for a partial or stale index (or a rerun)
        done, backend = {}, None
        for job, table in zip(plan.segments, tables):
            idx.append_scores(table)
            idx.flush()
            done[job.key] = job.stamp
            backend = table.attrs.get("backend", backend)
            if table.attrs.get("width") and table.attrs.get("height"):
                sizes[str(job.index)] = [int(table.attrs["width"]), int(table.attrs["height"])]
            idx.update_metadata(scored=done, backend=backend, **{_SIZES_KEY: sizes})
    finally:
        idx.close()
    log.info("%s: %d score rows from %d segment(s) written", plan.source, rows, len(tables))
    return report_row(plan, "scored", rows=rows, backend=backend, seconds=seconds)


def report_row(plan: SessionPlan | Failure, status: str, *, rows: int = 0, backend: str | None = None,
               seconds: float = 0.0, error: str | None = None) -> dict[str, Any]:
    if isinstance(plan, Failure):
        return {"session": Path(plan.given).name, "path": plan.given, "work_dir": None, "status": status,
                "segments": 0, "rows": 0, "backend": None, "seconds": 0.0, "error": plan.message()}
    return {"session": plan.session, "path": plan.source, "work_dir": plan.work_dir, "status": status,
            "segments": len(plan.segments), "rows": int(rows), "backend": backend, "seconds": float(seconds),
            "error": error}


# --------------------------------------------------------------------------- client side

def require_dask() -> Any:
    try:
        import distributed
    except ImportError as exc:
        raise ImportError(DASK_HINT) from exc
    return distributed


@contextlib.contextmanager
def dask_client(client: Any = None, workers: int | None = None) -> Iterator[Any]:
    """The Dask client to run on; one this opens (a LocalCluster, a connection) is closed afterwards.

    `client`: a `distributed.Client` (used as is), a scheduler address ("tcp://host:8786"; this
    connects and disconnects), "local" (a LocalCluster of `workers` processes, one thread each,
    closed afterwards), or None: the current default client if there is one, else "local".
    With an address, `workers` waits until that many workers are connected.
    """
    distributed = require_dask()
    if client is None:
        with contextlib.suppress(ValueError):
            client = distributed.default_client()
    if isinstance(client, distributed.Client):
        if workers:
            client.wait_for_workers(workers)
        yield client
        return
    if client is None or client == "local":
        from cht_lab.detect.decode import usable_cpus

        n = workers or usable_cpus()
        cluster = distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                           silence_logs=logging.ERROR, dashboard_address=":8787")
        log.info("started a LocalCluster of %d worker process(es)", n)
        try:
            with distributed.Client(cluster) as own:
                yield own
        finally:
            cluster.close()
        return
    with distributed.Client(str(client)) as own:
        if workers:
            own.wait_for_workers(workers)
        yield own


def dashboard_link(client: Any) -> str | None:
    """The scheduler's dashboard URL, or None when it serves none (bokeh missing)."""
    try:
        services = client.scheduler_info().get("services", {})
    except Exception as exc:  # a dashboard link must never fail the run
        log.debug("no scheduler info: %s", exc)
        return None
    return client.dashboard_link if "dashboard" in services else None


def _paths(paths: Any) -> list[str]:
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    return [os.fspath(Path(p).expanduser()) for p in paths]


def score_sessions(paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]], client: Any = None, *,
                   backend: str = "auto", force: bool = False, progress: bool = True, workers: int | None = None,
                   retries: int = DEFAULT_RETRIES, lock_wait: float = LOCK_WAIT) -> pd.DataFrame:
    """Score many sessions on Dask: each recording one task, each session's index written once.

    `paths`: session directories, recordings, or folders of sessions. `client`: see
    `dask_client` (None: the default client, else a LocalCluster of `workers` processes).
    Scored sessions are skipped unless `force`. Returns one row per session: session, path,
    work_dir, status (scored | skipped | failed), segments, rows, backend, seconds (decode time
    on the workers), error (the failing path and the reason). `attrs`: dashboard, wall_s, tasks.
    """
    given = _paths(paths)
    t0 = time.monotonic()
    with dask_client(client, workers) as c:
        link = dashboard_link(c)
        if link:
            log.info("Dask dashboard: %s", link)
        rows, tasks = _run(c, given, backend=backend, force=force, progress=progress, retries=retries,
                           lock_wait=lock_wait, link=link)
    report = pd.DataFrame([rows[k] for k in sorted(rows)], columns=list(REPORT_COLUMNS))
    report = report.astype({"segments": "int64", "rows": "int64", "seconds": "float64"})
    report.attrs.update(dashboard=link, wall_s=time.monotonic() - t0, tasks=tasks)
    for r in report.itertuples():
        if r.status == "failed":
            log.warning("not scored: %s", r.error)
    counts = report["status"].value_counts().to_dict()
    log.info("%d session(s): %s in %.1f s", len(report), counts, report.attrs["wall_s"])
    return report


def _bar(progress: bool, total: int, link: str | None) -> Any:
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc="scoring sessions", unit="task", disable=not progress)
    if progress and link:
        tqdm.write(f"Dask dashboard: {link}", file=sys.stderr)
    return bar


def _run(c: Any, given: list[str], *, backend: str, force: bool, progress: bool, retries: int,
         lock_wait: float, link: str | None) -> tuple[dict[tuple[int, int], dict[str, Any]], int]:
    """Plan every path, then submit each stale session's segment tasks and commit; a row per session.

    Plans are quick (open, stat) and all of them are in before scoring starts, so that a session
    given twice is scored for its first mention, whatever order the plans finish in.
    """
    distributed = require_dask()
    plans = c.map(plan_path, given, force=force, pure=False, retries=retries)
    rows: dict[tuple[int, int], dict[str, Any]] = {}
    commits: dict[Any, tuple[tuple[int, int], SessionPlan]] = {}
    seen: dict[str, str] = {}
    work: list[Any] = []
    bar = _bar(progress, len(plans), link)
    try:
        for _ in distributed.as_completed(plans, loop=c.loop):
            bar.update(1)
        for i, fut in enumerate(plans):
            if fut.status != "finished":
                rows[(i, 0)] = report_row(Failure(given[i], given[i], _why(fut), "open"), "failed")
                continue
            for j, item in enumerate(fut.result()):
                if isinstance(item, Failure):
                    rows[(i, j)] = report_row(item, "failed")
                elif item.work_dir in seen:
                    rows[(i, j)] = report_row(item, "skipped", error=f"the same session as {seen[item.work_dir]}")
                elif item.up_to_date:
                    seen[item.work_dir] = item.given
                    rows[(i, j)] = report_row(item, "skipped", rows=item.rows)
                else:
                    seen[item.work_dir] = item.given
                    segs = [c.submit(score_segment, job, backend, pure=False, retries=retries)
                            for job in item.segments]
                    commit = c.submit(commit_session, item, *segs, lock_wait=lock_wait, pure=False, retries=retries)
                    commits[commit.key] = ((i, j), item)
                    work += [*segs, commit]
        bar.total = len(plans) + len(work)
        bar.refresh()
        del plans
        for fut in distributed.as_completed(work, loop=c.loop):
            bar.update(1)
            if fut.key in commits:
                where, item = commits.pop(fut.key)
                ok = fut.status == "finished"
                rows[where] = fut.result() if ok else report_row(item, "failed", error=f"{item.source}: {_why(fut)}")
    finally:
        bar.close()
    return rows, len(given) + len(work)


def _why(fut: Any) -> str:
    """The reason a task failed for good (an error after its retries, or workers lost while running it)."""
    try:
        exc = fut.exception()
    except BaseException as err:  # cancelled: exception() raises
        exc = err
    return f"{type(exc).__name__}: {exc}"


__all__ = ["Failure", "SegmentJob", "SessionPlan", "commit_session", "dashboard_link", "dask_client", "expand",
           "plan_path", "score_segment", "score_sessions"]
