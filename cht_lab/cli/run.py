"""`cht-lab run`: live detection on a session directory, socket, file or URL."""

from __future__ import annotations

import argparse
import shutil
import signal
import threading
import time
from pathlib import Path




from cht_lab.cli.common import (EXIT_OK, EXIT_FAILED, EXIT_REFUSED, EXIT_INTERRUPTED, BACKENDS, RECENT_WRITE, Refused, _table, _progress, _note, _clock, _non_negative, _positive, _sample_names, _check_sample, _session_path, _open, _replay_source, log)  # noqa: F401


def _check_run_source(source: str) -> None:
    """Refuse, before any directory exists, a local source that cannot give a frame.

    A file must be a recording with video; a cht session without a live scene.sock is followed
    from its newest recording, which must be readable (one written in the last RECENT_WRITE s may
    still lack its first fragment, and is given the benefit of the doubt). URLs and sockets are
    only known once opened: their failure ends the run with exit 1.
    """
    import stat

    from cht_lab import layout
    from cht_lab.ffmpeg import MediaError, video_header

    if source.startswith(("follow:", "unix:")) or "://" in source:
        return
    path = Path(source).expanduser()
    try:
        st = path.stat()
    except OSError:
        return  # LiveSession names a missing path (MediaError) before it creates anything
    if stat.S_ISREG(st.st_mode):
        video_header(path)  # MediaError: empty, not media, no video stream
    elif stat.S_ISDIR(st.st_mode) and layout.is_session_dir(path):
        sock = path / layout.SOCKET_NAME
        if sock.exists() and stat.S_ISSOCK(sock.stat().st_mode):
            return  # live: the server's stream decides
        recordings = layout.recordings(path)
        if not recordings:
            raise Refused(f"{path}: no scene.sock and no recording in {layout.STREAM_DIR}/: nothing to detect on")
        newest = recordings[-1]
        try:
            video_header(newest)
        except MediaError as exc:
            if time.time() - newest.stat().st_mtime > RECENT_WRITE:
                raise Refused(f"{path}: its recording cannot be read: {exc}") from None


def _new_dir_is_empty(d: Path) -> bool:
    """True when a directory this run created holds nothing but an index without rows."""
    from cht_lab.index.session_index import SessionIndex

    for p in d.rglob("*"):
        if p.is_file() and p.relative_to(d).parts[0] != "index":
            return False
    try:
        idx = SessionIndex(d)
        return idx.frames().empty and idx.scores().empty and idx.audio().empty
    except Exception:  # an index that cannot be read is not known to be empty: keep it
        return False


def _remove_if_empty(d: Path | None) -> None:
    if d is None or not d.is_dir() or not _new_dir_is_empty(d):
        return
    shutil.rmtree(d, ignore_errors=True)
    _note("run", f"removed {d}: the run left nothing in it")


def cmd_run(args: argparse.Namespace) -> int:
    from cht_lab import layout
    from cht_lab.live import LiveSession

    _check_run_source(args.source)
    src = Path(args.source).expanduser()
    cht = src.is_dir() and ((src / layout.SOCKET_NAME).exists() or (src / layout.STREAM_DIR).is_dir())
    session_dir = Path(args.session_dir).expanduser() if args.session_dir else None
    # a directory this run creates is removed again when the run leaves nothing in it
    ours = (session_dir is None and not cht) or (session_dir is not None and not session_dir.exists())
    if session_dir is None and cht and layout.is_read_only(src):
        # a bundled sample is read, never written; each run gets its own new session directory
        # (sharing the sample's working directory would mix live rows into the recorded scores)
        session_dir, ours = layout.create_session_dir(layout.default_data_dir()), True
        _note("run", f"{src} is read-only; writing into {session_dir}")
    try:
        live = LiveSession(args.source, session_dir=session_dir, threshold=args.threshold, metric=args.metric,
                           backend=args.backend, audio=not args.no_audio, realtime=args.realtime)
    except BaseException:
        _remove_if_empty(session_dir if ours else None)
        raise
    created = Path(live.session_dir) if ours else None
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    @live.on_new_frames
    def _show(rows: list[dict]) -> None:
        for r in rows:
            print(f"{r['id']}  ts={r['ts']:9.3f}  score={r['score']:.3f}  {r['path']}", flush=True)

    try:
        live.start()
    except BaseException:
        live.stop()
        _remove_if_empty(created)
        raise
    ended = False
    try:
        print(f"session directory: {live.session_dir}  (Ctrl-C to stop)", flush=True)
        t0 = time.monotonic()
        while not stop.is_set():
            if live.wait(timeout=0.5):
                ended = True
                break
            if live.status["state"] == "failed":
                break
            if args.duration and time.monotonic() - t0 >= args.duration:
                break
        final_state = live.status["state"]
    finally:
        live.stop()
    status = live.status
    print(_table({k: status.get(k) for k in ("backend", "frames", "captures", "chunks", "last_error")}))
    failed = final_state == "failed" or (not status.get("frames") and (ended or status.get("errors")))
    if failed:
        reason = status.get("last_error") or "the source ended without a single decodable frame"
        _note("run", f"error: {reason}")
    _remove_if_empty(created)
    return EXIT_FAILED if failed else EXIT_OK
