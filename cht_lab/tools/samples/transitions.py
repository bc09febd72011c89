"""The `transitions` screen: a full-screen slide show with animated transitions and a film.

Each labeled change uses one transition: a hard cut, a dissolve, a fade through black, a wipe, a
slow full-frame fade, a push; one slide plays a full-screen film (continuous motion of the whole
frame, with a hard cut of its own). A gradual transition is one event; the film must not fire
while it plays, but its cut and the cuts into and out of it are events. Distractors: the mouse
cursor, a small spinner on one slide.

Scenes are `Slide(index, transition)`; a film slide is `Slide(index, "film", shot)`.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Hashable
from typing import Any, NamedTuple

import numpy as np
from PIL import Image, ImageDraw

from cht_lab.tools.samples.draw import (
    _ACCENTS, _INK, Distractor, _Geo, _Planes, _rng, _Screen, _sentence, _text, _title,
)
from cht_lab.tools.samples.slides import _cursor_path

TRANSITIONS = ("cut", "dissolve", "black", "wipe", "push", "film")


class Slide(NamedTuple):
    index: int
    transition: str = "cut"  # how this slide comes in
    shot: int = 0  # film slides: which shot plays


class TransitionsScreen(_Screen):
    """Full-screen slides; see the module docstring."""

    DESIGN = (1280, 720)
    SPINNER = (1180, 620, 48, 48)
    CURSOR_AREA = (200, 200, 700, 300)

    @classmethod
    def layout(cls, width: int, height: int) -> tuple[Distractor, ...]:
        g = _Geo(width, height, cls.DESIGN)
        ax, ay, aw, ah = cls.CURSOR_AREA
        return (Distractor("spinner", g.rect(*cls.SPINNER), "a loading spinner on slide 2, one step every 3 frames"),
                Distractor("cursor", g.rect(ax, ay, aw + 14, ah + 22), "mouse cursor moving and resting"))

    def __init__(self, *args: Any, **kw: Any):
        super().__init__(*args, **kw)
        self.rects = {d.name: d.rect for d in self.layout(self.width, self.height)}
        rng = _rng(self.seed, 51)
        x, y = _cursor_path(rng, self.n, self.fps)
        ax, ay, aw, ah = self.rects["cursor"]
        self.cur = self.freeze(np.stack([(ax + x * (aw - 16)).astype(np.int32),
                                         (ay + y * (ah - 24)).astype(np.int32)], axis=1))
        self.spin = self.freeze(((np.arange(self.n) // 3) % 8).astype(np.int32))

    # ---- pictures: rendered once per slide (and per film frame) as RGB + YUV planes
    @staticmethod
    def _slide(scene: Hashable) -> Slide:
        return scene if isinstance(scene, Slide) else Slide(int(scene))  # type: ignore[arg-type]

    def _key(self, scene: Hashable, i: int) -> Hashable:
        s = self._slide(scene)
        return ("film", s.shot, i - i % 2) if s.transition == "film" else s  # a 15 fps film

    def _planes(self, scene: Hashable, i: int) -> _Planes:
        return self._base(self._key(scene, i))[1]

    def render_scene(self, key: Hashable) -> np.ndarray:
        if isinstance(key, tuple) and key and key[0] == "film":
            return self._film(int(key[1]), int(key[2]))
        s = self._slide(key)
        g = self.g
        rng = _rng(self.seed, 300, s.index)
        accent = _ACCENTS[s.index % len(_ACCENTS)]
        dark = s.index % 3 == 2
        bg, ink = ((28, 32, 44), (236, 236, 240)) if dark else ((250, 250, 248), _INK)
        img = Image.new("RGB", (self.width, self.height), bg)
        d = ImageDraw.Draw(img)
        d.rectangle(g.box(0, 0, 1280, 12), fill=accent)
        _text(d, g.pt(72, 60), _title(rng), ink, g.ts(5))
        d.rectangle(g.box(72, 130, 200, 6), fill=accent)
        kind = s.index % 4
        if kind in (0, 1):
            for j in range(5):
                y = 180 + j * 70
                d.ellipse(g.box(80, y + 8, 14, 14), fill=accent)
                _text(d, g.pt(112, y), _sentence(rng, 3, 7), ink, g.ts(3))
        if kind in (1, 2):
            x0 = 760 if kind == 1 else 120
            vals = rng.uniform(0.2, 1.0, 6)
            for j, v in enumerate(vals):
                h = int(360 * v)
                d.rectangle(g.box(x0 + j * 70, 600 - h, 50, h), fill=_ACCENTS[(s.index + j) % len(_ACCENTS)])
            d.rectangle(g.box(x0 - 10, 600, 440, 3), fill=ink)
        if kind == 3:
            cx, cy = 640, 420
            for j in range(5):
                a = 2 * math.pi * j / 5
                x, y = cx + 300 * math.cos(a), cy + 180 * math.sin(a)
                d.rounded_rectangle(g.box(x - 90, y - 40, 180, 80), radius=g.X(12), fill=_ACCENTS[j % 6])
                _text(d, g.pt(x - 70, y - 10), _title(rng)[:12], (255, 255, 255), g.ts(2))
        if kind == 2:
            _text(d, g.pt(660, 240), _sentence(rng, 4, 8), ink, g.ts(3))
            _text(d, g.pt(660, 300), _sentence(rng, 4, 8), ink, g.ts(3))
        _text(d, g.pt(1200, 690), f"{s.index + 1}", ink, g.ts(2))
        return np.asarray(img).copy()

    def _film(self, shot: int, i: int) -> np.ndarray:
        """Continuous full-frame motion: a panning landscape (shot 0) or a night street (shot 1)."""
        w, h = self.width, self.height
        t = i / self.fps
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        k = w / 1280.0
        if shot == 0:
            img = np.stack([80 + 80 * yy / h, 130 + 60 * yy / h, 210 - 40 * yy / h], axis=-1)
            hills = h * (0.55 + 0.1 * np.sin((xx + 90 * k * t) / (w / 4)) + 0.04 * np.sin((xx + 160 * k * t) / (w / 11)))
            img = np.where((yy > hills)[..., None], np.stack([50 + 40 * yy / h, 110 + 30 * yy / h, 50 + 0 * yy], -1), img)
            sun = (xx - w * (0.7 - 0.02 * t)) ** 2 + (yy - h * 0.22) ** 2 < (h * 0.09) ** 2
            img[sun] = (250, 220, 120)
            for j in range(4):  # trees passing by, faster than the hills
                x = (w * (0.3 * j + 0.1) - 240 * k * t) % (w * 1.2) - 0.1 * w
                img[int(h * 0.45): int(h * 0.85), max(0, int(x)): max(0, int(x + 24 * k))] = (60, 40, 30)
        else:
            img = np.stack([20 + 30 * yy / h, 24 + 20 * yy / h, 50 + 40 * yy / h], axis=-1)
            for j in range(6):  # windows of buildings drifting right, a car crossing left
                x = (w * j / 6 + 60 * k * t) % w
                img[int(h * 0.2): int(h * 0.6), int(x): int(x + 80 * k)] = (60 + 20 * j, 50, 70)
                img[int(h * (0.25 + 0.05 * j)): int(h * (0.28 + 0.05 * j)), int(x + 20 * k): int(x + 40 * k)] = (240, 210, 120)
            cx = w * (1.1 - 0.25 * t % 1.4)
            img[int(h * 0.7): int(h * 0.82), max(0, int(cx)): max(0, int(cx + 220 * k))] = (200, 40, 40)
            img[int(h * 0.84):, :] = (40, 40, 44)
        return img.clip(0, 255).astype(np.uint8)

    # ---- the timeline
    def frame(self, i: int) -> _Planes:
        j = bisect.bisect_right(self._change_frames, i) - 1
        if j < 0:
            scene, prev, k, n = self.first_scene, None, 0, 1
        else:
            c = self.changes[j]
            scene = c.scene
            prev = self.changes[j - 1].scene if j > 0 else self.first_scene
            k, n = i - c.frame + 1, c.frames
        out = self._out
        if prev is None or k >= n:
            self._state = (self._key(scene, i), None, 0, 1)
            np.copyto(out.buf, self._planes(scene, i).buf)
        else:
            self._state = (self._key(prev, i), self._key(scene, i), k, n)
            self._blend(self._planes(prev, i), self._planes(scene, i), self._slide(scene).transition, k / n, out)
        self.draw_overlays(i, out)
        return out

    def _blend(self, a: _Planes, b: _Planes, how: str, p: float, out: _Planes) -> None:
        w = self.width
        if how in ("wipe", "push"):
            x = int(round(p * w / 2)) * 2  # even: the chroma planes move with the luma
            for pa, pb, po, k in ((a.y, b.y, out.y, 1), (a.u, b.u, out.u, 2), (a.v, b.v, out.v, 2)):
                cw, cx = w // k, x // k
                if how == "wipe":
                    po[:, :cx] = pb[:, :cx]
                    po[:, cx:] = pa[:, cx:]
                else:
                    po[:, : cw - cx] = pa[:, cx:]
                    po[:, cw - cx:] = pb[:, :cx]
            return
        ya, yb = a.buf.astype(np.int32), b.buf.astype(np.int32)
        if how == "black":  # out 40 %, black 20 %, in 40 %: luma to 16, chroma to 128 (limited-range black)
            black = np.full_like(ya, 128)
            black[: w * self.height] = 16
            if p < 0.4:
                ya, yb, q = ya, black, p / 0.4
            elif p < 0.6:
                ya, yb, q = black, black, 0.0
            else:
                ya, yb, q = black, yb, (p - 0.6) / 0.4
        else:
            q = p
        k = int(round(q * 1024))
        out.buf[:] = ((ya * (1024 - k) + yb * k + 512) >> 10).astype(np.uint8)

    def draw_overlays(self, i: int, frame: _Planes) -> None:
        key, fading = self._state[0], self._state[1]
        if fading is not None or not isinstance(key, Slide):
            return  # no cursor or spinner during a transition or over the film
        if key.index == 2:
            r = self.rects["spinner"]
            step = int(self.spin[i])

            def spinner() -> np.ndarray:
                img = Image.fromarray(self.background(r))
                d = ImageDraw.Draw(img)
                for q in range(8):
                    a = 2 * np.pi * q / 8
                    lvl = 40 if q == step else 190
                    px, py = r[2] / 2 + r[2] * 0.34 * np.cos(a), r[3] / 2 + r[3] * 0.34 * np.sin(a)
                    d.ellipse((px - 3, py - 3, px + 3, py + 3), fill=(lvl, lvl, lvl))
                return np.asarray(img)

            self.put(frame, "spinner", step, r, spinner, over_scene=True)
        cx, cy = (int(v) for v in self.cur[i])
        self.put_cursor(frame, cx, cy, max(0.6, self.g.sy))
