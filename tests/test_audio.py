"""Audio extractor: chunks tile the timeline to the sample, cut in pauses, follow growing files.

Real ffmpeg throughout: inputs are made with lavfi (`aevalsrc` speech-like bursts with known
pauses), references are plain one-shot ffmpeg decodes (`-ar 16000 -ac 1 -f s16le`).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cht_lab.audio.extractor import AudioExtractor, AudioSegment, find_audio_sources
from cht_lab.audio.offline import extract_audio
from cht_lab.audio.chunking import Chunker, EnergyVad, find_cut, read_wav
from cht_lab.ffmpeg import FfmpegProcess, find_ffmpeg, live_processes
from cht_lab.index.session_index import SessionIndex
from cht_lab.status import WorkerState
from conftest import wait_for

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "data" / "samples"
SR = 16000
FMP4 = ["-movflags", "+frag_keyframe+empty_moov+default_base_moof"]


# --------------------------------------------------------------------------- inputs


def speech_pattern(seconds: float, seed: int = 1) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    """Bursts (0.3-1.4 s) separated by pauses (0.25-0.6 s): (bursts, pauses) in seconds."""
    rng = np.random.default_rng(seed)
    t, bursts, pauses = 0.3, [], [(0.0, 0.3)]
    while t < seconds - 0.5:
        b = float(rng.uniform(0.3, 1.4))
        p = float(rng.uniform(0.25, 0.6))
        bursts.append((round(t, 3), round(min(t + b, seconds), 3)))
        t = round(min(t + b, seconds), 3)
        pauses.append((t, round(min(t + p, seconds), 3)))
        t = round(t + p, 3)
    return bursts, pauses


def speech_expr(bursts: list[tuple[float, float]], freq: float = 150.0) -> str:
    gate = "+".join(f"between(t,{a},{b})" for a, b in bursts) or "0"
    voice = (f"(0.4*sin(2*PI*{freq}*t)+0.2*sin(2*PI*{2 * freq}*t)+0.1*sin(2*PI*{3 * freq}*t))"
             f"*(0.6+0.4*sin(2*PI*5*t))")
    return f"{voice}*({gate})+0.002*(2*random(0)-1)"


def ffmpeg_run(args: list[str]) -> None:
    subprocess.run([find_ffmpeg(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y", *args],
                   check=True, timeout=60)


def audio_input(seconds: float, bursts: list[tuple[float, float]] | None = None, freq: float = 150.0) -> list[str]:
    bursts = bursts if bursts is not None else speech_pattern(seconds)[0]
    return ["-f", "lavfi", "-i", f"aevalsrc='{speech_expr(bursts, freq)}':s=48000:d={seconds}"]


def make_adts(path: Path, seconds: float, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ffmpeg_run([*audio_input(seconds, **kw), "-c:a", "aac", "-b:a", "48k", "-f", "adts", str(path)])
    return path


def make_fmp4(path: Path, seconds: float, *, audio: bool = True, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    args = ["-f", "lavfi", "-i", f"testsrc2=s=96x64:r=10:d={seconds}"]
    if audio:
        args += audio_input(seconds, **kw) + ["-c:a", "aac", "-b:a", "48k"]
    args += ["-c:v", "libx264", "-preset", "ultrafast", "-g", "10", "-pix_fmt", "yuv420p", *FMP4, str(path)]
    ffmpeg_run(args)
    return path


def reference_pcm(path: Path) -> np.ndarray:
    """A plain full decode, independent of cht_lab's command line."""
    out = subprocess.run([find_ffmpeg(), "-hide_banner", "-loglevel", "error", "-nostdin", "-i", str(path),
                          "-map", "0:a:0", "-ar", str(SR), "-ac", "1", "-f", "s16le", "-"],
                         check=True, capture_output=True, timeout=60).stdout
    return np.frombuffer(out, dtype="<i2")


def chunk_pcm(session: Path, rows: pd.DataFrame) -> np.ndarray:
    parts = [read_wav(session / p)[0][:, 0] for p in rows.sort_values("start")["path"]]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int16)


