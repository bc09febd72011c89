"""The corpus view: many sessions' score tables as one frame, and one threshold tuned across them.

Why on the workers: a week of meetings is millions of score rows, so the tables stay where they
are read (in the workers' memory, one per session), and only small answers travel to the
notebook: per-session summaries to choose the thresholds, then per-threshold counts (detections,
tp, fp, fn) that are summed. The sums are exactly the per-session sweeps combined (micro
averaging, as `evaluate_sessions` does), because every session is swept at the same thresholds.

`sessions` everywhere: a `score_sessions` report (its sessions that did not fail), `Session`
objects, or paths (session directories, their working directories, recordings, folders of
sessions). `client`: a `distributed.Client`, an address or "local" (see `dask_client`), or None:
the default client when one exists, else this process (no Dask needed).
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from cht_lab.detect.decision import DEFAULT_MIN_GAP
from cht_lab.detect.scoring import DEFAULT_METRIC
from cht_lab.tuning.matching import DEFAULT_TOLERANCE, TuningError, _arrays, _prf, _prf_arrays

SESSION_COLUMN = "session"


@dataclass(frozen=True)
class Loaded:
    """One session's scores and labels, kept on a worker between the tuning passes."""

    name: str
    source: str
    work_dir: str
    scores: pd.DataFrame
    labels: pd.DataFrame | None


# --------------------------------------------------------------------------- where the work runs

class _Here:
    """Runs the tasks in this process (no client, or no Dask installed)."""

    def map(self, func: Callable[..., Any], *iterables: Any, **kw: Any) -> list[Any]:
        return [func(*args, **kw) for args in zip(*iterables)]

    def gather(self, items: list[Any]) -> list[Any]:
        return items


class _OnDask:
    def __init__(self, client: Any):
        self.client = client

    def map(self, func: Callable[..., Any], *iterables: Any, **kw: Any) -> list[Any]:
        return self.client.map(functools.partial(func, **kw), *iterables, pure=False)

    def gather(self, futures: list[Any]) -> list[Any]:
        return self.client.gather(futures)


@contextlib.contextmanager
def _runner(client: Any) -> Iterator[_Here | _OnDask]:
    if client is None:
        try:
            import distributed

            client = distributed.default_client()
        except (ImportError, ValueError):
            client = None
    if client is None:
        yield _Here()  # outside the except: an error of the caller's block is not chained to "no client"
        return
    if isinstance(client, (str, os.PathLike)):
        from cht_lab.corpus.scoring import dask_client

        with dask_client(os.fspath(client)) as c:
            yield _OnDask(c)
        return
    yield _OnDask(client)


# --------------------------------------------------------------------------- which sessions

def session_refs(sessions: Any) -> list[str]:
    """Paths a worker opens: a report's working directories, Sessions' `dir`, paths (folders expanded)."""
    from cht_lab.corpus.scoring import expand

    if isinstance(sessions, pd.DataFrame):
        ok = sessions[sessions["status"] != "failed"] if "status" in sessions else sessions
        return list(dict.fromkeys(str(p) for p in ok["work_dir"].dropna()))  # a session given twice: once
    if isinstance(sessions, (str, os.PathLike)):
        sessions = [sessions]
    refs: list[str] = []
    for item in sessions:
        if hasattr(item, "dir") and hasattr(item, "scores"):
            refs.append(str(item.dir))
        else:
            refs.extend(str(p) for p in expand(os.fspath(item)))
    if not refs:
        raise ValueError("no sessions given")
    return refs


def load_session(ref: str) -> Loaded:
    """Task: a session's scores and labels (they stay on the worker that read them)."""
    from cht_lab.session import open_session

    s = open_session(ref)
    return Loaded(s.id, str(s.source_dir), str(s.dir), s.scores(), s.labels)


_Info = tuple[str, str, int, bool, str]  # name, source, score rows, has labels, working directory


def locate(ref: str) -> tuple[str, str, str]:
    """Task: a session's id, source and working directory (where its index is)."""
    from cht_lab.session import open_session

    s = open_session(ref)
    return s.id, str(s.source_dir), str(s.dir)


def _describe(loaded: Loaded) -> _Info:
    return loaded.name, loaded.source, len(loaded.scores), loaded.labels is not None, loaded.work_dir


def _names(infos: list[_Info]) -> list[str]:
    """Session ids (the source's name), or the source path where two sources share a name."""
    ids = [i[0] for i in infos]
    return [name if ids.count(name) == 1 else source for name, source, *_ in infos]


def _load(run: _Here | _OnDask, sessions: Any) -> tuple[list[Any], list[str], list[_Info]]:
    loaded = run.map(load_session, session_refs(sessions))
    infos = run.gather(run.map(_describe, loaded))
    names = _names(infos)
    unscored = [n for n, i in zip(names, infos) if i[2] == 0]
    if unscored:
        raise TuningError(f"no scores yet for {', '.join(unscored)}; score them first (score_sessions)")
    return loaded, names, infos


