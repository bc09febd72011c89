"""Tuning from stored scores: TRECVID-style matching, scenes == the live rule, sweeps, the best threshold."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from cht_lab.tuning import sweep as tuning
from cht_lab.detect.decision import ThresholdDecider
from cht_lab.tuning.sweep import TuningError, match

FPS = 30


def labels_at(*times: float, end: list[float | None] | None = None) -> pd.DataFrame:
    ends = [np.nan if e is None else e for e in (end or [None] * len(times))]
    return pd.DataFrame({"time": list(times), "end": ends,
                         "kind": ["cut" if math.isnan(e) else "gradual" for e in ends], "note": ""})


def make_scores(seconds: float, cuts: np.ndarray, rng: np.random.Generator, *, noise_max: float = 0.3,
                spike: tuple[float, float] = (0.7, 1.0), offset: float = 0.0) -> pd.DataFrame:
    """A scores table at 30 fps: `blocks` separates the cuts (noise <= noise_max, spikes in `spike`),
    `score` is pure noise (no metric can tell the cuts from it)."""
    n = int(seconds * FPS)
    fi = np.arange(n, dtype=np.int64)
    pts = fi / FPS
    blocks = rng.uniform(0.0, noise_max, n)
    rows = np.round((np.asarray(cuts) - offset) * FPS).astype(int)
    blocks[rows] = rng.uniform(*spike, rows.size)
    return pd.DataFrame({"segment": np.zeros(n, np.int32), "frame_index": fi, "pts": pts, "ts": pts + offset,
                         "score": rng.uniform(0, 1, n).astype(np.float32), "blocks": blocks.astype(np.float32)})


def counts(result: tuning.MatchResult) -> tuple[int, int, int]:
    return result.tp, result.fp, result.fn


# --------------------------------------------------------------------------- matching

def test_exact_hits_are_perfect():
    r = match([1.0, 5.0, 9.0], labels_at(1.0, 5.0, 9.0))
    assert counts(r) == (3, 0, 0)
    assert (r.precision, r.recall, r.f1) == (1.0, 1.0, 1.0)
    assert r.per_label["hit"].all() and (r.per_label["offset_s"] == 0).all()
    assert r.false_detections.empty


def test_known_precision_and_recall():
    r = match([1.0, 2.1, 5.0, 7.0], labels_at(1.0, 2.0, 3.0))  # 2 hits, 2 false, 1 missed
    assert counts(r) == (2, 2, 1)
    assert r.precision == pytest.approx(2 / 4) and r.recall == pytest.approx(2 / 3)
    assert r.f1 == pytest.approx(2 * 2 / (2 * 2 + 2 + 1))
    assert r.missed["time"].tolist() == [3.0]
    assert sorted(r.false_detections["ts"]) == [5.0, 7.0]


def test_near_misses_just_inside_and_just_outside_the_tolerance():
    labels = labels_at(10.0, 20.0, 30.0, 40.0, 1.1)
    # 10.5 and 29.5: exactly at the tolerance (inside); 1.6 - 1.1 is 0.5000000000000002 in floats (inside);
    # 20.51 and 39.49: a hundredth outside
    r = match([10.5, 20.51, 29.5, 39.49, 1.6], labels, tolerance=0.5)
    hits = dict(zip(r.per_label["time"], r.per_label["hit"]))
    assert hits == {1.1: True, 10.0: True, 20.0: False, 30.0: True, 40.0: False}
    assert counts(r) == (3, 2, 2)
    near = dict(zip(r.false_detections["ts"], r.false_detections["nearest_label_s"]))
    assert near[20.51] == pytest.approx(0.51) and near[39.49] == pytest.approx(-0.51)


def test_a_detection_equidistant_from_two_labels_matches_one_the_earlier():
    r = match([1.5], labels_at(1.0, 2.0))
    assert counts(r) == (1, 0, 1)
    assert r.per_label.loc[r.per_label["hit"], "time"].tolist() == [1.0]


def test_two_detections_equidistant_from_one_label_one_hit_one_false():
    r = match([1.1, 0.9], labels_at(1.0))
    assert counts(r) == (1, 1, 0)
    assert r.per_label["detection_ts"].tolist() == [0.9]  # equal distance: the earlier detection
    assert r.false_detections["ts"].tolist() == [1.1]


def test_duplicates_near_one_label_are_one_hit_and_one_false_detection():
    r = match([5.0, 5.2], labels_at(5.0))
    assert counts(r) == (1, 1, 0)
    assert r.per_label["detection_ts"].tolist() == [5.0]  # the nearer one
    assert r.false_detections["nearest_label_s"].tolist() == pytest.approx([0.2])


def test_nearest_pairs_first_finds_the_best_one_to_one_assignment():
    # 1.45 is nearer to 1.8 than to 1.0, but 1.85 is nearer still to 1.8: both labels are found
    r = match([1.85, 1.45], labels_at(1.0, 1.8))
    assert counts(r) == (2, 0, 0)
    assert r.per_label["detection_ts"].tolist() == [1.45, 1.85]


def test_interval_labels_match_anywhere_inside_widened_by_the_tolerance():
    gradual = labels_at(10.0, end=[12.0])
    for det, hit in [(11.7, True), (9.6, True), (12.4, True), (12.6, False), (9.4, False)]:
        r = match([det], gradual, tolerance=0.5)
        assert bool(r.per_label["hit"].iloc[0]) is hit, det
    r = match([11.7], gradual)
    assert r.per_label["offset_s"].tolist() == pytest.approx([1.7])  # measured from the label's time
    assert counts(match([10.5, 11.5], gradual)) == (1, 1, 0)  # one event, one capture


def test_a_detection_goes_to_the_nearer_of_an_interval_and_a_point_label():
    labels = labels_at(10.0, 12.3, end=[12.0, None])
    r = match([12.2], labels)
    assert r.per_label.set_index("time").loc[12.3, "hit"] and counts(r) == (1, 0, 1)


@pytest.mark.parametrize("dets, labels, expected", [
    ([], [], (1.0, 1.0, 1.0)),           # nothing to find, nothing found
    ([], None, (1.0, 1.0, 1.0)),
    ([1.0, 2.0], [], (0.0, 1.0, 0.0)),  # everything found is false
    ([], [1.0, 2.0], (1.0, 0.0, 0.0)),  # nothing found: no false detection, every event missed
])
def test_empty_sides_have_defined_scores(dets, labels, expected):
    r = match(dets, labels)
    assert (r.precision, r.recall, r.f1) == expected
    assert r.tp == 0 and r.fp == len(dets) and r.fn == len(labels or [])
    assert list(r.per_label.columns)[:4] == ["time", "end", "kind", "note"]


def test_tolerance_in_frames():
    labels = labels_at(1.0, 2.0)
    r = match([1.0 + 2 / FPS, 2.0 + 3 / FPS], labels, fps=FPS, tolerance_frames=2)
    assert counts(r) == (1, 1, 1)
    assert r.tolerance == pytest.approx(2 / FPS)
    assert r.per_label["offset_frames"].tolist()[0] == pytest.approx(2.0)
    with pytest.raises(TuningError, match="fps"):
        match([1.0], labels, tolerance_frames=2)


def test_detection_rows_come_back_as_false_detections_and_order_does_not_matter():
    dets = pd.DataFrame({"ts": [9.0, 1.0], "frame_index": [270, 30], "blocks": [0.9, 0.8]})
    r = match(dets, [1.0])
    assert counts(r) == (1, 1, 0)
    assert r.false_detections[["ts", "frame_index"]].values.tolist() == [[9.0, 270]]
    with pytest.raises(TuningError, match="tolerance"):
        match([1.0], [1.0], tolerance=-1)


# --------------------------------------------------------------------------- scenes == the live rule

@pytest.mark.parametrize("seed", range(6))
def test_scenes_select_what_the_live_decider_captures_frame_by_frame(seed):
    rng = np.random.default_rng(seed)
    n = 3000
    steps = rng.choice([0.0, 1 / FPS, 1 / FPS, 1 / FPS, 0.5, 2.0], n, p=[0.02, 0.3, 0.3, 0.3, 0.06, 0.02])
    ts = 5.0 + np.cumsum(steps)  # repeated timestamps and gaps included
    values = rng.gamma(1.0, 0.1, n)
    values[rng.random(n) < 0.01] = np.nan
    scores = pd.DataFrame({"segment": 0, "frame_index": np.arange(n), "pts": ts - 5.0, "ts": ts,
                           "score": values.astype(np.float32), "blocks": rng.random(n).astype(np.float32)})
    for metric in ("score", "blocks"):
        column = scores[metric].to_numpy()
        for threshold in rng.uniform(0, float(np.nanmax(column)), 3):
            for min_gap in (0.0, 0.4, 1.0, 3.0):
                decider = ThresholdDecider(threshold, min_gap)
                live = [i for i, (t, s) in enumerate(zip(ts, column)) if decider.decide(float(t), float(s))]
                found = tuning.scenes(scores, threshold, metric=metric, min_gap=min_gap)
                assert found.index.tolist() == live
                # the scores table's row of each capture, then where it was captured (no onsets here:
                # the capture is the row itself) and no earlier capture of the same screen
                assert found.columns.tolist() == scores.columns.tolist() + [
                    "capture_ts", "capture_pts", "capture_frame_index", "revisit_frame"]
                assert (found["capture_ts"] == found["ts"]).all()
                assert (found["capture_frame_index"] == found["frame_index"]).all()
                assert (found["revisit_frame"] == -1).all()


def test_scenes_sort_unsorted_rows_and_name_an_unknown_metric():
    scores = pd.DataFrame({"ts": [2.0, 0.0, 1.0], "score": [0.9, 0.9, 0.1]})
    assert tuning.scenes(scores, 0.5, metric="score", min_gap=0.5)["ts"].tolist() == [0.0, 2.0]
    with pytest.raises(TuningError, match=r"no metric column 'blocks'.*score"):
        tuning.scenes(scores, 0.5, metric="blocks")


def test_metric_none_means_the_default_metric():
    rng = np.random.default_rng(1)
    scores = make_scores(20, np.array([5.0, 12.0]), rng)
    assert tuning.metric_columns(scores) == ["score", "blocks"]
    with pytest.raises(TuningError, match=f"no metric column {tuning.DEFAULT_METRIC!r}"):
        tuning.scenes(scores, 0.5)
    scores[tuning.DEFAULT_METRIC] = scores["blocks"]  # the engine's default metric, as Session scores it
    pd.testing.assert_frame_equal(tuning.scenes(scores, 0.5), tuning.scenes(scores, 0.5, metric="blocks"))


# --------------------------------------------------------------------------- sweeps

@pytest.mark.parametrize("seed", range(3))
def test_sweep_counts_agree_with_scenes_and_detections_never_grow_with_the_threshold(seed):
    rng = np.random.default_rng(seed)
    cuts = np.sort(rng.choice(np.arange(3, 115), 12, replace=False) + rng.random(12))
    scores = make_scores(120, cuts, rng, noise_max=0.8, spike=(0.5, 1.0))
    labels = labels_at(*cuts)
    sw = tuning.sweep(scores, labels, metric="blocks")
    assert list(sw.columns) == list(tuning.SWEEP_COLUMNS)
    assert 50 <= len(sw) <= 101 and sw["threshold"].is_monotonic_increasing and sw["threshold"].is_unique
    # earliest-first greedy keeps the most frames at least min_gap apart: fewer candidates, never more captures
    assert (np.diff(sw["detections"].to_numpy()) <= 0).all()
    assert sw["detections"].iloc[-1] == 0  # the last threshold sits above every score
    for row in sw.iloc[:: 7].itertuples():
        r = tuning.evaluate(scores, labels, row.threshold, metric="blocks")
        assert (row.detections, row.tp, row.fp, row.fn) == (r.tp + r.fp, r.tp, r.fp, r.fn)
        assert row.f1 == pytest.approx(r.f1)
    assert (sw["tp"] + sw["fn"] == len(labels)).all()


def test_sweep_without_labels_counts_detections_only_at_given_thresholds():
    rng = np.random.default_rng(4)
    scores = make_scores(30, np.array([10.0, 20.0]), rng)
    sw = tuning.sweep(scores, metric="blocks", thresholds=[0.9, 0.1, 0.5, 0.5])
    assert list(sw.columns) == ["threshold", "detections"]
    assert sw["threshold"].tolist() == [0.1, 0.5, 0.9]
    assert sw["detections"].tolist() == [len(tuning.scenes(scores, t, metric="blocks")) for t in (0.1, 0.5, 0.9)]


# --------------------------------------------------------------------------- best threshold, evaluate, metrics

def separable(seed: int = 0, offset: float = 0.0) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    cuts = np.arange(4.0, 118.0, 3.7) + rng.uniform(-0.2, 0.2, 31) + offset
    return make_scores(120, cuts, rng, offset=offset), labels_at(*cuts)


def test_best_threshold_on_separable_scores_is_perfect_and_in_the_middle_of_the_gap():
    scores, labels = separable()
    best = tuning.find_best(scores, labels, metric="blocks")
    values = scores["blocks"].to_numpy()
    noise_top = float(np.sort(values)[-len(labels) - 1])  # the highest non-cut frame
    spike_low = float(np.sort(values)[-len(labels)])       # the weakest cut
    assert best.f1 == 1.0
    assert (best.low, best.high) == (pytest.approx(noise_top), pytest.approx(spike_low))
    assert best.threshold == pytest.approx((noise_top + spike_low) / 2)
    assert tuning.best_threshold(scores, labels, metric="blocks") == best.threshold
    r = tuning.evaluate(scores, labels, best.threshold, metric="blocks")
    assert (r.f1, r.fp, r.fn) == (1.0, 0, 0)
    assert r.per_label["offset_frames"].abs().max() < 1  # the spikes sit on the labeled frames


def plateaus(label_scores: list[float], false_scores: list[float]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Events 10 s apart over a flat 0.1 noise floor: labeled ones first, then false ones."""
    n = (len(label_scores) + len(false_scores) + 2) * 10 * FPS
    ts = np.arange(n) / FPS
    blocks = np.full(n, 0.1)
    for k, value in enumerate([*label_scores, *false_scores]):
        blocks[(k + 1) * 10 * FPS] = value
    scores = pd.DataFrame({"segment": 0, "frame_index": np.arange(n), "pts": ts, "ts": ts, "blocks": blocks})
    return scores, labels_at(*[(k + 1) * 10.0 for k in range(len(label_scores))])


