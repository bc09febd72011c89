"""Ground truth for tuning: `labels.csv` (time,end,kind,note), read strictly, with errors a user can act on.

A labels file is written by hand or by a tool, and a silent mistake in it (a typo in a time, a
comma in a note, an `end` before its `time`) skews every precision/recall figure computed from
it. So the reader is strict about what matters and names the file, the line (as an editor shows
it, counting the header as line 1) and the reason; it is lenient only where the intent is clear:

- only `time` is required; `end` (optional per row: gradual events), `kind` and `note` may be
  absent as columns; extra columns are ignored;
- an empty `kind` means `gradual` when the row has an `end`, else `cut`;
- an unquoted comma inside the last column `note` is kept as part of the note;
- blank lines are skipped; a file with only a header is a session with no events (valid).

Besides the event kinds (`cut`, `gradual`, `partial`), a row may have kind `none`: a moment someone
reviewed and decided is *not* an event (the Label tab writes one for every rejected candidate, so
a review can resume where it stopped). Non-events are never ground truth: `load_labels` and
`as_labels` drop them unless asked (`non_events=True`), so matching and sweeps never see them.
`save_labels` writes a labels file atomically in the same format.

`as_labels()` brings the other forms the tuning functions accept (a DataFrame, a list of times,
a path) to the same normalised frame.
"""

from __future__ import annotations

import csv
import logging
import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

COLUMNS: tuple[str, ...] = ("time", "end", "kind", "note")
KINDS: tuple[str, ...] = ("cut", "gradual", "partial")  # event kinds: the ground truth
NON_EVENT = "none"  # a reviewed moment that is not an event: kept in the file, never ground truth
ALL_KINDS: tuple[str, ...] = (*KINDS, NON_EVENT)


class LabelsError(ValueError):
    """A labels file (or frame) that cannot be used: names the file, the 1-based line and the reason."""

    def __init__(self, path: str | os.PathLike[str] | None, reason: str, line: int | None = None):
        self.path = None if path is None else Path(path)
        self.line = line
        self.reason = reason
        where = "labels" if path is None else str(path)
        if line is not None:
            where += f", line {line}"
        super().__init__(f"{where}: {reason}")


def empty_labels() -> pd.DataFrame:
    """The normalised labels frame with no rows (stable dtypes)."""
    return pd.DataFrame({"time": pd.Series(dtype="float64"), "end": pd.Series(dtype="float64"),
                         "kind": pd.Series(dtype="object"), "note": pd.Series(dtype="object")})


