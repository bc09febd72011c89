"""Lifecycle: starting and stopping a LiveSession 50 times leaves no thread, file descriptor, ffmpeg
child or temporary directory behind."""

from __future__ import annotations

import os
import tempfile
import threading

import psutil
import pytest

from cht_lab import LiveSession
from cht_lab.ffmpeg import live_processes

from .conftest import encode, open_fds, wait_for

pytestmark = pytest.mark.timeout(120)


def _ffmpeg_children() -> list[psutil.Process]:
    return [p for p in psutil.Process().children(recursive=True)
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE and "ffmpeg" in p.name()]


def _temp_dirs() -> set[str]:
    return {n for n in os.listdir(tempfile.gettempdir()) if n.startswith("cht_lab-ana-")}


def test_start_stop_50_times_leaves_nothing_behind(tmp_path):
    clip = encode(tmp_path / "c.mp4", "testsrc2=s=160x120:r=30:d=5", extra_out=["-g", "30"])
    session_dir = tmp_path / "s"
    # one warm-up cycle: lazy imports, ffmpeg capability probes and logging handlers are made once
    LiveSession(clip, session_dir=session_dir, realtime=True).start().stop()
    threads = {t.ident for t in threading.enumerate()}
    fds = open_fds()
    temps = _temp_dirs()
    for k in range(50):
        s = LiveSession(clip, session_dir=session_dir, realtime=True).start()
        if k % 10 == 0:  # sometimes let it get going (ffmpeg decoding, audio chunking, flushes)
            wait_for(lambda: s.status["frames"] > 0, 10, "frames")
        s.stop()
        assert s.status["state"] == "stopped"
    assert not live_processes()
    wait_for(lambda: not _ffmpeg_children(), 5, "ffmpeg children to be reaped")
    wait_for(lambda: {t.ident for t in threading.enumerate()} <= threads, 5,
             f"threads to end: {[t.name for t in threading.enumerate() if t.ident not in threads]}")
    assert open_fds() <= fds, f"file descriptors: {fds} before, {open_fds()} after: {os.listdir('/proc/self/fd')}"
    assert _temp_dirs() <= temps, "analysis FIFO directories are removed"
    frames = LiveSession(clip, session_dir=session_dir).scores()
    assert not frames.duplicated(["segment", "frame_index"]).any(), "51 sessions on one directory: no duplicates"
