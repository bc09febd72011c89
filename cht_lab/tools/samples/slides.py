"""The `slides` screen: a presentation app whose scenes are slides."""

from __future__ import annotations

import math
from collections.abc import Hashable
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from cht_lab.tools.samples.draw import (
    _ACCENTS, _INK, _NAMES, _WORDS, CHAR_H, CHAR_W, Distractor, _Geo, _Planes, _rng,
    _Screen, _sentence, _text, _title, _wrap,
)

_PRIMARY = (31, 78, 145)
_SLIDE_TYPES = ("bullets", "chart", "image", "table", "quote", "section", "diagram")


def _cursor_path(rng: np.random.Generator, n: int, fps: int) -> tuple[np.ndarray, np.ndarray]:
    """A mouse path in [0,1]^2 that alternates between resting and smooth moves."""
    speed = np.zeros(n)
    i = int(rng.integers(0, fps))
    while i < n:
        move = int(rng.uniform(1.0, 3.5) * fps)
        speed[i: i + move] = 1.0
        i += move + int(rng.uniform(0.8, 3.0) * fps)
    kernel = np.ones(7) / 7
    speed = np.convolve(speed, kernel, mode="same")
    u = np.cumsum(speed) / fps
    f = rng.uniform(0.08, 0.35, 4)
    p = rng.uniform(0, 2 * np.pi, 4)
    x = 0.5 + 0.3 * np.sin(2 * np.pi * f[0] * u + p[0]) + 0.18 * np.sin(2 * np.pi * f[1] * u + p[1])
    y = 0.5 + 0.3 * np.sin(2 * np.pi * f[2] * u + p[2]) + 0.18 * np.sin(2 * np.pi * f[3] * u + p[3])
    return np.clip(x, 0, 1), np.clip(y, 0, 1)


