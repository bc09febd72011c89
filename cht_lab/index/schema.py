"""Table schemas of the session index and the conversions in and out of them.

Explicit pyarrow schemas keep every part file of a table alike, so DuckDB, Polars and pyarrow
datasets read a table folder as one table, and pandas gets the same dtypes whether a table holds
a million rows or none. Integer columns that a row may not know (a legacy frame has no frame
index) hold -1 ("unknown") rather than null: a nullable integer would turn into float64 or a
pandas extension dtype, which breaks code that does `int(row.frame_index)`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

SCHEMA_VERSION = 1

_META = {b"cht_lab.schema_version": str(SCHEMA_VERSION).encode()}
TIMESTAMP = pa.timestamp("us", tz="UTC")

FRAMES_SCHEMA = pa.schema([
    ("id", pa.string()),             # F0001 ...
    ("ts", pa.float64()),            # global seconds of the change's onset (its first frame)
    ("pts", pa.float64()),           # seconds inside the segment (onset)
    ("segment", pa.int32()),
    ("frame_index", pa.int64()),     # the onset frame
    ("score", pa.float64()),         # the metric's value that triggered the capture
    ("metric", pa.string()),
    ("threshold", pa.float64()),     # threshold at capture time
    ("kind", pa.string()),           # scene | manual
    ("path", pa.string()),           # relative to the session directory
    ("width", pa.int32()),
    ("height", pa.int32()),
    ("bytes", pa.int64()),
    ("captured_at", TIMESTAMP),
    ("sent_to_agent", pa.bool_()),
    ("capture_ts", pa.float64()),    # global seconds of the captured frame (the JPEG: the change at rest)
    ("capture_frame_index", pa.int64()),  # its frame index in the segment
    ("revisit_of", pa.string()),     # id of an earlier capture showing the same screen (null: none)
], metadata={**_META, b"cht_lab.table": b"frames"})

SCORES_SCHEMA = pa.schema([
    ("segment", pa.int32()),
    ("frame_index", pa.int64()),
    ("pts", pa.float64()),
    ("ts", pa.float64()),
    ("score", pa.float32()),         # ffmpeg's scene score; further metrics are extra float32 columns
], metadata={**_META, b"cht_lab.table": b"scores"})

AUDIO_SCHEMA = pa.schema([
    ("id", pa.string()),             # chunk_0000 ...
    ("path", pa.string()),           # relative to the session directory
    ("start", pa.float64()),         # global seconds
    ("duration", pa.float64()),
    ("local_start", pa.float64()),   # seconds inside the source it was cut from
    ("segment", pa.int32()),
    ("source", pa.string()),         # the file it came from (relative when inside the session)
    ("sample_rate", pa.int32()),
    ("channels", pa.int32()),
    ("samples", pa.int64()),
    ("rms_dbfs", pa.float64()),
    ("peak_dbfs", pa.float64()),
    ("speech_ratio", pa.float64()),
], metadata={**_META, b"cht_lab.table": b"audio"})

FRAME_KINDS = ("scene", "manual")
UNKNOWN_INT = -1
FRAME_ID_RE = re.compile(r"^F(\d+)$")
CHUNK_ID_RE = re.compile(r"^chunk_(\d+)$")
# ids become file names (frames/<id>.jpg, thumbnails <id>.thumb.jpg): no separators, no leading dot
SAFE_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def unsafe_id(value: object) -> bool:
    """True for an id that could not be used as a file name inside the session (path separators,
    '..', hidden names, control characters): the index refuses such ids wherever they come from."""
    return not isinstance(value, str) or SAFE_ID_RE.match(value) is None


class IndexSchemaError(ValueError):
    """Rows handed to the index do not fit its schema; names the table, row/column and reason."""


@dataclass(frozen=True)
class TableSpec:
    name: str
    schema: pa.Schema
    required: tuple[str, ...]
    extras: bool  # further float32 metric columns allowed (scores)

    @property
    def names(self) -> list[str]:
        return self.schema.names


TABLES: dict[str, TableSpec] = {
    "frames": TableSpec("frames", FRAMES_SCHEMA, ("id", "ts", "path"), False),
    "scores": TableSpec("scores", SCORES_SCHEMA, ("segment", "frame_index", "pts", "ts", "score"), True),
    "audio": TableSpec("audio", AUDIO_SCHEMA, ("id", "path", "start", "duration"), False),
}


def spec_for(table: str) -> TableSpec:
    try:
        return TABLES[table]
    except KeyError:
        raise ValueError(f"unknown index table {table!r}: use one of {', '.join(TABLES)}") from None


def _default(field: pa.Field) -> Any:
    t = field.type
    if pa.types.is_integer(t):
        return UNKNOWN_INT
    if pa.types.is_boolean(t):
        return False
    if pa.types.is_floating(t):
        return math.nan
    return None


# ----------------------------------------------------------------------------- rows in


def _utc(value: Any, where: str) -> datetime | None:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    elif isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise IndexSchemaError(f"{where}: captured_at {value!r} is not an ISO date-time") from None
    elif isinstance(value, np.datetime64):
        value = pd.Timestamp(value).to_pydatetime()
    if not isinstance(value, datetime):
        raise IndexSchemaError(f"{where}: captured_at must be a datetime, got {type(value).__name__}")
    # naive times are taken as UTC: that is what datetime.now(timezone.utc) would have said
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def rows_to_table(spec: TableSpec, rows: Sequence[Mapping[str, Any]]) -> pa.Table:
    """Validate rows (dicts with the table's keys) and build a table with the exact schema."""
    if isinstance(rows, Mapping):
        raise IndexSchemaError(f"{spec.name}: expected a list of row dicts, got one dict")
    cols: dict[str, list[Any]] = {name: [] for name in spec.names}
    allowed = set(spec.names)
    for i, row in enumerate(rows):
        where = f"{spec.name} row {i}" + (f" ({row.get('id')})" if isinstance(row, Mapping) and row.get("id") else "")
        if not isinstance(row, Mapping):
            raise IndexSchemaError(f"{where}: expected a dict, got {type(row).__name__}")
        unknown = set(row) - allowed
        if unknown:
            raise IndexSchemaError(f"{where}: unknown keys {sorted(unknown)} (columns: {', '.join(spec.names)})")
        missing = [k for k in spec.required if row.get(k) is None]
        if missing:
            raise IndexSchemaError(f"{where}: missing {', '.join(missing)}")
        for field in spec.schema:
            value = row.get(field.name)
            if value is None:
                value = _default(field)
            if field.type == TIMESTAMP:
                value = _utc(value, where) if field.name in row else datetime.now(timezone.utc)
            elif field.name == "kind" and value is None:
                value = FRAME_KINDS[0]
            elif field.name == "kind" and value not in FRAME_KINDS:
                raise IndexSchemaError(f"{where}: kind must be one of {FRAME_KINDS}, got {value!r}")
            cols[field.name].append(value)
    arrays = []
    for field in spec.schema:
        try:
            arrays.append(pa.array(cols[field.name], type=field.type, from_pandas=True))
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError) as exc:
            at = next((k for k, v in enumerate(cols[field.name]) if not _fits(v, field.type)), None)
            where = f"{spec.name} row {at}" if at is not None else spec.name
            if at is not None and isinstance(rows[at], Mapping) and rows[at].get("id"):
                where += f" ({rows[at].get('id')})"
            bad = cols[field.name][at] if at is not None else None
            raise IndexSchemaError(f"{where}: {field.name} must be {field.type}, got {bad!r} ({exc})") from None
    return pa.Table.from_arrays(arrays, schema=spec.schema)


