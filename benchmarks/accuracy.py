"""Detection accuracy on the labeled bundled samples: cht_lab vs PySceneDetect, at defaults and at best thresholds.

    python benchmarks/accuracy.py                       # every bundled sample
    python benchmarks/accuracy.py --samples slides coding --json out.json

For each sample (cht_lab.tools.samples.render: slides, desktop, coding, twoseg), against its labels.csv, with
one matcher for every tool (cht_lab.tuning.sweep.match: greedy one-to-one nearest matching, ±0.5 s,
interval labels widened by the tolerance):

- cht_lab: the sample is copied (stream/ + labels.csv) into a temp dir and scored once
  (Session.score()); F1 at the default threshold (Session.evaluate()), then Session.sweep() /
  Session.best_threshold() and the F1 there. Everything after the one decode comes from stored scores.
- PySceneDetect ContentDetector and AdaptiveDetector: one decode per recording segment (OpenCV
  backend, SceneManager defaults), both detectors at their defaults in one pass, recording each
  frame's `content_val`. Cut times are the first frame of each new scene plus the segment's offset
  on the session timeline (twoseg: two segments, a 5 s gap). The sweeps need no second decode:
  ContentDetector: subclasses whose `_calculate_frame_score` returns the recorded value, so its
    own `process_frame` (`content_val >= threshold` through its FlashFilter, merge mode,
    min_scene_len 15 frames) decides at each threshold tried.
  AdaptiveDetector: a cut needs `adaptive_ratio >= adaptive_threshold` AND `content_val >=
    min_content_val` (15), so both are swept (a cut whose content_val is under 15 is out of reach
    of the ratio alone). Its rule (those two gates, then >= 15 frames after the last cut) is
    applied vectorised to the recorded values; the detector's own code, replayed the same way as
    ContentDetector, must give identical cuts at the default, at the best pair and at 12 random
    pairs tried, or the run stops.
  Both replays at the defaults must equal the real run's cuts.

Thresholds tried: ~100 from cht_lab.tuning.sweep.default_thresholds over the observed values (evenly
spaced + quantiles of per-window maxima), then up to 100 observed values around the best — the
search cht_lab's best_threshold does on its own scores; for AdaptiveDetector that ratio sweep runs
at min_content_val 15 and ~16 levels over content_val's range, refined around the best level. The
reported best threshold is the middle of the widest run of best-F1 thresholds (Adaptive:
adaptive_threshold/min_content_val; ties keep min_content_val 15).

Target (issue 7): cht_lab's best F1 >= 0.97 on every sample and never below PySceneDetect's best.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cht_lab.tuning import sweep as tuning  # noqa: E402
from cht_lab.tools.samples import SAMPLES, sample_dir  # noqa: E402
from cht_lab.detect.scoring import DEFAULT_METRIC, DEFAULT_THRESHOLDS  # noqa: E402
from cht_lab.session import Session  # noqa: E402

TOLERANCE = 0.5
TARGET_F1 = 0.97
N_THRESHOLDS = 100
N_REFINE = 100


@dataclass
class ToolResult:
    """One tool on one sample: F1 at the tool's default and at its best threshold."""

    default_threshold: float
    default_f1: float
    default_detections: int
    best_threshold: float
    best_f1: float
    best_detections: int
    thresholds_tried: int


_F1_CACHE: dict[tuple[Any, ...], tuple[float, int]] = {}


def f1_of(detections: Any, labels: pd.DataFrame) -> tuple[float, int]:
    """F1 and the number of detections, with the one matcher used for every tool.

    Memoised on the detection times: many thresholds of a sweep give the same detections.
    """
    dets = tuple(sorted(float(t) for t in detections))
    key = (tuple(labels["time"].tolist()), tuple(labels["end"].fillna(-1.0).tolist()), dets)
    if key not in _F1_CACHE:
        m = tuning.match(list(dets), labels, tolerance=TOLERANCE)
        _F1_CACHE[key] = (m.f1, m.tp + m.fp)
    return _F1_CACHE[key]


