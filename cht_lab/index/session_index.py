"""The session index: Parquet tables of frames, scores and audio chunks, plus session metadata.

    idx = SessionIndex(session_dir, writer=True)   # one writer per session, by a lock file
    idx.append_scores(cols)                         # buffered; a timer thread flushes every second
    fid = idx.next_frame_id()                       # "F0001", never repeats, continues after reopen
    idx.append_frames([row])                        # durable when it returns
    idx.close()                                     # flush + compact + release the lock
    SessionIndex(session_dir).scores()              # a reader, in any thread or process, any time

Why this shape: Parquet files are immutable, so appending means writing new small files; readers
must never see half a file or a row twice, and a crash must lose at most the unflushed second of
scores. Each table is a folder of complete files (see index_store for the naming protocol that
keeps reads consistent across compaction); the folders are plain Parquet datasets, so DuckDB,
Polars and pyarrow read `index/<table>/*.parquet` directly. Metadata is small JSON, replaced
atomically.

Layout::

    <session>/index/
      writer.lock        flock()ed by the live writer; holds its pid for the "locked by" message
      session.json       metadata: session id, start time, segments, backend, versions, ...
      frames/ scores/ audio/   part-NNNNNNNN.parquet (one flush), compact-LO-HI.parquet (merged)
      quarantine/        unreadable files moved aside by a writer (never read again)
"""

from __future__ import annotations

import atexit
import collections
import copy
import errno
import fcntl
import json
import logging
import os
import threading
import time
import weakref
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from cht_lab._version import __version__
from cht_lab.index.legacy import LegacyIndexError, load_legacy_rows, session_relative
from cht_lab.index.schema import (
    AUDIO_SCHEMA,
    CHUNK_ID_RE,
    FRAME_ID_RE,
    FRAMES_SCHEMA,
    SCHEMA_VERSION,
    SCORES_SCHEMA,
    TABLES,
    IndexSchemaError,
    columns_to_table,
    concat,
    max_id,
    rows_to_table,
    spec_for,
    to_pandas,
    unsafe_id,
)
from cht_lab.index.store import (
    QUARANTINE_DIR,
    DataFile,
    TableStore,
    is_temp,
    list_files,
    maximal,
    part_name,
    pid_alive,
    read_holder,
    write_atomic,
    write_holder,
    write_json_atomic,
)

log = logging.getLogger(__name__)

INDEX_DIR = "index"
METADATA_FILE = "session.json"
LOCK_FILE = "writer.lock"
EXPORT_FORMATS = ("parquet", "csv")
_MAX_ERRORS = 20

__all__ = [
    "SessionIndex", "IndexLockedError", "IndexReadOnlyError", "IndexSchemaError", "LegacyIndexError",
    "FRAMES_SCHEMA", "SCORES_SCHEMA", "AUDIO_SCHEMA", "SCHEMA_VERSION", "read_table",
]


class IndexLockedError(RuntimeError):
    """Another writer holds the session's index; names the session directory and its pid."""

    def __init__(self, session_dir: str | os.PathLike[str], pid: int | None, host: str | None = None):
        self.session_dir = Path(session_dir)
        self.pid = pid
        self.host = host
        if pid is None:
            who = "another writer (pid unknown)"
        elif pid == os.getpid() and host in (None, _HOST):
            who = f"another SessionIndex in this process (pid {pid}); close it first"
        elif host not in (None, _HOST):
            who = f"pid {pid} on host {host}"
        elif pid_alive(pid):
            who = f"pid {pid}"
        else:
            who = (f"pid {pid}, which is not running; a process it started may have inherited the lock "
                   "and still hold it")
        super().__init__(f"{self.session_dir}: the index is already being written by {who}. "
                         "Readers need no lock: SessionIndex(session_dir) reads while it writes.")


class IndexReadOnlyError(RuntimeError):
    """A write was asked of a read-only (or closed) SessionIndex."""


def _hostname() -> str:
    import socket

    return socket.gethostname()


_HOST = _hostname()
_OPEN_WRITERS: "weakref.WeakSet[SessionIndex]" = weakref.WeakSet()


