"""The writing side of a SessionIndex (only ever under the writer lock).

Scores arrive many times a second, so they are buffered and a timer thread writes them as one
part per `flush_interval`; frames and audio chunks are rare and each append is a durable part
at once. Ids are handed out here and never repeat, even after a `clear()` or a reopen (a file
named by an old id may still exist). Parts are merged while live so a long session does not
end up with thousands of files.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from cht_lab.index.legacy import session_relative
from cht_lab.index.schema import (
    CHUNK_ID_RE,
    FRAME_ID_RE,
    TABLES,
    IndexSchemaError,
    columns_to_table,
    concat,
    max_id,
    rows_to_table,
    spec_for,
    unsafe_id,
)
from cht_lab.index.store import DataFile, TableStore, list_files, maximal, part_name
from cht_lab.status import ErrorLog

log = logging.getLogger(__name__)


class Appender:
    """Buffers, ids, part files, the flush timer thread and compaction of one writer."""

    def __init__(self, session_dir: Path, stores: dict[str, TableStore], errors: ErrorLog, *,
                 flush_interval: float, compact_parts: int, compact_files: int):
        self.session_dir = session_dir
        self.stores = stores
        self.errors = errors
        self.flush_interval = flush_interval
        self.compact_parts = compact_parts
        self.compact_files = compact_files
        self.stats: dict[str, Any] = {"flushes": 0, "flushed_rows": 0, "last_flush_at": None, "compactions": 0}
        self.table_locks = {name: threading.RLock() for name in TABLES}
        self._buf_lock = threading.Lock()
        self._buf: list[pa.Table] = []
        self._buf_rows = 0
        self._buf_since: float | None = None
        self._id_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._next_seq: dict[str, int] = {}
        self._thread: threading.Thread | None = None
        self._frame_ids: set[str] = set()
        self._chunk_ids: set[str] = set()
        self._next_frame = 1
        self._next_chunk = 0

    # ------------------------------------------------------------------ opening

    def recover(self) -> None:
        """After a crash: drop covered/temp files, merge what is there (finding unreadable files),
        and continue the ids after every id in the tables and every file already on disk."""
        for name, store in self.stores.items():
            store.recover()
            self._next_seq[name] = store.next_seq()
            self.compact_table(name, validate=True)
        self._frame_ids = set(self.stores["frames"].read().column("id").to_pylist())
        self._chunk_ids = set(self.stores["audio"].read().column("id").to_pylist())
        self._next_frame = max(max_id(self._frame_ids, FRAME_ID_RE) or 0,
                               _max_file_number(self.session_dir / "frames", FRAME_ID_RE)) + 1
        last_chunk = max_id(self._chunk_ids, CHUNK_ID_RE)
        last_file = _max_file_number(self.session_dir / "audio", CHUNK_ID_RE, default=-1)
        self._next_chunk = max(-1 if last_chunk is None else last_chunk, last_file) + 1

    def start(self) -> None:
        self._thread = threading.Thread(target=self._flush_loop, name=f"index-flush:{self.session_dir.name}",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """End the flush timer (its last round flushes what is buffered)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30.0)

    @property
    def thread_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def buffered(self) -> tuple[int, float | None]:
        """(rows buffered, monotonic time the oldest of them arrived)."""
        with self._buf_lock:
            return self._buf_rows, self._buf_since

    # ------------------------------------------------------------------ appending

    def append_scores(self, data: Any) -> None:
        table = columns_to_table(TABLES["scores"], data)
        if table.num_rows == 0:
            return
        with self._buf_lock:
            self._buf.append(table)
            self._buf_rows += table.num_rows
            if self._buf_since is None:
                self._buf_since = time.monotonic()
                self._wake.set()

    def append_frames(self, rows: Sequence[Mapping[str, Any]]) -> None:
        rows = [self._with_session_paths(r, ("path",)) for r in rows]
        self._append_unique("frames", rows_to_table(TABLES["frames"], rows), self._frame_ids, FRAME_ID_RE)

    def append_audio(self, rows: Sequence[Mapping[str, Any]]) -> None:
        rows = [self._with_session_paths(r, ("path",), lenient=("source",)) for r in rows]
        self._append_unique("audio", rows_to_table(TABLES["audio"], rows), self._chunk_ids, CHUNK_ID_RE)

    def add_new_frames(self, rows: list[dict[str, Any]]) -> int:
        """Append the frames whose id is not in the table yet (a repeated import adds nothing)."""
        with self._id_lock:
            new = [r for r in rows if r["id"] not in self._frame_ids]
        if new:
            self._append_unique("frames", rows_to_table(TABLES["frames"], new), self._frame_ids, FRAME_ID_RE)
        return len(new)

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

    def _append_unique(self, name: str, table: pa.Table, known: set[str], pattern: re.Pattern[str]) -> None:
        if table.num_rows == 0:
            return
        ids = table.column("id").to_pylist()
        bad = [i for i in ids if unsafe_id(i)]
        if bad:
            raise IndexSchemaError(f"{name}: id {bad[0]!r} is not a plain file name (letters, digits, '_', '.', "
                                   "'-'; no leading dot); ids name files inside the session")
        with self.table_locks[name]:
            with self._id_lock:
                dup = sorted({i for i in ids if i in known} | {i for i in ids if ids.count(i) > 1})
            if dup:
                raise IndexSchemaError(f"{name}: id {', '.join(dup[:5])} already in {self.stores[name].dir}")
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
        store = self.stores[name]
        seq = self._next_seq[name]
        try:
            store.write_part(seq, table)
        except Exception as exc:
            if (store.dir / part_name(seq)).exists():  # only the directory fsync failed: rows are there
                self._next_seq[name] = seq + 1
                self.errors.exception(f"{name} part {seq}", exc)
                return
            raise
        self._next_seq[name] = seq + 1

    def next_frame_id(self) -> str:
        with self._id_lock:
            n = self._next_frame
            self._next_frame += 1
        return f"F{n:04d}"

    def next_chunk_id(self) -> str:
        with self._id_lock:
            n = self._next_chunk
            self._next_chunk += 1
        return f"chunk_{n:04d}"

    # ------------------------------------------------------------------ flushing

    def flush_scores(self) -> int:
        with self.table_locks["scores"]:
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
        self.stats["flushes"] += 1
        self.stats["flushed_rows"] += rows
        self.stats["last_flush_at"] = time.time()
        return rows

    def _flush_loop(self) -> None:
        """The flush timer: scores reach disk within flush_interval of their first buffered row, and
        parts are merged as they pile up. Errors are kept (health()) and the loop goes on, so a
        full disk that frees up is recovered from."""
        try:
            while True:
                with self._buf_lock:
                    since = self._buf_since
                if since is not None and (time.monotonic() - since >= self.flush_interval or self._stop.is_set()):
                    try:
                        self.flush_scores()
                    except Exception as exc:
                        self.errors.exception("flush", exc)
                if self._stop.is_set():
                    return
                try:
                    self._compact_live()
                except Exception as exc:
                    self.errors.exception("compact", exc)
                with self._buf_lock:
                    since = self._buf_since
                timeout = (self.flush_interval if since is None
                           else max(0.0, since + self.flush_interval - time.monotonic()))
                self._wake.wait(timeout)
                self._wake.clear()
        except BaseException as exc:  # not even this may pass silently
            self.errors.exception("flush thread", exc)
            log.critical("index flush thread for %s died; scores are no longer flushed", self.session_dir)

    # ------------------------------------------------------------------ compaction, clearing

    def compact_table(self, name: str, *, validate: bool = False) -> None:
        store = self.stores[name]
        with self.table_locks[name]:
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
        self.stores[name].compact(files, seq, empty=empty)
        self._next_seq[name] = seq + 1
        self.stats["compactions"] += 1

    def _compact_live(self) -> None:
        """Bound the number of files while live: merge the trailing parts once there are
        compact_parts of them, and everything once there are compact_files merged files."""
        for name, store in self.stores.items():
            files = maximal(list_files(store.dir))
            parts = [f for f in files if f.is_part]
            if len(parts) < self.compact_parts:
                continue
            with self.table_locks[name]:
                files = maximal(list_files(store.dir))
                parts = [f for f in files if f.is_part]
                if len(parts) < self.compact_parts:
                    continue
                runs = len(files) - len(parts)
                tail_ok = files[-len(parts):] == parts
                self._merge(name, files if runs + 1 >= self.compact_files or not tail_ok else parts)

    def clear(self, table: str) -> None:
        """Remove every row of a table (one atomic step for readers: an empty file covering all)."""
        spec_for(table)
        with self.table_locks[table]:
            if table == "scores":
                with self._buf_lock:
                    self._buf, self._buf_rows, self._buf_since = [], 0, None
            files = maximal(list_files(self.stores[table].dir))
            self._merge(table, files, empty=True)
            with self._id_lock:
                if table == "frames":
                    self._frame_ids.clear()  # ids already handed out are still never reused
                elif table == "audio":
                    self._chunk_ids.clear()


def _max_file_number(directory: Path, pattern: re.Pattern[str], default: int = 0) -> int:
    """Ids of files already on disk count as taken (a frame saved just before a crash)."""
    try:
        names = [os.path.splitext(n)[0] for n in os.listdir(directory)]
    except FileNotFoundError:
        return default
    found = max_id(names, pattern)
    return default if found is None else found
