"""The structure of a change: where its blocks are and how they group, and what a scroll explains.

`structure(mask)` rates a boolean block mask (True: the block changed) by the area its groups
cover: the blocks are cut into groups by empty rows and columns (an XY cut, gaps of `gap` blocks
join), and each group counts with its bounding box, less for a thin one (a box `thin` blocks high
or wide counts fully; a single row counts a third; a box less than `fill` full counts in proportion).
So a change spread over the main content
area (text rows at once: a file switch, a new page) counts with the whole area it spans, while a
compact change (toast, badge, cursor, a video region) counts with its own small box, and a thin
strip (a progress bar, one typed line) with a fraction of it, however many pixels change inside.

`explain_shift` tests whether a group is content that moved (a scroll): it estimates the vertical
or horizontal translation between the reference and the current picture inside the group's box
(the best whole-pixel shift of the box, then a sub-pixel refinement) and returns the blocks the shift does not
explain, including the band of content that scrolled in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Group:
    """A group of changed blocks: its bounding box in blocks (rows r0:r1, columns c0:c1) and block count."""

    r0: int
    r1: int
    c0: int
    c1: int
    blocks: int

    @property
    def height(self) -> int:
        return self.r1 - self.r0

    @property
    def width(self) -> int:
        return self.c1 - self.c0


def _runs(present: np.ndarray, gap: int) -> list[tuple[int, int]]:
    """[start, stop) runs of True in a 1-D array, joining runs separated by fewer than `gap` False."""
    # in plain Python: the arrays are a few dozen blocks long, numpy calls would cost more
    out: list[tuple[int, int]] = []
    for i in np.flatnonzero(present).tolist():
        if out and i - out[-1][1] + 1 <= gap:
            out[-1] = (out[-1][0], i + 1)
        else:
            out.append((i, i + 1))
    return out


def groups(mask: np.ndarray, gap: int = 1, depth: int = 6) -> list[Group]:
    """Groups of True blocks by recursive XY cuts (rows, then columns, ...) at gaps wider than `gap`."""
    out: list[Group] = []

    def cut(r0: int, r1: int, c0: int, c1: int, level: int, by_rows: bool, tried_other: bool) -> None:
        sub = mask[r0:r1, c0:c1]
        axis_runs = _runs(sub.any(axis=1) if by_rows else sub.any(axis=0), gap)
        if len(axis_runs) <= 1 or level >= depth:
            if len(axis_runs) == 1:
                a, b = axis_runs[0]
                if by_rows:
                    r0, r1 = r0 + a, r0 + b
                else:
                    c0, c1 = c0 + a, c0 + b
            if not tried_other and level < depth:
                cut(r0, r1, c0, c1, level + 1, not by_rows, True)
                return
            s = mask[r0:r1, c0:c1]
            if s.any():
                rr = np.flatnonzero(s.any(axis=1))
                cc = np.flatnonzero(s.any(axis=0))
                out.append(Group(r0 + int(rr[0]), r0 + int(rr[-1]) + 1, c0 + int(cc[0]), c0 + int(cc[-1]) + 1,
                                 int(s.sum())))
            return
        for a, b in axis_runs:
            if by_rows:
                cut(r0 + a, r0 + b, c0, c1, level + 1, False, False)
            else:
                cut(r0, r1, c0 + a, c0 + b, level + 1, True, False)

    if mask.any():
        cut(0, mask.shape[0], 0, mask.shape[1], 0, True, False)
    return out


def group_area(g: Group, thin: float = 3.0, fill: float = 0.4) -> float:
    """Blocks a group counts for: its box, scaled down when it is thinner than `thin` blocks or when
    fewer than `fill` of the box's blocks changed (scattered noise is no spread change)."""
    box = g.height * g.width
    return box * min(1.0, g.height / thin) * min(1.0, g.width / thin) * min(1.0, g.blocks / (fill * box))


def structure(mask: np.ndarray, gap: int = 1, thin: float = 3.0, fill: float = 0.4) -> float:
    """The fraction of the frame the change's groups span (see the module docstring), in [0, 1]."""
    if not mask.any():
        return 0.0
    total = sum(group_area(g, thin, fill) for g in groups(mask, gap))
    return min(1.0, total / mask.size)


