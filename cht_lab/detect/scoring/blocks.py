"""Block-level operations on analysis pictures, shared by the `event` scorer.

A picture is cut into `block` x `block` luma blocks (chroma at half size); these methods compute
per-block sums, means, texture and the noise-aware "does this block differ" tests that the event
scorer builds on. They are pure functions of the pictures and of the scorer's configuration, which
the scorer sets in its constructor (the attributes listed on `BlockOps`).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def as_words(x: np.ndarray) -> np.ndarray:
    """A contiguous uint8 array seen as the widest machine words its lines allow (fewer, cheaper compares)."""
    for dt in (np.uint64, np.uint32, np.uint16):
        if x.shape[-1] % np.dtype(dt).itemsize == 0 and x.flags.c_contiguous:
            return x.view(dt)
    return x


class BlockOps:
    """Per-block operations of a scorer with the geometry and noise settings below."""

    p: dict[str, float]  # the scorer's parameters (mean_noise, mean_texture, chroma_noise)
    block: int
    rows: int
    cols: int
    pw: int
    _chroma: bool  # the pictures carry chroma planes
    _lut: np.ndarray  # pixel threshold by local gradient
    _noise: Any  # np.uint8: a pixel difference above this is more than noise
    _pix_count: int  # pixels beyond the threshold that make a block differ
    _hmask: np.ndarray  # _count's masks over flattened blocks
    _vmask: np.ndarray

    # ------------------------------------------------------------------ per-picture data

    def _bsum(self, x: np.ndarray, b: int) -> np.ndarray:
        """Per-block sums of a (rows*b, C*b) uint8/bool array: rows first, then columns (fastest in numpy)."""
        k = x.shape[0] // b
        return x.reshape(k, b, self.cols * b).sum(axis=1, dtype=np.uint16).reshape(k, self.cols, b).sum(axis=2)

    def _block_means(self, y: np.ndarray, c: np.ndarray, out: np.ndarray) -> None:
        """Block means of pictures y (rows*b, pw) and c (2, rows*b/2, pw/2) into out (3, rows, C)."""
        b = self.block
        np.multiply(self._bsum(y, b), 1.0 / (b * b), out=out[0])
        if self._chroma:
            hb = b // 2  # both chroma planes in one pass (the same sums as plane by plane)
            k = c.shape[1] // hb
            s = c.reshape(2, k, hb, self.pw // 2).sum(axis=2, dtype=np.uint16).reshape(2, k, self.cols, hb).sum(axis=3)
            np.multiply(s, 1.0 / (hb * hb), out=out[1:])

    def _changed_rows(self, cy: np.ndarray, cc: np.ndarray, py: np.ndarray, pc: np.ndarray) -> np.ndarray:
        """Block rows in which any pixel differs between two pictures (a still screen: none)."""
        # compared as machine words (8 pixels at once): a word differs iff one of its bytes does
        rows = (as_words(cy) != as_words(py)).reshape(self.rows, -1).any(axis=1)
        if self._chroma:
            rows |= (as_words(cc) != as_words(pc)).reshape(2, self.rows, -1).any(axis=2).any(axis=0)
        return np.flatnonzero(rows)

    def _texture(self, y: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """Per-block mean |horizontal gradient| (all blocks, or the blocks of `mask`; others 0)."""
        R, C, b = self.rows, self.cols, self.block
        out = np.zeros((R, C), np.float32)
        rr, cc = np.nonzero(np.ones((R, C), bool) if mask is None else mask)
        if rr.size == 0:
            return out
        blk = y.reshape(R, b, C, b)[rr, :, cc, :].astype(np.int16)
        out[rr, cc] = np.abs(np.diff(blk, axis=2)).reshape(rr.size, -1).sum(axis=1) / (b * (b - 1))
        return out

    # ------------------------------------------------------------------ block tests

    def _gather(self, x: np.ndarray, rr: np.ndarray, cc: np.ndarray) -> np.ndarray:
        bs = self.block
        return x.reshape(self.rows, bs, self.cols, bs)[rr, :, cc, :]

    def _count(self, A: np.ndarray, B: np.ndarray) -> np.ndarray:
        """Per block (k, b, b): pixels of A differing from B by more than pix_noise + grad_slack x B's
        local gradient (the larger difference to a neighbour inside the block)."""
        # On the flattened blocks (long contiguous loops instead of numpy's slow inner loops of b - 1):
        # neighbours are 1 apart (left/right) and b apart (up/down); pairs across a block line or a
        # block are zeroed by the masks, so g is the same as on the (k, b, b) blocks.
        k, b = B.shape[0], self.block
        n = k * b * b
        F = B.reshape(n).astype(np.int16)
        h = F[1:] - F[:-1]
        np.abs(h, out=h)
        h *= self._hmask[: n - 1]
        v = F[b:] - F[:-b]
        np.abs(v, out=v)
        v *= self._vmask[: n - b]
        g = np.empty(n, np.int16)
        g[0] = 0
        g[1:] = h
        np.maximum(g[:-1], h, out=g[:-1])
        np.maximum(g[b:], v, out=g[b:])
        np.maximum(g[:-b], v, out=g[:-b])
        d = A.reshape(n).astype(np.int16)
        d -= F
        np.abs(d, out=d)
        return (d > self._lut.take(g)).reshape(k, -1).sum(axis=1)

    def _pixels_moved(self, a: np.ndarray, b: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(blocks with any pixel beyond pix_noise, blocks with pix_count such pixels after the gradient
        slack) between two pictures, in block `rows` only: the plain test on their blocks, the exact one
        where it passes."""
        bs = self.block
        sa = a.reshape(self.rows, bs, self.pw)[rows].reshape(-1, self.pw)
        sb = b.reshape(self.rows, bs, self.pw)[rows].reshape(-1, self.pw)
        d = np.maximum(sa, sb)
        d -= np.minimum(sa, sb)
        touched = np.zeros((self.rows, self.cols), bool)
        out = np.zeros((self.rows, self.cols), bool)
        cnt0 = self._bsum(d > self._noise, bs)
        touched[rows] = cnt0 > 0
        out[rows] = cnt0 >= self._pix_count
        rr, cc = np.nonzero(out)
        if rr.size:
            out[rr, cc] = self._count(self._gather(a, rr, cc), self._gather(b, rr, cc)) >= self._pix_count
        return touched, out

    def _mean_limit(self, tex: np.ndarray) -> np.ndarray:
        """How far a block's mean luma may move with texture `tex` (kept for the reference as _ref_lim)."""
        return self.p["mean_noise"] + self.p["mean_texture"] * tex

    def _means_differ(self, ma: np.ndarray, mb: np.ndarray, lim: np.ndarray) -> np.ndarray:
        """Blocks whose mean luma moves by more than `lim` or mean chroma by more than chroma_noise."""
        # the three planes at once (luma only without chroma: the chroma planes then hold no data)
        d = np.abs(ma - mb) if self._chroma else np.abs(ma[:1] - mb[:1])
        out = d[0] > lim
        if self._chroma:
            out |= d[1] + d[2] > self.p["chroma_noise"]
        return out

    def _differ(self, ya: np.ndarray, ma: np.ndarray, yb: np.ndarray, mb: np.ndarray, lim: np.ndarray,
                only: np.ndarray) -> np.ndarray:
        """Blocks of `only` where picture a differs from picture b."""
        out = self._means_differ(ma, mb, lim) & only
        rr, cc = np.nonzero(only & ~out)
        if rr.size:
            out[rr, cc] = self._count(self._gather(ya, rr, cc), self._gather(yb, rr, cc)) >= self._pix_count
        return out