# --------------------------------------------------------------------------- the corpus frame

def _with_session(scores: pd.DataFrame, name: str) -> pd.DataFrame:
    scores = scores.copy()
    scores.insert(0, SESSION_COLUMN, pd.Series([name] * len(scores), index=scores.index, dtype="string"))
    return scores


def read_scores(work_dir: str, name: str) -> pd.DataFrame:
    """A partition of the corpus frame: one session's scores (a reader: no lock), with its session id."""
    from cht_lab.index.session_index import SessionIndex

    return _with_session(SessionIndex(work_dir).scores(), name)


def _meta() -> pd.DataFrame:
    import pyarrow as pa

    from cht_lab.detect.scoring import PYTHON_METRICS
    from cht_lab.index.schema import SCORES_SCHEMA, TABLES, to_pandas

    schema = SCORES_SCHEMA
    for m in PYTHON_METRICS:
        schema = schema.append(pa.field(m, pa.float32()))
    return _with_session(to_pandas(TABLES["scores"], schema.empty_table()), "")


def corpus_scores(sessions: Any, client: Any = None, *, lazy: bool = False) -> Any:
    """Every session's score table as one frame with a `session` column (the session's id).

    `lazy=True`: a `dask.dataframe`, one partition per session, read by whichever scheduler
    computes it (nothing is read now); otherwise a pandas frame gathered into this process.
    """
    with _runner(client) as run:
        found = run.gather(run.map(locate, session_refs(sessions)))  # (name, source, work dir): no table read
        names, work_dirs = _names([(n, src, 0, False, w) for n, src, w in found]), [w for *_, w in found]
        if lazy:
            import dask.dataframe as dd

            return dd.from_map(read_scores, work_dirs, names, meta=_meta(), label="cht-lab-scores")
        return pd.concat(run.gather(run.map(read_scores, work_dirs, names)), ignore_index=True)


# --------------------------------------------------------------------------- tuning across the corpus

def _summary(loaded: Loaded, metric: str | None, min_gap: float) -> dict[str, Any]:
    """What choosing thresholds needs from one session: its range and per-`min_gap` window maxima."""
    _, name, ts, values = _arrays(loaded.scores, metric)
    finite = np.isfinite(values)
    ts, values = ts[finite], values[finite]
    if values.size == 0:
        return {"metric": name, "lo": np.nan, "hi": np.nan, "maxima": np.zeros(0)}
    bins = np.floor((ts - ts[0]) / max(float(min_gap), 1e-3))
    starts = np.flatnonzero(np.r_[True, bins[1:] != bins[:-1]])
    return {"metric": name, "lo": float(values.min()), "hi": float(values.max()),
            "maxima": np.maximum.reduceat(values, starts)}


