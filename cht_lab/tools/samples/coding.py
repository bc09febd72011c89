"""The `coding` screen: a dark code editor switching between look-alike files."""

from __future__ import annotations

import math
from collections.abc import Hashable
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from cht_lab.tools.samples.draw import _ACCENTS, _WORDS, Distractor, _Geo, _Planes, _rng, _Screen, _sentence, _text

_CODE_FILES = ("scoring.py", "capture.py", "sources.py", "decision.py", "index.py", "layout.py", "replay.py",
               "tuning.py", "widget.py")
_C = {"bg": (30, 30, 30), "side": (37, 37, 38), "title": (50, 50, 52), "tabs": (45, 45, 45), "txt": (212, 212, 212),
      "kw": (197, 134, 192), "kw2": (86, 156, 214), "str": (206, 145, 120), "com": (106, 153, 85),
      "num": (181, 206, 168), "fn": (220, 220, 170), "gut": (110, 118, 129), "status": (0, 98, 163)}


def _code_lines(rng: np.random.Generator, n: int) -> list[list[tuple[str, str]]]:
    """Python-looking lines as (text, colour key) tokens; every file has the same look and layout."""
    def w() -> str:
        return _WORDS[int(rng.integers(len(_WORDS)))]

    lines: list[list[tuple[str, str]]] = [
        [("from", "kw"), (f" .{w()} ", "txt"), ("import", "kw"), (f" {w()}_{w()}", "txt")],
        [("import", "kw"), (f" {w()}", "txt")],
        [],
    ]
    indent = 0
    while len(lines) < n:
        r = rng.random()
        pad = "    " * indent
        if indent == 0 or r < 0.08:
            indent = 1
            lines += [[], [("def", "kw2"), (" ", "txt"), (f"{w()}_{w()}", "fn"), (f"({w()}, {w()}=", "txt"),
                           (f"{int(rng.integers(1, 99))}", "num"), ("):", "txt")]]
            lines.append([("    ", "txt"), (f'"""{_sentence(rng, 3, 7)}."""', "str")])
        elif r < 0.2:
            lines.append([(pad, "txt"), ("if", "kw"), (f" {w()} > ", "txt"), (f"{rng.uniform(0, 1):.2f}", "num"),
                          (":", "txt")])
            indent = min(indent + 1, 3)
        elif r < 0.3:
            lines.append([(pad, "txt"), (f"# {_sentence(rng, 3, 9, cap=False)}", "com")])
        elif r < 0.4 and indent > 1:
            lines.append([(pad, "txt"), ("return", "kw"), (f" {w()}", "txt")])
            indent -= 1
        elif r < 0.5:
            lines.append([(pad, "txt"), ("log.info(", "txt"), (f'"{_sentence(rng, 2, 5, cap=False)} %s"', "str"),
                          (f", {w()})", "txt")])
        else:
            lines.append([(pad, "txt"), (f"{w()}_{w()} = ", "txt"), (f"{w()}", "fn"),
                          (f"({w()}, {w()}[", "txt"), (f"{int(rng.integers(0, 9))}", "num"), ("])", "txt")])
    return lines[:n]


