"""Many sessions: score a corpus of recordings on Dask, and tune one threshold across it.

    report = score_sessions(["~/cht/sessions"])          # a LocalCluster, or client=/an address
    sweep_corpus(report, client)                           # per-threshold tp/fp/fn summed over sessions
    evaluate_corpus(report, 0.15, client)                  # evaluate_sessions, computed on the workers
    corpus_scores(report, client, lazy=True)               # every score table as one dask.dataframe

Why Dask: scoring is decode-bound and independent per recording, so a week of meetings wants
more machines, and an existing scheduler brings placement, retries after a lost worker, a
dashboard and progress without a home-made pool. `scoring.py` holds the tasks (plan a session,
score a segment, commit a session's index under its writer lock); `view.py` the corpus view and
tuning, which keep the score tables on the workers and bring back only small summaries.

Names are imported lazily: the view works without dask (in this process), scoring needs the
`dask` extra (`pip install "cht_lab[dask]"`).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "score_sessions": "scoring",
    "dask_client": "scoring",
    "corpus_scores": "view",
    "sweep_corpus": "view",
    "evaluate_corpus": "view",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'cht_lab.corpus' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
