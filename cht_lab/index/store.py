"""Files of one index table: immutable Parquet files, appended and compacted without a reader ever
seeing half a table.

Naming is the whole protocol. Every write takes the next sequence number of its table:

    part-00000042.parquet              one flush (covers sequence 42)
    compact-00000001-00000043.parquet  a compaction: covers 1..43 (it takes a fresh number, 43,
                                       so a name is never reused and a cache keyed by name is safe)
    .part-00000044.parquet.<pid>.<random>.tmp   being written (dot-prefixed, not *.parquet: pyarrow,
                                       DuckDB and Polars globs skip it)

A file is written under its temporary name, fsynced, renamed into place and the directory fsynced
(`cht_lab.atomic.write_atomic`), so a visible file is always complete. Compaction writes the merged file first and deletes what it
covers afterwards; for a moment both exist, and a reader keeps only files not contained in another
file's range (the "maximal" ones). Compactions always merge a run of maximal files that ends at the
newest one, so ranges are nested or disjoint and the maximal files of a complete listing cover
1..N without gaps. A reader therefore checks its listing: maximal files must start at 1 and be
contiguous, every file it opens must still exist, and a second listing must show no file that
straddles the end of the first one (which happens when a listing raced a compaction and missed
files). If any check fails it lists again. Files are read through open descriptors, so a file
deleted by a concurrent compaction after it was opened still reads in full.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from cht_lab.atomic import fsync_dir, is_temp, write_atomic
from cht_lab.index.schema import TableSpec, concat, normalize, sort_table

log = logging.getLogger(__name__)

_NAME_RE = re.compile(r"^(?:part-(?P<seq>\d+)|compact-(?P<lo>\d+)-(?P<hi>\d+))\.parquet$")
QUARANTINE_DIR = "quarantine"
COMPRESSION = "zstd"
COMPRESSION_LEVEL = 6
_SNAPSHOT_TRIES = 25


# ----------------------------------------------------------------------------- file names


@dataclass(frozen=True)
class DataFile:
    """One Parquet file of a table and the sequence range it covers."""

    name: str
    lo: int
    hi: int

    @property
    def is_part(self) -> bool:
        return self.name.startswith("part-")


def part_name(seq: int) -> str:
    return f"part-{seq:08d}.parquet"


def compact_name(lo: int, hi: int) -> str:
    return f"compact-{lo:08d}-{hi:08d}.parquet"


def parse_name(name: str) -> DataFile | None:
    m = _NAME_RE.match(name)
    if not m:
        return None
    if m.group("seq") is not None:
        seq = int(m.group("seq"))
        return DataFile(name, seq, seq)
    lo, hi = int(m.group("lo")), int(m.group("hi"))
    return DataFile(name, lo, hi) if lo <= hi else None


def list_files(directory: Path) -> list[DataFile]:
    try:
        names = os.listdir(directory)
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [f for f in map(parse_name, names) if f is not None]


def maximal(files: Iterable[DataFile]) -> list[DataFile]:
    """Files not contained in another file's range, by range start (a compacted file wins a tie)."""
    out: list[DataFile] = []
    top = 0
    for f in sorted(files, key=lambda f: (f.lo, -f.hi, f.is_part, f.name)):
        if f.hi <= top:
            continue
        out.append(f)
        top = f.hi
    return out


def contiguous(chosen: list[DataFile]) -> bool:
    if not chosen:
        return True
    return chosen[0].lo == 1 and all(b.lo == a.hi + 1 for a, b in zip(chosen, chosen[1:]))


# ----------------------------------------------------------------------------- writing a file


