"""cht's legacy frame index (`frames/index.json`) as frames-table rows.

cht writes a JSON list of `{id, timestamp, path, sent_to_agent}`: timestamp in seconds since the
session start, path absolute. Importing places each frame on the session timeline (segment, pts,
an estimated frame index from the segment's frame rate) and reads size and dimensions from the
JPEG, so legacy frames sit in the same table, with the same columns, as frames cht_lab captured.
"""

from __future__ import annotations

import json
import logging
import math
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from cht_lab.index.schema import unsafe_id

log = logging.getLogger(__name__)


class LegacyIndexError(ValueError):
    """cht's frames/index.json cannot be imported; names the file, the row (if one) and the reason."""

    def __init__(self, path: str | os.PathLike[str], reason: str, row: int | None = None):
        self.path = str(path)
        self.reason = reason
        self.row = row
        where = f"{self.path}: row {row}" if row is not None else self.path
        super().__init__(f"{where}: {reason}")


def session_relative(path: str | os.PathLike[str], session_dir: Path) -> str | None:
    """`path` relative to the session (posix), or None when it points outside it."""
    p = Path(path)
    if not p.is_absolute():
        norm = os.path.normpath(p.as_posix())
        if norm == ".." or norm.startswith("../") or norm.startswith(".." + os.sep):
            return None
        return Path(norm).as_posix()
    for candidate in (Path(os.path.abspath(p)), p.resolve(strict=False)):
        try:
            return candidate.relative_to(session_dir).as_posix()
        except ValueError:
            continue
    return None


def _moved_session_path(p: Path, session_dir: Path) -> str | None:
    """A path inside this session's old location (the directory was moved or copied since cht
    wrote it): `/old/place/<session name>/frames/F0001.jpg` -> `frames/F0001.jpg` if that exists."""
    parts = p.parts
    for i in range(len(parts) - 1, -1, -1):
        if parts[i] == session_dir.name and i + 1 < len(parts):
            rel = Path(*parts[i + 1:])
            if (session_dir / rel).is_file():
                return rel.as_posix()
            return None
    return None


def _seconds(value: Any, start: datetime | None, path: Path, row: int) -> float:
    if isinstance(value, bool) or value is None:
        raise LegacyIndexError(path, f"timestamp must be seconds since the session start, got {value!r}", row)
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        try:
            seconds = float(value)
        except ValueError:
            try:
                when = datetime.fromisoformat(value)
            except ValueError:
                raise LegacyIndexError(path, f"timestamp {value!r} is neither seconds nor an ISO date-time",
                                       row) from None
            if start is None:
                raise LegacyIndexError(path, f"ISO timestamp {value!r} needs the session start time, but the "
                                       "session directory is not named YYYYmmdd_HHMMSS", row) from None
            if when.tzinfo is not None:  # the session name is local wall-clock time
                when = when.astimezone().replace(tzinfo=None)
            seconds = (when - start).total_seconds()
    else:
        raise LegacyIndexError(path, f"timestamp must be a number, got {type(value).__name__}", row)
    if not math.isfinite(seconds) or seconds < 0:
        raise LegacyIndexError(path, f"timestamp {value!r} is not a time inside the session", row)
    return seconds


class _Timeline:
    """Segments of the session (offsets, lazily probed frame rates) to place legacy frames."""

    def __init__(self, session_dir: Path):
        self.segments: list[Any] = []
        self._fps: dict[int, float | None] = {}
        try:
            from cht_lab.layout import discover_segments

            self.segments = sorted(discover_segments(session_dir), key=lambda s: s.offset)
        except Exception as exc:  # no recordings, unreadable ones: frames keep unknown placement
            log.info("legacy import: no segments to place frames on (%s)", exc)

    def fps(self, seg: Any) -> float | None:
        if seg.index not in self._fps:
            try:
                from cht_lab.ffmpeg import probe

                video = probe(seg.path).video
                self._fps[seg.index] = float(video.fps) if video is not None and video.fps else None
            except Exception as exc:
                log.info("legacy import: no frame rate for %s (%s)", seg.path, exc)
                self._fps[seg.index] = None
        return self._fps[seg.index]

    def place(self, ts: float) -> tuple[int, float, int]:
        seg = None
        for s in self.segments:
            if s.offset <= ts + 1e-9:
                seg = s
        if seg is None:
            return -1, math.nan, -1
        pts = max(0.0, ts - seg.offset)
        fps = self.fps(seg)
        return int(seg.index), pts, int(round(pts * fps)) if fps else -1


