"""The block metrics (`pixels`, `blocks`, `lookback`, `settled`), computed on small gray frames.

Kept next to `event` (cht_lab.detect.scoring.event) for comparison: they measure how much of the
screen changed, not how the change is arranged. A global pixel difference (ffmpeg's scene score
included) fails one way or the other on screen shares: a webcam keeps it up, two files in the same
dark theme barely move it. These metrics work on a grid of blocks instead:

- a block *changes* when its mean absolute difference exceeds a compression-noise floor;
- blocks that have been changing continuously (per-block activity history, an exponential moving
  average of "changed") are *volatile* and ignored: webcam, video, spinner;
- `settled` stays ~0 while the screen is in motion and, on the first frame after the screen has
  come to rest, reports the fraction of the screen that differs from the last resting picture
  (after `max_wait` s of motion it reports anyway).

====================  ===========================================================================
pixels                mean |difference| to the previous frame / 255 (a plain global difference)
blocks                fraction of blocks changed since the previous frame, volatile blocks ignored
lookback              fraction of blocks changed since the frame ~`lookback` s earlier (volatile
                      blocks ignored): catches gradual changes, but stays high while they last
settled               change between consecutive resting pictures, reported when the screen
                      comes to rest
====================  ===========================================================================
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np

from cht_lab.detect.scoring.blocks import as_words

log = logging.getLogger(__name__)

BLOCK_METRICS: tuple[str, ...] = ("pixels", "blocks", "lookback", "settled")

DEFAULT_PARAMS: dict[str, float] = {
    "block": 12,             # block side in analysis pixels (320 x 180 frame -> 27 x 15 blocks)
    "noise": 4.0,            # a block changed when its mean |difference| exceeds this (gray levels)
    "lookback": 0.3,         # seconds: reference for slow changes (cross-fades)
    "still": 0.12,           # at rest: at most this fraction of blocks changing (cursor, typing, chat)
    "settle": 0.1,           # seconds the screen must stay at rest before a change is reported
    "volatile_tau": 5.0,     # seconds: time constant of the per-block activity history
    "volatile_level": 0.25,  # activity above this: the block is volatile (webcam, video, spinner)
    "max_wait": 3.0,         # seconds in motion after which the change so far is reported anyway
}


class ScoringError(ValueError):
    """Bad scorer parameters or a frame of the wrong shape."""


class BlockScorer:
    """Stateful block metrics for one video stream (or one segment); see the module docstring.

    `update(gray, t)` takes the next analysis frame (uint8, H x W) at time t (s) and returns the
    block metrics. The frame passed in may be reused by the caller afterwards: what is kept is copied.
    """

    def __init__(self, width: int | None = None, height: int | None = None, fps: float = 30.0, **params: Any):
        unknown = set(params) - set(DEFAULT_PARAMS)
        if unknown:
            raise ScoringError(f"unknown scorer parameter(s) {sorted(unknown)}; known: {sorted(DEFAULT_PARAMS)}")
        self.params = {**DEFAULT_PARAMS, **{k: float(v) for k, v in params.items()}}
        if not fps or fps <= 0 or not math.isfinite(fps):
            raise ScoringError(f"fps must be a positive number, not {fps!r}")
        self.fps = float(fps)
        self.block = int(self.params["block"])
        if self.block < 2:
            raise ScoringError(f"block must be >= 2 pixels, not {self.block}")
        self.width = int(width) if width else None
        self.height = int(height) if height else None
        self._shape_ready = False
        if self.width and self.height:
            self._allocate(self.height, self.width)
        self.reset()

    # ------------------------------------------------------------------ setup

    def _allocate(self, height: int, width: int) -> None:
        b = self.block
        # blocks of block x block pixels covering the whole frame; the last row/column may be
        # narrower (frames are kept zero-padded to whole blocks, the padding never changes)
        self.rows, self.cols = -(-height // b), -(-width // b)
        self.height, self.width = height, width
        ph, pw = self.rows * b, self.cols * b
        self.n_blocks = self.rows * self.cols
        rh = np.minimum(b, height - np.arange(self.rows) * b)
        cw = np.minimum(b, width - np.arange(self.cols) * b)
        # a block's mean |diff| > noise  <=>  its sum > noise * its pixel count
        self._limit = (self.params["noise"] * np.outer(rh, cw)).astype(np.float64)
        # ring of recent frames for the lookback reference: enough for `lookback` at up to 120 fps
        self._ring_len = max(4, int(math.ceil(self.params["lookback"] * 120)) + 2)
        self._ring = np.zeros((self._ring_len, ph, pw), np.uint8)
        self._ring_pts = np.full(self._ring_len, -np.inf)
        self._ref = np.zeros((ph, pw), np.uint8)
        self._diff = np.empty((ph, pw), np.uint8)
        # with a non-negative floor, blocks equal in two frames never count as changed: comparisons may
        # skip them (see _frame_sums and the `settled` shortcut in update)
        self._floor_ok = bool((self._limit >= 0).all())
        self._shape_ready = True

    def reset(self) -> None:
        """Forget the history (a new segment / a restarted decode)."""
        self._n = 0
        self._prev_pts: float | None = None
        self._head = -1  # ring slot of the newest frame
        self._count = 0  # frames in the ring
        if self._shape_ready:
            self._ring_pts[:] = -np.inf
            self._activity = np.zeros((self.rows, self.cols), np.float32)
            # time each block last changed at all (any pixel, previous frame -> this one): two frames
            # can only differ in blocks modified after the older one, so comparisons with older
            # frames only look at those blocks (a still screen costs almost nothing)
            self._modified = np.full((self.rows, self.cols), -np.inf)
        self._ref_t = -math.inf
        self._still_since: float | None = None
        self._moving_since: float | None = None
        self._last_jump: float = -math.inf  # time of the last abrupt change (lookback anchor)

    # ------------------------------------------------------------------ helpers

    def _block_sums(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Per-block sum of |a - b| (uint32, rows x cols) over whole padded frames."""
        d = np.maximum(a, b, out=self._diff)
        d -= np.minimum(a, b)  # |a - b| without widening to int16
        bs = self.block
        rows = d.reshape(self.rows, bs, -1).sum(axis=1, dtype=np.uint32)
        return rows.reshape(self.rows, self.cols, bs).sum(axis=2)

    def _frame_sums(self, cur: np.ndarray, prev: np.ndarray) -> np.ndarray:
        """_block_sums(cur, prev), computed only in the block rows where a pixel differs (typing, the
        cursor: a row or two); the other rows' sums are 0."""
        changed = (as_words(cur) != as_words(prev)).reshape(self.rows, -1).any(axis=1)
        rows = np.flatnonzero(changed)
        if 2 * rows.size > self.rows:
            return self._block_sums(cur, prev)
        sums = np.zeros((self.rows, self.cols), np.uint64)
        if rows.size:
            bs, pw = self.block, self.cols * self.block
            a = cur.reshape(self.rows, bs, pw)[rows]
            b = prev.reshape(self.rows, bs, pw)[rows]
            d = np.maximum(a, b)
            d -= np.minimum(a, b)
            sums[rows] = d.sum(axis=1, dtype=np.uint32).reshape(rows.size, self.cols, bs).sum(axis=2)
        return sums

    def _changed_since(self, cur: np.ndarray, old: np.ndarray, t_old: float, steady: np.ndarray) -> np.ndarray:
        """Per-block boolean: steady blocks whose mean |cur - old| is above the noise floor.

        Only blocks modified after t_old can differ, so only those are compared.
        """
        out = np.zeros((self.rows, self.cols), bool)
        r, c = np.nonzero((self._modified > t_old) & steady)
        k = r.size
        if k == 0:
            return out
        if 3 * k > self.n_blocks:
            out[...] = (self._block_sums(cur, old) > self._limit) & steady
            return out
        bs = self.block
        a = cur.reshape(self.rows, bs, self.cols, bs)[r, :, c, :]  # (k, bs, bs) copies of those blocks
        b = old.reshape(self.rows, bs, self.cols, bs)[r, :, c, :]
        d = np.maximum(a, b)
        d -= np.minimum(a, b)
        out[r, c] = d.reshape(k, -1).sum(axis=1, dtype=np.uint32) > self._limit[r, c]
        return out

    def _slot_since(self, horizon: float, exclude: int) -> int:
        """Ring slot of the oldest earlier frame at or after `horizon` (the previous frame if none)."""
        best = (exclude - 1) % self._ring_len
        for k in range(2, self._count):
            slot = (exclude - k) % self._ring_len
            if self._ring_pts[slot] < horizon - 1e-6:
                break
            best = slot
        return best

    # ------------------------------------------------------------------ scoring

    def update(self, gray: np.ndarray, pts: float | None = None) -> dict[str, float]:
        """The block metrics for the next frame."""
        gray = np.asarray(gray)
        if gray.ndim != 2 or gray.dtype != np.uint8:
            raise ScoringError(f"expected a 2-D uint8 gray frame, got {gray.dtype} {gray.shape}")
        if not self._shape_ready:
            self._allocate(*gray.shape)
            self.reset()
        elif gray.shape != (self.height, self.width):
            raise ScoringError(f"frame shape {gray.shape} differs from the scorer's {(self.height, self.width)}")
        t = float(pts) if pts is not None and math.isfinite(pts) else self._n / self.fps
        if self._prev_pts is not None and t <= self._prev_pts:
            t = self._prev_pts + 1e-6  # keep time moving forward (duplicate / odd timestamps)
        p = self.params
        self._n += 1
        h, w = self.height, self.width

        if self._count == 0:  # first frame: nothing to compare with
            slot = self._push(gray, t)
            self._ref[...] = self._ring[slot]
            self._ref_t = t
            self._still_since = t
            self._prev_pts = t
            return {"pixels": 0.0, "blocks": 0.0, "lookback": 0.0, "settled": 0.0}

        prev_slot = self._head
        prev_t = self._prev_pts if self._prev_pts is not None else t - 1.0 / self.fps
        slot = self._push(gray, t)
        cur = self._ring[slot]
        n = float(self.n_blocks)

        sums = self._frame_sums(cur, self._ring[prev_slot])
        pixels = float(sums.sum()) / (h * w * 255.0)
        self._modified[sums > 0] = t
        c1 = sums > self._limit
        decay = math.exp(-(t - prev_t) / p["volatile_tau"])
        act = self._activity
        act *= decay
        act += (1.0 - decay) * c1
        steady = act <= p["volatile_level"]
        f1 = float(np.count_nonzero(c1 & steady)) / n
        if f1 > p["still"]:
            self._last_jump = t  # later frames compare with this one at the earliest, not across the jump

        # slow changes: compare with ~lookback s ago, but never across the last abrupt change
        full_slot = self._slot_since(t - p["lookback"], exclude=slot)
        anchor_slot = self._slot_since(max(t - p["lookback"], self._last_jump), exclude=slot)
        cl_full = self._changed_since(cur, self._ring[full_slot], self._ring_pts[full_slot], steady)
        lookback = float(np.count_nonzero(cl_full)) / n
        if anchor_slot == full_slot:
            fl = lookback
        else:
            fl = float(np.count_nonzero(
                self._changed_since(cur, self._ring[anchor_slot], self._ring_pts[anchor_slot], steady))) / n

        still = f1 <= p["still"] and fl <= p["still"]
        settled = 0.0
        emit = False
        if still:
            if self._still_since is None:
                self._still_since = t
            emit = t - self._still_since >= p["settle"] - 1e-6
            if emit:
                self._moving_since = None
        else:
            self._still_since = None
            if self._moving_since is None:
                self._moving_since = t
            elif t - self._moving_since >= p["max_wait"]:
                emit = True  # never settles (a long animation): report what changed so far
                self._moving_since = t
        if emit:
            if self._ref_t == prev_t and self._prev_pts is not None and self._floor_ok:
                settled = f1  # the reference is the previous frame: the same blocks as `blocks` changed
            else:
                settled = float(np.count_nonzero(self._changed_since(cur, self._ref, self._ref_t, steady))) / n
            self._ref[...] = cur
            self._ref_t = t
        self._prev_pts = t
        return {"pixels": pixels, "blocks": f1, "lookback": lookback, "settled": settled}

    def _push(self, gray: np.ndarray, t: float) -> int:
        self._head = (self._head + 1) % self._ring_len
        self._ring[self._head, : self.height, : self.width] = gray
        self._ring_pts[self._head] = t
        self._count = min(self._count + 1, self._ring_len)
        return self._head


__all__ = ["BLOCK_METRICS", "DEFAULT_PARAMS", "BlockScorer", "ScoringError"]
