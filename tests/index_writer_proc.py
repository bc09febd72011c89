"""A real index writer in its own process, for tests/test_index.py.

    python index_writer_proc.py crash  SESSION_DIR SIDE_FILE   # append fast until killed
    python index_writer_proc.py steady SESSION_DIR SIDE_FILE N # N flushes, then close and exit
    python index_writer_proc.py hold   SESSION_DIR SIDE_FILE   # hold the writer lock until stdin closes

After every flush (and every durable frame) it appends one line to SIDE_FILE:
`<score rows flushed> <frames appended> <last frame id> <compactions>`; a line is written only
after the rows it counts are on disk, so everything a complete line reports must survive a SIGKILL.
"""

from __future__ import annotations

import sys
from datetime import datetime, timezone

import numpy as np

from cht_lab.index.session_index import SessionIndex

BATCH = 30  # one second of scores at 30 fps


def scores(start: int, n: int = BATCH) -> dict[str, np.ndarray]:
    fi = np.arange(start, start + n, dtype=np.int64)
    return {"segment": np.zeros(n, np.int32), "frame_index": fi, "pts": fi / 30.0, "ts": fi / 30.0 + 5.0,
            "score": (fi % 7 / 10).astype(np.float32), "ssim": (fi % 5 / 10).astype(np.float32)}


def frame(idx: SessionIndex, frame_index: int) -> str:
    fid = idx.next_frame_id()
    idx.append_frames([{"id": fid, "ts": frame_index / 30.0 + 5.0, "pts": frame_index / 30.0, "segment": 0,
                        "frame_index": frame_index, "score": 0.5, "metric": "score", "threshold": 0.3,
                        "kind": "scene", "path": f"frames/{fid}.jpg", "width": 64, "height": 48, "bytes": 10,
                        "captured_at": datetime.now(timezone.utc), "sent_to_agent": False}])
    return fid


def report(side, idx: SessionIndex, rows: int, frames: int, last: str) -> None:
    side.write(f"{rows} {frames} {last} {idx.health()['compactions']}\n")
    side.flush()


def main() -> None:
    mode, session_dir, side_path = sys.argv[1:4]
    with open(side_path, "a", encoding="utf-8") as side:
        if mode == "hold":
            idx = SessionIndex(session_dir, writer=True)
            side.write("ready\n")
            side.flush()
            sys.stdin.read()
            idx.close()
            return
        idx = SessionIndex(session_dir, writer=True, flush_interval=0.05, compact_parts=8, compact_files=3)
        rows = frames = 0
        last = "-"
        limit = int(sys.argv[4]) if mode == "steady" else None
        flushes = 0
        while limit is None or flushes < limit:
            idx.append_scores(scores(rows))
            pending = rows + BATCH
            if flushes % 3 == 0:  # sometimes two batches per flush, and one for the timer to take
                idx.append_scores(scores(pending))
                pending += BATCH
            idx.flush()
            rows = pending
            flushes += 1
            if flushes % 4 == 0:
                last = frame(idx, rows - 1)
                frames += 1
            report(side, idx, rows, frames, last)
        idx.close()
        report(side, idx, rows, frames, last)


if __name__ == "__main__":
    main()
