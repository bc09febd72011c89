"""Pause-aware chunking of a PCM stream, plus chunk statistics and WAV output (numpy + stdlib only).

Why in Python and not with ffmpeg `-ss/-t`: cutting a decoded stream by sample count is the only
way to make chunks tile the timeline exactly (no gap, no overlap, no codec-frame rounding), and
the cut can be placed where nobody speaks. The `Chunker` buffers samples until `max_chunk` seconds
are pending, then cuts at the quietest point between `min_chunk` and `max_chunk`:

* a coarse pass finds the quietest ~200 ms stretch (so a real pause beats the 40 ms closure of
  a plosive inside a word), a fine pass finds the quietest ~40 ms point inside it;
* ties (digital silence) resolve to the middle of the longest equally-quiet run, i.e. the middle
  of the pause, not its first sample.

Every sample fed comes out in exactly one chunk, in order; `flush()` returns the partial tail.
"""

from __future__ import annotations

import math
import os
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from cht_lab.atomic import write_atomic

__all__ = ["Chunker", "EnergyVad", "ChunkStats", "find_cut", "write_wav", "read_wav", "DBFS_FLOOR"]

DBFS_FLOOR = -120.0  # level reported for digital silence (instead of -inf)
_FULL_SCALE = 32768.0


def _hop_energies(mono: np.ndarray, hop: int) -> np.ndarray:
    """Mean square of each complete `hop`-sample block (float64)."""
    n = len(mono) // hop
    if n == 0:
        return np.zeros(0)
    blocks = mono[: n * hop].reshape(n, hop).astype(np.float64)
    return np.einsum("ij,ij->i", blocks, blocks) / hop


def _centered_mean(e: np.ndarray, half: int) -> np.ndarray:
    """m[k] = mean(e[k-half : k+half]) clipped to the array: the energy around hop boundary k.

    Index k runs over hop boundaries 0..len(e) (one more than blocks).
    """
    c = np.concatenate(([0.0], np.cumsum(e)))
    k = np.arange(len(e) + 1)
    lo = np.clip(k - half, 0, len(e))
    hi = np.clip(k + half, 0, len(e))
    width = np.maximum(hi - lo, 1)
    return (c[hi] - c[lo]) / width


