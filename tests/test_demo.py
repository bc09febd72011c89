"""`cht-lab demo` as a person runs it in a terminal: with the progress bar, and without losing a frame.

In a terminal the demo draws a progress bar, which probes the recording; that once happened after
the replay had started streaming, so the LiveSession joined at the second keyframe and the first
2 s were never scored. Only a real pseudo-terminal takes that path (stderr.isatty()). The
detector now backfills what a late join missed from the recording, which hides the loss in the
row count; the log (-v) still tells that the socket stream began late.
"""

from __future__ import annotations

import fcntl
import os
import re
import select
import shutil
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from cht_lab import layout
from cht_lab.ffmpeg import probe
from cht_lab.session import open_session
from cht_lab.tools.samples import SAMPLES, sample_dir

CHT_LAB = Path(sys.executable).with_name("cht-lab")  # the console script installed next to this Python


def run_in_terminal(args: list[str], *, env: dict[str, str], cwd: Path, timeout: float) -> tuple[int, str]:
    """Run `args` with stdin, stdout and stderr on a pseudo-terminal; returns (exit code, everything it wrote).

    The master side is read until EOF (every slave end closed): a full pty buffer would block the child.
    """
    master, slave = os.openpty()
    # a terminal has a size: with 0 columns tqdm draws nothing
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    try:
        proc = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=cwd,
                                start_new_session=True)
    finally:
        os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                os.killpg(proc.pid, signal.SIGKILL)
                raise AssertionError(f"{' '.join(args)} did not finish within {timeout:.0f} s:\n"
                                     + b"".join(chunks).decode(errors="replace")[-4000:])
            ready, _, _ = select.select([master], [], [], min(left, 1.0))
            if not ready:
                continue
            try:
                data = os.read(master, 1 << 16)
            except OSError:  # EIO: the last slave end closed
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(master)
        rc = proc.wait(timeout=30)
    return rc, b"".join(chunks).decode(errors="replace")


@pytest.fixture
def slides_copy(tmp_path: Path) -> Path:
    """A samples root holding a copy of `slides`, so the demo reads (and may index) nothing in the repository."""
    src = sample_dir("slides", generate_missing=False)
    if not layout.recordings(src):
        pytest.skip("bundled sample 'slides' not generated")
    root = tmp_path / "samples"
    shutil.copytree(src, root / SAMPLES["slides"].session_name, ignore=shutil.ignore_patterns("index"))
    return root


@pytest.mark.skipif(not CHT_LAB.exists(), reason=f"no console script at {CHT_LAB}")
def test_demo_in_a_terminal_scores_every_frame_of_the_sample(tmp_path: Path, slides_copy: Path) -> None:
    source = slides_copy / SAMPLES["slides"].session_name
    frames = sum(probe(p).video.frames for p in layout.recordings(source))
    out = tmp_path / "sessions"
    env = {**os.environ, "CHT_LAB_SAMPLES": str(slides_copy), "CHT_LAB_DATA": str(tmp_path / "data"),
           "TERM": "xterm"}
    rc, text = run_in_terminal([str(CHT_LAB), "-v", "demo", "--sample", "slides", "--speed", "5", "--out", str(out)],
                               env=env, cwd=tmp_path, timeout=300)
    assert rc == 0, text
    assert "replaying slides" in text, f"no progress bar drawn: stderr was not taken for a terminal\n{text}"
    match = re.search(r"session directory:\s+(\S+)", text)
    assert match, text
    session = Path(match.group(1))
    assert session.parent == out
    scores = open_session(session).scores()
    assert len(scores) == frames, (
        f"{len(scores)} score rows for a recording of {frames} frames; first scored ts "
        f"{scores['ts'].min() if len(scores) else None}\n{text}")
    assert re.search(rf"score rows\s+{frames}\b", text), text
    late = re.search(r"backfill: \d+ frames[^\r\n]*", text)
    assert not late, f"the LiveSession joined the replay's stream late: {late.group(0)}"