def _fits(value: Any, type_: pa.DataType) -> bool:
    try:
        pa.array([value], type=type_, from_pandas=True)
        return True
    except Exception:
        return False


def columns_to_table(spec: TableSpec, data: Any) -> pa.Table:
    """Score rows as a DataFrame, pyarrow Table or dict of arrays -> table with the base schema first,
    then each further metric column as float32 (in the order given)."""
    if isinstance(data, pa.RecordBatch):
        data = pa.Table.from_batches([data])
    if isinstance(data, pd.DataFrame):
        table = pa.Table.from_pandas(data, preserve_index=False)
    elif isinstance(data, pa.Table):
        table = data
    elif isinstance(data, Mapping):
        try:
            table = pa.table({str(k): np.asarray(v) for k, v in data.items()})
        except (pa.ArrowInvalid, ValueError) as exc:
            raise IndexSchemaError(f"{spec.name}: columns do not line up: {exc}") from None
    else:
        raise IndexSchemaError(f"{spec.name}: expected a DataFrame, pyarrow Table or dict of arrays, "
                               f"got {type(data).__name__}")
    missing = [c for c in spec.required if c not in table.column_names]
    if missing:
        raise IndexSchemaError(f"{spec.name}: missing columns {', '.join(missing)} "
                               f"(have {', '.join(table.column_names) or 'none'})")
    dup = {c for c in table.column_names if table.column_names.count(c) > 1}
    if dup:
        raise IndexSchemaError(f"{spec.name}: duplicate columns {sorted(dup)}")
    arrays, fields = [], []
    for field in spec.schema:
        arrays.append(_cast(spec, table.column(field.name), field.name, field.type))
        fields.append(field)
    for name in table.column_names:
        if name in spec.names:
            continue
        if not spec.extras:
            raise IndexSchemaError(f"{spec.name}: unknown column {name!r}")
        col = table.column(name)
        if not (pa.types.is_floating(col.type) or pa.types.is_integer(col.type) or pa.types.is_null(col.type)):
            raise IndexSchemaError(f"{spec.name}: metric column {name!r} must be numeric, got {col.type}")
        arrays.append(_cast(spec, col, name, pa.float32()))
        fields.append(pa.field(name, pa.float32()))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields, metadata=spec.schema.metadata))


