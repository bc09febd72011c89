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


def test_slider_re_marks_detections_and_redraws(session):
    # ffmpeg's scene score has a spread of values on this clip (the event metric rates each of its
    # three changes 1.0, so no threshold of its slider would capture more than another)
    session.metric = "score"
    panel = session.panel()
    low = panel.slider.min + 2 * panel.slider.step
    panel.slider.value = panel.slider.max
    high_count, high_png = panel.detection_count, panel.plot.value
    panel.slider.value = low
    low_count, low_png = panel.detection_count, panel.plot.value

    assert low_count > high_count
    assert low_png != high_png
    # the panel's threshold is the session's from now on: scenes() and capture_frames() follow it
    assert session.threshold == pytest.approx(low)
    assert session.metric == "score"
    assert low_count == len(session.scenes())
    assert f"<b>{low_count}</b>" in panel.count.value
    panel.close()


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


def _labels_csv(session_dir: Path) -> Path:
    session_dir.mkdir(parents=True, exist_ok=True)
    path = session_dir / "labels.csv"
    path.write_text("time,end,kind,note\n" + "".join(f"{t},,cut,slide {i + 2}\n" for i, t in enumerate(CUTS)))
    return path


def test_live_panel_follows_a_live_session(tmp_path: Path, slides_clip: Path):
    from cht_lab.live import LiveSession
    from cht_lab.tuning.labels import load_labels
    from cht_lab.tuning.sweep import find_best

    session_dir = tmp_path / "20240101_130000"
    labels = load_labels(_labels_csv(session_dir))
    live = LiveSession(slides_clip, session_dir=session_dir, realtime=False)
    panel = live.panel(poll=0.2)
    slider_max = [panel.slider.max]
    panel.slider.observe(lambda c: slider_max.append(c["new"]), names="max")
    tuning = panel.show_tab("tuning")  # shown while the session runs: it sweeps the first scores
    try:
        assert panel.detection_count == 0
        assert "no scores yet" in tuning.info.value
        with live:
            assert live.wait(timeout=120), "the clip was not processed"
            expected = len(live.frames())
            # frames arrive through the callbacks and the ticker, with no sync() call
            deadline = time.monotonic() + 20
            while panel.detection_count < expected and time.monotonic() < deadline:
                time.sleep(0.05)
            assert panel.detection_count == expected > 0
            panel.slider.value = panel.slider.max / 2
            assert live.threshold == pytest.approx(panel.slider.value) == pytest.approx(panel.threshold)
            live.set_threshold(0.2)  # from code: the panel follows at its next redraw
        assert panel.sync(timeout=30)
        assert panel.threshold == pytest.approx(0.2) == pytest.approx(panel.slider.value)
        frames = live.frames()
        assert panel.detection_count == len(frames)
        assert [t.key for t in panel.gallery.tiles] == frames.sort_values("ts", ascending=False)["id"].tolist()[:24]
        assert panel.gallery.loaded == len(panel.gallery.tiles)
        assert "stopped" in panel.status.value
        assert panel.plot.value[:4] == b"\x89PNG"
        assert panel.update_stats["errors"] == 0 and not panel.errors
        assert panel.dataframe()["id"].tolist() == frames["id"].tolist()
        # the live panel's slider only ever grew; its tuning ends up computed on every score
        assert slider_max == sorted(slider_max)
        scores = live.scores()
        assert tuning.swept_rows == len(scores) > 0
        assert panel.best_threshold == pytest.approx(find_best(scores, labels, metric=live.metric).threshold)
        assert "best threshold" in tuning.info.value and "curves from the first" not in tuning.info.value
    finally:
        panel.close()
        live.stop()
    leftovers = [t.name for t in threading.enumerate()
                 if t.name in ("cht_lab-panel-ticker", "cht_lab-thumbnails") and t.is_alive()]
    assert not leftovers, f"a closed panel left threads running: {leftovers}"


