"""Confinement and safety: what cht_lab writes stays inside the session directory; ffmpeg is only
ever run with an argument list (never a shell) and with a timeout or an owner that reaps it; the
replay socket is private to its owner."""

from __future__ import annotations

import ast
import os
import stat
from pathlib import Path

import pytest

from cht_lab import LiveSession, open_session
from cht_lab import replay
from cht_lab.index.session_index import IndexSchemaError, SessionIndex

from .conftest import encode

pytestmark = pytest.mark.timeout(60)
PACKAGE = Path(__file__).resolve().parents[2] / "cht_lab"
# the only modules that start long-running children; both always reap them (terminate, then kill)
REAPERS = {"ffmpeg/process.py", "tools/samples/real/child.py"}


def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
            owner = f.value.id if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) else ""
            yield node, owner, name


def test_no_shell_command_strings_anywhere():
    """Every subprocess call takes an argument list; no shell=True, os.system, os.popen or os.exec*p."""
    problems = []
    sources = sorted(PACKAGE.rglob("*.py"))
    assert len(sources) > 10
    for path in sources:
        tree = ast.parse(path.read_text(), str(path))
        for node, owner, name in _calls(tree):
            where = f"{path.name}:{node.lineno}"
            if owner == "os" and (name in ("system", "popen") or name.startswith(("spawn", "exec"))):
                problems.append(f"{where}: os.{name}")
            for kw in node.keywords:
                if kw.arg == "shell" and not (isinstance(kw.value, ast.Constant) and kw.value.value is False):
                    problems.append(f"{where}: shell=...")
            if owner == "subprocess" and name in ("run", "Popen", "call", "check_call", "check_output",
                                                  "getoutput", "getstatusoutput"):
                if name in ("getoutput", "getstatusoutput"):
                    problems.append(f"{where}: subprocess.{name} runs a shell")
                elif node.args and isinstance(node.args[0], (ast.Constant, ast.JoinedStr, ast.BinOp)):
                    problems.append(f"{where}: subprocess.{name} with a command string")
    assert not problems, problems


def test_media_is_only_opened_by_ffmpeg_children_with_timeouts_or_owners():
    """Recordings are parsed by ffmpeg in a child process only (no in-process decoders); every
    run-to-completion call has a timeout, and long-running children go through FfmpegProcess
    (or, for the recorder's Xvfb and JupyterLab, owned_process), which always reap (terminate, then kill)."""
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                for m in mods:
                    if m.split(".")[0] in ("cv2", "av", "imageio", "moviepy", "decord"):
                        problems.append(f"{path.name}:{node.lineno}: imports the media decoder {m}")
        for node, owner, name in _calls(tree):
            where = f"{path.name}:{node.lineno}"
            kws = {kw.arg for kw in node.keywords}
            if owner == "subprocess" and name == "run" and "timeout" not in kws:
                problems.append(f"{where}: subprocess.run without timeout")
            if owner == "subprocess" and name == "Popen" and path.relative_to(PACKAGE).as_posix() not in REAPERS:
                problems.append(f"{where}: Popen outside FfmpegProcess and owned_process")
            if owner == "" and name == "run_ffmpeg" and "timeout" not in kws:
                pass  # run_ffmpeg has a default timeout (60 s)
    assert not problems, problems
    from cht_lab import ffmpeg

    import inspect
    assert inspect.signature(ffmpeg.probe).parameters["timeout"].default <= 60
    assert inspect.signature(ffmpeg.run_ffmpeg).parameters["timeout"].default <= 60


def test_replay_socket_is_owner_only(tmp_path):
    clip = encode(tmp_path / "c.mp4", "testsrc2=s=160x120:r=30:d=1")
    old = os.umask(0)  # even with a permissive umask
    try:
        with replay(clip, out_dir=tmp_path / "srv", speed=10.0) as server:
            mode = os.stat(server.socket_path).st_mode
            assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600, oct(mode)
            server.wait(10)
    finally:
        os.umask(old)


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*")}


