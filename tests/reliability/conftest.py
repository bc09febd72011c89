"""Fixtures of the reliability suite: small real clips, a bounded wait, and a leak guard."""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path

import pytest

from cht_lab.ffmpeg import find_ffmpeg
from conftest import assert_no_ffmpeg_left, wait_for  # noqa: F401  (tests/conftest.py; wait_for re-exported)

FFMPEG_FREE_THREADS = ("scene-", "replay", "audio", "index-flush")


def encode(path: Path, source: str, *, pix_fmt: str = "yuv420p", extra_in: list[str] | None = None,
           extra_out: list[str] | None = None, fragmented: bool = True) -> Path:
    """A clip from an ffmpeg lavfi graph (libx264 ultrafast)."""
    args = [find_ffmpeg(), "-hide_banner", "-v", "error", "-nostdin", "-y", *(extra_in or []), "-f", "lavfi",
            "-i", source, "-c:v", "libx264", "-preset", "ultrafast", "-bf", "0", "-pix_fmt", pix_fmt,
            *(extra_out or [])]
    if fragmented:
        args += ["-movflags", "+frag_keyframe+empty_moov+default_base_moof"]
    subprocess.run([*args, str(path)], check=True, timeout=60, capture_output=True)
    return path


def our_threads() -> set[str]:
    return {t.name for t in threading.enumerate() if t.name.startswith(FFMPEG_FREE_THREADS)}


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture(autouse=True)
def nothing_left_running():
    """After each test: no ffmpeg child and no worker thread of ours is left."""
    yield
    assert_no_ffmpeg_left()
    wait_for(lambda: not our_threads(), 5, f"worker threads to end ({sorted(our_threads())})")