class SlidesScreen(_Screen):
    """A presentation app with notes, chat and a menu-bar clock; scenes are slide numbers."""

    DESIGN = (1280, 720)
    MENU = (0, 0, 1280, 28)
    CLOCK = (1176, 3, 98, 22)
    SLIDE = (8, 36, 1000, 562)
    NOTES = (8, 606, 1000, 106)
    TYPING = (16, 624, 984, 82)
    CHAT = (1016, 36, 256, 290)
    SCROLL = (1020, 66, 248, 256)
    PEOPLE = (1016, 334, 256, 264)
    REC = (1016, 606, 256, 106)
    CURSOR_AREA = (560, 330, 420, 236)
    CURSOR_SIZE = (14, 22)

    @classmethod
    def layout(cls, width: int, height: int) -> tuple[Distractor, ...]:
        g = _Geo(width, height, cls.DESIGN)
        ax, ay, aw, ah = cls.CURSOR_AREA
        cw, ch = cls.CURSOR_SIZE
        return (
            Distractor("clock", g.rect(*cls.CLOCK), "menu-bar clock HH:MM:SS, changes every second"),
            Distractor("typing", g.rect(*cls.TYPING), "notes typed character by character, cleared when full"),
            Distractor("chat_scroll", g.rect(*cls.SCROLL), "chat panel scrolling up as messages arrive"),
            Distractor("cursor", g.rect(ax, ay, aw + cw, ah + ch), "mouse cursor moving and resting"),
        )

    def __init__(self, *args: Any, deck: str = "Quarterly review", **kw: Any):
        super().__init__(*args, **kw)
        self.deck = deck
        self.rects = {d.name: d.rect for d in self.layout(self.width, self.height)}
        self._types: list[str] = ["title"]
        self._plan_typing()
        self._plan_cursor()
        self._plan_chat()

    # ---- plans
    def _plan_typing(self) -> None:
        g, fps = self.g, self.fps
        _, _, w, h = self.rects["typing"]
        self.type_scale = g.ts(2)
        self.type_lh = CHAR_H * self.type_scale + max(1, self.type_scale * 2)
        self.type_cpl = max(8, w // (CHAR_W * self.type_scale))
        self.type_lines = max(1, h // self.type_lh)
        rng = _rng(self.seed, 11)
        pages: list[list[str]] = [[]]
        page_of = np.zeros(self.n, np.int32)
        chars = np.zeros(self.n, np.int32)
        t = rng.uniform(0.6, 2.0)
        typed = 0
        text = ""
        marks: list[tuple[int, int, int]] = []  # (frame, page, chars shown)
        while t < self.n / fps:
            sentence = _sentence(rng) + "."
            cand = (text + " " + sentence) if text else sentence
            if len(_wrap(cand, self.type_cpl)) > self.type_lines:
                t += rng.uniform(0.5, 1.2)
                pages.append([])
                marks.append((int(math.ceil(t * fps)), len(pages) - 1, 0))
                text, typed = "", 0
                cand = sentence
            pages[-1] = _wrap(cand, self.type_cpl)
            total = sum(len(line) for line in pages[-1])
            while typed < total:
                typed += 1
                t += rng.uniform(0.05, 0.17) + (0.12 if rng.random() < 0.1 else 0.0)
                marks.append((int(math.ceil(t * fps)), len(pages) - 1, typed))
            text = cand
            t += rng.uniform(0.8, 3.0)
        for f, p, c in marks:
            if f < self.n:
                page_of[f:] = p
                chars[f:] = c
        self.type_pages = pages
        self.type_page = self.freeze(page_of)
        self.type_chars = self.freeze(chars)

    def _plan_cursor(self) -> None:
        g = self.g
        ax, ay, aw, ah = self.CURSOR_AREA
        ux, uy = _cursor_path(_rng(self.seed, 12), self.n, self.fps)
        self.cur_x = self.freeze(np.array([g.X(ax + aw * v) for v in ux], np.int32))
        self.cur_y = self.freeze(np.array([g.Y(ay + ah * v) for v in uy], np.int32))

    def _plan_chat(self) -> None:
        _, _, w, h = self.rects["chat_scroll"]
        rng = _rng(self.seed, 13)
        s = self.g.ts(1)
        lh = (CHAR_H + 3) * s
        cpl = max(8, (w - 8 * s) // (CHAR_W * s))
        msgs: list[tuple[str, list[str]]] = []
        heights: list[int] = []
        n_msgs = 10 + int(self.n / self.fps / 3) + 2
        for _ in range(n_msgs):
            lines = _wrap(_sentence(rng, 3, 14), cpl)
            msgs.append((_NAMES[int(rng.integers(len(_NAMES)))], lines))
            heights.append((1 + len(lines)) * lh + 6 * s)
        bottoms = np.cumsum(heights)
        tall = Image.new("RGB", (w, int(bottoms[-1]) + h), (250, 250, 252))
        d = ImageDraw.Draw(tall)
        top = 0
        for (who, lines), hh in zip(msgs, heights):
            _text(d, (4 * s, top + 2 * s), who, _ACCENTS[_NAMES.index(who) % len(_ACCENTS)], s)
            for j, line in enumerate(lines):
                _text(d, (4 * s, top + 2 * s + (j + 1) * lh), line, _INK, s)
            d.line([(4 * s, top + hh - 3 * s), (w - 4 * s, top + hh - 3 * s)], fill=(225, 225, 230))
            top += hh
        self.chat_img = np.asarray(tall)
        shown = int(np.searchsorted(bottoms, h)) + 1  # messages visible at the start
        offset = np.full(self.n, max(0, int(bottoms[shown - 1]) - h), np.int32)
        t = rng.uniform(2.0, 4.0)
        steps = 8
        while t < self.n / self.fps and shown < len(msgs):
            f0 = int(t * self.fps)
            a, b = max(0, int(bottoms[shown - 1]) - h), max(0, int(bottoms[shown]) - h)
            for k in range(steps):
                if f0 + k < self.n:
                    offset[f0 + k:] = a + (b - a) * (k + 1) // steps
            shown += 1
            t += rng.uniform(3.5, 7.5)
        self.chat_offset = self.freeze(offset)

    # ---- scenes
    def slide_type(self, idx: int) -> str:
        """Layouts come in shuffled rounds of all kinds (varied decks, never the same layout twice in a row)."""
        while len(self._types) <= idx:
            order = [_SLIDE_TYPES[k] for k in _rng(self.seed, 100, len(self._types)).permutation(len(_SLIDE_TYPES))]
            if order[0] == self._types[-1]:
                order.append(order.pop(0))
            self._types.extend(order)
        return self._types[idx]

    def render_scene(self, key: Hashable) -> np.ndarray:
        g = self.g
        img = Image.new("RGB", (self.width, self.height), (44, 46, 52))
        d = ImageDraw.Draw(img)
        d.rectangle(g.box(*self.MENU), fill=(28, 28, 32))
        _text(d, g.pt(10, 8), f"Slides   File  Edit  View  Insert  Present      {self.deck}.deck",
              (210, 210, 215), g.ts(1))
        d.rectangle(g.box(*self.NOTES), fill=(242, 242, 238))
        _text(d, g.pt(16, 611), "Notes", (120, 120, 120), g.ts(1))
        d.rectangle(g.box(*self.CHAT), fill=(250, 250, 252))
        _text(d, g.pt(1026, 42), "Chat", _INK, g.ts(2))
        d.rectangle(g.box(*self.PEOPLE), fill=(236, 238, 242))
        _text(d, g.pt(1026, 344), "Participants", _INK, g.ts(2))
        for j, name in enumerate(_NAMES[:7]):
            cx, cy = 1034, 388 + j * 28
            d.ellipse(g.box(cx - 7, cy - 7, 14, 14), fill=_ACCENTS[j % len(_ACCENTS)])
            _text(d, g.pt(cx + 16, cy - 7), name, _INK, g.ts(1))
        d.rectangle(g.box(*self.REC), fill=(30, 30, 34))
        d.ellipse(g.box(1030, 622, 14, 14), fill=(220, 40, 40))
        _text(d, g.pt(1052, 624), "REC", (230, 230, 230), g.ts(1))
        _text(d, g.pt(1030, 650), "sharing: entire screen", (170, 170, 175), g.ts(1))
        self._draw_slide(img, int(key))  # type: ignore[arg-type]
        return np.asarray(img).copy()

    def _draw_slide(self, img: Image.Image, idx: int) -> None:
        g = self.g
        sx, sy, sw, sh = self.SLIDE
        d = ImageDraw.Draw(img)
        rng = _rng(self.seed, 200, idx)
        kind = self.slide_type(idx)

        def B(x: float, y: float, w: float, h: float) -> tuple[int, int, int, int]:
            return g.box(sx + x, sy + y, w, h)

        def P(x: float, y: float) -> tuple[int, int]:
            return g.pt(sx + x, sy + y)

        def T(x: float, y: float, text: str, color: tuple[int, ...], k: float) -> None:
            _text(d, P(x, y), text, color, g.ts(k))

        def band(title: str) -> None:
            d.rectangle(B(0, 0, sw, 84), fill=_PRIMARY)
            T(28, 26, title, (255, 255, 255), 3)

        bg = {"title": _PRIMARY, "section": (36, 41, 51), "quote": (253, 246, 227)}.get(kind, (255, 255, 255))
        d.rectangle(B(0, 0, sw, sh), fill=bg)
        title = _title(rng)
        if kind == "title":
            T(60, 180, self.deck, (255, 255, 255), 5)
            T(64, 270, _sentence(rng, 4, 7), (200, 215, 235), 2)
            T(64, 310, "March 2026", (200, 215, 235), 2)
            d.rectangle(B(60, 360, 300, 8), fill=_ACCENTS[0])
        elif kind == "section":
            acc = _ACCENTS[int(rng.integers(len(_ACCENTS)))]
            T(60, 120, f"{idx:02d}", acc, 10)
            d.rectangle(B(60, 250, 420, 6), fill=acc)
            T(60, 280, title, (255, 255, 255), 4)
        elif kind == "quote":
            acc = _ACCENTS[int(rng.integers(len(_ACCENTS)))]
            T(50, 40, '"', acc, 12)
            for j, line in enumerate(_wrap(_sentence(rng, 12, 18), 38)):
                T(120, 150 + j * 46, line, _INK, 3)
            T(560, 420, "- " + _NAMES[int(rng.integers(len(_NAMES)))], (90, 90, 90), 2)
        elif kind == "bullets":
            band(title)
            yy = 118
            for _ in range(int(rng.integers(4, 7))):
                lines = _wrap(_sentence(rng, 5, 14), 72)
                d.rectangle(B(40, yy + 6, 10, 10), fill=_ACCENTS[int(rng.integers(len(_ACCENTS)))])
                for j, line in enumerate(lines):
                    T(64, yy + j * 28, line, _INK, 2)
                yy += 28 * len(lines) + 22
                if yy > sh - 80:
                    break
        elif kind == "chart":
            band(title)
            x0, y0, x1, y1 = 90, 120, sw - 200, sh - 70
            d.line([P(x0, y0), P(x0, y1), P(x1, y1)], fill=_INK, width=g.ts(2))
            nb = int(rng.integers(5, 9))
            bw = (x1 - x0 - 30) / nb
            for j in range(nb):
                hh = (y1 - y0 - 30) * rng.uniform(0.2, 0.95)
                col = _ACCENTS[j % len(_ACCENTS)]
                d.rectangle(B(x0 + 20 + j * bw, y1 - hh, bw * 0.7, hh), fill=col)
                T(x0 + 20 + j * bw, y1 - hh - 16, f"{int(hh):d}", _INK, 1)
                T(x0 + 20 + j * bw, y1 + 8, f"Q{j % 4 + 1}", (90, 90, 90), 1)
            for j in range(4):
                d.rectangle(B(sw - 170, 140 + j * 34, 16, 16), fill=_ACCENTS[j])
                T(sw - 146, 142 + j * 34, _WORDS[int(rng.integers(len(_WORDS)))], _INK, 1)
        elif kind == "image":
            band(title)
            px, py, pw, ph = 40, 110, 440, 380
            top, bot = np.array(_ACCENTS[int(rng.integers(6))]), np.array((235, 240, 250))
            steps = 24
            for j in range(steps):
                col = tuple(int(v) for v in top + (bot - top) * j / (steps - 1))
                d.rectangle(B(px, py + ph * 0.6 * j / steps, pw, ph * 0.6 / steps + 1), fill=col)
            d.ellipse(B(px + pw * rng.uniform(0.1, 0.7), py + 30, 70, 70), fill=(250, 220, 90))
            ground = (60, 120, 70)
            d.rectangle(B(px, py + ph * 0.6, pw, ph * 0.4), fill=ground)
            for _ in range(3):
                cx, ww, hh = px + pw * rng.uniform(0.1, 0.9), rng.uniform(120, 220), rng.uniform(80, 170)
                d.polygon([P(max(px, cx - ww / 2), py + ph * 0.6), P(cx, py + ph * 0.6 - hh),
                           P(min(px + pw, cx + ww / 2), py + ph * 0.6)], fill=(90, 100, 120))
            yy = 130
            for _ in range(4):
                lines = _wrap(_sentence(rng, 4, 9), 36)
                for j, line in enumerate(lines):
                    T(530, yy + j * 28, line, _INK, 2)
                yy += 28 * len(lines) + 40
        elif kind == "table":
            band(title)
            cols, rows = 5, 7
            x0, y0, cw, rh = 40, 120, (sw - 80) / cols, 52
            for r in range(rows):
                fill = _PRIMARY if r == 0 else ((245, 247, 250) if r % 2 else (255, 255, 255))
                d.rectangle(B(x0, y0 + r * rh, cw * cols, rh), fill=fill)
                for c in range(cols):
                    if r == 0:
                        txt, col = _WORDS[int(rng.integers(len(_WORDS)))].capitalize(), (255, 255, 255)
                    elif c == 0:
                        txt, col = _WORDS[int(rng.integers(len(_WORDS)))], _INK
                    else:
                        txt, col = f"{rng.uniform(0, 999):.1f}", _INK
                    T(x0 + c * cw + 14, y0 + r * rh + 16, txt, col, 2)
            for c in range(cols + 1):
                d.line([P(x0 + c * cw, y0), P(x0 + c * cw, y0 + rows * rh)], fill=(200, 205, 215))
        elif kind == "diagram":
            band(title)
            nbx = 4
            bw, gap = 180, (sw - 80 - 4 * 180) / 3
            for j in range(nbx):
                bx = 40 + j * (bw + gap)
                col = _ACCENTS[(j + idx) % len(_ACCENTS)]
                d.rectangle(B(bx, 200, bw, 120), fill=col)
                T(bx + 16, 248, _WORDS[int(rng.integers(len(_WORDS)))].capitalize(), (255, 255, 255), 2)
                if j < nbx - 1:
                    d.line([P(bx + bw + 6, 260), P(bx + bw + gap - 10, 260)], fill=_INK, width=g.ts(3))
                    d.polygon([P(bx + bw + gap - 6, 260), P(bx + bw + gap - 20, 250), P(bx + bw + gap - 20, 270)],
                              fill=_INK)
            for j, line in enumerate(_wrap(_sentence(rng, 10, 16), 70)):
                T(40, 380 + j * 30, line, (70, 70, 80), 2)
        d.line([P(20, sh - 30), P(sw - 20, sh - 30)], fill=(200, 200, 205) if bg == (255, 255, 255) else bg)
        T(24, sh - 22, self.deck, (150, 150, 155), 1)
        T(sw - 80, sh - 22, f"{idx + 1}", (150, 150, 155), 1)

    # ---- overlays
    def draw_overlays(self, i: int, frame: _Planes) -> None:
        g = self.g
        r = self.rects["clock"]
        text = self.clock_text(i)

        def clock() -> np.ndarray:
            img = Image.new("RGB", (r[2], r[3]), (28, 28, 32))
            s = g.ts(2)
            _text(ImageDraw.Draw(img), (max(0, r[2] - CHAR_W * s * len(text)) // 2, max(0, (r[3] - CHAR_H * s) // 2)),
                  text, (235, 235, 240), s)
            return np.asarray(img)

        self.put(frame, "clock", text, r, clock)

        r2 = self.rects["typing"]
        page, nchars = int(self.type_page[i]), int(self.type_chars[i])

        def typing() -> np.ndarray:
            img = Image.new("RGB", (r2[2], r2[3]), (242, 242, 238))
            d = ImageDraw.Draw(img)
            left = nchars
            for j, line in enumerate(self.type_pages[page]):
                if left <= 0:
                    break
                _text(d, (0, j * self.type_lh + 2), line[:left], (30, 30, 30), self.type_scale)
                left -= len(line)
            return np.asarray(img)

        self.put(frame, "typing", (page, nchars), r2, typing)

        r3 = self.rects["chat_scroll"]
        off = int(self.chat_offset[i])
        self.put(frame, "chat", off, r3, lambda: self.chat_img[off: off + r3[3], : r3[2]])

        self.put_cursor(frame, int(self.cur_x[i]), int(self.cur_y[i]), min(g.sx, g.sy))