# --------------------------------------------------------------------------- cht_lab


def copy_sample(name: str, dest_root: Path) -> Path:
    """stream/ and labels.csv of a bundled sample, copied so scoring never writes into data/samples/."""
    src = sample_dir(name)
    dest = dest_root / src.name
    shutil.copytree(src / "stream", dest / "stream")
    shutil.copy2(src / "labels.csv", dest / "labels.csv")
    return dest


def run_cht_lab(session: Session, backend: str) -> tuple[ToolResult, str, float]:
    """Score once, then default F1 and best F1 from the stored scores."""
    t0 = time.perf_counter()
    session.score(backend=backend, progress=False)
    elapsed = time.perf_counter() - t0
    labels = session.labels
    default = session.evaluate(tolerance=TOLERANCE)
    default_thr = DEFAULT_THRESHOLDS[DEFAULT_METRIC]  # what Session uses when no threshold is given
    sw = session.sweep(tolerance=TOLERANCE)
    best = session.best_threshold(tolerance=TOLERANCE)
    best_f1, best_n = f1_of(session.scenes(best)["ts"], labels)
    def_f1, def_n = f1_of(session.scenes(default_thr)["ts"], labels)
    assert abs(def_f1 - default.f1) < 1e-12, "evaluate() and match() disagree"
    backend_used = str(session.metadata().get("backend", backend))
    return (ToolResult(default_thr, def_f1, def_n, best, best_f1, best_n, len(sw)),
            backend_used, elapsed)


# --------------------------------------------------------------------------- PySceneDetect


def _psd() -> Any:
    import scenedetect

    return scenedetect


def _recording(base: type) -> type:
    """`base` (a PySceneDetect detector) that keeps every frame's content_val and the cuts it emits."""

    class Recording(base):  # type: ignore[misc, valid-type]
        def __init__(self, **kw: Any) -> None:
            super().__init__(**kw)
            self.frame_scores: list[float] = []
            self.timecodes: list[Any] = []
            self.cuts: list[Any] = []

        def _calculate_frame_score(self, timecode: Any, frame_img: Any) -> float:
            score = super()._calculate_frame_score(timecode, frame_img)
            self.frame_scores.append(float(score))
            self.timecodes.append(timecode)
            return score

        def process_frame(self, timecode: Any, frame_img: Any) -> list[Any]:
            cuts = super().process_frame(timecode, frame_img)
            self.cuts += cuts
            return cuts

        def post_process(self, timecode: Any) -> list[Any]:
            cuts = super().post_process(timecode)
            self.cuts += cuts
            return cuts

    return Recording


def _replaying(base: type) -> type:
    """`base` fed recorded content_val values instead of frames: its own decision code, no decoding."""

    class Replaying(base):  # type: ignore[misc, valid-type]
        def __init__(self, frame_scores: list[float], **kw: Any) -> None:
            super().__init__(**kw)
            self._scores = iter(frame_scores)

        def _calculate_frame_score(self, timecode: Any, frame_img: Any) -> float:
            return next(self._scores)

    return Replaying


@dataclass
class Segment:
    """One recording segment as PySceneDetect saw it: frame times, content_val, cuts at the defaults."""

    offset: float
    fps: float
    timecodes: list[Any]
    frame_scores: list[float]
    content_cuts: list[float]
    adaptive_cuts: list[float]


def seconds(tc: Any) -> float:
    return float(tc.seconds if hasattr(tc, "seconds") else tc.get_seconds())


def decode_segment(path: Path, offset: float) -> Segment:
    """One PySceneDetect pass over a recording with both detectors at their defaults."""
    sd = _psd()
    from scenedetect.detectors import AdaptiveDetector, ContentDetector

    video = sd.open_video(str(path))
    manager = sd.SceneManager()
    content = _recording(ContentDetector)()
    adaptive = _recording(AdaptiveDetector)()
    manager.add_detector(content)
    manager.add_detector(adaptive)
    manager.detect_scenes(video)
    if content.frame_scores != adaptive.frame_scores:
        raise RuntimeError(f"{path.name}: ContentDetector and AdaptiveDetector scored frames differently")
    return Segment(offset, float(video.frame_rate), content.timecodes, content.frame_scores,
                   [seconds(c) + offset for c in content.cuts], [seconds(c) + offset for c in adaptive.cuts])