def load_labels(path: str | os.PathLike[str], *, non_events: bool = False) -> pd.DataFrame:
    """Read `labels.csv` into columns time, end (NaN when absent), kind, note; sorted by time.

    Raises LabelsError (a ValueError) naming the file, the line and the reason for anything that
    would make the tuning figures wrong rather than fail: see the module docstring. Rows of kind
    `none` (reviewed non-events) are dropped unless `non_events=True`.
    """
    p = Path(path)
    if not p.exists():
        raise LabelsError(p, "no such file")
    if not p.is_file():
        raise LabelsError(p, "not a file")
    try:
        with open(p, newline="", encoding="utf-8-sig") as fh:
            rows = _read_rows(fh, p)
    except UnicodeDecodeError as exc:
        raise LabelsError(p, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except csv.Error as exc:
        raise LabelsError(p, f"not valid CSV ({exc})") from None
    return rows if non_events else events_only(rows)


def _read_rows(fh: Any, path: Path) -> pd.DataFrame:
    reader = csv.reader(fh)
    header: list[str] | None = None
    header_line = 0
    records: list[tuple[float, float, str, str]] = []
    last_line = 0  # physical line where the previous record ended; a record starts on the next one
    for fields in reader:
        line = last_line + 1
        last_line = reader.line_num
        if not any(f.strip() for f in fields):
            continue  # blank line (or only separators)
        if header is None:
            header, header_line = [f.strip().lower() for f in fields], line
            _check_header(header, path, line)
            continue
        records.append(_parse_row(fields, header, path, line))
    if header is None:
        raise LabelsError(path, "empty file: expected a header row 'time,end,kind,note'", line=1)
    log.debug("%s: %d labels (header on line %d)", path, len(records), header_line)
    if not records:
        return empty_labels()
    df = pd.DataFrame.from_records(records, columns=list(COLUMNS))
    return _finish(df)


def _check_header(header: list[str], path: Path, line: int) -> None:
    if "time" not in header:
        raise LabelsError(path, f"missing column 'time' (header has {', '.join(map(repr, header))}; "
                                f"expected time,end,kind,note)", line=line)
    dup = sorted({c for c in header if c in COLUMNS and header.count(c) > 1})
    if dup:
        raise LabelsError(path, f"column {dup[0]!r} appears more than once in the header", line=line)


def _parse_row(fields: list[str], header: list[str], path: Path, line: int) -> tuple[float, float, str, str]:
    if len(fields) > len(header):
        if header[-1] == "note":  # `3.5,,cut,mail, then reply`: the comma belongs to the note
            fields = [*fields[:len(header) - 1], ",".join(fields[len(header) - 1:])]
        else:
            raise LabelsError(path, f"{len(fields)} fields but the header has {len(header)} "
                                    f"(quote a value that contains a comma)", line=line)
    row = dict(zip(header, (f.strip() for f in fields)))
    time = _number(row.get("time", ""), "time", path, line, required=True)
    if time < 0:
        raise LabelsError(path, f"time {row['time']!r} is negative (times are global seconds from the session start)",
                          line=line)
    end = _number(row.get("end", ""), "end", path, line, required=False)
    if not math.isnan(end) and end < time:
        raise LabelsError(path, f"end {row['end']!r} is before time {row['time']!r}", line=line)
    kind = row.get("kind", "").lower()
    if not kind:
        kind = "cut" if math.isnan(end) else "gradual"
    elif kind not in ALL_KINDS:
        raise LabelsError(path, f"unknown kind {row['kind']!r} (expected one of {', '.join(ALL_KINDS)})", line=line)
    return time, end, kind, row.get("note", "")


def _number(text: str, column: str, path: Path, line: int, *, required: bool) -> float:
    if not text:
        if required:
            raise LabelsError(path, f"{column} is empty", line=line)
        return math.nan
    try:
        value = float(text)
    except ValueError:
        raise LabelsError(path, f"{column} {text!r} is not a number (seconds)", line=line) from None
    if not math.isfinite(value):
        raise LabelsError(path, f"{column} {text!r} is not a finite number", line=line)
    return value


def _finish(df: pd.DataFrame) -> pd.DataFrame:
    df = df.astype({"time": "float64", "end": "float64", "kind": "object", "note": "object"})
    return df.sort_values("time", kind="stable", ignore_index=True)


def as_labels(labels: Any, source: str | os.PathLike[str] | None = None, *,
              non_events: bool = False) -> pd.DataFrame:
    """Normalise what tuning accepts as ground truth into the `load_labels` frame.

    `labels`: None (no events), a `load_labels` frame or any DataFrame with a `time` column (end,
    kind, note optional), a path to a labels.csv, or an iterable of times in seconds. Checked like
    a file: finite non-negative times, end not before time, known kinds (LabelsError otherwise).
    Rows of kind `none` are dropped unless `non_events=True`.
    """
    if labels is None:
        return empty_labels()
    if isinstance(labels, (str, os.PathLike)):
        return load_labels(labels, non_events=non_events)
    if isinstance(labels, pd.DataFrame):
        df = labels
    elif isinstance(labels, Iterable):
        try:
            times = np.asarray(labels if isinstance(labels, (np.ndarray, pd.Series)) else list(labels),
                               dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise LabelsError(source, f"label times must be numbers ({exc})") from None
        df = pd.DataFrame({"time": times.reshape(-1)})
    else:
        raise LabelsError(source, f"cannot use {type(labels).__name__} as labels "
                                  "(a DataFrame with a 'time' column, a path, or a list of times)")
    df = _validate_frame(df, source)
    return df if non_events else events_only(df)


def _validate_frame(df: pd.DataFrame, source: str | os.PathLike[str] | None) -> pd.DataFrame:
    if "time" not in df.columns:
        raise LabelsError(source, f"missing column 'time' (columns: {', '.join(map(str, df.columns))})")
    if df.empty:
        return empty_labels()
    n = len(df)
    try:
        time = pd.to_numeric(df["time"], errors="raise").to_numpy(dtype=np.float64)
        end = (pd.to_numeric(df["end"], errors="raise").to_numpy(dtype=np.float64) if "end" in df
               else np.full(n, np.nan))
    except (TypeError, ValueError) as exc:
        raise LabelsError(source, f"times must be numbers ({exc})") from None
    kind = (df["kind"].fillna("").astype(str).str.strip().str.lower().to_numpy(dtype=object) if "kind" in df
            else np.full(n, "", dtype=object))
    note = df["note"].fillna("").astype(str).to_numpy(dtype=object) if "note" in df else np.full(n, "", dtype=object)
    bad = ~np.isfinite(time) | (time < 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise LabelsError(source, f"row {i}: time {time[i]!r} is not a finite, non-negative number of seconds")
    bad = np.isinf(end) | (end < time)  # NaN compares False: absent ends pass
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise LabelsError(source, f"row {i}: end {end[i]!r} is before time {time[i]!r}")
    empty_kind = kind == ""
    kind[empty_kind & np.isnan(end)] = "cut"
    kind[empty_kind & ~np.isnan(end)] = "gradual"
    unknown = ~np.isin(kind, ALL_KINDS)
    if unknown.any():
        i = int(np.flatnonzero(unknown)[0])
        raise LabelsError(source, f"row {i}: unknown kind {kind[i]!r} (expected one of {', '.join(ALL_KINDS)})")
    return _finish(pd.DataFrame({"time": time, "end": end, "kind": kind, "note": note}))


def events_only(labels: pd.DataFrame) -> pd.DataFrame:
    """The event rows of a normalised labels frame (what matching and tuning count), index 0..n-1."""
    if labels.empty or not (labels["kind"] == NON_EVENT).any():
        return labels
    return labels[labels["kind"] != NON_EVENT].reset_index(drop=True)


def add_row(labels: Any, time: float, kind: str = "cut", end: float | None = None, note: str = "") -> pd.DataFrame:
    """`labels` (with non-events) plus one row, validated like a file (LabelsError names what is wrong)."""
    rows = as_labels(labels, non_events=True)
    try:
        row = pd.DataFrame({"time": [float(time)], "end": [math.nan if end is None else float(end)],
                            "kind": [str(kind)], "note": [str(note)]})
    except (TypeError, ValueError) as exc:
        raise LabelsError(None, f"label time and end must be numbers ({exc})") from None
    if str(kind).strip().lower() not in ALL_KINDS:
        raise LabelsError(None, f"unknown kind {kind!r} (expected one of {', '.join(ALL_KINDS)})")
    new = as_labels(row, non_events=True)
    return _finish(pd.concat([rows, new], ignore_index=True) if not rows.empty else new)


def remove_rows(labels: Any, time: float, tolerance: float = 1e-3,
                source: str | os.PathLike[str] | None = None) -> pd.DataFrame:
    """`labels` (with non-events) without the rows within `tolerance` s of `time`; LabelsError if none is."""
    rows = as_labels(labels, non_events=True)
    near = np.abs(rows["time"].to_numpy(dtype=np.float64) - float(time)) <= float(tolerance)
    if not near.any():
        raise LabelsError(source, f"no label within {tolerance:g} s of {float(time):g} s")
    return rows[~near].reset_index(drop=True)


def _fmt_seconds(value: float) -> str:
    """Seconds as short text that reads back to the same float (microsecond precision)."""
    if math.isnan(value):
        return ""
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return text or "0"


def save_labels(path: str | os.PathLike[str], labels: Any) -> Path:
    """Write labels (events and `none` rows) as `time,end,kind,note`, sorted by time, atomically.

    Validated like `as_labels` first (LabelsError names the problem; nothing is written then).
    Written through a temporary file that is renamed into place, so a reader, or a kernel that
    dies mid-write, never leaves half a file: the old file or the new one, never a mix.
    """
    from cht_lab.atomic import write_atomic

    df = as_labels(labels, path, non_events=True)

    def write(fh: Any) -> None:
        out = csv.writer(fh, lineterminator="\n")
        out.writerow(COLUMNS)
        for t, e, k, n in zip(df["time"].tolist(), df["end"].tolist(), df["kind"].tolist(), df["note"].tolist()):
            out.writerow([_fmt_seconds(t), _fmt_seconds(e), k, n])

    final = write_atomic(path, write, text=True, mkdir=True)
    log.debug("%s: saved %d labels", final, len(df))
    return final


__all__ = ["ALL_KINDS", "COLUMNS", "KINDS", "NON_EVENT", "LabelsError", "add_row", "as_labels", "empty_labels",
           "events_only", "load_labels", "remove_rows", "save_labels"]