class CodingScreen(_Screen):
    """A dark code editor; scenes are files that look alike. Webcam, spinner and progress bar distract."""

    DESIGN = (1920, 1080)
    WEBCAM = (1580, 804, 320, 240)
    SPINNER = (1176, 1052, 26, 26)
    PROGRESS = (1320, 1058, 240, 14)
    EDITOR = (348, 94, 1572, 700)

    @classmethod
    def layout(cls, width: int, height: int) -> tuple[Distractor, ...]:
        g = _Geo(width, height, cls.DESIGN)
        return (
            Distractor("webcam", g.rect(*cls.WEBCAM), "presenter's webcam overlay, moving every frame"),
            Distractor("spinner", g.rect(*cls.SPINNER), "status-bar spinner"),
            Distractor("progress", g.rect(*cls.PROGRESS), "status-bar progress bar filling and restarting"),
        )

    def __init__(self, *args: Any, **kw: Any):
        super().__init__(*args, **kw)
        self.rects = {d.name: d.rect for d in self.layout(self.width, self.height)}
        self.spin = self.freeze(((np.arange(self.n) // 3) % 8).astype(np.int32))
        rng = _rng(self.seed, 31)
        prog = np.zeros(self.n, np.int32)
        i = int(self.fps * 0.5)
        value = 0
        while i < self.n:
            prog[i:] = value
            if value >= 100:
                i += int(self.fps * rng.uniform(1.0, 2.0))
                value = 0
            else:
                value += 1
                i += int(rng.integers(2, 6))
        self.progress = self.freeze(prog)
        wrng = _rng(self.seed, 32)
        self.cam_phase = wrng.uniform(0, 2 * np.pi, 6)
        self.cam_blinks = {int(b) for b in np.cumsum(wrng.integers(60, 160, 200)) if b < self.n}

    def render_scene(self, key: Hashable) -> np.ndarray:
        g = self.g
        cur = int(key)  # type: ignore[arg-type]
        img = Image.new("RGB", (self.width, self.height), _C["bg"])
        d = ImageDraw.Draw(img)
        d.rectangle(g.box(0, 0, 1920, 30), fill=_C["title"])
        _text(d, g.pt(860, 9), f"{_CODE_FILES[cur]} - cht_lab - Editor", (200, 200, 200), g.ts(1))
        d.rectangle(g.box(0, 30, 48, 1020), fill=(44, 44, 46))
        for j in range(5):
            d.rectangle(g.box(12, 50 + j * 56, 24, 24), outline=(140, 140, 140) if j else (230, 230, 230))
        d.rectangle(g.box(48, 30, 300, 1020), fill=_C["side"])
        _text(d, g.pt(64, 42), "EXPLORER", (190, 190, 190), g.ts(1))
        tree = ["v cht_lab", *[f"    {f}" for f in _CODE_FILES], "> tests", "> notebooks", "> data", "  README.md",
                "  pyproject.toml"]
        for j, name in enumerate(tree):
            y = 66 + j * 30
            if name.strip() == _CODE_FILES[cur]:
                d.rectangle(g.box(48, y - 4, 300, 28), fill=(55, 55, 61))
            _text(d, g.pt(60, y), name, (204, 204, 204), g.ts(2))
        d.rectangle(g.box(348, 30, 1572, 40), fill=_C["tabs"])
        for j, f in enumerate(_CODE_FILES):
            x = 348 + j * 170
            if j == cur:
                d.rectangle(g.box(x, 30, 170, 40), fill=_C["bg"])
                d.rectangle(g.box(x, 30, 170, 2), fill=(0, 122, 204))
            _text(d, g.pt(x + 14, 44), f, (255, 255, 255) if j == cur else (150, 150, 150), g.ts(1.5))
        _text(d, g.pt(360, 76), f"cht_lab > {_CODE_FILES[cur]} > ...", (150, 150, 150), g.ts(1))
        rng = _rng(self.seed, 400, cur)
        x0, y0, _, h0 = self.EDITOR
        lh = 26
        nlines = int(h0 // lh)
        s = g.ts(2)
        for j, toks in enumerate(_code_lines(rng, nlines)):
            y = y0 + 4 + j * lh
            num = str(j + 1)
            _text(d, g.pt(x0 + 56 - 12 * len(num), y), num, _C["gut"], s)
            x = x0 + 80
            for text, col in toks:
                _text(d, g.pt(x, y), text, _C[col], s)
                x += 12 * len(text)
                # minimap: one tiny bar per token
            mx = 1800
            for text, col in toks:
                if text.strip():
                    d.rectangle(g.box(mx, y0 + j * 4, max(1, len(text)), 2), fill=_C[col])
                mx += len(text)
        d.rectangle(g.box(348, 796, 1572, 254), fill=(24, 24, 26))
        d.rectangle(g.box(348, 796, 1572, 1), fill=(70, 70, 70))
        _text(d, g.pt(364, 806), "PROBLEMS   OUTPUT   TERMINAL", (180, 180, 180), g.ts(1))
        term = ["$ pytest -q tests/test_scoring.py", "..........................  [100%]", "26 passed in 3.41s",
                "$ cht-lab score data/samples/20260301_110000", "scored 1350 frames, 8 captures", "$ "]
        for j, line in enumerate(term):
            _text(d, g.pt(364, 830 + j * 26), line, (204, 204, 204), g.ts(2))
        d.rectangle(g.box(0, 1050, 1920, 30), fill=_C["status"])
        _text(d, g.pt(12, 1058), "main*   0 errors  0 warnings", (255, 255, 255), g.ts(1))
        _text(d, g.pt(1210, 1058), "Indexing", (255, 255, 255), g.ts(1))
        _text(d, g.pt(1600, 1058), "Ln 1, Col 1   Spaces: 4   UTF-8   Python", (255, 255, 255), g.ts(1))
        return np.asarray(img).copy()

    def draw_overlays(self, i: int, frame: _Planes) -> None:
        r = self.rects["spinner"]
        step = int(self.spin[i])

        def spinner() -> np.ndarray:
            img = Image.new("RGB", (r[2], r[3]), _C["status"])
            d = ImageDraw.Draw(img)
            cx, cy, rad = r[2] / 2, r[3] / 2, min(r[2], r[3]) * 0.36
            dot = max(1.5, rad * 0.28)
            for j in range(8):
                a = 2 * np.pi * j / 8
                lvl = 255 if j == step else (200 if (j - step) % 8 == 7 else 120)
                px, py = cx + rad * np.cos(a), cy + rad * np.sin(a)
                d.ellipse((px - dot, py - dot, px + dot, py + dot), fill=(lvl, lvl, lvl))
            return np.asarray(img)

        self.put(frame, "spinner", step, r, spinner)
        r2 = self.rects["progress"]
        val = int(self.progress[i])

        def progress() -> np.ndarray:
            img = Image.new("RGB", (r2[2], r2[3]), _C["status"])
            d = ImageDraw.Draw(img)
            d.rectangle((0, 2, r2[2] - 1, r2[3] - 3), fill=(0, 60, 110))
            if val:
                d.rectangle((0, 2, max(0, r2[2] * val // 100 - 1), r2[3] - 3), fill=(160, 220, 255))
            return np.asarray(img)

        self.put(frame, "progress", val, r2, progress)
        r3 = self.rects["webcam"]
        j = i - i % 2  # a 15 fps webcam: a new picture every other screen frame
        self.put(frame, "webcam", j, r3, lambda: self._webcam(j, r3[2], r3[3]))

    def _webcam(self, i: int, w: int, h: int) -> np.ndarray:
        t = i / self.fps
        p = self.cam_phase
        light = 1.0 + 0.03 * math.sin(2 * math.pi * 0.1 * t + p[0])  # slow auto-exposure drift
        img = Image.new("RGB", (w, h), tuple(int(v * light) for v in (96, 104, 118)))
        d = ImageDraw.Draw(img)
        d.rectangle((0, int(h * 0.15), int(w * 0.3), int(h * 0.75)), fill=tuple(int(v * light) for v in (120, 84, 60)))
        for j in range(5):
            d.rectangle((6 + j * 16, int(h * 0.2), 16 + j * 16, int(h * 0.36)),
                        fill=_ACCENTS[j % len(_ACCENTS)])
        hx = w * 0.55 + w * 0.05 * math.sin(2 * math.pi * 0.23 * t + p[1]) + w * 0.015 * math.sin(2 * math.pi * 1.1 * t)
        hy = h * 0.42 + h * 0.02 * math.sin(2 * math.pi * 0.31 * t + p[2])
        hr = h * 0.19
        d.ellipse((hx - hr * 2.0, hy + hr * 1.1, hx + hr * 2.0, hy + hr * 3.4), fill=(60, 90, 140))
        d.rectangle((hx - hr * 0.35, hy + hr * 0.7, hx + hr * 0.35, hy + hr * 1.3), fill=(214, 170, 140))
        d.ellipse((hx - hr * 0.85, hy - hr, hx + hr * 0.85, hy + hr), fill=(224, 180, 150))
        d.chord((hx - hr * 0.9, hy - hr * 1.1, hx + hr * 0.9, hy + hr * 0.5), 180, 360, fill=(60, 40, 30))
        blink = any(i - b in range(4) for b in self.cam_blinks)
        for ex in (-0.35, 0.35):
            ey = hy - hr * 0.05
            if blink:
                d.line((hx + ex * hr - 5, ey, hx + ex * hr + 5, ey), fill=(60, 40, 30), width=2)
            else:
                d.ellipse((hx + ex * hr - 5, ey - 4, hx + ex * hr + 5, ey + 4), fill=(40, 30, 30))
        mouth = max(1.0, 6 * abs(math.sin(2 * math.pi * 2.3 * t + p[3]) * math.sin(2 * math.pi * 0.4 * t + p[4])))
        d.ellipse((hx - 10, hy + hr * 0.45 - mouth / 2, hx + 10, hy + hr * 0.45 + mouth / 2), fill=(120, 50, 50))
        d.rectangle((0, 0, w - 1, h - 1), outline=(200, 200, 200))
        return np.asarray(img)