CONTENT_DEFAULT = 27.0  # ContentDetector(threshold=27.0)
ADAPTIVE_DEFAULT = 3.0  # AdaptiveDetector(adaptive_threshold=3.0, ...)
MIN_CONTENT_DEFAULT = 15.0  # AdaptiveDetector(..., min_content_val=15.0)


def replay(kind: str, seg: Segment, threshold: float | None = None, min_content_val: float | None = None,
           stats: Any = None) -> list[float]:
    """Cut times (session seconds) of one detector at `threshold`, from the recorded content_val."""
    from scenedetect.detectors import AdaptiveDetector, ContentDetector

    if kind == "content":
        det = _replaying(ContentDetector)(seg.frame_scores, **({} if threshold is None else {"threshold": threshold}))
    else:
        kw = {} if threshold is None else {"adaptive_threshold": threshold}
        if min_content_val is not None:
            kw["min_content_val"] = min_content_val
        det = _replaying(AdaptiveDetector)(seg.frame_scores, **kw)
    if stats is not None:
        det.stats_manager = stats
    cuts: list[Any] = []
    for tc in seg.timecodes:
        cuts += det.process_frame(tc, None)
    if seg.timecodes:
        cuts += det.post_process(seg.timecodes[-1])
    return sorted(seconds(c) + seg.offset for c in set(cuts))


@dataclass
class AdaptiveFrames:
    """Per rated frame of one segment: frame number, session time, adaptive_ratio and content_val.

    `ratio` is as recorded at the default min_content_val; `avg_zero` marks frames whose window
    average is 0, where AdaptiveDetector sets the ratio to 255 if content_val >= min_content_val,
    else 0 — so for another min_content_val those frames pass any adaptive_threshold <= 255.
    """

    frame: np.ndarray
    time: np.ndarray
    ratio: np.ndarray
    content: np.ndarray
    avg_zero: np.ndarray


def adaptive_frames(seg: Segment) -> AdaptiveFrames:
    """adaptive_ratio of each frame AdaptiveDetector rates, as it records it in its StatsManager."""
    from scenedetect import StatsManager
    from scenedetect.detectors import AdaptiveDetector

    stats = StatsManager()
    replay("adaptive", seg, stats=stats)
    key = AdaptiveDetector().get_metrics()[-1]
    rows = [(i, seconds(tc) + seg.offset, r, seg.frame_scores[i])
            for i, tc in enumerate(seg.timecodes) if (r := stats.get_metrics(tc, [key])[0]) is not None]
    frame, t, ratio, content = (np.asarray(c) for c in zip(*rows)) if rows else (np.zeros(0),) * 4
    frame = frame.astype(np.int64)
    scores = np.asarray(seg.frame_scores, dtype=np.float64)
    w = AdaptiveDetector().window_width
    window = np.stack([scores[frame + k] for k in range(-w, w + 1) if k != 0]) if frame.size else np.zeros((0, 0))
    avg_zero = np.abs(window.sum(axis=0) / (2.0 * w)) < 0.00001 if frame.size else np.zeros(0, bool)
    return AdaptiveFrames(frame, t.astype(np.float64), ratio.astype(np.float64), content.astype(np.float64),
                          avg_zero)


ADAPTIVE_MIN_SCENE_LEN = 15  # frames, AdaptiveDetector's default


