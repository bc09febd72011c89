"""A virtual X screen, a real pointer on it, and a recorder of it (ffmpeg x11grab, the bundled binary).

Recording is two passes so that a busy machine does not spoil the picture: while the scenario runs,
ffmpeg grabs the screen at 25 fps into a lossless capture (libx264 ultrafast, qp 0, Matroska) that
keeps x11grab's own timestamps (the wall clock of each grab, `-copyts`); afterwards
`deliver()` cuts the sample out of it and encodes it the way cht's recorder writes a session
(H.264 yuv420p, no B-frames, 2 s GOP, fragmented MP4, AAC audio with an edit list).

Pointer moves go through XTest/XWarpPointer on the X server itself (ctypes, libX11 + libXtst), so the
recorder draws the real cursor and Chromium sees real motion events (hover effects happen as they do
for a person); CDP mouse events would hover without moving the drawn cursor.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import importlib.util
import logging
import os
import select
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from cht_lab.ffmpeg import FfmpegProcess, MediaError, find_ffmpeg
from cht_lab.tools.samples.real.child import owned_process

log = logging.getLogger(__name__)

WIDTH, HEIGHT, FPS = 1920, 1080, 25


class RecordingUnavailable(RuntimeError):
    """Xvfb, Chromium, Playwright or x11grab is missing: real samples cannot be recorded here."""


def missing_tools(chromium: str = "/usr/bin/chromium") -> list[str]:
    """What is missing to record real samples (empty: everything is there)."""
    missing = []
    if shutil.which("Xvfb") is None:
        missing.append("Xvfb (apt-get install xvfb)")
    if not (os.access(chromium, os.X_OK) or shutil.which("chromium")):
        missing.append(f"Chromium ({chromium}; apt-get install chromium)")
    if importlib.util.find_spec("playwright") is None:
        missing.append("playwright (pip install playwright)")
    if ctypes.util.find_library("X11") is None or ctypes.util.find_library("Xtst") is None:
        missing.append("libX11/libXtst (apt-get install libxtst6)")
    return missing


# --------------------------------------------------------------------------- the display


class Display:
    """`Xvfb` on a free display number (it picks one itself: -displayfd); a context manager."""

    def __init__(self, width: int = WIDTH, height: int = HEIGHT):
        self.width, self.height = width, height
        self.proc: subprocess.Popen[bytes] | None = None
        self._owned = contextlib.ExitStack()
        self.name = ""
        self._fd = -1

    def __enter__(self) -> "Display":
        r, w = os.pipe()  # the read end stays open while Xvfb runs: once it is closed, Xvfb accepts no client
        self._fd = r
        try:
            self.proc = self._owned.enter_context(owned_process(
                ["Xvfb", "-displayfd", str(w), "-screen", "0", f"{self.width}x{self.height}x24", "-nolisten", "tcp",
                 "-noreset"], pass_fds=(w,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        finally:
            os.close(w)
        ready, _, _ = select.select([r], [], [], 20)
        number = os.read(r, 64).decode().strip() if ready else ""
        if not number:
            self.__exit__()
            raise RecordingUnavailable("Xvfb did not report a display within 20 s")
        self.name = f":{number}"
        log.info("Xvfb on %s (%dx%d)", self.name, self.width, self.height)
        return self

    def env(self) -> dict[str, str]:
        return {**os.environ, "DISPLAY": self.name}

    def __exit__(self, *exc: object) -> None:
        self._owned.close()
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class Pointer:
    """The X server's own pointer: moves (smoothly, like a hand) and clicks through XTest."""

    def __init__(self, display: Display):
        self._x11 = ctypes.CDLL(ctypes.util.find_library("X11") or "libX11.so.6")
        self._xtst = ctypes.CDLL(ctypes.util.find_library("Xtst") or "libXtst.so.6")
        self._x11.XOpenDisplay.restype = ctypes.c_void_p
        self._x11.XOpenDisplay.argtypes = [ctypes.c_char_p]
        self._x11.XFlush.argtypes = [ctypes.c_void_p]
        self._x11.XCloseDisplay.argtypes = [ctypes.c_void_p]
        self._xtst.XTestFakeMotionEvent.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                                                    ctypes.c_ulong]
        self._xtst.XTestFakeButtonEvent.argtypes = [ctypes.c_void_p, ctypes.c_uint, ctypes.c_int, ctypes.c_ulong]
        self._dpy = self._x11.XOpenDisplay(display.name.encode())
        if not self._dpy:
            raise RecordingUnavailable(f"cannot open X display {display.name}")
        self.x, self.y = display.width // 2, display.height // 2

    def move(self, x: float, y: float, duration: float = 0.0, steps_per_s: int = 60) -> None:
        """Glide to (x, y) in `duration` seconds (ease in-out), one motion event per step."""
        x0, y0 = self.x, self.y
        n = max(1, int(duration * steps_per_s))
        t0 = time.monotonic()
        for i in range(1, n + 1):
            u = i / n
            e = u * u * (3 - 2 * u)
            self._warp(round(x0 + (x - x0) * e), round(y0 + (y - y0) * e))
            if n > 1:
                delay = t0 + duration * u - time.monotonic()
                if delay > 0:
                    time.sleep(delay)

    def _warp(self, x: int, y: int) -> None:
        self.x, self.y = x, y
        self._xtst.XTestFakeMotionEvent(self._dpy, -1, x, y, 0)
        self._x11.XFlush(self._dpy)

    def click(self, button: int = 1) -> None:
        for down in (1, 0):
            self._xtst.XTestFakeButtonEvent(self._dpy, button, down, 0)
            self._x11.XFlush(self._dpy)
            time.sleep(0.03)

    def wheel(self, notches: int) -> None:
        """Mouse-wheel notches at the pointer: positive scrolls down (button 5), negative up (4)."""
        button = 5 if notches > 0 else 4
        for _ in range(abs(notches)):
            self.click(button)

    def close(self) -> None:
        if self._dpy:
            self._x11.XCloseDisplay(self._dpy)
            self._dpy = None


