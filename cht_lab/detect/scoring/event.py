"""The `event` metric: one score per change of the screen, rated by its structure, with its onset.

How a frame is read (analysis frames: Y, and U/V at half size when the decode gives them):

- Blocks of `block` x `block` luma pixels (4 x 4 chroma). A block *differs* between a picture
  and a reference when at least `pix_count` of its pixels differ by more than `pix_noise` plus
  `grad_slack` times the reference's local gradient (a glyph changing is a few pixels; a keyframe
  re-encoding text moves pixels along its edges, by a fraction of the edge), or its mean luma moves
  by more than `mean_noise` plus `mean_texture` times its texture (a flat dark background moving by
  3 gray levels is a change), or its mean chroma (|U| + |V|) by more than `chroma_noise`.
- *Moving* blocks differ from the previous frame or from the frame `window` s earlier (slow
  fades move too). Blocks that keep moving while the rest of the screen is still are *volatile*
  (an exponential history of "moving", `volatile_tau`; a video, a webcam, a spinner) and are
  ignored; a frame where most of the screen moves (a film, a fade) does not count towards that
  history, so whole-frame motion is never ignored.
- The screen is *at rest* when few blocks move (not volatile; `rest_level`). At rest, the blocks
  that differ from the reference picture (the last resting picture) and have stopped moving form
  the change; it is rated by `shapes.structure` after taking out what a scroll explains, reported
  on that frame (the *capture*: fully rendered, at rest), and becomes part of the reference. A
  blank picture (black or white everywhere: the middle of a fade through black) is never a reference.
- `onset`: frames from the change's first frame to the capture; `revisit`: frames back to an
  earlier reported change whose picture this one shows again (0: none).
- Cuts inside continuous motion (a film): a frame where much more of the screen jumps than in the
  frames before and after is a cut; when the screen is still moving `window` s later, the cut is
  reported there (nothing else would be: the screen never rests).
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from typing import Any

import numpy as np

from cht_lab.detect.scoring.blocks import BlockOps
from cht_lab.detect.scoring.shapes import explain_shift, group_area, groups

EVENT_PARAMS: dict[str, float] = {
    "block": 8,               # block side (analysis pixels); 320 x 180 -> 40 x 23 blocks
    "pix_noise": 10.0,        # a pixel differs when |difference| > this (gray levels) ...
    "grad_slack": 0.25,       # ... + this times the reference's local gradient (edges re-encode noisily)
    "pix_count": 3,           # a block differs when at least this many of its pixels do
    "mean_noise": 1.5,        # ... or its mean luma moves by more than this (+ texture term)
    "mean_texture": 0.6,      # ... times its texture (mean |horizontal gradient|): text re-encodes noisily
    "chroma_noise": 6.0,      # ... or its mean |dU| + |dV| moves by more than this
    "window": 0.25,           # s: moving = differs from the previous frame or from `window` s ago
    "rest_level": 0.06,       # the screen rests when at most this fraction of (non-volatile) blocks moves
    "volatile_tau": 5.0,      # s: time constant of the per-block motion history
    "volatile_level": 0.25,   # history above this: volatile
    "global_frac": 0.5,       # frames where more than this fraction of blocks move: no history
    "scroll_min": 0.02,       # groups spanning at least this fraction are tested for a scroll
    "scroll_new": 0.33,       # a scroll counts from bringing in this share of its area (3 lines do not)
    "thin": 4.0,              # groups thinner than this (blocks) count less
    "fill": 0.4,              # ... and groups with fewer of their box's blocks changed than this
    "centre_boost": 2.0,      # a group in the middle of the screen counts up to 1 + this times (a dialog)
    "revisit_min": 0.06,      # changes at least this big are remembered for revisits (not toasts)
    "revisit_tol": 0.05,      # ... differ in at most this share of the change, and compactly elsewhere
    "jump_level": 12.0,       # a block jumps: mean luma or chroma moves by more than this in one frame
    "cut_level": 0.35,        # a cut: at least this fraction of blocks jump ...
    "cut_margin": 0.3,        # ... this much more than in the frames around it
    "blank_texture": 0.6,     # a picture with a mean texture below this is blank (black, one colour)
}

MIN_SCROLL = 1.5  # analysis pixels: a smaller shift is no scroll (a theme change is explained by half a pixel)
REVISIT_MEMORY = 64  # remembered pictures (luma + block means: ~70 KB each at 320 x 180)
TIMES = 1 << 13  # frames whose times are kept for onsets (4.5 min at 30 fps; older onsets are clamped)


class EventScorer(BlockOps):
    """Stateful `event` metric for one stream (see the module docstring).

    `update(y, u, v, t)` -> (score, onset_frames, revisit_frames); u/v may be None (luma only).
    """

    def __init__(self, width: int, height: int, fps: float = 30.0, **params: Any):
        self.p = {**EVENT_PARAMS, **{k: float(v) for k, v in params.items() if k in EVENT_PARAMS}}
        self.fps = float(fps)
        self.block = b = int(self.p["block"])
        if b < 2 or b % 2:
            raise ValueError(f"event block must be an even number >= 2, not {b}")
        self.width, self.height = int(width), int(height)
        self.rows, self.cols = -(-self.height // b), -(-self.width // b)
        self.ph, self.pw = self.rows * b, self.cols * b
        self.n_blocks = self.rows * self.cols
        self._ring_len = max(4, int(math.ceil(self.p["window"] * 120)) + 2)
        k = self.p["grad_slack"]
        self._lut = np.floor(self.p["pix_noise"] + k * np.arange(256)).astype(np.int16)  # threshold by gradient
        self._noise = np.uint8(min(255, int(self.p["pix_noise"])))
        self._pix_count = int(self.p["pix_count"])
        # _count's masks over flattened blocks: 0 where a neighbour pair crosses a block line / a block
        i = np.arange(self.rows * self.cols * b * b)
        self._hmask = (i[:-1] % b != b - 1).astype(np.int16)
        self._vmask = ((i[:-b] // b) % b != b - 1).astype(np.int16)
        self.reset()

    # ------------------------------------------------------------------ state

    def reset(self) -> None:
        R, C, L = self.rows, self.cols, self._ring_len
        hh, hw = self.ph // 2, self.pw // 2
        self._y = np.zeros((L, self.ph, self.pw), np.uint8)
        self._c = np.zeros((L, 2, hh, hw), np.uint8)
        self._means = np.zeros((L, 3, R, C), np.float32)
        self._t = np.full(L, -np.inf)
        self._head = -1
        self._n = 0
        self._ref_y = np.zeros((self.ph, self.pw), np.uint8)
        self._ref_c = np.zeros((2, hh, hw), np.uint8)
        self._ref_means = np.zeros((3, R, C), np.float32)
        self._ref_tex = np.zeros((R, C), np.float32)
        self._ref_lim = self._mean_limit(self._ref_tex)
        self._since = np.full((R, C), np.inf)  # first move after the block's last rebase
        self._last_mod = np.full((R, C), -np.inf)  # last time any pixel (or mean) of the block changed
        self._act = np.zeros((R, C), np.float32)
        self._was_volatile = np.zeros((R, C), bool)
        self._last_change = -math.inf  # last time any block changed
        self._jumps: deque[tuple[float, float]] = deque()  # (t, jump fraction) of recent frames
        self._pending_cut: tuple[float, int] | None = None  # (t, frame number) of a cut waiting for `window`
        self._landmarks: deque[tuple[int, np.ndarray, np.ndarray, np.ndarray]] = deque(maxlen=REVISIT_MEMORY)
        self._times = np.full(TIMES, -np.inf)  # pts of the last TIMES frames (frames back from a time)
        self._chroma = False
        self._diff = np.empty((self.ph, self.pw), np.uint8)
        self.last: dict[str, Any] = {}

    # ------------------------------------------------------------------ structure

    def _structure(self, mask: np.ndarray, y: np.ndarray | None = None) -> float:
        """shapes.structure of a block mask; with the current picture `y`, what scrolled is taken out."""
        if not mask.any():
            return 0.0
        p = self.p
        b = self.block
        total = 0.0
        for g in groups(mask):
            area = group_area(g, p["thin"], p["fill"])
            if y is not None and area / self.n_blocks >= p["scroll_min"] and g.height >= 3:
                box = (slice(g.r0 * b, g.r1 * b), slice(g.c0 * b, g.c1 * b))
                cbox = (slice(None), slice(g.r0 * b // 2, g.r1 * b // 2), slice(g.c0 * b // 2, g.c1 * b // 2))
                sh = explain_shift(self._ref_y[box], y[box], b, p["pix_noise"] * 1.5, int(p["pix_count"]) * 2,
                                   mean_noise=p["mean_noise"], mean_texture=p["mean_texture"],
                                   chroma_noise=p["chroma_noise"] * 2,
                                   ref_c=self._ref_c[cbox] if self._chroma else None,
                                   cur_c=self._c[self._head][cbox] if self._chroma else None)
                if sh is not None and abs(sh.pixels) >= MIN_SCROLL:
                    rest = sh.unexplained & mask[g.r0:g.r1, g.c0:g.c1]
                    if rest.sum() < 0.5 * g.blocks:
                        # a scroll: what it does not explain counts, and the content it brought in
                        # counts once it is more than `scroll_new` of the scrolled area
                        self.last["scroll"] = (sh.axis, sh.pixels)
                        other = rest & ~sh.band
                        brought = max(0.0, sh.fraction - p["scroll_new"]) / (1.0 - p["scroll_new"])
                        area = sum(group_area(h, p["thin"], p["fill"]) for h in groups(other)) + brought * area
            total += area * self._centre_weight(g)
        return min(1.0, total / self.n_blocks)

    def _centre_weight(self, g: Any) -> float:
        """1 + centre_boost x the share of a solid group's box in the middle of the screen (the middle half
        of the width, 60 % of the height): a dialog is a solid box in the centre; a toast or a badge sits in
        a corner, and scattered changes (text fading in) are no box."""
        box = max(1, g.height * g.width)
        solid = min(1.0, max(0.0, (g.blocks / box - 0.6) / 0.3))
        if solid <= 0.0:
            return 1.0
        r0, r1 = 0.2 * self.rows, 0.8 * self.rows
        c0, c1 = 0.25 * self.cols, 0.75 * self.cols
        h = max(0.0, min(g.r1, r1) - max(g.r0, r0))
        w = max(0.0, min(g.c1, c1) - max(g.c0, c0))
        return 1.0 + self.p["centre_boost"] * solid * h * w / box

    # ------------------------------------------------------------------ the frame

    def update(self, y: np.ndarray, u: np.ndarray | None, v: np.ndarray | None, t: float) -> tuple[float, int, int]:
        p = self.p
        self._head = slot = (self._head + 1) % self._ring_len
        cy = self._y[slot]
        cy[: self.height, : self.width] = y
        cc = self._c[slot]
        if u is not None and v is not None:
            self._chroma = True
            hh, hw = u.shape
            cc[0, :hh, :hw] = u
            cc[1, :hh, :hw] = v
        cm = self._means[slot]
        self._t[slot] = t
        n = self._n
        self._times[n % TIMES] = t
        self._n += 1
        self.last = {}
        if n == 0:
            self._block_means(cy, cc, cm)
            self._rebase_all(slot)
            return 0.0, 0, 0
        prev = (slot - 1) % self._ring_len
        pm = self._means[prev]
        lim = self._ref_lim
        # what moved since the previous frame: only block rows with a changed pixel are looked at
        rows = self._changed_rows(cy, cc, self._y[prev], self._c[prev])
        cm[...] = pm
        if rows.size:
            b, hb = self.block, self.block // 2
            sub = np.empty((3, rows.size, self.cols), np.float32)
            self._block_means(cy.reshape(self.rows, b, self.pw)[rows].reshape(-1, self.pw),
                              cc.reshape(2, self.rows, hb, self.pw // 2)[:, rows].reshape(2, -1, self.pw // 2), sub)
            cm[:, rows] = sub
        else:
            decay = math.exp(-(t - self._t[prev]) / p["volatile_tau"])
            if self._still(t, decay):  # nothing moved now, nothing moved within `window`, no change pending
                self._check_cut(t, n, 0.0)
                return 0.0, 0, 0
        touched, moved = self._pixels_moved(cy, self._y[prev], rows)
        if rows.size:
            mean_moved = np.zeros_like(moved)
            mean_moved[rows] = self._means_differ(cm[:, rows], pm[:, rows], lim[rows])
            touched[rows] |= mean_moved[rows] | (cm[0, rows] != pm[0, rows])
            self._last_mod[touched] = t
            self._last_change = t
            moved |= mean_moved
        # the frame `window` s ago, for slow motion (only blocks modified since then can differ)
        old = self._slot_at(t - p["window"])
        if old is not None and old != prev:
            recent = (self._last_mod > self._t[old]) & ~moved & ~self._was_volatile
            if recent.any():
                moved |= self._differ(cy, cm, self._y[old], self._means[old], lim, only=recent)
        # volatility: only from frames where a part of the screen moves
        decay = math.exp(-(t - self._t[prev]) / p["volatile_tau"])
        if np.count_nonzero(moved) <= p["global_frac"] * self.n_blocks:
            self._act *= decay
            self._act += (1.0 - decay) * moved
        volatile = self._act > p["volatile_level"]
        self._since[volatile] = np.inf  # a volatile block is no part of a change ...
        self._since[self._was_volatile & ~volatile] = t  # ... until it calms down: then it is compared again
        self._was_volatile = volatile
        self._since[moved & ~np.isfinite(self._since)] = t
        # cuts: a frame where much more of the screen jumps than around it
        dm = np.abs(cm - pm) if self._chroma else np.abs(cm[:1] - pm[:1])
        jump = dm[0] > p["jump_level"]
        if self._chroma:
            jump |= dm[1] + dm[2] > p["jump_level"]
        self._check_cut(t, n, np.count_nonzero(jump) / self.n_blocks)  # == jump.mean()
        moving = moved & ~volatile
        rest = int(np.count_nonzero(moving)) <= p["rest_level"] * self.n_blocks
        if self._pending_cut is not None and t - self._pending_cut[0] >= p["window"] - 1e-6:
            n_cut = self._pending_cut[1]
            self._pending_cut = None
            if not rest:
                # the screen keeps moving (a film, a video next to the change): the cut is reported now,
                # as a change of the whole picture; nothing else would report it before the motion stops
                revisit = self._revisit(cm, cy, n, np.ones_like(moving))
                self._rebase_all(slot)
                self._landmarks.append((n, cm.copy(), self._ref_tex.copy(), cy.copy()))
                return 1.0, n - n_cut, revisit
        if not rest or self._blank(cm, cy):
            return 0.0, 0, 0
        cand = np.isfinite(self._since) & ~volatile
        if not cand.any():
            return 0.0, 0, 0
        differ = self._differ(cy, cm, self._ref_y, self._ref_means, lim, only=cand)
        self._since[cand & ~differ & ~moving] = np.inf  # changed, then came back to the reference
        settled = differ & ~moving
        if not settled.any():
            return 0.0, 0, 0
        self.last["settled"] = settled
        score = self._structure(settled, cy)
        onset = self._onset(settled, n)
        revisit = self._revisit(cm, cy, n, settled) if score >= p["revisit_min"] else 0
        self._rebase(settled, slot)
        if score >= p["revisit_min"]:
            self._landmarks.append((n, cm.copy(), self._ref_tex.copy(), cy.copy()))
        self._pending_cut = None
        return score, onset, revisit

    # ------------------------------------------------------------------ helpers

    def _still(self, t: float, decay: float) -> bool:
        """The fast path of a frame equal to the previous one: true (and the motion history decayed) when
        nothing moved within `window` s, no block waits to settle and no cut is pending."""
        if self._pending_cut is not None or t - self._last_change <= self.p["window"] + 1e-6:
            return False
        if np.isfinite(self._since).any():
            return False
        act = self._act * decay
        if ((act > self.p["volatile_level"]) != self._was_volatile).any():
            return False  # a block calms down: the slow path compares it with the reference
        self._act = act
        return True

    def _slot_at(self, horizon: float) -> int | None:
        """Ring slot of the newest frame at or before `horizon` (None if the ring does not reach back)."""
        for k in range(1, self._ring_len):
            slot = (self._head - k) % self._ring_len
            if self._t[slot] <= horizon + 1e-6:
                return slot if math.isfinite(self._t[slot]) else None
        return None

    def _check_cut(self, t: float, n: int, jf: float) -> None:
        """Is the previous frame a cut? It jumped much more than the frames before it and this one."""
        p = self.p
        if self._jumps:
            t_prev, j_prev = self._jumps[-1]
            since = t_prev - p["window"] - 1e-9
            before = [j for (tt, j) in itertools.islice(self._jumps, len(self._jumps) - 1) if tt >= since]
            base = max(before) if before else 0.0
            if j_prev >= p["cut_level"] and j_prev >= base + p["cut_margin"] and j_prev >= jf + p["cut_margin"]:
                self._pending_cut = (t_prev, n - 1)
                # the change starts again at the cut: blocks that moved before it date from it
                fin = np.isfinite(self._since)
                self._since[fin] = np.maximum(self._since[fin], t_prev)
        self._jumps.append((t, jf))
        while self._jumps and self._jumps[0][0] < t - 2 * p["window"] - 1e-9:
            self._jumps.popleft()

    def _blank(self, cm: np.ndarray, y: np.ndarray) -> bool:
        """A picture without content: one black or white (or gray) colour everywhere, like the middle of a
        fade through black or the flash before a page loads. Never a reference: the change runs on through it.
        A picture of one saturated colour (a red alert page) is content."""
        if float(cm[0].max() - cm[0].min()) > 8.0:
            return False
        if self._chroma and float(np.abs(cm[1:] - 128.0).mean()) > 12.0:
            return False
        luma = float(cm[0].mean())
        if 32.0 < luma < 224.0:
            return False
        return float(self._texture(y).mean()) < self.p["blank_texture"]

    def _onset(self, settled: np.ndarray, n: int) -> int:
        """Frames from the change's first frame (a low quantile of its blocks' first moves) to now."""
        since = np.sort(self._since[settled])
        first = float(since[int(0.2 * (since.size - 1))])
        k = min(n, TIMES - 1)
        idx = (n - np.arange(k + 1)) % TIMES  # frames n, n-1, ... n-k
        return max(0, int(np.count_nonzero(self._times[idx] >= first - 1e-6)) - 1)

    def _revisit(self, cm: np.ndarray, cy: np.ndarray, n: int, changed: np.ndarray) -> int:
        """Frames back to the newest remembered picture this one shows again (0: none).

        The same screen: volatile areas aside (a playing video, a spinner, a webcam, and the two blocks
        around them), where this change happened (`changed`) at most `revisit_tol` of the blocks differ
        from the remembered picture (their means or pixels, as a change is found), and elsewhere what
        differs is compact (structure at most `revisit_tol`: a toast, a clock, a video's still parts).
        Two slides of one template differ in their titles and labels: no revisit."""
        p = self.p
        busy = self._act > p["volatile_level"]
        for _ in range(2):
            grown = busy.copy()
            grown[1:] |= busy[:-1]
            grown[:-1] |= busy[1:]
            grown[:, 1:] |= busy[:, :-1]
            grown[:, :-1] |= busy[:, 1:]
            busy = grown
        quiet = ~busy
        inside_max = p["revisit_tol"] * np.count_nonzero(changed & quiet) + 2
        everything = np.arange(self.rows)
        for n_then, means, tex, y_then in reversed(self._landmarks):
            differ = self._means_differ(cm, means, self._mean_limit(np.maximum(tex, self._ref_tex))) & quiet
            if np.count_nonzero(differ & changed) > inside_max:
                continue
            differ |= self._pixels_moved(cy, y_then, everything)[1] & quiet
            if (np.count_nonzero(differ & changed) <= inside_max
                    and self._structure(differ & ~changed) <= p["revisit_tol"]):
                return n - n_then
        return 0

    def _rebase(self, mask: np.ndarray, slot: int) -> None:
        """The blocks of `mask` of picture `slot` become the reference."""
        b, hb = self.block, self.block // 2
        R, C = self.rows, self.cols
        rr, cc = np.nonzero(mask)
        self._ref_y.reshape(R, b, C, b)[rr, :, cc, :] = self._y[slot].reshape(R, b, C, b)[rr, :, cc, :]
        self._ref_c.reshape(2, R, hb, C, hb)[:, rr, :, cc, :] = self._c[slot].reshape(2, R, hb, C, hb)[:, rr, :, cc, :]
        self._ref_means[:, mask] = self._means[slot][:, mask]
        self._ref_tex[mask] = self._texture(self._ref_y, mask)[mask]
        self._ref_lim = self._mean_limit(self._ref_tex)
        self._since[mask] = np.inf

    def _rebase_all(self, slot: int) -> None:
        self._ref_y[...] = self._y[slot]
        self._ref_c[...] = self._c[slot]
        self._ref_means[...] = self._means[slot]
        self._ref_tex[...] = self._texture(self._ref_y)
        self._ref_lim = self._mean_limit(self._ref_tex)
        self._since[...] = np.inf