class SessionIndex:
    """Frames, scores and audio tables of one session directory (see the module docstring).

    writer=False (the default) opens a reader: no lock, no writes, never creates files.
    writer=True takes the session's writer lock, cleans up after a crashed writer (temp files,
    unreadable parts -> quarantine/), compacts, and starts the flush timer thread.
    """

    def __init__(self, session_dir: str | os.PathLike[str], writer: bool = False, *,
                 flush_interval: float = 1.0, compact_parts: int = 64, compact_files: int = 8):
        self.session_dir = Path(session_dir).expanduser().resolve()
        self.index_dir = self.session_dir / INDEX_DIR
        self.writer = bool(writer)
        self.flush_interval = float(flush_interval)
        self.compact_parts = max(2, int(compact_parts))
        self.compact_files = max(2, int(compact_files))
        self.last_error: str | None = None
        self._errors: collections.deque[dict[str, Any]] = collections.deque(maxlen=_MAX_ERRORS)
        self._stores = {name: TableStore(self.index_dir, spec) for name, spec in TABLES.items()}
        self._closed = False
        self._pid = os.getpid()
        self._lock_fd: int | None = None
        self._thread: threading.Thread | None = None
        self._stats = {"flushes": 0, "flushed_rows": 0, "last_flush_at": None, "compactions": 0}
        if self.writer:
            self._open_writer()

    def __repr__(self) -> str:
        mode = "writer" if self.writer else "reader"
        return f"SessionIndex({str(self.session_dir)!r}, {mode}{', closed' if self._closed else ''})"

    def __enter__(self) -> "SessionIndex":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ================================================================== opening a writer

    def _open_writer(self) -> None:
        self._table_locks = {name: threading.RLock() for name in TABLES}
        self._buf_lock = threading.Lock()
        self._buf: list[pa.Table] = []
        self._buf_rows = 0
        self._buf_since: float | None = None
        self._id_lock = threading.Lock()
        self._meta_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._next_seq: dict[str, int] = {}
        self.index_dir.mkdir(parents=True, exist_ok=True)
        self._acquire_lock()
        try:
            self._remove_temp_files(self.index_dir)
            self._meta = self._load_metadata_for_writer()
            for name, store in self._stores.items():
                store.recover()
                self._next_seq[name] = store.next_seq()
                self._compact_table(name, validate=True)
            frames = self._stores["frames"].read()
            audio = self._stores["audio"].read()
            self._frame_ids = set(frames.column("id").to_pylist())
            self._chunk_ids = set(audio.column("id").to_pylist())
            self._next_frame = max(max_id(self._frame_ids, FRAME_ID_RE) or 0,
                                   self._max_file_number(self.session_dir / "frames", FRAME_ID_RE)) + 1
            last_chunk = max_id(self._chunk_ids, CHUNK_ID_RE)
            last_file = self._max_file_number(self.session_dir / "audio", CHUNK_ID_RE, default=-1)
            self._next_chunk = max(-1 if last_chunk is None else last_chunk, last_file) + 1
            self._write_metadata({**self._meta, **self._named_segments(), "package_version": __version__,
                                  "schema_version": SCHEMA_VERSION, "opened_at": _now_iso()})
        except BaseException:
            self._release_lock()
            raise
        _OPEN_WRITERS.add(self)
        self._thread = threading.Thread(target=self._flush_loop, name=f"index-flush:{self.session_dir.name}",
                                        daemon=True)
        self._thread.start()

    def _acquire_lock(self) -> None:
        path = self.index_dir / LOCK_FILE
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = read_holder(fd)
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            raise IndexLockedError(self.session_dir, holder.get("pid"), holder.get("host")) from None
        previous = read_holder(fd)
        old_pid = previous.get("pid")
        if isinstance(old_pid, int) and old_pid != os.getpid() and previous.get("host") in (None, _HOST):
            state = "still running (it released the lock)" if pid_alive(old_pid) else "no longer running"
            log.info("%s: taking over the index lock last held by pid %s (%s)", self.session_dir, old_pid, state)
        try:
            write_holder(fd)
        except OSError as exc:
            log.warning("%s: could not record this writer's pid in %s: %s", self.session_dir, path, exc)
        self._lock_fd = fd

    def _release_lock(self) -> None:
        fd, self._lock_fd = self._lock_fd, None
        if fd is None:
            return
        try:
            os.ftruncate(fd, 0)
        except OSError:
            pass
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def _after_fork_in_child(self) -> None:
        """A forked child inherits the lock's file descriptor; close its copy (without unlocking,
        which would release the parent's lock too) and make this copy unusable for writing."""
        if self._lock_fd is not None:
            try:
                os.close(self._lock_fd)
            except OSError:
                pass
            self._lock_fd = None
        self._closed = True

    def _remove_temp_files(self, directory: Path) -> None:
        for name in os.listdir(directory):
            if is_temp(name):
                log.info("index: removing %s left by an interrupted write", directory / name)
                try:
                    (directory / name).unlink()
                except FileNotFoundError:
                    pass

    @staticmethod
    def _max_file_number(directory: Path, pattern: Any, default: int = 0) -> int:
        """Ids of files already on disk count as taken (a frame saved just before a crash)."""
        try:
            names = [os.path.splitext(n)[0] for n in os.listdir(directory)]
        except FileNotFoundError:
            return default
        found = max_id(names, pattern)
        return default if found is None else found

    # ================================================================== writing

    def _check_writable(self) -> None:
        if not self.writer:
            raise IndexReadOnlyError(f"{self.session_dir}: this SessionIndex is read-only; "
                                     "open it with SessionIndex(session_dir, writer=True) to write")
        if self._closed or os.getpid() != self._pid:
            raise IndexReadOnlyError(f"{self.session_dir}: this index writer is closed"
                                     + (" (it was opened in the parent process)" if os.getpid() != self._pid else ""))

    def append_scores(self, table: Any) -> None:
        """Buffer score rows (DataFrame, pyarrow Table or dict of arrays: segment, frame_index,
        pts, ts, score, plus float32 metric columns); they reach disk within flush_interval."""
        self._check_writable()
        data = columns_to_table(TABLES["scores"], table)
        if data.num_rows == 0:
            return
        with self._buf_lock:
            self._buf.append(data)
            self._buf_rows += data.num_rows
            if self._buf_since is None:
                self._buf_since = time.monotonic()
                self._wake.set()

    def append_frames(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Add captured frames; durable (fsynced part file) when this returns."""
        self._check_writable()
        rows = [self._with_session_paths(r, ("path",)) for r in rows]
        table = rows_to_table(TABLES["frames"], rows)
        self._append_unique("frames", table, self._frame_ids, FRAME_ID_RE)

    def append_audio(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Add audio chunks; durable when this returns."""
        self._check_writable()
        rows = [self._with_session_paths(r, ("path",), lenient=("source",)) for r in rows]
        table = rows_to_table(TABLES["audio"], rows)
        self._append_unique("audio", table, self._chunk_ids, CHUNK_ID_RE)

    def _with_session_paths(self, row: Mapping[str, Any], strict: tuple[str, ...],
                            lenient: tuple[str, ...] = ()) -> dict[str, Any]:
        if not isinstance(row, Mapping):
            return row  # type: ignore[return-value]  # rows_to_table names the problem
        row = dict(row)
        for key in strict + lenient:
            value = row.get(key)
            if value is None:
                continue
            rel = session_relative(value, self.session_dir)
            if rel is None:
                if key in strict:
                    raise IndexSchemaError(f"{key} {str(value)!r} is outside the session directory "
                                           f"{self.session_dir}; index paths stay inside it")
                row[key] = os.fspath(value)
            else:
                row[key] = rel
        return row

    def _append_unique(self, name: str, table: pa.Table, known: set[str], pattern: Any) -> None:
        if table.num_rows == 0:
            return
        ids = table.column("id").to_pylist()
        bad = [i for i in ids if unsafe_id(i)]
        if bad:
            raise IndexSchemaError(f"{name}: id {bad[0]!r} is not a plain file name (letters, digits, '_', '.', "
                                   "'-'; no leading dot); ids name files inside the session")
        with self._table_locks[name]:
            with self._id_lock:
                dup = sorted({i for i in ids if i in known} | {i for i in ids if ids.count(i) > 1})
            if dup:
                raise IndexSchemaError(f"{name}: id {', '.join(dup[:5])} already in {self.index_dir / name}")
            self._write_part(name, table)
            with self._id_lock:
                known.update(ids)
                top = max_id(ids, pattern)
                if top is not None and name == "frames":
                    self._next_frame = max(self._next_frame, top + 1)
                elif top is not None:
                    self._next_chunk = max(self._next_chunk, top + 1)

    def _write_part(self, name: str, table: pa.Table) -> None:
        """Write one part (caller holds the table lock); the sequence number advances only when the
        file is in place, so a failed write leaves no gap."""
        store = self._stores[name]
        seq = self._next_seq[name]
        try:
            store.write_part(seq, table)
        except Exception as exc:
            if (store.dir / part_name(seq)).exists():  # only the directory fsync failed: rows are there
                self._next_seq[name] = seq + 1
                self._record_error(f"{name} part {seq}", exc)
                return
            raise
        self._next_seq[name] = seq + 1

    def next_frame_id(self) -> str:
        """Reserve the next frame id ("F0001", ...); ids continue after a reopen and never repeat."""
        self._check_writable()
        with self._id_lock:
            n = self._next_frame
            self._next_frame += 1
        return f"F{n:04d}"

    def next_chunk_id(self) -> str:
        """Reserve the next audio chunk id ("chunk_0000", ...)."""
        self._check_writable()
        with self._id_lock:
            n = self._next_chunk
            self._next_chunk += 1
        return f"chunk_{n:04d}"

    def flush(self) -> int:
        """Write buffered score rows now (frames and audio are never buffered); returns the rows."""
        self._check_writable()
        try:
            return self._flush_scores()
        except Exception as exc:
            self._record_error("flush", exc)
            raise

    def _flush_scores(self) -> int:
        with self._table_locks["scores"]:
            with self._buf_lock:
                pending, rows = self._buf, self._buf_rows
                self._buf, self._buf_rows, self._buf_since = [], 0, None
            if not pending:
                return 0
            try:
                self._write_part("scores", concat(TABLES["scores"], pending))
            except BaseException:
                with self._buf_lock:  # keep the rows, in order, for the next try
                    self._buf[:0] = pending
                    self._buf_rows += rows
                    self._buf_since = time.monotonic()
                raise
        self._stats["flushes"] += 1
        self._stats["flushed_rows"] += rows
        self._stats["last_flush_at"] = time.time()
        return rows

    def _flush_loop(self) -> None:
        """The flush timer: scores reach disk within flush_interval of their first buffered row, and
        parts are merged as they pile up. Errors are logged and kept (last_error, health()); the
        loop goes on, so a full disk that frees up is recovered from."""
        try:
            while True:
                with self._buf_lock:
                    since = self._buf_since
                if since is not None and (time.monotonic() - since >= self.flush_interval or self._stop.is_set()):
                    try:
                        self._flush_scores()
                    except Exception as exc:
                        self._record_error("flush", exc)
                if self._stop.is_set():
                    return
                try:
                    self._compact_live()
                except Exception as exc:
                    self._record_error("compact", exc)
                with self._buf_lock:
                    since = self._buf_since
                timeout = (self.flush_interval if since is None
                           else max(0.0, since + self.flush_interval - time.monotonic()))
                self._wake.wait(timeout)
                self._wake.clear()
        except BaseException as exc:  # not even this may pass silently
            self._record_error("flush thread", exc)
            log.critical("index flush thread for %s died; scores are no longer flushed", self.session_dir)

    # ================================================================== compaction

    def compact(self) -> None:
        """Flush, then merge each table's files into one (atomically: readers keep reading)."""
        self._check_writable()
        self.flush()
        for name in TABLES:
            self._compact_table(name)

    def _compact_table(self, name: str, *, validate: bool = False) -> None:
        store = self._stores[name]
        with self._table_locks[name]:
            files = maximal(list_files(store.dir))
            if validate:  # a writer opening: read everything once, which finds unreadable files
                for f in files:
                    store._load_for_compaction(f)
            if not files:
                return
            if len(files) == 1 and files[0].lo == 1 and files[0].name not in store.corrupt:
                return
            self._merge(name, files)

    def _merge(self, name: str, files: list[DataFile], *, empty: bool = False) -> None:
        seq = self._next_seq[name]
        self._stores[name].compact(files, seq, empty=empty)
        self._next_seq[name] = seq + 1
        self._stats["compactions"] += 1

    def _compact_live(self) -> None:
        """Bound the number of files while live: merge the trailing parts once there are
        compact_parts of them, and everything once there are compact_files merged files."""
        for name, store in self._stores.items():
            files = maximal(list_files(store.dir))
            parts = [f for f in files if f.is_part]
            if len(parts) < self.compact_parts:
                continue
            with self._table_locks[name]:
                files = maximal(list_files(store.dir))
                parts = [f for f in files if f.is_part]
                if len(parts) < self.compact_parts:
                    continue
                runs = len(files) - len(parts)
                tail_ok = files[-len(parts):] == parts
                self._merge(name, files if runs + 1 >= self.compact_files or not tail_ok else parts)

    def clear(self, table: str) -> None:
        """Remove every row of a table (one atomic step for readers: an empty file covering all)."""
        self._check_writable()
        spec_for(table)
        with self._table_locks[table]:
            if table == "scores":
                with self._buf_lock:
                    self._buf, self._buf_rows, self._buf_since = [], 0, None
            files = maximal(list_files(self._stores[table].dir))
            self._merge(table, files, empty=True)
            with self._id_lock:
                if table == "frames":
                    self._frame_ids.clear()  # ids already handed out are still never reused
                elif table == "audio":
                    self._chunk_ids.clear()

    def close(self) -> None:
        """Flush, stop the timer, compact, release the lock. Safe to call twice. Raises the first
        error (after releasing the lock) if buffered rows could not be written."""
        if self._closed:
            return
        if not self.writer or os.getpid() != self._pid:
            self._closed = True
            return
        first: BaseException | None = None
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30.0)
        try:
            self._flush_scores()
        except Exception as exc:
            self._record_error("flush", exc)
            first = exc
        for name in TABLES:
            try:
                self._compact_table(name)
            except Exception as exc:
                self._record_error(f"compact {name}", exc)
        try:
            with self._meta_lock:
                self._write_metadata({**self._meta, **self._named_segments(), "closed_at": _now_iso()})
        except Exception as exc:
            self._record_error("metadata", exc)
        self._closed = True
        _OPEN_WRITERS.discard(self)
        self._release_lock()
        if first is not None:
            raise first

    # ================================================================== reading

    def table(self, name: str) -> pd.DataFrame:
        """One table as a DataFrame ("frames", "scores" or "audio")."""
        spec = spec_for(name)
        return to_pandas(spec, self._stores[name].read())

    def frames(self) -> pd.DataFrame:
        """Captured frames, by id."""
        return self.table("frames")

    def scores(self) -> pd.DataFrame:
        """A score row per analysed frame, by segment and frame index (flushed rows only)."""
        return self.table("scores")

    def audio(self) -> pd.DataFrame:
        """Audio chunks, by start time."""
        return self.table("audio")

    def arrow(self, name: str) -> pa.Table:
        """One table as a pyarrow Table (no pandas conversion)."""
        spec_for(name)
        return self._stores[name].read()

    # ================================================================== metadata

    def _default_metadata(self) -> dict[str, Any]:
        from cht_lab.layout import parse_start_time

        start = parse_start_time(self.session_dir.name)
        return {"session_id": self.session_dir.name, "start_time": start.isoformat() if start else None,
                "segments": [], "backend": None, "package_version": None, "schema_version": SCHEMA_VERSION}

    def _read_metadata_file(self) -> dict[str, Any] | None:
        path = self.index_dir / METADATA_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise IndexSchemaError(f"{path}: unreadable metadata: {exc}") from None
        if not isinstance(data, dict):
            raise IndexSchemaError(f"{path}: metadata must be a JSON object, got {type(data).__name__}")
        return data

    def _load_metadata_for_writer(self) -> dict[str, Any]:
        path = self.index_dir / METADATA_FILE
        try:
            data = self._read_metadata_file()
        except IndexSchemaError as exc:
            log.warning("%s; moving it to %s/ and starting fresh metadata", exc, QUARANTINE_DIR)
            (self.index_dir / QUARANTINE_DIR).mkdir(exist_ok=True)
            stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
            os.replace(path, self.index_dir / QUARANTINE_DIR / f"{METADATA_FILE}.{stamp}.corrupt")
            data = None
        version = (data or {}).get("schema_version", SCHEMA_VERSION)
        if isinstance(version, int) and version > SCHEMA_VERSION:
            raise IndexSchemaError(f"{path}: written with index schema version {version}; this cht_lab "
                                   f"({__version__}) knows up to {SCHEMA_VERSION}; upgrade cht_lab to write it")
        meta = self._default_metadata()
        meta.update(data or {})
        meta.setdefault("created_at", _now_iso())
        return meta

    def _named_segments(self) -> dict[str, Any]:
        """{"segments": [...]} from stream/ when every recording is named by its start time (no
        probing needed); {} otherwise, leaving what a Session stored (it probes) alone."""
        from cht_lab.layout import parse_start_time, recordings

        start = parse_start_time(self.session_dir.name)
        files = recordings(self.session_dir)
        times = [parse_start_time(f.stem) for f in files]
        if start is None or not files or any(t is None for t in times):
            return {}
        return {"segments": [{"index": i, "path": f.relative_to(self.session_dir).as_posix(),
                              "offset": max(0.0, (t - start).total_seconds())}  # type: ignore[operator]
                             for i, (f, t) in enumerate(zip(files, times))]}

    def metadata(self) -> dict[str, Any]:
        """Session id, start time, segments (with global offsets), backend, package and schema
        versions, plus whatever update_metadata() stored."""
        if self.writer and not self._closed:
            with self._meta_lock:
                return copy.deepcopy(self._meta)
        meta = self._default_metadata()
        try:
            meta.update(self._read_metadata_file() or {})
        except IndexSchemaError as exc:
            log.warning("%s", exc)
        return meta

    def update_metadata(self, **fields: Any) -> None:
        """Merge fields into the metadata and write it atomically (JSON-serializable values)."""
        self._check_writable()
        if "schema_version" in fields:
            raise ValueError("schema_version belongs to the index and cannot be set")
        with self._meta_lock:
            self._write_metadata({**self._meta, **fields, "updated_at": _now_iso()})

    def _write_metadata(self, meta: dict[str, Any]) -> None:
        try:
            clean = json.loads(json.dumps(meta, default=_json_default))
        except (TypeError, ValueError) as exc:
            bad = [k for k, v in meta.items() if not _serializable(v)]
            raise TypeError(f"metadata {', '.join(bad) or ''} cannot be stored as JSON: {exc}") from None
        write_json_atomic(self.index_dir / METADATA_FILE, clean)
        self._meta = clean

    # ================================================================== legacy import, export

    def import_legacy(self, json_path: str | os.PathLike[str] | None = None) -> int:
        """Import cht's frames/index.json into the frames table; rows whose id is already there are
        skipped, so importing twice adds nothing. Returns the number of rows added."""
        self._check_writable()
        path = Path(json_path) if json_path is not None else self.session_dir / "frames" / "index.json"
        if not path.is_absolute():
            path = self.session_dir / path
        rows = load_legacy_rows(path, self.session_dir)
        with self._id_lock:
            new = [r for r in rows if r["id"] not in self._frame_ids]
        if new:
            self._append_unique("frames", rows_to_table(TABLES["frames"], new), self._frame_ids, FRAME_ID_RE)
        rel = session_relative(path, self.session_dir)
        self.update_metadata(legacy_import={"path": rel if rel is not None else str(path), "rows": len(rows),
                                            "imported": len(new), "at": _now_iso()})
        return len(new)

    def export(self, path: str | os.PathLike[str], format: str = "parquet", table: str = "frames") -> Path:
        """Write a table as Parquet or CSV, atomically. A relative path is inside the session
        directory; nothing may be written inside index/. Returns the written path."""
        fmt = str(format).lower().lstrip(".")
        if fmt not in EXPORT_FORMATS:
            raise ValueError(f"unknown export format {format!r}: use 'parquet' or 'csv'")
        spec_for(table)
        dest = Path(path).expanduser()
        relative = not dest.is_absolute()
        if relative:
            dest = self.session_dir / dest
        dest = dest.resolve(strict=False)
        if relative and self.session_dir not in dest.parents:
            raise ValueError(f"{path}: a relative export path stays inside the session directory "
                             f"{self.session_dir}; give an absolute path to write elsewhere")
        if dest == self.index_dir or self.index_dir in dest.parents:
            raise ValueError(f"{dest}: cannot export into {self.index_dir} (the index's own folder); "
                             "choose a path elsewhere, e.g. the session directory")
        if dest.is_dir():
            raise ValueError(f"{dest}: is a directory; give a file name to export {table} to")
        dest.parent.mkdir(parents=True, exist_ok=True)
        if table == "scores" and self.writer and not self._closed and os.getpid() == self._pid:
            self.flush()  # an export is "everything so far", buffered rows included
        data = self._stores[table].read()
        if fmt == "parquet":
            write_atomic(dest, lambda f: pq.write_table(data, f, compression="zstd"))
        else:
            df = to_pandas(spec_for(table), data)
            write_atomic(dest, lambda f: df.to_csv(f, index=False), binary=False)
        return dest

    # ================================================================== health

    def _record_error(self, where: str, exc: BaseException) -> None:
        message = f"{where}: {type(exc).__name__}: {exc}"
        log.error("index %s: %s", self.session_dir, message, exc_info=exc)
        self.last_error = message
        self._errors.append({"time": time.time(), "where": where, "error": message})

    def health(self) -> dict[str, Any]:
        """Writer state for status displays: buffered rows, flushes, files per table, errors."""
        try:
            files: dict[str, int] | None = {name: len(maximal(list_files(store.dir)))
                                            for name, store in self._stores.items()}
        except OSError:
            files = None
        info: dict[str, Any] = {"mode": "writer" if self.writer else "reader", "files": files,
                                "last_error": self.last_error, "errors": list(self._errors)}
        if not self.writer:
            info["state"] = "reading"
            return info
        with self._buf_lock:
            buffered, since = self._buf_rows, self._buf_since
        alive = self._thread is not None and self._thread.is_alive()
        state = "closed" if self._closed else ("failed" if not alive else "writing")
        info.update(state=state, pid=self._pid, flush_thread_alive=alive, buffered_rows=buffered,
                    oldest_buffered_s=(time.monotonic() - since) if since is not None else 0.0, **self._stats)
        return info


# ====================================================================== helpers


def read_table(session_dir: str | os.PathLike[str], name: str) -> pd.DataFrame:
    """One table of a session as a DataFrame, without keeping a SessionIndex around."""
    return SessionIndex(session_dir).table(name)


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _json_default(value: Any) -> Any:
    from cht_lab.index.store import _json_default as default

    return default(value)


def _serializable(value: Any) -> bool:
    try:
        json.dumps(value, default=_json_default)
        return True
    except (TypeError, ValueError):
        return False


def _flush_at_exit() -> None:
    for idx in list(_OPEN_WRITERS):
        try:
            if not idx._closed and os.getpid() == idx._pid:
                idx._flush_scores()
        except Exception as exc:
            log.error("index %s: scores lost at exit: %s", idx.session_dir, exc)


def _after_fork_in_child() -> None:
    for idx in list(_OPEN_WRITERS):
        idx._after_fork_in_child()
    _OPEN_WRITERS.clear()


atexit.register(_flush_at_exit)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
