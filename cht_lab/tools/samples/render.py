"""Bundled, labeled sample sessions: synthetic screen shares whose scene changes are known exactly.

Why synthetic: real screen recordings cannot be shipped (privacy, size) and their ground truth is
argued over. Here every picture comes from a seeded plan, so the labels are exact by construction,
the distractors (typing, cursor, clock, scrolling, video, webcam, spinner) sit in known
rectangles, and regenerating gives the same decoded pixels: text uses Pillow's built-in bitmap
font (no FreeType, no system fonts), shapes use integer rasterisation, RGB->YUV is integer
arithmetic done here (no swscale), and x264 runs single-threaded.

Frames are encoded the way cht's recorder does it: H.264 (libx264, no B-frames, yuv420p, a
keyframe every 2 s) in a fragmented MP4 with AAC audio, in a session directory named by its start
time. `twoseg` is a recorder restart: two video-only segments with a gap, and a standalone ADTS
`audio.aac` covering the whole session.

Conventions of the labels (labels.csv: time,end,kind,note): `time` is the global time of the first
frame that shows the new picture (frame_number / fps); `end` is set only for gradual events (the
first frame that shows the new picture fully). Every row is one event that should give exactly one
capture. The first frame of a recording is not an event; `twoseg`'s second segment starts on the
picture its first segment ended with.
"""

from __future__ import annotations

import bisect
import functools
import logging
import math
import os
import shutil
import subprocess
import tempfile
import wave
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw, ImageFont

from cht_lab.ffmpeg import FfmpegProcess, MediaError, find_ffmpeg
from cht_lab.layout import AUDIO_AAC, LABELS_CSV, STREAM_DIR, TIME_FORMAT

log = logging.getLogger(__name__)

ENV_VAR = "CHT_LAB_SAMPLES"
AUDIO_RATE = 48_000
AUDIO_BITRATE = "32k"
X264_PARAMS = "ipratio=1.0"  # keyframes at P-frame quality: a 2 s GOP of text-heavy 1080p stays small
BLACKOUT_FRAMES = 2  # discrete distractor changes keep this many frames away from labeled events
EVENT_KINDS = ("cut", "gradual", "partial")

Rect = tuple[int, int, int, int]  # x, y, width, height in pixels


class SampleError(ValueError):
    """An unknown sample name or an inconsistent sample spec."""


# --------------------------------------------------------------------------- specs


@dataclass(frozen=True)
class Distractor:
    """A region whose pixels change without a scene change (tests exclude it; detectors must not fire)."""

    name: str
    rect: Rect
    what: str = ""

    @property
    def area(self) -> int:
        return self.rect[2] * self.rect[3]


@dataclass(frozen=True)
class Event:
    """One labeled event; `scene` is the renderer's key of what the screen shows afterwards."""

    time: float
    kind: str
    note: str
    scene: Hashable = None
    end: float | None = None


@dataclass(frozen=True)
class SegmentSpec:
    """One recorder run: global offset of its first frame and its length, in seconds."""

    offset: float
    duration: float


@dataclass(frozen=True)
class SampleSpec:
    """Everything that defines a sample; `dataclasses.replace(spec, duration=...)` gives a shorter one."""

    name: str
    start: datetime
    width: int
    height: int
    fps: int
    duration: float
    screen: str  # renderer: "slides" | "desktop" | "coding"
    events: tuple[Event, ...]
    distractors: tuple[Distractor, ...]
    first_scene: Hashable = 0
    segments: tuple[SegmentSpec, ...] = ()  # empty: one segment covering the whole duration
    audio_file: bool = False  # audio in stream/audio.aac (video-only segments) instead of muxed
    seed: int = 0
    crf: int = 36
    title: str = ""  # deck name / window title shown in the pictures
    description: str = ""

    @property
    def session_name(self) -> str:
        return self.start.strftime(TIME_FORMAT)

    @property
    def frame_count(self) -> int:
        return int(round(self.duration * self.fps))

    def segment_list(self) -> list[SegmentSpec]:
        return list(self.segments) if self.segments else [SegmentSpec(0.0, self.duration)]

    def segment_files(self) -> list[str]:
        """File names in stream/, named by each segment's start time like cht's recorder."""
        return [(self.start + timedelta(seconds=s.offset)).strftime(TIME_FORMAT) + ".mp4"
                for s in self.segment_list()]

    def active_events(self) -> list[Event]:
        """Events that fall inside the recorded frames (a shortened spec drops the later ones)."""
        last = self.frame_count - 1
        return [e for e in self.events if round((e.end if e.end is not None else e.time) * self.fps) <= last]

    def labels(self) -> pd.DataFrame:
        """Ground truth as written to labels.csv: time, end (NaN unless gradual), kind, note."""
        rows = [{"time": round(e.time, 6), "end": np.nan if e.end is None else round(e.end, 6),
                 "kind": e.kind, "note": e.note} for e in self.active_events()]
        df = pd.DataFrame(rows, columns=["time", "end", "kind", "note"])
        return df.astype({"time": "float64", "end": "float64", "kind": "object", "note": "object"})

    def distractor_rects(self) -> list[Rect]:
        return [d.rect for d in self.distractors]


