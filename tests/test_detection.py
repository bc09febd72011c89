"""Detection on every labeled sample at the default metric and threshold, scored as a live session
decodes: each labeled event gives exactly one capture whose onset is within one frame of a hard
change (or inside a gradual one), the distractors give none, and a capture showing a screen seen
before names the earlier capture. (Live equals offline: tests/test_live.py.)"""

from __future__ import annotations

import inspect
from functools import lru_cache

import numpy as np
import pandas as pd
import pytest

from cht_lab import layout
from cht_lab.detect.offline import score_recording
from cht_lab.detect.scoring import DEFAULT_METRIC, DEFAULT_THRESHOLDS
from cht_lab.tools.samples.bundled import SAMPLES, sample_dir
from cht_lab.tuning.labels import load_labels
from cht_lab.tuning.matching import scenes

THRESHOLD = DEFAULT_THRESHOLDS[DEFAULT_METRIC]


def _present(name: str) -> bool:
    spec = SAMPLES[name]
    d = sample_dir(name, generate_missing=False)
    return (d / layout.LABELS_CSV).is_file() and all((d / layout.STREAM_DIR / f).is_file()
                                                     for f in spec.segment_files())


NAMES = [n for n in SAMPLES if _present(n)]


@lru_cache(maxsize=None)
def scored(name: str) -> pd.DataFrame:
    """Every frame of the sample scored (all segments, session time), decoded as live decodes."""
    exact = {"fast_decode": False} if "fast_decode" in inspect.signature(score_recording).parameters else {}
    d = sample_dir(name, generate_missing=False)
    parts = [score_recording(seg.path, segment=seg.index, ts_offset=seg.offset, **exact)
             for seg in layout.discover_segments(d)]
    return pd.concat(parts, ignore_index=True)


def detections(name: str) -> tuple[pd.DataFrame, pd.DataFrame, float]:
    df = scored(name)
    labels = load_labels(sample_dir(name, generate_missing=False) / layout.LABELS_CSV)
    return scenes(df, THRESHOLD, metric=DEFAULT_METRIC), labels, float(SAMPLES[name].fps)


@pytest.mark.parametrize("name", NAMES)
def test_each_event_gives_one_capture_at_its_onset_and_distractors_none(name):
    found, labels, fps = detections(name)
    frame = 1.0 / fps
    onsets = found["ts"].to_numpy()
    used = np.zeros(onsets.size, bool)
    # a recording's gradual labels are measured, not drawn: its interval may end before the picture has
    # (real_slides' slide 7 fade froze for a second mid-way while it was recorded), so the matcher's
    # tolerance is allowed after the end
    late = 0.5 if SAMPLES[name].screen == "recorded" else frame
    for row in labels.itertuples():
        end = row.end if pd.notna(row.end) else row.time
        after = late if pd.notna(row.end) else frame
        hit = (onsets >= row.time - frame - 1e-6) & (onsets <= end + after + 1e-6)
        assert hit.sum() == 1, f"{name}: {row.kind} at {row.time} ({row.note}): {hit.sum()} captures; onsets {onsets}"
        used |= hit
    assert used.all(), f"{name}: captures matching no event (distractors) at {onsets[~used]}"
    # the capture is the picture at rest: at or after the onset (and after a gradual change's end)
    assert (found["capture_ts"].to_numpy() >= onsets - 1e-9).all()


def _scene_key(event) -> object:
    return event.scene


@pytest.mark.parametrize("name", [n for n in NAMES if SAMPLES[n].screen != "recorded"])
def test_a_screen_seen_before_names_the_earlier_capture(name):
    found, labels, fps = detections(name)
    spec = SAMPLES[name]
    events = spec.active_events()
    onsets = found["ts"].to_numpy()
    capture_of = {}  # event index -> row of its capture
    for k, e in enumerate(events):
        end = e.end if e.end is not None else e.time
        (pos,) = np.flatnonzero((onsets >= e.time - 1.5 / fps) & (onsets <= end + 1.5 / fps))
        capture_of[k] = found.iloc[pos]
    for k, e in enumerate(events):
        earlier = [j for j in range(k) if _scene_key(events[j]) == _scene_key(e)]
        row = capture_of[k]
        if earlier:
            want = int(capture_of[earlier[-1]]["capture_frame_index"])
            assert int(row["revisit_frame"]) == want, f"{name}: {e.note}: revisit {row['revisit_frame']} != {want}"
        else:
            assert int(row["revisit_frame"]) == -1, f"{name}: {e.note} is a new screen, not a revisit"


def test_some_sample_has_a_revisit():
    assert any(
        any(events[j].scene == e.scene for j in range(k))
        for spec in SAMPLES.values() if spec.screen != "recorded"
        for events in [spec.active_events()] for k, e in enumerate(events))
