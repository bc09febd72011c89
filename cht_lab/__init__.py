"""cht_lab: watch and tune live scene detection on screen-share recordings, in Jupyter.

The public API reads like the notebook::

    import cht_lab
    session = cht_lab.open_session(cht_lab.sample_dir("slides"))
    session.score()
    session.panel()
    with cht_lab.replay(cht_lab.sample_dir("slides")) as server:
        with cht_lab.LiveSession(server.session_dir) as live:
            live.panel()

Names are imported lazily so `import cht_lab` (and the CLI's --version) stays fast, except
`replay`: a function named like its module. Importing the submodule `cht_lab.replay` (anyone may)
sets the package attribute to the module, shadowing a lazy name for good, so the function is
bound eagerly here (~90 ms) and the submodule import cannot replace it afterwards.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "LiveSession": "live",
    "Session": "session",
    "open_session": "session",
    "replay": "replay",
    "Replay": "replay",
    "sample_dir": "samples",
    "SAMPLES": "samples",
    "load_labels": "labels",
    "LabelsError": "labels",
    "evaluate_sessions": "tuning",
    "MediaError": "ffmpeg",
    "FfmpegNotFoundError": "ffmpeg",
    "probe": "ffmpeg",
    "ffmpeg_info": "ffmpeg",
    "IndexLockedError": "index",
}

__all__ = ["__version__", *_EXPORTS]

from .replay import Replay, replay  # noqa: E402,F401  (see the module docstring)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'cht_lab' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
