"""The Parquet session index: crash safety with a real writer process, consistent reads during
appends and compaction, dtypes, legacy import, export, locking, quarantine, DuckDB/Polars."""

from __future__ import annotations

import json
import logging
import math
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from cht_lab.index.session_index import (
    AUDIO_SCHEMA,
    FRAMES_SCHEMA,
    SCHEMA_VERSION,
    SCORES_SCHEMA,
    IndexLockedError,
    IndexReadOnlyError,
    IndexSchemaError,
    LegacyIndexError,
    SessionIndex,
    read_table,
)
from conftest import wait_for

HERE = Path(__file__).resolve().parent
PROC = HERE / "index_writer_proc.py"


# ----------------------------------------------------------------------------- helpers


@pytest.fixture
def session(tmp_path: Path) -> Path:
    d = tmp_path / "20240301_101500"
    d.mkdir()
    return d


def frame_row(fid: str, **over) -> dict:
    row = {"id": fid, "ts": 12.5, "pts": 2.5, "segment": 1, "frame_index": 75, "score": 0.42, "metric": "score",
           "threshold": 0.3, "kind": "scene", "path": f"frames/{fid}.jpg", "width": 1920, "height": 1080,
           "bytes": 123456, "captured_at": datetime(2024, 3, 1, 9, 15, 12, 500000, tzinfo=timezone.utc),
           "sent_to_agent": False}
    row.update(over)
    return row


def audio_row(cid: str, **over) -> dict:
    row = {"id": cid, "path": f"audio/{cid}.wav", "start": 30.0, "duration": 30.0, "local_start": 30.0,
           "segment": 0, "source": "stream/audio.aac", "sample_rate": 16000, "channels": 1, "samples": 480000,
           "rms_dbfs": -23.5, "peak_dbfs": -3.25, "speech_ratio": 0.75}
    row.update(over)
    return row


def score_cols(start: int, n: int, segment: int = 0) -> dict:
    fi = np.arange(start, start + n, dtype=np.int64)
    return {"segment": np.full(n, segment, np.int32), "frame_index": fi, "pts": fi / 30.0, "ts": fi / 30.0 + 100,
            "score": (fi % 11 / 20).astype(np.float32), "ssim": (1 - fi % 3 / 10)}  # ssim given as float64


def spawn(mode: str, session_dir: Path, side: Path, *extra: str, stdin=None) -> subprocess.Popen:
    """The writer script in a child process; its stderr goes to `<side>.err` (read by child_error)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parent), os.environ.get("PYTHONPATH", "")])}
    with open(f"{side}.err", "wb") as err:
        return subprocess.Popen([sys.executable, str(PROC), mode, str(session_dir), str(side), *extra],
                                stdin=stdin, stdout=subprocess.DEVNULL, stderr=err, env=env)


def child_error(side: Path) -> str:
    return Path(f"{side}.err").read_text(errors="replace")[-3000:]


def side_lines(side: Path) -> list[list[str]]:
    """Complete lines of the child's side file (a line being written when it died is ignored)."""
    if not side.exists():
        return []
    text = side.read_text()
    return [ln.split() for ln in text.split("\n")[:-1] if ln and ln != "ready"]


def visible_parquet(session_dir: Path, table: str) -> list[Path]:
    return sorted((session_dir / "index" / table).glob("*.parquet"))


def temp_files(session_dir: Path) -> list[Path]:
    return [p for p in (session_dir / "index").rglob("*") if p.name.endswith(".tmp")]


# ----------------------------------------------------------------------------- crash safety