def _jpeg_facts(path: Path) -> tuple[int, int, int]:
    try:
        size = path.stat().st_size
    except OSError:
        return -1, -1, -1
    try:
        from PIL import Image

        with Image.open(path) as im:
            w, h = im.size
    except Exception:
        w, h = -1, -1
    return int(w), int(h), int(size)


def load_legacy_rows(json_path: Path, session_dir: Path) -> list[dict[str, Any]]:
    """Rows for the frames table from cht's index.json (raises LegacyIndexError on bad input)."""
    from cht_lab.layout import parse_start_time

    try:
        text = json_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise LegacyIndexError(json_path, "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise LegacyIndexError(json_path, f"cannot read it: {exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LegacyIndexError(json_path, f"not valid JSON: {exc.msg} at line {exc.lineno} "
                               f"column {exc.colno}") from None
    if isinstance(data, dict) and isinstance(data.get("frames"), list):
        data = data["frames"]
    if not isinstance(data, list):
        raise LegacyIndexError(json_path, f"expected a list of frame records, got a JSON {type(data).__name__}")
    start = parse_start_time(session_dir.name)
    start_utc = start.astimezone(timezone.utc) if start is not None else None  # naive = local clock
    timeline = _Timeline(session_dir) if data else None
    rows: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for i, rec in enumerate(data):
        if not isinstance(rec, dict):
            raise LegacyIndexError(json_path, f"expected an object, got {json.dumps(rec)[:60]}", i)
        fid = rec.get("id")
        if not isinstance(fid, str) or not fid.strip():
            raise LegacyIndexError(json_path, f"id must be a non-empty string, got {fid!r}", i)
        if unsafe_id(fid):
            raise LegacyIndexError(json_path, f"id {fid!r} is not a plain file name (no '/', '..' or leading dot)", i)
        if fid in seen:
            raise LegacyIndexError(json_path, f"duplicate id {fid!r} (also row {seen[fid]})", i)
        seen[fid] = i
        ts = _seconds(rec.get("timestamp"), start, json_path, i)
        raw_path = rec.get("path")
        if not isinstance(raw_path, str) or not raw_path.strip():
            raise LegacyIndexError(json_path, f"path must be a non-empty string, got {raw_path!r}", i)
        rel = session_relative(raw_path, session_dir)
        if rel is None and Path(raw_path).is_absolute():
            rel = _moved_session_path(Path(raw_path), session_dir)
        stored = rel if rel is not None else raw_path  # outside the session: kept as cht wrote it
        sent = rec.get("sent_to_agent", False)
        if sent in (0, 1) and not isinstance(sent, float):
            sent = bool(sent)
        if not isinstance(sent, bool):
            raise LegacyIndexError(json_path, f"sent_to_agent must be true or false, got {sent!r}", i)
        file = session_dir / stored if rel is not None else Path(raw_path)
        width, height, size = _jpeg_facts(file)
        segment, pts, frame_index = timeline.place(ts) if timeline is not None else (-1, math.nan, -1)
        if start_utc is not None:
            captured = start_utc + timedelta(seconds=ts)
        else:
            try:
                captured = datetime.fromtimestamp(file.stat().st_mtime, timezone.utc)
            except OSError:
                captured = None
        rows.append({
            "id": fid, "ts": ts, "pts": pts, "segment": segment, "frame_index": frame_index,
            "score": math.nan, "metric": None, "threshold": math.nan, "kind": "scene", "path": stored,
            "width": width, "height": height, "bytes": size, "captured_at": captured, "sent_to_agent": sent,
        })
    return rows