def _cast(spec: TableSpec, col: pa.ChunkedArray, name: str, type_: pa.DataType) -> pa.ChunkedArray:
    if col.type == type_:
        return col
    safe = not (pa.types.is_floating(type_) and pa.types.is_floating(col.type))  # f64 -> f32 rounds, by design
    try:
        return pc.cast(col, type_, safe=safe)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise IndexSchemaError(f"{spec.name}: column {name!r} ({col.type}) cannot be stored as {type_}: "
                               f"{exc}") from None


# ----------------------------------------------------------------------------- tables out


def normalize(spec: TableSpec, table: pa.Table) -> pa.Table:
    """A table read from any part file -> the base schema (missing columns filled, unknown ints -1),
    extra columns kept (scores: as float32)."""
    arrays, fields = [], []
    n = table.num_rows
    for field in spec.schema:
        if field.name in table.column_names:
            col = table.column(field.name)
            if col.type != field.type:
                col = pc.cast(col, field.type, safe=False)
            if col.null_count and not (pa.types.is_floating(field.type) or pa.types.is_string(field.type)
                                       or field.type == TIMESTAMP):
                col = pc.fill_null(col, _default(field))
        else:
            col = pa.chunked_array([pa.array([_default(field)] * n, type=field.type)], type=field.type)
        arrays.append(col)
        fields.append(field)
    for name in table.column_names:
        if name in spec.names:
            continue
        col = table.column(name)
        if spec.extras and (pa.types.is_floating(col.type) or pa.types.is_integer(col.type)
                            or pa.types.is_null(col.type)) and col.type != pa.float32():
            col = pc.cast(col, pa.float32(), safe=False)
        arrays.append(col)
        fields.append(pa.field(name, col.type))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields, metadata=spec.schema.metadata))


def concat(spec: TableSpec, tables: Sequence[pa.Table]) -> pa.Table:
    """Concatenate normalized tables (extra columns may differ between parts: missing ones are null)."""
    tables = [t for t in tables if t is not None]
    if not tables:
        return spec.schema.empty_table()
    if len(tables) == 1:
        out = tables[0]
    else:
        out = pa.concat_tables(tables, promote_options="default")
    base = spec.names
    extras = [c for c in out.column_names if c not in base]
    if out.column_names != base + extras:
        out = out.select(base + extras)
    return out.combine_chunks() if out.num_rows and len(tables) > 1 else out


def _id_key(ids: list[str | None], pattern: re.Pattern[str]) -> list[tuple[float, str]]:
    keys = []
    for s in ids:
        m = pattern.match(s or "")
        keys.append((float(m.group(1)) if m else math.inf, s or ""))
    return keys


def sort_table(spec: TableSpec, table: pa.Table) -> pa.Table:
    """frames by id (numerically: F9999 < F10000), scores by segment + frame_index, audio by start.
    A sorted table is returned as is (the common case: parts arrive in order)."""
    n = table.num_rows
    if n < 2:
        return table
    if spec.name == "scores":
        seg = table.column("segment").to_numpy()
        fi = table.column("frame_index").to_numpy()
        ordered = np.all((seg[1:] > seg[:-1]) | ((seg[1:] == seg[:-1]) & (fi[1:] >= fi[:-1])))
        return table if ordered else table.sort_by([("segment", "ascending"), ("frame_index", "ascending")])
    if spec.name == "audio":
        start = table.column("start").to_numpy()
        if np.all(start[1:] >= start[:-1]):
            return table
        return table.sort_by([("start", "ascending"), ("id", "ascending")])
    keys = _id_key(table.column("id").to_pylist(), FRAME_ID_RE)
    if all(a <= b for a, b in zip(keys, keys[1:])):
        return table
    order = sorted(range(n), key=keys.__getitem__)
    return table.take(pa.array(order, type=pa.int64()))


_DTYPES: dict[str, dict[str, Any]] = {}


def _dtypes(spec: TableSpec) -> dict[str, Any]:
    if spec.name not in _DTYPES:
        _DTYPES[spec.name] = dict(spec.schema.empty_table().to_pandas().dtypes)
    return _DTYPES[spec.name]


def to_pandas(spec: TableSpec, table: pa.Table) -> pd.DataFrame:
    """The same dtypes for every call: the empty table's conversion is the reference."""
    df = table.to_pandas()
    ref = _dtypes(spec)
    wrong = {c: t for c, t in ref.items() if c in df.columns and df[c].dtype != t}
    if wrong:
        df = df.astype(wrong)
    for c in df.columns:
        if c not in ref and df[c].dtype != np.float32 and spec.extras:
            df[c] = df[c].astype(np.float32)
    return df


def max_id(ids: Any, pattern: re.Pattern[str]) -> int | None:
    """The largest number in ids like F0007 / chunk_0003 (None if there is none)."""
    best = None
    for s in ids:
        m = pattern.match(str(s)) if s is not None else None
        if m:
            v = int(m.group(1))
            best = v if best is None else max(best, v)
    return best