def test_sigkilled_writer_process_loses_nothing_it_reported_flushed(session: Path, tmp_path: Path):
    side = tmp_path / "side.txt"
    child = spawn("crash", session, side)
    try:
        # let it flush, capture frames and compact live for a while, then kill it mid-stride
        def progressed() -> bool:
            lines = side_lines(side)
            return len(lines) >= 60 and int(lines[-1][3]) >= 3

        wait_for(progressed, 60, "the writer child to flush 60 times and compact 3 times")
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL, child_error(side)
    rows, frames, last_id, _ = side_lines(side)[-1]
    rows, frames = int(rows), int(frames)

    for table in ("scores", "frames"):  # a visible file is always a whole file
        for p in visible_parquet(session, table):
            pq.read_table(p)

    reader = SessionIndex(session)
    scores = reader.scores()
    assert len(scores) >= rows  # the timer thread may have flushed more than was reported
    assert scores["frame_index"].tolist() == list(range(len(scores)))  # no duplicates, no holes
    got = reader.frames()
    assert len(got) >= frames
    assert got["id"].tolist() == [f"F{i:04d}" for i in range(1, len(got) + 1)]
    assert last_id in set(got["id"])

    writer = SessionIndex(session, writer=True)  # recovery: temp files gone, one file per table
    try:
        assert temp_files(session) == []
        assert len(visible_parquet(session, "scores")) == 1
        assert len(writer.scores()) == len(scores)
        fid = writer.next_frame_id()
        assert fid == f"F{len(got) + 1:04d}"
        writer.append_frames([frame_row(fid)])
        ids = writer.frames()["id"]
        assert ids.is_unique and len(ids) == len(got) + 1
    finally:
        writer.close()


def test_reader_process_view_only_grows_while_a_process_writes_and_compacts(session: Path, tmp_path: Path):
    side = tmp_path / "side.txt"
    child = spawn("steady", session, side, "150")
    seen_counts: list[int] = []
    reader = SessionIndex(session)  # one long-lived reader (with its cache) and fresh ones
    try:
        last_rows = last_frames = 0
        deadline = time.monotonic() + 120
        while True:
            finished = child.poll() is not None
            assert time.monotonic() < deadline, "the writer child did not finish in 120 s"
            for r in (reader, SessionIndex(session)):
                scores, frames = r.scores(), r.frames()
                n, m = len(scores), len(frames)
                assert n >= last_rows and m >= last_frames, "a table shrank"
                assert scores["frame_index"].tolist() == list(range(n)), "rows missing or counted twice"
                assert frames["id"].tolist() == [f"F{i:04d}" for i in range(1, m + 1)]
                last_rows, last_frames = n, m
                seen_counts.append(n)
            if finished:
                break
    finally:
        if child.poll() is None:
            child.kill()
        child.wait(timeout=30)
    assert child.returncode == 0, child_error(side)
    rows, frames, _, compactions = side_lines(side)[-1]
    assert (last_rows, last_frames) == (int(rows), int(frames))
    assert int(compactions) >= 3  # the reads really crossed compactions
    assert len(set(seen_counts)) >= 5  # and really overlapped the writing
    assert len(visible_parquet(session, "scores")) == 1  # closed: compacted into one file