@pytest.mark.parametrize("high_labels, expected", [
    (0.9, 0.7),  # best F1 (2/3) on (0.1, 0.3] and on (0.5, 0.9]: the wider one, its middle
    (0.6, 0.2),  # on (0.1, 0.3] and on (0.5, 0.6]: now the lower one is wider
])
def test_equal_best_f1_in_two_places_picks_the_middle_of_the_wider_plateau(high_labels, expected):
    # 4 events: 2 strong (high_labels), 2 weak (0.3); false detections: three at 0.3, one at 0.5.
    # (0.1, 0.3]: tp 4, fp 4 -> F1 2/3; (0.3, 0.5]: tp 2, fp 1, fn 2 -> 4/7; (0.5, high]: tp 2, fn 2 -> 2/3
    scores, labels = plateaus([high_labels, high_labels, 0.3, 0.3], [0.3, 0.3, 0.3, 0.5])
    best = tuning.find_best(scores, labels, metric="blocks")
    assert best.f1 == pytest.approx(2 / 3)
    assert best.threshold == pytest.approx(expected)
    assert tuning.evaluate(scores, labels, best.threshold, metric="blocks").f1 == pytest.approx(2 / 3)


def test_best_threshold_without_any_findable_event_is_a_clear_error():
    scores, _ = separable()
    with pytest.raises(TuningError, match="best F1 is 0"):
        tuning.best_threshold(scores, labels_at(1000.0, 2000.0), metric="blocks")
    with pytest.raises(ValueError, match="needs labels"):
        tuning.best_threshold(scores, None, metric="blocks")