def corpus_thresholds(summaries: list[dict[str, Any]], n: int) -> np.ndarray:
    """`tuning.default_thresholds` over the corpus: the same rule on the pooled ranges and window maxima."""
    lo = np.nanmin([s["lo"] for s in summaries]) if summaries else np.nan
    hi = np.nanmax([s["hi"] for s in summaries]) if summaries else np.nan
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return np.zeros(0)
    n_lin = max(2, n // 2)
    parts = [np.linspace(lo, hi, n_lin), [np.nextafter(hi, np.inf)]]
    maxima = np.concatenate([s["maxima"] for s in summaries])
    if maxima.size and n - n_lin > 0:
        parts.append(np.quantile(maxima, np.linspace(0.0, 1.0, n - n_lin)))
    return np.unique(np.concatenate(parts))


def _sweep_one(loaded: Loaded, metric: str | None, thresholds: np.ndarray, tolerance: float,
               min_gap: float, with_labels: bool) -> pd.DataFrame:
    from cht_lab.tuning import sweep as tuning

    out = tuning.sweep(loaded.scores, loaded.labels if with_labels else None, metric=metric, thresholds=thresholds,
                       tolerance=tolerance, min_gap=min_gap)
    out.attrs["n_labels"] = len(loaded.labels) if with_labels and loaded.labels is not None else 0
    return out


def _best(ths: np.ndarray, f1: np.ndarray) -> float | None:
    """The middle of the widest run of best-F1 thresholds (the sampled one nearest its middle)."""
    from cht_lab.tuning.sweep import _F1_TIE, _runs

    if f1.size == 0 or f1.max() <= 0:
        return None
    i, j = max(_runs(f1 >= f1.max() - _F1_TIE), key=lambda r: (ths[r[1]] - ths[r[0]], r[1] - r[0], -r[0]))
    middle = (ths[i] + ths[j]) / 2
    return float(ths[i + int(np.abs(ths[i:j + 1] - middle).argmin())])


def sweep_corpus(sessions: Any, client: Any = None, *, metric: str | None = None, thresholds: Any = None,
                 tolerance: float = DEFAULT_TOLERANCE, min_gap: float | None = None) -> pd.DataFrame:
    """`sweep` over a corpus: per threshold, detections, tp, fp and fn summed over every session.

    `thresholds`: None (~100 from the pooled scores, as `default_thresholds`), an int, or values.
    With labels on every session: precision, recall, f1 of the sums, and `attrs["best_threshold"]`
    (the middle of the widest best-F1 run) with `attrs["best_f1"]`. Sessions without labels make
    it a detections-only sweep when none has labels; TuningError names them when only some lack them.
    """
    min_gap = DEFAULT_MIN_GAP if min_gap is None else float(min_gap)
    with _runner(client) as run:
        loaded, names, infos = _load(run, sessions)
        labeled = [i[3] for i in infos]
        if any(labeled) and not all(labeled):
            missing = [n for n, has in zip(names, labeled) if not has]
            raise TuningError(f"no labels for {', '.join(missing)}; a corpus sweep needs labels for every "
                              "session, or none")
        if thresholds is None or (isinstance(thresholds, (int, np.integer)) and not isinstance(thresholds, bool)):
            from cht_lab.tuning.sweep import DEFAULT_N_THRESHOLDS

            summaries = run.gather(run.map(_summary, loaded, metric=metric, min_gap=min_gap))
            ths = corpus_thresholds(summaries, DEFAULT_N_THRESHOLDS if thresholds is None else int(thresholds))
        else:
            ths = np.unique(np.asarray(list(np.ravel(thresholds)), dtype=np.float64))
        parts = run.gather(run.map(_sweep_one, loaded, metric=metric, thresholds=ths, tolerance=float(tolerance),
                                   min_gap=min_gap, with_labels=all(labeled)))
    out = parts[0][["threshold"]].copy()
    out.attrs = {}
    cols = ["detections", "tp", "fp", "fn"] if all(labeled) else ["detections"]
    for c in cols:
        out[c] = np.sum([p[c].to_numpy() for p in parts], axis=0).astype("int64")
    n_labels = int(sum(p.attrs["n_labels"] for p in parts))
    out.attrs.update(metric=parts[0].attrs.get("metric", metric or DEFAULT_METRIC), tolerance=float(tolerance),
                     min_gap=min_gap, labels=n_labels if all(labeled) else None, sessions=names)
    if all(labeled):
        out["precision"], out["recall"], out["f1"] = _prf_arrays(out["tp"], out["fp"], out["fn"])
        best = _best(out["threshold"].to_numpy(), out["f1"].to_numpy())
        out.attrs.update(best_threshold=best,
                         best_f1=None if best is None else float(out.loc[out["threshold"] == best, "f1"].iloc[0]))
    return out


def _evaluate_one(loaded: Loaded, name: str, threshold: float, metric: str | None, tolerance: float,
                  min_gap: float) -> dict[str, Any]:
    from cht_lab.tuning import sweep as tuning

    if loaded.labels is None:
        raise TuningError(f"session {name}: no labels; evaluating needs ground truth for every session")
    result = tuning.evaluate(loaded.scores, loaded.labels, threshold, metric=metric, tolerance=tolerance,
                             min_gap=min_gap)
    return {"session": name, **result.as_dict()}


def evaluate_corpus(sessions: Any, threshold: float, client: Any = None, *, metric: str | None = None,
                    tolerance: float = DEFAULT_TOLERANCE, min_gap: float | None = None) -> pd.DataFrame:
    """`evaluate_sessions` over a corpus, each session matched on its worker: a row per session + 'total'."""
    min_gap = DEFAULT_MIN_GAP if min_gap is None else float(min_gap)
    with _runner(client) as run:
        loaded, names, _ = _load(run, sessions)
        rows = run.gather(run.map(_evaluate_one, loaded, names, threshold=float(threshold), metric=metric,
                                  tolerance=float(tolerance), min_gap=min_gap))
    cols = ["session", "labels", "detections", "tp", "fp", "fn", "precision", "recall", "f1"]
    tp, fp, fn = (int(sum(r[c] for r in rows)) for c in ("tp", "fp", "fn"))
    precision, recall, f1 = _prf(tp, fp, fn)
    total = {"session": "total", "labels": tp + fn, "detections": tp + fp, "tp": tp, "fp": fp, "fn": fn,
             "precision": precision, "recall": recall, "f1": f1}
    out = pd.DataFrame([*rows, total], columns=cols)
    out.attrs.update(threshold=float(threshold), metric=metric or DEFAULT_METRIC, tolerance=float(tolerance))
    return out.astype({c: "int64" for c in ("labels", "detections", "tp", "fp", "fn")})


__all__ = ["Loaded", "corpus_scores", "corpus_thresholds", "evaluate_corpus", "load_session", "read_scores",
           "session_refs", "sweep_corpus"]
