"""The session index on one hour of scores: append like the live writer, compact, read back.

    python benchmarks/index.py [--repeat 7] [--dense]

One hour at 30 fps is 108,000 score rows with two extra float32 metric columns. They are
appended in 30-row batches (one second of video) and flushed after each batch, which is what the
live writer's one-second flush timer does: 3,600 fsynced part files, merged by the writer's live
compaction as they pile up, then compacted into one file by close(). Then a fresh reader (no
cache) reads the table into a DataFrame.

Synthetic data shaped like a screen share: most frames are unchanged (score exactly 0), the rest
low noise, a few hundred cuts. `--dense` makes every value noise (no zeros): the worst case for
the on-disk size. pts is on a 1/90000 time base, ts = pts + the segment's offset.

Targets: read of one hour <= 100 ms, <= 2 MB on disk per hour. References measured in the same
run: pyarrow.parquet.read_table of the compacted file alone (and + to_pandas), and the raw
in-memory size of the columns.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from _common import median_ms

FPS = 30
ROWS = 3600 * FPS
BATCH = FPS  # one second of scores per flush
READ_TARGET_MS = 100.0
SIZE_TARGET_MB = 2.0


def synthetic_hour(dense: bool, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    fi = np.arange(ROWS, dtype=np.int64)
    pts = np.round(fi / FPS * 90000) / 90000
    cuts = rng.choice(ROWS, 300, replace=False)
    static = np.zeros(ROWS, bool) if dense else rng.random(ROWS) < 0.7

    def metric(scale: float) -> np.ndarray:
        v = rng.gamma(1.0, scale, ROWS)
        v[static] = 0.0
        v[cuts] = rng.uniform(0.3, 1.0, cuts.size)
        return v.astype(np.float32)

    return {"segment": np.zeros(ROWS, np.int32), "frame_index": fi, "pts": pts, "ts": pts + 12.345,
            "score": metric(0.004), "pixel_diff": metric(0.01), "edge_diff": metric(0.02)}


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.glob("*.parquet"))


def run(repeat: int, dense: bool) -> dict[str, float]:
    from cht_lab.index.session_index import SessionIndex

    data = synthetic_hour(dense)
    raw_bytes = pa.table(data).nbytes
    with tempfile.TemporaryDirectory(prefix="cht_lab_index_bench_") as tmp:
        session = Path(tmp) / "20240101_120000"
        session.mkdir()
        idx = SessionIndex(session, writer=True)
        t0 = time.perf_counter()
        for start in range(0, ROWS, BATCH):
            idx.append_scores({k: v[start:start + BATCH] for k, v in data.items()})
            idx.flush()
        append_s = time.perf_counter() - t0
        scores_dir = session / "index" / "scores"
        live_files = len(list(scores_dir.glob("*.parquet")))
        live_read_ms = median_ms(lambda: SessionIndex(session).scores(), max(3, repeat // 2))
        t0 = time.perf_counter()
        idx.close()
        close_s = time.perf_counter() - t0
        (compacted,) = list(scores_dir.glob("*.parquet"))

        df = SessionIndex(session).scores()
        assert len(df) == ROWS and list(df.columns) == list(data), "read back the wrong table"
        assert np.array_equal(df["pts"].to_numpy(), data["pts"]), "pts not bit-exact"

        read_ms = median_ms(lambda: SessionIndex(session).scores(), repeat)
        cached_ms = median_ms(SessionIndex(session).scores, repeat)
        ref_arrow_ms = median_ms(lambda: pq.read_table(compacted), repeat)
        ref_pandas_ms = median_ms(lambda: pq.read_table(compacted).to_pandas(), repeat)
        disk = dir_bytes(scores_dir)
    return {"rows_per_s": ROWS / append_s, "append_s": append_s, "close_s": close_s, "live_files": live_files,
            "live_read_ms": live_read_ms, "read_ms": read_ms, "cached_ms": cached_ms, "ref_arrow_ms": ref_arrow_ms,
            "ref_pandas_ms": ref_pandas_ms, "disk_bytes": disk, "raw_bytes": raw_bytes}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=7, help="reads per timing (median)")
    ap.add_argument("--dense", action="store_true", help="noise in every frame (worst case for size)")
    args = ap.parse_args()
    r = run(args.repeat, args.dense)
    mb = r["disk_bytes"] / 1e6
    data_kind = "dense noise (worst case)" if args.dense else "screen share (70% unchanged frames)"
    print(f"data: {ROWS:,} score rows (1 h at {FPS} fps, 2 extra metrics), {data_kind}")
    print(f"append+flush: {r['rows_per_s']:,.0f} rows/s ({r['append_s']:.2f} s for the hour, "
          f"{3600 / r['append_s']:.0f}x real time; {ROWS // BATCH:,} fsynced parts); close (compact): "
          f"{r['close_s'] * 1000:.0f} ms")
    print(f"live read before close ({r['live_files']} files): {r['live_read_ms']:.1f} ms")
    print(f"read 1 h into pandas (fresh reader): {r['read_ms']:.1f} ms; repeated read, unchanged table: "
          f"{r['cached_ms']:.1f} ms")
    print(f"reference pq.read_table(compacted file): {r['ref_arrow_ms']:.1f} ms; + to_pandas: "
          f"{r['ref_pandas_ms']:.1f} ms")
    print(f"on disk: {r['disk_bytes']:,} bytes/h ({mb:.2f} MB) vs raw in memory {r['raw_bytes']:,} bytes")
    read_ok = r["read_ms"] <= READ_TARGET_MS
    size_ok = mb <= SIZE_TARGET_MB
    print()
    print("| index, 1 h of scores (108,000 rows, 2 extra metrics) | value | reference (same run) | ratio | target |")
    print("|---|---|---|---|---|")
    print(f"| append + 1 s flushes | {r['rows_per_s']:,.0f} rows/s | live need: {FPS} rows/s | "
          f"{r['rows_per_s'] / FPS:,.0f}x | ≥ 1x |")
    print(f"| read into a DataFrame | {r['read_ms']:.1f} ms | pq.read_table + to_pandas {r['ref_pandas_ms']:.1f} ms "
          f"| {r['read_ms'] / r['ref_pandas_ms']:.2f}x | ≤ {READ_TARGET_MS:.0f} ms {'✓' if read_ok else '✗'} |")
    print(f"| on disk per hour ({'dense' if args.dense else 'screen share'}) | {mb:.2f} MB | raw columns "
          f"{r['raw_bytes'] / 1e6:.2f} MB | {r['disk_bytes'] / r['raw_bytes']:.2f}x | ≤ {SIZE_TARGET_MB:.0f} MB "
          f"{'✓' if size_ok else '✗'} |")
    return 0 if read_ok and size_ok else 1


if __name__ == "__main__":
    sys.exit(main())
