"""Shared test fixtures: real ffmpeg everywhere, and a guard that no ffmpeg child outlives the run."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any, Callable

import pytest

from cht_lab.ffmpeg import find_ffmpeg, live_processes

REPO = Path(__file__).resolve().parents[1]


def wait_for(cond: Callable[[], Any], timeout: float = 15.0, what: str = "condition", poll: float = 0.02) -> Any:
    """Poll `cond` until it returns something truthy (returned) or fail naming `what` - never a hang.

    `poll` is the polling interval, not a synchronisation: the condition is what is waited for.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(poll)


def assert_no_ffmpeg_left() -> None:
    """Fail naming the ffmpeg children still running (after reaping them, so one test's leak stays its own)."""
    leftovers = live_processes()
    for p in leftovers:
        p.stop(timeout=1.0)
    assert not leftovers, f"ffmpeg children left running: {[p.pid for p in leftovers]}"


@pytest.fixture(scope="session", autouse=True)
def no_ffmpeg_child_survives():
    """Every ffmpeg started through cht_lab must be reaped by the end of the run."""
    yield
    assert_no_ffmpeg_left()


@pytest.fixture(scope="session")
def ffmpeg_exe() -> str:
    return find_ffmpeg()


def make_clip(path: Path, *, seconds: float = 3.0, size: str = "320x240", fps: int = 30,
              audio: bool = True, fragmented: bool = True, extra: list[str] | None = None) -> Path:
    """A small H.264(+AAC) test clip made by ffmpeg's lavfi sources."""
    args = [find_ffmpeg(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
            "-f", "lavfi", "-i", f"testsrc2=s={size}:r={fps}:d={seconds}"]
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=f=440:r=48000:d={seconds}", "-c:a", "aac"]
    args += ["-c:v", "libx264", "-preset", "ultrafast", "-bf", "0", "-g", str(fps), "-pix_fmt", "yuv420p"]
    if fragmented:
        args += ["-movflags", "+frag_keyframe+empty_moov+default_base_moof"]
    args += (extra or []) + [str(path)]
    subprocess.run(args, check=True, timeout=60)
    return path