def test_compare_metrics_ranks_the_separating_metric_first():
    scores, labels = separable(2)
    table = tuning.compare_metrics(scores, labels)
    assert table["metric"].tolist() == ["blocks", "score"]
    top = table.iloc[0]
    assert top["f1"] == 1.0 and top["precision"] == 1.0 and top["recall"] == 1.0
    assert 0 < top["plateau_frac"] <= 1
    assert table.iloc[1]["f1"] < 1.0


class FakeSession:
    """What evaluate_sessions needs from cht_lab.Session: an id, scores() and labels."""

    def __init__(self, id: str, scores: pd.DataFrame, labels: pd.DataFrame | None):
        self.id, self._scores, self.labels = id, scores, labels

    def scores(self) -> pd.DataFrame:
        return self._scores


def test_evaluate_sessions_rows_and_micro_averaged_total():
    a_scores, a_labels = separable(0)
    b_scores, b_labels = separable(1, offset=500.0)
    b_labels = pd.concat([b_labels, labels_at(700.0)], ignore_index=True)  # an event nothing detects
    threshold = 0.5  # between the noise (<= 0.3) and the spikes (>= 0.7)
    table = tuning.evaluate_sessions([FakeSession("a", a_scores, a_labels), ("b", b_scores, b_labels)],
                                     threshold, metric="blocks")
    assert table["session"].tolist() == ["a", "b", "total"]
    per = table.set_index("session")
    for name, scores, labels in [("a", a_scores, a_labels), ("b", b_scores, b_labels)]:
        r = tuning.evaluate(scores, labels, threshold, metric="blocks")
        assert (per.loc[name, "tp"], per.loc[name, "fp"], per.loc[name, "fn"]) == counts(r)
        assert per.loc[name, "labels"] == len(labels)
    total = per.loc["total"]
    assert total["tp"] == per.loc[["a", "b"], "tp"].sum() and total["fn"] == 1
    assert total["labels"] == len(a_labels) + len(b_labels)
    assert total["recall"] == pytest.approx(total["tp"] / total["labels"])
    assert total["precision"] == 1.0
    same = tuning.evaluate_sessions({"a": (a_scores, a_labels), "b": (b_scores, b_labels)}, threshold,
                                    metric="blocks")
    pd.testing.assert_frame_equal(same, table)
    with pytest.raises(TuningError, match="session c: no labels"):
        tuning.evaluate_sessions([FakeSession("c", a_scores, None)], threshold, metric="blocks")
    with pytest.raises(TuningError, match=r"session d: no scores yet; score it first \(Session.score\(\)\)"):
        tuning.evaluate_sessions([FakeSession("d", a_scores.iloc[:0], a_labels)], threshold, metric="blocks")
