"""Labeling your own recordings: non-event rows, the review (candidates, order, plateau), the Session API,
the Label tab and a set of sessions — on the bundled samples, scored into a temporary data directory."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cht_lab import layout
from cht_lab.tuning.labels import LabelsError, add_row, as_labels, load_labels, remove_rows, save_labels
from cht_lab.tuning.review import Review, find_candidates, plateau
from cht_lab.tools.samples import sample_dir

HEADER = "time,end,kind,note\n"
SAMPLE_NAMES = ("slides", "desktop", "coding", "twoseg")  # the four labeled samples this feature was measured on
METRIC = "settled"  # the metric they were labeled and tuned with (the default may move on)


# --------------------------------------------------------------------------- labels.csv: non-events, saving

def test_none_rows_are_kept_in_the_file_but_never_ground_truth(tmp_path):
    from cht_lab.tuning.matching import match

    path = tmp_path / "labels.csv"
    path.write_text(HEADER + "1.0,,cut,a\n2.0,,none,typing\n3.0,3.5,gradual,\n")
    assert load_labels(path)["kind"].tolist() == ["cut", "gradual"]
    assert load_labels(path, non_events=True)["kind"].tolist() == ["cut", "none", "gradual"]
    rows = load_labels(path, non_events=True)
    assert as_labels(rows)["time"].tolist() == [1.0, 3.0]  # what matching and sweeps receive
    result = match([1.0, 2.0], rows)  # the detection at the non-event is a false one, not a hit
    assert (result.tp, result.fp, result.fn) == (1, 1, 1)


def test_save_labels_round_trips_atomically_and_validates_first(tmp_path):
    path = tmp_path / "sub" / "labels.csv"
    rows = add_row(add_row(None, 4.633333333, "cut", note="slide, two"), 2.0, "none")
    save_labels(path, rows)
    text = path.read_text()
    assert text.splitlines()[0] == "time,end,kind,note" and "4.633333,,cut,\"slide, two\"" in text
    back = load_labels(path, non_events=True)
    assert back["time"].tolist() == [2.0, pytest.approx(4.633333)] and back["note"].tolist() == ["", "slide, two"]
    with pytest.raises(LabelsError, match="unknown kind 'fade'"):
        save_labels(path, pd.DataFrame({"time": [1.0], "kind": ["fade"]}))
    assert path.read_text() == text  # a refused save leaves the file as it was
    assert not [p for p in path.parent.iterdir() if p.name != "labels.csv"]  # no temp file left


@pytest.mark.parametrize("call, message", [
    (lambda: add_row(None, -1.0, "cut"), "non-negative"),
    (lambda: add_row(None, 1.0, "fade"), "unknown kind 'fade'"),
    (lambda: add_row(None, "soon", "cut"), "must be numbers"),
    (lambda: add_row(None, 2.0, "gradual", end=1.0), "before time"),
    (lambda: remove_rows(add_row(None, 1.0), 5.0), "no label within"),
])
def test_row_edits_are_validated_strictly(call, message):
    with pytest.raises(LabelsError, match=message):
        call()


def test_a_killed_writer_never_leaves_half_a_labels_file(tmp_path):
    """SIGKILL a process that saves a growing labels.csv in a loop: the file always reads, whole."""
    path = tmp_path / "labels.csv"
    code = ("import sys\nfrom cht_lab.tuning.labels import add_row, save_labels\nrows = None\n"
            "for i in range(100000):\n    rows = add_row(rows, i * 0.5, 'cut' if i % 2 else 'none', note='x' * 200)\n"
            "    save_labels(sys.argv[1], rows)\n")
    for delay in (0.8, 1.1, 1.4):
        proc = subprocess.Popen([sys.executable, "-c", code, str(path)])
        deadline = time.monotonic() + 30
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.05)  # waiting for the first save; the deadline bounds it
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        rows = load_labels(path, non_events=True)
        assert len(rows) >= 1 and rows["note"].str.len().eq(200).all()
        assert rows["time"].tolist() == [i * 0.5 for i in range(len(rows))]


# --------------------------------------------------------------------------- the review, on made-up scores

def _scores(peaks: dict[float, float], seconds: float = 20.0, fps: int = 10) -> pd.DataFrame:
    ts = np.arange(int(seconds * fps)) / fps
    values = np.zeros(ts.size)
    for t, v in peaks.items():
        values[int(round(t * fps))] = v
    return pd.DataFrame({"segment": 0, "frame_index": np.arange(ts.size), "pts": ts, "ts": ts, "settled": values})


PEAKS = {2.0: 0.05, 4.0: 0.6, 6.0: 0.08, 8.0: 0.3, 10.0: 0.07, 12.0: 0.5, 14.0: 0.25, 16.0: 0.04, 16.4: 0.045}
EVENTS = {4.0, 8.0, 12.0, 14.0}


def test_candidates_are_the_highest_peak_per_window_above_the_floor_with_a_before_frame():
    c = find_candidates(_scores(PEAKS), "settled", floor=0.0375)
    assert c["ts"].tolist() == [2.0, 4.0, 6.0, 8.0, 10.0, 12.0, 14.0, 16.4]  # 16.0 lies within 1 s of a higher peak
    assert c["before_ts"].tolist() == pytest.approx([1.0, 3.0, 5.0, 7.0, 9.0, 11.0, 13.0, 15.4])
    assert find_candidates(_scores(PEAKS), "settled", floor=0.2)["ts"].tolist() == [4.0, 8.0, 12.0, 14.0]


def test_plateau_is_the_widest_best_f1_range_between_decided_scores():
    pl = plateau(np.r_[0.6, 0.08, 0.25], np.r_[True, False, True], np.r_[0.3, 0.07], floor=0.0375, top=0.61)
    assert (pl.low, pl.high, pl.f1) == (0.08, 0.25, 1.0) and pl.threshold == pytest.approx(0.165)
    assert pl.inside == 0 and pl.settled  # 0.3 and 0.07 lie outside (0.08, 0.25]: they cannot move it
    nothing = plateau(np.array([]), np.array([], bool), np.r_[0.3], floor=0.0375, top=0.61)
    assert nothing.events == 0 and not nothing.settled and nothing.inside == 1


def test_a_review_asks_what_matters_first_and_settles_in_a_few_decisions():
    saved: list[pd.DataFrame] = []
    r = Review(_scores(PEAKS), None, metric=METRIC, floor=0.0375, save=saved.append)
    asked = []
    while not r.plateau.settled:
        i = r.next("matters")
        t = float(r.candidates["ts"].iloc[i])
        asked.append(t)
        r.decide(i, "cut" if t in EVENTS else "none")
    assert len(asked) <= 3 < len(r.order("time")) + len(asked)
    assert 0.08 < r.plateau.threshold <= 0.25 and r.plateau.f1 == 1.0
    assert len(saved) == len(asked) and len(saved[-1]) == len(asked)  # saved after every decision
    assert r.order("time") == sorted(r.order("time"), key=lambda i: r.candidates["ts"].iloc[i])


def test_review_add_remove_undo_and_a_failed_save_changes_nothing():
    r = Review(_scores(PEAKS), None, metric=METRIC, floor=0.0375)
    r.decide(1, "cut")
    r.add(14.05, "partial", note="dialog")  # a missed event by time: covers the candidate at 14.0
    assert r.reviewed == 2 and r.status.iloc[6] == "partial"
    assert r.score_at(14.05) == pytest.approx(0.25)
    r.add(14.1, "gradual", end=14.5)  # replaces the row within the tolerance: one event, one row
    assert r.rows["kind"].tolist() == ["cut", "gradual"]
    assert r.undo() and r.rows["kind"].tolist() == ["cut", "partial"]
    r.remove(4.0)
    assert r.rows["kind"].tolist() == ["partial"]
    assert r.undo() and r.undo() and r.undo() and not r.undo()
    assert r.rows.empty and r.reviewed == 0

    def broken(rows: pd.DataFrame) -> None:
        raise OSError("disk full")

    r._save = broken
    with pytest.raises(OSError):
        r.decide(0, "none")
    assert r.rows.empty and r.reviewed == 0
    with pytest.raises(LabelsError):
        r.decide(0, "fade")
    with pytest.raises(IndexError):
        r.decide(99, "cut")


# --------------------------------------------------------------------------- the samples

@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("cht_lab_data")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(layout.DATA_DIR_ENV, str(d))
        yield d


@pytest.fixture(scope="module")
def scored(data_dir):
    """The four bundled samples, scored into working directories under the temporary data dir."""
    from cht_lab.session import open_session

    sessions = {name: open_session(sample_dir(name, generate_missing=False)) for name in SAMPLE_NAMES}
    for s in sessions.values():
        assert s.read_only_source and data_dir in s.dir.parents
        s.score(progress=False)
    return sessions


@pytest.mark.parametrize("name", SAMPLE_NAMES)
def test_asking_what_matters_settles_every_sample_in_few_decisions_and_fewer_than_time_order(scored, name):
    from cht_lab.tuning.simulate import decisions_needed, simulate
    from cht_lab.tuning.sweep import find_best

    s = scored[name]
    # the samples' labels were measured on `settled`; the target is what the full labels get out of it
    target = min(0.95, find_best(s.scores(), s.labels, metric=METRIC).f1) - 1e-9
    matters = decisions_needed(simulate(s.scores(), s.labels, "matters", metric=METRIC), target)
    by_time = decisions_needed(simulate(s.scores(), s.labels, "time", metric=METRIC), target)
    assert matters["reach"] is not None and matters["hold"] is not None and matters["hold"] <= 10
    if by_time["hold"] is not None:  # time order can touch the target by luck, then lose it again
        assert matters["hold"] <= by_time["hold"]
    assert matters["settled"] <= 10 and (matters["settled"] < by_time["settled"] or by_time["settled"] == 1)
    assert matters["f1_settled"] >= target


def test_one_threshold_across_sessions_from_complete_files_and_a_review(scored, tmp_path):
    from cht_lab.session import open_session
    from cht_lab.tuning.sessions import best_across
    from cht_lab.tuning.simulate import answer

    from cht_lab.tuning.sweep import evaluate_sessions

    sessions = list(scored.values())
    best, table = best_across(sessions, metric=METRIC)
    assert table["labels"].tolist()[:-1] == ["complete"] * 4 and table["f1"].iloc[-1] == pytest.approx(best.f1)
    at_best = evaluate_sessions(sessions, best.threshold, metric=METRIC)  # the same answer, the capture rule's
    assert at_best["f1"].iloc[-1] == pytest.approx(best.f1)
    assert at_best[["tp", "fp", "fn"]].to_numpy().tolist() == table[["tp", "fp", "fn"]].to_numpy().tolist()
    for other in (best.low / 2, best.high * 1.5):  # and the best: outside the plateau it is no better
        assert evaluate_sessions(sessions, other, metric=METRIC)["f1"].iloc[-1] <= best.f1 + 1e-9
    # one session reviewed from scratch (three answers), next to the others' complete files
    slides = scored["slides"]
    copy = _copy_scored(slides, tmp_path / "slides")
    review = open_session(copy).review(metric=METRIC)
    for _ in range(3):
        i = review.next()
        review.decide(i, answer(slides.labels, float(review.candidates["ts"].iloc[i])))
    others = [scored[n] for n in ("desktop", "coding", "twoseg")]
    best, table = best_across([open_session(copy), *others], metric=METRIC)
    assert table["labels"].iloc[0] == "review" and table["events"].iloc[0] + table["non_events"].iloc[0] == 3
    assert best.low < best.threshold <= best.high and table["f1"].iloc[-1] == pytest.approx(best.f1)


def _copy_scored(session, target: Path, labels: bool = False) -> Path:
    """A writable copy of a scored sample: its recordings, its working directory's index, no labels."""
    shutil.copytree(session.source_dir, target, ignore=shutil.ignore_patterns("labels.csv"))
    shutil.copytree(session.dir / layout.INDEX_DIR, target / layout.INDEX_DIR,
                    ignore=shutil.ignore_patterns("*.lock"))
    meta = target / layout.INDEX_DIR / "session.json"
    import json

    data = json.loads(meta.read_text())
    data.pop("source_dir", None)  # the copy is its own source
    meta.write_text(json.dumps(data))
    if labels:
        shutil.copy(session.source_dir / layout.LABELS_CSV, target / layout.LABELS_CSV)
    return target