def test_reader_thread_sees_growing_tables_through_live_compaction(session: Path, monkeypatch):
    """Each live compaction pauses right after its merged file is in place, before the parts it
    covers are deleted, until a reader has listed and read the table in that state."""
    from cht_lab.index import store as index_store

    window: queue.Queue[str] = queue.Queue()
    resume: queue.Queue[bool] = queue.Queue()
    pausing = threading.Event()
    pausing.set()
    write = index_store.write_parquet

    def write_then_pause(final: Path, table: pa.Table, **kw) -> None:
        write(final, table, **kw)
        if final.name.startswith("compact-") and pausing.is_set():
            window.put(final.name)
            resume.get(timeout=30)

    monkeypatch.setattr(index_store, "write_parquet", write_then_pause)
    writer = SessionIndex(session, writer=True, flush_interval=0.05, compact_parts=4, compact_files=2)
    stop = threading.Event()
    problems: list[str] = []
    counts: list[int] = []
    mid_compaction_reads = []

    def check(r: SessionIndex, last: int) -> int:
        df = r.scores()
        if len(df) < last:
            problems.append(f"shrank {last} -> {len(df)}")
        if df["frame_index"].tolist() != list(range(len(df))):
            problems.append(f"not complete at {len(df)} rows")
        counts.append(len(df))
        return len(df)

    def read_loop() -> None:
        last = 0
        while not stop.is_set():
            try:
                name = window.get_nowait()
            except queue.Empty:
                name = None
            if name is not None:  # merged file and the parts it covers, side by side
                covered = [p for p in visible_parquet(session, "scores") if p.name != name]
                last = check(SessionIndex(session), last)
                mid_compaction_reads.append((name, len(covered)))
                resume.put(True)
            for r in (writer, SessionIndex(session)):  # the writer's own view and a separate reader
                last = check(r, last)

    t = threading.Thread(target=read_loop)
    t.start()
    try:
        for i in range(60):
            writer.append_scores(score_cols(i * 30, 30))
            writer.flush()
        wait_for(lambda: len(mid_compaction_reads) >= 3, 30, "reads in the middle of three compactions")
    finally:
        pausing.clear()
        stop.set()
        resume.put(True)
        t.join(timeout=30)
    writer.close()
    assert not problems, problems[:5]
    assert any(covered for _, covered in mid_compaction_reads)  # the covered parts were really there
    assert len(set(counts)) >= 5
    assert len(SessionIndex(session).scores()) == 1800


# ----------------------------------------------------------------------------- round trips, dtypes


def test_round_trip_of_every_column_and_dtype(session: Path):
    with SessionIndex(session, writer=True) as idx:
        idx.append_frames([frame_row(idx.next_frame_id()), frame_row(idx.next_frame_id(), kind="manual",
                                                                       sent_to_agent=True, score=0.125)])
        idx.append_audio([audio_row(idx.next_chunk_id())])
        idx.append_scores(score_cols(0, 45))
        idx.append_scores(pd.DataFrame(score_cols(45, 15)))
        idx.append_scores(pa.table(score_cols(60, 15)))
    idx = SessionIndex(session)
    frames, scores, audio = idx.frames(), idx.scores(), idx.audio()

    assert frames["id"].tolist() == ["F0001", "F0002"]
    first = frames.iloc[0]
    want = frame_row("F0001")
    for key in ("ts", "pts", "segment", "frame_index", "score", "metric", "threshold", "kind", "path", "width",
                "height", "bytes", "sent_to_agent"):
        assert first[key] == want[key], key
    assert first["captured_at"] == pd.Timestamp(want["captured_at"])
    assert str(frames["captured_at"].dtype).endswith("UTC]")
    assert frames.iloc[1]["kind"] == "manual" and bool(frames.iloc[1]["sent_to_agent"]) is True

    assert audio.iloc[0].to_dict() == audio_row("chunk_0000")

    expect = pd.concat([pd.DataFrame(score_cols(s, n)) for s, n in ((0, 45), (45, 15), (60, 15))], ignore_index=True)
    assert list(scores.columns) == ["segment", "frame_index", "pts", "ts", "score", "ssim"]
    assert scores["ssim"].dtype == np.float32 and scores["score"].dtype == np.float32
    assert scores["segment"].dtype == np.int32 and scores["frame_index"].dtype == np.int64
    np.testing.assert_array_equal(scores["frame_index"], expect["frame_index"])
    np.testing.assert_array_equal(scores["pts"], expect["pts"])  # float64 kept bit-exact
    np.testing.assert_array_equal(scores["ssim"], expect["ssim"].astype(np.float32))

    for table, schema in (("frames", FRAMES_SCHEMA), ("scores", SCORES_SCHEMA), ("audio", AUDIO_SCHEMA)):
        stored = pq.read_table(visible_parquet(session, table)[0]).schema
        for field in schema:
            assert stored.field(field.name).type == field.type, (table, field.name)