def _quietest(values: np.ndarray) -> int:
    """Index of the minimum; among (near-)equal minima, the middle of the longest run of them."""
    m = float(values.min())
    near = values <= m + max(0.05 * m, 1e-6)
    # runs of True in `near`
    padded = np.concatenate(([False], near, [False]))
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    starts, ends = edges[0::2], edges[1::2]
    longest = int(np.argmax(ends - starts))
    return int((starts[longest] + ends[longest] - 1) // 2)


def find_cut(mono: np.ndarray, sample_rate: int, lo: int, hi: int, *,
             window: float = 0.04, pause_window: float = 0.2, hop_seconds: float = 0.01) -> int:
    """The sample index in [lo, hi] where the signal is quietest (see module docstring).

    `mono` must hold at least `hi` samples; cut points lie on `hop_seconds` boundaries when the
    window allows, else `hi`.
    """
    if not 0 <= lo <= hi <= len(mono):
        raise ValueError(f"cut window [{lo}, {hi}] outside 0..{len(mono)}")
    hop = max(1, int(round(sample_rate * hop_seconds)))
    k_lo, k_hi = -(-lo // hop), hi // hop
    if k_lo > k_hi:
        return hi
    e = _hop_energies(mono[: min(len(mono), (k_hi + 64) * hop)], hop)
    if len(e) < k_hi:
        return hi
    coarse = _centered_mean(e, max(1, int(round(pause_window / hop_seconds / 2))))[k_lo: k_hi + 1]
    kc = k_lo + _quietest(coarse)
    half_fine = max(1, int(round(window / hop_seconds / 2)))
    span = max(1, int(round(pause_window / hop_seconds / 2)))
    a, b = max(k_lo, kc - span), min(k_hi, kc + span)
    fine = _centered_mean(e, half_fine)[a: b + 1]
    return (a + _quietest(fine)) * hop


class Chunker:
    """Cut a stream of int16 PCM frames into pause-aware chunks that tile it exactly.

    `feed(pcm)` takes an array shaped (n, channels) and returns the chunks completed by it;
    `flush()` returns the rest (None when empty). `emitted` counts samples (per channel) already
    returned, so a chunk's first sample is at `emitted` before it was returned.
    """

    def __init__(self, sample_rate: int = 16000, channels: int = 1, min_chunk: float = 5.0,
                 max_chunk: float = 30.0, *, window: float = 0.04, pause_window: float = 0.2,
                 skip: int = 0):
        if sample_rate <= 0 or channels <= 0:
            raise ValueError(f"sample_rate and channels must be positive (got {sample_rate}, {channels})")
        if not (min_chunk > 0 and max_chunk >= min_chunk and math.isfinite(max_chunk)):
            raise ValueError(f"need 0 < min_chunk <= max_chunk (got min_chunk={min_chunk}, max_chunk={max_chunk})")
        self.sample_rate = int(sample_rate)
        self.channels = int(channels)
        self.min_samples = max(1, int(round(min_chunk * sample_rate)))
        self.max_samples = max(self.min_samples, int(round(max_chunk * sample_rate)))
        self.window = window
        self.pause_window = pause_window
        self._parts: list[np.ndarray] = []
        self._buffered = 0
        self._skip = int(skip)  # samples to drop first (resuming after chunks already written)
        self.emitted = int(skip)
        self.fed = 0

    @property
    def buffered(self) -> int:
        return self._buffered

    def feed(self, pcm: np.ndarray) -> list[np.ndarray]:
        pcm = np.asarray(pcm, dtype=np.int16).reshape(-1, self.channels)
        self.fed += len(pcm)
        if self._skip:
            drop = min(self._skip, len(pcm))
            pcm = pcm[drop:]
            self._skip -= drop
        if len(pcm) == 0:
            return []
        self._parts.append(pcm)
        self._buffered += len(pcm)
        out: list[np.ndarray] = []
        while self._buffered >= self.max_samples:
            buf = self._parts[0] if len(self._parts) == 1 else np.concatenate(self._parts)
            mono = buf[:, 0] if self.channels == 1 else buf.mean(axis=1)
            cut = find_cut(mono, self.sample_rate, self.min_samples, self.max_samples,
                           window=self.window, pause_window=self.pause_window)
            cut = min(max(cut, 1), len(buf))
            out.append(buf[:cut])
            rest = buf[cut:]
            self._parts = [rest] if len(rest) else []
            self._buffered = len(rest)
            self.emitted += cut
        return out

    def flush(self) -> np.ndarray | None:
        """The partial last chunk (end of input or stop), or None when nothing is pending."""
        if not self._buffered:
            return None
        buf = self._parts[0] if len(self._parts) == 1 else np.concatenate(self._parts)
        self._parts, self._buffered = [], 0
        self.emitted += len(buf)
        return buf


@dataclass(frozen=True)
class ChunkStats:
    rms_dbfs: float
    peak_dbfs: float
    speech_ratio: float


def _dbfs(value: float) -> float:
    return DBFS_FLOOR if value <= 0 else max(DBFS_FLOOR, 20.0 * math.log10(value / _FULL_SCALE))


class EnergyVad:
    """A simple energy voice-activity measure with an adaptive noise floor.

    The fraction of 30 ms frames louder than `noise floor + margin_db`, the threshold kept between
    `min_threshold_db` (faint hiss never counts) and `max_threshold_db` (loud sound always counts).
    The floor is the 10th percentile of frame levels, carried from chunk to chunk: it drops at
    once and rises by at most `rise_db` per chunk, so one chunk of continuous speech does not
    become the floor. Good enough to filter silent chunks; not a speech detector.
    """

    def __init__(self, sample_rate: int, *, frame: float = 0.03, margin_db: float = 12.0,
                 min_threshold_db: float = -55.0, max_threshold_db: float = -30.0, rise_db: float = 6.0):
        self.frame = max(1, int(round(sample_rate * frame)))
        self.margin_db = margin_db
        self.min_threshold_db = min_threshold_db
        self.max_threshold_db = max_threshold_db
        self.rise_db = rise_db
        self.floor_db: float | None = None

    def stats(self, pcm: np.ndarray) -> ChunkStats:
        x = np.asarray(pcm)
        if x.size == 0:
            return ChunkStats(DBFS_FLOOR, DBFS_FLOOR, 0.0)
        flat = x.reshape(-1)
        peak = float(max(int(flat.max()), -int(flat.min())))
        mono = (x if x.ndim == 1 else x.mean(axis=1) if x.shape[1] > 1 else x[:, 0]).astype(np.float32)
        n = len(mono) // self.frame
        frames = mono[: n * self.frame].reshape(n, self.frame) if n else mono.reshape(1, -1)
        energy = np.einsum("ij,ij->i", frames, frames, dtype=np.float64) / frames.shape[1]
        tail = mono[n * self.frame:] if n else mono[:0]
        if x.ndim > 1 and x.shape[1] > 1:
            f = flat.astype(np.float32)
            mean_square = float(np.dot(f, f)) / f.size
        else:
            mean_square = (float(energy.sum()) * frames.shape[1] + float(np.dot(tail, tail))) / len(mono)
        levels = 10.0 * np.log10(np.maximum(energy, 1e-12) / _FULL_SCALE ** 2)
        p10 = float(np.percentile(levels, 10))
        self.floor_db = p10 if self.floor_db is None else min(p10, self.floor_db + self.rise_db)
        threshold = min(max(self.floor_db + self.margin_db, self.min_threshold_db), self.max_threshold_db)
        ratio = float(np.mean(levels > threshold))
        return ChunkStats(_dbfs(math.sqrt(mean_square)), _dbfs(peak), ratio)


def write_wav(path: str | os.PathLike[str], pcm: np.ndarray, sample_rate: int, channels: int, *,
              durable: bool = True, sync_dir: bool | None = None) -> Path:
    """Write 16-bit PCM as a WAV file (stdlib `wave`), atomically (`cht_lab.atomic.write_atomic`).

    A reader (or a crash) never sees half a chunk: the file either exists complete or not at all.
    `sync_dir=False` leaves the directory fsync to the caller (one for a batch of files).
    """
    data = np.ascontiguousarray(np.asarray(pcm, dtype="<i2")).data.cast("B")

    def write(fh: BinaryIO) -> None:
        with wave.open(fh, "wb") as w:  # does not close fh: write_atomic fsyncs it next
            w.setnchannels(channels)
            w.setsampwidth(2)
            w.setframerate(sample_rate)
            w.writeframes(data)

    return write_atomic(path, write, durable=durable, sync_dir=durable if sync_dir is None else sync_dir)


def read_wav(path: str | os.PathLike[str]) -> tuple[np.ndarray, int, int]:
    """(int16 samples shaped (n, channels), sample_rate, channels) of a 16-bit WAV file."""
    with wave.open(str(path), "rb") as w:
        ch, sr, width = w.getnchannels(), w.getframerate(), w.getsampwidth()
        if width != 2:
            raise ValueError(f"{path}: {8 * width}-bit WAV, expected 16-bit")
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    return data.reshape(-1, ch), sr, ch
