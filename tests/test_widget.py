"""The panel without a browser: real sessions, real ffmpeg, widget state read back in Python."""

from __future__ import annotations

import asyncio
import io
import shutil
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cht_lab.ffmpeg import find_ffmpeg

SLIDE_SECONDS = 2.0
CUTS = (2.0, 4.0, 6.0)  # where the synthetic "slides" change


def make_slides(path: Path, size: str = "320x240", fps: int = 30) -> Path:
    """Four still, visually different 'slides' of 2 s each (cuts at 2, 4, 6 s) with a sine as audio."""
    sources = [f"color=c=0x2050a0:s={size}:r={fps}:d={SLIDE_SECONDS}",
               f"yuvtestsrc=s={size}:r={fps}:d={SLIDE_SECONDS}",
               f"smptebars=s={size}:r={fps}:d={SLIDE_SECONDS}",
               f"rgbtestsrc=s={size}:r={fps}:d={SLIDE_SECONDS}"]
    args = [find_ffmpeg(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y"]
    for src in sources:
        args += ["-f", "lavfi", "-i", src]
    args += ["-f", "lavfi", "-i", f"sine=f=330:r=48000:d={SLIDE_SECONDS * len(sources)}",
             "-filter_complex", "".join(f"[{i}:v]" for i in range(len(sources))) + f"concat=n={len(sources)}:v=1:a=0[v]",
             "-map", "[v]", "-map", f"{len(sources)}:a", "-c:v", "libx264", "-preset", "ultrafast", "-g", str(fps),
             "-pix_fmt", "yuv420p", "-c:a", "aac", "-movflags", "+frag_keyframe+empty_moov+default_base_moof",
             str(path)]
    subprocess.run(args, check=True, timeout=120)
    return path


@pytest.fixture(scope="module")
def slides_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_slides(tmp_path_factory.mktemp("clip") / "slides.mp4")


@pytest.fixture(scope="module")
def scored_dir(tmp_path_factory: pytest.TempPathFactory, slides_clip: Path) -> Path:
    """A scored cht-style session directory with labels; tests copy it so they can't disturb each other."""
    from cht_lab.session import open_session

    root = tmp_path_factory.mktemp("sessions") / "20240101_120000"
    (root / "stream").mkdir(parents=True)
    shutil.copy(slides_clip, root / "stream" / "20240101_120000.mp4")
    (root / "labels.csv").write_text("time,end,kind,note\n" + "".join(f"{t},,cut,slide {i + 2}\n"
                                                                        for i, t in enumerate(CUTS)))
    open_session(root).score(progress=False)
    return root


@pytest.fixture()
def session(tmp_path: Path, scored_dir: Path):
    from cht_lab.session import open_session

    target = tmp_path / scored_dir.name
    shutil.copytree(scored_dir, target, ignore=shutil.ignore_patterns("*.lock", ".cache"))
    return open_session(target)


@pytest.fixture()
def panel(session):
    p = session.panel()
    yield p
    p.close()


def _png_size(data: bytes) -> tuple[int, int]:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        return im.size


# --------------------------------------------------------------------------- recorded session


def test_panel_shows_the_detections_of_the_session_threshold(panel, session):
    import ipywidgets as widgets

    assert isinstance(panel, widgets.VBox)
    assert panel.detection_count == len(session.scenes())
    assert panel.plot.value[:8] == b"\x89PNG\r\n\x1a\n"
    assert _png_size(panel.plot.value)[0] >= 600
    assert panel.update_stats["mode"] == "direct"  # no running event loop in a test
    assert f"<b>{panel.detection_count}</b>" in panel.count.value
    assert "frames scored" in panel.status.value
    bundle = panel._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle  # `panel` as a cell's last line displays it


def test_slider_re_marks_detections_and_redraws(panel, session):
    low = panel.slider.min + 2 * panel.slider.step
    panel.slider.value = panel.slider.max
    high_count, high_png = panel.detection_count, panel.plot.value
    panel.slider.value = low
    low_count, low_png = panel.detection_count, panel.plot.value

    assert low_count > high_count
    assert low_png != high_png
    # the panel's threshold is the session's from now on: scenes() and capture_frames() follow it
    assert session.threshold == pytest.approx(low)
    assert low_count == len(session.scenes())
    assert f"<b>{low_count}</b>" in panel.count.value


def test_thumbnails_are_made_in_the_background_and_enlarge_to_full_resolution(panel, session):
    panel.slider.value = panel.best_threshold or panel.threshold
    assert panel.sync(timeout=60)
    shown = panel.gallery.tiles
    assert shown and len(shown) == min(panel.detection_count, panel.gallery.max_tiles)
    assert panel.gallery.loaded == len(shown)
    assert [t.ts for t in shown] == sorted((t.ts for t in shown), reverse=True)  # newest first
    cached = list((session.dir / ".cache" / "thumbs").glob("*.jpg"))
    assert cached, "thumbnails are cached inside the session"

    panel.gallery.enlarge(0)
    from PIL import Image

    with Image.open(io.BytesIO(panel.gallery.enlarged.value)) as im:
        assert im.size == (320, 240)  # the full-resolution frame, not the thumbnail
    assert panel.gallery.enlarged_box.layout.display == "flex"

    # a second panel on the same session finds the cache: no decoding needed
    again = session.panel()
    try:
        assert again.gallery.loaded == len(again.gallery.tiles) > 0
    finally:
        again.close()


def test_gallery_caps_the_number_of_thumbnails(session):
    p = session.panel(max_thumbs=2)
    try:
        p.slider.value = p.slider.min + p.slider.step
        assert p.detection_count > 2
        assert len(p.gallery.tiles) == 2
        assert f"showing 2 of {p.detection_count} frames" in p.gallery.header.value
    finally:
        p.close()


def test_metric_switch_rescales_the_slider_and_follows_the_session(panel, session):
    metrics = list(panel.metric_dropdown.options)
    if len(metrics) < 2:
        pytest.skip(f"the scores carry one metric only ({metrics})")
    first = panel.metric
    panel.slider.value = panel.slider.max / 3
    kept = panel.threshold
    other = next(m for m in metrics if m != first)
    panel.metric_dropdown.value = other  # the dropdown is linked to the trait
    assert panel.metric == session.metric == other
    assert panel.detection_count == len(session.scenes())
    assert panel.slider.max >= panel.threshold == panel.slider.value
    panel.metric = first  # each metric keeps its own threshold
    assert panel.metric_dropdown.value == first
    assert panel.threshold == pytest.approx(kept)
    import traitlets

    with pytest.raises(traitlets.TraitError, match="no 'nope' scores"):
        panel.metric = "nope"


def test_apply_best_button_sets_the_best_threshold(panel, session):
    best = session.best_threshold()
    assert panel.best_threshold == pytest.approx(best)
    panel.slider.value = panel.slider.max
    tuning = panel.show_tab("tuning")
    assert not tuning.apply_best_button.disabled
    assert tuning.apply_best_button.description == f"apply best ({best:.3f})"
    tuning.apply_best_button.click()
    assert panel.threshold == pytest.approx(best, abs=panel.slider.step)
    assert panel.detection_count == len(session.scenes(best))
    assert session.evaluate(best).f1 > 0.5  # the synthetic cuts are found
    assert tuning.plot.value[:4] == b"\x89PNG"
    assert "best threshold" in tuning.info.value


def test_export_writes_a_readable_frame_index(panel, session):
    panel.slider.value = panel.best_threshold
    df = panel.dataframe()
    assert len(df) == panel.detection_count > 0
    assert set(["ts", "segment", "frame_index", "score", "threshold", "path"]) <= set(df.columns)

    panel.export_format.value = "csv"
    panel.export_button.click()
    csv = session.dir / "frame_index.csv"
    assert csv.is_file() and "wrote" in panel.export_info.value
    back = pd.read_csv(csv)
    assert back["ts"].tolist() == pytest.approx(df["ts"].tolist())

    parquet = panel.export("parquet")
    assert parquet == session.dir / "frame_index.parquet"
    back = pd.read_parquet(parquet)
    assert back["frame_index"].tolist() == df["frame_index"].tolist()
    assert (back["threshold"] == panel.threshold).all()


def test_export_rejects_an_unknown_format(panel):
    from cht_lab.panel.session_panel import PanelError

    with pytest.raises(PanelError, match="xlsx"):
        panel.export("xlsx")


def test_audio_chunks_play_in_the_panel(panel, session):
    session.extract_audio()
    panel.refresh()
    audio = panel.tab("audio")
    chunks = audio.chunks.options
    assert chunks, audio.info.value
    assert audio.chunks.rows == max(2, min(len(chunks), 8))  # no empty rows under a short list
    assert audio.player is None  # no empty player: it is made with the first chunk selected
    audio.chunks.value = chunks[0][1]
    assert audio.player.value[:4] == b"RIFF"
    assert "dBFS" in audio.info.value and "speech" in audio.info.value
    first_player = audio.player
    audio.chunks.value = chunks[-1][1] if len(chunks) > 1 else None
    if len(chunks) > 1:
        assert audio.player is not first_player and audio.player.value[:4] == b"RIFF"


def test_score_plot_of_one_hour_redraws():
    from cht_lab.panel.plot import ScorePlot

    n = 108_000
    rng = np.random.default_rng(7)
    ts = np.arange(n) / 30.0
    values = rng.gamma(1.0, 0.01, n).astype(np.float32)
    cuts = rng.choice(n, 200, replace=False)
    values[cuts] = 0.8
    scores = pd.DataFrame({"ts": ts, "scene": values})
    labels = pd.DataFrame({"time": ts[np.sort(cuts)], "end": np.nan})
    plot = ScorePlot()
    a = plot.render(scores, "scene", 0.3, scores.iloc[np.sort(cuts)], labels)
    b = plot.render(scores, "scene", 0.9, scores.iloc[:0], labels)  # same scores: threshold-only redraw
    assert a[:4] == b[:4] == b"\x89PNG" and a != b
    # what a slider move draws is exactly what drawing from scratch gives
    moved = plot.render(scores, "scene", 0.5, scores.iloc[np.sort(cuts)], labels)
    fresh = plot.render(scores, "scene", 0.5, scores.iloc[np.sort(cuts)], labels, full=True)
    assert _pixels(moved) == _pixels(fresh)
    # a live batch of new scores (the axes kept, the line's data replaced) draws what a fresh plot draws
    longer = pd.DataFrame({"ts": np.arange(n + 9_000) / 30.0, "scene": np.resize(values, n + 9_000)})
    plot.render(scores.iloc[: n // 2], "scene", 0.5, scores.iloc[np.sort(cuts)], labels, full=True)
    live = plot.render(longer, "scene", 0.4, longer.iloc[np.sort(cuts)], labels)
    rebuilt = plot.render(longer, "scene", 0.4, longer.iloc[np.sort(cuts)], labels, full=True)
    assert _pixels(live) == _pixels(rebuilt)


def _pixels(png: bytes) -> bytes:
    from PIL import Image

    with Image.open(io.BytesIO(png)) as im:
        return im.convert("RGBA").tobytes()


# --------------------------------------------------------------------------- threads


def test_updates_from_many_threads_are_coalesced_and_none_is_lost():
    from cht_lab.panel.sync import UiUpdater

    applied: list[set[str]] = []
    u = UiUpdater(lambda parts: applied.append(set(parts)), interval=0.05)
    assert u.mode == "direct"

    def burst(k: int) -> None:
        for i in range(300):
            u.request(f"{k}-{i}")

    threads = [threading.Thread(target=burst, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    deadline = time.monotonic() + 10
    while u.pending and time.monotonic() < deadline:
        u.run_now()
    seen = set().union(*applied)
    assert seen == {f"{k}-{i}" for k in range(6) for i in range(300)}
    assert len(applied) < 1800 / 10  # a burst is a handful of redraws, not one per request
    assert u.stats["errors"] == 0


def test_updates_from_threads_run_on_the_event_loop_thread():
    """In a kernel the panel is made on the loop thread; workers' updates must land there too."""
    from cht_lab.panel.sync import UiUpdater

    async def main() -> tuple[set[int], set[str], int, dict]:
        loop_thread = threading.get_ident()
        threads_seen: set[int] = set()
        parts_seen: set[str] = set()
        done = asyncio.Event()

        def apply(parts: set[str]) -> None:
            threads_seen.add(threading.get_ident())
            parts_seen.update(parts)
            if len(parts_seen) == 400:
                done.set()

        u = UiUpdater(apply, interval=0.05)
        assert u.mode == "loop"
        workers = [threading.Thread(target=lambda k=k: [u.request(f"{k}-{i}") for i in range(100)])
                   for k in range(4)]
        for w in workers:
            w.start()
        await asyncio.wait_for(done.wait(), timeout=10)
        return threads_seen, parts_seen, loop_thread, u.stats

    threads_seen, parts_seen, loop_thread, stats = asyncio.run(main())
    assert threads_seen == {loop_thread}
    assert len(parts_seen) == 400
    assert stats["off_thread"] == 0 and stats["errors"] == 0


def test_a_failing_update_is_reported_not_raised_into_the_worker():
    from cht_lab.panel.sync import UiUpdater

    errors: list[BaseException] = []

    def apply(parts: set[str]) -> None:
        raise RuntimeError("boom")

    u = UiUpdater(apply, interval=0.0, on_error=errors.append)
    u.request("x")  # must not raise
    assert u.stats["errors"] == 1 and isinstance(errors[0], RuntimeError)


def test_live_panel_follows_a_live_session(tmp_path: Path, slides_clip: Path):
    from cht_lab.live import LiveSession

    live = LiveSession(slides_clip, session_dir=tmp_path / "20240101_130000", realtime=False)
    panel = live.panel(poll=0.2)
    try:
        assert panel.detection_count == 0
        with live:
            assert live.wait(timeout=120), "the clip was not processed"
            expected = len(live.frames())
            # frames arrive through the callbacks and the ticker, with no sync() call
            deadline = time.monotonic() + 20
            while panel.detection_count < expected and time.monotonic() < deadline:
                time.sleep(0.05)
            assert panel.detection_count == expected > 0
            panel.slider.value = panel.slider.max / 2
            assert live.threshold == pytest.approx(panel.slider.value)
        assert panel.sync(timeout=30)
        frames = live.frames()
        assert panel.detection_count == len(frames)
        assert [t.key for t in panel.gallery.tiles] == frames.sort_values("ts", ascending=False)["id"].tolist()[:24]
        assert panel.gallery.loaded == len(panel.gallery.tiles)
        assert "stopped" in panel.status.value
        assert panel.plot.value[:4] == b"\x89PNG"
        assert panel.update_stats["errors"] == 0 and not panel.errors
        assert panel.dataframe()["id"].tolist() == frames["id"].tolist()
    finally:
        panel.close()
        live.stop()
    leftovers = [t.name for t in threading.enumerate()
                 if t.name in ("cht_lab-panel-ticker", "cht_lab-thumbnails") and t.is_alive()]
    assert not leftovers, f"a closed panel left threads running: {leftovers}"


def test_a_malformed_labels_file_is_reported_in_the_panel_not_raised(session):
    (session.dir / "labels.csv").write_text("when,what\n1.0,cut\n")
    p = session.panel()
    try:
        assert "labels" in p.status.value and "labels.csv" in p.status.value
        assert p.tab("tuning").apply_best_button.disabled
        assert p.detection_count == len(session.scenes())  # the rest of the panel works
    finally:
        p.close()