def test_everything_a_live_session_writes_is_inside_its_directory(tmp_path):
    from conftest import make_clip  # tests/conftest.py: video and audio

    clip = make_clip(tmp_path / "c.mp4", seconds=2.0, size="160x120")
    outside = tmp_path / "outside"
    outside.mkdir()
    before = _files(tmp_path)
    session_dir = outside / "s"
    with LiveSession(clip, session_dir=session_dir, threshold=0.0, min_gap=0.5) as s:
        assert s.wait(20)
    written = _files(tmp_path) - before
    assert written and all(session_dir in p.parents or p == session_dir for p in written), \
        sorted(map(str, written - {p for p in written if session_dir in p.parents}))
    frames, audio = s.frames(), s.audio()
    assert len(frames) >= 3 and len(audio) >= 1
    for rel in [*frames["path"], *audio["path"]]:
        assert not Path(rel).is_absolute() and ".." not in Path(rel).parts
        assert (session_dir / rel).resolve().is_relative_to(session_dir.resolve())


def test_ids_and_paths_from_outside_cannot_escape(tmp_path):
    idx = SessionIndex(tmp_path / "s", writer=True)
    row = {"ts": 1.0, "pts": 1.0, "segment": 0, "frame_index": 1, "score": 0.5, "metric": "score",
           "threshold": 0.1, "kind": "scene", "width": 1, "height": 1, "bytes": 1, "captured_at": None,
           "sent_to_agent": False}
    try:
        for bad_id in ("../../escape", "/etc/passwd", ".hidden", "a/b", ""):
            with pytest.raises(IndexSchemaError, match="plain file name|id"):
                idx.append_frames([{**row, "id": bad_id, "path": "frames/x.jpg"}])
        with pytest.raises(IndexSchemaError, match="outside the session directory"):
            idx.append_frames([{**row, "id": "F0001", "path": "../../etc/passwd"}])
        with pytest.raises(IndexSchemaError, match="plain file name"):
            idx.append_audio([{"id": "../chunk_0001", "path": "audio/chunk_0001.wav", "start": 0.0,
                               "duration": 1.0}])
        assert idx.next_frame_id() == "F0001" and idx.next_chunk_id() == "chunk_0000"
    finally:
        idx.close()
    assert SessionIndex(tmp_path / "s").frames().empty


def test_export_paths(tmp_path):
    """A relative export path is inside the session and cannot climb out with '..'; an absolute path
    is the user's explicit choice of destination and is honoured (documented in SessionIndex.export)."""
    clip = encode(tmp_path / "c.mp4", "testsrc2=s=160x120:r=30:d=1")
    session = open_session(clip)
    session.score(progress=False)
    inside = session.export("exports/frames.csv", format="csv")
    assert inside == session.dir / "exports" / "frames.csv" and inside.is_file()
    for bad in ("../escape.csv", "exports/../../escape.csv", "../" * 20 + "tmp/escape.csv"):
        with pytest.raises(ValueError, match="stays inside the session directory"):
            session.export(bad, format="csv", table="scores")
    assert not (session.dir.parent / "escape.csv").exists()
    with pytest.raises(ValueError, match="index"):
        session.export("index/scores/part-99999999.parquet", table="scores")
    chosen = session.export(tmp_path / "mine" / "scores.parquet", table="scores")
    assert chosen == tmp_path / "mine" / "scores.parquet" and chosen.stat().st_size > 0


def test_a_session_directory_that_cannot_be_written(tmp_path):
    """A clear OSError naming the directory and the reason, before any worker starts."""
    clip = encode(tmp_path / "c.mp4", "testsrc2=s=160x120:r=30:d=1")
    locked = tmp_path / "locked"
    locked.mkdir()
    os.chmod(locked, 0o500)
    try:
        if os.access(locked, os.W_OK):
            # root ignores permission bits: a directory in place of which sits a file is unwritable for anyone
            target = tmp_path / "a_file"
            target.write_text("not a directory")
            session_dir, reason = target / "s", "Not a directory"
        else:
            session_dir, reason = locked / "s", "Permission denied"
        with pytest.raises(OSError) as err:
            LiveSession(clip, session_dir=session_dir).start()
        assert reason in str(err.value) and str(session_dir.parent) in str(err.value), err.value
    finally:
        os.chmod(locked, 0o700)
