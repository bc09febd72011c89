"""The index's `session.json`: session id, start time, segments, versions; small JSON, replaced atomically.

A reader merges the file over defaults derived from the directory name, so a session without an
index still has an id and a start time. An unreadable file is an IndexSchemaError for readers and
is moved to quarantine/ by the next writer (which starts fresh metadata rather than refusing).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from cht_lab._version import __version__
from cht_lab.atomic import write_atomic
from cht_lab.index.schema import SCHEMA_VERSION, IndexSchemaError

log = logging.getLogger(__name__)

METADATA_FILE = "session.json"

__all__ = ["METADATA_FILE", "default_metadata", "read_metadata_file", "load_for_writer", "named_segments",
           "write_metadata", "write_json_atomic", "now_iso"]


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return value.item()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _serializable(value: Any) -> bool:
    try:
        json.dumps(value, default=json_default)
        return True
    except (TypeError, ValueError):
        return False


def write_json_atomic(final: Path, data: Any) -> None:
    text = json.dumps(data, indent=2, sort_keys=True, default=json_default)
    write_atomic(final, text.encode("utf-8"))


def default_metadata(session_dir: Path) -> dict[str, Any]:
    from cht_lab.layout import parse_start_time

    start = parse_start_time(session_dir.name)
    return {"session_id": session_dir.name, "start_time": start.isoformat() if start else None,
            "segments": [], "backend": None, "package_version": None, "schema_version": SCHEMA_VERSION}


def read_metadata_file(index_dir: Path) -> dict[str, Any] | None:
    """The stored metadata; None when there is none; IndexSchemaError when it is unreadable."""
    path = index_dir / METADATA_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise IndexSchemaError(f"{path}: unreadable metadata: {exc}") from None
    if not isinstance(data, dict):
        raise IndexSchemaError(f"{path}: metadata must be a JSON object, got {type(data).__name__}")
    return data


def load_for_writer(session_dir: Path, index_dir: Path, quarantine_dir: str) -> dict[str, Any]:
    """The metadata a writer starts from; refuses a newer schema, quarantines an unreadable file."""
    path = index_dir / METADATA_FILE
    try:
        data = read_metadata_file(index_dir)
    except IndexSchemaError as exc:
        log.warning("%s; moving it to %s/ and starting fresh metadata", exc, quarantine_dir)
        (index_dir / quarantine_dir).mkdir(exist_ok=True)
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
        os.replace(path, index_dir / quarantine_dir / f"{METADATA_FILE}.{stamp}.corrupt")
        data = None
    version = (data or {}).get("schema_version", SCHEMA_VERSION)
    if isinstance(version, int) and version > SCHEMA_VERSION:
        raise IndexSchemaError(f"{path}: written with index schema version {version}; this cht_lab "
                               f"({__version__}) knows up to {SCHEMA_VERSION}; upgrade cht_lab to write it")
    meta = default_metadata(session_dir)
    meta.update(data or {})
    meta.setdefault("created_at", now_iso())
    return meta


def named_segments(session_dir: Path) -> dict[str, Any]:
    """{"segments": [...]} from stream/ when every recording is named by its start time (no
    probing needed); {} otherwise, leaving what a Session stored (it probes) alone."""
    from cht_lab.layout import parse_start_time, recordings

    start = parse_start_time(session_dir.name)
    files = recordings(session_dir)
    times = [parse_start_time(f.stem) for f in files]
    if start is None or not files or any(t is None for t in times):
        return {}
    return {"segments": [{"index": i, "path": f.relative_to(session_dir).as_posix(),
                          "offset": max(0.0, (t - start).total_seconds())}  # type: ignore[operator]
                         for i, (f, t) in enumerate(zip(files, times))]}


def write_metadata(index_dir: Path, meta: dict[str, Any]) -> dict[str, Any]:
    """Write `meta` atomically; returns it as stored (plain JSON values). TypeError names the
    fields that cannot be stored."""
    try:
        clean = json.loads(json.dumps(meta, default=json_default))
    except (TypeError, ValueError) as exc:
        bad = [k for k, v in meta.items() if not _serializable(v)]
        raise TypeError(f"metadata {', '.join(bad) or ''} cannot be stored as JSON: {exc}") from None
    write_json_atomic(index_dir / METADATA_FILE, clean)
    return clean