def parquet_options(schema: pa.Schema) -> dict[str, Any]:
    """zstd plus encodings that suit each column: deltas for (mostly increasing) integers,
    byte-stream-split for float64 times (pts/ts), dictionaries for repeated strings,
    plain float32 for scores (mostly exact zeros on a static screen, which zstd eats)."""
    encodings: dict[str, str] = {}
    dictionary: list[str] = []
    for field in schema:
        t = field.type
        if pa.types.is_string(t) or pa.types.is_large_string(t):
            dictionary.append(field.name)
        elif pa.types.is_integer(t) or pa.types.is_timestamp(t):
            encodings[field.name] = "DELTA_BINARY_PACKED"
        elif pa.types.is_float64(t):
            encodings[field.name] = "BYTE_STREAM_SPLIT"
        elif pa.types.is_float32(t):
            encodings[field.name] = "PLAIN"
    return {"compression": COMPRESSION, "compression_level": COMPRESSION_LEVEL, "use_dictionary": dictionary,
            "column_encoding": encodings, "write_statistics": True}


def write_parquet(final: Path, table: pa.Table, *, replace: bool = False) -> None:
    """Write one data file atomically; a name already taken is an error unless `replace`."""
    opts = parquet_options(table.schema)
    write_atomic(final, lambda f: pq.write_table(table, f, **opts), overwrite=replace)


# ----------------------------------------------------------------------------- one table


class CorruptFile(Exception):
    pass


