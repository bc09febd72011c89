"""Offline audio extraction throughput vs. ffmpeg decoding the same audio to nothing.

One hour of speech-like audio (voiced bursts and pauses, AAC 48 kHz mono 48 kb/s) is generated
once into benchmarks/.cache/ (a 60 s lavfi clip, repeated: ADTS frames concatenate), as ADTS and
remuxed (stream copy) into an audio-only fragmented MP4. For each, in the same run and
interleaved:

    decode-only  ffmpeg -i X -map 0:a:0 -af <the extractor's aresample> -f null -
    cht_lab      extract_audio(session, index): decode, pause-aware chunking, WAV files, index rows

ratio = throughput of cht_lab / throughput of decode-only (target >= 0.8), wall clock, best of
--repeat interleaved runs. Also printed: the CPU-time ratio (ffmpeg CPU of decode-only / ffmpeg +
our process CPU of cht_lab), which does not depend on what else the machine is doing — on a
small shared machine the wall-clock ratio mostly measures the neighbours.

Usage: python benchmarks/audio.py [--minutes 60] [--repeat 3] [--markdown]
"""

from __future__ import annotations

import argparse
import logging
import resource
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cht_lab.audio.extractor import decode_args, extract_audio  # noqa: E402
from cht_lab.ffmpeg import find_ffmpeg, live_processes  # noqa: E402
from cht_lab.index.session_index import SessionIndex  # noqa: E402

CACHE = REPO / "benchmarks" / ".cache"
TARGET = 0.8
PIECE_SECONDS = 60