def fast_adaptive(frames: list[AdaptiveFrames], threshold: float, min_content_val: float) -> list[float]:
    """AdaptiveDetector's decision on recorded values, vectorised: a rated frame cuts when
    adaptive_ratio >= threshold and content_val >= min_content_val and it is >= min_scene_len frames
    after the last cut (the first cut counts from frame 0). Checked against `replay` in sweep_adaptive."""
    out: list[float] = []
    for f in frames:
        last = 0
        passes = np.where(f.avg_zero, 255.0 >= threshold, f.ratio >= threshold)
        for i in np.flatnonzero(passes & (f.content >= min_content_val)).tolist():
            if f.frame[i] - last >= ADAPTIVE_MIN_SCENE_LEN:
                out.append(float(f.time[i]))
                last = int(f.frame[i])
    return out


def _best_run(ths: np.ndarray, f1: np.ndarray) -> tuple[float, int]:
    """The middle sampled threshold of the widest run of consecutive best-F1 thresholds (ties: lowest run),
    and that run's length."""
    good = f1 >= f1.max() - 1e-12
    edges = np.diff(np.r_[0, good.astype(np.int8), 0])
    runs = list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1))
    i, j = max(runs, key=lambda r: (r[1] - r[0], -r[0]))
    return float(ths[(i + j) // 2]), int(j - i + 1)


def sweep_1d(score: Any, values: np.ndarray, fps: float, n: int, results: dict[float, tuple[float, int]]
             ) -> tuple[float, float, int]:
    """Coarse thresholds over `values` (cht_lab.tuning.sweep.default_thresholds), then observed values around
    the best, as cht_lab's best_threshold searches its own scores. `score(t)` -> (F1, detections);
    fills `results`; returns (best threshold, its F1, width of its best run)."""
    def evaluate(ths: np.ndarray) -> None:
        for t in ths.tolist():
            if t not in results:
                results[t] = score(t)

    ts = np.arange(values.size) / fps
    evaluate(tuning.default_thresholds(values, ts, n=n, min_gap=15 / fps))  # min_scene_len: 15 frames
    ths = np.asarray(sorted(results))
    f1 = np.asarray([results[t][0] for t in ths])
    pos = np.flatnonzero(f1 >= f1.max() - 1e-12)
    lo, hi = ths[max(pos[0] - 1, 0)], ths[min(pos[-1] + 1, ths.size - 1)]
    distinct = np.unique(values)
    extra = distinct[(distinct > lo) & (distinct < hi)]
    if extra.size > N_REFINE:
        extra = extra[np.linspace(0, extra.size - 1, N_REFINE).round().astype(int)]
    evaluate(extra)
    ths = np.asarray(sorted(results))
    f1 = np.asarray([results[t][0] for t in ths])
    best, width = _best_run(ths, f1)
    return best, results[best][0], width


@dataclass
class PsdResult(ToolResult):
    min_content_val: float | None = None  # AdaptiveDetector: the min_content_val of the best


def _check_default(kind: str, segments: list[Segment]) -> list[float]:
    cuts = [t for s in segments for t in replay(kind, s)]
    real = [t for s in segments for t in (s.content_cuts if kind == "content" else s.adaptive_cuts)]
    if len(cuts) != len(real) or not np.allclose(sorted(cuts), sorted(real)):
        raise RuntimeError(f"{kind}: replay at the default threshold {cuts} != real run {real}")
    return cuts


def sweep_content(segments: list[Segment], labels: pd.DataFrame) -> PsdResult:
    """ContentDetector: F1 at threshold 27 and over a sweep of `threshold`."""
    def_f1, def_n = f1_of(_check_default("content", segments), labels)
    values = np.concatenate([np.asarray(s.frame_scores[1:]) for s in segments])  # frame 0 scores 0 by definition
    results: dict[float, tuple[float, int]] = {}
    best, f1, _ = sweep_1d(lambda t: f1_of([c for s in segments for c in replay("content", s, t)], labels),
                           values[np.isfinite(values)], segments[0].fps, N_THRESHOLDS, results)
    return PsdResult(CONTENT_DEFAULT, def_f1, def_n, best, f1, results[best][1], len(results))


def sweep_adaptive(segments: list[Segment], labels: pd.DataFrame, checks: int = 12) -> PsdResult:
    """AdaptiveDetector: F1 at its defaults and over adaptive_threshold x min_content_val.

    Both gate a cut (ratio >= adaptive_threshold and content_val >= min_content_val), so sweeping the
    ratio alone can leave it unable to reach a cut whose content_val is under 15. min_content_val is
    tried at 15 and ~16 levels over content_val's range (a full ratio sweep each), then refined
    around the best level. The sweep uses `fast_adaptive`; the detector's own code (`replay`)
    must give the same cuts at the default, at the best pair and at `checks` random pairs tried.
    """
    def_f1, def_n = f1_of(_check_default("adaptive", segments), labels)
    fps = segments[0].fps
    frames = [adaptive_frames(s) for s in segments]
    ratios = np.concatenate([f.ratio for f in frames])
    content = np.concatenate([np.asarray(s.frame_scores[1:]) for s in segments])
    content = content[np.isfinite(content)]

    tried: list[tuple[float, float]] = []
    per_m: dict[float, tuple[float, float, int]] = {}  # min_content_val -> (best ratio, F1, run width)

    def at(m: float) -> tuple[float, float, int]:
        results: dict[float, tuple[float, int]] = {}
        out = sweep_1d(lambda t: f1_of(fast_adaptive(frames, t, m), labels), ratios, fps, N_THRESHOLDS, results)
        tried.extend((t, m) for t in results)
        return out

    ms = np.unique(np.r_[MIN_CONTENT_DEFAULT, tuning.default_thresholds(content, np.arange(content.size) / fps,
                                                                        n=16, min_gap=15 / fps)])
    for m in ms.tolist():
        per_m[m] = at(m)
    top = max(v[1] for v in per_m.values())
    keys = np.asarray(sorted(per_m))
    good = np.flatnonzero(np.asarray([per_m[k][1] for k in keys]) >= top - 1e-12)
    lo, hi = keys[max(good[0] - 1, 0)], keys[min(good[-1] + 1, keys.size - 1)]
    extra = np.setdiff1d(np.unique(content[(content > lo) & (content < hi)]), keys)
    if extra.size > 16:
        extra = extra[np.linspace(0, extra.size - 1, 16).round().astype(int)]
    for m in extra.tolist():
        per_m[m] = at(m)
    # the best level: best F1, then the default 15, then the widest ratio plateau, then the lowest level
    m_best = max(per_m, key=lambda m: (per_m[m][1], m == MIN_CONTENT_DEFAULT, per_m[m][2], -m))
    ratio, f1, _ = per_m[m_best]

    rng = np.random.default_rng(0)
    pairs = [(ADAPTIVE_DEFAULT, MIN_CONTENT_DEFAULT), (ratio, m_best)]
    pairs += [tried[i] for i in rng.choice(len(tried), min(checks, len(tried)), replace=False)]
    for a, m in pairs:
        real = [c for s in segments for c in replay("adaptive", s, a, m)]
        fast = fast_adaptive(frames, a, m)
        if len(real) != len(fast) or not np.allclose(sorted(real), sorted(fast)):
            raise RuntimeError(f"adaptive at {a}/{m}: vectorised rule {fast} != AdaptiveDetector {real}")
    _, n = f1_of(fast_adaptive(frames, ratio, m_best), labels)
    return PsdResult(ADAPTIVE_DEFAULT, def_f1, def_n, ratio, f1, n, len(tried), m_best)


# --------------------------------------------------------------------------- report


def fmt_thr(tool: str, thr: float) -> str:
    if tool == "cht_lab":
        return f"{thr:.4g}"
    return f"{thr:.3g}" if thr < 10 else f"{thr:.1f}"


COLUMNS = [("cht_lab", "cht_lab"), ("content", "Content"), ("adaptive", "Adaptive")]


def table_rows(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    header = ["sample", "events"]
    for _, title in COLUMNS:
        header += [f"{title} default", f"{title} best (thr)"]
    body = []
    for r in rows:
        cells = [r["sample"], str(r["events"])]
        for key, _ in COLUMNS:
            t: ToolResult = r[key]
            thr = fmt_thr(key, t.best_threshold)
            if isinstance(t, PsdResult) and t.min_content_val is not None:
                thr += f"/{t.min_content_val:.3g}"
            cells += [f"{t.default_f1:.3f}", f"{t.best_f1:.3f} ({thr})"]
        body.append(cells)
    return header, body


def print_tables(rows: list[dict[str, Any]]) -> None:
    header, body = table_rows(rows)
    widths = [max(len(header[i]), *(len(b[i]) for b in body)) for i in range(len(header))]
    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    print(line(header))
    print("  ".join("-" * w for w in widths))
    for b in body:
        print(line(b))
    print()
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|")
    for b in body:
        print("| " + " | ".join(b) + " |")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", nargs="+", default=list(SAMPLES), choices=list(SAMPLES))
    ap.add_argument("--backend", default="auto", choices=["auto", "cpu", "cuda"], help="cht_lab decode backend")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args(argv)

    try:
        from importlib.metadata import version

        psd_version = version("scenedetect")
        import cv2

        cv_version = cv2.__version__
    except Exception as exc:  # noqa: BLE001
        print(f"PySceneDetect is not installed (pip install 'cht_lab[bench]'): {exc}")
        return 1
    print(f"PySceneDetect {psd_version} (OpenCV {cv_version}); cht_lab metric {DEFAULT_METRIC!r}; "
          f"matching: cht_lab.tuning.sweep.match, ±{TOLERANCE} s")
    rows: list[dict[str, Any]] = []
    t_all = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="cht_lab_accuracy_") as tmp:
        for name in args.samples:
            session = Session(copy_sample(name, Path(tmp)))
            labels = session.labels
            assert labels is not None
            ours, backend, t_score = run_cht_lab(session, args.backend)
            t0 = time.perf_counter()
            segments = [decode_segment(seg.path, seg.offset) for seg in session.segments]
            t_decode = time.perf_counter() - t0
            t0 = time.perf_counter()
            content = sweep_content(segments, labels)
            adaptive = sweep_adaptive(segments, labels)
            t_sweep = time.perf_counter() - t0
            rows.append({"sample": name, "events": len(labels), "segments": len(segments),
                         "cht_lab": ours, "content": content, "adaptive": adaptive})
            print(f"  {name}: {len(labels)} events, {len(segments)} segment(s); cht_lab scored in {t_score:.1f} s "
                  f"({backend}); PySceneDetect decode {t_decode:.1f} s, sweeps {t_sweep:.1f} s "
                  f"({content.thresholds_tried} + {adaptive.thresholds_tried} thresholds tried)", flush=True)
    print(f"total {time.perf_counter() - t_all:.0f} s")
    print()
    print(f"F1 against labels.csv (±{TOLERANCE} s, one-to-one); best = best threshold for that sample "
          f"(cht_lab: {DEFAULT_METRIC}; Content: threshold; Adaptive: adaptive_threshold/min_content_val)")
    print_tables(rows)
    print()
    ok_all = True
    for r in rows:
        ours = r["cht_lab"].best_f1
        theirs = max(r["content"].best_f1, r["adaptive"].best_f1)
        a, b = ours >= TARGET_F1, ours >= theirs - 1e-12
        ok_all &= a and b
        print(f"{r['sample']}: cht_lab best F1 {ours:.3f} >= {TARGET_F1}: {'yes' if a else 'NO'}; "
              f">= PySceneDetect best {theirs:.3f}: {'yes' if b else 'NO'}")
    print(f"target (best F1 >= {TARGET_F1} and >= PySceneDetect's best on every sample): "
          f"{'met' if ok_all else 'NOT met'}")
    if args.json:
        args.json.write_text(json.dumps(
            {"pyscenedetect": psd_version, "tolerance": TOLERANCE,
             "rows": [{k: (asdict(v) if isinstance(v, ToolResult) else v) for k, v in r.items()} for r in rows]},
            indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
