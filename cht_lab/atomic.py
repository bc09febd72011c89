"""One way to put a file in place so that neither a reader nor a crash ever sees half of it.

Write under a temporary name in the same directory, fsync the file, rename it over the final
name, fsync the directory (so the rename itself survives a power loss). Temporary names start
with a dot and end in `.tmp`, so `*.parquet` / `*.wav` / `*.jpg` globs skip them, and a writer
starting after a crash can recognise and remove what an interrupted write left (`is_temp`).

    write_atomic(path, data)                                        # bytes
    write_atomic(path, lambda f: image.save(f, "JPEG"))             # a callback given the binary file
    write_atomic(path, lambda p: pq.write_table(table, p), to_path=True)   # ... or the temp path
"""

from __future__ import annotations

import errno
import os
import secrets
from pathlib import Path
from typing import BinaryIO, Callable, TextIO, Union

__all__ = ["write_atomic", "fsync_dir", "temp_path", "is_temp", "TMP_SUFFIX"]

TMP_SUFFIX = ".tmp"

#: what to write: the bytes themselves, or a callback that writes them (to the open temp file, or
#: with `to_path=True` to the temp file's path; with `text=True` the file is UTF-8 text)
Content = Union[bytes, bytearray, memoryview, Callable[[BinaryIO], object], Callable[[TextIO], object],
                Callable[[Path], object]]

# errors that mean "this file system cannot fsync a directory", not "the data is not safe"
_NO_DIR_FSYNC = {errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EBADF, errno.EACCES, errno.EPERM,
                 errno.EISDIR}


def temp_path(final: str | os.PathLike[str]) -> Path:
    """A unique temporary sibling of `final`: `.<name>.<pid>.<random>.tmp`."""
    final = Path(final)
    return final.with_name(f".{final.name}.{os.getpid()}.{secrets.token_hex(4)}{TMP_SUFFIX}")


def is_temp(name: str) -> bool:
    """True for a name `temp_path` makes (what an interrupted write leaves behind)."""
    return name.startswith(".") and name.endswith(TMP_SUFFIX)


def fsync_dir(directory: str | os.PathLike[str]) -> None:
    """Make renames in `directory` durable. A file system that cannot fsync a directory is accepted
    (the rename is still atomic); a real I/O error is raised."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError as exc:
        if exc.errno in _NO_DIR_FSYNC:
            return
        raise
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in _NO_DIR_FSYNC:
            raise
    finally:
        os.close(fd)


def write_atomic(path: str | os.PathLike[str], content: Content, *, to_path: bool = False, text: bool = False,
                 overwrite: bool = True, durable: bool = True, sync_dir: bool = True, mkdir: bool = False) -> Path:
    """Write `path` through a temporary sibling: write, fsync, rename, fsync the directory.

    `content`: bytes, or a callback given the open temp file (binary; UTF-8 text with `text=True`)
    or, with `to_path=True`, the temp file's path (for writers that open the file themselves).
    `overwrite=False`: an existing `path` is a FileExistsError (names that must never be reused).
    `durable=False` skips both fsyncs (a scratch file); `sync_dir=False` leaves the directory
    fsync to the caller, who makes several renames durable with one `fsync_dir`.
    `mkdir=True` creates missing parent directories. Returns `path` as a Path.
    """
    final = Path(path)
    if mkdir:
        final.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(final)
    try:
        if to_path:
            if not callable(content):
                raise TypeError("to_path=True needs a callback that writes to the path it is given")
            content(tmp)  # type: ignore[arg-type]
            if durable:
                _fsync_file(tmp)
        else:
            opts = {"encoding": "utf-8", "newline": ""} if text else {}
            with open(tmp, "x" if text else "xb", **opts) as fh:  # type: ignore[call-overload]
                if callable(content):
                    content(fh)
                else:
                    fh.write(content)
                fh.flush()
                if durable:
                    os.fsync(fh.fileno())
        if overwrite:
            os.replace(tmp, final)
        else:
            _link_or_rename(tmp, final)
    except BaseException:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise
    if durable and sync_dir:
        fsync_dir(final.parent)
    return final


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _link_or_rename(tmp: Path, final: Path) -> None:
    """Move tmp to final, failing if final exists (a hard link does that atomically; where a file
    system has no hard links, names are unique by construction and a checked rename does)."""
    try:
        os.link(tmp, final)
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS):
            raise
        if final.exists():
            raise FileExistsError(errno.EEXIST, "refusing to overwrite", str(final)) from None
        os.rename(tmp, final)
        return
    os.unlink(tmp)