# --------------------------------------------------------------------------- the Session API

def test_session_label_api_and_a_read_only_source(scored):
    s = scored["twoseg"]  # read-only: a bundled sample, worked on in the temporary data dir
    original = (s.source_dir / layout.LABELS_CSV).read_text()
    assert s.labels_path == s.dir / layout.LABELS_CSV and not s.labels_path.exists()
    assert len(s.labels) == 6  # the source's file, while the working directory has none
    try:
        rows = s.set_labels([4.6, 9.6])
        assert rows["kind"].tolist() == ["cut", "cut"] and s.labels_path.exists()
        s.add_label(2.3, "none")
        s.add_label(20.0, "gradual", end=21.0, note="fade")
        assert s.labels["time"].tolist() == [4.6, 9.6, 20.0]  # events only; the working dir's file wins
        assert s.read_labels(non_events=True)["kind"].tolist() == ["none", "cut", "cut", "gradual"]
        s.remove_label(9.6)
        assert s.labels["time"].tolist() == [4.6, 20.0]
        with pytest.raises(LabelsError, match="unknown kind"):
            s.add_label(3.0, "maybe")
        with pytest.raises(LabelsError, match="no label within"):
            s.remove_label(33.0)
        assert s.save_labels() == s.labels_path and len(s.read_labels(non_events=True)) == 3
        assert (s.source_dir / layout.LABELS_CSV).read_text() == original  # the sample is never written
    finally:
        s.labels_path.unlink(missing_ok=True)