def test_empty_tables_have_the_same_dtypes_and_a_reader_writes_nothing(session: Path, tmp_path: Path):
    empty = SessionIndex(session)
    assert not (session / "index").exists()
    full_dir = tmp_path / "20240301_110000"
    full_dir.mkdir()
    with SessionIndex(full_dir, writer=True) as w:
        w.append_frames([frame_row("F0001")])
        w.append_audio([audio_row("chunk_0000")])
        w.append_scores({k: v for k, v in score_cols(0, 3).items() if k != "ssim"})
    full = SessionIndex(full_dir)
    for name in ("frames", "scores", "audio"):
        e, f = empty.table(name), full.table(name)
        assert len(e) == 0 and len(f) > 0
        assert e.dtypes.to_dict() == f.dtypes.to_dict(), name
    assert read_table(full_dir, "scores").equals(full.scores())
    assert not (session / "index").exists()
    assert empty.metadata()["session_id"] == session.name
    assert empty.metadata()["schema_version"] == SCHEMA_VERSION


def test_scores_are_flushed_by_the_timer_and_a_failing_flush_is_reported_then_recovered(session: Path):
    idx = SessionIndex(session, writer=True, flush_interval=0.2)
    try:
        idx.append_scores(score_cols(0, 30))
        reader = SessionIndex(session)
        wait_for(lambda: len(reader.scores()) == 30, 10, "the timer to flush the buffered scores")

        scores_dir = session / "index" / "scores"
        moved = scores_dir.with_name("scores-away")
        scores_dir.rename(moved)
        scores_dir.write_text("not a directory")  # every part write now fails
        idx.append_scores(score_cols(30, 30))
        wait_for(lambda: idx.health()["last_error"], 10, "the flush failure to be reported")
        health = idx.health()
        assert "flush" in health["last_error"] and idx.last_error == health["last_error"]
        assert health["flush_thread_alive"] and health["buffered_rows"] == 30

        scores_dir.unlink()
        moved.rename(scores_dir)
        wait_for(lambda: len(reader.scores()) == 60, 10, "the buffered rows after the disk came back")
        assert idx.health()["buffered_rows"] == 0
    finally:
        idx.close()
    assert SessionIndex(session).scores()["frame_index"].tolist() == list(range(60))


def test_frame_ids_continue_after_reopen_and_never_repeat(session: Path):
    with SessionIndex(session, writer=True) as idx:
        ids = [idx.next_frame_id() for _ in range(3)]
        assert ids == ["F0001", "F0002", "F0003"]
        idx.append_frames([frame_row(ids[0]), frame_row(ids[1])])  # F0003 reserved, never stored
        assert idx.next_chunk_id() == "chunk_0000"
        with pytest.raises(IndexSchemaError, match="F0001"):
            idx.append_frames([frame_row("F0001")])
    (session / "frames").mkdir()
    (session / "frames" / "F0007.jpg").write_bytes(b"saved just before a crash")
    with SessionIndex(session, writer=True) as idx:
        assert idx.next_frame_id() == "F0008"  # after the table's ids and the files on disk
        assert idx.next_chunk_id() == "chunk_0000"


def test_clear_and_metadata(session: Path):
    with SessionIndex(session, writer=True) as idx:
        idx.append_scores(score_cols(0, 90))
        idx.flush()
        idx.update_metadata(backend="cpu", segments=[{"index": 0, "path": "stream/a.mp4", "offset": 0.0}],
                            source=session / "stream")
        idx.clear("scores")
        assert len(idx.scores()) == 0
        idx.append_scores(score_cols(0, 10))
        with pytest.raises(TypeError, match="bad"):
            idx.update_metadata(bad=object())
    meta = SessionIndex(session).metadata()
    assert meta["backend"] == "cpu" and meta["segments"][0]["offset"] == 0.0
    assert meta["source"] == str(session / "stream")
    assert meta["session_id"] == session.name and meta["start_time"] == "2024-03-01T10:15:00"
    assert meta["schema_version"] == SCHEMA_VERSION and meta["package_version"]
    json.loads((session / "index" / "session.json").read_text())
    assert len(SessionIndex(session).scores()) == 10