def assert_tiles(rows: pd.DataFrame, offset: float = 0.0, first_sample: int = 0) -> int:
    """Chunks of one segment: sample counts add up with no gap/overlap; returns the total samples."""
    rows = rows.sort_values("local_start")
    pos = first_sample
    for r in rows.itertuples(index=False):
        assert round(r.local_start * r.sample_rate) == pos, f"{r.id} starts at {r.local_start} s, expected sample {pos}"
        assert r.start == pytest.approx(offset + pos / r.sample_rate, abs=1e-9)
        assert r.duration == pytest.approx(r.samples / r.sample_rate, abs=1e-12)
        pos += int(r.samples)
    starts, ends = rows["start"].to_numpy(), (rows["start"] + rows["duration"]).to_numpy()
    np.testing.assert_allclose(starts[1:], ends[:-1], rtol=0, atol=1e-9)
    return pos


@pytest.fixture
def session(tmp_path: Path) -> Path:
    d = tmp_path / "20260301_100000"
    (d / "stream").mkdir(parents=True)
    return d


# --------------------------------------------------------------------------- the chunker alone


def test_chunker_tiles_any_feed_and_cuts_in_the_middle_of_a_pause():
    rng = np.random.default_rng(3)
    sr = 8000
    t = np.arange(sr * 26) / sr
    loud = (8000 * np.sin(2 * np.pi * 200 * t)).astype(np.int16)
    pauses = [(3.0, 3.4), (7.2, 8.0), (12.5, 12.9), (16.0, 16.4), (20.5, 21.0)]  # one in every window
    for a, b in pauses:
        loud[int(a * sr): int(b * sr)] = 0
    ch = Chunker(sr, 1, min_chunk=2.0, max_chunk=6.0)
    out, pos = [], 0
    while pos < len(loud):
        n = int(rng.integers(1, 5000))
        out += ch.feed(loud[pos: pos + n])
        pos += n
    out.append(ch.flush())
    assert ch.flush() is None
    assert np.array_equal(np.concatenate(out)[:, 0], loud)
    cuts = np.cumsum([len(c) for c in out])[:-1] / sr
    for c in cuts:
        pause = next((p for p in pauses if p[0] <= c <= p[1]), None)
        assert pause is not None, f"cut at {c:.3f} s is not in a pause"
        assert abs(c - (pause[0] + pause[1]) / 2) < 0.06, f"cut at {c:.3f} s is not near the middle of {pause}"
    assert all(2.0 * sr <= len(c) <= 6.0 * sr for c in out[:-1])


def test_cut_without_pause_stays_in_window_and_bad_parameters_are_refused():
    noise = np.random.default_rng(0).normal(0, 3000, 16000 * 4).astype(np.int16)
    cut = find_cut(noise, 16000, 16000, 48000)
    assert 16000 <= cut <= 48000
    with pytest.raises(ValueError, match="min_chunk"):
        Chunker(16000, 1, min_chunk=10, max_chunk=5)
    with pytest.raises(ValueError, match="min_chunk"):
        AudioExtractor("x", None, min_chunk=0)


def test_energy_vad_separates_silence_from_speech():
    vad = EnergyVad(16000)
    t = np.arange(16000 * 4) / 16000
    hiss = np.random.default_rng(1).normal(0, 20, len(t))
    silent = vad.stats(hiss.astype(np.int16))
    speech = hiss + 6000 * np.sin(2 * np.pi * 180 * t) * (np.sin(2 * np.pi * 0.5 * t) > 0)
    talk = vad.stats(speech.astype(np.int16))
    assert silent.speech_ratio < 0.05 and silent.rms_dbfs < -50
    assert 0.35 < talk.speech_ratio < 0.65 and talk.rms_dbfs > -30 and talk.peak_dbfs > talk.rms_dbfs
    assert vad.stats(np.zeros(16000, np.int16)).rms_dbfs == -120.0


# --------------------------------------------------------------------------- finished files


