"""StreamServer: a live H.264 Annex-B stream served on a Unix socket, the way cht serves `scene.sock`.

Replay feeds it; tests and benchmarks can use it alone. Each client has its own sender thread
and queue, so publishing never waits on a slow reader.
"""

from __future__ import annotations

import itertools
import logging
import os
import queue
import socket
import threading
import time
from pathlib import Path

from cht_lab.sources import AnnexBScanner, NalUnit, starts_access_unit, unix_address

log = logging.getLogger(__name__)

_CLIENT_QUEUE = 512  # chunks queued for one client before it counts as too slow and is dropped


class _Client:
    def __init__(self, conn: socket.socket, number: int, record: bool):
        self.conn = conn
        self.number = number
        self.queue: "queue.Queue[tuple[bytes, int] | None]" = queue.Queue(_CLIENT_QUEUE)
        self.active = False  # receiving the stream (joined at a keyframe)
        self.access_units = 0  # access units whose first bytes were sent
        self.sent: list[tuple[int, float]] | None = [] if record else None  # (access unit number, time.monotonic())
        self.closed = threading.Event()
        self.thread = threading.Thread(target=self._send_loop, name=f"replay-client-{number}", daemon=True)

    def _send_loop(self) -> None:
        try:
            while True:
                item = self.queue.get()
                if item is None:
                    break
                data, n_units = item
                self.conn.sendall(data)
                if n_units:
                    now = time.monotonic()
                    if self.sent is not None:
                        self.sent.extend((self.access_units + k, now) for k in range(n_units))
                    self.access_units += n_units
        except OSError as exc:
            log.info("replay client %d went away: %s", self.number, exc)
        finally:
            self.closed.set()
            try:
                self.conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.conn.close()

    def push(self, data: bytes, n_units: int) -> bool:
        if self.closed.is_set():
            return False
        try:
            self.queue.put_nowait((data, n_units))
            return True
        except queue.Full:
            log.warning("replay client %d is too slow; dropping it", self.number)
            self.close()
            return False

    def close(self) -> None:
        try:
            self.queue.put_nowait(None)
        except queue.Full:  # the sender is stuck: closing the socket unblocks it
            try:
                self.conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class StreamServer:
    """Serve a live H.264 Annex-B stream on a Unix socket, like cht's `scene.sock`.

    Each client gets the stream from the next keyframe on (parameter sets included), then
    everything live. `publish(chunk)` never blocks on clients: each has its own sender thread
    and queue, and a client that falls too far behind is dropped. `record_sends=True` keeps, per
    client, the time each access unit was sent (for latency measurements).
    """

    def __init__(self, socket_path: str | os.PathLike[str], *, record_sends: bool = False):
        self.socket_path = Path(socket_path)
        self.record_sends = record_sends
        self._listener: socket.socket | None = None
        self._clients: list[_Client] = []
        self._finished_clients: list[_Client] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._accept_thread: threading.Thread | None = None
        self._numbers = itertools.count()
        self._reset_stream()

    # -------------------------------------------------------------- lifecycle

    def start(self) -> "StreamServer":
        """Create the socket (owner-only permissions, from the first moment) and accept clients."""
        self.socket_path.parent.mkdir(parents=True, exist_ok=True)
        if self.socket_path.exists() or self.socket_path.is_symlink():
            self.socket_path.unlink()  # a stale socket from a server that died
        tmp = self.socket_path.with_name(f".{self.socket_path.name}.{os.getpid()}.tmp")
        if tmp.exists():
            tmp.unlink()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            with unix_address(tmp) as addr:
                sock.bind(addr)
            os.chmod(tmp, 0o600)  # before anyone can see it under its real name
            os.rename(tmp, self.socket_path)
            sock.listen(8)
        except OSError:
            sock.close()
            if tmp.exists():
                tmp.unlink()
            raise
        sock.settimeout(0.2)
        self._listener = sock
        self._stop.clear()
        self._accept_thread = threading.Thread(target=self._accept_loop, name="replay-accept", daemon=True)
        self._accept_thread.start()
        log.info("serving H.264 on %s", self.socket_path)
        return self

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except socket.timeout:
                continue
            except OSError as exc:
                if not self._stop.is_set():
                    log.error("replay server on %s stopped accepting: %s", self.socket_path, exc)
                break
            conn.setblocking(True)
            client = _Client(conn, next(self._numbers), self.record_sends)
            client.thread.start()
            with self._lock:
                self._clients.append(client)
            log.info("replay client %d connected to %s", client.number, self.socket_path)

    def stop(self) -> None:
        """Disconnect everyone, remove the socket file. Safe to call more than once."""
        self._stop.set()
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        if self._accept_thread is not None:
            self._accept_thread.join(timeout=2.0)
            self._accept_thread = None
        self.disconnect_all()
        try:
            if self.socket_path.exists():
                self.socket_path.unlink()
        except OSError as exc:
            log.warning("could not remove %s: %s", self.socket_path, exc)

    # -------------------------------------------------------------- stream

    def _reset_stream(self) -> None:
        self._scanner = AnnexBScanner()
        self._hist = bytearray()  # stream bytes from _hist_start (the current access unit's start) on
        self._hist_start = 0
        self._stream_end = 0
        self._au_start: int | None = None
        self._au_has_sps = False
        self._au_is_key = False
        self._prev_type: int | None = None
        self._prev_nal: NalUnit | None = None
        self._param_sets: dict[int, bytes] = {}
        self.access_units = 0

    def new_stream(self) -> None:
        """A new encoder run starts (recorder restart): clients are disconnected and must reconnect."""
        self.disconnect_all()
        self._reset_stream()

    def disconnect_all(self) -> None:
        with self._lock:
            clients, self._clients = self._clients, []
        for c in clients:
            c.close()
        for c in clients:
            c.thread.join(timeout=2.0)
        with self._lock:
            self._finished_clients.extend(clients)

    def publish(self, chunk: bytes) -> None:
        """Send the next bytes of the stream to every client (new clients join at a keyframe)."""
        if not chunk:
            return
        self._hist += chunk
        self._stream_end += len(chunk)
        with self._lock:
            clients = [c for c in self._clients if not c.closed.is_set()]
            self._finished_clients.extend(c for c in self._clients if c.closed.is_set())
            self._clients = clients
        active = [c for c in clients if c.active]
        pending = [c for c in clients if not c.active]
        joins: list[tuple[_Client, int, bytes]] = []  # client, join position, parameter sets to prepend
        unit_starts: list[int] = []
        for nal in self._scanner.feed(chunk):
            if self._prev_nal is not None and self._prev_nal.type in (7, 8):
                self._save_param_set(self._prev_nal, nal.pos)
            if starts_access_unit(nal, self._prev_type):
                self._au_start, self._au_has_sps, self._au_is_key = nal.pos, False, False
                unit_starts.append(nal.pos)
                self.access_units += 1
            self._prev_type, self._prev_nal = nal.type, nal
            if nal.type == 7:
                self._au_has_sps = True
            if nal.type in (5, 7) and not self._au_is_key and self._au_start is not None:
                self._au_is_key = True
                prefix = b"" if self._au_has_sps else b"".join(self._param_sets[t] for t in (7, 8)
                                                                if t in self._param_sets)
                joins.extend((c, self._au_start, prefix) for c in pending)
                pending = []
        for c in active:
            c.push(chunk, len(unit_starts))
        for c, pos, prefix in joins:
            data = prefix + bytes(self._hist[pos - self._hist_start:])
            if c.push(data, sum(1 for p in unit_starts if p >= pos)):
                c.active = True
                log.debug("replay client %d joined the stream at byte %d", c.number, pos)
        keep_from = self._au_start if self._au_start is not None else self._stream_end
        if self._prev_nal is not None and self._prev_nal.type in (7, 8):
            keep_from = min(keep_from, self._prev_nal.pos)  # its end is not known yet
        keep_from = max(keep_from, self._hist_start)
        del self._hist[: keep_from - self._hist_start]
        self._hist_start = keep_from

    def _save_param_set(self, nal: NalUnit, end: int) -> None:
        lo, hi = nal.pos - self._hist_start, end - self._hist_start
        if 0 <= lo < hi <= len(self._hist):
            self._param_sets[nal.type] = bytes(self._hist[lo:hi])

    # -------------------------------------------------------------- inspection

    @property
    def clients(self) -> int:
        with self._lock:
            return sum(1 for c in self._clients if not c.closed.is_set())

    def send_log(self) -> list[list[tuple[int, float]]]:
        """Per client (in connection order): (access unit number, time.monotonic() sent) pairs."""
        with self._lock:
            every = sorted([*self._finished_clients, *self._clients], key=lambda c: c.number)
            seen: set[int] = set()
            out = []
            for c in every:
                if c.number in seen:
                    continue
                seen.add(c.number)
                out.append(list(c.sent or []))
            return out


__all__ = ["StreamServer"]
