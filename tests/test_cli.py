"""The `cht-lab` command as a user runs it: real subprocesses, real files."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from cht_lab.tools.samples.render import sample_dir

COMMANDS = ["demo", "samples", "run", "score", "export", "replay"]


def cli(*args: str, timeout: float = 240, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cht_lab.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd)


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
