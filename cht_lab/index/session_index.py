"""The session index: Parquet tables of frames, scores and audio chunks, plus session metadata.

    idx = SessionIndex(session_dir, writer=True)   # one writer per session, by a lock file
    idx.append_scores(cols)                         # buffered; a timer thread flushes every second
    fid = idx.next_frame_id()                       # "F0001", never repeats, continues after reopen
    idx.append_frames([row])                        # durable when it returns
    idx.close()                                     # flush + compact + release the lock
    SessionIndex(session_dir).scores()              # a reader, in any thread or process, any time

Why this shape: Parquet files are immutable, so appending means writing new small files; readers
must never see half a file or a row twice, and a crash must lose at most the unflushed second of
scores. Each table is a folder of complete files (see index.store for the naming protocol that
keeps reads consistent across compaction); the folders are plain Parquet datasets, so DuckDB,
Polars and pyarrow read `index/<table>/*.parquet` directly. Metadata is small JSON, replaced
atomically.

Layout::

    <session>/index/
      writer.lock        flock()ed by the live writer (index.lock); names it in the "locked by" message
      session.json       metadata: session id, start time, segments, backend, versions, ...
      frames/ scores/ audio/   part-NNNNNNNN.parquet (one flush), compact-LO-HI.parquet (merged)
      quarantine/        unreadable files moved aside by a writer (never read again)

The writing side (buffers, ids, flush timer, compaction) is `index.writer.Appender`; the lock is
`index.lock`; metadata is `index.metadata`; one table's files are `index.store.TableStore`.
"""

from __future__ import annotations

import atexit
import copy
import logging
import os
import threading
import time
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from cht_lab._version import __version__
from cht_lab.atomic import is_temp, write_atomic
from cht_lab.index import metadata as md
from cht_lab.index.legacy import LegacyIndexError, load_legacy_rows, session_relative
from cht_lab.index.lock import IndexLockedError, WriterLock
from cht_lab.index.schema import (
    AUDIO_SCHEMA,
    FRAMES_SCHEMA,
    SCHEMA_VERSION,
    SCORES_SCHEMA,
    TABLES,
    IndexSchemaError,
    spec_for,
    to_pandas,
)
from cht_lab.index.store import QUARANTINE_DIR, TableStore, list_files, maximal
from cht_lab.index.writer import Appender
from cht_lab.status import ErrorLog, WorkerState

log = logging.getLogger(__name__)

INDEX_DIR = "index"
METADATA_FILE = md.METADATA_FILE
EXPORT_FORMATS = ("parquet", "csv")
_MAX_ERRORS = 20

__all__ = [
    "SessionIndex", "IndexLockedError", "IndexReadOnlyError", "IndexSchemaError", "LegacyIndexError",
    "FRAMES_SCHEMA", "SCORES_SCHEMA", "AUDIO_SCHEMA", "SCHEMA_VERSION", "read_table",
]