@pytest.mark.parametrize("kind", ["fmp4", "adts"])
def test_chunks_tile_to_the_sample_and_equal_a_full_decode(session: Path, kind: str):
    src = (make_fmp4(session / "stream" / "20260301_100000.mp4", 23.0) if kind == "fmp4"
           else make_adts(session / "stream" / "audio.aac", 23.0))
    seen = []
    with SessionIndex(session, writer=True) as idx:
        df = extract_audio(session, idx, min_chunk=3.0, max_chunk=7.0, on_chunk=seen.append)
    assert len(df) >= 4
    assert (df["source"] == src.relative_to(session).as_posix()).all()
    total = assert_tiles(df)
    ref = reference_pcm(src)
    got = chunk_pcm(session, df)
    assert total == len(ref) == len(got)
    assert np.array_equal(got, ref), "chunk samples differ from a full decode"
    assert (df["duration"].iloc[:-1] >= 3.0).all() and (df["duration"] <= 7.0 + 1e-9).all()
    # durable: a fresh reader sees the same rows; WAV headers say what the row says
    again = SessionIndex(session).audio().sort_values("start").reset_index(drop=True)
    assert again["id"].tolist() == df.sort_values("start")["id"].tolist()
    pcm, sr, ch = read_wav(session / df["path"].iloc[0])
    assert (sr, ch, len(pcm)) == (SR, 1, int(df["samples"].iloc[0]))
    # callbacks: absolute paths, global starts, in order
    assert [c.id for c in seen] == df.sort_values("start")["id"].tolist()
    assert all(Path(c.path).is_absolute() and Path(c.path).is_file() for c in seen)
    assert seen[1]["start"] == pytest.approx(df.sort_values("start")["start"].iloc[1])
    assert not list((session / "audio").glob(".*tmp"))


def test_cut_points_fall_inside_pauses(session: Path):
    bursts, pauses = speech_pattern(40.0, seed=7)
    make_adts(session / "stream" / "audio.aac", 40.0, bursts=bursts)
    with SessionIndex(session, writer=True) as idx:
        df = extract_audio(session, idx, min_chunk=4.0, max_chunk=9.0).sort_values("start")
    cuts = df["start"].iloc[1:].to_numpy()
    assert len(cuts) >= 4
    for c in cuts:
        assert any(a <= c <= b for a, b in pauses), f"cut at {c:.3f} s splits a burst"
    # quiet chunks can be told from speech ones
    assert (df["speech_ratio"] > 0.3).all() and (df["rms_dbfs"] > -40).all()


def test_two_segment_session_gets_global_starts(session: Path):
    a = make_fmp4(session / "stream" / "20260301_100000.mp4", 7.0)
    b = make_fmp4(session / "stream" / "20260301_100012.mp4", 6.0, freq=220.0)
    srcs = find_audio_sources(session)
    assert [(s.path.name, s.offset, s.segment) for s in srcs] == [(a.name, 0.0, 0), (b.name, 12.0, 1)]
    with SessionIndex(session, writer=True) as idx:
        df = extract_audio(session, idx, min_chunk=2.0, max_chunk=4.0)
    for seg, path, offset in ((0, a, 0.0), (1, b, 12.0)):
        rows = df[df["segment"] == seg]
        assert (rows["source"] == f"stream/{path.name}").all()
        assert assert_tiles(rows, offset) == len(reference_pcm(path))
        assert np.array_equal(chunk_pcm(session, rows), reference_pcm(path))
    assert df[df["segment"] == 1]["start"].min() == 12.0
    assert df[df["segment"] == 0].eval("start + duration").max() <= 12.0


def test_no_audio_is_a_status_not_an_error(session: Path):
    make_fmp4(session / "stream" / "20260301_100000.mp4", 2.0, audio=False)
    assert find_audio_sources(session) == []
    with SessionIndex(session, writer=True) as idx:
        df = extract_audio(session, idx)
        assert df.empty and list(df.columns)[:4] == ["id", "path", "start", "duration"]
        ex = AudioExtractor(session, idx).start()
        assert ex.join(30)
    assert ex.status["state"] == WorkerState.FINISHED and ex.status["note"].startswith("no audio: ")
    assert "no audio track" in ex.status["note"] and ex.status["errors"] == []
    ex2 = AudioExtractor(session, None, sources=[]).run()
    assert ex2.status["state"] == "finished" and ex2.status["note"] == "no audio: no audio source given"


