"""Labeling a recording: which moments to ask about, in which order, and when the answers are enough.

Writing event times by hand while scrubbing a player is slow and error-prone. A review asks
instead: its *candidates* are the peaks of a metric above a low floor (the highest frame in every
`window` seconds), and each answer is a labels.csv row — an event kind (`cut`, `gradual`,
`partial`) or `none` for a candidate that is no event, so a review resumes where it stopped. A
moment no candidate found is added by time. Everything here is pure (no widgets, no files: the
`save` callback writes), so the Label tab, `Session.review()`, `tuning.sessions` and benchmarks/labeling.py share it.

**Tuning from a review.** A candidate is captured at threshold t when its peak score is >= t (the
capture rule takes one frame per peak). The F1 of t counts the decided moments only: events
scoring >= t are hits, events below are misses, non-events >= t are false detections; candidates
nobody reviewed are unknown and not counted, so ten answers already give an honest threshold.
The best threshold is the middle of the widest run of best-F1 thresholds (the *plateau*, as
`sweep.find_best` picks it); its edges are decided scores, so the plateau says how well the labels
pin the threshold. (A labels.csv without `none` rows is complete ground truth and tuned by
`sweep.find_best` as before: everything unlabeled is a non-event.)

**Asking what matters.** Only an unreviewed candidate whose score lies inside the plateau can move
the best threshold; of those, the one nearest the current best is asked first, so either answer
cuts the plateau about in half (a bisection of the score range, not a walk through time). When no
unreviewed candidate is left inside, the labels *settle* the threshold: the rest lie above it
(events, if the metric means anything) or below it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pandas as pd

from cht_lab.detect.decision import DEFAULT_MIN_GAP
from cht_lab.detect.scoring import DEFAULT_METRIC, DEFAULT_THRESHOLDS
from cht_lab.tuning.labels import ALL_KINDS, NON_EVENT, LabelsError, add_row, as_labels, empty_labels, events_only
from cht_lab.tuning.matching import DEFAULT_TOLERANCE, _arrays, _prf_arrays

log = logging.getLogger(__name__)

ORDERS: tuple[str, ...] = ("matters", "time")
MAX_CANDIDATES = 500  # the highest peaks; a review needs the few near the threshold, not thousands
FLOOR_FRACTION = 0.25  # default floor: a quarter of the metric's default threshold
BEFORE_S = 1.0  # the "before" picture of a candidate: this long before its peak


def default_floor(metric: str, values: np.ndarray | None = None) -> float:
    """The candidates' floor: a quarter of the metric's default threshold, else the 90th percentile
    of its non-zero scores (a metric without a default has no known scale)."""
    if metric in DEFAULT_THRESHOLDS:
        return DEFAULT_THRESHOLDS[metric] * FLOOR_FRACTION
    v = np.asarray(values if values is not None else [], dtype=np.float64)
    v = v[np.isfinite(v) & (v > 0)]
    return float(np.quantile(v, 0.9)) if v.size else 0.0


def find_candidates(scores: pd.DataFrame, metric: str | None = None, floor: float | None = None,
                    window: float | None = None, before: float = BEFORE_S, limit: int = MAX_CANDIDATES,
                    min_gap: float = DEFAULT_MIN_GAP, tolerance: float = DEFAULT_TOLERANCE) -> pd.DataFrame:
    """Peaks of `metric` >= `floor`, the highest within `window` s (default: the matching tolerance), by time.

    Columns: ts, score, segment, frame_index, row (position in the ts-sorted scores), and the
    frame `before` s earlier in the same segment (before_ts, before_segment, before_frame_index).
    """
    scores, name, ts, values = _arrays(scores, metric)
    floor = default_floor(name, values) if floor is None else float(floor)
    window = float(tolerance) if window is None else float(window)
    seg = scores["segment"].to_numpy(np.int64) if "segment" in scores else np.zeros(ts.size, np.int64)
    fidx = scores["frame_index"].to_numpy(np.int64) if "frame_index" in scores else np.arange(ts.size)
    above = np.flatnonzero(np.isfinite(values) & (values >= floor))
    blocked = np.zeros(ts.size, bool)
    taken: list[int] = []
    for i in above[np.argsort(-values[above], kind="stable")].tolist():
        if blocked[i]:
            continue
        taken.append(i)
        blocked[np.searchsorted(ts, ts[i] - window, "left"):np.searchsorted(ts, ts[i] + window, "right")] = True
        if len(taken) >= limit:
            log.info("%d candidates kept (the highest); raise the floor to review fewer", limit)
            break
    rows = np.sort(np.asarray(taken, np.int64))
    prev = np.maximum(np.searchsorted(ts, ts[rows] - before + 1e-6, "right") - 1, 0)  # 1 µs: float noise
    first_of_segment = np.searchsorted(seg, seg[rows], "left") if ts.size else rows  # segments are in time order
    prev = np.where(seg[prev] == seg[rows], prev, first_of_segment)
    out = pd.DataFrame({"ts": ts[rows], "score": values[rows], "segment": seg[rows], "frame_index": fidx[rows],
                        "row": rows, "before_ts": ts[prev], "before_segment": seg[prev],
                        "before_frame_index": fidx[prev]})
    out.attrs.update(metric=name, floor=floor, window=window)
    return out


def window_max(ts: np.ndarray, values: np.ndarray, start: np.ndarray, stop: np.ndarray) -> np.ndarray:
    """Highest value within each [start, stop] of sorted `ts` (0 where no frame is): the score a label
    there has, i.e. the highest threshold at which a capture still matches it."""
    a = np.searchsorted(ts, start, "left")
    b = np.searchsorted(ts, stop, "right")
    out = np.zeros(a.size)
    for k in np.flatnonzero(b > a).tolist():
        window = values[a[k]:b[k]]
        finite = window[np.isfinite(window)]
        out[k] = float(finite.max()) if finite.size else 0.0
    return out


@dataclass(frozen=True)
class Plateau:
    """The best threshold from the decisions so far and the range of thresholds that score the same.

    `low` is exclusive and `high` inclusive: any threshold in (low, high] has F1 `f1` on the
    decided moments. `inside`: unreviewed candidates whose score lies in it (their answers can
    still move the threshold); `settled` when none is left and at least one event is known.
    """

    threshold: float
    f1: float
    low: float
    high: float
    precision: float
    recall: float
    tp: int
    fp: int
    fn: int
    events: int
    non_events: int
    inside: int

    @property
    def settled(self) -> bool:
        return self.events > 0 and self.inside == 0


def plateau(scores: np.ndarray, is_event: np.ndarray, unreviewed: np.ndarray, floor: float,
            top: float) -> Plateau:
    """The widest best-F1 run of thresholds in (floor, top] for decided `scores` (events where `is_event`).

    Thresholds only matter between decided scores, so the intervals (e_k-1, e_k] between them are
    scored at once (vectorised); ties between runs go to the widest, then the lowest.
    """
    scores = np.asarray(scores, np.float64)
    is_event = np.asarray(is_event, bool)
    unreviewed = np.asarray(unreviewed, np.float64)
    top = max(float(top), float(floor))
    edges = np.unique(np.r_[scores[(scores > floor) & (scores < top)], top])
    if edges[-1] <= floor:
        edges = np.r_[np.nextafter(floor, np.inf)]
    ev, ne = np.sort(scores[is_event]), np.sort(scores[~is_event])
    tp = ev.size - np.searchsorted(ev, edges, "left")
    fp = ne.size - np.searchsorted(ne, edges, "left")
    fn = ev.size - tp
    precision, recall, f1 = _prf_arrays(tp, fp, fn)
    lows = np.r_[floor, edges[:-1]]
    good = np.flatnonzero(f1 >= f1.max() - 1e-12)
    runs = np.split(good, np.flatnonzero(np.diff(good) > 1) + 1)
    i, j = max(((r[0], r[-1]) for r in runs), key=lambda r: (edges[r[1]] - lows[r[0]], -r[0]))
    low, high = float(lows[i]), float(edges[j])
    middle = (low + high) / 2
    k = min(int(np.searchsorted(edges, middle, "left")), j)
    inside = int(np.count_nonzero((unreviewed > low) & (unreviewed <= high)))
    return Plateau(middle, float(f1[k]), low, high, float(precision[k]), float(recall[k]), int(tp[k]), int(fp[k]),
                   int(fn[k]), int(ev.size), int(ne.size), inside)


class Review:
    """Candidates, the decisions made about them (labels rows, `none` included), undo, and the plateau.

    `save(rows)` is called after every change with every row (events and non-events); when it
    raises, the change is undone in memory too, so what the review shows is what the file holds.
    """

    def __init__(self, scores: pd.DataFrame, labels: Any = None, *, metric: str | None = None,
                 min_gap: float = DEFAULT_MIN_GAP, tolerance: float = DEFAULT_TOLERANCE, floor: float | None = None,
                 before: float = BEFORE_S, limit: int = MAX_CANDIDATES,
                 save: Callable[[pd.DataFrame], Any] | None = None):
        sorted_scores, self.metric, self.ts, self.values = _arrays(scores, metric or DEFAULT_METRIC)
        self.scores = sorted_scores.reset_index(drop=True)
        self.min_gap, self.tolerance = float(min_gap), float(tolerance)
        self.candidates = find_candidates(self.scores, self.metric, floor, before=before, limit=limit,
                                          min_gap=min_gap, tolerance=tolerance)
        self.floor = float(self.candidates.attrs["floor"])
        finite = self.values[np.isfinite(self.values)]
        self._top = float(np.nextafter(max(self.floor, float(finite.max()) if finite.size else 0.0), np.inf))
        self._save = save
        self._rows = as_labels(labels, non_events=True)
        self._history: list[tuple[pd.DataFrame, pd.DataFrame]] = []  # (rows removed, rows added) per change
        self.decisions = 0  # changes made through this review (not the rows it started from)
        self.version = 0  # bumped on every change: a cache key for views
        self._refresh()

    # ------------------------------------------------------------------ state

    @property
    def rows(self) -> pd.DataFrame:
        """Every label row, `none` included (what labels.csv holds)."""
        return self._rows.copy()

    @property
    def labels(self) -> pd.DataFrame:
        """The event rows: the ground truth the tuning functions take."""
        return events_only(self._rows).copy()

    @property
    def status(self) -> pd.Series:
        """Per candidate: the kind of the row that covers it, or "" when it is not reviewed yet."""
        return pd.Series(self._status, index=self.candidates.index, dtype=object)

    @property
    def total(self) -> int:
        return len(self.candidates)

    @property
    def reviewed(self) -> int:
        return int(np.count_nonzero(self._status != ""))

    @property
    def active(self) -> bool:
        """A review in progress: its rows hold `none` decisions or it made some; tuning then counts
        unreviewed candidates as unknown (see the module docstring), not as non-events."""
        return self.decisions > 0 or bool((self._rows["kind"] == NON_EVENT).any())

    @property
    def plateau(self) -> Plateau:
        return self._plateau

    def _windows(self, rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        start = rows["time"].to_numpy(np.float64)
        end = rows["end"].to_numpy(np.float64)
        return start - self.tolerance, np.where(np.isnan(end), start, end) + self.tolerance

    def _refresh(self) -> None:
        rows, cand = self._rows, self.candidates["ts"].to_numpy(np.float64)
        start, stop = self._windows(rows)
        status = np.full(cand.size, "", dtype=object)
        if len(rows) and cand.size:
            inside = (cand[:, None] >= start[None, :]) & (cand[:, None] <= stop[None, :])
            centre = rows["time"].to_numpy(np.float64)[None, :]
            nearest = np.where(inside, np.abs(cand[:, None] - centre), np.inf).argmin(axis=1)
            hit = inside.any(axis=1)
            status[hit] = rows["kind"].to_numpy(object)[nearest[hit]]
        self._status = status
        self.row_scores = self._window_max(start, stop)
        if len(rows) and cand.size:  # a decided candidate scores its own peak, not a neighbour's within reach
            times = rows["time"].to_numpy(np.float64)
            k = np.clip(np.searchsorted(cand, times), 1, cand.size) - 1
            k = np.where((k + 1 < cand.size) & (np.abs(cand[np.minimum(k + 1, cand.size - 1)] - times)
                                                  < np.abs(cand[k] - times)), k + 1, k)
            own = np.abs(cand[k] - times) < 1e-3
            self.row_scores[own] = self.candidates["score"].to_numpy(np.float64)[k[own]]
        unreviewed = self.candidates["score"].to_numpy(np.float64)[status == ""]
        self._plateau = plateau(self.row_scores, rows["kind"].to_numpy(object) != NON_EVENT, unreviewed,
                                self.floor, self._top)

    def _window_max(self, start: np.ndarray, stop: np.ndarray) -> np.ndarray:
        return window_max(self.ts, self.values, start, stop)

    def score_at(self, time: float, end: float | None = None) -> float:
        """The score a label at `time` (to `end`) would have: the highest within the tolerance."""
        stop = time if end is None else end
        return float(self._window_max(np.r_[time - self.tolerance], np.r_[stop + self.tolerance])[0])

    # ------------------------------------------------------------------ questions

    def order(self, mode: str = "matters") -> list[int]:
        """Unreviewed candidates (positions), in the order to ask them: see the module docstring."""
        if mode not in ORDERS:
            raise ValueError(f"unknown order {mode!r}: use one of {', '.join(ORDERS)}")
        todo = np.flatnonzero(self._status == "")
        if mode == "time":
            return todo.tolist()
        pl, s = self._plateau, self.candidates["score"].to_numpy(np.float64)[todo]
        outside = ~((s > pl.low) & (s <= pl.high))
        return todo[np.lexsort((todo, np.abs(s - pl.threshold), outside))].tolist()

    def next(self, mode: str = "matters") -> int | None:
        """The candidate to ask about next (None when every candidate is reviewed)."""
        order = self.order(mode)
        return order[0] if order else None

    # ------------------------------------------------------------------ decisions

    def decide(self, i: int, kind: str) -> pd.DataFrame:
        """Mark candidate `i` as an event of `kind` or as `none`; replaces the rows that covered it."""
        if not 0 <= int(i) < self.total:
            raise IndexError(f"no candidate {i} (there are {self.total})")
        t = float(self.candidates["ts"].iloc[int(i)])
        start, stop = self._windows(self._rows)
        covers = (start <= t) & (t <= stop)
        return self._change(covers, add_row(None, t, _kind(kind)))

    def add(self, time: float, kind: str = "cut", end: float | None = None, note: str = "") -> pd.DataFrame:
        """Add a moment by time (a missed event, or `none`); replaces the rows within the tolerance of it."""
        new = add_row(None, time, _kind(kind), end, note)
        near = np.abs(self._rows["time"].to_numpy(np.float64) - float(time)) <= self.tolerance
        return self._change(near, new)

    def remove(self, time: float, tolerance: float | None = None) -> pd.DataFrame:
        """Remove the rows within `tolerance` (default: the matching tolerance) of `time`."""
        tol = self.tolerance if tolerance is None else float(tolerance)
        near = np.abs(self._rows["time"].to_numpy(np.float64) - float(time)) <= tol
        if not near.any():
            raise LabelsError(None, f"no label within {tol:g} s of {float(time):g} s")
        return self._change(near, empty_labels())

    def undo(self) -> bool:
        """Revert the last change of this review (False when there is none)."""
        if not self._history:
            return False
        removed, added = self._history[-1]
        keys = set(zip(added["time"].round(6), added["kind"]))
        mask = np.array([(round(t, 6), k) in keys for t, k in zip(self._rows["time"], self._rows["kind"])], bool)
        self._change(mask, removed, record=False)
        self._history.pop()
        self.decisions = max(0, self.decisions - 1)
        return True

    def _change(self, drop: np.ndarray, add: pd.DataFrame, record: bool = True) -> pd.DataFrame:
        old = self._rows
        kept = old[~np.asarray(drop, bool)]
        parts = [p for p in (kept, add) if not p.empty]
        new = as_labels(pd.concat(parts, ignore_index=True) if parts else empty_labels(), non_events=True)
        if self._save is not None:
            self._save(new)  # raises: nothing changed
        self._rows = new
        if record:
            self._history.append((old[np.asarray(drop, bool)].reset_index(drop=True), add))
            self.decisions += 1
        self.version += 1
        self._refresh()
        return self.rows

    # ------------------------------------------------------------------ what the decisions say

    def at(self, threshold: float) -> dict[str, float]:
        """tp, fp, fn, precision, recall, f1 of `threshold` on the decided moments."""
        return self.counts(np.r_[float(threshold)]).iloc[0].to_dict()

    def sweep(self, thresholds: Any = None) -> pd.DataFrame:
        """The review's curves (threshold, detections = candidates captured, tp, fp, fn, precision, recall,
        f1, unreviewed = captured candidates not reviewed yet), for the Tuning tab's plot."""
        if thresholds is None:
            edges = np.r_[self.row_scores, self.candidates["score"].to_numpy(np.float64)]
            edges = edges[(edges >= self.floor) & (edges <= self._top)]
            thresholds = np.r_[np.linspace(self.floor, self._top, 100), edges, np.nextafter(edges, np.inf)]
        return self.counts(np.unique(np.asarray(thresholds, np.float64)))

    def counts(self, th: np.ndarray) -> pd.DataFrame:
        """tp, fp, fn, precision, recall, f1, detections, unreviewed at each of the sorted thresholds `th`."""
        is_event = self._rows["kind"].to_numpy(object) != NON_EVENT
        ev, ne = np.sort(self.row_scores[is_event]), np.sort(self.row_scores[~is_event])
        cand = np.sort(self.candidates["score"].to_numpy(np.float64))
        todo = np.sort(self.candidates["score"].to_numpy(np.float64)[self._status == ""])
        tp = ev.size - np.searchsorted(ev, th, "left")
        fp = ne.size - np.searchsorted(ne, th, "left")
        fn = ev.size - tp
        precision, recall, f1 = _prf_arrays(tp, fp, fn)
        return pd.DataFrame({"threshold": th, "detections": cand.size - np.searchsorted(cand, th, "left"),
                             "tp": tp, "fp": fp, "fn": fn, "precision": precision, "recall": recall, "f1": f1,
                             "unreviewed": todo.size - np.searchsorted(todo, th, "left")})

    def frame_at(self, time: float) -> int:
        """Position (in `scores`) of the frame shown at `time`: the last one at or before it."""
        return int(np.clip(np.searchsorted(self.ts, float(time), "right") - 1, 0, max(self.ts.size - 1, 0)))

    def summary(self) -> str:
        """One line: progress, the best threshold and its range, whether the labels settle it."""
        pl = self._plateau
        text = f"{self.reviewed} of {self.total} reviewed"
        if pl.events == 0:
            return text + " · no event marked yet"
        text += (f" · best threshold {pl.threshold:.3f} (F1 {pl.f1:.2f} on {pl.events + pl.non_events} decided; "
                 f"same F1 for {pl.low:.3f}–{pl.high:.3f})")
        if pl.settled:
            return text + " · settled: these labels are enough to choose the threshold"
        return text + f" · {pl.inside} unreviewed candidate{'s' if pl.inside != 1 else ''} can still move it"

    def __repr__(self) -> str:
        return f"Review({self.metric!r}, {self.summary()})"


def _kind(kind: str) -> str:
    k = str(kind).strip().lower()
    if k not in ALL_KINDS:
        raise LabelsError(None, f"unknown kind {kind!r} (expected one of {', '.join(ALL_KINDS)})")
    return k


__all__ = ["MAX_CANDIDATES", "ORDERS", "Plateau", "Review", "default_floor", "find_candidates", "plateau",
           "window_max"]