def test_awaiting_wait_async_lets_the_live_panel_update(tmp_path: Path, slides_clip: Path):
    """What the notebook does: `await live.wait_async()` keeps the kernel's loop free for the panel."""
    from cht_lab.live import LiveSession

    async def main() -> tuple[bool, list[tuple[float, int]], float, dict]:
        live = LiveSession(slides_clip, session_dir=tmp_path / "20240101_140000", realtime=False)
        panel = live.panel(poll=0.1, interval=0.05)
        seen: list[tuple[float, int]] = []
        panel.count.observe(lambda _c: seen.append((time.monotonic(), panel.detection_count)), names="value")
        try:
            with live:
                ok = await live.wait_async(120)
                ended = time.monotonic()
            return ok, seen, ended, panel.update_stats
        finally:
            panel.close()

    ok, seen, ended, stats = asyncio.run(main())
    assert ok, "the clip was not processed"
    assert stats["mode"] == "loop" and stats["off_thread"] == 0 and stats["errors"] == 0
    assert any(n > 0 and t < ended for t, n in seen), f"no capture was shown while waiting: {seen}"


def test_a_malformed_labels_file_is_reported_in_the_panel_not_raised(session):
    (session.dir / "labels.csv").write_text("when,what\n1.0,cut\n")
    p = session.panel()
    try:
        assert "labels" in p.status.value and "labels.csv" in p.status.value
        assert p.tab("tuning").apply_best_button.disabled
        assert p.detection_count == len(session.scenes())  # the rest of the panel works
    finally:
        p.close()


# --------------------------------------------------------------------------- a widget among widgets


def test_panel_composes_and_links_like_any_widget(panel, session):
    import ipywidgets as widgets
    import traitlets

    box = widgets.VBox([widgets.HTML("<b>my lab</b>"), panel])
    tabs = widgets.Tab([panel], titles=("cht",))
    assert box.children[1] is panel and tabs.children[0] is panel
    other = widgets.FloatText()
    widgets.link((panel, "threshold"), (other, "value"))
    low = panel.slider.min + 2 * panel.slider.step
    other.value = low  # one threshold: the trait, the slider, the session and the detections follow
    assert panel.threshold == panel.slider.value == session.threshold == pytest.approx(low)
    assert panel.detection_count == len(session.scenes())
    panel.threshold = 0.2
    assert other.value == panel.slider.value == pytest.approx(0.2)
    assert panel.get_state()["threshold"] == pytest.approx(0.2)  # synced: jslink works in the browser too
    beyond = panel.slider.max * 3  # past the slider's end: the slider grows, nothing is clamped
    panel.threshold = beyond
    assert panel.slider.value == panel.threshold == pytest.approx(beyond)
    assert panel.threshold <= panel.slider.max
    with pytest.raises(traitlets.TraitError):
        panel.threshold = -1.0
    assert panel.metric == session.metric == panel.metric_dropdown.value


def test_live_panel_metric_is_fixed(tmp_path: Path, slides_clip: Path):
    import traitlets

    from cht_lab.live import LiveSession

    live = LiveSession(slides_clip, session_dir=tmp_path / "20240101_150000", realtime=False)
    panel = live.panel()
    try:
        assert panel.metric == live.metric and panel.metric_dropdown.disabled
        with pytest.raises(traitlets.TraitError, match="fixed"):
            panel.metric = "score" if live.metric != "score" else "pixels"
        assert not panel.slider_shrinks and panel.growing  # behaviour flags, not the title
        assert panel.heading == "live session" and "live session" in panel.header.value
    finally:
        panel.close()
        live.stop()