def test_read_only_index_refuses_writes(session: Path):
    idx = SessionIndex(session)
    for call in (lambda: idx.append_frames([frame_row("F0001")]), lambda: idx.append_scores(score_cols(0, 1)),
                 idx.next_frame_id, lambda: idx.update_metadata(a=1), idx.flush):
        with pytest.raises(IndexReadOnlyError, match="read-only"):
            call()


# ----------------------------------------------------------------------------- paths, bad rows


def test_paths_are_stored_relative_and_kept_inside_the_session(session: Path, tmp_path: Path):
    with SessionIndex(session, writer=True) as idx:
        idx.append_frames([frame_row("F0001", path=str(session / "frames" / "F0001.jpg"))])
        with pytest.raises(IndexSchemaError, match="outside the session"):
            idx.append_frames([frame_row("F0002", path=str(tmp_path / "elsewhere.jpg"))])
        with pytest.raises(IndexSchemaError, match="outside the session"):
            idx.append_frames([frame_row("F0002", path="../escape.jpg")])
        with pytest.raises(IndexSchemaError, match="kind"):
            idx.append_frames([frame_row("F0002", kind="cut")])
        with pytest.raises(IndexSchemaError, match="width"):
            idx.append_frames([frame_row("F0002", width="wide")])
        with pytest.raises(IndexSchemaError, match="unknown keys"):
            idx.append_frames([{**frame_row("F0002"), "colour": "red"}])
        with pytest.raises(IndexSchemaError, match="missing columns ts"):
            idx.append_scores({k: v for k, v in score_cols(0, 3).items() if k != "ts"})
        with pytest.raises(IndexSchemaError, match="label"):
            idx.append_scores({**score_cols(0, 2), "label": np.array(["a", "b"])})
    assert SessionIndex(session).frames()["path"].tolist() == ["frames/F0001.jpg"]
    assert [p.name for p in tmp_path.iterdir()] == [session.name]  # nothing written outside the session


# ----------------------------------------------------------------------------- legacy import


def _jpeg(path: Path, size=(64, 48)) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (200, 30, 30)).save(path, "JPEG")


def test_legacy_import_is_relative_complete_and_idempotent(session: Path):
    frames = session / "frames"
    _jpeg(frames / "F0001.jpg")
    _jpeg(frames / "F0002.jpg", (32, 24))
    start = datetime(2024, 3, 1, 10, 15, 0)
    legacy = [
        {"id": "F0001", "timestamp": 3.5, "path": str(frames / "F0001.jpg"), "sent_to_agent": True},
        {"id": "F0002", "timestamp": (start + timedelta(seconds=61.25)).isoformat(),
         "path": "/old/machine/sessions/20240301_101500/frames/F0002.jpg", "sent_to_agent": False},
    ]
    (frames / "index.json").write_text(json.dumps(legacy))
    with SessionIndex(session, writer=True) as idx:
        assert idx.import_legacy() == 2
        assert idx.import_legacy(frames / "index.json") == 0  # idempotent
        assert idx.next_frame_id() == "F0003"
    got = SessionIndex(session).frames()
    assert got["id"].tolist() == ["F0001", "F0002"]
    assert got["path"].tolist() == ["frames/F0001.jpg", "frames/F0002.jpg"]  # the moved session's path too
    assert got["ts"].tolist() == [3.5, 61.25]
    assert got["sent_to_agent"].tolist() == [True, False]
    assert got[["width", "height"]].values.tolist() == [[64, 48], [32, 24]]
    assert got["bytes"].tolist() == [(frames / f).stat().st_size for f in ("F0001.jpg", "F0002.jpg")]
    assert got["captured_at"].iloc[0] == pd.Timestamp(start.astimezone(timezone.utc) + timedelta(seconds=3.5))
    assert got["segment"].dtype == np.int32 and got["frame_index"].dtype == np.int64  # unknown -> -1, not NaN
    assert math.isnan(got["score"].iloc[0])


