"""The `editor` screen: one editor theme, small text, and the distractors that look like events.

What makes it hard (and what it is for): switching between files that look alike changes only
thin text lines (at 1440p a glyph stroke is an eighth of an analysis pixel), while a toast sliding
in, a progress bar wrapping around or an embedded video playing change solid, compact areas. A
3-line scroll moves every text row; a PageDown brings a page of new text. A modal dialog dims the
page. Themes (`darkdark`): two dark themes whose backgrounds are a few gray levels apart.

Scenes are `EditorScene` tuples; the screen adds what moves by itself (typing, the caret, a small
scroll) to the scene key, and draws the toast, the progress bar and the video as overlays.
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from typing import Any, NamedTuple

import numpy as np
from PIL import Image, ImageDraw

from cht_lab.tools.samples.coding import _code_lines
from cht_lab.tools.samples.draw import CHAR_H, CHAR_W, Distractor, _Geo, _Planes, _rng, _Screen, _text

FILES = ("server.py", "client.py", "worker.py", "models.py", "routes.py")

# luma of bg: (30,30,30) -> 30.0 ... theme "b" is 3.6 levels brighter with shifted token colours
THEMES: dict[str, dict[str, tuple[int, int, int]]] = {
    "a": {"bg": (30, 30, 30), "side": (37, 37, 38), "bar": (45, 45, 46), "txt": (212, 212, 212),
          "kw": (197, 134, 192), "kw2": (86, 156, 214), "str": (206, 145, 120), "com": (106, 153, 85),
          "num": (181, 206, 168), "fn": (220, 220, 170), "gut": (110, 118, 129), "status": (0, 98, 163)},
    "b": {"bg": (34, 33, 36), "side": (40, 41, 44), "bar": (48, 49, 52), "txt": (204, 208, 214),
          "kw": (199, 146, 234), "kw2": (130, 170, 255), "str": (195, 232, 141), "com": (105, 125, 140),
          "num": (247, 140, 108), "fn": (130, 200, 220), "gut": (100, 110, 125), "status": (40, 44, 52)},
    "c": {"bg": (25, 26, 28), "side": (31, 33, 36), "bar": (40, 42, 45), "txt": (220, 215, 200),
          "kw": (249, 38, 114), "kw2": (102, 217, 239), "str": (230, 219, 116), "com": (117, 113, 94),
          "num": (174, 129, 255), "fn": (166, 226, 46), "gut": (120, 120, 110), "status": (60, 62, 66)},
}


class EditorScene(NamedTuple):
    file: int = 0
    page: int = 0  # lines scrolled by labeled PageDowns
    theme: str = "a"
    dialog: bool = False


class EditorScreen(_Screen):
    """An editor in one theme (or switching between dark themes). Scenes: EditorScene."""

    DESIGN = (2560, 1440)
    CODE = (368, 92, 1512, 1300)  # x, y, w, h of the code text area
    LINE_H = 18
    PREVIEW = (1896, 68, 664, 1340)
    VIDEO = (1928, 112, 600, 338)
    TOAST = (2104, 1248, 440, 132)
    PROGRESS = (2190, 1418, 320, 12)
    TYPING = 0.8  # the line typed on (file 2): this far down the code area

    @classmethod
    def layout(cls, width: int, height: int, video: bool = True, toast: bool = True) -> tuple[Distractor, ...]:
        g = _Geo(width, height, cls.DESIGN)
        out = [Distractor("progress", g.rect(*cls.PROGRESS), "status-bar progress bar, filling and wrapping round")]
        if video:
            out.append(Distractor("video", g.rect(*cls.VIDEO), "embedded video playing in the preview pane"))
        if toast:
            out.append(Distractor("toast", g.rect(*cls.TOAST), "notification toast sliding in and out"))
        return tuple(out)

    def __init__(self, *args: Any, video: bool = True, toasts: tuple[tuple[float, float], ...] = (),
                 small_scrolls: tuple[tuple[float, int], ...] = (), typing: tuple[float, float] | None = None,
                 **kw: Any):
        super().__init__(*args, **kw)
        fps, n = self.fps, self.n
        self.video = video
        self.rects = {d.name: d.rect for d in self.layout(self.width, self.height, video, bool(toasts))}
        # toast: slide-in offset in [0, 1] (1 = hidden) per frame, 8-frame animations
        off = np.ones(n)
        for t_in, t_out in toasts:
            a, b = int(round(t_in * fps)), int(round(t_out * fps))
            for k in range(8):
                if a + k < n:
                    off[a + k] = 1 - (k + 1) / 8
            off[min(n, a + 8): b] = 0.0
            for k in range(8):
                if b + k < n:
                    off[b + k] = (k + 1) / 8
        self.toast = self.freeze((off * 1000).round().astype(np.int32))
        # small scrolls: (time, lines), animated over 4 frames; the offset (in lines*4) adds to the scene's
        sc = np.zeros(n, np.int32)
        for t, lines in small_scrolls:
            a = int(round(t * fps))
            for k in range(4):
                if a + k < n:
                    sc[a + k:] += lines  # quarter lines per step: 4 steps make `lines` lines
        self.scroll_q = self.freeze(sc)
        rng = _rng(self.seed, 61)
        typed = np.zeros(n, np.int32)
        if typing is not None:
            t, end = typing
            c = 0
            while t < end:
                c += 1
                typed[int(round(t * fps)):] = c
                t += float(rng.uniform(0.08, 0.2))
        self.typed = self.freeze(typed)
        self.typed_text = "result = compute_totals(records, window=30)  # TODO check the edge cases"
        prog = np.zeros(n, np.int32)
        i, v = int(fps * 0.4), 0
        while i < n:
            prog[i:] = v
            v = 0 if v >= 100 else v + 4
            i += int(rng.integers(3, 7))
        self.progress = self.freeze(prog)
        self.caret = self.freeze(((np.arange(n) // max(1, fps // 2)) % 2).astype(np.int32))
        self.video_from = int(fps * 1.0)
        self.line_px = max(CHAR_H + 2, self.g.Y(self.LINE_H))  # text lines in real pixels
        self.typing_line = int(self.TYPING * self.g.Y(self.CODE[3]) / self.line_px)

    # ---- scene keys: the labeled scene plus what moves inside it
    def scene_key(self, scene: Hashable, i: int) -> tuple[Any, ...]:
        s = scene if isinstance(scene, EditorScene) else EditorScene()
        typed = int(self.typed[i]) if s.file == 2 and s.page == 0 else 0
        return (s, int(self.scroll_q[i]), typed, int(self.caret[i]))

    def render_scene(self, key: Hashable) -> np.ndarray:
        scene, scroll_q, typed, caret = key  # type: ignore[misc]
        g = self.g
        th = THEMES[scene.theme]
        img = Image.new("RGB", (self.width, self.height), th["bg"])
        d = ImageDraw.Draw(img)
        s1 = g.ts(1)
        d.rectangle(g.box(0, 0, 2560, 32), fill=th["bar"])
        _text(d, g.pt(1180, 10), f"{FILES[scene.file]} - project - Editor", (190, 190, 190), s1)
        d.rectangle(g.box(0, 32, 48, 1378), fill=th["side"])
        d.rectangle(g.box(48, 32, 320, 1378), fill=th["side"])
        _text(d, g.pt(64, 44), "EXPLORER", (180, 180, 180), s1)
        tree = ["v project", *[f"    {f}" for f in FILES], "  > tests", "  > docs", "    README.md", "    setup.cfg"]
        row = max(CHAR_H + 2, g.Y(20))  # rows in real pixels: the bitmap font does not scale down
        for j, name in enumerate(tree):
            y = g.Y(66) + j * row
            if name.strip() == FILES[scene.file]:
                d.rectangle((g.X(48), y - 3, g.X(368) - 1, y + row - 4), fill=th["bar"])
            _text(d, (g.X(60), y), name, (200, 200, 200), s1)
        d.rectangle(g.box(368, 32, 2192, 36), fill=th["bar"])
        for j, f in enumerate(FILES):
            x = 368 + j * 150
            if j == scene.file:
                d.rectangle(g.box(x, 32, 150, 36), fill=th["bg"])
                d.rectangle(g.box(x, 32, 150, 2), fill=(0, 122, 204))
            _text(d, g.pt(x + 14, 45), f, (240, 240, 240) if j == scene.file else (140, 140, 140), s1)
        _text(d, g.pt(380, 74), f"project > {FILES[scene.file]}", (140, 140, 140), s1)
        lines = _code_lines(_rng(self.seed, 700, scene.file), 260)
        x0, y0, h0 = g.X(self.CODE[0]), g.Y(self.CODE[1]), g.Y(self.CODE[3])
        lh = self.line_px
        cw = CHAR_W * s1
        first_px = scene.page * lh + scroll_q * lh // 4
        j0 = first_px // lh
        for j in range(j0, min(len(lines), j0 + h0 // lh + 2)):
            y = y0 + j * lh - first_px
            if y < y0 - lh // 2 or y > y0 + h0 - lh:
                continue
            _text(d, (x0 + 7 * cw - cw * len(str(j + 1)), y), str(j + 1), th["gut"], s1)
            toks = lines[j]
            if scene.file == 2 and j == self.typing_line and typed:
                toks = [("        ", "txt"), (self.typed_text[:typed], "txt")]
            x = x0 + 9 * cw
            for text, col in toks:
                _text(d, (x, y), text, th[col], s1)
                x += cw * len(text)
            if scene.file == 2 and j == self.typing_line and caret:
                d.rectangle((x + 1, y - 2, x + 2, y + CHAR_H + 1), fill=(220, 220, 220))
        # preview pane: a markdown-ish page with the embedded video on top
        d.rectangle(g.box(1888, 68, 8, 1340), fill=th["side"])
        rng = _rng(self.seed, 710, scene.file)
        _text(d, g.pt(1930, 480), f"Preview: {FILES[scene.file]}", (200, 200, 200), s1)
        for j in range(12):
            n = int(rng.integers(30, 90))
            _text(d, (g.X(1930), g.Y(520) + j * max(CHAR_H + 2, g.Y(22))), " ".join(["lorem"] * (n // 6))[:n],
                  (170, 170, 170), s1)
        d.rectangle(g.box(0, 1408, 2560, 32), fill=th["status"])
        _text(d, g.pt(12, 1418), "main*   Ln 61, Col 9   Spaces: 4   UTF-8   Python", (255, 255, 255), s1)
        _text(d, g.pt(2090, 1418), "Indexing", (255, 255, 255), s1)
        if scene.dialog:
            arr = np.asarray(img).astype(np.int32)
            img = Image.fromarray((arr * 9 // 20).astype(np.uint8))  # the page dims behind the modal
            d = ImageDraw.Draw(img)
            d.rectangle(g.box(960, 520, 640, 280), fill=(52, 52, 56), outline=(90, 90, 96))
            _text(d, g.pt(996, 556), "Save the changes before closing?", (230, 230, 230), g.ts(2))
            _text(d, g.pt(996, 604), "Your changes will be lost if you don't save them.", (170, 170, 170), s1)
            for j, (label, col) in enumerate((("Save", (14, 99, 156)), ("Don't Save", (70, 70, 74)),
                                               ("Cancel", (70, 70, 74)))):
                d.rectangle(g.box(1250 + j * 110 - 120, 730, 100, 40), fill=col)
                _text(d, g.pt(1250 + j * 110 - 108, 744), label, (240, 240, 240), s1)
        return np.asarray(img).copy()

    def draw_overlays(self, i: int, frame: _Planes) -> None:
        r = self.rects["progress"]
        val = int(self.progress[i])
        status = THEMES[self._state[0][0].theme]["status"]

        def progress() -> np.ndarray:
            img = Image.new("RGB", (r[2], r[3]), status)
            d = ImageDraw.Draw(img)
            d.rectangle((0, 2, r[2] - 1, r[3] - 3), fill=(0, 60, 110))
            if val:
                d.rectangle((0, 2, max(0, r[2] * val // 100 - 1), r[3] - 3), fill=(160, 220, 255))
            return np.asarray(img)

        self.put(frame, "progress", (val, status), r, progress)
        if self.video and i >= self.video_from:
            rv = self.rects["video"]
            j = i - i % 2  # 15 fps
            self.put(frame, "video", j, rv, lambda: self._video(j, rv[2], rv[3]))
        if "toast" in self.rects:
            off = int(self.toast[i])
            if off < 1000:
                rt = self.rects["toast"]
                self.put(frame, "toast", off, rt, lambda: self._toast(rt, off / 1000.0), over_scene=True)

    def _toast(self, rect: tuple[int, int, int, int], off: float) -> np.ndarray:
        bg = self.background(rect)
        img = Image.fromarray(bg)
        d = ImageDraw.Draw(img)
        w, h = rect[2], rect[3]
        x = int(round(off * w))
        d.rectangle((x, 0, x + w - 1, h - 1), fill=(37, 37, 38), outline=(70, 70, 72))
        d.rectangle((x, 0, x + 3, h - 1), fill=(0, 122, 204))
        s = self.g.ts(1)
        _text(d, (x + int(20 * self.g.sx), int(24 * self.g.sy)), "Extension update available", (230, 230, 230), s)
        _text(d, (x + int(20 * self.g.sx), int(56 * self.g.sy)), "Restart to apply 3 updates.", (170, 170, 170), s)
        d.rectangle((x + int(300 * self.g.sx), int(88 * self.g.sy), x + int(420 * self.g.sx), int(118 * self.g.sy)),
                    fill=(14, 99, 156))
        return np.asarray(img)

    def _video(self, i: int, w: int, h: int) -> np.ndarray:
        """A smooth, low-detail moving picture (panning hills, a bouncing ball, a time bar)."""
        t = (i - self.video_from) / self.fps
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        sky = np.stack([90 + 60 * yy / h, 140 + 40 * yy / h, 200 - 20 * yy / h], axis=-1)
        ground = h * (0.62 + 0.08 * np.sin((xx + 40 * t * self.g.sx) / (w / 5)))
        img = np.where((yy > ground)[..., None], np.array([60, 120, 60], np.float32), sky)
        bx = w * (0.5 + 0.35 * math.sin(1.3 * t)), h * (0.35 + 0.2 * abs(math.sin(2.1 * t)))
        ball = (xx - bx[0]) ** 2 + (yy - bx[1]) ** 2 < (h * 0.08) ** 2
        img[ball] = (230, 80, 60)
        img[int(h * 0.94):, : int(w * min(1.0, t / 30.0))] = (240, 240, 240)
        return img.clip(0, 255).astype(np.uint8)