def test_a_new_tab_is_one_class(session):
    import ipywidgets as widgets

    from cht_lab.panel.tab import DEFAULT_TABS, PanelTab, resolve_tabs

    class CountTab(PanelTab):
        title = "Count"
        redraws_on = frozenset({"threshold"})

        def build(self) -> widgets.Widget:
            self.seen: list[int] = []
            return widgets.HTML()

        def update(self, parts: set[str]) -> None:
            self.seen.append(self.panel.detection_count)
            self.widget.value = f"{self.panel.detection_count} at {self.panel.threshold:.3f}"

    class BrokenTab(PanelTab):
        title = "Broken"
        redraws_on = frozenset({"threshold"})

        def build(self) -> widgets.Widget:
            return widgets.HTML()

        def update(self, parts: set[str]) -> None:
            raise RuntimeError("tab bug")

    assert [c.title for c in resolve_tabs(None)] == ["Frames", "Label", "Tuning", "Audio"] and len(DEFAULT_TABS) == 4
    p = session.panel(tabs=[*DEFAULT_TABS, CountTab, BrokenTab])
    try:
        assert [t.title for t in p.tabs] == list(p.tab_bar.titles) == ["Frames", "Label", "Tuning", "Audio", "Count",
                                                                      "Broken"]
        p.slider.value = p.slider.min + 2 * p.slider.step
        count = p.tab("count")
        assert count.seen[-1] == p.detection_count and count.widget.value.startswith(str(p.detection_count))
        assert "broken tab" in p.status.value and "tab bug" in p.status.value  # reported, not raised
        assert p.detection_count == len(session.scenes())  # the rest of the panel kept working
    finally:
        p.close()
    with pytest.raises(TypeError):
        resolve_tabs([object])


