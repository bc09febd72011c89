"""Scoring and tuning a corpus of sessions on Dask: a real LocalCluster of 2 worker processes.

Sessions are tiny ffmpeg clips (a second of decoding or less), copied so that the serial
reference and the cluster score the same recordings in different directories.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

distributed = pytest.importorskip("distributed")

from cht_lab import layout  # noqa: E402
from cht_lab.corpus import corpus_scores, evaluate_corpus, score_sessions, sweep_corpus  # noqa: E402
from cht_lab.corpus.scoring import commit_session, plan_path, score_segment  # noqa: E402
from cht_lab.index.session_index import SessionIndex  # noqa: E402
from cht_lab.session import open_session  # noqa: E402
from cht_lab.tuning import sweep as tuning  # noqa: E402
from conftest import make_clip, wait_for  # noqa: E402
from test_session import make_color_session  # noqa: E402

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """$CHT_LAB_DATA for this process and (set before they start) the workers."""
    d = tmp_path_factory.mktemp("cht_lab_data")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(layout.DATA_DIR_ENV, str(d))
        yield d


@pytest.fixture(scope="module")
def client(data_dir):
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                                  silence_logs=40) as cluster, distributed.Client(cluster, set_as_default=False) as c:
        yield c


@pytest.fixture(scope="module")
def originals(tmp_path_factory) -> list[Path]:
    """Four labeled sessions; the last has two segments (two recorder runs, 10 s apart)."""
    root = tmp_path_factory.mktemp("originals")
    sessions = [make_color_session(root, f"20260301_13{i:02d}00") for i in range(4)]
    two = sessions[-1]
    first = next((two / layout.STREAM_DIR).iterdir())
    shutil.copy(first, two / layout.STREAM_DIR / f"{two.name[:-2]}10.mp4")  # starts 10 s into the session
    (two / layout.LABELS_CSV).write_text("time,end,kind,note\n1.5,,cut,\n3.0,,cut,\n11.5,,cut,\n13.0,,cut,\n")
    return sessions


def copies(originals: list[Path], dest: Path) -> list[Path]:
    dest.mkdir(parents=True, exist_ok=True)
    return [Path(shutil.copytree(p, dest / p.name)) for p in originals]


@pytest.fixture(scope="module")
def serial(originals, tmp_path_factory) -> dict[str, tuple[pd.DataFrame, dict]]:
    """The reference: each session scored by Session.score, one after the other."""
    out = {}
    for p in copies(originals, tmp_path_factory.mktemp("serial")):
        s = open_session(p)
        s.score(progress=False)
        out[p.name] = (s.scores(), s.metadata())
    return out


def assert_like_serial(paths: list[Path], serial: dict[str, tuple[pd.DataFrame, dict]]) -> None:
    for p in paths:
        s = open_session(p)
        scores, meta = serial[p.name]
        pd.testing.assert_frame_equal(s.scores(), scores)
        assert not s.scores().duplicated(["segment", "frame_index"]).any()
        for key in ("scored", "backend", "video_sizes"):
            assert s.metadata()[key] == meta[key], key
        assert not [f for f in (p / layout.INDEX_DIR).rglob("*") if f.name.startswith(".")], "temp files left"


def test_four_sessions_scored_on_two_workers_identical_to_serial(client, originals, serial, tmp_path, monkeypatch):
    paths = copies(originals, tmp_path)
    report = score_sessions(paths, client, progress=False)
    assert list(report["status"]) == ["scored"] * 4, report.to_string()
    assert list(report["segments"]) == [1, 1, 1, 2]
    assert report.attrs["tasks"] == 4 + 5 + 4  # a plan per path, a task per recording, a commit per session
    assert_like_serial(paths, serial)

    # Session.score finds them up to date (same stamps), and a second corpus run skips every session
    from cht_lab.detect import offline

    monkeypatch.setattr(offline, "score_recording", lambda *a, **k: pytest.fail("decoded again"))
    for p in paths:
        open_session(p).score(progress=False)
    before = {p: sorted(f.name for f in (p / layout.INDEX_DIR / "scores").iterdir()) for p in paths}
    again = score_sessions(paths, client, progress=False)
    assert list(again["status"]) == ["skipped"] * 4 and again.attrs["tasks"] == 4
    assert list(again["rows"]) == list(report["rows"])
    assert before == {p: sorted(f.name for f in (p / layout.INDEX_DIR / "scores").iterdir()) for p in paths}


def test_a_folder_of_sessions_and_a_session_given_twice(client, originals, tmp_path):
    paths = copies(originals[:2], tmp_path / "corpus")
    report = score_sessions([tmp_path / "corpus", paths[0]], client, progress=False)
    assert list(report["status"]) == ["scored", "scored", "skipped"]
    assert "the same session" in report["error"].iloc[2]
    assert len(corpus_scores(report, client)) == report["rows"].iloc[:2].sum()
    forced = score_sessions(paths, client, force=True, progress=False)  # decoded and written again
    assert list(forced["status"]) == ["scored", "scored"] and list(forced["rows"]) == list(report["rows"].iloc[:2])
    assert len(corpus_scores(paths, client)) == forced["rows"].sum()


def _executing(dask_worker) -> list[str]:
    return [str(ts.key) for ts in dask_worker.state.executing]


def test_a_worker_killed_mid_task_everything_scored_once(client, tmp_path):
    originals = []
    for i in range(4):  # ~0.5-1 s of decoding each: a task is caught running
        d = tmp_path / "orig" / f"20260301_14{i:02d}00"
        (d / layout.STREAM_DIR).mkdir(parents=True)
        make_clip(d / layout.STREAM_DIR / f"{d.name}.mp4", seconds=10, size="640x360", audio=False)
        originals.append(d)
    reference = {}
    for p in copies(originals, tmp_path / "serial"):
        s = open_session(p)
        s.score(progress=False)
        reference[p.name] = (s.scores(), s.metadata())
    paths = copies(originals, tmp_path / "cluster")
    pids = client.run(os.getpid)
    result: dict[str, pd.DataFrame] = {}
    runner = threading.Thread(target=lambda: result.setdefault("report", score_sessions(paths, client,
                                                                                        progress=False)))
    runner.start()
    try:
        busy = wait_for(lambda: {w: keys for w, keys in client.run(_executing).items()
                                 if any("score_segment" in k for k in keys)}, 60, "a segment task running")
        victim = next(iter(busy))
        os.kill(pids[victim], signal.SIGKILL)
    finally:
        runner.join(180)
    assert not runner.is_alive()
    report = result["report"]
    assert list(report["status"]) == ["scored"] * 4, report.to_string()
    assert_like_serial(paths, reference)
    assert all(len(open_session(p).scores()) == 300 for p in paths)
    client.wait_for_workers(2, timeout=60)  # the nanny restarted it


def test_a_corrupt_recording_is_reported_and_the_others_scored(client, originals, serial, tmp_path):
    paths = copies(originals, tmp_path)
    bad = tmp_path / "20260301_150000"
    (bad / layout.STREAM_DIR).mkdir(parents=True)
    junk = bad / layout.STREAM_DIR / "20260301_150000.mp4"
    junk.write_bytes(os.urandom(50_000))
    two = paths[-1]
    broken_segment = sorted((two / layout.STREAM_DIR).iterdir())[-1]
    broken_segment.write_bytes(b"\0" * 1000)
    report = score_sessions([*paths, bad], client, progress=False).set_index("session")
    assert list(report["status"]) == ["scored"] * 3 + ["failed"] * 2, report.to_string()
    assert str(junk) in report.loc[bad.name, "error"]
    assert str(broken_segment) in report.loc[two.name, "error"]
    assert_like_serial(paths[:3], serial)
    assert open_session(two).scores().empty  # nothing written for a session with a failed segment


def test_a_commit_interrupted_half_way_is_rebuilt_without_duplicates(originals, serial, tmp_path):
    """A worker dying inside the commit leaves part of the rows; the rerun (Dask's retry) rebuilds."""
    (path,) = copies(originals[-1:], tmp_path)
    (plan,) = plan_path(str(path))
    tables = [score_segment(job) for job in plan.segments]
    half = tables[0].iloc[: len(tables[0]) // 2]
    half.to_parquet(tmp_path / "half.parquet")
    crash = ("import os, sys, pandas as pd\nfrom cht_lab.index.session_index import SessionIndex\n"
             "idx = SessionIndex(sys.argv[1], writer=True)\nidx.append_scores(pd.read_parquet(sys.argv[2]))\n"
             "idx.flush()\nos._exit(9)\n")
    res = subprocess.run([sys.executable, "-c", crash, str(path), str(tmp_path / "half.parquet")], timeout=60)
    assert res.returncode == 9
    assert len(SessionIndex(path).scores()) == len(half)
    row = commit_session(plan, *tables)
    assert row["status"] == "scored"
    assert_like_serial([path], serial)
    assert commit_session(plan, *tables)["status"] == "scored"  # a rerun of a finished commit: the same rows
    assert_like_serial([path], serial)


def test_the_commit_waits_for_the_session_lock_and_names_its_holder(originals, serial, tmp_path):
    """Only one writer per session: a commit waits `lock_wait` s for another writer, then reports it."""
    (path,) = copies(originals[:1], tmp_path)
    (plan,) = plan_path(str(path))
    tables = [score_segment(job) for job in plan.segments]
    holder = SessionIndex(path, writer=True)
    try:
        row = commit_session(plan, *tables, lock_wait=0.5)
    finally:
        releaser = threading.Timer(1.0, holder.close)
        releaser.start()
    assert row["status"] == "failed" and "already being written" in row["error"] and str(path) in row["error"]
    assert SessionIndex(path).scores().empty
    assert commit_session(plan, *tables, lock_wait=30)["status"] == "scored"  # once the holder has let go
    releaser.join()
    assert_like_serial([path], serial)


def test_corpus_sweep_equals_the_per_session_sweeps_combined(client, originals, serial, tmp_path):
    paths = copies(originals, tmp_path)
    report = score_sessions(paths, client, progress=False)
    sessions = [open_session(p) for p in paths]
    frame = corpus_scores(report, client)
    assert list(frame["session"].unique()) == [p.name for p in paths]
    expected = pd.concat([s.scores().assign(session=s.id) for s in sessions], ignore_index=True)
    pd.testing.assert_frame_equal(frame.drop(columns="session"), expected.drop(columns="session"))
    lazy = corpus_scores(report, client, lazy=True)
    assert lazy.npartitions == 4
    pd.testing.assert_frame_equal(lazy.compute().reset_index(drop=True), frame, check_dtype=False)

    for thresholds in (np.linspace(0, 1, 41), None):
        corpus = sweep_corpus(report, client, thresholds=thresholds)
        parts = [tuning.sweep(s.scores(), s.labels, thresholds=corpus["threshold"].to_numpy()) for s in sessions]
        for col in ("detections", "tp", "fp", "fn"):
            assert corpus[col].tolist() == np.sum([p[col] for p in parts], axis=0).tolist(), col
        tp, fp, fn = (corpus[c].to_numpy() for c in ("tp", "fp", "fn"))
        with np.errstate(invalid="ignore", divide="ignore"):
            f1 = np.where(tp > 0, 2 * tp / (2 * tp + fp + fn), 0.0)
        np.testing.assert_allclose(corpus["f1"], f1)
        assert corpus.attrs["labels"] == sum(len(s.labels) for s in sessions)
    assert corpus.attrs["best_f1"] == corpus["f1"].max() > 0
    assert corpus.loc[corpus["threshold"] == corpus.attrs["best_threshold"], "f1"].item() == corpus.attrs["best_f1"]
    # one session alone: the corpus's default thresholds are that session's own
    alone = sweep_corpus([paths[0]], client)
    pd.testing.assert_frame_equal(alone, tuning.sweep(sessions[0].scores(), sessions[0].labels), check_dtype=False)

    def no_client():
        raise ValueError("no default client")

    with pytest.MonkeyPatch.context() as mp:  # without a client the same answers come from this process
        mp.setattr(distributed, "default_client", no_client)
        pd.testing.assert_frame_equal(sweep_corpus(paths), corpus)
        pd.testing.assert_frame_equal(corpus_scores(paths), frame)

    best = corpus.attrs["best_threshold"]
    from cht_lab import evaluate_sessions

    pd.testing.assert_frame_equal(evaluate_corpus(report, best, client), evaluate_sessions(sessions, best))


def test_cli_score_many_sessions_on_a_local_cluster(originals, tmp_path, data_dir):
    paths = copies(originals[:2], tmp_path / "corpus")
    bad = tmp_path / "corpus" / "20260301_150000"
    (bad / layout.STREAM_DIR).mkdir(parents=True)
    (bad / layout.STREAM_DIR / "20260301_150000.mp4").write_bytes(os.urandom(10_000))
    res = subprocess.run([sys.executable, "-m", "cht_lab.cli", "score", str(tmp_path / "corpus"), "--workers", "2"],
                         capture_output=True, text=True, timeout=240, env={**os.environ})
    assert res.returncode == 1, res.stdout + res.stderr  # one session failed: the work ran and failed
    assert "dashboard http" in res.stderr
    assert f"error: {bad / layout.STREAM_DIR}" in res.stderr
    assert "INFO distributed" not in res.stderr
    out = res.stdout
    for p in paths:
        assert re.search(rf"{p.name}\s+scored\s+1\s+135", out), out
    assert re.search(rf"{bad.name}\s+failed", out), out
    assert len(SessionIndex(paths[0]).scores()) == 135
    assert re.search(r"^\s+labeled events\s+4$", out, re.M), out  # tuned over the two sessions that scored
    assert re.search(r"^\s+f1 at threshold\s+[0-9.]+$", out, re.M) and "best threshold" in out, out
