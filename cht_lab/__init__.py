"""cht_lab: watch and tune live scene detection on screen-share recordings, in Jupyter.

The public API reads like the notebook::

    import cht_lab
    session = cht_lab.open_session(cht_lab.sample_dir("slides"))
    session.score()
    session.panel()
    with cht_lab.replay(cht_lab.sample_dir("slides")) as server:
        with cht_lab.LiveSession(server.session_dir) as live:
            live.panel()

Names are imported lazily, so `import cht_lab` (and the CLI's --version) stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

from cht_lab._version import __version__

_EXPORTS = {
    "LiveSession": "live",
    "Session": "session",
    "open_session": "session",
    "replay": "tools.replay_server",
    "Replay": "tools.replay_server",
    "sample_dir": "tools.samples",
    "SAMPLES": "tools.samples",
    "load_labels": "tuning.labels",
    "LabelsError": "tuning.labels",
    "evaluate_sessions": "tuning.sweep",
    "score_sessions": "corpus.scoring",
    "corpus_scores": "corpus.view",
    "sweep_corpus": "corpus.view",
    "evaluate_corpus": "corpus.view",
    "MediaError": "ffmpeg",
    "FfmpegNotFoundError": "ffmpeg",
    "probe": "ffmpeg",
    "ffmpeg_info": "ffmpeg",
    "IndexLockedError": "index.session_index",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'cht_lab' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
