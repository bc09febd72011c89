"""H.264 Annex-B parsing: NAL units and access-unit boundaries, for cht's scene.sock and the replay server."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class NalUnit:
    """Where a NAL unit starts in the stream, and what it is."""

    pos: int  # absolute stream offset of the start code
    type: int
    first_mb_zero: bool  # slices: first_mb_in_slice == 0 (a new picture starts)


class AnnexBScanner:
    """Find NAL unit starts in an H.264 Annex-B byte stream fed in arbitrary chunks."""

    def __init__(self) -> None:
        self._tail = b""
        self._pos = 0  # absolute offset of the next byte fed

    def feed(self, chunk: bytes) -> list[NalUnit]:
        data = self._tail + chunk
        base = self._pos - len(self._tail)
        self._pos += len(chunk)
        found: list[NalUnit] = []
        i = 0
        keep = max(0, len(data) - 4)
        while True:
            j = data.find(b"\x00\x00\x01", i)
            if j < 0:
                break
            if j + 4 >= len(data):  # header (and first slice byte) not here yet: rescan next time
                keep = max(0, j - 1)
                break
            start = j - 1 if j > 0 and data[j - 1] == 0 else j
            found.append(NalUnit(base + start, data[j + 3] & 0x1F, bool(data[j + 4] & 0x80)))
            i = j + 3
            keep = max(i, len(data) - 4)
        self._tail = data[keep:]
        return found


def starts_access_unit(nal: NalUnit, prev_type: int | None) -> bool:
    """H.264 7.4.1.2.3, simplified: an AUD, or SEI/SPS/PPS after a picture, or a new picture's first slice."""
    if nal.type == 9:
        return True
    if prev_type is None:
        return True
    prev_vcl = 1 <= prev_type <= 5
    if nal.type in (6, 7, 8) or 14 <= nal.type <= 18:
        return prev_vcl
    if 1 <= nal.type <= 5:
        return prev_vcl and nal.first_mb_zero
    return False


__all__ = ["AnnexBScanner", "NalUnit", "starts_access_unit"]
