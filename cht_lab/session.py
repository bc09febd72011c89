"""Recorded sessions: open a cht (or cht_lab) session directory, score it once, then ask questions.

Decoding happens in `score()` (once per segment) and `capture_frames()` (one pass for many
frames); everything else — scenes at any threshold, sweeps, the best threshold, the frame index
export — is answered from the stored scores, so tuning never re-decodes.

A session reads its recordings and labels from its *source* directory and writes everything it
makes (index, frames, audio chunks, thumbnail cache, exports) into its *working* directory,
`Session.dir`. They are the same directory unless the source is read-only — a bundled sample or
an unwritable folder — whose working directory is then under the user's data directory (the rule
and the names are in `cht_lab.layout`), so a bundled sample is never written to.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from pathlib import Path
from typing import Any, Iterator

import pandas as pd

from cht_lab import layout
from cht_lab._version import __version__
from cht_lab.tuning import sweep as tuning
from cht_lab.detect.decision import DEFAULT_MIN_GAP
from cht_lab.ffmpeg import MediaError, probe
from cht_lab.frame_table import (VIDEO_SIZES_KEY, capture_scenes, export_format, export_target, frame_index_table,
                                 write_frames)
from cht_lab.index.session_index import SessionIndex
from cht_lab.layout import session_relative
from cht_lab.session_labels import SessionLabels

log = logging.getLogger(__name__)

_RECORDING_KEY = "recording"  # metadata key: the external file a single-recording session reads


class Session(SessionLabels):
    """A recorded session: its segments on one timeline, its index, its labels.

    Two directories, never confused:

    - `source_dir`: where the recordings (`stream/`) and `labels.csv` are read from. Only read.
      For a single recording (`recording` set) it is the working directory.
    - `dir` (alias `session_dir`): the working directory; `index/`, `frames/`, `audio/`,
      `.cache/` (panel thumbnails) and relative export paths go here.

    They are one directory unless the source is read-only (a bundled sample, or a directory this
    process cannot write): then `dir` is `layout.work_dir_for(source_dir)` under the user's data
    directory ($CHT_LAB_DATA), and its index names the source, so `Session(<working dir>)` reopens
    the same session. `work_dir` chooses the working directory explicitly.
    """

    def __init__(self, session_dir: str | os.PathLike[str], *, recording: str | os.PathLike[str] | None = None,
                 work_dir: str | os.PathLike[str] | None = None):
        opened = Path(session_dir).expanduser().resolve()
        self._recording = Path(recording).expanduser().resolve() if recording else None
        if work_dir is not None:
            self.source_dir, self.dir = opened, Path(work_dir).expanduser().resolve()
        else:
            self.source_dir, self.dir = layout.placement(opened, single=self._recording is not None)
        if self.dir != self.source_dir:
            log.info("session %s: working directory %s (the source is read-only)", self.source_dir, self.dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._index = SessionIndex(self.dir)
        if self._recording is None:
            ext = self._index.metadata().get(_RECORDING_KEY)
            if ext:
                self._recording = Path(ext)
        self.segments = self._discover_segments()
        self.threshold: float | None = None
        self.metric: str | None = None
        self._import_legacy_and_compact()

    @property
    def session_dir(self) -> Path:
        """The working directory (same as `dir`; the name LiveSession uses)."""
        return self.dir

    @property
    def recording(self) -> Path | None:
        """The recording file of a single-recording session (None for a session directory)."""
        return self._recording

    @property
    def read_only_source(self) -> bool:
        """True when the recordings' directory is not where this session writes."""
        return self.source_dir != self.dir

    # ------------------------------------------------------------------ discovery

    def _discover_segments(self) -> list[layout.Segment]:
        if self._recording is not None:
            return [layout.Segment(0, self._recording, 0.0)]
        return layout.discover_segments(self.source_dir)

    def _import_legacy_and_compact(self) -> None:
        """Opening is when parts are compacted and cht's legacy frames/index.json is imported.

        Skipped (read-only) when a live writer holds the session. A read-only source's legacy
        index is not imported: its JPEGs are outside the working directory, where index paths stay.
        """
        from cht_lab.index.session_index import IndexLockedError

        legacy = self.source_dir / layout.FRAMES_DIR / "index.json"
        if legacy.exists() and self.read_only_source:
            log.warning("%s: not importing cht's %s: the source is read-only and index paths stay inside the "
                        "working directory %s", self.source_dir, legacy, self.dir)
        try:
            with self._writer() as idx:
                if self._recording is not None:
                    idx.update_metadata(**{_RECORDING_KEY: str(self._recording)})
                if self.read_only_source:
                    idx.update_metadata(**{layout.SOURCE_KEY: str(self.source_dir)})
                idx.update_metadata(segments=[{"index": s.index, "path": session_relative(s.path, self.dir), "offset": s.offset}
                                              for s in self.segments])
                if legacy.exists() and not self.read_only_source:
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
        """The source's name (a cht session is named by its start time)."""
        return self.source_dir.name

    def review(self, metric: str | None = None, **options: Any) -> Any:
        """A label review of this session's candidates (`cht_lab.tuning.review.Review`), saved after every decision."""
        from cht_lab.tuning.review import Review

        _, metric, min_gap = self.resolve(None, metric, options.pop("min_gap", None))
        return Review(self._require_scores(), self.read_labels(non_events=True), metric=metric, min_gap=min_gap,
                      save=self.save_labels, **options)

    def __repr__(self) -> str:
        where = f", work_dir={str(self.dir)!r}" if self.read_only_source else ""
        return f"Session({str(self.source_dir)!r}{where}, segments={len(self.segments)})"

    # ------------------------------------------------------------------ reading

    def frames(self) -> pd.DataFrame:
        return self._index.frames()

    def scores(self) -> pd.DataFrame:
        return self._index.scores()

    def audio(self) -> pd.DataFrame:
        return self._index.audio()

    def metadata(self) -> dict[str, Any]:
        return self._index.metadata()

    def frame_index(self, threshold: float | None = None, metric: str | None = None,
                    min_gap: float | None = None, *, capture: bool = False) -> pd.DataFrame:
        """The frame index of this recording at a threshold: what a live run would have captured.

        One row per detection (`scenes()`), in the frames table's columns, with `metric` and
        `threshold` saying what selected it. Detections already captured carry their id, path,
        bytes and capture time; the others have no JPEG yet (id and path empty, bytes -1):
        `capture=True` writes them first (`capture_frames()`), so every row has its image.
        Manual captures in the index are kept. A session without scores but with captured frames
        (cht captured them live) gives those as stored; with neither, RuntimeError says to score.
        """
        scores = self.scores()
        if scores.empty:
            stored = self.frames()
            if stored.empty:
                raise RuntimeError(f"{self.source_dir}: no scores and no captured frames yet — score it first "
                                   "(Session.score(), or `cht-lab score`)")
            log.info("%s: not scored; the frame index is the %d frames captured live", self.source_dir, len(stored))
            return stored
        threshold, metric, min_gap = self.resolve(threshold, metric, min_gap)
        if capture:
            self.capture_frames(threshold, metric, min_gap)
        stored = self.frames()
        det = tuning.scenes(scores, threshold, metric=metric, min_gap=min_gap)
        return frame_index_table(self, det, stored, threshold, metric)

    def export(self, path: str | os.PathLike[str], format: str | None = None, table: str = "frames", *,
               threshold: float | None = None, metric: str | None = None, min_gap: float | None = None,
               capture: bool = False) -> Path:
        """Write a table as Parquet or CSV (format: from the suffix, else parquet); returns the path.

        `table="frames"` writes `frame_index(threshold, metric, min_gap, capture=capture)`: the
        detections at the chosen threshold with every column of the frame index (an empty result
        is written, and logged with the reason). "scores" and "audio" write those tables; an empty
        one raises RuntimeError naming what to run first, rather than writing a file with a header.
        A relative path lands in the working directory `dir`; nothing goes inside index/.
        """
        fmt = export_format(path, format)
        if table == "frames":
            frames = self.frame_index(threshold, metric, min_gap, capture=capture)
            dest = export_target(self.dir, path)
            write_frames(dest, frames, fmt)
            if frames.empty:
                log.warning("%s: exported an empty frame index: %s", dest, self.why_no_detections(threshold, metric,
                                                                                                   min_gap))
            else:
                log.info("exported %d frames to %s", len(frames), dest)
            return dest
        if table == "scores" and self.scores().empty:
            raise RuntimeError(f"{self.source_dir}: no scores to export yet — score it first "
                               "(Session.score(), or `cht-lab score`)")
        if table == "audio" and self.audio().empty:
            raise RuntimeError(f"{self.source_dir}: no audio chunks to export — cut them first "
                               "(Session.extract_audio()); a session without audio has none")
        dest = Path(self._index.export(path, format=fmt, table=table))
        log.info("exported %s to %s", table, dest)
        return dest

    def why_no_detections(self, threshold: float | None = None, metric: str | None = None,
                          min_gap: float | None = None) -> str:
        """A sentence saying why a threshold selects nothing (the highest score and the threshold)."""
        scores = self.scores()
        if scores.empty:
            return "the session has no scores yet; score it first"
        threshold, metric, _ = self.resolve(threshold, metric, min_gap)
        if metric not in scores:
            return f"the scores have no {metric!r} column"
        top = float(scores[metric].max())
        return (f"no {metric} score reaches the threshold {threshold:g} (the highest is {top:.4g}); "
                "lower the threshold")

    # ------------------------------------------------------------------ decoding work

    def score(self, backend: str = "auto", progress: bool = True, force: bool = False) -> pd.DataFrame:
        """Decode each segment once into the scores table; idempotent for unchanged segments."""
        from cht_lab.detect import decode, offline, scoring

        if not self.segments:
            raise MediaError(self.source_dir, f"no recordings found in {layout.STREAM_DIR}/ to score")
        signature = {"version": __version__, "width": decode.ANALYSIS_WIDTH, "metrics": list(scoring.METRICS)}
        done = dict(self.metadata().get("scored", {}))
        todo = []
        for seg in self.segments:
            key = session_relative(seg.path, self.dir)
            stamp = {"signature": signature, "size": seg.path.stat().st_size, "offset": seg.offset}
            if force or done.get(key) != stamp:
                todo.append((seg, key, stamp))
        if not todo:
            log.info("%s: scores are up to date (%d segments); force=True re-scores", self.source_dir,
                     len(self.segments))
            return self.scores()
        import time

        sizes = dict(self.metadata().get(VIDEO_SIZES_KEY) or {})
        with self._writer() as idx:
            if len(todo) != len(self.segments) or done or not self.scores().empty:
                # a partial re-score, or rows a live run wrote: the simplest correct thing is to rebuild
                idx.clear("scores")
                todo = [(seg, session_relative(seg.path, self.dir),
                         {"signature": signature, "size": seg.path.stat().st_size, "offset": seg.offset})
                        for seg in self.segments]
                done = {}
            backend_used = None
            for seg, key, stamp in todo:
                log.info("scoring segment %d: %s (starts at %.3f s)", seg.index, seg.path, seg.offset)
                t0 = time.monotonic()
                result = offline.score_recording(seg.path, backend=backend, segment=seg.index,
                                                 ts_offset=seg.offset, progress=progress)
                idx.append_scores(result)
                idx.flush()
                done[key] = stamp
                backend_used = result.attrs.get("backend", backend_used)
                if result.attrs.get("width") and result.attrs.get("height"):
                    sizes[str(seg.index)] = [int(result.attrs["width"]), int(result.attrs["height"])]
                idx.update_metadata(scored=done, backend=backend_used, **{VIDEO_SIZES_KEY: sizes})
                log.info("segment %d: %d frames scored in %.1f s; %s", seg.index, len(result),
                         time.monotonic() - t0, result.attrs.get("backend_reason", backend_used))
                if result.attrs.get("error"):
                    log.warning("%s: decoding stopped early: %s", seg.path, result.attrs["error"])
        return self.scores()

    def _require_scores(self) -> pd.DataFrame:
        scores = self.scores()
        if scores.empty:
            raise RuntimeError(f"{self.source_dir}: no scores yet — score it first (Session.score(), or `cht-lab score`)")
        return scores

    def resolve(self, threshold: float | None = None, metric: str | None = None,
                min_gap: float | None = None) -> tuple[float, str, float]:
        """(threshold, metric, min_gap) that a call with these arguments uses: given values win, then
        what the panel set (`self.threshold`/`self.metric`), then the metric's defaults.
        ValueError for a negative or non-finite threshold or gap, or a metric without a default."""
        from cht_lab.detect.scoring import DEFAULT_METRIC, DEFAULT_THRESHOLDS

        metric = metric or self.metric or DEFAULT_METRIC
        if threshold is None:
            threshold = self.threshold if (self.threshold is not None and metric == (self.metric or DEFAULT_METRIC)) \
                else DEFAULT_THRESHOLDS.get(metric)
            if threshold is None:
                raise ValueError(f"metric {metric!r} has no default threshold: use one of "
                                 f"{', '.join(DEFAULT_THRESHOLDS)}, or give a threshold")
        threshold = float(threshold)
        if not (math.isfinite(threshold) and threshold >= 0):
            raise ValueError(f"threshold must be a finite number >= 0, not {threshold!r}")
        min_gap = DEFAULT_MIN_GAP if min_gap is None else float(min_gap)
        if not (math.isfinite(min_gap) and min_gap >= 0):
            raise ValueError(f"min_gap must be a finite number of seconds >= 0, not {min_gap!r}")
        return threshold, metric, min_gap

    def scenes(self, threshold: float | None = None, metric: str | None = None,
               min_gap: float | None = None) -> pd.DataFrame:
        """The score rows the capture rule selects at `threshold` — from stored scores, no decoding."""
        threshold, metric, min_gap = self.resolve(threshold, metric, min_gap)
        found = tuning.scenes(self._require_scores(), threshold, metric=metric, min_gap=min_gap)
        log.info("%d scenes at %s >= %g (min gap %g s)", len(found), metric, threshold, min_gap)
        return found

    def capture_frames(self, threshold: float | None = None, metric: str | None = None,
                       min_gap: float | None = None, quality: int = 90) -> pd.DataFrame:
        """Write the JPEGs of `scenes()` into the working directory's frames/ and the frames table
        (one decode per segment)."""
        threshold, metric, min_gap = self.resolve(threshold, metric, min_gap)
        wanted = self.scenes(threshold, metric, min_gap)
        existing = self.frames()
        have = set(zip(existing["segment"], existing["frame_index"])) if not existing.empty else set()
        wanted = wanted[[(s, f) not in have for s, f in zip(wanted["segment"], wanted["frame_index"])]]
        if wanted.empty:
            return self.frames()
        with self._writer() as idx:
            capture_scenes(self, idx, wanted, existing, threshold, metric, quality)
        return self.frames()

    def extract_audio(self, **chunking: Any) -> pd.DataFrame:
        """Cut the session's audio into pause-aware WAV chunks (see cht_lab.audio.extractor) and index them.

        The sources are this session's segments (read where they are), the chunks go into the
        working directory's audio/.
        """
        from cht_lab.audio.offline import extract_audio

        sources = self._audio_sources()
        log.info("cutting audio of %d source(s) into %s", len(sources), self.dir / layout.AUDIO_DIR)
        with self._writer() as idx:
            extract_audio(self.dir, idx, sources=sources, **chunking)
        return self.audio()

    def _audio_sources(self) -> list[Any]:
        """Segments with an audio track, else the source's stream/audio.aac (cht's separate audio)."""
        from cht_lab.audio.extractor import AudioSegment

        found = []
        for seg in self.segments:
            try:
                has_audio = probe(seg.path).has_audio
            except MediaError as exc:
                log.warning("segment %d: cannot read its audio: %s", seg.index, exc)
                continue
            if has_audio:
                found.append(AudioSegment(seg.path, seg.offset, seg.index))
        aac = self.source_dir / layout.STREAM_DIR / layout.AUDIO_AAC
        if not found and aac.is_file() and aac.stat().st_size > 0:
            found.append(AudioSegment(aac, 0.0, 0))
        return found

    # ------------------------------------------------------------------ tuning (stored scores only)

    def _labels_required(self) -> pd.DataFrame:
        labels = self.labels
        if labels is None:
            raise RuntimeError(f"{self.dir}: no {layout.LABELS_CSV}; tuning needs ground truth")
        return labels

    def sweep(self, metric: str | None = None, thresholds: Any = None, tolerance: float = 0.5,
              min_gap: float | None = None) -> pd.DataFrame:
        """Detections (and precision/recall/F1 when labels exist) for a range of thresholds."""
        _, metric, min_gap = self.resolve(None, metric, min_gap)
        return tuning.sweep(self._require_scores(), self.labels, metric=metric, thresholds=thresholds,
                            tolerance=tolerance, min_gap=min_gap)

    def best_threshold(self, metric: str | None = None, tolerance: float = 0.5,
                       min_gap: float | None = None) -> float:
        _, metric, min_gap = self.resolve(None, metric, min_gap)
        return tuning.best_threshold(self._require_scores(), self._labels_required(), metric=metric,
                                     tolerance=tolerance, min_gap=min_gap)

    def evaluate(self, threshold: float | None = None, metric: str | None = None, tolerance: float = 0.5,
                 min_gap: float | None = None) -> tuning.MatchResult:
        threshold, metric, min_gap = self.resolve(threshold, metric, min_gap)
        return tuning.evaluate(self._require_scores(), self._labels_required(), threshold, metric=metric,
                               tolerance=tolerance, min_gap=min_gap)

    def compare_metrics(self, tolerance: float = 0.5) -> pd.DataFrame:
        return tuning.compare_metrics(self._require_scores(), self._labels_required(), tolerance=tolerance)

    def panel(self, **kwargs: Any) -> Any:
        """The interactive ipywidgets panel for this session."""
        from cht_lab.panel.session_panel import SessionPanel

        return SessionPanel(self, **kwargs)


def open_session(path: str | os.PathLike[str], *, work_dir: str | os.PathLike[str] | None = None) -> Session:
    """Open a cht or cht_lab session directory, or a single recording file.

    A recording inside `<session>/stream/` opens its session; any other file gets a sibling
    `<name>.session/` working directory holding its index and captured frames. A read-only source
    (a bundled sample, an unwritable folder) is read where it is and worked on in
    `layout.work_dir_for(source)` under $CHT_LAB_DATA; `work_dir` chooses that directory instead.
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise MediaError(p, "no such file or session directory")
    if p.is_dir():
        if not layout.is_session_dir(p):
            raise MediaError(p, "not a session directory (no stream/, index/ or scene.sock inside)")
        return Session(p, work_dir=work_dir)
    if p.parent.name == layout.STREAM_DIR and layout.is_session_dir(p.parent.parent):
        return Session(p.parent.parent, work_dir=work_dir)
    info = probe(p)  # clear error now for a file that is no recording
    if not info.has_video:
        raise MediaError(p, "has no video stream to detect scenes in")
    if work_dir is None:
        work_dir = layout.work_dir_for(p) if layout.is_read_only(p.parent) else p.with_name(p.name + ".session")
    return Session(work_dir, recording=p)