# --------------------------------------------------------------------------- scrolls


def _profile_errors(pa: np.ndarray, pb: np.ndarray, max_shift: int) -> np.ndarray:
    """Mean |pb[i] - pa[i + s]| of two 1-D profiles for s = -max_shift..max_shift (inf at s = 0), vectorised."""
    n = pa.size
    m = min(max_shift, n - 1)
    padded = np.full(n + 2 * m, np.nan, np.float32)
    padded[m: m + n] = pa
    windows = np.lib.stride_tricks.sliding_window_view(padded, n)  # row k: pa shifted by k - m
    with np.errstate(invalid="ignore"):
        err = np.nanmean(np.abs(windows - pb[None, :]), axis=1)
    out = np.full(2 * max_shift + 1, np.inf)
    out[max_shift - m: max_shift + m + 1] = err
    out[max_shift] = np.inf
    return out


def _candidate_shifts(ref: np.ndarray, cur: np.ndarray, max_shift: int, keep: int = 3, shortlist: int = 8) -> list[int]:
    """The `keep` whole-pixel shifts (along rows) that best match the 2-D pictures, s != 0.

    Row profiles shortlist the local minima cheaply; the 2-D error decides among them: text lines and
    chat messages repeat their layout, so a profile matches a shift by one line almost as well as the
    true one, but the picture does not. The caller refines the kept ones to quarter pixels."""
    n = ref.shape[0]
    e = np.r_[np.inf, _profile_errors(ref.mean(axis=1), cur.mean(axis=1), max_shift), np.inf]
    local = np.flatnonzero((e[1:-1] <= e[:-2]) & (e[1:-1] <= e[2:]) & np.isfinite(e[1:-1]))
    short = local[np.argsort(e[1:-1][local])][:shortlist] - max_shift
    scored = []
    for s in short.tolist():
        a, b = (cur[: n - s], ref[s:]) if s > 0 else (cur[-s:], ref[: n + s])
        scored.append((float(np.abs(a - b).mean()), s))
    return [s for _, s in sorted(scored)[:keep]]


