"""The session directory layout shared with cht: names, segments and their global offsets.

A session directory is named by its start time (YYYYmmdd_HHMMSS). Recordings live in `stream/`,
one fragmented MP4 per recorder run, each named by the time that run started; a segment's global
offset is its start minus the session start. When names carry no time, segments are laid end to
end in name order using their probed durations.

Where work is written (the working-directory rule): a session has a *source* directory, which
holds the recordings (`stream/`) and `labels.csv`, and a *working* directory, which receives
everything cht_lab writes for it: `index/`, `frames/`, `audio/`, `.cache/` and exports. They are
the same directory unless the source is read-only: a bundled sample (it is checked into git and
shared by every user) or a directory this process cannot write. A read-only source gets the
working directory `work_dir_for(source)`: `<data dir>/work/<name>-<hash of its path>`, under
`default_data_dir()` ($CHT_LAB_DATA, else ~/cht_lab/sessions), and the working directory's index
names its source, so opening either directory later finds both.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cht_lab.ffmpeg import MediaError, probe

log = logging.getLogger(__name__)

TIME_FORMAT = "%Y%m%d_%H%M%S"
RECORDING_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv", ".ts")
STREAM_DIR, FRAMES_DIR, AUDIO_DIR, INDEX_DIR = "stream", "frames", "audio", "index"
SOCKET_NAME = "scene.sock"
AUDIO_AAC = "audio.aac"
LABELS_CSV = "labels.csv"
DATA_DIR_ENV = "CHT_LAB_DATA"
WORK_DIR = "work"  # under the data dir: working directories of read-only sources
SOURCE_KEY = "source_dir"  # index metadata of a working directory: the read-only source it works for
_TIME_RE = re.compile(r"(\d{8}_\d{6})")


@dataclass(frozen=True)
class Segment:
    """One recorder run: its file, its number, and where it starts on the session timeline."""

    index: int
    path: Path
    offset: float  # global seconds at the segment's pts 0


def parse_start_time(name: str) -> datetime | None:
    """The YYYYmmdd_HHMMSS time in a file or directory name, or None."""
    m = _TIME_RE.search(name)
    if not m:
        return None
    try:
        return datetime.strptime(m.group(1), TIME_FORMAT)
    except ValueError:
        return None


def new_session_name(when: datetime | None = None) -> str:
    return (when or datetime.now()).strftime(TIME_FORMAT)


def create_session_dir(parent: str | Path, when: datetime | None = None) -> Path:
    """Make a new session directory named by its start time; a taken name moves on a second."""
    from datetime import timedelta

    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    when = (when or datetime.now()).replace(microsecond=0)
    for _ in range(3600):
        candidate = parent / new_session_name(when)
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            when += timedelta(seconds=1)
    raise RuntimeError(f"{parent}: could not find a free session directory name")


def is_session_dir(path: str | Path) -> bool:
    p = Path(path)
    return p.is_dir() and ((p / STREAM_DIR).is_dir() or (p / INDEX_DIR).is_dir() or (p / SOCKET_NAME).exists())


def recordings(session_dir: str | Path) -> list[Path]:
    """Recording files in `stream/`, in recorder order (by name, which is by start time in cht)."""
    stream = Path(session_dir) / STREAM_DIR
    if not stream.is_dir():
        return []
    return sorted(p for p in stream.iterdir() if p.suffix.lower() in RECORDING_SUFFIXES and p.is_file()
                  and not p.name.startswith("."))


def discover_segments(session_dir: str | Path) -> list[Segment]:
    """Segments of a session with their global offsets (see module docstring for the rule)."""
    session_dir = Path(session_dir)
    files = recordings(session_dir)
    start = parse_start_time(session_dir.name)
    times = [parse_start_time(f.stem) for f in files]
    segments: list[Segment] = []
    if start is not None and files and all(t is not None for t in times):
        for i, (f, t) in enumerate(zip(files, times)):
            segments.append(Segment(i, f, max(0.0, (t - start).total_seconds())))  # type: ignore[operator]
        return segments
    offset = 0.0
    for i, f in enumerate(files):
        segments.append(Segment(i, f, offset))
        try:
            offset += probe(f).duration
        except MediaError as exc:
            log.warning("cannot place segments after %s on the timeline: %s", f, exc)
            break
    return segments


# --------------------------------------------------------------------------- where work is written


def default_data_dir() -> Path:
    """Where cht_lab creates directories of its own: $CHT_LAB_DATA, else ~/cht_lab/sessions.

    New live sessions go here, and (under `work/`) the working directories of read-only sources.
    """
    return Path(os.environ.get(DATA_DIR_ENV) or Path.home() / "cht_lab" / "sessions").expanduser()


def bundled_sample_roots() -> list[Path]:
    """Folders holding bundled samples: samples_root() and the repository's data/samples/."""
    roots = [Path(__file__).resolve().parents[1] / "data" / "samples"]
    try:
        from cht_lab.tools.samples import samples_root

        roots.append(samples_root().expanduser().resolve())
    except Exception as exc:  # the samples module being broken must not stop a session from opening
        log.debug("cannot ask where bundled samples live: %s", exc)
    return list(dict.fromkeys(roots))


