"""The audio extractor's writer thread: WAV files, then their index rows, then `on_chunk`, in order.

Decoding and writing run in separate threads so a slow disk does not stall ffmpeg's pipe; the
queue between them is bounded (back-pressure instead of unbounded memory). Chunks that queue up
while a batch is written are committed together: one directory fsync and one index part for
the batch. A write failure is final for the extraction (reported, never silent).
"""

from __future__ import annotations

import logging
import os
import queue
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from cht_lab import layout
from cht_lab.atomic import fsync_dir, is_temp
from cht_lab.audio.chunking import write_wav
from cht_lab.index.protocols import IndexWriter

log = logging.getLogger(__name__)

__all__ = ["AudioChunk", "ChunkCallback", "ChunkWriter", "WriteFailed"]

QUEUE = 16  # chunks decoded but not yet written (at most ~16 MB at 16 kHz mono, 30 s chunks)
BATCH = 16  # chunks per group commit


@dataclass(frozen=True)
class AudioChunk:
    """What `on_chunk` receives: the chunk's absolute WAV path, its global start and its row."""

    id: str
    path: str
    start: float
    duration: float
    segment: int
    local_start: float
    row: dict[str, Any] = field(default_factory=dict, repr=False)

    def __getitem__(self, key: str) -> Any:  # chunk["start"] works like the dict it replaces
        if key in ("id", "path", "start", "duration", "segment", "local_start"):
            return getattr(self, key)
        return self.row[key]

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def as_dict(self) -> dict[str, Any]:
        return {**self.row, "id": self.id, "path": self.path, "start": self.start, "duration": self.duration,
                "segment": self.segment, "local_start": self.local_start}


ChunkCallback = Callable[[AudioChunk], None]


class WriteFailed(RuntimeError):
    """Raised to the decoding side after the writer failed (already reported by the writer)."""


class ChunkWriter:
    """Writes queued (row, pcm) chunks; `linger` > 0 waits that long to fill a batch (offline).

    `report(where, exc)` records an error; `on_written(rows)` counts what is durable;
    `on_fail()` stops the decoding at once after a write failure.
    """

    def __init__(self, session_dir: Path, index: IndexWriter | None, *, sample_rate: int, channels: int,
                 linger: float, on_chunk: ChunkCallback | None, report: Callable[[str, BaseException], None],
                 on_written: Callable[[list[dict[str, Any]]], None], on_fail: Callable[[], None]):
        self.session_dir = session_dir
        self.audio_dir = session_dir / layout.AUDIO_DIR
        self.index = index
        self.sample_rate, self.channels = sample_rate, channels
        self.linger = linger
        self.on_chunk = on_chunk
        self._report, self._on_written, self._on_fail = report, on_written, on_fail
        self.rows: list[dict[str, Any]] = []  # rows written (also in the index)
        self.error: BaseException | None = None
        self._queue: queue.Queue[tuple[dict[str, Any], np.ndarray] | None] = queue.Queue(maxsize=QUEUE)
        self._thread: threading.Thread | None = None
        self._local_ids: int | None = None

    def start(self) -> None:
        self.audio_dir.mkdir(parents=True, exist_ok=True)
        self.remove_temp_files()
        self._thread = threading.Thread(target=self._loop, name=f"audio-write:{self.session_dir.name}", daemon=True)
        self._thread.start()

    def put(self, row: dict[str, Any], pcm: np.ndarray) -> None:
        """Queue one chunk; blocks while the writer is QUEUE chunks behind (back-pressure)."""
        if self.error is not None:
            raise WriteFailed(f"writing audio chunks failed: {self.error}") from self.error
        self._queue.put((row, pcm))

    def close(self) -> None:
        """Write what is queued, then end the thread."""
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join()

    def next_id(self) -> str:
        """The index's next chunk id; without an index, after the WAV files already there."""
        if self.index is not None:
            return self.index.next_chunk_id()
        if self._local_ids is None:
            nums = [int(m.group(1)) for p in self.audio_dir.glob("chunk_*.wav")
                    if (m := re.fullmatch(r"chunk_(\d+)", p.stem))]
            self._local_ids = max(nums, default=-1) + 1
        n, self._local_ids = self._local_ids, self._local_ids + 1
        return f"chunk_{n:04d}"

    def remove_temp_files(self) -> None:
        """What an interrupted write left in audio/."""
        try:
            names = os.listdir(self.audio_dir)
        except FileNotFoundError:
            return
        for name in names:
            if is_temp(name):
                try:
                    (self.audio_dir / name).unlink()
                except OSError:
                    pass

    def _loop(self) -> None:
        while True:
            batch = [self._queue.get()]
            deadline = time.monotonic() + self.linger
            while batch[-1] is not None and len(batch) < BATCH:
                try:
                    batch.append(self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                                 if self.linger else self._queue.get_nowait())
                except queue.Empty:
                    break
            items = [b for b in batch if b is not None]
            if items and self.error is None:
                try:
                    self._write_batch(items)
                except Exception as exc:
                    self.error = exc
                    self._report("writing chunks", exc)
                    self._on_fail()
            if batch[-1] is None:
                return

    def _write_batch(self, items: list[tuple[dict[str, Any], np.ndarray]]) -> None:
        for row, pcm in items:
            write_wav(self.session_dir / row["path"], pcm, self.sample_rate, self.channels, sync_dir=False)
        fsync_dir(self.audio_dir)  # the renames are durable before any row points at them
        rows = [row for row, _ in items]
        if self.index is not None:
            self.index.append_audio(rows)
        self.rows.extend(rows)
        self._on_written(rows)
        if self.on_chunk is None:
            return
        for row in rows:
            chunk = AudioChunk(row["id"], str(self.session_dir / row["path"]), row["start"], row["duration"],
                               row["segment"], row["local_start"], row)
            try:
                self.on_chunk(chunk)
            except Exception as exc:
                self._report("on_chunk callback", exc)
