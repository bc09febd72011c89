"""The session index: frames, scores and audio chunks as Parquet tables in a session directory.

`SessionIndex` and `IndexLockedError` load on first use (pyarrow and pandas are not imported by
`import cht_lab.index`); `IndexWriter` is the protocol the workers write through.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cht_lab.index.protocols import IndexWriter

if TYPE_CHECKING:
    from cht_lab.index.lock import IndexLockedError
    from cht_lab.index.session_index import IndexReadOnlyError, SessionIndex, read_table

__all__ = ["IndexWriter", "SessionIndex", "IndexLockedError", "IndexReadOnlyError", "read_table"]

_LAZY = {"SessionIndex": "session_index", "IndexReadOnlyError": "session_index", "read_table": "session_index",
         "IndexLockedError": "lock"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(f"cht_lab.index.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'cht_lab.index' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
