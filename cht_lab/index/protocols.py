"""What the workers need of an index: the detector and the audio extractor write through this.

`SessionIndex(session_dir, writer=True)` is the implementation; a test double or a wrapper
(e.g. one that fails on purpose) only has to provide these methods.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["IndexWriter"]


@runtime_checkable
class IndexWriter(Protocol):
    """The index calls of the scene detector (scores, frames) and the audio extractor (chunks)."""

    def append_scores(self, table: Any) -> None:
        """Buffer score rows (DataFrame, pyarrow Table or dict of arrays); on disk within a flush interval."""

    def append_frames(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Add captured frames; durable when this returns."""

    def append_audio(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Add audio chunks; durable when this returns."""

    def next_frame_id(self) -> str:
        """Reserve the next frame id; never repeats, also across reopens."""

    def next_chunk_id(self) -> str:
        """Reserve the next audio chunk id; never repeats, also across reopens."""

    def flush(self) -> int:
        """Write buffered score rows now; returns how many."""

    def scores(self) -> "pd.DataFrame":
        """The score rows written so far (a restarted detector continues after them)."""

    def audio(self) -> "pd.DataFrame":
        """The audio chunks written so far (a restarted extractor resumes after them)."""

    def clear(self, table: str) -> None:
        """Remove every row of a table (re-cutting a recorded session's audio replaces its chunks)."""
