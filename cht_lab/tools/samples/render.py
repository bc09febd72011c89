"""Encoding: a sample spec or a benchmark clip rendered frame by frame and piped through ffmpeg.

Frames go out the way cht's recorder writes them: H.264 (libx264, no B-frames, yuv420p, a
keyframe every 2 s) in a fragmented MP4 with AAC audio; x264 runs single-threaded for the
bundled samples so they regenerate identically.
"""

from __future__ import annotations

import logging
import math
import os
import subprocess
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from cht_lab.ffmpeg import FfmpegProcess, MediaError, find_ffmpeg
from cht_lab.layout import AUDIO_AAC, LABELS_CSV, STREAM_DIR
from cht_lab.tools.samples.audio import _encode_adts, _ffmpeg_lib, _write_wav, speech_like_audio
from cht_lab.tools.samples.coding import CodingScreen
from cht_lab.tools.samples.desktop import DesktopScreen
from cht_lab.tools.samples.editor import EditorScreen
from cht_lab.tools.samples.palette import PaletteScreen
from cht_lab.tools.samples.transitions import TransitionsScreen
from cht_lab.tools.samples.draw import (
    AUDIO_BITRATE, AUDIO_RATE, EVENT_KINDS, X264_PARAMS, Event, SampleError, SampleSpec, _ev, _rng, _Screen,
)
from cht_lab.tools.samples.slides import SlidesScreen

log = logging.getLogger(__name__)

_SCREENS: dict[str, type[_Screen]] = {"slides": SlidesScreen, "desktop": DesktopScreen, "coding": CodingScreen,
                                      "editor": EditorScreen, "transitions": TransitionsScreen,
                                      "colour": PaletteScreen}


def _make_screen(spec: SampleSpec) -> _Screen:
    cls = _SCREENS[spec.screen]
    kw: dict[str, Any] = {"deck": spec.title} if cls is SlidesScreen and spec.title else {}
    kw.update(dict(spec.options))
    return cls(spec.width, spec.height, spec.fps, spec.frame_count, spec.start, spec.seed, spec.active_events(),
               spec.first_scene, **kw)


def _encode(path: Path, screen: _Screen, frames: range, wav: Path | None, *, crf: int, preset: str = "medium",
            threads: int = 1, progress: Any = None, gop: float = 2.0, x264: str = X264_PARAMS) -> None:
    """Pipe yuv420p frames (and optionally a WAV) through ffmpeg into a fragmented MP4 like cht's recorder."""
    lib = _ffmpeg_lib()
    fps = screen.fps
    video = lib.input("pipe:0", f="rawvideo", pix_fmt="yuv420p", s=f"{screen.width}x{screen.height}",
                      framerate=fps)
    streams = [video.video]
    out_kw: dict[str, Any] = {
        "vcodec": "libx264", "preset": preset, "crf": crf, "bf": 0, "g": int(round(gop * fps)), "pix_fmt": "yuv420p",
        "threads": threads, "movflags": "+frag_keyframe+empty_moov+default_base_moof", "f": "mp4",
        "x264-params": x264, "use_editlist": 1, "fflags": "+bitexact", "flags:v": "+bitexact",
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
    wav = dest / ".audio.wav" if spec.audio else None
    if wav is not None:
        _write_wav(wav, speech_like_audio(spec.duration, AUDIO_RATE, spec.seed), AUDIO_RATE)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=sum(int(round(s.duration * spec.fps)) for s in spec.segment_list()),
                   desc=spec.name, unit="frame", leave=False)
    try:
        for seg, fname in zip(spec.segment_list(), spec.segment_files()):
            first = int(round(seg.offset * spec.fps))
            frames = range(first, first + int(round(seg.duration * spec.fps)))
            _encode(stream / fname, screen, frames, None if spec.audio_file else wav, crf=spec.crf, progress=bar,
                    gop=spec.gop, x264=spec.x264)
        if spec.audio_file and wav is not None:
            _encode_adts(stream / AUDIO_AAC, wav)
    finally:
        if bar is not None:
            bar.close()
        if wav is not None:
            wav.unlink(missing_ok=True)
    spec.labels().to_csv(dest / LABELS_CSV, index=False)
    log.info("sample %s written to %s", spec.name, dest)
    return dest


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


# cht_lab.cli and several tests import the bundled samples' names from this module, where they lived
# before; bundled.py imports this module, so they are looked up there on first use.
_MOVED_TO_BUNDLED = ("ENV_VAR", "SAMPLES", "generate", "sample_dir", "samples_root")


def __getattr__(name: str) -> Any:
    if name in _MOVED_TO_BUNDLED:
        from cht_lab.tools.samples import bundled

        return getattr(bundled, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
