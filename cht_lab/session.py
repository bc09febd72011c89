"""Recorded sessions: open a cht (or cht_lab) session directory, score it once, then ask questions.

Decoding happens in `score()` (once per segment) and `capture_frames()` (one pass for many
frames); everything else — scenes at any threshold, sweeps, the best threshold — is answered
from the stored scores, so tuning never re-decodes.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import Any, Iterator

import pandas as pd

from cht_lab import layout
from cht_lab._version import __version__
from cht_lab.tuning import sweep as tuning
from cht_lab.detect.decision import DEFAULT_MIN_GAP
from cht_lab.ffmpeg import MediaError, probe
from cht_lab.index.session_index import SessionIndex
from cht_lab.tuning.labels import load_labels

log = logging.getLogger(__name__)

_RECORDING_KEY = "recording"  # metadata key: the external file a single-recording session reads


class Session:
    """A recorded session: its segments on one timeline, its index, its labels."""

    def __init__(self, session_dir: str | os.PathLike[str], *, recording: str | os.PathLike[str] | None = None):
        self.dir = Path(session_dir).resolve()
        self.dir.mkdir(parents=True, exist_ok=True)
        self._recording = Path(recording).resolve() if recording else None
        self._index = SessionIndex(self.dir)
        if self._recording is None:
            ext = self._index.metadata().get(_RECORDING_KEY)
            if ext:
                self._recording = Path(ext)
        self.segments = self._discover_segments()
        self.threshold: float | None = None
        self.metric: str | None = None
        self._import_legacy_and_compact()

    # ------------------------------------------------------------------ discovery

    def _discover_segments(self) -> list[layout.Segment]:
        if self._recording is not None:
            return [layout.Segment(0, self._recording, 0.0)]
        return layout.discover_segments(self.dir)

    def _import_legacy_and_compact(self) -> None:
        """Opening is when parts are compacted and cht's legacy frames/index.json is imported.

        Skipped (read-only) when a live writer holds the session.
        """
        from cht_lab.index.session_index import IndexLockedError

        legacy = self.dir / layout.FRAMES_DIR / "index.json"
        try:
            with self._writer() as idx:
                if self._recording is not None:
                    idx.update_metadata(**{_RECORDING_KEY: str(self._recording)})
                idx.update_metadata(segments=[{"index": s.index, "path": _rel(s.path, self.dir), "offset": s.offset}
                                              for s in self.segments])
                if legacy.exists():
                    n = idx.import_legacy(legacy)
                    if n:
                        log.info("imported %d frames from cht's %s", n, legacy)
        except IndexLockedError as exc:
            log.info("%s is being written by a live session; opened read-only (%s)", self.dir, exc)

    @contextlib.contextmanager
    def _writer(self) -> Iterator[SessionIndex]:
        idx = SessionIndex(self.dir, writer=True)
        try:
            yield idx
        finally:
            idx.close()

    @property
    def id(self) -> str:
        return self.dir.name

    @property
    def labels(self) -> pd.DataFrame | None:
        """Ground truth from labels.csv (None when the session has none); LabelsError when malformed."""
        path = self.dir / layout.LABELS_CSV
        return load_labels(path) if path.exists() else None

    def __repr__(self) -> str:
        return f"Session({str(self.dir)!r}, segments={len(self.segments)})"

    # ------------------------------------------------------------------ reading

    def frames(self) -> pd.DataFrame:
        return self._index.frames()

    def scores(self) -> pd.DataFrame:
        return self._index.scores()

    def audio(self) -> pd.DataFrame:
        return self._index.audio()

    def metadata(self) -> dict[str, Any]:
        return self._index.metadata()

    def export(self, path: str | os.PathLike[str], format: str = "parquet", table: str = "frames") -> Path:
        """Write a table (default: the frame index) as Parquet or CSV; returns the written path."""
        return Path(self._index.export(path, format=format, table=table))

    # ------------------------------------------------------------------ decoding work

    def score(self, backend: str = "auto", progress: bool = True, force: bool = False) -> pd.DataFrame:
        """Decode each segment once into the scores table; idempotent for unchanged segments."""
        from cht_lab.detect import decode as analysis
        from cht_lab.detect import scoring

        if not self.segments:
            raise MediaError(self.dir, "no recordings found in stream/ to score")
        signature = {"version": __version__, "width": analysis.ANALYSIS_WIDTH, "metrics": list(scoring.METRICS)}
        done = dict(self.metadata().get("scored", {}))
        todo = []
        for seg in self.segments:
            key = _rel(seg.path, self.dir)
            stamp = {"signature": signature, "size": seg.path.stat().st_size, "offset": seg.offset}
            if force or done.get(key) != stamp:
                todo.append((seg, key, stamp))
        if not todo:
            return self.scores()
        with self._writer() as idx:
            if len(todo) != len(self.segments) or done:
                idx.clear("scores")  # partial re-score: simplest correct thing is to rebuild the table
                todo = [(seg, _rel(seg.path, self.dir),
                         {"signature": signature, "size": seg.path.stat().st_size, "offset": seg.offset})
                        for seg in self.segments]
                done = {}
            backend_used = None
            for seg, key, stamp in todo:
                result = analysis.score_recording(seg.path, backend=backend, segment=seg.index,
                                                  ts_offset=seg.offset, progress=progress)
                idx.append_scores(result)
                idx.flush()
                done[key] = stamp
                backend_used = result.attrs.get("backend", backend_used)
                idx.update_metadata(scored=done, backend=backend_used)
        return self.scores()

    def _require_scores(self) -> pd.DataFrame:
        scores = self.scores()
        if scores.empty:
            raise RuntimeError(f"{self.dir}: no scores yet — call score() first")
        return scores

    def _resolve(self, threshold: float | None, metric: str | None, min_gap: float | None) -> tuple[float, str, float]:
        from cht_lab.detect.scoring import DEFAULT_METRIC, DEFAULT_THRESHOLDS

        metric = metric or self.metric or DEFAULT_METRIC
        if threshold is None:
            threshold = self.threshold if (self.threshold is not None and metric == (self.metric or DEFAULT_METRIC)) \
                else DEFAULT_THRESHOLDS[metric]
        return float(threshold), metric, DEFAULT_MIN_GAP if min_gap is None else float(min_gap)

    def scenes(self, threshold: float | None = None, metric: str | None = None,
               min_gap: float | None = None) -> pd.DataFrame:
        """The score rows the capture rule selects at `threshold` — from stored scores, no decoding."""
        threshold, metric, min_gap = self._resolve(threshold, metric, min_gap)
        return tuning.scenes(self._require_scores(), threshold, metric=metric, min_gap=min_gap)

    def capture_frames(self, threshold: float | None = None, metric: str | None = None,
                       min_gap: float | None = None, quality: int = 90) -> pd.DataFrame:
        """Write the JPEGs of `scenes()` into frames/ and the frames table (one decode per segment)."""
        from datetime import datetime, timezone

        from cht_lab.detect.capture import capture_frames

        threshold, metric, min_gap = self._resolve(threshold, metric, min_gap)
        wanted = self.scenes(threshold, metric, min_gap)
        existing = self.frames()
        have = set(zip(existing["segment"], existing["frame_index"])) if not existing.empty else set()
        wanted = wanted[[(s, f) not in have for s, f in zip(wanted["segment"], wanted["frame_index"])]]
        if wanted.empty:
            return self.frames()
        (self.dir / layout.FRAMES_DIR).mkdir(exist_ok=True)
        by_segment = {s.index: s for s in self.segments}
        with self._writer() as idx:
            for seg_no, rows in wanted.groupby("segment", sort=True):
                seg = by_segment[int(seg_no)]
                ids = [idx.next_frame_id() for _ in range(len(rows))]
                paths = [self.dir / layout.FRAMES_DIR / f"{i}.jpg" for i in ids]
                shots = capture_frames(seg.path, rows["frame_index"].tolist(), paths, quality=quality)
                now = datetime.now(timezone.utc)
                idx.append_frames([
                    {"id": fid, "ts": float(r.ts), "pts": float(r.pts), "segment": int(r.segment),
                     "frame_index": int(r.frame_index), "score": float(getattr(r, metric)), "metric": metric,
                     "threshold": threshold, "kind": "scene", "path": _rel(p, self.dir),
                     "width": shot["width"], "height": shot["height"], "bytes": shot["bytes"],
                     "captured_at": now, "sent_to_agent": False}
                    for fid, r, p, shot in zip(ids, rows.itertuples(index=False), paths, shots)
                ])
        return self.frames()

    def extract_audio(self, **chunking: Any) -> pd.DataFrame:
        """Cut the session's audio into pause-aware WAV chunks (see cht_lab.audio.extractor) and index them."""
        from cht_lab.audio.extractor import extract_audio

        with self._writer() as idx:
            extract_audio(self.dir, idx, **chunking)
        return self.audio()

    # ------------------------------------------------------------------ tuning (stored scores only)

    def _labels_required(self) -> pd.DataFrame:
        labels = self.labels
        if labels is None:
            raise RuntimeError(f"{self.dir}: no {layout.LABELS_CSV}; tuning needs ground truth")
        return labels

    def sweep(self, metric: str | None = None, thresholds: Any = None, tolerance: float = 0.5,
              min_gap: float | None = None) -> pd.DataFrame:
        """Detections (and precision/recall/F1 when labels exist) for a range of thresholds."""
        _, metric, min_gap = self._resolve(None, metric, min_gap)
        return tuning.sweep(self._require_scores(), self.labels, metric=metric, thresholds=thresholds,
                            tolerance=tolerance, min_gap=min_gap)

    def best_threshold(self, metric: str | None = None, tolerance: float = 0.5,
                       min_gap: float | None = None) -> float:
        _, metric, min_gap = self._resolve(None, metric, min_gap)
        return tuning.best_threshold(self._require_scores(), self._labels_required(), metric=metric,
                                     tolerance=tolerance, min_gap=min_gap)

    def evaluate(self, threshold: float | None = None, metric: str | None = None, tolerance: float = 0.5,
                 min_gap: float | None = None) -> tuning.MatchResult:
        threshold, metric, min_gap = self._resolve(threshold, metric, min_gap)
        return tuning.evaluate(self._require_scores(), self._labels_required(), threshold, metric=metric,
                               tolerance=tolerance, min_gap=min_gap)

    def compare_metrics(self, tolerance: float = 0.5) -> pd.DataFrame:
        return tuning.compare_metrics(self._require_scores(), self._labels_required(), tolerance=tolerance)

    def panel(self, **kwargs: Any) -> Any:
        """The interactive ipywidgets panel for this session."""
        from cht_lab.panel.session_panel import SessionPanel

        return SessionPanel(self, **kwargs)


def _rel(path: Path, root: Path) -> str:
    """Path relative to the session directory when inside it (sessions can be moved), else absolute."""
    try:
        return Path(path).resolve().relative_to(root).as_posix()
    except ValueError:
        return str(Path(path).resolve())


def open_session(path: str | os.PathLike[str]) -> Session:
    """Open a cht or cht_lab session directory, or a single recording file.

    A recording inside `<session>/stream/` opens its session; any other file gets a sibling
    `<name>.session/` directory holding its index and captured frames.
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise MediaError(p, "no such file or session directory")
    if p.is_dir():
        if not layout.is_session_dir(p):
            raise MediaError(p, "not a session directory (no stream/, index/ or scene.sock inside)")
        return Session(p)
    if p.parent.name == layout.STREAM_DIR and layout.is_session_dir(p.parent.parent):
        return Session(p.parent.parent)
    info = probe(p)  # clear error now for a file that is no recording
    if not info.has_video:
        raise MediaError(p, "has no video stream to detect scenes in")
    return Session(p.with_name(p.name + ".session"), recording=p)