def test_tuning_tab_resweeps_as_live_scores_grow(session):
    """The live panel's sweep was made on the first seconds and kept; now new scores are swept again."""
    from cht_lab.panel.tuning_tab import TuningTab

    all_scores, labels = session.scores(), session.labels

    class FakePanel:
        metric, threshold, min_gap, growing = "settled", 0.15, 1.0, True
        scores = all_scores.iloc[: len(all_scores) // 2]
        later: list[tuple[float, tuple[str, ...]]] = []

        def request_later(self, delay: float, *parts: str) -> None:
            self.later.append((delay, parts))

    fake = FakePanel()
    fake.labels = labels
    tab = TuningTab(fake)  # type: ignore[arg-type]
    tab.update({"scores"})
    assert tab.swept_rows == len(fake.scores)
    fake.scores = all_scores  # a live batch, within the refresh interval: shown stale, a refresh scheduled
    tab.update({"scores"})
    assert tab.swept_rows == len(all_scores) // 2
    assert "curves from the first" in tab.info.value
    assert len(fake.later) == 1 and 0 < fake.later[0][0] <= tab.refresh_interval and fake.later[0][1] == ("tuning",)
    tab.refresh_interval = 0.0  # the interval is over
    tab.update({"tuning"})
    assert tab.swept_rows == len(all_scores)
    fake.growing, tab.refresh_interval = False, 60.0
    fake.scores = all_scores.copy()  # the session ended: the last scores are swept at once
    assert tab.best_threshold == pytest.approx(session.best_threshold(metric=fake.metric))
    assert tab.swept_rows == len(all_scores) and len(fake.later) == 1
    tab.close()


# --------------------------------------------------------------------------- plots and words


def _one_hour_with_a_spike_at_the_end() -> tuple[pd.DataFrame, pd.DataFrame]:
    ts = np.arange(3000) / 30.0
    values = np.full(ts.size, 0.01)
    values[[600, 1500, 2999]] = 0.9  # the newest frame is the tallest spike, top right
    scores = pd.DataFrame({"ts": ts, "settled": values})
    return scores, scores.iloc[[600, 1500, 2999]]


@pytest.mark.parametrize("width", [960, 640])
def test_the_legend_never_covers_the_plot(width):
    from cht_lab.panel.plot import ScorePlot, TuningPlot

    scores, det = _one_hour_with_a_spike_at_the_end()
    labels = pd.DataFrame({"time": [20.0, 50.0], "end": [np.nan, np.nan]})
    plot = ScorePlot(width)
    plot.render(scores, "settled", 0.5, det, labels, skipped=scores.iloc[[1510]])
    legend = plot.ax.get_legend()
    assert len(legend.get_texts()) == 5  # score, threshold, labels, detections, skipped
    box, axes = legend.get_window_extent(), plot.ax.get_window_extent()
    assert box.y0 >= axes.y1 - 1, "the legend overlaps the axes"
    assert box.x1 <= plot.fig.bbox.width and box.y1 <= plot.fig.bbox.height, "the legend is cut off"

    tuning = TuningPlot()
    sweep = pd.DataFrame({"threshold": np.linspace(0, 1, 21), "precision": np.linspace(0, 1, 21),
                          "recall": np.linspace(1, 0, 21), "f1": 0.5})
    tuning.render(sweep, 0.5, 0.2, "settled")
    assert tuning.ax.get_ylabel() and tuning.ax.get_xlabel() == "threshold (settled)"
    assert tuning.ax.get_legend().get_window_extent().y0 >= tuning.ax.get_window_extent().y1 - 1


def test_no_scores_shows_a_message_not_an_empty_axis():
    from cht_lab.panel.plot import ScorePlot

    plot = ScorePlot()
    empty = plot.render(pd.DataFrame(columns=["ts", "settled"]), "settled", 0.15)
    assert empty[:4] == b"\x89PNG" and not plot.ax.axison
    assert [t.get_text() for t in plot.ax.texts] == ["no scores yet"]
    scores, det = _one_hour_with_a_spike_at_the_end()
    plot.render(scores, "settled", 0.15, det)
    assert plot.ax.axison and not plot.ax.texts


def test_a_peak_skipped_by_min_gap_is_marked_and_explained(session):
    from cht_lab.panel.plotting import skipped_peaks

    scores, _ = _one_hour_with_a_spike_at_the_end()
    scores.loc[605, "settled"] = 0.95  # 1/6 s after a detection, taller than it, a run of its own
    scores.loc[601, "settled"] = 0.6  # the detection's own run: not "skipped"
    det = scores.iloc[[600, 1500, 2999]]
    assert skipped_peaks(scores, "settled", 0.5, det, 1.0).index.tolist() == [605]
    assert skipped_peaks(scores, "settled", 0.5, det, 0.0).empty

    p = session.panel(min_gap=3.0)  # the cut at 4 s comes 2 s after the one at 2 s: skipped
    try:
        p.threshold = p.best_threshold
        assert len(p.skipped) == 1 and 4.0 <= float(p.skipped["ts"].iloc[0]) < 4.5  # settled fires as the screen rests
        assert "1 peak skipped" in p.count.value and "min_gap" in p.count.value
    finally:
        p.close()


def test_words():
    from cht_lab.panel.text import fmt_value, format_time, plural

    assert format_time(59.96) == "1:00.0" and format_time(3599.96) == "1:00:00.0"
    assert format_time(8.04) == "0:08.0" and format_time(3661.0) == "1:01:01.0" and format_time(-3.2) == "-0:03.2"
    assert plural(1, "capture") == "1 capture" and plural(0, "capture") == "0 captures"
    assert plural(1204, "frame") == "1,204 frames"
    assert fmt_value(None, ".1f") == fmt_value(float("nan"), ".1f") == "–"


def test_recorded_status_says_what_it_counts(panel):
    status = panel.status.value
    assert "captured" not in status and "(s)" not in status  # "0 captured" next to "3 detections" confused
    assert "1 recording" in status and "3 labeled events" in status
    assert panel.plot.wide.value != panel.plot.narrow.value  # two renditions, for wide and narrow boxes
    assert _png_size(panel.plot.wide.value)[0] == 960 and _png_size(panel.plot.narrow.value)[0] == 640


def test_exporting_an_unscored_session_says_to_score_it_and_writes_nothing(tmp_path, slides_clip):
    from cht_lab.session import open_session

    root = tmp_path / "20240101_130000"
    (root / "stream").mkdir(parents=True)
    shutil.copy(slides_clip, root / "stream" / "20240101_130000.mp4")
    panel = open_session(root).panel()
    try:
        panel.export_format.value = "csv"
        panel.export_button.click()
        assert "export failed" in panel.export_info.value and "score it first" in panel.export_info.value
        assert not list(root.glob("frame_index*")), "no empty file left behind"
    finally:
        panel.close()
