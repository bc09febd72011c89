"""The `colour` screen: a status dashboard whose changes are colour only (equal luma).

A red alert page turning green, a tile changing hue, the whole palette rotating: in a gray
picture none of it shows (the colours are chosen with the same BT.601 luma, to the gray level),
so only an analysis with chroma sees these events. Distractors: a status dot blinking between
two colours of equal luma, a clock, a mouse cursor.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from cht_lab.tools.samples.draw import Distractor, _Geo, _Planes, _rng, _Screen, _text
from cht_lab.tools.samples.slides import _cursor_path


def luma(rgb: tuple[int, int, int]) -> int:
    """The Y a colour encodes to (BT.601 limited range, the samples' integer conversion)."""
    r, g, b = rgb
    return ((66 * r + 129 * g + 25 * b + 128) >> 8) + 16


def same_luma(rgb: tuple[int, int, int], like: tuple[int, int, int]) -> tuple[int, int, int]:
    """`rgb` with its green channel adjusted so that its luma equals `like`'s (to the gray level)."""
    target = luma(like)
    r, _, b = rgb
    best = min(range(256), key=lambda g: abs(luma((r, g, b)) - target))
    out = (r, best, b)
    if luma(out) != target:
        raise ValueError(f"no green level gives {rgb} the luma of {like}")
    return out


RED = (196, 56, 60)
GREEN = same_luma((40, 0, 48), RED)
BLUE = same_luma((40, 0, 210), RED)
ORANGE = same_luma((236, 0, 10), RED)
TEAL = same_luma((20, 0, 150), RED)
PURPLE = same_luma((180, 0, 200), RED)
# palettes: page background, tile colours; each palette's colours have the lumas of palette "p0"
PALETTES: dict[str, tuple[tuple[int, int, int], ...]] = {
    "p0": ((232, 232, 236), BLUE, ORANGE, TEAL, PURPLE),
    "p1": (same_luma((250, 0, 214), (232, 232, 236)), ORANGE, TEAL, PURPLE, BLUE),
}


class PaletteScreen(_Screen):
    """Scenes: (page, alert_colour, tile_colour, palette). A dashboard with an alert banner and tiles."""

    DESIGN = (1280, 720)
    DOT = (1210, 8, 16, 16)
    CLOCK = (1120, 6, 80, 20)
    CURSOR_AREA = (300, 300, 600, 300)

    @classmethod
    def layout(cls, width: int, height: int) -> tuple[Distractor, ...]:
        g = _Geo(width, height, cls.DESIGN)
        ax, ay, aw, ah = cls.CURSOR_AREA
        return (Distractor("dot", g.rect(*cls.DOT), "status dot blinking between two colours of equal luma"),
                Distractor("clock", g.rect(*cls.CLOCK), "clock, ticks every second"),
                Distractor("cursor", g.rect(ax, ay, aw + 14, ah + 22), "mouse cursor moving and resting"))

    def __init__(self, *args: Any, **kw: Any):
        super().__init__(*args, **kw)
        self.rects = {d.name: d.rect for d in self.layout(self.width, self.height)}
        self.blink = self.freeze(((np.arange(self.n) // (self.fps * 2 // 5)) % 2).astype(np.int32))
        rng = _rng(self.seed, 81)
        x, y = _cursor_path(rng, self.n, self.fps)
        ax, ay, aw, ah = self.rects["cursor"]
        self.cur = self.freeze(np.stack([(ax + x * (aw - 16)).astype(np.int32),
                                         (ay + y * (ah - 24)).astype(np.int32)], axis=1))
        self.seconds = self.freeze(np.arange(self.n) // self.fps)

    def render_scene(self, key: Hashable) -> np.ndarray:
        alert, tile, palette = key  # type: ignore[misc]
        g = self.g
        pal = PALETTES[palette]
        img = Image.new("RGB", (self.width, self.height), pal[0])
        d = ImageDraw.Draw(img)
        d.rectangle(g.box(0, 0, 1280, 32), fill=(40, 44, 52))
        _text(d, g.pt(16, 10), "Operations status", (230, 230, 230), g.ts(1))
        d.rectangle(g.box(24, 52, 1232, 180), fill=alert)
        _text(d, g.pt(56, 100), "SERVICE HEALTH", (255, 255, 255), g.ts(4))
        _text(d, g.pt(56, 170), "All regions report; last check 12 s ago", (255, 255, 255), g.ts(2))
        rng = _rng(self.seed, 90)
        for j in range(6):
            x, y = 24 + (j % 3) * 416, 256 + (j // 3) * 224
            col = tile if j == 4 else pal[1 + j % 4]
            d.rectangle(g.box(x, y, 400, 208), fill=col)
            _text(d, g.pt(x + 20, y + 20), f"Region {j + 1}", (255, 255, 255), g.ts(2))
            _text(d, g.pt(x + 20, y + 70), f"{int(rng.integers(90, 100))}.{int(rng.integers(0, 9))} %",
                  (255, 255, 255), g.ts(5))
            _text(d, g.pt(x + 20, y + 160), f"{int(rng.integers(100, 999))} req/s", (255, 255, 255), g.ts(2))
        return np.asarray(img).copy()

    def draw_overlays(self, i: int, frame: _Planes) -> None:
        r = self.rects["dot"]
        on = int(self.blink[i])
        self.put(frame, "dot", on, r, lambda: np.asarray(Image.new("RGB", (r[2], r[3]), RED if on else GREEN)))
        rc = self.rects["clock"]
        sec = int(self.seconds[i])

        def clock() -> np.ndarray:
            img = Image.new("RGB", (rc[2], rc[3]), (40, 44, 52))
            _text(ImageDraw.Draw(img), (4, 4), self.clock_text(sec * self.fps), (230, 230, 230), 1)
            return np.asarray(img)

        self.put(frame, "clock", sec, rc, clock)
        cx, cy = (int(v) for v in self.cur[i])
        self.put_cursor(frame, cx, cy, max(0.6, self.g.sy))