# --------------------------------------------------------------------------- the recorder


class Recorder:
    """ffmpeg x11grab at `fps` into a lossless capture whose timestamps are the grabs' wall clock."""

    def __init__(self, display: Display, capture: Path, fps: int = FPS):
        self.display, self.capture, self.fps = display, Path(capture), fps
        self.proc: FfmpegProcess | None = None

    def __enter__(self) -> "Recorder":
        args = [find_ffmpeg(), "-hide_banner", "-loglevel", "error", "-nostdin", "-f", "x11grab",
                "-framerate", str(self.fps), "-video_size", f"{self.display.width}x{self.display.height}",
                "-draw_mouse", "1", "-thread_queue_size", "64", "-i", self.display.name, "-copyts",
                "-c:v", "libx264", "-preset", "ultrafast", "-qp", "0", "-pix_fmt", "yuv420p",
                "-f", "matroska", "-y", str(self.capture)]
        self.proc = FfmpegProcess(args, stdout=subprocess.DEVNULL, name="x11grab")
        deadline = time.monotonic() + 20
        while not (self.capture.exists() and self.capture.stat().st_size > 4096):
            if not self.proc.running():
                raise RecordingUnavailable(f"ffmpeg x11grab failed: {self.proc.error_summary()}")
            if time.monotonic() > deadline:
                raise RecordingUnavailable("ffmpeg x11grab wrote nothing within 20 s")
            time.sleep(0.1)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.stop(timeout=30)  # SIGTERM: ffmpeg flushes x264 and finishes the Matroska file


@dataclass(frozen=True)
class Grab:
    """The capture's frames: wall-clock time of each grab (seconds since the epoch)."""

    times: list[float]

    @classmethod
    def read(cls, capture: Path) -> "Grab":
        out = subprocess.run([find_ffmpeg(), "-hide_banner", "-loglevel", "error", "-nostdin", "-copyts",
                              "-i", str(capture), "-map", "0:v:0", "-c", "copy", "-f", "framecrc", "-"],
                             capture_output=True, timeout=120)
        tb = 1e-3  # Matroska: milliseconds
        for line in out.stdout.decode().splitlines():
            if line.startswith("#tb 0:"):
                num, den = line.split(":", 1)[1].strip().split("/")
                tb = int(num) / int(den)
        times = [int(line.split(",")[2]) * tb for line in out.stdout.decode().splitlines()
                 if line.startswith("0,")]
        if not times:
            raise MediaError(capture, f"no frames in the capture: {out.stderr.decode()[-300:]}")
        return cls(times)


def deliver(capture: Path, out: Path, start: float, duration: float, *, wav: Path | None, fps: int = FPS,
            crf: int = 28) -> float:
    """Encode `duration` s of the capture from wall time `start` into `out`; returns the wall time
    of the delivered file's frame 0 (the first grab at or after `start`).

    The delivered file is what cht's recorder writes: H.264 yuv420p, `-bf 0`, a keyframe every 2 s,
    fragmented MP4, constant `fps` (a late grab repeats the frame before it), AAC mono 48 kHz from
    `wav` with `-use_editlist 1` (without the edit list the AAC priming delays the video by a
    frame and duplicates its first picture).
    """
    grab = Grab.read(capture)
    first = next((t for t in grab.times if t >= start - 0.5 / fps), None)
    if first is None:
        raise MediaError(capture, f"the capture ends before the sample starts ({grab.times[-1]:.2f} < {start:.2f})")
    offset = first - grab.times[0]
    args = [find_ffmpeg(), "-hide_banner", "-loglevel", "error", "-nostdin", "-i", str(capture)]
    if wav is not None:
        args += ["-i", str(wav)]
    args += ["-map", "0:v:0", "-vf", f"trim=start={offset:.6f},setpts=PTS-STARTPTS", "-fps_mode", "cfr",
             "-r", str(fps), "-frames:v", str(int(round(duration * fps))), "-c:v", "libx264", "-preset", "veryfast",
             "-tune", "stillimage", "-crf", str(crf), "-bf", "0", "-g", str(2 * fps), "-pix_fmt", "yuv420p"]
    if wav is not None:
        args += ["-map", "1:a:0", "-t", f"{duration:.3f}", "-c:a", "aac", "-ac", "1", "-ar", "48000", "-b:a", "32k"]
    args += ["-movflags", "+frag_keyframe+empty_moov+default_base_moof", "-use_editlist", "1", "-f", "mp4", "-y",
             str(out)]
    out.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(args, capture_output=True, timeout=1800)
    if proc.returncode != 0:
        raise MediaError(out, f"ffmpeg failed to encode: {proc.stderr.decode()[-500:]}")
    return first
