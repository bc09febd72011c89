"""The frame index of a recorded session: what a live run would have captured, as a table.

Built from the stored scores at a threshold (`frame_index_table`), with the JPEGs written by one
decode per segment (`capture_scenes`) and exported atomically in the index's schema. `Session`
calls these; they use only its public side (segments, metadata, frames, directories).
"""

from __future__ import annotations

import logging
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from cht_lab import layout
from cht_lab.atomic import write_atomic
from cht_lab.ffmpeg import MediaError, video_header
from cht_lab.index.schema import FRAMES_SCHEMA, TABLES, UNKNOWN_INT, to_pandas
from cht_lab.index.session_index import EXPORT_FORMATS
from cht_lab.layout import session_relative

if TYPE_CHECKING:
    from cht_lab.index.session_index import SessionIndex
    from cht_lab.session import Session

log = logging.getLogger(__name__)

VIDEO_SIZES_KEY = "video_sizes"  # index metadata: {segment: [width, height]} seen while scoring


def frame_index_table(session: Session, det: pd.DataFrame, stored: pd.DataFrame, threshold: float,
                      metric: str) -> pd.DataFrame:
    """The detections `det` (`tuning.scenes()` rows) in the frames table's columns, joined with the
    captures already in `stored` (the frames table); manual captures are kept."""
    out = pd.DataFrame({
        "ts": det["ts"].to_numpy(dtype="float64"), "pts": det["pts"].to_numpy(dtype="float64"),
        "segment": det["segment"].to_numpy(dtype="int32"), "frame_index": det["frame_index"].to_numpy(dtype="int64"),
        "score": det[metric].to_numpy(dtype="float64"),
        "capture_ts": det["capture_ts"].to_numpy(dtype="float64"),
        "capture_frame_index": det["capture_frame_index"].to_numpy(dtype="int64"),
    })
    revisit_frame = det["revisit_frame"].to_numpy(dtype="int64")
    out["metric"], out["threshold"], out["kind"] = metric, threshold, "scene"
    captured = ["id", "path", "width", "height", "bytes", "captured_at", "sent_to_agent"]
    if not stored.empty:
        known = stored[["segment", "frame_index", *captured]].drop_duplicates(["segment", "frame_index"])
        out = out.merge(known.astype({"segment": "int32", "frame_index": "int64"}),
                        on=["segment", "frame_index"], how="left")
    else:
        for c in captured:
            out[c] = None
    ids = dict(zip(zip(out["segment"].tolist(), out["capture_frame_index"].tolist()), out["id"].tolist()))
    out["revisit_of"] = [ids.get((s, f)) if f >= 0 else None for s, f in zip(out["segment"].tolist(),
                                                                             revisit_frame.tolist())]
    missing = out["id"].isna()
    if missing.any():
        sizes = video_sizes(session, sorted(set(out.loc[missing, "segment"].astype(int))))
        for c, i in (("width", 0), ("height", 1)):
            out[c] = [int(v) if pd.notna(v) else sizes.get(int(s), (UNKNOWN_INT, UNKNOWN_INT))[i]
                      for v, s in zip(out[c], out["segment"])]
        out["bytes"] = pd.to_numeric(out["bytes"]).fillna(UNKNOWN_INT).astype("int64")
        out["sent_to_agent"] = out["sent_to_agent"].eq(True)
        log.info("%d of %d detections have no JPEG yet (capture=True writes them)", int(missing.sum()), len(out))
    if not stored.empty and "kind" in stored:
        manual = stored[stored["kind"] == "manual"]
        keys = set(zip(out["segment"], out["frame_index"]))
        manual = manual[[(s, f) not in keys for s, f in zip(manual["segment"], manual["frame_index"])]]
        if not manual.empty:
            out = pd.concat([out, manual[FRAMES_SCHEMA.names]], ignore_index=True)
    out = out.sort_values("ts", kind="stable", ignore_index=True)[FRAMES_SCHEMA.names]
    import pyarrow as pa

    out["captured_at"] = pd.to_datetime(out["captured_at"], utc=True)
    table = pa.Table.from_pandas(out, schema=FRAMES_SCHEMA, preserve_index=False)
    return to_pandas(TABLES["frames"], table)


def video_sizes(session: Session, segments: list[int]) -> dict[int, tuple[int, int]]:
    """Picture size of each segment (captures are full size): from scoring, else the header."""
    stored = session.metadata().get(VIDEO_SIZES_KEY) or {}
    sizes = {int(k): (int(v[0]), int(v[1])) for k, v in stored.items()}
    by_index = {s.index: s for s in session.segments}
    for seg in segments:
        if seg in sizes or seg not in by_index:
            continue
        try:
            h = video_header(by_index[seg].path)
            sizes[seg] = (int(h.width), int(h.height))
        except (MediaError, OSError) as exc:
            log.warning("picture size of segment %d unknown (-1): %s", seg, exc)
    return sizes