def _shifted(ref: np.ndarray, s: float, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """ref moved by s pixels along axis (cur[i] ~ ref[i + s]), linear interpolation; (picture, valid mask)."""
    n = ref.shape[axis]
    pos = np.arange(n, dtype=np.float32) + s
    lo = np.floor(pos).astype(np.int64)
    f = (pos - lo).astype(np.float32)
    valid = (lo >= 0) & (lo + 1 <= n - 1) | ((lo == n - 1) & (f < 1e-6))
    lo_c = np.clip(lo, 0, n - 1)
    hi_c = np.clip(lo + 1, 0, n - 1)
    r = ref.astype(np.float32)
    if axis == 0:
        out = r[lo_c] * (1 - f)[:, None] + r[hi_c] * f[:, None]
        vmask = np.broadcast_to(valid[:, None], ref.shape)
    else:
        out = r[:, lo_c] * (1 - f)[None, :] + r[:, hi_c] * f[None, :]
        vmask = np.broadcast_to(valid[None, :], ref.shape)
    return out, vmask


GRADIENT_SLACK = 0.75  # a shifted pixel matches within pix_noise + this x the local gradient (sub-pixel shifts)


@dataclass(frozen=True)
class Shift:
    axis: int  # 0: vertical, 1: horizontal
    pixels: float  # cur[i] ~ ref[i + pixels]: > 0 when the content moved up / left (scrolled down / right)
    unexplained: np.ndarray  # block mask (the group's box) the shift does not explain (band included)
    band: np.ndarray  # block mask of the band that scrolled in (new content by construction)
    fraction: float  # the share of the box that scrolled in: |pixels| / its extent along `axis`


def _bmean(x: np.ndarray, rb: int, cb: int, b: int) -> np.ndarray:
    return x[: rb * b, : cb * b].reshape(rb, b, cb, b).mean(axis=(1, 3))


def explain_shift(ref: np.ndarray, cur: np.ndarray, block: int, pix_noise: float, pix_count: int, *,
                  mean_noise: float = 1.5, mean_texture: float = 0.25, chroma_noise: float = 3.0,
                  ref_c: np.ndarray | None = None, cur_c: np.ndarray | None = None,
                  max_fraction: float = 0.5) -> Shift | None:
    """The translation that best explains cur from ref (both the group's box, analysis pixels), or None.

    Tried along both axes, shifts up to `max_fraction` of the box; a shift explains a pixel when
    the shifted reference is within `pix_noise` (plus GRADIENT_SLACK times the local gradient) of
    it (the reference is interpolated, so sub-pixel scrolls are explained too). A block stays
    unexplained when at least `pix_count` of its pixels do, when its mean luma differs from the
    shifted reference's by more than `mean_noise` + `mean_texture` x its texture, or its mean
    chroma (ref_c/cur_c: the (2, h/2, w/2) planes of the box) by more than `chroma_noise` (a theme
    change is no scroll), or when it lies in the band that scrolled in.
    """
    h, w = cur.shape
    rb, cb = h // block, w // block
    if rb < 2 and cb < 2:
        return None
    best: Shift | None = None
    best_n = None
    c32 = cur.astype(np.float32)
    cur_mean = _bmean(c32, rb, cb, block)
    r32 = ref.astype(np.float32)
    for axis in (0, 1):
        n = h if axis == 0 else w
        nb = rb if axis == 0 else cb
        if nb < 2:
            continue
        # whole-pixel candidates on every other line across the shift (cheap), then quarter pixels
        a, c = (r32[:, ::2], c32[:, ::2]) if axis == 0 else (r32[::2].T, c32[::2].T)
        tried: list[tuple[float, float]] = []
        cands = _candidate_shifts(a, c, max(1, int(n * max_fraction)))
        for rank, s in enumerate(cands):
            for sf in ((s - 0.5, s - 0.25, s, s + 0.25, s + 0.5) if rank == 0 else (s - 0.5, s, s + 0.5)):
                moved, valid = _shifted(ref, sf, axis)
                tried.append((float(np.abs(c32 - moved)[valid].mean()) if valid.any() else np.inf, sf))
        if not tried:
            continue
        sf = min(tried)[1]
        moved, valid = _shifted(ref, sf, axis)
        # interpolating a downscaled picture is not exact at edges: allow for the local gradient
        grad = np.zeros_like(moved)
        d = np.abs(np.diff(moved, axis=axis))
        if axis == 0:
            grad[1:] = d
            grad[:-1] = np.maximum(grad[:-1], d)
        else:
            grad[:, 1:] = d
            grad[:, :-1] = np.maximum(grad[:, :-1], d)
        bad = (np.abs(c32 - moved) > pix_noise + GRADIENT_SLACK * grad) | ~valid
        cnt = bad[: rb * block, : cb * block].reshape(rb, block, cb, block).sum(axis=(1, 3))
        unexplained = cnt >= pix_count
        tex = _bmean(np.abs(np.diff(moved, axis=1, append=moved[:, -1:])), rb, cb, block)
        unexplained |= np.abs(cur_mean - _bmean(moved, rb, cb, block)) > mean_noise + mean_texture * tex
        k = int(unexplained.sum())
        if best_n is None or k < best_n:
            band = np.zeros_like(unexplained)
            edge = int(math.ceil(abs(sf) / block))
            if axis == 0:
                band[rb - edge:] = sf > 0
                band[:edge] |= sf < 0
            else:
                band[:, cb - edge:] = sf > 0
                band[:, :edge] |= sf < 0
            best, best_n = Shift(axis, sf, unexplained, band, abs(sf) / n), k
    if best is not None and ref_c is not None and cur_c is not None:
        hb = block // 2
        for plane in range(2):
            moved, _ = _shifted(ref_c[plane], best.pixels / 2.0, best.axis)
            diff = np.abs(_bmean(cur_c[plane].astype(np.float32), rb, cb, hb) - _bmean(moved, rb, cb, hb))
            best.unexplained[...] |= diff > chroma_noise / 2.0
    return best