def test_legacy_frames_are_placed_on_the_segments_of_the_timeline(session: Path):
    from conftest import make_clip

    stream = session / "stream"
    stream.mkdir()
    make_clip(stream / "20240301_101500.mp4", seconds=2.0, size="160x120", fps=30, audio=False)
    make_clip(stream / "20240301_101510.mp4", seconds=2.0, size="160x120", fps=30, audio=False)
    legacy = [{"id": "F0001", "timestamp": 1.0, "path": str(session / "frames" / "F0001.jpg"), "sent_to_agent": True},
              {"id": "F0002", "timestamp": 11.5, "path": str(session / "frames" / "F0002.jpg"),
               "sent_to_agent": False}]
    (session / "frames").mkdir()
    (session / "frames" / "index.json").write_text(json.dumps(legacy))
    with SessionIndex(session, writer=True) as idx:
        assert idx.import_legacy() == 2
        segments = idx.metadata()["segments"]
    assert [(s["path"], s["offset"]) for s in segments] == [("stream/20240301_101500.mp4", 0.0),
                                                            ("stream/20240301_101510.mp4", 10.0)]
    got = SessionIndex(session).frames()
    assert got[["segment", "pts", "frame_index"]].values.tolist() == [[0, 1.0, 30], [1, 1.5, 45]]
    assert got["width"].tolist() == [-1, -1]  # the JPEGs are gone: unknown, not an error


@pytest.mark.parametrize("content, reason", [
    ("[{\"id\": \"F0001\", \"timestamp\": 1.0,", "not valid JSON"),
    ("{\"a\": 1}", "expected a list"),
    ("[{\"id\": \"F0001\", \"timestamp\": 1.0, \"path\": \"frames/F0001.jpg\"}, {\"id\": \"F0002\", "
     "\"timestamp\": \"soon\", \"path\": \"frames/F0002.jpg\"}]", "row 1: timestamp 'soon'"),
    ("[{\"timestamp\": 1.0, \"path\": \"x.jpg\"}]", "row 0: id"),
])
def test_legacy_import_names_the_file_and_the_reason(session: Path, content: str, reason: str):
    bad = session / "frames" / "index.json"
    bad.parent.mkdir()
    bad.write_text(content)
    with SessionIndex(session, writer=True) as idx:
        with pytest.raises(LegacyIndexError) as err:
            idx.import_legacy()
        assert str(bad) in str(err.value) and reason in str(err.value)
        assert len(idx.frames()) == 0


# ----------------------------------------------------------------------------- export


def test_export_parquet_and_csv_atomically_and_never_into_the_index(session: Path, tmp_path: Path):
    with SessionIndex(session, writer=True) as idx:
        idx.append_frames([frame_row("F0001"), frame_row("F0002", kind="manual")])
        idx.append_scores(score_cols(0, 20))
        pq_path = idx.export("exports/frames.parquet")
        csv_path = idx.export("scores.csv", format="csv", table="scores")
        outside = idx.export(tmp_path / "abs" / "frames.csv", format="CSV")
        assert pq_path == session / "exports" / "frames.parquet"
        pd.testing.assert_frame_equal(pd.read_parquet(pq_path), idx.frames(), check_dtype=False)
        back = pd.read_csv(csv_path)
        assert back["frame_index"].tolist() == list(range(20)) and "ssim" in back.columns
        assert pd.read_csv(outside)["id"].tolist() == ["F0001", "F0002"]
        with pytest.raises(ValueError, match="unknown export format 'xlsx'"):
            idx.export("frames.xlsx", format="xlsx")
        with pytest.raises(ValueError, match="index"):
            idx.export("index/frames/sneaky.parquet")
        with pytest.raises(ValueError, match="inside the session directory"):
            idx.export("../escape.csv", format="csv")
        with pytest.raises(ValueError, match="unknown index table"):
            idx.export("x.parquet", table="nope")
    assert not [p for p in session.rglob(".*") if p.name.endswith(".tmp")]


