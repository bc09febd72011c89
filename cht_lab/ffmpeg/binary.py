"""Which ffmpeg runs, what it can do (filters, CUDA), and the errors every media call raises."""

from __future__ import annotations

import functools
import logging
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

ENV_VAR = "CHT_LAB_FFMPEG"


class FfmpegNotFoundError(RuntimeError):
    """No usable ffmpeg binary could be found."""


class MediaError(ValueError):
    """A media input could not be used; names the input and the reason."""

    def __init__(self, path: str | os.PathLike[str], reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


# --------------------------------------------------------------------------- binary discovery


def find_ffmpeg() -> str:
    """Return the ffmpeg executable: $CHT_LAB_FFMPEG, then imageio-ffmpeg's bundled one, then PATH."""
    override = os.environ.get(ENV_VAR)
    if override:
        path = shutil.which(override) or override
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            raise FfmpegNotFoundError(f"{ENV_VAR}={override!r} is not an executable file")
        return path
    try:
        import imageio_ffmpeg

        path = imageio_ffmpeg.get_ffmpeg_exe()
        if path and os.path.isfile(path):
            return path
    except Exception as exc:  # imageio-ffmpeg missing or its binary absent for this platform
        log.debug("imageio-ffmpeg gave no binary: %s", exc)
    path = shutil.which("ffmpeg")
    if path:
        return path
    raise FfmpegNotFoundError(
        "no ffmpeg found: install imageio-ffmpeg (pip install imageio-ffmpeg), put ffmpeg on PATH, "
        f"or set {ENV_VAR} to an ffmpeg executable"
    )


@dataclass(frozen=True)
class FfmpegInfo:
    """What the chosen ffmpeg binary can do."""

    path: str
    version: str
    hwaccels: frozenset[str]
    filters: frozenset[str]
    encoders: frozenset[str] = field(default_factory=frozenset)

    @property
    def has_cuda(self) -> bool:
        """CUDA decode and scaling are compiled in (a GPU may still be absent: see cuda_usable)."""
        return "cuda" in self.hwaccels and "scale_cuda" in self.filters

    @property
    def has_scdet(self) -> bool:
        return "scdet" in self.filters


def _list_section(exe: str, *flags: str) -> str:
    out = subprocess.run([exe, "-hide_banner", *flags], capture_output=True, text=True, timeout=30)
    return out.stdout


@functools.lru_cache(maxsize=4)
def _info_for(exe: str) -> FfmpegInfo:
    version_out = subprocess.run([exe, "-hide_banner", "-version"], capture_output=True, text=True, timeout=30)
    m = re.search(r"ffmpeg version (\S+)", version_out.stdout)
    version = m.group(1) if m else "unknown"
    hw = _list_section(exe, "-hwaccels").splitlines()
    hwaccels = frozenset(line.strip() for line in hw[1:] if line.strip())
    filters = frozenset(
        parts[1]
        for line in _list_section(exe, "-filters").splitlines()
        if (parts := line.split()) and len(parts) >= 3 and re.fullmatch(r"[TSC.]{2,3}", parts[0])
    )
    encoders = frozenset(
        parts[1]
        for line in _list_section(exe, "-encoders").splitlines()
        if (parts := line.split()) and len(parts) >= 2 and re.fullmatch(r"[VASFXBD.]{6}", parts[0])
    )
    return FfmpegInfo(exe, version, hwaccels, filters, encoders)


def ffmpeg_info() -> FfmpegInfo:
    """Version and capabilities of the ffmpeg that find_ffmpeg() picks (cached per binary)."""
    return _info_for(find_ffmpeg())


@functools.lru_cache(maxsize=4)
def _cuda_usable_for(exe: str) -> tuple[bool, str]:
    if not _info_for(exe).has_cuda:
        return False, "this ffmpeg was built without CUDA (hwaccel cuda + scale_cuda)"
    try:
        res = subprocess.run(
            [exe, "-hide_banner", "-nostdin", "-init_hw_device", "cuda=gpu", "-f", "lavfi",
             "-i", "nullsrc=s=64x64:d=0.04", "-vf", "hwupload_cuda,scale_cuda=32:32", "-f", "null", "-"],
            capture_output=True, text=True, timeout=30,
        )
    except subprocess.TimeoutExpired:
        return False, "CUDA device initialisation timed out"
    if res.returncode == 0:
        return True, "CUDA device initialised"
    last = [line for line in res.stderr.splitlines() if line.strip()]
    log.debug("CUDA device check: ffmpeg exit %s: %s", res.returncode, last[-1] if last else "")
    return False, "no CUDA device on this machine"


def cuda_usable() -> tuple[bool, str]:
    """Whether a CUDA device actually works with this ffmpeg, and why (cached)."""
    return _cuda_usable_for(find_ffmpeg())