def test_truncated_audio_decodes_what_is_there_with_a_warning(session: Path, caplog):
    full = make_adts(session / "full.aac", 9.0)
    cut = session / "stream" / "audio.aac"
    data = full.read_bytes()
    cut.write_bytes(data[: len(data) * 2 // 3 + 7])  # mid-frame
    caplog.set_level(logging.WARNING, logger="cht_lab.audio.extractor")
    with SessionIndex(session, writer=True) as idx:
        df = extract_audio(session, idx, min_chunk=2.0, max_chunk=4.0)
    assert 5.0 < df["duration"].sum() < 7.0
    assert_tiles(df)
    ref = reference_pcm(full)
    got = chunk_pcm(session, df)
    # what was decoded is the audio: equal to the complete file's decode (but its last AAC frame)
    assert np.array_equal(got[: len(got) - 1024], ref[: len(got) - 1024])
    assert any("truncated" in r.getMessage() for r in caplog.records)


def test_truncated_fragmented_mp4(session: Path):
    full = make_fmp4(session / "full.mp4", 8.0)
    data = full.read_bytes()
    (session / "stream" / "20260301_100000.mp4").write_bytes(data[: int(len(data) * 0.6)])
    with SessionIndex(session, writer=True) as idx:
        df = extract_audio(session, idx, min_chunk=2.0, max_chunk=4.0)
    assert 2.0 < df["duration"].sum() < 8.0
    got = chunk_pcm(session, df)
    assert np.array_equal(got[:-1024], reference_pcm(full)[: len(got) - 1024])


def test_rerun_replaces_and_resume_adds_nothing(session: Path):
    make_adts(session / "stream" / "audio.aac", 12.0)
    with SessionIndex(session, writer=True) as idx:
        first = extract_audio(session, idx, min_chunk=2.0, max_chunk=4.0)
        second = extract_audio(session, idx, min_chunk=3.0, max_chunk=5.0)
        assert set(first["id"]).isdisjoint(second["id"])
        assert sorted(p.name for p in (session / "audio").glob("*.wav")) == sorted(
            Path(p).name for p in second["path"])
        assert_tiles(second)
        ex = AudioExtractor(session, idx, min_chunk=3.0, max_chunk=5.0).run()  # resume: all done already
        assert ex.status["chunks"] == 0 and ex.status["state"] == "finished"
        assert len(idx.audio()) == len(second)


def test_resume_continues_after_the_chunks_already_indexed(session: Path):
    piece = make_adts(session / "piece.aac", 6.0)
    src = session / "stream" / "audio.aac"
    src.write_bytes(piece.read_bytes())
    with SessionIndex(session, writer=True) as idx:
        AudioExtractor(session, idx, min_chunk=2.0, max_chunk=3.0).run()
        before = idx.audio()
        src.write_bytes(piece.read_bytes() * 2)  # the file grew while nobody watched (ADTS concatenates)
        ex = AudioExtractor(session, idx, min_chunk=2.0, max_chunk=3.0).run()
        df = idx.audio()
    assert ex.status["chunks"] > 0 and set(before["id"]) < set(df["id"])
    assert (df["segment"] == 0).all()
    ref = reference_pcm(src)
    assert assert_tiles(df) == len(ref)  # no gap, no overlap across the two runs
    got = chunk_pcm(session, df)
    join = int(before["samples"].sum())
    keep = np.r_[0: join - 2048, join + 2048: len(ref)]  # the old end-of-file flush differs from the join
    assert np.array_equal(got[keep], ref[keep])


def test_follow_moves_on_to_a_new_recording(session: Path):
    a = make_fmp4(session / "a.mp4", 3.0)
    b = make_fmp4(session / "b.mp4", 3.0, freq=220.0)
    shutil.copy(a, session / "stream" / "20260301_100000.mp4")
    with SessionIndex(session, writer=True) as idx:
        ex = AudioExtractor(session, idx, follow=True, min_chunk=1.0, max_chunk=2.0, poll=0.2).start()
        wait_for(lambda: ex.status["decoded"] >= 2.5, 30, "the first recording decoded")
        shutil.copy(b, session / "stream" / ".tmp.mp4")
        os.replace(session / "stream" / ".tmp.mp4", session / "stream" / "20260301_100010.mp4")  # recorder restart
        wait_for(lambda: ex.status["segment"] == 1 and ex.status["decoded"] >= 5.5, 30, "the new recording")
        ex.stop(timeout=5)
        df = idx.audio()
    assert ex.status["errors"] == [] and ex.status["state"] == "stopped"
    for seg, ref, offset in ((0, a, 0.0), (1, b, 10.0)):
        rows = df[df["segment"] == seg]
        assert assert_tiles(rows, offset) == len(reference_pcm(ref))
        assert np.array_equal(chunk_pcm(session, rows), reference_pcm(ref))


def test_callback_errors_are_reported_and_the_worker_goes_on(session: Path):
    make_adts(session / "stream" / "audio.aac", 8.0)
    calls = []

    def bad(chunk):
        calls.append(chunk.id)
        raise RuntimeError("widget exploded")

    with SessionIndex(session, writer=True) as idx:
        ex = AudioExtractor(session, idx, min_chunk=2.0, max_chunk=3.0, on_chunk=bad).start()
        assert ex.join(30)
        assert len(calls) == len(idx.audio()) >= 3
    st = ex.status
    assert st["state"] == "finished" and "widget exploded" in st["last_error"]
    assert st["seconds"] == pytest.approx(idx.audio()["duration"].sum())


class FullDiskIndex(SessionIndex):
    """The real index, except that the disk is full when audio rows arrive."""

    def append_audio(self, rows):
        raise OSError(28, "No space left on device")


def test_a_failing_write_stops_the_extraction_loudly(session: Path):
    make_adts(session / "stream" / "audio.aac", 20.0)
    with FullDiskIndex(session, writer=True) as idx:
        ex = AudioExtractor(session, idx, follow=False, min_chunk=1.0, max_chunk=2.0).start()
        assert ex.join(30), "the worker hung after a write error"
        with pytest.raises(Exception, match="No space left"):
            extract_audio(session, idx, min_chunk=1.0, max_chunk=2.0)
    st = ex.status
    assert st["state"] == "failed" and "No space left on device" in st["last_error"]
    assert st["chunks"] == 0 and idx.audio().empty
    assert not [p for p in live_processes() if p.name.startswith("audio")]


def test_stop_while_decoding_a_file_drains_and_writes_the_tail(session: Path):
    piece = make_adts(session / "piece.aac", 20.0)
    src = session / "stream" / "audio.aac"
    src.write_bytes(piece.read_bytes() * 40)  # ADTS concatenates: 800 s, more than ffmpeg buffers
    first, go = threading.Event(), threading.Event()

    def hold_first(chunk):  # keep the worker busy so stop() lands in the middle of the file
        if not first.is_set():
            first.set()
            go.wait(10)

    with SessionIndex(session, writer=True) as idx:
        ex = AudioExtractor(session, idx, min_chunk=1.0, max_chunk=2.0, on_chunk=hold_first).start()
        assert first.wait(30)
        stopper = threading.Thread(target=ex.stop, kwargs={"timeout": 10})
        stopper.start()
        wait_for(lambda: ex.status["state"] == "stopping", 10, "stop() to begin")
        go.set()
        stopper.join(15)
        st = ex.status
        df = idx.audio()
    assert ex.done.is_set() and st["state"] == "stopped" and st["errors"] == [] and st["warnings"] == []
    total = assert_tiles(df)
    assert total == round(st["decoded"] * SR)  # every sample ffmpeg decoded before it stopped is in a chunk
    got = chunk_pcm(session, df)
    ref = reference_pcm(src)
    assert 2 * SR < len(got) < len(ref)
    n = len(got) - 2048  # the resampler's flush at the stop point differs from the full run
    assert np.array_equal(got[:n], ref[:n])


# --------------------------------------------------------------------------- growing files


def start_writer(kind: str, path: Path, seconds: float) -> FfmpegProcess:
    """Another ffmpeg writes the file as it encodes, at twice real time."""
    args = ["-hide_banner", "-loglevel", "error", "-nostdin", "-y", "-readrate", "2"]
    if kind == "fmp4":
        args += ["-f", "lavfi", "-i", f"testsrc2=s=96x64:r=10:d={seconds}", *audio_input(seconds),
                 "-c:v", "libx264", "-preset", "ultrafast", "-g", "5", "-pix_fmt", "yuv420p",
                 "-c:a", "aac", "-b:a", "48k", *FMP4, "-frag_duration", "250000", "-flush_packets", "1", str(path)]
    else:
        args += [*audio_input(seconds), "-c:a", "aac", "-b:a", "48k", "-f", "adts", "-flush_packets", "1", str(path)]
    return FfmpegProcess(args, stdout=subprocess.DEVNULL, name=f"writer:{path.name}")


@pytest.mark.parametrize("kind", ["adts", "fmp4"])
def test_follow_a_growing_file_and_stop_mid_stream_flushes_the_tail(session: Path, kind: str):
    path = session / "stream" / ("audio.aac" if kind == "adts" else "20260301_100000.mp4")
    writer = start_writer(kind, path, 30.0)
    chunks = []
    try:
        with SessionIndex(session, writer=True) as idx:
            ex = AudioExtractor(session, idx, follow=True, min_chunk=1.0, max_chunk=2.0, poll=0.2,
                                sources=[AudioSegment(path, 0.0, 0)], on_chunk=chunks.append).start()
            wait_for(lambda: ex.status["chunks"] >= 2, 30, "two chunks from the growing file")
            assert writer.running(), "the writer finished before the test could stop mid-stream"
            decoded_before = ex.status["decoded"]
            ex.stop(timeout=5)
            st = ex.status
            df = idx.audio()
    finally:
        writer.stop()
    assert st["state"] == "stopped" and st["errors"] == [], st
    assert [c.id for c in chunks] == df.sort_values("start")["id"].tolist()
    total = assert_tiles(df)
    assert total == round(st["decoded"] * SR) >= round(decoded_before * SR)  # the tail was flushed
    got = chunk_pcm(session, df)
    ref = reference_pcm(path)  # what the writer wrote in the end
    assert len(ref) > len(got)
    n = len(got) - 2048  # the last AAC frame before the stop point decodes without its successor
    assert n > SR and np.array_equal(got[:n], ref[:n])
    assert not [p for p in live_processes() if p.name.startswith("audio")]


def test_source_replaced_while_following_starts_a_new_segment(session: Path):
    a = make_adts(session / "a.aac", 4.0)
    b = make_adts(session / "b.aac", 3.0, freq=240.0)
    path = session / "stream" / "audio.aac"
    shutil.copy(a, path)
    with SessionIndex(session, writer=True) as idx:
        ex = AudioExtractor(session, idx, follow=True, min_chunk=1.0, max_chunk=2.0, poll=0.2).start()
        ref_a, ref_b = reference_pcm(a), reference_pcm(b)
        wait_for(lambda: ex.status["decoded"] * SR >= len(ref_a) - 4096, 30, "file A decoded")
        path.unlink()
        wait_for(lambda: ex.status["replaced"] >= 1, 30, "the removal noticed")
        path.write_bytes(b.read_bytes())
        wait_for(lambda: ex.status["segment"] == 1 and ex.status["decoded"] * SR >= len(ref_a) + len(ref_b) - 4096,
                 30, "file B decoded")
        ex.stop(timeout=5)
        st = ex.status
        df = idx.audio()
    assert st["state"] == "stopped" and st["errors"] == [] and st["replaced"] == 1
    assert any("recreated" in w["warning"] for w in st["warnings"])
    seg0, seg1 = df[df["segment"] == 0], df[df["segment"] == 1]
    assert np.array_equal(chunk_pcm(session, seg0), ref_a)  # old file: complete, nothing foreign
    assert np.array_equal(chunk_pcm(session, seg1), ref_b)  # new file: from its first sample
    assert_tiles(seg0, 0.0)
    offset1 = float(seg1["start"].min())
    assert offset1 >= seg0.eval("start + duration").max() - 1e-9
    assert_tiles(seg1, offset1)


@pytest.mark.parametrize("recording", ["finished", "growing"])
def test_following_a_session_whose_recording_has_no_audio_ends_at_the_idle_timeout(session: Path, recording: str):
    """LiveSession.wait() sets idle_timeout once the video has ended; the extractor, waiting for an
    audio track that never comes, must then end (it used to wait forever) and say why."""
    path = session / "stream" / "20260301_100000.mp4"
    writer = None
    if recording == "finished":
        make_fmp4(path, 2.0, audio=False)
    else:  # the recorder is still writing a video-only fragmented MP4
        writer = FfmpegProcess(["-hide_banner", "-loglevel", "error", "-nostdin", "-y", "-readrate", "2",
                                "-f", "lavfi", "-i", "testsrc2=s=96x64:r=10:d=3", "-c:v", "libx264", "-preset",
                                "ultrafast", "-g", "5", "-pix_fmt", "yuv420p", *FMP4, "-frag_duration", "250000",
                                "-flush_packets", "1", str(path)], stdout=subprocess.DEVNULL, name="writer:video")
    try:
        with SessionIndex(session, writer=True) as idx:
            ex = AudioExtractor(session, idx, follow=True, poll=0.2).start()
            wait_for(lambda: ex.status["note"].startswith("no audio yet"), 30, "the extractor to wait for audio")
            assert not ex.join(0.5), "without an idle timeout a live session's audio is followed"
            if writer is not None:
                wait_for(lambda: not writer.running(), 30, "the recorder to finish")
            ex.idle_timeout = 0.5  # what LiveSession.wait() does once the video has ended
            assert ex.join(10), "the extractor ignored its idle timeout"
            st = ex.status
            assert idx.audio().empty
    finally:
        if writer is not None:
            writer.stop()
    assert st["state"] == WorkerState.FINISHED and st["state"].ended and st["errors"] == []
    assert st["chunks"] == 0 and st["note"] == ("no audio: 20260301_100000.mp4: no audio track, "
                                                "and no stream/audio.aac"), st
    assert not [p for p in live_processes() if p.name.startswith("audio")]


def test_following_a_session_whose_recording_never_appears_ends_at_the_idle_timeout(session: Path):
    with SessionIndex(session, writer=True) as idx:
        ex = AudioExtractor(session, idx, follow=True, poll=0.1, idle_timeout=0.5).start()
        assert ex.join(10)
        missing = AudioExtractor(session, idx, follow=True, poll=0.1, idle_timeout=0.5,
                                 sources=[AudioSegment(session / "stream" / "audio.aac", 0.0, 0)]).start()
        assert missing.join(10), "waiting for a file that never gets data ignored the idle timeout"
    assert ex.status["state"] == "finished" and ex.status["errors"] == []
    assert ex.status["note"] == "no audio: no recording in stream/ and no stream/audio.aac"
    st = missing.status
    assert st["state"] == "finished" and st["chunks"] == 0 and st["errors"] == []
    assert any("got no data within 0.5 s" in w["warning"] for w in st["warnings"]), st["warnings"]


# --------------------------------------------------------------------------- bundled samples


def test_bundled_samples(tmp_path: Path):
    sessions = sorted(p for p in SAMPLES.glob("2*") if (p / "stream").is_dir()) if SAMPLES.is_dir() else []
    if not sessions:
        pytest.skip(f"no bundled samples under {SAMPLES} (generate them with `cht-lab samples`)")
    for src_dir in (sessions[0], sessions[-1]):  # recording with audio; two segments + audio.aac
        work = tmp_path / src_dir.name
        shutil.copytree(src_dir, work, ignore=shutil.ignore_patterns("index", "audio", "frames"))
        sources = find_audio_sources(work)
        assert sources, f"{src_dir.name}: the bundled sample has no audio"
        with SessionIndex(work, writer=True) as idx:
            df = extract_audio(work, idx)
        for s in sources:
            rows = df[df["segment"] == s.segment]
            assert assert_tiles(rows, s.offset) == len(reference_pcm(s.path))
            assert np.array_equal(chunk_pcm(work, rows), reference_pcm(s.path))
