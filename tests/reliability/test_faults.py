"""Faults: ffmpeg killed again and again, the whole process SIGKILLed, the disk filling up."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np
import psutil
import pytest

from cht_lab import LiveSession
from cht_lab import replay
from cht_lab.index.session_index import SessionIndex

from .conftest import encode, wait_for

pytestmark = pytest.mark.timeout(90)
REPO = Path(__file__).resolve().parents[2]


def test_ffmpeg_killed_ten_times_during_a_live_session(tmp_path):
    clip = encode(tmp_path / "loop.mp4", "testsrc2=s=160x120:r=30:d=2", extra_out=["-g", "10"])
    kills: list[int] = []
    with replay(clip, out_dir=tmp_path / "srv", speed=2.0, loop=True) as server:
        s = LiveSession(server.session_dir, session_dir=tmp_path / "s", audio=False).start()
        try:
            for k in range(10):
                def stream_pid():  # the socket's decode (a run may first backfill from the recording)
                    det = s.status["workers"]["detector"]
                    return det["pid"] if det["decoding"] == "stream" and det["pid"] not in (None, *kills) else None

                pid = wait_for(stream_pid, 15, f"ffmpeg run {k}")
                frames = s.status["frames"]
                wait_for(lambda: s.status["frames"] >= frames + 5, 15, f"frames from run {k}")
                os.kill(pid, signal.SIGKILL)
                kills.append(pid)
            # frames decoded before a kill still drain from the pipe: wait for the restart itself
            wait_for(lambda: s.status["workers"]["detector"]["restarts"] >= 10, 15, "the last restart")
            frames = s.status["frames"]
            wait_for(lambda: s.status["frames"] >= frames + 10, 15, "frames after the last kill")
            st = s.status
            assert st["state"] == "running", st["state"]
        finally:
            s.stop()
    det = st["workers"]["detector"]
    assert det["restarts"] == 10 and det["state"] != "failed", "\n".join(e["error"][-90:] for e in st["errors"])
    killed = [e for e in st["errors"] if "ffmpeg was killed (signal 9)" in e["error"]]
    assert len(killed) == 10, [e["error"] for e in st["errors"]]
    scores = s.scores()
    idx = scores["frame_index"].to_numpy()
    assert scores["frame_index"].is_unique and np.all(np.diff(idx) > 0), "frame indices never repeat"
    assert np.all(np.diff(scores["ts"].to_numpy()) > 0)
    # the recording holds what the socket missed while ffmpeg restarted: each gap is backfilled
    assert det["backfilled"] > 0
    assert np.all(np.diff(idx[scores["segment"].to_numpy() == 0]) == 1), "no frame of the recording left out"


CHILD = textwrap.dedent("""
    import sys, time
    from cht_lab import LiveSession
    clip, session_dir = sys.argv[1], sys.argv[2]
    s = LiveSession(clip, session_dir=session_dir, realtime=True, threshold=0.0, min_gap=0.5).start()
    print("started", flush=True)
    s.wait(120)
