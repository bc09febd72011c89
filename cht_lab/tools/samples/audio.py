"""Speech-like audio for the samples, and the WAV/ADTS files it is encoded from."""

from __future__ import annotations

import subprocess
import wave
from pathlib import Path
from typing import Any

import numpy as np

from cht_lab.ffmpeg import FfmpegProcess, MediaError, find_ffmpeg
from cht_lab.tools.samples.draw import AUDIO_BITRATE, AUDIO_RATE, _rng


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


def _ffmpeg_lib() -> Any:
    import ffmpeg as ffmpeg_lib  # ffmpeg-python (not cht_lab.ffmpeg)

    return ffmpeg_lib


def _encode_adts(path: Path, wav: Path) -> None:
    lib = _ffmpeg_lib()
    args = (lib.input(str(wav)).output(str(path), acodec="aac", ac=1, ar=AUDIO_RATE, f="adts",
                                       fflags="+bitexact", **{"b:a": AUDIO_BITRATE, "flags:a": "+bitexact"})
            .global_args("-hide_banner", "-loglevel", "error", "-nostdin").overwrite_output()
            .compile(cmd=find_ffmpeg()))
    with FfmpegProcess(args, stdout=subprocess.DEVNULL, name="samples:adts") as proc:
        if proc.wait(timeout=120) != 0:
            raise MediaError(path, f"ffmpeg failed to encode audio: {proc.error_summary()}")
