"""The `cht-lab` command as a user runs it: real subprocesses, real files."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from cht_lab import layout
from cht_lab.cli import build_parser
from cht_lab.detect.scoring import DEFAULT_METRIC, DEFAULT_THRESHOLDS
from cht_lab.index.schema import FRAMES_SCHEMA
from cht_lab.tools.samples import sample_dir
from test_session import COLOR_CUTS, make_color_session, tree

COMMANDS = ["demo", "samples", "run", "score", "export", "replay"]
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def data_dir(tmp_path, monkeypatch) -> Path:
    """The CLI's data directory ($CHT_LAB_DATA, inherited by the subprocess) is a temp dir."""
    d = tmp_path / "cht_lab_data"
    monkeypatch.setenv(layout.DATA_DIR_ENV, str(d))
    return d


def cli(*args: str, timeout: float = 240, cwd: Path | None = None,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cht_lab.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, env={**os.environ, **(env or {})})


def summary_value(stdout: str, key: str) -> str:
    m = re.search(rf"^\s+{re.escape(key)}\s+(.+?)\s*$", stdout, re.M)
    assert m, f"no '{key}' line in:\n{stdout}"
    return m.group(1)


def test_help_for_every_command():
    top = cli("--help")
    assert top.returncode == 0
    for name in COMMANDS:
        assert name in top.stdout
        sub = cli(name, "--help")
        assert sub.returncode == 0, sub.stderr
        assert sub.stdout.startswith(f"usage: cht-lab {name}")


def test_every_option_says_what_it_does():
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, sub in subparsers.choices.items():
        for action in sub._actions:
            if not isinstance(action, argparse._HelpAction):
                assert action.help, f"cht-lab {name} {action.option_strings or action.dest}: no help text"


def test_demo_prints_captures_and_writes_index_and_plot(tmp_path):
    res = cli("demo", "--sample", "slides", "--speed", "10", "--out", str(tmp_path))
    assert res.returncode == 0, res.stdout + res.stderr
    out = res.stdout
    captured, labeled = int(summary_value(out, "frames captured")), int(summary_value(out, "labeled events"))
    assert labeled == 12
    assert captured == labeled
    assert float(summary_value(out, "f1")) >= 0.95
    assert float(summary_value(out, "p95 lag (s)")) > 0.0  # how far detection trails the live edge
    assert int(summary_value(out, "errors")) == 0
    session = Path(re.search(r"^session directory:\s+(\S+)", out, re.M).group(1))
    assert session.parent == tmp_path
    assert (session / "index").is_dir()
    assert (session / "scores.png").stat().st_size > 0
    frames = pd.read_parquet(session / "index" / "frames") if (session / "index" / "frames").is_dir() else None
    assert frames is None or len(frames) == captured
    assert len(list((session / "frames").glob("*.jpg"))) == captured
    assert "\r" not in res.stderr  # no progress bar when stderr is not a terminal


@pytest.fixture
def sample_copy(tmp_path) -> Path:
    d = tmp_path / "20260301_110000"
    shutil.copytree(sample_dir("coding"), d, ignore=shutil.ignore_patterns("index"))
    return d


def test_score_then_export_csv(sample_copy):
    res = cli("score", str(sample_copy))
    assert res.returncode == 0, res.stderr
    assert int(summary_value(res.stdout, "score rows")) == 45 * 30
    assert float(summary_value(res.stdout, "f1 at threshold")) >= 0.95
    assert "\r" not in res.stderr

    res = cli("export", str(sample_copy), "--format", "csv", "--table", "scores")
    assert res.returncode == 0, res.stderr
    written = Path(res.stdout.strip().splitlines()[-1])
    assert written.suffix == ".csv" and written.is_file()
    table = pd.read_csv(written)
    assert len(table) == 45 * 30 and {"ts", "frame_index"} <= set(table.columns)