""")


def test_sigkilled_live_session_loses_nothing_flushed_and_a_new_session_continues(tmp_path):
    clip = encode(tmp_path / "ten.mp4", "testsrc2=s=160x120:r=30:d=10", extra_out=["-g", "30"])
    session_dir = tmp_path / "s"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(clip), str(session_dir)], stdout=subprocess.PIPE,
                             cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert child.stdout.readline().strip() == b"started"
        reader = SessionIndex(session_dir)
        wait_for(lambda: len(reader.scores()) >= 60 and len(reader.frames()) >= 3, 30, "flushed rows")
        before_scores, before_frames = reader.scores(), reader.frames()
        grandchildren = psutil.Process(child.pid).children(recursive=True)
        assert grandchildren, "ffmpeg children run"
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)
        child.stdout.close()
    # ffmpeg children of the killed process lose their pipes and end by themselves
    wait_for(lambda: not [p for p in grandchildren if p.is_running() and p.status() != psutil.STATUS_ZOMBIE],
             10, "the killed session's ffmpeg children to end")
    after = SessionIndex(session_dir)
    scores, frames = after.scores(), after.frames()
    assert len(scores) >= len(before_scores) and len(frames) >= len(before_frames)
    merged = before_scores.merge(scores, on=["segment", "frame_index"], suffixes=("", "_after"))
    assert len(merged) == len(before_scores), "every row flushed before the kill is still there"
    for rel in frames["path"]:
        assert (session_dir / rel).stat().st_size > 0, f"{rel}: captured JPEG is complete"
    # a new session on the same directory: takes over the lock, continues ids and frame indices
    s = LiveSession(clip, session_dir=session_dir, threshold=0.0, min_gap=0.5, audio=False).start()
    try:
        assert s.wait(30)
    finally:
        s.stop()
    new_scores, new_frames = s.scores(), s.frames()
    # the killed process's private FIFO folders are cleaned up by the next process that decodes
    left = [n for n in os.listdir(tempfile.gettempdir()) if n.startswith(f"cht_lab-ana-{child.pid}-")]
    assert not left, left
    assert new_frames["id"].is_unique and len(new_frames) > len(frames)
    old_ids = set(frames["id"])
    new_ids = [i for i in new_frames["id"] if i not in old_ids]
    assert min(int(i[1:]) for i in new_ids) > max(int(i[1:]) for i in old_ids), "ids continue"
    assert not new_scores.duplicated(["segment", "frame_index"]).any()
    assert new_scores["frame_index"].max() > scores["frame_index"].max()


FILL_CHILD = textwrap.dedent("""
    import json, os, resource, signal, sys, time
    from pathlib import Path
    from cht_lab import LiveSession
    from cht_lab.index.session_index import SessionIndex
    clip, session_dir, mode = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    s = LiveSession(clip, session_dir=session_dir, realtime=True, threshold=0.0, min_gap=0.3).start()
    def wait_for(cond, timeout):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if cond():
                return True
            time.sleep(0.05)
        return False
    reader = SessionIndex(session_dir)
    wait_for(lambda: len(reader.scores()) >= 30 and len(reader.frames()) >= 2, 20)
    before = {"scores": len(reader.scores()), "frames": len(reader.frames())}
    if mode == "tmpfs":  # fill the small file system
        try:
            with open(session_dir.parent / "filler", "wb") as fh:
                while True:
                    fh.write(b"\\0" * (1 << 16))
                    fh.flush()
        except OSError:
            pass
    else:  # no mount: every file write past 0 bytes now fails with EFBIG
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (0, resource.RLIM_INFINITY))
    full = lambda: any(e["worker"] == "index" for e in s.status["errors"]) and any(
        "capture" in e["error"] for e in s.status["errors"])
    wait_for(full, 15)
    st = s.status
    s.stop()
    print(json.dumps({"before": before, "status": {k: st[k] for k in ("state", "last_error", "errors")},
                      "index_error": st["workers"]["index"].get("last_error")}, default=str), flush=True)
""")


def _small_tmpfs(path: Path) -> bool:
    path.mkdir()
    if os.geteuid() != 0 or os.environ.get("CHT_LAB_TEST_NO_MOUNT"):  # the second: try the fallback
        return False
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(path)], capture_output=True,
                         timeout=10)
    return res.returncode == 0


def test_disk_full_is_a_clear_error_and_what_was_written_stays_readable(tmp_path):
    clip = encode(tmp_path / "ten.mp4", "testsrc2=s=320x240:r=30:d=10", extra_out=["-g", "30"])
    mnt = tmp_path / "disk"
    mounted = _small_tmpfs(mnt)
    try:
        session_dir = mnt / "s"
        res = subprocess.run([sys.executable, "-c", FILL_CHILD, str(clip), str(session_dir),
                              "tmpfs" if mounted else "rlimit"], capture_output=True, timeout=60, cwd=REPO,
                             env={**os.environ, "PYTHONPATH": str(REPO)})
        assert res.returncode == 0, res.stderr.decode()[-3000:]
        out = json.loads(res.stdout.decode().strip().splitlines()[-1])
        reason = "No space left on device" if mounted else "File too large"
        st = out["status"]
        assert reason in (out["index_error"] or ""), out
        assert any(reason in e["error"] and "capture" in e["error"] for e in st["errors"]), st["errors"]
        assert any(reason in e["error"] and e["worker"] == "index" for e in st["errors"]), \
            "the index writer's failure reaches the session's status, not only its worker's"
        assert reason in (st["last_error"] or ""), st["last_error"]
        if mounted:
            os.remove(mnt / "filler")
        reader = SessionIndex(session_dir)
        scores, frames = reader.scores(), reader.frames()
        assert len(scores) >= out["before"]["scores"] and len(frames) >= out["before"]["frames"], \
            "what was written before the disk filled is intact"
        assert not scores.duplicated(["segment", "frame_index"]).any()
        for rel in frames["path"]:
            assert (session_dir / rel).stat().st_size > 0
        # nothing half-written was left in place of a part file
        for table in ("frames", "scores"):
            for part in (session_dir / "index" / table).glob("*.parquet"):
                import pyarrow.parquet as pq
                pq.read_table(part)
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True, timeout=10)
