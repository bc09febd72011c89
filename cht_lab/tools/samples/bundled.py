"""The bundled samples: their specs, where they live on disk, and generating them there."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

from cht_lab.layout import AUDIO_AAC, LABELS_CSV, STREAM_DIR
from cht_lab.tools.samples.coding import _CODE_FILES, CodingScreen
from cht_lab.tools.samples.desktop import DesktopScreen
from cht_lab.tools.samples.editor import EditorScene, EditorScreen
from cht_lab.tools.samples.palette import BLUE, GREEN, ORANGE, RED, PaletteScreen
from cht_lab.tools.samples.transitions import Slide, TransitionsScreen
from cht_lab.tools.samples.draw import SampleError, SampleSpec, SegmentSpec, _ev
from cht_lab.tools.samples.real.catalog import RECORDED, recorded_specs
from cht_lab.tools.samples.render import write_sample
from cht_lab.tools.samples.slides import SlidesScreen

log = logging.getLogger(__name__)

ENV_VAR = "CHT_LAB_SAMPLES"


def _bundled() -> dict[str, SampleSpec]:
    slides_cuts = [4.5, 9.5, 13.5, 18.5, 22.5, 27.5, 31.5, 36.5, 40.5, 45.5, 49.5, 54.5]
    twoseg_cuts = [4.5, 9.5, 14.5, 29.5, 34.5, 39.5]
    desktop = (
        _ev(3.5, "cut", "switch to the file manager", "files"),
        _ev(8.5, "cut", "switch to the spreadsheet", "sheet"),
        _ev(13.5, "cut", "switch to mail", "mail"),
        _ev(17.5, "partial", "save dialog pops up over mail (a quarter of the screen)", "mail+dialog"),
        _ev(21.5, "partial", "save dialog closes; mail shows again", "mail"),
        _ev(25.5, "cut", "switch to the calendar", "calendar"),
        _ev(29.5, "gradual", "1 s cross-fade from the calendar to photos", "photos", 30.5),
        _ev(34.5, "cut", "switch to the terminal", "terminal"),
        _ev(39.5, "cut", "switch to a news page in the browser", "news"),
    )
    specs = [
        SampleSpec(
            name="slides", start=datetime(2026, 3, 1, 9, 0, 0), width=1280, height=720, fps=30, duration=60.0,
            screen="slides", seed=1, crf=36, title="Quarterly review",
            events=tuple(_ev(t, "cut", f"slide {j + 2}", j + 1) for j, t in enumerate(slides_cuts)),
            distractors=SlidesScreen.layout(1280, 720),
            description="A slide deck: hard slide changes; typing, cursor, clock and a scrolling chat distract.",
        ),
        SampleSpec(
            name="desktop", start=datetime(2026, 3, 1, 10, 0, 0), width=1920, height=1080, fps=30, duration=45.0,
            screen="desktop", seed=2, crf=38, first_scene="browser", events=desktop,
            distractors=DesktopScreen.layout(1920, 1080),
            description="Window switches, a pop-up dialog, a cross-fade; a picture-in-picture video distracts.",
        ),
        SampleSpec(
            name="coding", start=datetime(2026, 3, 1, 11, 0, 0), width=1920, height=1080, fps=30, duration=45.0,
            screen="coding", seed=3, crf=38,
            events=tuple(_ev(4.5 + 5 * j, "cut", f"switch to {_CODE_FILES[j + 1]}", j + 1) for j in range(8)),
            distractors=CodingScreen.layout(1920, 1080),
            description="Dark editor switching between look-alike files; webcam, spinner and progress bar distract.",
        ),
        SampleSpec(
            name="twoseg", start=datetime(2026, 3, 1, 12, 0, 0), width=1280, height=720, fps=30, duration=45.0,
            screen="slides", seed=4, crf=36, title="Team sync",
            segments=(SegmentSpec(0.0, 20.0), SegmentSpec(25.0, 20.0)), audio_file=True,
            events=tuple(_ev(t, "cut", f"slide {j + 2}", j + 1) for j, t in enumerate(twoseg_cuts)),
            distractors=SlidesScreen.layout(1280, 720),
            description="Recorder restart: two video-only segments with a 5 s gap, audio in stream/audio.aac.",
        ),
        *_hard(),
    ]
    return {s.name: s for s in specs}


_X264_NO_SCENECUT = "ipratio=1.0:scenecut=0"  # keyframes only every `gop` s: no extra keyframe per event


def _hard() -> list[SampleSpec]:
    """The samples of issue 14: what every detector gets wrong on real screen shares (see their docstrings)."""
    E, S = EditorScene, Slide
    editor = (
        _ev(2.0, "cut", "switch to client.py (same theme: only text lines change)", E(1)),
        _ev(4.0, "partial", "modal save dialog in the centre, the page dims", E(1, dialog=True)),
        _ev(6.0, "partial", "the dialog closes (the screen of 2.0 s again)", E(1)),
        _ev(8.0, "cut", "PageDown: a page of new code", E(1, page=66)),
        _ev(10.0, "cut", "switch to worker.py", E(2)),
    )
    transitions = (
        _ev(2.5, "cut", "slide 2 (hard cut)", S(1)),
        _ev(4.5, "gradual", "1 s dissolve to slide 3", S(2, "dissolve"), 5.5),
        _ev(7.5, "gradual", "fade through black to slide 4", S(3, "black"), 8.5),
        _ev(10.5, "gradual", "0.5 s wipe to slide 5", S(4, "wipe"), 11.0),
        _ev(13.0, "gradual", "slow 2 s fade to slide 6", S(5, "dissolve"), 15.0),
        _ev(17.0, "cut", "a full-screen film starts (slide 7)", S(6, "film", 0)),
        _ev(21.0, "cut", "the film cuts to its second shot", S(6, "film", 1)),
        _ev(23.5, "cut", "the film ends: slide 8", S(7)),
        _ev(25.5, "gradual", "push to slide 9", S(8, "push"), 25.9),
    )
    colour = (
        _ev(2.5, "partial", "the alert banner turns from red to green (same luma)", (GREEN, BLUE, "p0")),
        _ev(5.0, "partial", "one tile turns from blue to orange (same luma)", (GREEN, ORANGE, "p0")),
        _ev(7.5, "cut", "the whole palette changes (same lumas)", (GREEN, ORANGE, "p1")),
    )
    darkdark = (
        _ev(2.5, "cut", "dark theme a -> dark theme b (backgrounds 3.6 gray levels apart)", E(2, theme="b")),
        _ev(4.5, "cut", "dark theme b -> dark theme c", E(2, theme="c")),
        _ev(6.5, "cut", "dark theme c -> dark theme a", E(2, theme="a")),
    )
    return [
        SampleSpec(
            name="editor", start=datetime(2026, 3, 1, 13, 0, 0), width=2560, height=1440, fps=30, duration=12.0,
            screen="editor", seed=7, crf=42, events=editor, distractors=EditorScreen.layout(2560, 1440),
            options=(("toasts", ((2.6, 3.5), (8.6, 11.5))), ("small_scrolls", ((6.8, 3), (7.4, -3))),
                     ("typing", (10.6, 11.6))),
            roaming=((6.8, 6.95, "3-line scroll down"), (7.4, 7.55, "3-line scroll up")),
            gop=4.0, audio=False, x264=_X264_NO_SCENECUT,
            description="1440p editor, one theme: a file switch, a modal dialog, a PageDown, a revisit; a toast, a "
                        "progress bar, an embedded video, typing and 3-line scrolls distract.",
        ),
        SampleSpec(
            name="transitions", start=datetime(2026, 3, 1, 14, 0, 0), width=1280, height=720, fps=30,
            duration=28.0, screen="transitions", seed=8, crf=40, events=transitions,
            distractors=TransitionsScreen.layout(1280, 720), gop=4.0, audio=False, x264=_X264_NO_SCENECUT,
            roaming=((17.0, 23.5, "the film plays: the whole frame moves"),),
            description="Slide show with a dissolve, a fade through black, a wipe, a slow fade, a push and a "
                        "full-screen film with a cut of its own; cursor and spinner distract.",
        ),
        SampleSpec(
            name="colour", start=datetime(2026, 3, 1, 15, 0, 0), width=1280, height=720, fps=30, duration=10.0,
            screen="colour", seed=9, crf=36, first_scene=(RED, BLUE, "p0"), events=colour,
            distractors=PaletteScreen.layout(1280, 720), gop=4.0, audio=False, x264=_X264_NO_SCENECUT,
            description="Colour-only changes (equal luma); a blinking status dot, a clock and the cursor distract.",
        ),
        SampleSpec(
            name="darkdark", start=datetime(2026, 3, 1, 16, 0, 0), width=1280, height=720, fps=30, duration=8.5,
            screen="editor", seed=10, crf=36, first_scene=E(2, theme="a"), events=darkdark,
            distractors=EditorScreen.layout(1280, 720, video=False, toast=False),
            options=(("video", False), ("small_scrolls", ((5.4, 3),)), ("typing", (3.0, 4.0))),
            roaming=((5.4, 5.55, "3-line scroll down"),),
            gop=6.0, audio=False, x264=_X264_NO_SCENECUT,
            description="Dark theme to dark theme (backgrounds 3.6 gray levels apart); typing, the caret and a "
                        "3-line scroll distract.",
        ),
    ]


def _recorded() -> dict[str, SampleSpec]:
    """The recorded samples (real applications, `cht-lab samples --real`): read, never regenerated here."""
    return {s.name: s for s in recorded_specs()}


SAMPLES: dict[str, SampleSpec] = {**_bundled(), **_recorded()}


def samples_root() -> Path:
    """Where the bundled samples live: $CHT_LAB_SAMPLES, else the repository's data/samples/.

    An installed wheel has no data/ next to the package; then a per-user cache directory is
    used and sample_dir() generates what is missing there.
    """
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    repo = Path(__file__).resolve().parents[3] / "data" / "samples"  # cht_lab/tools/samples/ -> the repository
    if repo.is_dir() or (repo.parents[1] / "pyproject.toml").is_file():
        return repo
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "cht_lab" / "samples"


def _spec(name: str) -> SampleSpec:
    try:
        return SAMPLES[name]
    except (KeyError, TypeError):
        raise SampleError(f"unknown sample {name!r}; valid names: {', '.join(SAMPLES)}") from None


def _complete(spec: SampleSpec, d: Path) -> bool:
    files = [d / LABELS_CSV, *(d / STREAM_DIR / f for f in spec.segment_files())]
    if spec.audio_file:
        files.append(d / STREAM_DIR / AUDIO_AAC)
    return all(f.is_file() and f.stat().st_size > 0 for f in files)


def sample_dir(name: str, generate_missing: bool = True) -> Path:
    """The session directory of a bundled sample (generated first if it is missing on disk)."""
    spec = _spec(name)
    d = samples_root() / spec.session_name
    if not _complete(spec, d) and generate_missing:
        if spec.screen == RECORDED:
            raise SampleError(f"recorded sample {name!r} is missing in {d.parent}: it is a recording, not a "
                              "rendering; record one with `cht-lab samples --real` (needs Xvfb and Chromium)")
        log.info("sample %r missing in %s; generating it", name, d.parent)
        generate(names=[name])
    return d


def generate(root: str | os.PathLike[str] | None = None, names: Iterable[str] | None = None, force: bool = False,
             progress: bool = False) -> list[Path]:
    """Write the bundled samples under `root` (default samples_root()); returns their session dirs.

    Samples already present are kept unless `force`. Each sample is rendered into a hidden temp
    directory next to its destination and renamed into place, so a crash never leaves half a sample.
    Recorded samples (real applications) are never written here: `cht-lab samples --real` records them.
    """
    root_path = Path(root) if root is not None else samples_root()
    root_path.mkdir(parents=True, exist_ok=True)
    specs = [_spec(n) for n in (names if names is not None else SAMPLES)]
    out: list[Path] = []
    for spec in specs:
        dest = root_path / spec.session_name
        out.append(dest)
        if spec.screen == RECORDED:  # a recording: `cht-lab samples --real` records new ones
            if not _complete(spec, dest):
                log.warning("recorded sample %s is missing in %s; record it with `cht-lab samples --real`",
                            spec.name, root_path)
            continue
        if _complete(spec, dest) and not force:
            log.info("sample %s present in %s; skipped", spec.name, dest)
            continue
        tmp = Path(tempfile.mkdtemp(prefix=f".{spec.session_name}.tmp-", dir=root_path))
        try:
            write_sample(spec, tmp / "session", progress=progress)
            old = None
            if dest.exists():
                old = root_path / f".{spec.session_name}.old-{os.getpid()}"
                os.replace(dest, old)
            os.replace(tmp / "session", dest)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return out
