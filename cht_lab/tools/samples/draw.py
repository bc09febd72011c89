"""The pieces every sample is made of: specs, bit-exact drawing helpers, and the _Screen timeline.

Everything here is deterministic on any machine: text is Pillow's built-in bitmap font, shapes
are integer rasterisation, and RGB->YUV is integer arithmetic done here (no swscale).
"""

from __future__ import annotations

import bisect
import functools
import math
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw, ImageFont

from cht_lab.layout import TIME_FORMAT

AUDIO_RATE = 48_000
AUDIO_BITRATE = "32k"
X264_PARAMS = "ipratio=1.0"  # keyframes at P-frame quality: a 2 s GOP of text-heavy 1080p stays small
BLACKOUT_FRAMES = 2  # discrete distractor changes keep this many frames away from labeled events
EVENT_KINDS = ("cut", "gradual", "partial")

Rect = tuple[int, int, int, int]  # x, y, width, height in pixels


CURSOR_SHAPE = ((0, 0), (0, 17), (4, 13), (7, 20), (10, 19), (7, 12), (12, 12))  # the pointer, design px


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


def _ev(t: float, kind: str, note: str, scene: Hashable, end: float | None = None) -> Event:
    return Event(t, kind, note, scene, end)


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
    options: tuple[tuple[str, Any], ...] = ()  # screen-specific keyword arguments (distractor timelines)
    gop: float = 2.0  # seconds between keyframes
    audio: bool = True  # an audio track (muxed, or audio.aac with audio_file)
    roaming: tuple[tuple[float, float, str], ...] = ()  # (start, end, what): distractors without a rectangle
    x264: str = X264_PARAMS  # libx264 parameters

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

    def put_cursor(self, frame: _Planes, x: int, y: int, scale: float) -> None:
        """The mouse pointer at (x, y) over the scene, as the "cursor" overlay (redrawn when it moves)."""
        r = self.rects["cursor"]

        def cursor() -> np.ndarray:
            img = Image.fromarray(self.background(r))
            pts = [(x - r[0] + px * scale, y - r[1] + py * scale) for px, py in CURSOR_SHAPE]
            ImageDraw.Draw(img).polygon(pts, fill=(0, 0, 0), outline=(255, 255, 255))
            return np.asarray(img)

        self.put(frame, "cursor", (x, y), r, cursor, over_scene=True)

    def scene_key(self, scene: Hashable, i: int) -> Hashable:
        """What is rendered (and cached) for `scene` at frame i: the scene itself, unless a screen
        draws moving content into its pictures (then the key says what that content is)."""
        return scene

    def frame(self, i: int) -> _Planes:
        a, b, k, n = self.scene_state(i)
        a, b = self.scene_key(a, i), None if b is None else self.scene_key(b, i)
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


# --------------------------------------------------------------------------- colours

_ACCENTS = ((230, 126, 34), (39, 174, 96), (142, 68, 173), (231, 76, 60), (41, 128, 185), (241, 196, 15))
_INK = (40, 40, 48)
