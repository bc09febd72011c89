"""The recording is the clock: socket frames take their time from the recording they are copied from.

Raw H.264 on cht's `scene.sock` carries no timestamps, and screen recorders write variable frame
rate. The socket stream is a stream copy of the growing recording, so once the stream's first
keyframe is found in the recording (same bytes: size and Adler-32 of the Annex-B access unit),
frame k of the stream is packet k of the recording from there, and its pts is that packet's pts.

`PacketFollower` lists the recording's packets as its fragments are written (one ffmpeg that
reads the growing file through the shared follower and prints a framecrc line per packet);
`RecordingClock` matches the keyframe and answers "pts of stream frame k", waiting briefly for
the recording to catch up with the socket (the recording trails it by about one fragment).
"""

from __future__ import annotations

import logging
import subprocess
import threading
import time
import zlib
from fractions import Fraction
from pathlib import Path

from cht_lab.ffmpeg import FfmpegProcess, Packet, framecrc_line, packet_from_row, packet_listing_args
from cht_lab.sources.base import LiveStream
from cht_lab.sources.follow import FileReplacedError, pump, tail_file

log = logging.getLogger(__name__)

MATCH_WAIT = 5.0  # s to wait for the stream's first keyframe to appear in the recording
FRAME_WAIT = 0.03  # s to wait for the recording to hold a frame the socket already delivered
STILL_WAIT = 30.0  # s a variable-frame-rate stream waits for the recording to hold a frame
REORDER_DEPTH = 4
SIGNATURE_MIN = 8  # frames after the keyframe whose sizes must agree to identify it without its bytes  # packets looked ahead for presentation order when the recording has B-frames


class PacketFollower:
    """Every video packet of a growing recording, listed as it becomes readable (thread + ffmpeg)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.packets: list[Packet] = []
        self.error: str | None = None
        self.ended = False
        self.reordered = False  # a packet's pts was below its predecessor's (B-frames)
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._proc = FfmpegProcess(packet_listing_args(annexb=True), stdin=subprocess.PIPE, name="packet-list")
        self._feeder = threading.Thread(target=self._feed, name="packet-feed", daemon=True)
        self._reader = threading.Thread(target=self._read, name="packet-read", daemon=True)
        self._feeder.start()
        self._reader.start()

    def _feed(self) -> None:
        sink = self._proc.stdin
        assert sink is not None
        try:
            pump(tail_file(self.path, self._stop, poll_interval=0.02), sink, self._stop)
        except (FileNotFoundError, FileReplacedError) as exc:  # the recorder restarted: this listing is done
            log.info("%s: packet listing ends: %s", self.path.name, exc)

    def _read(self) -> None:
        out = self._proc.stdout
        assert out is not None
        tb = Fraction(1, 1)
        try:
            for raw in iter(out.readline, b""):
                item = framecrc_line(raw.decode("ascii", "replace"))
                if isinstance(item, tuple):
                    if item[0] == "tb" and item[1] == 0:
                        tb = Fraction(item[2])
                elif item is not None and item[0] == "0":
                    packet = packet_from_row(item, tb)
                    with self._cond:
                        if self.packets and packet.pts < self.packets[-1].pts:
                            self.reordered = True
                        self.packets.append(packet)
                        self._cond.notify_all()
        except (OSError, ValueError) as exc:
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            with self._cond:
                self.ended = True
                self._cond.notify_all()

    def wait_for(self, count: int, timeout: float) -> bool:
        """Block until at least `count` packets are listed (True) or the listing ended / timed out."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.packets) < count and not self.ended:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return len(self.packets) >= count

    def wait_quiet(self, quiet: float = 0.1, timeout: float = 3.0) -> None:
        """Block until no packet has been listed for `quiet` s: the listing has reached the file's end."""
        deadline = time.monotonic() + timeout
        with self._cond:
            seen = -1
            while not self.ended and time.monotonic() < deadline and seen != len(self.packets):
                seen = len(self.packets)
                self._cond.wait(quiet)

    def close(self) -> None:
        self._stop.set()
        self._proc.stop(timeout=1.0)
        self._feeder.join(timeout=2.0)
        self._reader.join(timeout=2.0)


