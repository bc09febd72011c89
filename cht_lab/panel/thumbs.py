"""Thumbnails for the panel's gallery: made in a background thread, cached on disk and in memory.

A recorded session's frames at some threshold have usually never been extracted, so the JPEGs
are captured on demand — one ffmpeg decode per segment for the whole batch, through
`cht_lab.detect.capture.capture_frames` — into `<session>/.cache/thumbs/`, full resolution (for the
enlarged view) plus a small thumbnail. Captured frames (frames/F0001.jpg, recorded or live) only
need the thumbnail. The worker handles the newest request only: moving the slider five times
while a batch decodes costs one more batch, not five.
"""

from __future__ import annotations

import io
import logging
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

log = logging.getLogger(__name__)

CACHE_DIR = Path(".cache") / "thumbs"
THUMB_WIDTH = 192
IDLE_EXIT = 30.0  # s without requests after which the worker thread ends


@dataclass(frozen=True)
class Tile:
    """One frame in the gallery: where its full-resolution JPEG is, or how to capture it."""

    key: str  # frame id ("F0003") or "s<segment>-f<frame_index>" for a not-yet-captured frame
    ts: float
    score: float
    path: Path | None = None  # an existing full-resolution JPEG (captured frame)
    segment: int | None = None
    frame_index: int | None = None


def make_thumbnail(jpeg: Path, width: int = THUMB_WIDTH, quality: int = 80) -> bytes:
    """A small JPEG of `jpeg`; the decoder's draft mode makes downscaling a 1080p frame cheap."""
    from PIL import Image

    with Image.open(jpeg) as im:
        im.draft("RGB", (width * 2, width * 2))
        im = im.convert("RGB")
        im.thumbnail((width, width * 4))
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


class Thumbnails:
    """Thumbnail and full-resolution JPEG bytes for tiles; missing ones are made by a worker thread."""

    def __init__(self, cache_dir: str | os.PathLike[str], segments: dict[int, Path] | None = None, *,
                 on_ready: Callable[[], None] | None = None,
                 on_error: Callable[[str, BaseException], None] | None = None,
                 width: int = THUMB_WIDTH, memory_items: int = 512):
        self.cache_dir = Path(cache_dir)
        self.segments = dict(segments or {})
        self.width = width
        self._on_ready = on_ready
        self._on_error = on_error
        self._memory: OrderedDict[str, bytes] = OrderedDict()
        self._memory_items = memory_items
        self._cond = threading.Condition()
        self._wanted: list[Tile] | None = None
        self._busy = False
        self._closed = False
        self._thread: threading.Thread | None = None
        self._failed: set[str] = set()  # keys that could not be captured: not retried forever

    # ------------------------------------------------------------------ lookups (any thread)

    def full_path(self, tile: Tile) -> Path | None:
        if tile.path is not None:
            return tile.path
        if tile.segment is None or tile.frame_index is None:
            return None
        return self.cache_dir / f"s{tile.segment:03d}_f{tile.frame_index:08d}.jpg"

    def _thumb_path(self, tile: Tile) -> Path:
        return self.cache_dir / f"{tile.key}.thumb.jpg"

    def thumb(self, tile: Tile) -> bytes | None:
        """Thumbnail bytes when already made (memory, then disk), else None."""
        with self._cond:
            data = self._memory.get(tile.key)
            if data is not None:
                self._memory.move_to_end(tile.key)
                return data
        path = self._thumb_path(tile)
        if tile.path is None and path.is_file():  # captured frames' thumbs are memory-only (ids are reused per session)
            data = path.read_bytes()
            self._remember(tile.key, data)
            return data
        return None

    def full(self, tile: Tile) -> bytes | None:
        path = self.full_path(tile)
        return path.read_bytes() if path is not None and path.is_file() else None

    def _remember(self, key: str, data: bytes) -> None:
        with self._cond:
            self._memory[key] = data
            self._memory.move_to_end(key)
            while len(self._memory) > self._memory_items:
                self._memory.popitem(last=False)

    # ------------------------------------------------------------------ background work

    def request(self, tiles: Sequence[Tile]) -> None:
        """Make the thumbnails of `tiles` that are missing; replaces any not-yet-started request."""
        missing = [t for t in tiles if self.thumb(t) is None and t.key not in self._failed]
        with self._cond:
            if self._closed:
                return
            self._wanted = missing if missing else None
            if not missing:
                return
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._work, name="cht_lab-thumbnails", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until no batch is queued or running (True), or the timeout passes (False)."""
        with self._cond:
            return self._cond.wait_for(lambda: self._closed or (self._wanted is None and not self._busy), timeout)

    @property
    def busy(self) -> bool:
        with self._cond:
            return self._busy or self._wanted is not None

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._wanted = None
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)

    def _work(self) -> None:
        while True:
            with self._cond:
                if not self._cond.wait_for(lambda: self._closed or self._wanted is not None, IDLE_EXIT):
                    self._thread = None  # idle: a forgotten panel keeps no thread; request() starts a new one
                    return
                if self._closed:
                    self._busy = False
                    self._cond.notify_all()
                    return
                batch, self._wanted = self._wanted or [], None
                self._busy = True
            try:
                self._make(batch)
            except Exception as exc:  # never die silently: report, then keep serving requests
                log.exception("thumbnail batch failed")
                if self._on_error is not None:
                    self._on_error("thumbnails", exc)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()
            if self._on_ready is not None:
                self._on_ready()

    def _make(self, batch: list[Tile]) -> None:
        to_capture: dict[int, list[Tile]] = {}
        for tile in batch:
            full = self.full_path(tile)
            if full is not None and full.is_file():
                continue
            if tile.path is None and tile.segment in self.segments:
                to_capture.setdefault(int(tile.segment), []).append(tile)  # type: ignore[arg-type]
        if to_capture:
            self._capture(to_capture)
        for tile in batch:
            if self._closed:
                return
            full = self.full_path(tile)
            if full is None or not full.is_file():
                continue
            try:
                data = make_thumbnail(full, self.width)
            except OSError as exc:
                self._failed.add(tile.key)
                if self._on_error is not None:
                    self._on_error(f"thumbnail of {full}", exc)
                continue
            if tile.path is None:
                _write_atomic(self._thumb_path(tile), data)
            self._remember(tile.key, data)

    def _capture(self, by_segment: dict[int, list[Tile]]) -> None:
        """One decode per segment for all of its missing frames, full resolution, into the cache."""
        from cht_lab.detect.capture import capture_frames

        self.cache_dir.mkdir(parents=True, exist_ok=True)
        for seg, tiles in sorted(by_segment.items()):
            tiles = sorted(tiles, key=lambda t: t.frame_index)  # type: ignore[arg-type, return-value]
            paths = [self.full_path(t) for t in tiles]
            try:
                capture_frames(self.segments[seg], [t.frame_index for t in tiles], paths)
            except Exception as exc:
                self._failed.update(t.key for t in tiles)
                log.warning("could not capture %d frames from %s: %s", len(tiles), self.segments[seg], exc)
                if self._on_error is not None:
                    self._on_error(f"capture from {self.segments[seg]}", exc)


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