def capture_scenes(session: Session, idx: SessionIndex, wanted: pd.DataFrame, existing: pd.DataFrame,
                   threshold: float, metric: str, quality: int) -> None:
    """Write the JPEGs of the `wanted` scenes (one decode per segment) and their frames rows into
    `idx`; a revisit names the capture of its earlier screen, in `existing` (the frames table) or
    among these."""
    from cht_lab.detect.capture import capture_frames

    known: dict[tuple[int, int], Any] = {} if existing.empty else {  # (segment, captured frame) -> id
        (int(sg), int(c if c >= 0 else f)): i for sg, c, f, i in zip(existing["segment"], existing["capture_frame_index"],
                                                                    existing["frame_index"], existing["id"])}

    log.info("capturing %d frames into %s", len(wanted), session.dir / layout.FRAMES_DIR)
    (session.dir / layout.FRAMES_DIR).mkdir(exist_ok=True)
    by_segment = {s.index: s for s in session.segments}
    for seg_no, rows in wanted.groupby("segment", sort=True):
        seg = by_segment[int(seg_no)]
        ids = [idx.next_frame_id() for _ in range(len(rows))]
        paths = [session.dir / layout.FRAMES_DIR / f"{i}.jpg" for i in ids]
        shots = capture_frames(seg.path, rows["capture_frame_index"].tolist(), paths, quality=quality)
        now = datetime.now(timezone.utc)
        for fid, r in zip(ids, rows.itertuples(index=False)):
            known[(int(r.segment), int(r.capture_frame_index))] = fid
        idx.append_frames([
            {"id": fid, "ts": float(r.ts), "pts": float(r.pts), "segment": int(r.segment),
             "frame_index": int(r.frame_index), "score": float(getattr(r, metric)), "metric": metric,
             "threshold": threshold, "kind": "scene", "path": session_relative(p, session.dir),
             "width": shot["width"], "height": shot["height"], "bytes": shot["bytes"],
             "captured_at": now, "sent_to_agent": False, "capture_ts": float(r.capture_ts),
             "capture_frame_index": int(r.capture_frame_index),
             "revisit_of": known.get((int(r.segment), int(r.revisit_frame))) if r.revisit_frame >= 0 else None}
            for fid, r, p, shot in zip(ids, rows.itertuples(index=False), paths, shots)
        ])


def export_format(path: str | os.PathLike[str], format: str | None) -> str:
    """The export format: `format`, else from the suffix (.csv), else parquet."""
    fmt = str(format).lower().lstrip(".") if format else ("csv" if str(path).lower().endswith(".csv") else "parquet")
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"unknown export format {format!r}: use one of {', '.join(EXPORT_FORMATS)}")
    return fmt


def export_target(work_dir: Path, path: str | os.PathLike[str]) -> Path:
    """Where an export goes: a relative path inside the working directory, an absolute one as given;
    never inside index/ (the same rule as SessionIndex.export)."""
    dest = Path(path).expanduser()
    relative = not dest.is_absolute()
    dest = (work_dir / dest if relative else dest).resolve(strict=False)
    if relative and work_dir not in dest.parents:
        raise ValueError(f"{path}: a relative export path stays inside the session directory {work_dir}; "
                         "give an absolute path to write elsewhere")
    index_dir = work_dir / layout.INDEX_DIR
    if dest == index_dir or index_dir in dest.parents:
        raise ValueError(f"{dest}: cannot export into {index_dir} (the index's own folder); choose a path elsewhere")
    if dest.is_dir():
        raise ValueError(f"{dest}: is a directory; give a file name to export to")
    return dest


def write_frames(dest: Path, frames: pd.DataFrame, fmt: str) -> None:
    """Write the frame index atomically (a reader never sees half a file), in the index's schema."""
    if fmt == "parquet":
        table = pa.Table.from_pandas(frames, schema=FRAMES_SCHEMA, preserve_index=False)
        write_atomic(dest, lambda p: pq.write_table(table, p, compression="zstd"), to_path=True, mkdir=True)
    else:
        write_atomic(dest, lambda f: frames.to_csv(f, index=False), text=True, mkdir=True)


__all__ = ["frame_index_table", "video_sizes", "capture_scenes", "export_format", "export_target", "write_frames",
           "VIDEO_SIZES_KEY"]