class RecordingClock:
    """Stream frame k -> (packet index, recording pts), once the stream's first keyframe is located."""

    def __init__(self, recording: Path, stream: LiveStream, *, frame_wait: float = FRAME_WAIT,
                 still_wait: float = STILL_WAIT):
        self.recording = Path(recording)
        self.stream = stream
        self.frame_wait = frame_wait
        self.still_wait = still_wait
        self.start: int | None = None  # packet index of the stream's first keyframe
        self.note: str | None = None  # why the clock is not exact, for status
        self.estimated = 0  # frames placed on the CFR grid before the recording held them
        self.mismatched = 0  # times the recording then disagreed (or turned out not CFR)
        self._pending: list[tuple[int, float]] = []
        self._cfr_checked = 0
        self.vfr = False  # the recording's frame durations vary: frames wait for the recording
        self._follower = PacketFollower(self.recording)

    def locate(self, stop: threading.Event, timeout: float = MATCH_WAIT) -> bool:
        """Find the stream's first keyframe among the recording's packets; False (with `note`) if absent.

        First by its bytes (size and Adler-32 of the access unit). A server may add or drop SEI or
        parameter sets in that unit, so also by the frames after it: plain slices, whose sizes (up
        to a constant, e.g. an AUD per unit) pick the keyframe. Identical candidates recur on a
        still screen: the stream began at the live edge, so the one nearest "listed end minus the
        units received since the keyframe" wins.
        """
        unit = self.stream.keyframe_unit
        if not unit:
            self.note = "the stream's first keyframe is unknown"
            return False
        size, crc = len(unit), zlib.adler32(unit, 0)
        deadline = time.monotonic() + timeout
        follower = self._follower
        follower.wait_quiet()
        while not stop.is_set():
            packets = follower.packets
            same = [i for i, p in enumerate(packets) if p.key and p.size == size and p.crc == crc]
            how = "its bytes"
            if not same:
                same, how = self._by_following_sizes(packets), "the sizes of the frames after it"
            if same:
                estimate = len(packets) - max(1, self.stream.units_received)
                self.start = min(same, key=lambda i: abs(i - estimate))
                if how != "its bytes":
                    self.note = f"the stream's first keyframe differs in its bytes from the recording's; found by {how}"
                log.info("%s: the stream's first keyframe is packet %d (pts %.3f), found by %s", self.recording.name,
                         self.start, packets[self.start].pts, how)
                return True
            if time.monotonic() >= deadline or follower.ended:
                break
            follower.wait_for(len(packets) + 1, min(0.2, max(0.0, deadline - time.monotonic())))
        self.note = (f"the stream's first keyframe was not found in {self.recording.name} "
                     f"({len(follower.packets)} packets listed)")
        return False

    def _by_following_sizes(self, packets: list[Packet]) -> list[int]:
        sizes = self.stream.unit_sizes()[1:]
        m = len(sizes)
        if m < SIGNATURE_MIN:
            return []
        found = []
        for i in range(len(packets) - m):
            if packets[i].key and len({packets[i + 1 + j].size - sizes[j] for j in range(m)}) == 1:
                found.append(i)
        return found

    @property
    def start_pts(self) -> float | None:
        return self._follower.packets[self.start].pts if self.start is not None else None

    def packets_before_start(self) -> list[Packet]:
        return self._follower.packets[: self.start or 0]

    def frame(self, k: int) -> tuple[int, float, bool] | None:
        """(packet index, pts, exact) of stream frame k; None when the recording never held it.

        The recording trails the socket by about a fragment. While the recording has been constant
        frame rate from the keyframe on, a frame it does not hold yet is placed at the next grid
        step (exact unless the recorder dropped a frame just now: checked later, `mismatched`,
        and from then on this connection waits). Otherwise (variable frame rate) it waits for the
        recording, up to `still_wait`: on a still screen the recorder writes nothing, and the
        fragment holding the last frame before the still is only written with the next frame.
        """
        if self.start is None:
            return None
        self._verify()
        index = self.start + k
        follower = self._follower
        step = self._cfr_step()
        if follower.wait_for(index + 1, 0.0 if step is not None else self.frame_wait):
            return self._exact(index, k)
        if step is not None:
            packets = follower.packets
            last = len(packets) - 1
            self.estimated += 1
            pts = packets[last].pts + (index - last) * step
            self._pending.append((index, pts))
            return index, pts, False
        if follower.wait_for(index + 1, self.still_wait):
            return self._exact(index, k)
        return None

    def _exact(self, index: int, k: int) -> tuple[int, float, bool]:
        follower = self._follower
        if not follower.reordered:
            return index, follower.packets[index].pts, True
        # B-frames: packets come in decode order; frame k is the k-th smallest pts from the keyframe on
        follower.wait_for(index + 1 + REORDER_DEPTH, self.frame_wait)
        window = sorted(p.pts for p in follower.packets[self.start: index + 1 + REORDER_DEPTH])
        return index, window[k], True

    def _cfr_step(self) -> float | None:
        """The frame duration while the recording is constant frame rate from the keyframe on, else None."""
        if self.vfr or self.mismatched or self._follower.reordered:
            return None
        packets = self._follower.packets
        n = len(packets)
        if n - (self.start or 0) < 2:
            return None
        first = packets[self.start or 0]
        step = first.end - first.pts
        for i in range(max(self._cfr_checked, (self.start or 0) + 1), n):
            p, q = packets[i - 1], packets[i]
            if step <= 0 or abs(q.pts - p.end) > 1e-6 or abs((q.end - q.pts) - step) > 1e-6:
                self.vfr = True  # not CFR: wait for the recording from now on
                return None
        self._cfr_checked = n
        return step

    def _verify(self) -> None:
        """Compare earlier estimates with the recording, now that it may hold them."""
        packets = self._follower.packets
        while self._pending and self._pending[0][0] < len(packets):
            index, pts = self._pending.pop(0)
            if abs(packets[index].pts - pts) > 1e-3:
                self.mismatched += 1
                log.warning("%s: packet %d was placed at %.3f s on the frame grid, the recording says %.3f s",
                            self.recording.name, index, pts, packets[index].pts)

    def close(self) -> None:
        self._follower.close()


__all__ = ["PacketFollower", "RecordingClock", "MATCH_WAIT", "FRAME_WAIT"]
