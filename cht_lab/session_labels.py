"""A session's ground truth: labels.csv read from the working directory or the source, edited and
saved atomically (the rules are in `cht_lab.tuning.labels`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from cht_lab import layout
from cht_lab.tuning.labels import add_row, as_labels, load_labels, remove_rows
from cht_lab.tuning.labels import save_labels as write_labels


class SessionLabels:
    """The label methods of `Session`; it provides `dir` (working) and `source_dir`."""

    dir: Path
    source_dir: Path

    @property
    def labels(self) -> pd.DataFrame | None:
        """Ground truth from labels.csv: the events (None when there is no file); LabelsError when malformed.

        Read from the working directory first, then the source: labels saved for a read-only
        source (a bundled sample) go to the working directory and win over the source's own file.
        Reviewed non-events (kind `none`) are left out: `read_labels(non_events=True)` has them.
        """
        return self.read_labels()

    @property
    def labels_path(self) -> Path:
        """Where `save_labels()` writes: labels.csv in the working directory (the source's for a writable one)."""
        return self.dir / layout.LABELS_CSV

    def read_labels(self, non_events: bool = False) -> pd.DataFrame | None:
        """labels.csv of the working directory, else of the source (None when neither has one)."""
        for folder in dict.fromkeys((self.dir, self.source_dir)):
            path = folder / layout.LABELS_CSV
            if path.exists():
                return load_labels(path, non_events=non_events)
        return None

    def save_labels(self, labels: Any = None) -> Path:
        """Write `labels` (default: the current ones, non-events kept) to `labels_path`, atomically."""
        if labels is None:
            labels = self.read_labels(non_events=True)
        return write_labels(self.labels_path, labels)

    def set_labels(self, labels: Any) -> pd.DataFrame:
        """Replace every label (a DataFrame time,end,kind,note, a path, or a list of cut times) and save."""
        rows = as_labels(labels, self.labels_path, non_events=True)
        self.save_labels(rows)
        return rows

    def add_label(self, time: float, kind: str = "cut", end: float | None = None, note: str = "") -> pd.DataFrame:
        """Add one row (an event, or kind `none` for a reviewed non-event) and save; returns every row."""
        return self.set_labels(add_row(self.read_labels(non_events=True), time, kind, end, note))

    def remove_label(self, time: float, tolerance: float = 1e-3) -> pd.DataFrame:
        """Remove the rows within `tolerance` s of `time` and save; LabelsError when there is none."""
        return self.set_labels(remove_rows(self.read_labels(non_events=True), time, tolerance, self.labels_path))