def is_bundled_sample(path: str | Path) -> bool:
    p = Path(path).expanduser().resolve()
    return any(p == root or root in p.parents for root in bundled_sample_roots())


def is_read_only(path: str | Path) -> bool:
    """True for a bundled sample (never written, so `git status` stays clean) or an unwritable directory.

    `path` is a session directory, or the folder a single recording sits in.
    """
    p = Path(path).expanduser().resolve()
    if is_bundled_sample(p):
        return True
    if not p.is_dir():
        return False
    index = p / INDEX_DIR
    return not os.access(p, os.W_OK | os.X_OK) or (index.is_dir() and not os.access(index, os.W_OK | os.X_OK))


def work_dir_for(source: str | Path, data_dir: str | Path | None = None) -> Path:
    """The working directory of a read-only source (a session directory or a recording file).

    The name keeps the source's (its start time stays readable) and adds a hash of its full path, so
    two sources of the same name never share an index.
    """
    p = Path(source).expanduser().resolve()
    digest = hashlib.sha1(str(p).encode("utf-8", "surrogateescape")).hexdigest()[:8]
    return Path(data_dir or default_data_dir()) / WORK_DIR / f"{p.name}-{digest}"


def session_relative(path: str | Path, root: str | Path) -> str:
    """`path` as the index stores it: relative to the session directory `root` when inside it
    (sessions can be moved), else absolute."""
    for candidate, base in ((Path(os.path.abspath(path)), Path(os.path.abspath(root))),
                            (Path(path).resolve(), Path(root).resolve())):
        try:
            return candidate.relative_to(base).as_posix()
        except ValueError:
            continue
    return str(Path(path).resolve())


def stored_source(directory: Path) -> Path | None:
    """The source a working directory works for, as its index names it (None: it is its own source)."""
    if not (directory / INDEX_DIR).is_dir():
        return None
    from cht_lab.index.session_index import SessionIndex  # the index package imports this module

    try:
        value = SessionIndex(directory).metadata().get(SOURCE_KEY)
    except Exception as exc:  # an unreadable index is reported when it is used, not here
        log.debug("%s: cannot read the index metadata: %s", directory, exc)
        return None
    if not value:
        return None
    source = Path(value)
    if not source.is_dir():
        log.warning("%s works for %s, which is gone; its recordings cannot be read", directory, source)
    return source


def placement(opened: Path, *, single: bool) -> tuple[Path, Path]:
    """(source dir, working dir) of a session directory being opened: a working directory names its
    source; a read-only source is worked on in `work_dir_for(source)`; anything else is both."""
    stored = stored_source(opened)
    if stored is not None:
        return stored, opened
    if not single and is_read_only(opened):
        return opened, work_dir_for(opened)
    return opened, opened
