"""Offline audio extraction throughput vs. ffmpeg decoding the same audio to nothing.

One hour of speech-like audio (voiced bursts and pauses, AAC 48 kHz mono 48 kb/s) is generated
once into benchmarks/.cache/ (a 60 s lavfi clip, repeated: ADTS frames concatenate), as ADTS and
remuxed (stream copy) into an audio-only fragmented MP4. For each, interleaved in the same run
(benchmarks/_common.interleave), median of --repeat:

    decode-only  ffmpeg -i X -map 0:a:0 -af aresample=osr=16000:ochl=mono:osf=s16:first_pts=0 -f null -
                 (a plain decode to the extractor's rate and layout; fixed here, not taken from
                 the extractor, so a change to the extractor's command does not move the floor)
    cht_lab      extract_audio(session, index): decode, pause-aware chunking, WAV files, index rows
    per-frame    the same with the decode as it was before one-second frames (--no-before skips
                 it): what the regrouping is worth, measured side by side

ratio = throughput of cht_lab / throughput of decode-only (target >= 0.85), from the median wall
times. Also printed: the CPU-time ratio (decode-only's ffmpeg CPU / ffmpeg + our process CPU of
cht_lab), which does not depend on what else the machine is doing - on a small shared machine
the wall-clock ratio mostly measures the neighbours.

Usage: python benchmarks/audio.py [--minutes 60] [--repeat 3] [--markdown] [--no-before]
"""

from __future__ import annotations

import argparse
import logging
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from _common import CACHE, cpu_ratio, ffmpeg_null, interleave, load_note, median_cpu, median_wall

from cht_lab.audio import extractor  # _common put the repository on sys.path
from cht_lab.audio.offline import extract_audio
from cht_lab.ffmpeg import find_ffmpeg, live_processes
from cht_lab.index.session_index import SessionIndex

TARGET = 0.85
PIECE_SECONDS = 60
DECODE_ONLY_AF = "aresample=osr=16000:ochl=mono:osf=s16:first_pts=0"


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


def decode_only(src: Path) -> None:
    ffmpeg_null(["-i", str(src)], ["-map", "0:a:0", "-vn", "-sn", "-dn", "-af", DECODE_ONLY_AF])


def _per_frame_args(*args: Any, **kwargs: Any) -> list[str]:
    """decode_args as before the one-second frames (asetnsamples removed): the 'before' run."""
    out = _decode_args(*args, **kwargs)
    i = out.index("-af") + 1
    out[i] = ",".join(f for f in out[i].split(",") if not f.startswith("asetnsamples"))
    return out


_decode_args = extractor.decode_args


def extract(session: Path, per_frame: bool = False) -> tuple[int, float]:
    """extract_audio on `session`, as Session.extract_audio runs it: (chunks, seconds chunked)."""
    extractor.decode_args = _per_frame_args if per_frame else _decode_args
    try:
        with SessionIndex(session, writer=True) as idx:
            df = extract_audio(session, idx)
    finally:
        extractor.decode_args = _decode_args
    return len(df), float(df["duration"].sum())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=int, default=60)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--markdown", action="store_true", help="print only the README table rows")
    ap.add_argument("--no-before", action="store_true", help="skip the per-frame decode (the 'before' run)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    rows = []
    for kind, src in inputs(args.minutes).items():
        session = session_for(src, kind)
        candidates = {"decode-only": lambda s=src: decode_only(s), "cht_lab": lambda s=session: extract(s)}
        if not args.no_before:
            candidates["per-frame"] = lambda s=session: extract(s, per_frame=True)
        runs = interleave(candidates, args.repeat)
        audio_s = args.minutes * 60.0
        ref = runs["decode-only"]
        chunks, seconds = runs["cht_lab"][-1].result
        row = {"kind": kind, "audio_s": audio_s, "chunks": chunks, "seconds": seconds,
               "decode": median_wall(ref), "ours": median_wall(runs["cht_lab"]),
               "ratio": median_wall(ref) / median_wall(runs["cht_lab"]),
               "cpu_decode": median_cpu(ref), "cpu_ours": median_cpu(runs["cht_lab"]),
               "cpu_ratio": cpu_ratio(runs["cht_lab"], ref), "walls": {n: [round(r.wall, 2) for r in v]
                                                                        for n, v in runs.items()}}
        if "per-frame" in runs:
            row["before_ratio"] = median_wall(ref) / median_wall(runs["per-frame"])
            row["before_cpu_ratio"] = cpu_ratio(runs["per-frame"], ref)
        rows.append(row)
        if not args.markdown:
            print(f"{kind}: {audio_s / 60:.0f} min of audio -> {chunks} chunks ({seconds:.1f} s); "
                  f"decode-only {row['decode']:.2f} s ({audio_s / row['decode']:.0f}x real time, CPU "
                  f"{row['cpu_decode']:.2f} s), cht_lab {row['ours']:.2f} s ({audio_s / row['ours']:.0f}x real time, "
                  f"CPU {row['cpu_ours']:.2f} s): ratio {row['ratio']:.2f} (target >= {TARGET}), CPU ratio "
                  f"{row['cpu_ratio']:.2f}"
                  + (f"; per-frame decode (before): ratio {row['before_ratio']:.2f}, CPU ratio "
                     f"{row['before_cpu_ratio']:.2f}" if "before_ratio" in row else "")
                  + f"; runs (wall): {row['walls']}", flush=True)
    assert not live_processes(), "ffmpeg children left running"
    for row in rows:  # the chunks (~115 MB of WAV per hour) are output, not cache
        shutil.rmtree(CACHE / f"audio_bench_{row['kind']}", ignore_errors=True)
    print(f"\n{load_note()} at the end")
    print("| audio extraction (offline, 16 kHz mono) | audio | decode-only ffmpeg | cht_lab (chunks + WAV + index) "
          f"| ratio, median (target ≥ {TARGET}) | CPU-time ratio | before (per-frame decode): ratio / CPU |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        before = (f"{r['before_ratio']:.2f} / {r['before_cpu_ratio']:.2f}" if "before_ratio" in r else "-")
        print(f"| {r['kind']} AAC 48 kHz, speech-like | {r['audio_s'] / 60:.0f} min | {r['decode']:.2f} s "
              f"({r['audio_s'] / r['decode']:.0f}× rt) | {r['ours']:.2f} s ({r['audio_s'] / r['ours']:.0f}× rt, "
              f"{r['chunks']} chunks) | {r['ratio']:.2f} | {r['cpu_ratio']:.2f} | {before} |")
    return 0 if all(r["ratio"] >= TARGET for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