def _ffmpeg(*args: str) -> None:
    subprocess.run([find_ffmpeg(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y", *args],
                   check=True, timeout=600)


def _speech_expr(seconds: int) -> str:
    """Voiced bursts of 0.3-1.4 s with 0.25-0.6 s pauses (a fixed pseudo-random pattern)."""
    import random

    rng = random.Random(42)
    t, gates = 0.3, []
    while t < seconds - 0.5:
        b = rng.uniform(0.3, 1.4)
        gates.append(f"between(t,{t:.3f},{min(t + b, seconds):.3f})")
        t += b + rng.uniform(0.25, 0.6)
    voice = "(0.4*sin(2*PI*150*t)+0.2*sin(2*PI*300*t)+0.1*sin(2*PI*450*t))*(0.6+0.4*sin(2*PI*5*t))"
    return f"{voice}*({'+'.join(gates)})+0.002*(2*random(0)-1)"


def inputs(minutes: int) -> dict[str, Path]:
    """The hour of audio as ADTS and as fMP4 (generated once, cached)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    piece = CACHE / f"speech_{PIECE_SECONDS}s.aac"
    if not piece.exists():
        tmp = piece.with_suffix(".tmp.aac")
        _ffmpeg("-f", "lavfi", "-i", f"aevalsrc='{_speech_expr(PIECE_SECONDS)}':s=48000:d={PIECE_SECONDS}",
                "-c:a", "aac", "-b:a", "48k", "-f", "adts", str(tmp))
        tmp.replace(piece)
    adts = CACHE / f"speech_{minutes}min.aac"
    if not adts.exists():
        data = piece.read_bytes()
        tmp = adts.with_suffix(".tmp")
        tmp.write_bytes(data * minutes)
        tmp.replace(adts)
    mp4 = CACHE / f"speech_{minutes}min.mp4"
    if not mp4.exists():
        tmp = mp4.with_suffix(".tmp.mp4")
        _ffmpeg("-i", str(adts), "-c", "copy", "-bsf:a", "aac_adtstoasc",
                "-movflags", "+frag_keyframe+empty_moov+default_base_moof", "-frag_duration", "1000000", str(tmp))
        tmp.replace(mp4)
    return {"ADTS": adts, "fMP4": mp4}


def session_for(src: Path, kind: str) -> Path:
    """A session directory whose only audio is `src` (hard link or copy, named as cht names it)."""
    session = CACHE / f"audio_bench_{kind}" / "20260301_090000"
    stream = session / "stream"
    stream.mkdir(parents=True, exist_ok=True)
    name = "audio.aac" if src.suffix == ".aac" else "20260301_090000.mp4"
    dst = stream / name
    if not dst.exists() or dst.stat().st_size != src.stat().st_size:
        dst.unlink(missing_ok=True)
        try:
            dst.hardlink_to(src)
        except OSError:
            shutil.copy(src, dst)
    return session


def _cpu() -> tuple[float, float]:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime


def time_decode_only(src: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of ffmpeg decoding `src` as the extractor does, to nothing."""
    args = decode_args(src)
    args = args[: args.index("-f", args.index("-af"))] + ["-f", "null", "-"]
    c0 = _cpu()
    t = time.perf_counter()
    subprocess.run([find_ffmpeg(), *args], check=True, timeout=600, stdin=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t
    c1 = _cpu()
    return wall, c1[1] - c0[1]


def time_extract(session: Path) -> tuple[float, float, int, float]:
    """(wall, CPU of ffmpeg + this process, chunks, seconds chunked) of extract_audio."""
    with SessionIndex(session, writer=True) as idx:
        c0 = _cpu()
        t = time.perf_counter()
        df = extract_audio(session, idx)
        elapsed = time.perf_counter() - t
        c1 = _cpu()
    return elapsed, (c1[0] - c0[0]) + (c1[1] - c0[1]), len(df), float(df["duration"].sum())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=int, default=60)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--markdown", action="store_true", help="print only the README table rows")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    rows = []
    for kind, src in inputs(args.minutes).items():
        session = session_for(src, kind)
        decode, ours, chunks, seconds = [], [], 0, 0.0
        for _ in range(args.repeat):
            decode.append(time_decode_only(src))
            wall, cpu, chunks, seconds = time_extract(session)
            ours.append((wall, cpu))
        audio_s = args.minutes * 60.0
        best_dec, best_ours = min(w for w, _ in decode), min(w for w, _ in ours)
        cpu_dec, cpu_ours = min(c for _, c in decode), min(c for _, c in ours)
        ratio, cpu_ratio = best_dec / best_ours, cpu_dec / cpu_ours
        median_ratio = statistics.median(w for w, _ in decode) / statistics.median(w for w, _ in ours)
        rows.append((kind, audio_s, best_dec, best_ours, ratio, chunks, cpu_ratio, median_ratio))
        if not args.markdown:
            print(f"{kind}: {audio_s / 60:.0f} min of audio -> {chunks} chunks ({seconds:.1f} s); "
                  f"decode-only {best_dec:.2f} s ({audio_s / best_dec:.0f}x real time), "
                  f"cht_lab {best_ours:.2f} s ({audio_s / best_ours:.0f}x real time); "
                  f"ratio {ratio:.2f} (target >= {TARGET}), median ratio {median_ratio:.2f}; "
                  f"CPU {cpu_dec:.2f} s vs {cpu_ours:.2f} s, "
                  f"CPU ratio {cpu_ratio:.2f}; runs (wall): decode {[round(w, 2) for w, _ in decode]}, "
                  f"ours {[round(w, 2) for w, _ in ours]}")
    assert not live_processes(), "ffmpeg children left running"
    for kind in rows:  # the chunks (~115 MB of WAV per hour) are output, not cache
        shutil.rmtree(CACHE / f"audio_bench_{kind[0]}", ignore_errors=True)
    print(f"\n{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end")
    print("| audio extraction (offline, 16 kHz mono) | audio | decode-only ffmpeg | cht_lab (chunks + WAV + index) "
          "| ratio, best (target ≥ 0.8) | ratio, median | CPU-time ratio |")
    print("|---|---|---|---|---|---|---|")
    for kind, audio_s, dec, ours, ratio, chunks, cpu_ratio, median_ratio in rows:
        print(f"| {kind} AAC 48 kHz, speech-like | {audio_s / 60:.0f} min | {dec:.2f} s ({audio_s / dec:.0f}× rt) "
              f"| {ours:.2f} s ({audio_s / ours:.0f}× rt, {chunks} chunks) | {ratio:.2f} | {median_ratio:.2f} "
              f"| {cpu_ratio:.2f} |")
    return 0 if all(r[4] >= TARGET for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
