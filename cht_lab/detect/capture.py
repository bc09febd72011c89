"""Full-resolution frame capture: atomic JPEG writes, and many frames of a recording in one decode.

Recorded files are seekable, so offline capture does not carry full-res frames through the
scoring decode (that would cost bandwidth for every frame); it decodes once more, keeps only the
wanted frame numbers (`select` by `n`, the same numbering as the scores' frame_index) and writes
each as a JPEG with Pillow. Live capture takes its frames from the analysis decode itself
(cht_lab.detect.decode full-res output) and uses `save_jpeg` here for the atomic write.
"""

from __future__ import annotations

import io
import logging
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image

from cht_lab.atomic import write_atomic
from cht_lab.ffmpeg import FfmpegProcess, MediaError, find_ffmpeg

log = logging.getLogger(__name__)

DEFAULT_QUALITY = 90
_MAX_INLINE_EXPR = 60_000  # longer select expressions go through a filter script file


class CaptureError(ValueError):
    """Bad capture arguments (frame numbers / output paths)."""


def encode_jpeg(image: Any, quality: int = DEFAULT_QUALITY) -> bytes:
    """JPEG bytes of a PIL image or a uint8 array (H x W gray, H x W x 3 RGB)."""
    if isinstance(image, np.ndarray):
        arr = np.ascontiguousarray(image)
        if arr.dtype != np.uint8 or arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
            raise CaptureError(f"expected a uint8 H x W or H x W x 3 array, got {arr.dtype} {arr.shape}")
        if arr.ndim == 3 and arr.shape[2] == 4:
            arr = arr[:, :, :3]
        image = Image.fromarray(arr)
    elif not isinstance(image, Image.Image):
        raise CaptureError(f"cannot encode {type(image).__name__} as JPEG (give a PIL image or a numpy array)")
    if image.mode not in ("RGB", "L", "YCbCr", "CMYK"):
        image = image.convert("RGB")
    out = io.BytesIO()
    image.save(out, "JPEG", quality=int(quality))
    return out.getvalue()


def save_jpeg(image: Any, path: Any, quality: int = DEFAULT_QUALITY) -> int:
    """Save `image` (PIL image, uint8 array, or ready JPEG bytes) atomically as a JPEG; returns bytes written.

    Also accepts the arguments the other way round, save_jpeg(path, image_or_bytes).
    """
    if isinstance(image, (str, os.PathLike)) and not isinstance(path, (str, os.PathLike)):
        image, path = path, image
    data = bytes(image) if isinstance(image, (bytes, bytearray, memoryview)) else encode_jpeg(image, quality)
    write_atomic(Path(path), data, mkdir=True)
    return len(data)


def _read_ppm(stream: Any) -> tuple[int, int, memoryview] | None:
    """One binary PPM (P6) from ffmpeg's image2pipe; None at the end of the stream."""
    header = b""
    fields: list[bytes] = []
    while len(fields) < 4:
        c = stream.read(1)
        if not c:
            if header.strip():
                raise MediaError("ffmpeg", "truncated PPM header from ffmpeg")
            return None
        if c.isspace():
            if header:
                fields.append(header)
                header = b""
        else:
            header += c
    if fields[0] != b"P6":
        raise MediaError("ffmpeg", f"unexpected image from ffmpeg ({fields[0]!r})")
    w, h, maxval = int(fields[1]), int(fields[2]), int(fields[3])
    if maxval != 255:
        raise MediaError("ffmpeg", f"unexpected PPM depth {maxval}")
    buf = bytearray(w * h * 3)
    view = memoryview(buf)
    got = 0
    while got < len(buf):
        k = stream.readinto(view[got:])
        if not k:
            raise MediaError("ffmpeg", "truncated frame from ffmpeg")
        got += k
    return w, h, view


def capture_frames(path: str | os.PathLike[str], frame_indices: Sequence[int], out_paths: Sequence[Any], *,
                   quality: int = DEFAULT_QUALITY, timeout: float = 600.0) -> list[dict[str, Any]]:
    """Write frames `frame_indices` (decode order, 0-based: the scores' frame_index) of a recording as JPEGs.

    One decode pass for all of them, at the source's full resolution. Returns one dict per
    requested frame, in the order given: frame_index, path, width, height, bytes.
    Raises MediaError naming the file when it cannot be read or a frame number is past its end.
    """
    p = Path(path)
    idx = [int(i) for i in frame_indices]
    outs = [Path(o) for o in out_paths]
    if len(idx) != len(outs):
        raise CaptureError(f"{len(idx)} frame numbers but {len(outs)} output paths")
    if not idx:
        return []
    if min(idx) < 0:
        raise CaptureError(f"frame numbers must be >= 0 (got {min(idx)})")
    if len(set(outs)) != len(outs):
        raise CaptureError("output paths must be distinct")
    from cht_lab.ffmpeg import probe_video

    info = probe_video(p)
    wanted = sorted(set(idx))
    expr = "+".join(f"eq(n\\,{n})" for n in wanted)
    graph = f"[0:v:0]select='{expr}'[out]"
    script = None
    args = [find_ffmpeg(), "-hide_banner", "-nostdin", "-loglevel", "error", "-i", str(p)]
    if len(graph) > _MAX_INLINE_EXPR:
        fd, script = tempfile.mkstemp(prefix="cht_lab-select-", suffix=".txt")
        with os.fdopen(fd, "w") as fh:
            fh.write(graph)
        args += ["-/filter_complex", script]
    else:
        args += ["-filter_complex", graph]
    args += ["-map", "[out]", "-fps_mode", "passthrough", "-c:v", "ppm", "-f", "image2pipe", "pipe:1"]
    results: dict[int, dict[str, Any]] = {}
    proc = FfmpegProcess(args, stdout=subprocess.PIPE, name="capture")
    try:
        assert proc.stdout is not None
        k = 0
        while k < len(wanted):
            frame = _read_ppm(proc.stdout)
            if frame is None:
                break
            w, h, view = frame
            n = wanted[k]
            img = Image.frombuffer("RGB", (w, h), view, "raw", "RGB", 0, 1)
            data = encode_jpeg(img, quality)
            for j, (fi, out) in enumerate(zip(idx, outs)):
                if fi == n:
                    write_atomic(out, data, mkdir=True)
                    results[j] = {"frame_index": n, "path": str(out), "width": w, "height": h, "bytes": len(data)}
            k += 1
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise MediaError(p, f"capturing did not finish within {timeout:.0f} s") from exc
        if k < len(wanted):
            if rc not in (0, None):
                from cht_lab.ffmpeg import diagnose

                raise MediaError(p, f"capture failed: {diagnose(proc)}")
            raise MediaError(p, f"frame(s) {wanted[k:][:10]} are past the end of the recording "
                                f"({_count_hint(info)} frames)")
    finally:
        proc.stop()
        if script is not None:
            os.unlink(script)
    return [results[j] for j in range(len(idx))]


def _count_hint(info: Any) -> str:
    return str(info.video.frames) if info.video is not None and info.video.frames else "fewer"


__all__ = ["capture_frames", "save_jpeg", "encode_jpeg", "CaptureError", "DEFAULT_QUALITY"]
