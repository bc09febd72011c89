"""The `desktop` screen: maximised app windows, a pop-up dialog, a picture-in-picture video."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from cht_lab.tools.samples.draw import (
    _ACCENTS, _NAMES, _WORDS, CHAR_H, CHAR_W, Distractor, _Geo, _Planes, _rng, _Screen, _sentence, _text, _title, _wrap,
)

_APPS = {
    "browser": ("Browser", (66, 133, 244)), "files": ("Files", (240, 180, 40)), "sheet": ("Sheets", (33, 115, 70)),
    "mail": ("Mail", (0, 120, 212)), "terminal": ("Terminal", (60, 60, 60)), "photos": ("Photos", (200, 60, 120)),
    "calendar": ("Calendar", (0, 150, 136)), "news": ("Browser", (66, 133, 244)),
}


class DesktopScreen(_Screen):
    """A desktop with maximised windows, a taskbar, a pop-up dialog and a picture-in-picture video."""

    DESIGN = (1920, 1080)
    TASKBAR = (0, 1036, 1920, 44)
    PIP = (1480, 790, 420, 236)
    DIALOG = (480, 270, 960, 540)

    @classmethod
    def layout(cls, width: int, height: int) -> tuple[Distractor, ...]:
        g = _Geo(width, height, cls.DESIGN)
        return (Distractor("video", g.rect(*cls.PIP), "picture-in-picture video: panning landscape, bouncing ball, "
                                                      "player time"),)

    def __init__(self, *args: Any, **kw: Any):
        super().__init__(*args, **kw)
        self.rects = {d.name: d.rect for d in self.layout(self.width, self.height)}
        self._plan_video()

    def _plan_video(self) -> None:
        _, _, w, h = self.rects["video"]
        rng = _rng(self.seed, 21)
        tw = w * 3
        xs = np.arange(tw)[None, :] / tw
        ys = np.arange(h)[:, None] / h
        sky = np.stack([90 + 80 * ys, 150 + 60 * ys, 230 - 20 * ys], -1) * np.ones((1, tw, 1))
        p = rng.uniform(0, 2 * np.pi, 4)
        hill = 0.62 + 0.08 * np.sin(2 * np.pi * 2 * xs + p[0]) + 0.05 * np.sin(2 * np.pi * 5 * xs + p[1])
        far = 0.5 + 0.07 * np.sin(2 * np.pi * 3 * xs + p[2]) + 0.04 * np.sin(2 * np.pi * 7 * xs + p[3])
        img = sky
        img = np.where((ys > far)[..., None], np.array([110, 125, 150]) * (0.9 + 0.2 * ys[..., None]), img)
        img = np.where((ys > hill)[..., None], np.array([60, 130, 60]) * (1.2 - 0.4 * ys[..., None]), img)
        for _ in range(5):  # soft clouds, periodic in x
            cx, cy, r = rng.uniform(0, 1), rng.uniform(0.08, 0.3), rng.uniform(0.03, 0.06)
            dx = np.minimum(np.abs(xs - cx), 1 - np.abs(xs - cx)) * tw / h
            m = np.exp(-((dx / (r * 3)) ** 2 + ((ys - cy) / r) ** 2))
            img = img * (1 - m[..., None]) + 250 * m[..., None]
        self.video_tex = np.clip(img, 0, 255).astype(np.uint8)

    def draw_overlays(self, i: int, frame: _Planes) -> None:
        r = self.rects["video"]
        w, h = r[2], r[3]
        tex = self.video_tex
        tw = tex.shape[1]

        j = i - i % 2  # the video plays at 15 fps: a new picture every other screen frame

        def video() -> np.ndarray:
            off = (j * 2) % tw
            view = np.concatenate([tex, tex[:, :w]], axis=1)[:, off: off + w].copy()
            img = Image.fromarray(view)
            d = ImageDraw.Draw(img)
            t = j / self.fps
            bx = abs(((t * 90) % (2 * (w - 40))) - (w - 40))
            by = abs(((t * 70) % (2 * (h * 0.6))) - h * 0.6)
            d.ellipse((int(bx), int(by), int(bx) + 36, int(by) + 36), fill=(235, 70, 60))
            bar_y = h - max(8, h // 14)
            d.rectangle((0, bar_y, w, h), fill=(20, 20, 20))
            d.rectangle((0, bar_y + 2, int(w * ((t + 12) / 225)), bar_y + 4), fill=(230, 40, 40))
            secs = int(t) + 12
            _text(d, (w - 10 * CHAR_W - 4, bar_y - CHAR_H - 4), f"{secs // 60}:{secs % 60:02d} / 3:45",
                  (255, 255, 255), 1)
            return np.asarray(img)

        self.put(frame, "video", j, r, video)

    # ---- scenes
    def render_scene(self, key: Hashable) -> np.ndarray:
        name = str(key)
        app = name.split("+")[0]
        img = Image.new("RGB", (self.width, self.height), (40, 60, 90))
        d = ImageDraw.Draw(img)
        rng = _rng(self.seed, 300, sum(map(ord, name)))
        getattr(self, f"_app_{app}")(img, d, rng)
        self._taskbar(d, app)
        if "+dialog" in name:
            self._dialog(d)
        return np.asarray(img).copy()

    def _chrome(self, d: ImageDraw.ImageDraw, title: str, color: tuple[int, int, int],
                text: tuple[int, int, int] = (255, 255, 255)) -> None:
        g = self.g
        d.rectangle(g.box(0, 0, 1920, 36), fill=color)
        _text(d, g.pt(16, 7), title, text, g.ts(2))
        for j, c in enumerate(((200, 200, 200), (200, 200, 200), (232, 17, 35))):
            d.rectangle(g.box(1920 - 46 * (3 - j), 0, 46, 36), fill=tuple(max(0, v - 25) for v in color))
            d.rectangle(g.box(1920 - 46 * (3 - j) + 17, 14, 12, 8), outline=c)

    def _taskbar(self, d: ImageDraw.ImageDraw, active: str) -> None:
        g = self.g
        d.rectangle(g.box(*self.TASKBAR), fill=(32, 32, 36))
        d.rectangle(g.box(10, 1042, 32, 32), fill=(0, 120, 212))
        order = ["browser", "files", "sheet", "mail", "terminal", "photos", "calendar"]
        active = "browser" if active == "news" else active
        for j, a in enumerate(order):
            label, col = _APPS[a]
            x = 64 + j * 56
            d.rectangle(g.box(x, 1042, 36, 32), fill=col)
            _text(d, g.pt(x + 12, 1047), label[0], (255, 255, 255), g.ts(2))
            if a == active:
                d.rectangle(g.box(x + 4, 1076, 28, 3), fill=(120, 190, 255))
        _text(d, g.pt(1800, 1046), self.start.strftime("%H:%M"), (235, 235, 235), g.ts(2))
        _text(d, g.pt(1794, 1066), self.start.strftime("%d/%m/%Y"), (180, 180, 180), g.ts(1))

    def _paragraphs(self, d: ImageDraw.ImageDraw, rng: np.random.Generator, x: float, y: float, cpl: int,
                    lines: int, color: tuple[int, int, int], k: float = 2, lh: float = 30) -> float:
        g = self.g
        n = 0
        while n < lines:
            for line in _wrap(" ".join(_sentence(rng, 6, 14) + "." for _ in range(3)), cpl):
                if n >= lines:
                    break
                _text(d, g.pt(x, y + n * lh), line, color, g.ts(k))
                n += 1
            n += 1
        return y + n * lh

    def _app_browser(self, img: Image.Image, d: ImageDraw.ImageDraw, rng: np.random.Generator,
                     site: str = "docs.example.org") -> None:
        g = self.g
        self._chrome(d, f"{_title(rng)} - {site}", (53, 54, 58))
        d.rectangle(g.box(0, 36, 1920, 44), fill=(241, 243, 244))
        d.rectangle(g.box(120, 42, 1200, 32), fill=(255, 255, 255))
        _text(d, g.pt(134, 48), f"https://{site}/{_WORDS[int(rng.integers(len(_WORDS)))]}/guide", (60, 60, 60),
              g.ts(2))
        d.rectangle(g.box(0, 80, 1920, 956), fill=(255, 255, 255))
        acc = _ACCENTS[int(rng.integers(len(_ACCENTS)))]
        d.rectangle(g.box(0, 80, 1920, 120), fill=acc)
        _text(d, g.pt(260, 116), site.split(".")[0].capitalize(), (255, 255, 255), g.ts(4))
        for j in range(5):
            _text(d, g.pt(900 + j * 160, 130), _WORDS[int(rng.integers(len(_WORDS)))].capitalize(),
                  (255, 255, 255), g.ts(2))
        _text(d, g.pt(260, 240), _title(rng), (20, 20, 20), g.ts(4))
        y = self._paragraphs(d, rng, 260, 320, 85, 6, (60, 60, 60))
        d.rectangle(g.box(260, y, 1000, 200), fill=tuple(int(v * 0.6 + 100) for v in acc))
        d.ellipse(g.box(320, y + 40, 120, 120), fill=(255, 255, 255))
        self._paragraphs(d, rng, 260, y + 230, 85, 4, (60, 60, 60))
        for j in range(3):
            d.rectangle(g.box(1360, 240 + j * 250, 320, 220), fill=(244, 246, 250))
            _text(d, g.pt(1380, 256 + j * 250), _title(rng), (30, 30, 30), g.ts(2))
            self._paragraphs(d, rng, 1380, 296 + j * 250, 24, 3, (90, 90, 90), 1, 18)

    def _app_news(self, img: Image.Image, d: ImageDraw.ImageDraw, rng: np.random.Generator) -> None:
        g = self.g
        self._chrome(d, "Daily news - news.example.com", (53, 54, 58))
        d.rectangle(g.box(0, 36, 1920, 44), fill=(241, 243, 244))
        d.rectangle(g.box(120, 42, 1200, 32), fill=(255, 255, 255))
        _text(d, g.pt(134, 48), "https://news.example.com/today", (60, 60, 60), g.ts(2))
        d.rectangle(g.box(0, 80, 1920, 956), fill=(250, 248, 242))
        _text(d, g.pt(700, 100), "THE DAILY EXAMPLE", (20, 20, 20), g.ts(5))
        d.rectangle(g.box(100, 170, 1720, 4), fill=(20, 20, 20))
        for c in range(3):
            x = 100 + c * 590
            d.rectangle(g.box(x, 200, 540, 280), fill=_ACCENTS[(c * 2 + 1) % len(_ACCENTS)])
            d.polygon([g.pt(x + 40, 460), g.pt(x + 200, 260), g.pt(x + 380, 460)], fill=(250, 248, 242))
            _text(d, g.pt(x, 500), _title(rng), (20, 20, 20), g.ts(3))
            self._paragraphs(d, rng, x, 550, 44, 9, (50, 50, 50))

    def _app_files(self, img: Image.Image, d: ImageDraw.ImageDraw, rng: np.random.Generator) -> None:
        g = self.g
        self._chrome(d, "Files - Documents", (236, 236, 236), (30, 30, 30))
        d.rectangle(g.box(0, 36, 1920, 56), fill=(246, 246, 246))
        for j, lab in enumerate(("Back", "Forward", "Up", "New folder", "Sort", "View")):
            _text(d, g.pt(20 + j * 150, 54), lab, (60, 60, 60), g.ts(2))
        d.rectangle(g.box(0, 92, 300, 944), fill=(240, 240, 242))
        for j, lab in enumerate(("Home", "Desktop", "Documents", "Downloads", "Music", "Pictures", "Videos",
                                 "Trash")):
            if lab == "Documents":
                d.rectangle(g.box(0, 110 + j * 40, 300, 36), fill=(210, 225, 245))
            _text(d, g.pt(40, 118 + j * 40), lab, (40, 40, 40), g.ts(2))
        d.rectangle(g.box(300, 92, 1620, 944), fill=(255, 255, 255))
        for j in range(28):
            x, y = 340 + (j % 7) * 220, 130 + (j // 7) * 210
            if rng.random() < 0.45:
                d.rectangle(g.box(x + 30, y, 50, 16), fill=(220, 170, 50))
                d.rectangle(g.box(x + 30, y + 12, 120, 84), fill=(240, 196, 80))
            else:
                d.rectangle(g.box(x + 50, y, 80, 100), fill=(250, 250, 250), outline=(180, 180, 180))
                d.rectangle(g.box(x + 50, y + 70, 80, 30), fill=_ACCENTS[int(rng.integers(len(_ACCENTS)))])
            _text(d, g.pt(x + 20, y + 120), f"{_WORDS[int(rng.integers(len(_WORDS)))]}_{j}"[:14], (40, 40, 40),
                  g.ts(2))

    def _app_sheet(self, img: Image.Image, d: ImageDraw.ImageDraw, rng: np.random.Generator) -> None:
        g = self.g
        self._chrome(d, "Budget 2026 - Sheets", (33, 115, 70))
        d.rectangle(g.box(0, 36, 1920, 70), fill=(243, 243, 243))
        for j, lab in enumerate(("File", "Home", "Insert", "Formulas", "Data", "Review", "View")):
            _text(d, g.pt(20 + j * 120, 46), lab, (50, 50, 50), g.ts(2))
        d.rectangle(g.box(0, 106, 1920, 30), fill=(255, 255, 255))
        _text(d, g.pt(20, 112), "fx  =SUM(B2:B24)", (60, 60, 60), g.ts(2))
        x0, y0, cw, rh = 50, 140, 140, 30
        d.rectangle(g.box(0, y0, 1920, rh), fill=(230, 230, 230))
        d.rectangle(g.box(0, y0, x0, 1036 - y0), fill=(230, 230, 230))
        for c in range(13):
            _text(d, g.pt(x0 + c * cw + 60, y0 + 8), chr(65 + c), (60, 60, 60), g.ts(1))
            d.line([g.pt(x0 + c * cw, y0), g.pt(x0 + c * cw, 1036)], fill=(218, 218, 218))
        for r in range(1, 30):
            y = y0 + r * rh
            d.line([g.pt(0, y), g.pt(1920, y)], fill=(218, 218, 218))
            _text(d, g.pt(12, y + 9), str(r), (60, 60, 60), g.ts(1))
            if r < 18:
                _text(d, g.pt(x0 + 8, y + 5), _WORDS[int(rng.integers(len(_WORDS)))], (30, 30, 30), g.ts(2))
                for c in range(1, 7):
                    _text(d, g.pt(x0 + c * cw + 10, y + 5), f"{rng.uniform(0, 99999):9.2f}", (30, 30, 30), g.ts(1.5))
        cx, cy, cw2, ch2 = 1100, 200, 760, 440
        d.rectangle(g.box(cx, cy, cw2, ch2), fill=(255, 255, 255), outline=(160, 160, 160))
        _text(d, g.pt(cx + 20, cy + 14), "Spend by month", (30, 30, 30), g.ts(2))
        pts = [g.pt(cx + 40 + j * 60, cy + ch2 - 40 - rng.uniform(20, 320)) for j in range(12)]
        d.line(pts, fill=(33, 115, 70), width=g.ts(3))
        for j in range(12):
            hh = rng.uniform(20, 200)
            d.rectangle(g.box(cx + 34 + j * 60, cy + ch2 - 40 - hh, 14, hh), fill=(120, 190, 140))

    def _app_mail(self, img: Image.Image, d: ImageDraw.ImageDraw, rng: np.random.Generator) -> None:
        g = self.g
        self._chrome(d, "Inbox - Mail", (0, 120, 212))
        d.rectangle(g.box(0, 36, 240, 1000), fill=(243, 242, 241))
        for j, lab in enumerate(("Inbox", "Drafts", "Sent", "Archive", "Spam", "Trash")):
            _text(d, g.pt(24, 70 + j * 44), lab, (40, 40, 40), g.ts(2))
        d.rectangle(g.box(240, 36, 560, 1000), fill=(255, 255, 255))
        for j in range(9):
            y = 40 + j * 82
            if j == 1:
                d.rectangle(g.box(240, y, 560, 80), fill=(205, 230, 247))
            _text(d, g.pt(262, y + 10), _NAMES[int(rng.integers(len(_NAMES)))] + " " + _title(rng).split()[0],
                  (20, 20, 20), g.ts(2))
            _text(d, g.pt(262, y + 38), _sentence(rng, 3, 6)[:40], (60, 60, 60), g.ts(1.5))
            _text(d, g.pt(262, y + 60), _sentence(rng, 5, 9)[:70], (130, 130, 130), g.ts(1))
            d.line([g.pt(250, y + 80), g.pt(790, y + 80)], fill=(230, 230, 230))
        d.rectangle(g.box(800, 36, 1120, 1000), fill=(255, 255, 255))
        _text(d, g.pt(840, 70), _title(rng), (20, 20, 20), g.ts(3))
        _text(d, g.pt(840, 120), f"From: {_NAMES[3]} <dara@example.com>   To: team", (90, 90, 90), g.ts(1.5))
        self._paragraphs(d, rng, 840, 180, 85, 15, (40, 40, 40))

    def _app_terminal(self, img: Image.Image, d: ImageDraw.ImageDraw, rng: np.random.Generator) -> None:
        g = self.g
        self._chrome(d, "Terminal - bash - 160x40", (48, 48, 48))
        d.rectangle(g.box(0, 36, 1920, 1000), fill=(24, 24, 24))
        y = 50
        while y < 640:
            _text(d, g.pt(12, y), "dev@box:~/project$ ", (80, 220, 100), g.ts(2))
            _text(d, g.pt(12 + 19 * 12, y), _sentence(rng, 2, 5, cap=False).replace(" ", " -", 1),
                  (235, 235, 235), g.ts(2))
            y += 26
            for _ in range(int(rng.integers(1, 6))):
                if y >= 1000:
                    break
                _text(d, g.pt(12, y), _sentence(rng, 4, 12, cap=False), (175, 175, 175), g.ts(2))
                y += 26

    def _app_photos(self, img: Image.Image, d: ImageDraw.ImageDraw, rng: np.random.Generator) -> None:
        g = self.g
        self._chrome(d, "Photos - Trip 2025", (32, 32, 32))
        d.rectangle(g.box(0, 36, 1920, 1000), fill=(18, 18, 18))
        for j in range(15):
            x, y = 60 + (j % 5) * 366, 80 + (j // 5) * 310
            sky = _ACCENTS[int(rng.integers(len(_ACCENTS)))]
            d.rectangle(g.box(x, y, 340, 240), fill=sky)
            d.ellipse(g.box(x + rng.uniform(20, 260), y + 20, 50, 50), fill=(250, 230, 120))
            d.polygon([g.pt(x, y + 240), g.pt(x + rng.uniform(60, 280), y + rng.uniform(60, 160)),
                       g.pt(x + 340, y + 240)], fill=(40, 70 + int(rng.integers(80)), 50))
            _text(d, g.pt(x, y + 252), f"IMG_{2000 + j}.jpg", (200, 200, 200), g.ts(1.5))

    def _app_calendar(self, img: Image.Image, d: ImageDraw.ImageDraw, rng: np.random.Generator) -> None:
        g = self.g
        self._chrome(d, "Calendar - March 2026", (0, 150, 136))
        d.rectangle(g.box(0, 36, 1920, 1000), fill=(255, 255, 255))
        x0, y0, cw, rh = 40, 120, 262, 180
        for c, day in enumerate(("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")):
            _text(d, g.pt(x0 + c * cw + 10, 84), day, (90, 90, 90), g.ts(2))
        for r in range(5):
            for c in range(7):
                x, y = x0 + c * cw, y0 + r * rh
                d.rectangle(g.box(x, y, cw, rh), outline=(220, 220, 220),
                            fill=(248, 248, 248) if c >= 5 else (255, 255, 255))
                day = r * 7 + c - 5
                if 1 <= day <= 31:
                    _text(d, g.pt(x + 8, y + 8), str(day), (40, 40, 40), g.ts(2))
                    for k in range(int(rng.integers(0, 3))):
                        col = _ACCENTS[int(rng.integers(len(_ACCENTS)))]
                        d.rectangle(g.box(x + 6, y + 44 + k * 42, cw - 12, 36), fill=col)
                        _text(d, g.pt(x + 12, y + 56 + k * 42), _sentence(rng, 1, 2)[:20], (255, 255, 255),
                              g.ts(1.5))

    def _dialog(self, d: ImageDraw.ImageDraw) -> None:
        g = self.g
        x, y, w, h = self.DIALOG
        d.rectangle(g.box(x + 10, y + 10, w, h), fill=(70, 70, 80))
        d.rectangle(g.box(x, y, w, h), fill=(250, 250, 250), outline=(120, 120, 130))
        d.rectangle(g.box(x, y, w, 48), fill=(225, 228, 235))
        _text(d, g.pt(x + 20, y + 14), "Unsaved changes", (20, 20, 20), g.ts(2))
        d.polygon([g.pt(x + 80, y + 110), g.pt(x + 40, y + 180), g.pt(x + 120, y + 180)], fill=(245, 190, 40))
        _text(d, g.pt(x + 74, y + 130), "!", (40, 40, 40), g.ts(4))
        lines = ("Do you want to save the changes you made to", "\"Quarterly plan.docx\" before closing?", "",
                 "Your changes will be lost if you don't save them.")
        for j, line in enumerate(lines):
            _text(d, g.pt(x + 160, y + 110 + j * 40), line, (30, 30, 30), g.ts(2))
        for j, lab in enumerate(("Save", "Don't save", "Cancel")):
            bx = x + w - 3 * 200 + j * 200
            d.rectangle(g.box(bx, y + h - 90, 180, 56), fill=(0, 120, 212) if j == 0 else (230, 230, 230),
                        outline=(150, 150, 150))
            _text(d, g.pt(bx + 24, y + h - 74), lab, (255, 255, 255) if j == 0 else (30, 30, 30), g.ts(2))