# --------------------------------------------------------------------------- drawing helpers

CHAR_W, CHAR_H = 6, 11  # Pillow's built-in bitmap font


@functools.lru_cache(maxsize=1)
def _font() -> Any:
    """Pillow's bitmap default font: identical on every machine (load_default() may pick FreeType)."""
    loader = getattr(ImageFont, "load_default_imagefont", None)
    return loader() if loader is not None else ImageFont.load_default()


@functools.lru_cache(maxsize=8192)
def _glyphs(text: str, scale: int) -> Image.Image:
    im = Image.new("L", (max(1, CHAR_W * len(text)), CHAR_H))
    ImageDraw.Draw(im).text((0, 0), text, fill=255, font=_font())
    if scale > 1:
        im = im.resize((im.width * scale, im.height * scale), Image.Resampling.NEAREST)
    return im


def _text(draw: ImageDraw.ImageDraw, xy: tuple[int, int], text: str, fill: tuple[int, ...], scale: int = 1) -> None:
    if text:
        draw.bitmap(xy, _glyphs(text, scale), fill=fill)


def _wrap(text: str, width: int) -> list[str]:
    """Greedy word wrap to at most `width` characters per line."""
    lines: list[str] = []
    line = ""
    for word in text.split():
        cand = f"{line} {word}" if line else word
        if len(cand) <= width or not line:
            line = cand[: max(1, width)]
        else:
            lines.append(line)
            line = word[: max(1, width)]
    if line:
        lines.append(line)
    return lines