# --------------------------------------------------------------------------- the Label tab

@pytest.fixture()
def fresh(scored, tmp_path):
    """A writable, scored copy of the slides sample without labels (the user's own recording), on `settled`
    (the metric the samples were measured on: these tests are about labeling, not about a metric)."""
    from cht_lab.session import open_session

    s = open_session(_copy_scored(scored["slides"], tmp_path / "20260301_090000"))
    s.metric = METRIC
    return s


def test_label_tab_from_scratch_to_a_settled_threshold(fresh, scored):
    from cht_lab.tuning import sweep as tuning
    from cht_lab.tuning.simulate import answer

    truth = scored["slides"].labels
    panel = fresh.panel(max_thumbs=0)  # the Frames tab's pictures play no part here
    try:
        assert "no labels yet" in panel.show_tab("tuning").info.value
        tab = panel.show_tab("label")
        assert tab.progress.value.startswith(f"<b>0 of {tab.review.total} reviewed</b>")
        plot_before = panel.plot.value
        first = tab.current
        t = float(tab.review.candidates["ts"].iloc[first])
        tab.buttons[answer(truth, t)].click()  # one click: marked, saved, next question
        assert tab.current != first and len(fresh.read_labels(non_events=True)) == 1
        assert panel.plot.value != plot_before  # the score plot shows the new label
        tab.keys.value = "n"  # a shortcut: whatever the question, "not an event" (undone next)
        assert len(fresh.read_labels(non_events=True)) == 2
        tab.keys.value = "nu"
        assert len(fresh.read_labels(non_events=True)) == 1 and "undone" in tab.message.value
        while "settled</b>" not in tab.progress.value:
            t = float(tab.review.candidates["ts"].iloc[tab.current])
            tab.mark(answer(truth, t))
            assert tab.review.reviewed <= 10
        assert f"of {tab.review.total} reviewed" in tab.progress.value
        tuning_tab = panel.show_tab("tuning")
        assert "from the label review" in tuning_tab.info.value and "same F1 for" in tuning_tab.info.value
        best = panel.apply_best()
        # as good as the complete original labels make it (F1 1.0 on this sample)
        full = tuning.find_best(fresh.scores(), truth, metric=METRIC).f1
        assert tuning.evaluate(fresh.scores(), truth, best, metric=METRIC).f1 == pytest.approx(full)
        assert panel.threshold == best
    finally:
        _close(panel)
    # a new panel resumes the review from labels.csv
    again = fresh.panel()
    try:
        tab = again.show_tab("label")
        assert tab.review.reviewed == len(fresh.read_labels(non_events=True)) and "settled</b>" in tab.progress.value
        assert again.best_threshold == pytest.approx(best)
    finally:
        _close(again)