@pytest.mark.parametrize("command", ["score", "export", "run"])
def test_missing_path_is_a_clear_error(tmp_path, command):
    missing = tmp_path / "no-such-session"
    res = cli(command, str(missing), timeout=60)
    assert res.returncode != 0
    assert str(missing) in res.stderr
    assert "Traceback" not in res.stderr
    assert not missing.exists()


# --------------------------------------------------------------------------- options and messages


@pytest.fixture
def colors(tmp_path) -> Path:
    """A 4.5 s session with two labeled cuts: scoring it takes well under a second."""
    return make_color_session(tmp_path / "sessions")


def test_verbose_works_before_and_after_the_command(colors):
    quiet = cli("score", str(colors))
    assert quiet.returncode == 0, quiet.stderr
    assert "INFO" not in quiet.stderr
    for args in (("-v", "score", str(colors)), ("score", str(colors), "-v")):
        res = cli(*args)
        assert res.returncode == 0, res.stderr
        assert "INFO cht_lab.session" in res.stderr, (args, res.stderr)


def test_score_says_metric_threshold_and_when_the_scenes_are(colors):
    res = cli("score", str(colors))
    assert res.returncode == 0, res.stderr
    thr = DEFAULT_THRESHOLDS[DEFAULT_METRIC]
    assert summary_value(res.stdout, "metric") == DEFAULT_METRIC
    assert summary_value(res.stdout, "threshold") == f"{thr:g} (default for {DEFAULT_METRIC})"
    assert int(summary_value(res.stdout, "scenes at threshold")) == len(COLOR_CUTS)
    times = re.search(r"^scenes at: (.+)$", res.stdout, re.M).group(1).split(", ")
    assert len(times) == len(COLOR_CUTS)
    for text, cut in zip(times, COLOR_CUTS):
        m, sec = text.split(":")
        assert cut <= int(m) * 60 + float(sec) < cut + 0.5

    res = cli("score", str(colors), "--metric", "score", "--threshold", "0.3")
    assert summary_value(res.stdout, "metric") == "score" and summary_value(res.stdout, "threshold") == "0.3"


@pytest.mark.parametrize("command", ["score", "export", "run"])
def test_a_negative_threshold_is_refused(colors, command):
    res = cli(command, str(colors), "--threshold", "-0.1", timeout=60)
    assert res.returncode == 2
    assert "--threshold" in res.stderr and ">= 0" in res.stderr
    assert not (colors / "index").exists()


def test_demo_refuses_an_unknown_sample_before_it_starts():
    res = cli("demo", "--sample", "nosuch", timeout=60)
    assert res.returncode == 2
    assert "replaying" not in res.stdout
    assert "nosuch" in res.stderr and "slides" in res.stderr


# --------------------------------------------------------------------------- exports


def test_export_of_a_scored_session_has_the_scenes_with_every_column(colors):
    res = cli("export", str(colors))
    assert res.returncode == 2 and "score it first" in res.stderr  # not a header-only file
    assert not (colors / "frames.parquet").exists()
    assert cli("score", str(colors)).returncode == 0

    res = cli("export", str(colors))
    assert res.returncode == 0, res.stderr
    table = pd.read_parquet(res.stdout.strip())
    assert list(table.columns) == FRAMES_SCHEMA.names and len(table) == len(COLOR_CUTS)
    thr = DEFAULT_THRESHOLDS[DEFAULT_METRIC]
    assert (table["threshold"] == thr).all() and (table["metric"] == DEFAULT_METRIC).all()
    assert f"{len(COLOR_CUTS)} frames ({DEFAULT_METRIC} >= {thr:g})" in res.stderr and "--capture" in res.stderr

    res = cli("export", str(colors), "--capture", "--out", "exports/frames.csv")
    assert res.returncode == 0, res.stderr
    written = Path(res.stdout.strip())
    assert written == colors.resolve() / "exports" / "frames.csv"
    table = pd.read_csv(written)
    assert list(table.columns) == FRAMES_SCHEMA.names and len(table) == len(COLOR_CUTS)
    assert table["id"].notna().all() and all((colors / p).is_file() for p in table["path"])

    res = cli("export", str(colors), "--threshold", "5", "--out", "none.csv")
    assert res.returncode == 0, res.stderr
    assert pd.read_csv(res.stdout.strip()).empty
    assert "highest is" in res.stderr and "lower the threshold" in res.stderr

    res = cli("export", str(colors), "--table", "scores", "--threshold", "0.2")
    assert res.returncode == 2 and "--table frames" in res.stderr