# ----------------------------------------------------------------------------- locking


def test_second_writer_is_refused_and_a_dead_writers_lock_is_taken_over(session: Path, tmp_path: Path):
    first = SessionIndex(session, writer=True)
    with pytest.raises(IndexLockedError) as err:
        SessionIndex(session, writer=True)
    assert str(session) in str(err.value) and str(os.getpid()) in str(err.value)
    first.close()

    side = tmp_path / "side.txt"
    child = spawn("hold", session, side, stdin=subprocess.PIPE)
    try:
        wait_for(lambda: side.exists() and "ready" in side.read_text(), 60, "the child to take the lock")
        with pytest.raises(IndexLockedError) as err:
            SessionIndex(session, writer=True)
        assert err.value.pid == child.pid and f"pid {child.pid}" in str(err.value)
        assert str(session) in str(err.value)
    finally:
        child.kill()  # dies holding the lock: stale
        child.wait(timeout=30)
    lock = session / "index" / "writer.lock"
    assert json.loads(lock.read_text())["pid"] == child.pid  # the dead writer's pid is still recorded
    with SessionIndex(session, writer=True) as idx:
        assert json.loads(lock.read_text())["pid"] == os.getpid()
        idx.append_frames([frame_row("F0001")])
    SessionIndex(session, writer=True).close()  # released on close


def test_the_lock_records_the_holders_start_time_so_a_reused_pid_is_not_taken_for_it(session: Path):
    from cht_lab.index.lock import holder_alive, process_start

    with SessionIndex(session, writer=True):
        holder = json.loads((session / "index" / "writer.lock").read_text())
    assert holder["pid"] == os.getpid() and holder["started"] == process_start(os.getpid())
    if holder["started"] is not None:  # Linux: /proc tells when a process started
        assert holder_alive(os.getpid(), holder["started"])
        assert not holder_alive(os.getpid(), holder["started"] + 1), "same pid, another process: not the holder"
    assert (session / "index" / "writer.lock").read_text() == ""  # released: nobody is named


# ----------------------------------------------------------------------------- the atomic writer, the protocol