def test_label_tab_scrubber_adds_a_missed_event_with_frame_exact_pictures(fresh, tmp_path):
    import io

    from PIL import Image

    from cht_lab.panel.gallery import placeholder

    panel = fresh.panel()
    try:
        tab = panel.show_tab("label")
        tab.seek(13.5)
        k = tab.scrub.value
        assert fresh.scores().sort_values("ts")["ts"].iloc[k] == pytest.approx(13.5, abs=1 / 30)
        tab.step(1)
        tab.step(-1)
        assert tab.scrub.value == k and "0:13.5" in tab.frame_caption.value
        assert tab.sync(120) and "loading" not in tab.frame_caption.value
        for picture in (tab.frame, tab.before, tab.after):  # the frames themselves, not the grey placeholder
            assert picture.value != placeholder(360)
            with Image.open(io.BytesIO(picture.value)) as im:
                assert im.width == 360 and np.asarray(im.convert("L")).std() > 10
        # frame-exact: the picture is the frame the scores call frame k (a capture of that frame index)
        from cht_lab.detect.capture import capture_frames

        row = fresh.scores().sort_values("ts").iloc[k]
        shot = tmp_path / "exact.jpg"
        capture_frames(fresh.segments[int(row.segment)].path, [int(row.frame_index)], [shot])
        with Image.open(shot) as full, Image.open(io.BytesIO(tab.frame.value)) as small:
            ref = np.asarray(full.convert("L").resize(small.size), dtype=float)
            assert np.abs(ref - np.asarray(small.convert("L"), dtype=float)).mean() < 6
        tab.add_buttons["cut"].click()
        assert fresh.labels["time"].tolist() == [pytest.approx(13.5, abs=1 / 30)]
        assert "cut at 0:13.5" in tab.frame_caption.value and tab.review.reviewed == 1  # covers the candidate
        tab.remove_here()
        assert fresh.labels.empty and tab.review.reviewed == 0
        total = tab.review.total
        tab.floor = 0.3  # fewer candidates: only the peaks above it
        panel.request("review", immediate=True)
        assert tab.review.floor == 0.3 and 0 < tab.review.total < total and "peaks ≥ 0.300" in tab.progress.value
    finally:
        _close(panel)