class TableStore:
    """The files of one table: a consistent snapshot for readers, parts and compaction for the writer.

    Parsed files are cached by name (names are never reused) and checked against the opened file's
    inode/size, so polling a growing table reads only the new parts.
    """

    def __init__(self, index_dir: Path, spec: TableSpec):
        self.spec = spec
        self.index_dir = index_dir
        self.dir = index_dir / spec.name
        self._cache: dict[str, tuple[tuple[int, int, int], pa.Table]] = {}
        self._combined: tuple[tuple[Any, ...], pa.Table] | None = None
        self._lock = threading.Lock()
        self._warned: set[str] = set()
        self.corrupt: set[str] = set()

    # -- reading -------------------------------------------------------------------------------

    def _load(self, f: DataFile) -> pa.Table | None:
        """The normalized rows of one file; None when it is corrupt. FileNotFoundError when gone."""
        with open(self.dir / f.name, "rb") as fh:
            st = os.fstat(fh.fileno())
            key = (st.st_ino, st.st_size, st.st_mtime_ns)
            with self._lock:
                hit = self._cache.get(f.name)
            if hit is not None and hit[0] == key:
                return hit[1]
            try:
                table = normalize(self.spec, pq.read_table(fh))
            except Exception as exc:  # truncated / garbage: pyarrow raises ArrowInvalid, OSError, ...
                self._note_corrupt(f.name, exc)
                return None
        with self._lock:
            self._cache[f.name] = (key, table)
        return table

    def _note_corrupt(self, name: str, exc: BaseException) -> None:
        self.corrupt.add(name)
        if name not in self._warned:
            self._warned.add(name)
            log.warning("index %s: skipping unreadable file %s (%s: %s); the next writer moves it to %s/",
                        self.spec.name, self.dir / name, type(exc).__name__, exc, self.index_dir / QUARANTINE_DIR)

    def snapshot(self) -> tuple[list[DataFile], list[pa.Table | None]]:
        """Maximal files of a consistent listing and their rows (see the module docstring)."""
        chosen: list[DataFile] = []
        loaded: list[pa.Table | None] = []
        for attempt in range(_SNAPSHOT_TRIES):
            if attempt:
                time.sleep(min(0.02, 0.0005 * 2 ** attempt))  # a compaction or quarantine is mid-way
            chosen = maximal(list_files(self.dir))
            if not contiguous(chosen):
                continue
            try:
                loaded = [self._load(f) for f in chosen]
            except FileNotFoundError:
                continue  # compacted away between listing and opening
            top = chosen[-1].hi if chosen else 0
            after = list_files(self.dir)
            if (not chosen and after) or any(f.lo <= top < f.hi for f in after):
                continue
            self._forget_except(chosen)
            return chosen, loaded
        if "<listing>" not in self._warned:  # e.g. files deleted by hand; the next writer repairs it
            self._warned.add("<listing>")
            log.warning("index %s: no consistent listing of %s after %d tries (files missing?); reading what "
                        "is there", self.spec.name, self.dir, _SNAPSHOT_TRIES)
        loaded = []
        for f in chosen:
            try:
                loaded.append(self._load(f))
            except FileNotFoundError:
                loaded.append(None)
        return chosen, loaded

    def _forget_except(self, chosen: list[DataFile]) -> None:
        keep = {f.name for f in chosen}
        with self._lock:
            for name in [n for n in self._cache if n not in keep]:
                del self._cache[name]

    def read(self) -> pa.Table:
        """The whole table, sorted, with the base schema first (repeated reads of an unchanged
        table return the cached result)."""
        chosen, loaded = self.snapshot()
        with self._lock:
            key = tuple((f.name, self._cache[f.name][0] if f.name in self._cache else None) for f in chosen)
            if self._combined is not None and self._combined[0] == key:
                return self._combined[1]
        table = sort_table(self.spec, concat(self.spec, [t for t in loaded if t is not None]))
        with self._lock:
            self._combined = (key, table)
        return table

    def remember(self, name: str, table: pa.Table) -> None:
        """Put a file the writer just wrote into the cache (no need to read it back)."""
        try:
            st = os.stat(self.dir / name)
        except FileNotFoundError:
            return
        with self._lock:
            self._cache[name] = ((st.st_ino, st.st_size, st.st_mtime_ns), table)

    # -- writing (only under the writer lock) -----------------------------------------------------

    def recover(self) -> None:
        """Make the folder exist and drop what a crashed writer left: temp files, covered files."""
        self.dir.mkdir(parents=True, exist_ok=True)
        for name in os.listdir(self.dir):
            if is_temp(name):
                log.info("index %s: removing %s left by an interrupted write", self.spec.name, name)
                _unlink(self.dir / name)
        files = list_files(self.dir)
        keep = {f.name for f in maximal(files)}
        for f in files:
            if f.name not in keep:
                _unlink(self.dir / f.name)

    def next_seq(self) -> int:
        return max((f.hi for f in list_files(self.dir)), default=0) + 1

    def write_part(self, seq: int, table: pa.Table) -> str:
        name = part_name(seq)
        write_parquet(self.dir / name, table)
        self.remember(name, table)
        return name

    def compact(self, files: list[DataFile], fresh_seq: int, *, empty: bool = False) -> str:
        """Merge `files` (a run of maximal files ending at the newest) into one file covering their
        range plus `fresh_seq`; corrupt ones are moved to quarantine/, the rest deleted, both only
        after the merged file is in place. empty=True writes an empty file (clearing the table)."""
        lo = files[0].lo if files else 1
        tables = [] if empty else [self._load_for_compaction(f) for f in files]
        merged = sort_table(self.spec, concat(self.spec, [t for t in tables if t is not None]))
        name = compact_name(lo, fresh_seq)
        write_parquet(self.dir / name, merged)
        self.remember(name, merged)
        for i, f in enumerate(files):
            if not empty and tables[i] is None:
                self.quarantine(f.name)
            else:
                _unlink(self.dir / f.name)
        fsync_dir(self.dir)
        with self._lock:
            for f in files:
                self._cache.pop(f.name, None)
        return name

    def _load_for_compaction(self, f: DataFile) -> pa.Table | None:
        try:
            return self._load(f)
        except FileNotFoundError:
            return None

    def quarantine(self, name: str) -> None:
        qdir = self.index_dir / QUARANTINE_DIR
        qdir.mkdir(exist_ok=True)
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
        dest = qdir / f"{self.spec.name}.{name}.{stamp}.corrupt"
        try:
            os.replace(self.dir / name, dest)
            log.warning("index %s: moved unreadable %s to %s", self.spec.name, name, dest)
        except FileNotFoundError:
            pass
        self.corrupt.discard(name)

    def clear_cache(self) -> None:
        with self._lock:
            self._cache.clear()
            self._combined = None


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
