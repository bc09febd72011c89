"""Helper processes of a recording (Xvfb, JupyterLab) that are always reaped.

The recorder's only children besides ffmpeg (which goes through `FfmpegProcess`): whatever ends the
`with` block, the child is terminated, given `grace` seconds, then killed and waited for.
"""

from __future__ import annotations

import contextlib
import logging
import subprocess
from collections.abc import Iterator, Sequence
from typing import Any

log = logging.getLogger(__name__)


@contextlib.contextmanager
def owned_process(args: Sequence[str], grace: float = 10.0, **popen: Any) -> Iterator[subprocess.Popen[bytes]]:
    """`subprocess.Popen(args, **popen)` for the duration of the block; never outlives it."""
    proc: subprocess.Popen[bytes] = subprocess.Popen(list(args), **popen)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                log.warning("%s did not end within %.0f s of SIGTERM: killed", args[0], grace)
                proc.kill()
                proc.wait()