class IndexReadOnlyError(RuntimeError):
    """A write was asked of a read-only (or closed) SessionIndex."""


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
        self._errors = ErrorLog("index", log, limit=_MAX_ERRORS)
        self._stores = {name: TableStore(self.index_dir, spec) for name, spec in TABLES.items()}
        self._closed = False
        self._pid = os.getpid()
        self._lock = WriterLock(self.index_dir, self.session_dir)
        self._w: Appender | None = None
        if self.writer:
            self._open_writer()

    def __repr__(self) -> str:
        mode = "writer" if self.writer else "reader"
        return f"SessionIndex({str(self.session_dir)!r}, {mode}{', closed' if self._closed else ''})"

    def __enter__(self) -> "SessionIndex":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def last_error(self) -> str | None:
        """The newest error of this writer (flush, compaction, metadata), or None."""
        return self._errors.last

    # ================================================================== opening a writer

    def _open_writer(self) -> None:
        self._meta_lock = threading.Lock()
        self.index_dir.mkdir(parents=True, exist_ok=True)
        self._lock.acquire()
        try:
            self._remove_temp_files(self.index_dir)
            self._meta = md.load_for_writer(self.session_dir, self.index_dir, QUARANTINE_DIR)
            self._w = Appender(self.session_dir, self._stores, self._errors, flush_interval=self.flush_interval,
                               compact_parts=self.compact_parts, compact_files=self.compact_files)
            self._w.recover()
            self._write_metadata({**self._meta, **md.named_segments(self.session_dir), "package_version": __version__,
                                  "schema_version": SCHEMA_VERSION, "opened_at": md.now_iso()})
        except BaseException:
            self._lock.release()
            raise
        _OPEN_WRITERS.add(self)
        self._w.start()

    def _after_fork_in_child(self) -> None:
        """A forked child inherits the lock's descriptor: drop its copy (without unlocking, which
        would release the parent's lock too) and make this copy unusable for writing."""
        self._lock.forget_after_fork()
        self._closed = True

    def _remove_temp_files(self, directory: Path) -> None:
        for name in os.listdir(directory):
            if is_temp(name):
                log.info("index: removing %s left by an interrupted write", directory / name)
                try:
                    (directory / name).unlink()
                except FileNotFoundError:
                    pass

    # ================================================================== writing

    def _writable(self) -> Appender:
        if not self.writer:
            raise IndexReadOnlyError(f"{self.session_dir}: this SessionIndex is read-only; "
                                     "open it with SessionIndex(session_dir, writer=True) to write")
        if self._closed or os.getpid() != self._pid or self._w is None:
            raise IndexReadOnlyError(f"{self.session_dir}: this index writer is closed"
                                     + (" (it was opened in the parent process)" if os.getpid() != self._pid else ""))
        return self._w

    def append_scores(self, table: Any) -> None:
        """Buffer score rows (DataFrame, pyarrow Table or dict of arrays: segment, frame_index,
        pts, ts, score, plus float32 metric columns); they reach disk within flush_interval."""
        self._writable().append_scores(table)

    def append_frames(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Add captured frames; durable (fsynced part file) when this returns."""
        self._writable().append_frames(rows)

    def append_audio(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Add audio chunks; durable when this returns."""
        self._writable().append_audio(rows)

    def next_frame_id(self) -> str:
        """Reserve the next frame id ("F0001", ...); ids continue after a reopen and never repeat."""
        return self._writable().next_frame_id()

    def next_chunk_id(self) -> str:
        """Reserve the next audio chunk id ("chunk_0000", ...)."""
        return self._writable().next_chunk_id()

    def flush(self) -> int:
        """Write buffered score rows now (frames and audio are never buffered); returns the rows."""
        w = self._writable()
        try:
            return w.flush_scores()
        except Exception as exc:
            self._errors.exception("flush", exc)
            raise

    def compact(self) -> None:
        """Flush, then merge each table's files into one (atomically: readers keep reading)."""
        w = self._writable()
        self.flush()
        for name in TABLES:
            w.compact_table(name)

    def clear(self, table: str) -> None:
        """Remove every row of a table (one atomic step for readers: an empty file covering all)."""
        self._writable().clear(table)

    def close(self) -> None:
        """Flush, stop the timer, compact, release the lock. Safe to call twice. Raises the first
        error (after releasing the lock) if buffered rows could not be written."""
        if self._closed:
            return
        if not self.writer or os.getpid() != self._pid or self._w is None:
            self._closed = True
            return
        first: BaseException | None = None
        w = self._w
        w.stop()
        try:
            w.flush_scores()
        except Exception as exc:
            self._errors.exception("flush", exc)
            first = exc
        for name in TABLES:
            try:
                w.compact_table(name)
            except Exception as exc:
                self._errors.exception(f"compact {name}", exc)
        try:
            with self._meta_lock:
                self._write_metadata({**self._meta, **md.named_segments(self.session_dir), "closed_at": md.now_iso()})
        except Exception as exc:
            self._errors.exception("metadata", exc)
        self._closed = True
        _OPEN_WRITERS.discard(self)
        self._lock.release()
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

    def metadata(self) -> dict[str, Any]:
        """Session id, start time, segments (with global offsets), backend, package and schema
        versions, plus whatever update_metadata() stored."""
        if self.writer and not self._closed:
            with self._meta_lock:
                return copy.deepcopy(self._meta)
        meta = md.default_metadata(self.session_dir)
        try:
            meta.update(md.read_metadata_file(self.index_dir) or {})
        except IndexSchemaError as exc:
            log.warning("%s", exc)
        return meta

    def update_metadata(self, **fields: Any) -> None:
        """Merge fields into the metadata and write it atomically (JSON-serializable values)."""
        self._writable()
        if "schema_version" in fields:
            raise ValueError("schema_version belongs to the index and cannot be set")
        with self._meta_lock:
            self._write_metadata({**self._meta, **fields, "updated_at": md.now_iso()})

    def _write_metadata(self, meta: dict[str, Any]) -> None:
        self._meta = md.write_metadata(self.index_dir, meta)

    # ================================================================== legacy import, export

    def import_legacy(self, json_path: str | os.PathLike[str] | None = None) -> int:
        """Import cht's frames/index.json into the frames table; rows whose id is already there are
        skipped, so importing twice adds nothing. Returns the number of rows added."""
        w = self._writable()
        path = Path(json_path) if json_path is not None else self.session_dir / "frames" / "index.json"
        if not path.is_absolute():
            path = self.session_dir / path
        rows = load_legacy_rows(path, self.session_dir)
        added = w.add_new_frames(rows)
        rel = session_relative(path, self.session_dir)
        self.update_metadata(legacy_import={"path": rel if rel is not None else str(path), "rows": len(rows),
                                            "imported": added, "at": md.now_iso()})
        return added

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
            write_atomic(dest, lambda f: df.to_csv(f, index=False), text=True)
        return dest

    # ================================================================== health

    def health(self) -> dict[str, Any]:
        """Writer state for status displays: buffered rows, flushes, files per table, errors."""
        try:
            files: dict[str, int] | None = {name: len(maximal(list_files(store.dir)))
                                            for name, store in self._stores.items()}
        except OSError:
            files = None
        info: dict[str, Any] = {"mode": "writer" if self.writer else "reader", "files": files,
                                "last_error": self._errors.last, "errors": self._errors.errors}
        w = self._w
        if not self.writer or w is None:
            info["state"] = WorkerState.OFF  # a reader: no writer worker
            return info
        buffered, since = w.buffered()
        alive = w.thread_alive
        state = WorkerState.STOPPED if self._closed else (WorkerState.FAILED if not alive else WorkerState.RUNNING)
        info.update(state=state, pid=self._pid, flush_thread_alive=alive, buffered_rows=buffered,
                    oldest_buffered_s=(time.monotonic() - since) if since is not None else 0.0, **w.stats)
        return info


def read_table(session_dir: str | os.PathLike[str], name: str) -> pd.DataFrame:
    """One table of a session as a DataFrame, without keeping a SessionIndex around."""
    return SessionIndex(session_dir).table(name)


def _flush_at_exit() -> None:
    for idx in list(_OPEN_WRITERS):
        try:
            if not idx._closed and os.getpid() == idx._pid and idx._w is not None:
                idx._w.flush_scores()
        except Exception as exc:
            log.error("index %s: scores lost at exit: %s", idx.session_dir, exc)


def _after_fork_in_child() -> None:
    for idx in list(_OPEN_WRITERS):
        idx._after_fork_in_child()
    _OPEN_WRITERS.clear()


atexit.register(_flush_at_exit)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