def test_write_atomic_takes_bytes_a_file_callback_or_a_path_callback_and_leaves_nothing_on_failure(tmp_path: Path):
    from cht_lab.atomic import is_temp, write_atomic

    table = pa.table({"x": [1, 2, 3]})
    assert write_atomic(tmp_path / "a.bin", b"abc") == tmp_path / "a.bin"
    write_atomic(tmp_path / "b.parquet", lambda f: pq.write_table(table, f))  # a binary file object
    write_atomic(tmp_path / "c.parquet", lambda p: pq.write_table(table, str(p)), to_path=True)  # a path
    write_atomic(tmp_path / "sub" / "d.csv", lambda f: f.write("é,1\n"), text=True, mkdir=True)
    assert (tmp_path / "a.bin").read_bytes() == b"abc"
    assert pq.read_table(tmp_path / "b.parquet").equals(table) and pq.read_table(tmp_path / "c.parquet").equals(table)
    assert (tmp_path / "sub" / "d.csv").read_text(encoding="utf-8") == "é,1\n"

    with pytest.raises(FileExistsError):
        write_atomic(tmp_path / "a.bin", b"new", overwrite=False)
    write_atomic(tmp_path / "a.bin", b"new")  # overwrite is the default
    assert (tmp_path / "a.bin").read_bytes() == b"new"

    def half_then_fail(f):
        f.write(b"half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        write_atomic(tmp_path / "a.bin", half_then_fail)
    assert (tmp_path / "a.bin").read_bytes() == b"new"  # the old file, whole
    leftovers = [p.name for p in tmp_path.rglob("*") if is_temp(p.name)]
    assert leftovers == []


def test_session_index_is_an_index_writer_and_cht_lab_index_exports_lazily(session: Path):
    import cht_lab.index as index_pkg
    from cht_lab.index import IndexLockedError as Locked, IndexWriter, SessionIndex as Lazy

    assert Lazy is SessionIndex and Locked is IndexLockedError
    with SessionIndex(session, writer=True) as idx:
        assert isinstance(idx, IndexWriter)
    assert {"IndexWriter", "SessionIndex", "IndexLockedError"} <= set(dir(index_pkg))
    names = {n for n in dir(IndexWriter) if not n.startswith("_")}
    assert names == {"append_scores", "append_frames", "append_audio", "next_frame_id", "next_chunk_id", "flush",
                     "scores", "audio", "clear"}


# ----------------------------------------------------------------------------- corruption, temp files


def test_a_corrupt_part_is_skipped_then_quarantined_and_temp_files_are_cleaned(session: Path, caplog):
    with SessionIndex(session, writer=True) as idx:
        idx.append_frames([frame_row("F0001")])
        idx.append_frames([frame_row("F0002")])
    frames_dir = session / "index" / "frames"
    (good,) = visible_parquet(session, "frames")
    seq = int(good.stem.split("-")[-1])
    # a part torn by power loss, then a good one written after it (a crash of a writer that
    # did not fsync before renaming), and a temp file a crash left behind
    data = good.read_bytes()
    (frames_dir / f"part-{seq + 1:08d}.parquet").write_bytes(data[: len(data) // 2])
    pq.write_table(pa.Table.from_pylist([frame_row("F0003")], schema=FRAMES_SCHEMA),
                   frames_dir / f"part-{seq + 2:08d}.parquet")
    (frames_dir / f".part-{seq + 3:08d}.parquet.999.abcd.tmp").write_bytes(b"half")

    with caplog.at_level(logging.WARNING, logger="cht_lab.index.store"):
        got = SessionIndex(session).frames()
    assert got["id"].tolist() == ["F0001", "F0002", "F0003"]
    assert f"part-{seq + 1:08d}.parquet" in caplog.text

    with SessionIndex(session, writer=True) as idx:
        assert idx.frames()["id"].tolist() == ["F0001", "F0002", "F0003"]
        assert idx.next_frame_id() == "F0004"
    quarantined = list((session / "index" / "quarantine").iterdir())
    assert len(quarantined) == 1 and f"part-{seq + 1:08d}" in quarantined[0].name
    assert len(visible_parquet(session, "frames")) == 1 and temp_files(session) == []
    assert SessionIndex(session).frames()["id"].tolist() == ["F0001", "F0002", "F0003"]


# ----------------------------------------------------------------------------- other readers


def test_duckdb_polars_and_pyarrow_read_the_part_files_as_they_are(session: Path):
    duckdb = pytest.importorskip("duckdb")
    pl = pytest.importorskip("polars")
    idx = SessionIndex(session, writer=True, compact_parts=1000)
    try:
        for i in range(5):  # five part files, no compaction yet
            idx.append_scores(score_cols(i * 30, 30))
            idx.flush()
        idx.append_frames([frame_row("F0001")])
        (session / "index" / "scores" / ".part-00000099.parquet.1.ab.tmp").write_bytes(b"torn")  # a writer mid-write
        assert len(visible_parquet(session, "scores")) == 5
        for when in ("live", "closed"):
            glob = str(session / "index" / "scores" / "*.parquet")
            (n_duck,) = duckdb.sql(f"select count(*), sum(frame_index) from '{glob}'").fetchall()
            assert n_duck == (150, sum(range(150))), when
            assert pl.read_parquet(glob).height == 150
            assert ds.dataset(session / "index" / "scores", format="parquet").count_rows() == 150
            frames_glob = str(session / "index" / "frames" / "*.parquet")
            assert duckdb.sql(f"select id from '{frames_glob}'").fetchall() == [("F0001",)]
            assert pl.read_parquet(frames_glob)["captured_at"].dtype == pl.Datetime("us", "UTC")
            if when == "live":
                idx.close()
    finally:
        idx.close()