# --------------------------------------------------------------------------- run: failures exit non-zero


def _refused_url() -> str:
    with socket.socket() as s:  # a port nobody listens on once this closes
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/stream.mp4"


def _unreadable_session(root: Path) -> Path:
    d = root / "20260301_140000"
    (d / layout.STREAM_DIR).mkdir(parents=True)
    rec = d / layout.STREAM_DIR / "20260301_140000.mp4"
    rec.write_text("not a recording\n" * 100)
    os.utime(rec, (rec.stat().st_atime, rec.stat().st_mtime - 3600))  # finished long ago, not being written
    return d


@pytest.mark.parametrize("kind, code, says", [
    ("text file named .mp4", 2, "not a media file"),
    ("refused URL", 1, "refused"),
    ("session with an unreadable recording", 2, "cannot be read"),
])
def test_run_failures_exit_non_zero_and_leave_no_directory(tmp_path, data_dir, kind, code, says):
    if kind == "text file named .mp4":
        source = tmp_path / "notes.mp4"
        source.write_text("a meeting agenda, not a video\n" * 50)
    elif kind == "refused URL":
        source = _refused_url()
    else:
        source = _unreadable_session(tmp_path)
    before = tree(tmp_path / "notes.mp4" if kind == "text file named .mp4" else tmp_path)
    res = cli("run", str(source), "--no-audio", timeout=90)
    assert res.returncode == code, res.stdout + res.stderr
    assert says in res.stderr.lower(), res.stderr
    assert "Traceback" not in res.stderr
    assert not data_dir.exists() or not any(data_dir.iterdir()), list(data_dir.rglob("*"))
    if kind == "session with an unreadable recording":
        assert tree(tmp_path) == before  # no index/ left inside the cht session either


def test_run_on_a_recording_exits_zero(tmp_path, colors, data_dir):
    res = cli("run", str(colors / layout.STREAM_DIR / f"{colors.name}.mp4"), "--no-audio", timeout=90)
    assert res.returncode == 0, res.stdout + res.stderr
    assert int(summary_value(res.stdout, "captures")) == len(COLOR_CUTS)
    session = Path(re.search(r"^session directory:\s+(\S+)", res.stdout, re.M).group(1))
    assert session.parent == data_dir


# --------------------------------------------------------------------------- bundled samples stay untouched


def test_the_cli_on_a_bundled_sample_leaves_data_clean(data_dir):
    samples = REPO / "data" / "samples"
    slides = samples / "20260301_090000"
    if not (slides / layout.STREAM_DIR).is_dir():
        pytest.skip("no bundled samples in this checkout's data/samples")
    env = {"CHT_LAB_SAMPLES": str(samples)}  # sample names resolve to the repository's data/samples

    def status() -> str:
        res = subprocess.run(["git", "status", "--porcelain", "--ignored", "--", str(slides)], cwd=REPO,
                             capture_output=True, text=True, timeout=30)
        return res.stdout if res.returncode == 0 else "(no git)"

    before, files = status(), tree(slides)
    res = cli("score", "slides", env=env)
    assert res.returncode == 0, res.stderr
    assert summary_value(res.stdout, "session") == str(slides)
    work = Path(summary_value(res.stdout, "working directory"))
    assert data_dir.resolve() in work.parents
    res = cli("export", "--sample", "slides", "--capture", "--format", "csv", env=env)
    assert res.returncode == 0, res.stderr
    written = Path(res.stdout.strip())
    assert written.parent == work and len(pd.read_csv(written)) == 12
    res = cli("run", str(slides), "--no-audio", "--duration", "3", env=env, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    assert str(data_dir) in res.stdout
    assert tree(slides) == files
    assert status() == before