class _Geo:
    """Maps a design coordinate space (e.g. 1280x720) onto the real frame size."""

    def __init__(self, width: int, height: int, design: tuple[int, int]):
        self.width, self.height = width, height
        self.sx, self.sy = width / design[0], height / design[1]

    def X(self, v: float) -> int:
        return int(math.floor(v * self.sx + 0.5))

    def Y(self, v: float) -> int:
        return int(math.floor(v * self.sy + 0.5))

    def pt(self, x: float, y: float) -> tuple[int, int]:
        return self.X(x), self.Y(y)

    def box(self, x: float, y: float, w: float, h: float) -> tuple[int, int, int, int]:
        """Inclusive PIL box for a design rectangle."""
        return self.X(x), self.Y(y), max(self.X(x), self.X(x + w) - 1), max(self.Y(y), self.Y(y + h) - 1)

    def ts(self, k: float) -> int:
        """Text scale (integer pixel zoom of the bitmap font) for a design scale k."""
        return max(1, int(k * min(self.sx, self.sy) + 0.5))

    def rect(self, x: float, y: float, w: float, h: float) -> Rect:
        """Real-pixel rectangle aligned to even coordinates (4:2:0 chroma), clipped to the frame."""
        x0 = max(0, self.X(x) // 2 * 2)
        y0 = max(0, self.Y(y) // 2 * 2)
        x1 = min(self.width, -(-self.X(x + w) // 2) * 2)
        y1 = min(self.height, -(-self.Y(y + h) // 2) * 2)
        return x0, y0, max(2, x1 - x0), max(2, y1 - y0)


def _rgb_to_yuv420(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """BT.601 limited-range RGB -> YUV 4:2:0 in integer arithmetic (bit-exact everywhere)."""
    c = rgb.astype(np.int32)
    r, g, b = c[..., 0], c[..., 1], c[..., 2]
    y = ((66 * r + 129 * g + 25 * b + 128) >> 8) + 16
    h, w = rgb.shape[:2]
    s = c.reshape(h // 2, 2, w // 2, 2, 3).sum(axis=(1, 3))
    r4, g4, b4 = s[..., 0], s[..., 1], s[..., 2]
    u = ((-38 * r4 - 74 * g4 + 112 * b4 + 512) >> 10) + 128
    v = ((112 * r4 - 94 * g4 - 18 * b4 + 512) >> 10) + 128
    return (np.clip(y, 0, 255).astype(np.uint8), np.clip(u, 0, 255).astype(np.uint8),
            np.clip(v, 0, 255).astype(np.uint8))


class _Planes:
    """One yuv420p frame in a single contiguous buffer (what ffmpeg's rawvideo input reads)."""

    def __init__(self, width: int, height: int, buf: np.ndarray | None = None):
        self.width, self.height = width, height
        n = width * height
        self.buf = np.empty(n * 3 // 2, np.uint8) if buf is None else buf
        self.y = self.buf[:n].reshape(height, width)
        self.u = self.buf[n: n + n // 4].reshape(height // 2, width // 2)
        self.v = self.buf[n + n // 4:].reshape(height // 2, width // 2)

    @classmethod
    def from_rgb(cls, rgb: np.ndarray) -> _Planes:
        p = cls(rgb.shape[1], rgb.shape[0])
        p.y[:], p.u[:], p.v[:] = _rgb_to_yuv420(rgb)
        return p

    def put(self, x: int, y: int, patch: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
        py, pu, pv = patch
        h, w = py.shape
        self.y[y: y + h, x: x + w] = py
        self.u[y // 2: y // 2 + h // 2, x // 2: x // 2 + w // 2] = pu
        self.v[y // 2: y // 2 + h // 2, x // 2: x // 2 + w // 2] = pv


# --------------------------------------------------------------------------- vocabulary

_WORDS = (
    "data model stream frame scene change threshold capture agent screen share window slide review "
    "quarter revenue growth plan team goal metric launch design user feedback release pipeline latency "
    "budget forecast market customer support region update status risk owner milestone sprint backlog "
    "test build deploy server client socket index table query result report summary chart trend cost "
    "value target progress issue action item next step meeting notes demo audio video signal noise "
    "cursor clock typing scroll panel editor file branch commit merge review merge tune sweep score "
    "precision recall label event sample session segment offset buffer queue thread worker process"
).split()
_NAMES = ("Ana", "Ben", "Chen", "Dara", "Eli", "Fay", "Gus", "Hana", "Ivo", "Jun", "Kai", "Lena")


def _sentence(rng: np.random.Generator, lo: int = 4, hi: int = 10, cap: bool = True) -> str:
    words = [_WORDS[i] for i in rng.integers(0, len(_WORDS), int(rng.integers(lo, hi + 1)))]
    s = " ".join(words)
    return (s[:1].upper() + s[1:]) if cap else s


def _title(rng: np.random.Generator) -> str:
    return " ".join(w.capitalize() for w in (_WORDS[i] for i in rng.integers(0, len(_WORDS), int(rng.integers(2, 4)))))


# --------------------------------------------------------------------------- screens


@dataclass(frozen=True)
class _Change:
    frame: int
    frames: int  # 1 for a cut or partial; fade length for gradual
    scene: Hashable


class _Screen:
    """A timeline of scenes (rendered once each) plus per-frame distractor overlays.

    Subclasses define DESIGN, layout(), render_scene(key) and draw_overlays(i, frame).
    Discrete distractor changes are frozen near labeled events (see BLACKOUT_FRAMES).
    """

    DESIGN: tuple[int, int] = (1280, 720)

    def __init__(self, width: int, height: int, fps: int, n_frames: int, start: datetime, seed: int,
                 events: Sequence[Event], first_scene: Hashable):
        if width % 2 or height % 2 or width < 64 or height < 64:
            raise SampleError(f"frame size {width}x{height}: width and height must be even and >= 64")
        self.width, self.height, self.fps, self.n = width, height, fps, n_frames
        self.start, self.seed = start, seed
        self.g = _Geo(width, height, self.DESIGN)
        self.first_scene = first_scene
        self.changes: list[_Change] = []
        for e in events:
            f = int(round(e.time * fps))
            k = 1 if e.end is None else int(round(e.end * fps)) - f + 1
            self.changes.append(_Change(f, k, e.scene))
        self._change_frames = [c.frame for c in self.changes]
        self.blackout: set[int] = set()
        for c in self.changes:
            self.blackout.update(range(c.frame - BLACKOUT_FRAMES, c.frame + c.frames + BLACKOUT_FRAMES))
        self._bases: dict[Hashable, tuple[np.ndarray, _Planes]] = {}
        self._slots: dict[str, tuple[Hashable, tuple[np.ndarray, np.ndarray, np.ndarray]]] = {}
        self._out = _Planes(width, height)
        self._state: tuple[Hashable, Hashable, int, int] = (first_scene, None, 0, 1)

    # ---- layout / content (subclasses)
    @classmethod
    def layout(cls, width: int, height: int) -> tuple[Distractor, ...]:
        raise NotImplementedError

    def render_scene(self, key: Hashable) -> np.ndarray:
        raise NotImplementedError

    def draw_overlays(self, i: int, frame: _Planes) -> None:
        raise NotImplementedError

    # ---- timeline
    def freeze(self, states: np.ndarray) -> np.ndarray:
        """Hold per-frame distractor states still on frames near labeled events."""
        for i in sorted(self.blackout):
            if 0 < i < len(states):
                states[i] = states[i - 1]
        return states

    def scene_state(self, i: int) -> tuple[Hashable, Hashable, int, int]:
        """(scene, fading-in scene or None, fade step k, steps n): picture = scene*(n-k)/n + new*k/n."""
        j = bisect.bisect_right(self._change_frames, i) - 1
        if j < 0:
            return self.first_scene, None, 0, 1
        c = self.changes[j]
        prev = self.changes[j - 1].scene if j > 0 else self.first_scene
        if c.frames > 1 and i < c.frame + c.frames - 1:
            return prev, c.scene, i - c.frame + 1, c.frames
        return c.scene, None, 0, 1

    def _base(self, key: Hashable) -> tuple[np.ndarray, _Planes]:
        if key not in self._bases:
            if len(self._bases) >= 4:
                self._bases.pop(next(iter(self._bases)))
            rgb = self.render_scene(key)
            self._bases[key] = (rgb, _Planes.from_rgb(rgb))
        return self._bases[key]

    def frame(self, i: int) -> _Planes:
        a, b, k, n = self.scene_state(i)
        self._state = (a, b, k, n)
        out = self._out
        if b is None:
            np.copyto(out.buf, self._base(a)[1].buf)
        else:
            pa, pb = self._base(a)[1].buf.astype(np.int32), self._base(b)[1].buf.astype(np.int32)
            out.buf[:] = ((pa * (n - k) + pb * k + n // 2) // n).astype(np.uint8)
        self.draw_overlays(i, out)
        return out

    def background(self, rect: Rect) -> np.ndarray:
        """RGB pixels of the current scene under `rect` (blended during a fade)."""
        x, y, w, h = rect
        a, b, k, n = self._state
        reg = self._base(a)[0][y: y + h, x: x + w]
        if b is None:
            return reg.copy()
        rb = self._base(b)[0][y: y + h, x: x + w].astype(np.int32)
        return ((reg.astype(np.int32) * (n - k) + rb * k + n // 2) // n).astype(np.uint8)

    def put(self, frame: _Planes, slot: str, key: Hashable, rect: Rect,
            draw: Callable[[], np.ndarray], over_scene: bool = False) -> None:
        """Draw an overlay patch, converting to YUV only when its state changed since the last frame."""
        if over_scene:
            key = (key, self._state)
        cached = self._slots.get(slot)
        if cached is None or cached[0] != key:
            rgb = draw()
            cached = (key, _rgb_to_yuv420(rgb))
            self._slots[slot] = cached
        frame.put(rect[0], rect[1], cached[1])

    def clock_text(self, i: int, fmt: str = "%H:%M:%S") -> str:
        return (self.start + timedelta(seconds=i // self.fps)).strftime(fmt)


def _rng(*key: int) -> np.random.Generator:
    return np.random.default_rng([abs(int(k)) for k in key])


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


_CURSOR = ((0, 0), (0, 17), (4, 13), (7, 20), (10, 19), (7, 12), (12, 12))


def _draw_cursor(img: Image.Image, x: int, y: int, k: float) -> None:
    pts = [(x + px * k, y + py * k) for px, py in _CURSOR]
    ImageDraw.Draw(img).polygon(pts, fill=(0, 0, 0), outline=(255, 255, 255))


# ---- slides ---------------------------------------------------------------------------------

_PRIMARY = (31, 78, 145)
_ACCENTS = ((230, 126, 34), (39, 174, 96), (142, 68, 173), (231, 76, 60), (41, 128, 185), (241, 196, 15))
_INK = (40, 40, 48)
_SLIDE_TYPES = ("bullets", "chart", "image", "table", "quote", "section", "diagram")


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

        r4 = self.rects["cursor"]
        cx, cy = int(self.cur_x[i]), int(self.cur_y[i])
        k = min(g.sx, g.sy)

        def cursor() -> np.ndarray:
            img = Image.fromarray(self.background(r4))
            _draw_cursor(img, cx - r4[0], cy - r4[1], k)
            return np.asarray(img)

        self.put(frame, "cursor", (cx, cy), r4, cursor, over_scene=True)


# ---- desktop --------------------------------------------------------------------------------

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


# ---- coding ---------------------------------------------------------------------------------

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


_SCREENS: dict[str, type[_Screen]] = {"slides": SlidesScreen, "desktop": DesktopScreen, "coding": CodingScreen}


def _make_screen(spec: SampleSpec) -> _Screen:
    cls = _SCREENS[spec.screen]
    kw = {"deck": spec.title} if cls is SlidesScreen and spec.title else {}
    return cls(spec.width, spec.height, spec.fps, spec.frame_count, spec.start, spec.seed, spec.active_events(),
               spec.first_scene, **kw)


# --------------------------------------------------------------------------- audio


def speech_like_audio(duration: float, sample_rate: int = AUDIO_RATE, seed: int = 0) -> np.ndarray:
    """Deterministic speech-like mono audio: voiced bursts with pauses and longer silences (float32, ±1).

    Voiced bursts last 0.2–1.5 s (harmonics of a gliding pitch, shaped by moving formants and a
    syllable envelope), separated by 0.3–2 s pauses; talk spurts of 4–12 s are separated by
    2.5–5 s of silence. Good enough to exercise speech/silence detection and audio chunking.
    """
    rng = _rng(seed, 5)
    n = int(round(duration * sample_rate))
    out = np.zeros(n, np.float32)  # float32 throughout: a 10-minute benchmark clip stays ~100 MB
    t = float(rng.uniform(0.3, 1.0))
    while t < duration:
        spurt_end = t + rng.uniform(4.0, 12.0)
        f0_base = rng.uniform(100.0, 210.0)
        while t < min(spurt_end, duration):
            length = float(rng.uniform(0.2, 1.5))
            if t + length > duration - 0.05:
                break
            _voiced_burst(out, int(t * sample_rate), length, sample_rate, f0_base, rng)
            t += length + rng.uniform(0.3, 2.0)
        t += rng.uniform(2.5, 5.0)
    out += rng.standard_normal(n, dtype=np.float32) * np.float32(2e-4)  # a faint noise floor, as in any room
    np.clip(out, -1.0, 1.0, out=out)
    return out


def _voiced_burst(out: np.ndarray, start: int, length: float, sr: int, f0_base: float,
                  rng: np.random.Generator) -> None:
    m = min(int(length * sr), len(out) - start)
    if m <= 0:
        return
    tt = np.arange(m) / sr
    f0 = f0_base * (1 + 0.12 * np.sin(2 * np.pi * rng.uniform(1.5, 4.0) * tt + rng.uniform(0, 6.3))
                    - 0.1 * tt / max(length, 1e-3))
    phase = 2 * np.pi * np.cumsum(f0) / sr
    # syllables: each with its own vowel (formants) and a raised-sine envelope
    n_syl = max(1, int(round(length / rng.uniform(0.15, 0.3))))
    edges = np.linspace(0, m, n_syl + 1).astype(int)
    f1 = np.empty(m)
    f2 = np.empty(m)
    env = np.empty(m)
    for a, b in zip(edges[:-1], edges[1:]):
        f1[a:b] = rng.uniform(300, 800)
        f2[a:b] = rng.uniform(900, 2300)
        k = np.arange(b - a) / max(1, b - a)
        env[a:b] = (0.35 + 0.65 * np.sin(np.pi * k)) * rng.uniform(0.6, 1.0)
    kern = np.hanning(int(0.03 * sr) | 1)
    kern /= kern.sum()
    f1 = np.convolve(f1, kern, mode="same")
    f2 = np.convolve(f2, kern, mode="same")
    env = np.convolve(env, kern, mode="same")
    ramp = min(int(0.02 * sr), m // 2)
    if ramp:
        env[:ramp] *= np.linspace(0, 1, ramp)
        env[-ramp:] *= np.linspace(1, 0, ramp)
    sig = np.zeros(m)
    for h in range(1, 25):
        fh = h * f0
        gain = (np.exp(-((fh - f1) / 120.0) ** 2) + 0.6 * np.exp(-((fh - f2) / 180.0) ** 2) + 0.05) / h ** 0.6
        gain[fh > 4000] = 0.0
        sig += gain * np.sin(h * phase)
    sig *= env / max(1e-9, float(np.max(np.abs(sig))))
    out[start: start + m] += 0.35 * rng.uniform(0.6, 1.0) * sig


def _write_wav(path: Path, audio: np.ndarray, sample_rate: int) -> None:
    pcm = np.clip(np.round(audio * 32767.0), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(pcm.tobytes())


# --------------------------------------------------------------------------- encoding


def _ffmpeg_lib() -> Any:
    import ffmpeg as ffmpeg_lib  # ffmpeg-python (not cht_lab.ffmpeg)

    return ffmpeg_lib


def _encode(path: Path, screen: _Screen, frames: range, wav: Path | None, *, crf: int, preset: str = "medium",
            threads: int = 1, progress: Any = None) -> None:
    """Pipe yuv420p frames (and optionally a WAV) through ffmpeg into a fragmented MP4 like cht's recorder."""
    lib = _ffmpeg_lib()
    fps = screen.fps
    video = lib.input("pipe:0", f="rawvideo", pix_fmt="yuv420p", s=f"{screen.width}x{screen.height}",
                      framerate=fps)
    streams = [video.video]
    out_kw: dict[str, Any] = {
        "vcodec": "libx264", "preset": preset, "crf": crf, "bf": 0, "g": 2 * fps, "pix_fmt": "yuv420p",
        "threads": threads, "movflags": "+frag_keyframe+empty_moov+default_base_moof", "f": "mp4",
        "x264-params": X264_PARAMS, "use_editlist": 1, "fflags": "+bitexact", "flags:v": "+bitexact",
    }
    if wav is not None:
        streams.append(lib.input(str(wav)).audio)
        out_kw.update({"acodec": "aac", "ac": 1, "ar": AUDIO_RATE, "b:a": AUDIO_BITRATE, "flags:a": "+bitexact"})
    args = (lib.output(*streams, str(path), **out_kw)
            .global_args("-hide_banner", "-loglevel", "error", "-nostdin")
            .overwrite_output().compile(cmd=find_ffmpeg()))
    proc = FfmpegProcess(args, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, name=f"samples:{path.name}")
    try:
        assert proc.stdin is not None
        for i in frames:
            try:
                _write_all(proc.stdin, memoryview(screen.frame(i).buf))
            except BrokenPipeError as exc:
                proc.wait(timeout=10)
                raise MediaError(path, f"ffmpeg stopped while encoding: {proc.error_summary()}") from exc
            if progress is not None:
                progress.update(1)
        proc.stdin.close()
        try:
            rc = proc.wait(timeout=300)
        except subprocess.TimeoutExpired as exc:
            raise MediaError(path, "ffmpeg did not finish encoding within 300 s") from exc
        if rc != 0:
            raise MediaError(path, f"ffmpeg failed to encode: {proc.error_summary()}")
    finally:
        proc.stop()


def _write_all(stream: Any, data: memoryview) -> None:
    """An unbuffered pipe may take fewer bytes than offered; keep writing until all are in."""
    while len(data):
        n = stream.write(data)
        data = data[n if n is not None else len(data):]


def _encode_adts(path: Path, wav: Path) -> None:
    lib = _ffmpeg_lib()
    args = (lib.input(str(wav)).output(str(path), acodec="aac", ac=1, ar=AUDIO_RATE, f="adts",
                                       fflags="+bitexact", **{"b:a": AUDIO_BITRATE, "flags:a": "+bitexact"})
            .global_args("-hide_banner", "-loglevel", "error", "-nostdin").overwrite_output()
            .compile(cmd=find_ffmpeg()))
    with FfmpegProcess(args, stdout=subprocess.DEVNULL, name="samples:adts") as proc:
        if proc.wait(timeout=120) != 0:
            raise MediaError(path, f"ffmpeg failed to encode audio: {proc.error_summary()}")


def _check_spec(spec: SampleSpec) -> None:
    segs = spec.segment_list()
    times = [e.time for e in spec.events]
    if times != sorted(times):
        raise SampleError(f"sample {spec.name!r}: events must be in time order")
    for e in spec.active_events():
        if e.kind not in EVENT_KINDS:
            raise SampleError(f"sample {spec.name!r}: event at {e.time} has unknown kind {e.kind!r}")
        if (e.kind == "gradual") != (e.end is not None):
            raise SampleError(f"sample {spec.name!r}: event at {e.time}: only gradual events have an end")
        for v in (e.time, e.end):
            if v is not None and abs(v * spec.fps - round(v * spec.fps)) > 1e-6:
                raise SampleError(f"sample {spec.name!r}: event time {v} is not on a frame of {spec.fps} fps")
        if not any(s.offset < e.time and (e.end or e.time) < s.offset + s.duration for s in segs):
            raise SampleError(f"sample {spec.name!r}: event at {e.time} is not inside a recorded segment")


def write_sample(spec: SampleSpec, session_dir: str | os.PathLike[str], progress: bool = False) -> Path:
    """Render `spec` into `session_dir` (created; must not exist yet): stream/, labels.csv."""
    _check_spec(spec)
    dest = Path(session_dir)
    stream = dest / STREAM_DIR
    stream.mkdir(parents=True)
    screen = _make_screen(spec)
    audio = speech_like_audio(spec.duration, AUDIO_RATE, spec.seed)
    wav = dest / ".audio.wav"
    _write_wav(wav, audio, AUDIO_RATE)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=sum(int(round(s.duration * spec.fps)) for s in spec.segment_list()),
                   desc=spec.name, unit="frame", leave=False)
    try:
        for seg, fname in zip(spec.segment_list(), spec.segment_files()):
            first = int(round(seg.offset * spec.fps))
            frames = range(first, first + int(round(seg.duration * spec.fps)))
            _encode(stream / fname, screen, frames, None if spec.audio_file else wav, crf=spec.crf, progress=bar)
        if spec.audio_file:
            _encode_adts(stream / AUDIO_AAC, wav)
    finally:
        if bar is not None:
            bar.close()
        wav.unlink(missing_ok=True)
    spec.labels().to_csv(dest / LABELS_CSV, index=False)
    log.info("sample %s written to %s", spec.name, dest)
    return dest


# --------------------------------------------------------------------------- the bundled samples


def _ev(t: float, kind: str, note: str, scene: Hashable, end: float | None = None) -> Event:
    return Event(t, kind, note, scene, end)


def _bundled() -> dict[str, SampleSpec]:
    slides_cuts = [4.5, 9.5, 13.5, 18.5, 22.5, 27.5, 31.5, 36.5, 40.5, 45.5, 49.5, 54.5]
    twoseg_cuts = [4.5, 9.5, 14.5, 29.5, 34.5, 39.5]
    desktop = (
        _ev(3.5, "cut", "switch to the file manager", "files"),
        _ev(8.5, "cut", "switch to the spreadsheet", "sheet"),
        _ev(13.5, "cut", "switch to mail", "mail"),
        _ev(17.5, "partial", "save dialog pops up over mail (a quarter of the screen)", "mail+dialog"),
        _ev(21.5, "partial", "save dialog closes; mail shows again", "mail"),
        _ev(25.5, "cut", "switch to the calendar", "calendar"),
        _ev(29.5, "gradual", "1 s cross-fade from the calendar to photos", "photos", 30.5),
        _ev(34.5, "cut", "switch to the terminal", "terminal"),
        _ev(39.5, "cut", "switch to a news page in the browser", "news"),
    )
    specs = [
        SampleSpec(
            name="slides", start=datetime(2026, 3, 1, 9, 0, 0), width=1280, height=720, fps=30, duration=60.0,
            screen="slides", seed=1, crf=36, title="Quarterly review",
            events=tuple(_ev(t, "cut", f"slide {j + 2}", j + 1) for j, t in enumerate(slides_cuts)),
            distractors=SlidesScreen.layout(1280, 720),
            description="A slide deck: hard slide changes; typing, cursor, clock and a scrolling chat distract.",
        ),
        SampleSpec(
            name="desktop", start=datetime(2026, 3, 1, 10, 0, 0), width=1920, height=1080, fps=30, duration=45.0,
            screen="desktop", seed=2, crf=38, first_scene="browser", events=desktop,
            distractors=DesktopScreen.layout(1920, 1080),
            description="Window switches, a pop-up dialog, a cross-fade; a picture-in-picture video distracts.",
        ),
        SampleSpec(
            name="coding", start=datetime(2026, 3, 1, 11, 0, 0), width=1920, height=1080, fps=30, duration=45.0,
            screen="coding", seed=3, crf=38,
            events=tuple(_ev(4.5 + 5 * j, "cut", f"switch to {_CODE_FILES[j + 1]}", j + 1) for j in range(8)),
            distractors=CodingScreen.layout(1920, 1080),
            description="Dark editor switching between look-alike files; webcam, spinner and progress bar distract.",
        ),
        SampleSpec(
            name="twoseg", start=datetime(2026, 3, 1, 12, 0, 0), width=1280, height=720, fps=30, duration=45.0,
            screen="slides", seed=4, crf=36, title="Team sync",
            segments=(SegmentSpec(0.0, 20.0), SegmentSpec(25.0, 20.0)), audio_file=True,
            events=tuple(_ev(t, "cut", f"slide {j + 2}", j + 1) for j, t in enumerate(twoseg_cuts)),
            distractors=SlidesScreen.layout(1280, 720),
            description="Recorder restart: two video-only segments with a 5 s gap, audio in stream/audio.aac.",
        ),
    ]
    return {s.name: s for s in specs}


SAMPLES: dict[str, SampleSpec] = _bundled()


def samples_root() -> Path:
    """Where the bundled samples live: $CHT_LAB_SAMPLES, else the repository's data/samples/.

    An installed wheel has no data/ next to the package; then a per-user cache directory is
    used and sample_dir() generates what is missing there.
    """
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    repo = Path(__file__).resolve().parents[1] / "data" / "samples"
    if repo.is_dir() or (repo.parents[1] / "pyproject.toml").is_file():
        return repo
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "cht_lab" / "samples"


def _spec(name: str) -> SampleSpec:
    try:
        return SAMPLES[name]
    except (KeyError, TypeError):
        raise SampleError(f"unknown sample {name!r}; valid names: {', '.join(SAMPLES)}") from None


def _complete(spec: SampleSpec, d: Path) -> bool:
    files = [d / LABELS_CSV, *(d / STREAM_DIR / f for f in spec.segment_files())]
    if spec.audio_file:
        files.append(d / STREAM_DIR / AUDIO_AAC)
    return all(f.is_file() and f.stat().st_size > 0 for f in files)


def sample_dir(name: str, generate_missing: bool = True) -> Path:
    """The session directory of a bundled sample (generated first if it is missing on disk)."""
    spec = _spec(name)
    d = samples_root() / spec.session_name
    if not _complete(spec, d) and generate_missing:
        log.info("sample %r missing in %s; generating it", name, d.parent)
        generate(names=[name])
    return d


def generate(root: str | os.PathLike[str] | None = None, names: Iterable[str] | None = None, force: bool = False,
             progress: bool = False) -> list[Path]:
    """Write the bundled samples under `root` (default samples_root()); returns their session dirs.

    Samples already present are kept unless `force`. Each sample is rendered into a hidden temp
    directory next to its destination and renamed into place, so a crash never leaves half a sample.
    """
    root_path = Path(root) if root is not None else samples_root()
    root_path.mkdir(parents=True, exist_ok=True)
    specs = [_spec(n) for n in (names if names is not None else SAMPLES)]
    out: list[Path] = []
    for spec in specs:
        dest = root_path / spec.session_name
        out.append(dest)
        if _complete(spec, dest) and not force:
            log.info("sample %s present in %s; skipped", spec.name, dest)
            continue
        tmp = Path(tempfile.mkdtemp(prefix=f".{spec.session_name}.tmp-", dir=root_path))
        try:
            write_sample(spec, tmp / "session", progress=progress)
            old = None
            if dest.exists():
                old = root_path / f".{spec.session_name}.old-{os.getpid()}"
                os.replace(dest, old)
            os.replace(tmp / "session", dest)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return out


# --------------------------------------------------------------------------- benchmark clips


def render_screen_clip(path: str | os.PathLike[str], width: int = 1920, height: int = 1080, fps: int = 30,
                       duration: float = 120.0, seed: int = 0, audio: bool = True, crf: int = 30,
                       preset: str = "veryfast", threads: int = 0) -> pd.DataFrame:
    """Render a long slides-like screen recording (fMP4) for benchmarks; returns its labels.

    Slide changes come every 3–9 s (at half seconds, never within 2 s of the ends), with the
    slides sample's distractors. Deterministic for a given seed and size (x264 is deterministic
    with threads too; `threads=0` lets it pick).
    """
    if duration < 1.0:
        raise SampleError(f"duration {duration} s is too short for a screen clip (need >= 1 s)")
    rng = _rng(seed, 7)
    events: list[Event] = []
    t = 2.0 + rng.uniform(0, 2.0)
    while True:
        f = int(math.floor(t)) * fps + fps // 2
        if f / fps > duration - 2.0:
            break
        events.append(_ev(f / fps, "cut", f"slide {len(events) + 2}", len(events) + 1))
        t = f / fps + rng.uniform(3.0, 9.0)
    spec = SampleSpec(name="clip", start=datetime(2026, 3, 1, 8, 0, 0), width=width, height=height, fps=fps,
                      duration=duration, screen="slides", events=tuple(events), distractors=(), seed=seed, crf=crf)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    screen = SlidesScreen(width, height, fps, spec.frame_count, spec.start, seed, events, 0, deck="Benchmark deck")
    wav = None
    try:
        if audio:
            wav = out.with_name(f".{out.name}.wav")
            _write_wav(wav, speech_like_audio(duration, AUDIO_RATE, seed), AUDIO_RATE)
        _encode(out, screen, range(spec.frame_count), wav, crf=crf, preset=preset, threads=threads)
    finally:
        if wav is not None:
            wav.unlink(missing_ok=True)
    return spec.labels()
