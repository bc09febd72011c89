"""The one path from background threads into the widgets: coalesced, throttled, on the kernel's loop.

Widget state must change on the thread that runs the kernel's event loop: comm messages from the
frontend (a slider drag) are handled there, and a redraw racing with them from a worker thread
can interleave state updates. So a panel captures the running asyncio loop when it is created
(in a notebook cell, i.e. on the kernel thread) and workers only *request* an update: they mark
what is stale, and at most one apply is ever scheduled (`loop.call_soon_threadsafe`), no sooner
than `interval` after the previous one. A burst of 100 frames is one redraw, nothing is lost
(the apply reads everything that became stale), and the worker never waits on a redraw.

Without a running loop (plain Python, tests, scripts) the same logic runs with the apply made
directly by the requesting thread under a lock, and trailing applies by a timer thread.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any, Callable

log = logging.getLogger(__name__)

ApplyFn = Callable[[set[str]], None]


def running_loop() -> asyncio.AbstractEventLoop | None:
    """The event loop running on this thread (a Jupyter kernel's, in a cell), else None."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class UiUpdater:
    """Coalesce update requests from any thread into throttled applies on the owner thread.

    `request(*parts)` may be called from any thread; `apply(parts)` receives the union of all
    parts requested since the previous apply and always runs on the loop thread (loop mode) or
    under `apply_lock` (direct mode). `immediate=True` (user actions on the owner thread: a slider
    move) applies now instead of waiting for the throttle.
    """

    def __init__(self, apply: ApplyFn, interval: float = 0.3, *,
                 loop: asyncio.AbstractEventLoop | None = None,
                 on_error: Callable[[BaseException], None] | None = None):
        self._apply_fn = apply
        self.interval = float(interval)
        self._on_error = on_error
        self._loop = loop if loop is not None else running_loop()
        self._loop_thread = threading.get_ident() if self._loop is not None else None
        self._state = threading.Lock()  # guards the fields below; held only for a few lines
        self.apply_lock = threading.RLock()  # serialises applies (direct mode: caller vs timer thread)
        self._dirty: set[str] = set()
        self._armed = False  # an apply is scheduled and will pick up everything dirty
        self._last = float("-inf")
        self._timer: Any = None
        self._later: set[Any] = set()  # pending request_later timers / loop handles, cancelled on close
        self._closed = False
        self.stats = {"requests": 0, "applies": 0, "errors": 0, "off_thread": 0, "dropped": 0}

    # ------------------------------------------------------------------ properties

    @property
    def mode(self) -> str:
        """'loop' when applies are scheduled on the kernel's event loop, 'direct' otherwise."""
        return "loop" if self._loop is not None else "direct"

    def on_owner_thread(self) -> bool:
        return self._loop is None or threading.get_ident() == self._loop_thread

    @property
    def pending(self) -> bool:
        with self._state:
            return bool(self._dirty) or self._armed

    # ------------------------------------------------------------------ requests

    def request(self, *parts: str, immediate: bool = False) -> None:
        """Mark `parts` stale and make sure one apply will run; never blocks on a redraw."""
        with self._state:
            self.stats["requests"] += 1
            self._dirty.update(parts)
            if self._closed:
                return
            foreign = not self.on_owner_thread()
            if self._armed and (foreign or not immediate):
                return  # the scheduled apply will see these parts
            if foreign:
                self._armed = True
        if foreign:
            try:
                self._loop.call_soon_threadsafe(self._arm_or_run)  # type: ignore[union-attr]
            except RuntimeError:  # the loop is closed: the kernel is shutting down
                with self._state:
                    self._armed = False
                    self.stats["dropped"] += 1
            return
        self._arm_or_run(immediate)

    def request_later(self, delay: float, *parts: str) -> None:
        """`request(*parts)` after `delay` seconds, from any thread: for a redraw that is throttled
        now but must still happen (a live sweep skipped because the last one is too recent)."""
        def fire() -> None:
            with self._state:
                self._later.discard(handle)
            self.request(*parts)

        with self._state:
            if self._closed:
                return
            if self._loop is not None:
                handle: Any = _LoopLater(self._loop, delay, fire)
            else:
                handle = threading.Timer(delay, fire)
                handle.daemon = True
                handle.name = "cht_lab-ui-later"
                handle.start()
            self._later.add(handle)

    def _arm_or_run(self, immediate: bool = False) -> None:
        with self._state:
            if self._closed:
                self._armed = False
                return
            delay = 0.0 if immediate else self._last + self.interval - time.monotonic()
            if delay > 0:
                if self._timer is None:
                    self._armed = True
                    self._timer = self._call_later(delay)
                return
        self.run_now()

    def _call_later(self, delay: float) -> Any:
        if self._loop is not None:
            return self._loop.call_later(delay, self.run_now)
        timer = threading.Timer(delay, self.run_now)
        timer.daemon = True
        timer.name = "cht_lab-ui-throttle"
        timer.start()
        return timer

    def run_now(self) -> None:
        """Apply everything stale now (on the owner thread; from elsewhere in loop mode, schedule it)."""
        if not self.on_owner_thread():
            self.request(immediate=True)
            return
        with self.apply_lock:
            with self._state:
                parts, self._dirty = self._dirty, set()
                self._armed = False
                if self._timer is not None:
                    self._timer.cancel()
                    self._timer = None
                self._last = time.monotonic()
                if self._closed or not parts:
                    return
                self.stats["applies"] += 1
                if self._loop is not None and threading.get_ident() != self._loop_thread:
                    self.stats["off_thread"] += 1  # must stay 0: asserted by the tests
            try:
                self._apply_fn(parts)
            except Exception as exc:  # an update that fails must not kill the loop or a worker
                with self._state:
                    self.stats["errors"] += 1
                log.exception("panel update failed (%s)", ", ".join(sorted(parts)))
                if self._on_error is not None:
                    try:
                        self._on_error(exc)
                    except Exception:
                        log.exception("panel error handler failed")

    def close(self) -> None:
        with self._state:
            self._closed = True
            self._dirty.clear()
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._armed = False
            for handle in self._later:
                handle.cancel()
            self._later.clear()


class _LoopLater:
    """A `loop.call_later` that can be made and cancelled from any thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop, delay: float, fn: Callable[[], None]):
        self._handle: asyncio.TimerHandle | None = None
        self._cancelled = False
        self._loop = loop
        try:
            loop.call_soon_threadsafe(self._schedule, delay, fn)
        except RuntimeError:  # the loop is closed: nothing will run anyway
            self._cancelled = True

    def _schedule(self, delay: float, fn: Callable[[], None]) -> None:
        if not self._cancelled:
            self._handle = self._loop.call_later(delay, fn)

    def cancel(self) -> None:
        self._cancelled = True
        if self._handle is not None:
            try:
                self._loop.call_soon_threadsafe(self._handle.cancel)
            except RuntimeError:
                pass