def test_a_malformed_labels_file_is_reported_in_the_label_tab(fresh):
    fresh.labels_path.write_text("time,kind\n1.0,fade\n")
    panel = fresh.panel()
    try:
        tab = panel.show_tab("label")
        assert "unknown kind 'fade'" in tab.progress.value and tab.review is None
    finally:
        _close(panel)


def test_a_set_of_sessions_tunes_one_threshold_and_follows_the_label_tabs(scored, tmp_path):
    from cht_lab.panel.session_set import SessionSetPanel
    from cht_lab.session import open_session
    from cht_lab.tuning.simulate import answer

    a = open_session(_copy_scored(scored["coding"], tmp_path / "20260301_110000"))
    b = open_session(_copy_scored(scored["desktop"], tmp_path / "20260301_100000", labels=True))
    box = SessionSetPanel([a, b], metric=METRIC, max_thumbs=0)  # no Frames tab pictures: this test is about labels
    try:
        assert "2 sessions" in box.summary.value and box.best is not None  # b's complete file alone
        panel = box.show(0)
        tab = panel.show_tab("label")
        i = tab.current
        tab.mark(answer(scored["coding"].labels, float(tab.review.candidates["ts"].iloc[i])))
        assert box.table["labels"].tolist()[:2] == ["review", "complete"]  # updated by the Label tab
        assert box.apply_best() == pytest.approx(box.best.threshold) and a.threshold == b.threshold
        assert panel.threshold == pytest.approx(box.best.threshold)
    finally:
        tab.sync(120)
        box.close()


def _close(panel) -> None:
    """Let the thumbnail decodes finish (a closed panel does not kill a running ffmpeg), then close."""
    panel.sync(120)
    panel.tab("label").sync(120)
    panel.close()
