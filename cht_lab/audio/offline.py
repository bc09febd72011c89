"""Offline extraction: cut a recorded session's audio to the end (`Session.extract_audio`)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from cht_lab import layout
from cht_lab.audio.decode import AudioSegment
from cht_lab.audio.extractor import AudioExtractor
from cht_lab.audio.writer import ChunkCallback
from cht_lab.index.protocols import IndexWriter

log = logging.getLogger(__name__)

__all__ = ["extract_audio", "AudioExtractionError"]


class AudioExtractionError(RuntimeError):
    """Some audio source could not be decoded; names the source(s) and the reason."""


def extract_audio(session_dir: str | os.PathLike[str], index: IndexWriter | None, *,
                  sources: Iterable[AudioSegment] | None = None, replace: bool = True,
                  on_chunk: ChunkCallback | None = None, **chunking: Any) -> pd.DataFrame:
    """Cut a recorded session's audio into chunks, to the end; returns the audio table.

    Re-running **replaces** the previous chunks (`replace=True`, the default): their rows are
    cleared from the index and their WAV files deleted before the new cut, so changed chunk
    settings take effect and nothing is duplicated. Chunk ids keep counting up (the index never
    reuses an id). `replace=False` resumes instead: only audio not yet chunked is cut.
    `chunking`: sample_rate, channels, min_chunk, max_chunk. Raises AudioExtractionError when a
    source could not be decoded (chunks of the other sources are kept); truncated audio is not an
    error (what is there is cut, with a warning in the log).
    """
    session_dir = Path(session_dir)
    if replace:
        _clear_chunks(session_dir, index)
    ex = AudioExtractor(session_dir, index, sources=sources, follow=False, on_chunk=on_chunk,
                        resume=not replace, **chunking)
    ex.run()
    st = ex.status
    if st["errors"]:
        raise AudioExtractionError("; ".join(e["error"] for e in st["errors"]))
    return index.audio() if index is not None else pd.DataFrame(ex.rows)


def _clear_chunks(session_dir: Path, index: IndexWriter | None) -> None:
    """The previous cut's rows, then its WAV files (rows first: no row ever points at nothing)."""
    if index is None:
        return
    old = index.audio()
    index.clear("audio")
    for rel in old.get("path", []):
        p = session_dir / str(rel)
        if p.suffix == ".wav" and p.parent.name == layout.AUDIO_DIR:
            try:
                p.unlink()
            except FileNotFoundError:
                pass
