"""The Label tab: answer a few questions about a recording's candidates; labels.csv is written as you go.

The candidates, their order and the threshold they settle come from `cht_lab.tuning.review` (pure,
shared with `Session.review()` and the benchmark); this module only shows them. Each candidate is
shown as two frames — 1 s before its peak and the peak itself — with its time and score; one click
(or a key typed into the shortcut box: c g p n, s to skip, u to undo) decides it, and the next
question is the one that narrows the best threshold most. A moment no candidate found is added
from the scrubber: a frame-exact picture of the recording at any frame (cached thumbnails,
prefetched around the cursor), stepped by frames or seconds, or reached by typing its time read
off the score plot (the plot is a picture and takes no clicks). Every decision is saved at once
(`Session.save_labels`, atomic), so a dead kernel loses nothing; the plot and the Tuning tab
follow at once.

Keyboard shortcuts go through a text box because a notebook owns the keyboard outside of inputs
(c, n and u are cell commands there): typed characters are read and acted on one by one.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, Callable

import ipywidgets as widgets

from cht_lab.panel.gallery import placeholder
from cht_lab.panel.tab import PanelTab
from cht_lab.panel.text import format_time, plural
from cht_lab.panel.thumbs import CACHE_DIR, Thumbnails, Tile

if TYPE_CHECKING:
    from cht_lab.tuning.review import Review

log = logging.getLogger(__name__)

WIDTH = 360  # px of the candidate and scrubber pictures
KINDS = (("cut", "cut", "c"), ("gradual", "gradual", "g"), ("partial", "partial", "p"), ("none", "not an event", "n"))
KEYS = {key: kind for kind, _, key in KINDS}
PREFETCH = 15  # scrubber frames cached either side of the cursor (one decode either way)
SHOWN_ROWS = 12  # newest label rows listed


class LabelTab(PanelTab):
    """Review candidates (before/after, mark, undo, progress) and add missed events with a scrubber."""

    title = "Label"
    redraws_on = frozenset({"metric", "scores", "labels", "review", "label-thumbs"})
    lazy = True  # candidates and pictures are made when the tab is first shown
    floor: float | None = None  # candidates' floor (None: the review's default); set it, then panel.request("review")

    def build(self) -> widgets.Widget:
        W = widgets
        self._review: Review | None = None
        self._key: tuple[Any, ...] = ()
        self._error = ""
        self.current: int | None = None  # the candidate shown (a position in review.candidates)
        self._skipped: set[int] = set()
        self._listeners: list[Callable[[], None]] = []
        self._store: Thumbnails | None = None
        self.progress = _html("cht-label-progress")
        self.order = W.ToggleButtons(options=[("ask what matters", "matters"), ("time order", "time")],
                                     value="matters", style={"button_width": "150px"})
        self.order.add_class("cht-label-order")
        self.order.observe(lambda _c: self._next(), names="value")
        self.caption = _html("cht-label-caption")
        self.before, self.after = _image("cht-label-before"), _image("cht-label-after")
        self.buttons = {kind: _button(f"{text} ({key})", f"cht-label-{kind}", lambda k=kind: self.mark(k))
                        for kind, text, key in KINDS}
        self.skip_button = _button("skip (s)", "cht-label-skip", self.skip)
        self.undo_button = _button("undo (u)", "cht-label-undo", self.undo)
        self.keys = W.Text(placeholder="shortcuts: c g p n s u", description="keys", continuous_update=True,
                           layout=W.Layout(width="260px"))
        self.keys.add_class("cht-label-keys")
        self.keys.observe(self._typed, names="value")
        self.scrub = W.IntSlider(min=0, max=0, description="frame", continuous_update=False, readout=False,
                                 layout=W.Layout(width="100%", max_width="760px"))
        self.scrub.add_class("cht-label-scrub")
        self.scrub.observe(lambda _c: self._show_frame(), names="value")
        steps = [_button(text, f"cht-label-step{n:+d}", lambda n=n: self.step(n), width="70px")
                 for text, n in (("−1 s", -30), ("−1 fr", -1), ("+1 fr", 1), ("+1 s", 30))]
        self.time_box = W.FloatText(description="time (s)", step=0.1, layout=W.Layout(width="190px"))
        self.time_box.add_class("cht-label-time")
        go = _button("go", "cht-label-go", lambda: self.seek(self.time_box.value), width="60px")
        self.frame, self.frame_caption = _image("cht-label-frame"), _html("cht-label-frame-caption")
        self.add_buttons = {kind: _button(f"{text} here", f"cht-label-add-{kind}", lambda k=kind: self.add_here(k))
                            for kind, text, _ in KINDS}
        remove = _button("remove label here", "cht-label-remove", self.remove_here)
        self.rows_html, self.message = _html("cht-label-rows"), _html("cht-label-message")
        wrap = W.Layout(flex_flow="row wrap", align_items="center")
        return W.VBox([
            self.progress, W.HBox([self.order, self.keys], layout=wrap), self.caption,
            W.HBox([self.before, self.after], layout=wrap),
            W.HBox([*self.buttons.values(), self.skip_button, self.undo_button], layout=wrap), self.message,
            W.HTML("<b>add a missed event</b>: find its first frame, then mark it"),
            self.scrub, W.HBox([*steps, self.time_box, go], layout=wrap), self.frame, self.frame_caption,
            W.HBox([*self.add_buttons.values(), remove], layout=wrap), self.rows_html,
        ])

    # ------------------------------------------------------------------ the review behind the tab

    @property
    def session(self) -> Any:
        """The recorded session labeled here (None in a live panel: label it once recorded)."""
        s = getattr(self.panel, "session", None)
        return s if callable(getattr(s, "save_labels", None)) else None

    @property
    def review(self) -> Review | None:
        """The review of the panel's metric and scores (rebuilt when they or the labels on disk change)."""
        p, s = self.panel, self.session
        if s is None or p.scores.empty or p.metric not in p.scores:
            return None
        key = (p.metric, id(p.scores), p.min_gap, id(p.labels), self.floor)
        if self._review is None or key != self._key:
            from cht_lab.tuning.review import Review

            try:
                self._review = Review(p.scores, s.read_labels(non_events=True), metric=p.metric, min_gap=p.min_gap,
                                      floor=self.floor, save=s.save_labels)
                self._error = ""
            except ValueError as exc:  # LabelsError: a malformed labels.csv is reported, not raised
                self._review, self._error = None, str(exc)
                p.report_error("labels", exc)
            self._key, self.current, self._skipped = key, None, set()
            if self._review is not None:
                self._fit_scrubber()
                self._next()
        return self._review

    def active_review(self) -> Review | None:
        """The review while one is in progress (the Tuning tab then tunes from it)."""
        r = self.review
        return r if r is not None and r.active else None

    def on_change(self, callback: Callable[[], None]) -> None:
        """Call `callback()` after every change of the labels made here (e.g. a set of sessions' summary)."""
        self._listeners.append(callback)

    # ------------------------------------------------------------------ actions (buttons, keys, code)

    def mark(self, kind: str) -> None:
        """Decide the candidate shown: an event of `kind`, or "none"; then show the next question."""
        r = self.review
        if r is None or self.current is None:
            self._say("no candidate to mark")
            return
        i = self.current
        self._apply(lambda: r.decide(i, kind), f"{format_time(float(r.candidates['ts'].iloc[i]))} marked {kind}")

    def skip(self) -> None:
        """Leave the candidate shown for later."""
        if self.current is not None:
            self._skipped.add(self.current)
        self._next()
        self.panel.request("review", immediate=True)

    def undo(self) -> None:
        """Revert the last decision (made here or by the scrubber)."""
        r = self.review
        if r is not None:
            self._apply(lambda: r.undo() or None, "undone", refused="nothing to undo" if not r.decisions else None)

    def seek(self, time: float) -> None:
        """Show the recording's frame at `time` (seconds) in the scrubber."""
        r = self.review
        if r is None:
            return
        k = r.frame_at(float(time))
        if k == self.scrub.value:
            self._show_frame()
        self.scrub.value = k  # the slider's observer shows the frame

    def step(self, frames: int) -> None:
        """Move the scrubber by `frames` (negative: back)."""
        self.scrub.value = min(max(self.scrub.value + int(frames), self.scrub.min), self.scrub.max)

    def add_here(self, kind: str) -> None:
        """Label the scrubber's frame (a missed event, or "none"); replaces a label within the tolerance."""
        r = self.review
        if r is not None:
            ts = float(r.ts[self.scrub.value])
            self._apply(lambda: r.add(ts, kind), f"{format_time(ts)} added as {kind}")

    def remove_here(self) -> None:
        """Remove the labels within the tolerance of the scrubber's frame."""
        r = self.review
        if r is not None:
            ts = float(r.ts[self.scrub.value])
            self._apply(lambda: r.remove(ts), f"labels near {format_time(ts)} removed")

    def press(self, keys: str) -> None:
        """Act on shortcut keys, one character after the other (what typing into the keys box does)."""
        for ch in keys.lower():
            if ch in KEYS:
                self.mark(KEYS[ch])
            elif ch == "s":
                self.skip()
            elif ch == "u":
                self.undo()

    def _typed(self, change: dict[str, Any]) -> None:
        old, new = change["old"] or "", change["new"] or ""
        if new.startswith(old):  # only what was typed now; a cleared or edited box does nothing
            self.press(new[len(old):])
        if len(new) > 40:
            self.keys.value = ""

    def _apply(self, change: Callable[[], Any], done: str, refused: str | None = None) -> None:
        """Make one change of the labels (saved by the review), then redraw the panel and tell listeners."""
        if refused:
            self._say(refused)
            return
        try:
            change()
        except (ValueError, OSError, IndexError) as exc:  # a refused label or a failed save: nothing changed
            self.panel.report_error("label", exc)
            self._say(f"<span style='color:#c44e52'>{exc}</span>")
            return
        r = self.review
        assert r is not None
        self._say(f"{done} · saved to <code>{self.session.labels_path}</code>")
        self._next()
        with self.panel.hold_updates("review"):
            set_labels = getattr(self.panel, "set_labels", None)
            if callable(set_labels):
                set_labels(r.labels)
                self._key = (*self._key[:3], id(self.panel.labels), self.floor)  # our own change: keep the review
        for callback in self._listeners:
            try:
                callback()
            except Exception as exc:  # a listener's failure is reported, never lost, never fatal
                self.panel.report_error("label listener", exc)

    def _next(self) -> None:
        """Show the first candidate of the chosen order that was not skipped (skips wrap around)."""
        r = self._review
        order = [] if r is None else r.order(self.order.value)
        todo = [i for i in order if i not in self._skipped]
        if not todo and order:
            self._skipped.clear()
            todo = order
        self.current = todo[0] if todo else None

    def _say(self, html: str) -> None:
        self.message.value = html

    # ------------------------------------------------------------------ drawing

    def update(self, parts: set[str]) -> None:
        r = self.review
        if r is None:
            why = (self._error or ("no scores yet — score the session first" if self.session is not None else
                   "labeling works on a recorded session: cht_lab.open_session(<dir>).panel() once it has stopped"))
            self.progress.value = f"<i>{why}</i>"
            return
        head, _, rest = r.summary().partition(" · ")
        rest = rest.replace("settled:", "<b style='color:#2a7a2a'>settled</b>:", 1)
        self.progress.value = (f"<b>{head}</b> · {rest}"
                               f"<br><small>candidates: {r.metric} peaks ≥ {r.floor:.3f}; "
                               f"labels.csv holds {plural(len(r.labels), 'event')} and "
                               f"{plural(len(r.rows) - len(r.labels), 'non-event')}</small>")
        tiles = self._show_candidate(r) + self._show_frame(request=False)
        self.rows_html.value = self._rows_html(r)
        if tiles:
            self._thumbs().request(tiles)

    def _show_candidate(self, r: Review) -> list[Tile]:
        for b in (*self.buttons.values(), self.skip_button):
            b.disabled = self.current is None
        self.undo_button.disabled = not r.decisions
        if self.current is None:
            self.caption.value = "<i>every candidate is reviewed</i>" if r.total else "<i>no candidate above the floor</i>"
            self.before.value = self.after.value = placeholder(WIDTH)
            return []
        c = r.candidates.iloc[self.current]
        self.caption.value = (f"candidate at <b>{format_time(float(c.ts))}</b> ({c.ts:.3f} s) · {r.metric} "
                              f"<b>{c.score:.3f}</b> · left: 1 s before, right: its peak")
        pictures = [self._tile(int(c.before_segment), int(c.before_frame_index), float(c.before_ts), float(c.score)),
                    self._tile(int(c.segment), int(c.frame_index), float(c.ts), float(c.score))]
        upcoming = [i for i in r.order(self.order.value) if i != self.current][:2]  # prefetched
        for i in upcoming:
            n = r.candidates.iloc[i]
            pictures += [self._tile(int(n.before_segment), int(n.before_frame_index), float(n.before_ts), 0.0),
                         self._tile(int(n.segment), int(n.frame_index), float(n.ts), 0.0)]
        self.before.value, self.after.value = (self._picture(t) for t in pictures[:2])
        return pictures

    def _fit_scrubber(self) -> None:
        r = self._review
        if r is not None:
            self.scrub.max = max(len(r.ts) - 1, 0)

    def _show_frame(self, request: bool = True) -> list[Tile]:
        r = self._review
        if r is None or not len(r.ts):
            return []
        k = int(self.scrub.value)
        s = r.scores
        seg = s["segment"].to_numpy() if "segment" in s else None
        fidx = s["frame_index"].to_numpy() if "frame_index" in s else None
        if seg is None or fidx is None:
            return []
        tile = self._tile(int(seg[k]), int(fidx[k]), float(r.ts[k]), float(r.values[k]))
        self.frame.value = self._picture(tile)
        loading = "" if self._thumbs().thumb(tile) is not None else " · <i>picture loading…</i>"
        here = r.rows[(r.rows["time"] - r.ts[k]).abs() <= r.tolerance]
        label = ", ".join(f"{k_} at {format_time(t)}" for t, k_ in zip(here["time"], here["kind"])) or "none here"
        self.frame_caption.value = (f"<b>{format_time(float(r.ts[k]))}</b> ({r.ts[k]:.3f} s) · frame {int(fidx[k])} of "
                                    f"recording {int(seg[k])} · {r.metric} {r.values[k]:.3f} · labels: {label}{loading}")
        lo, hi = max(k - PREFETCH, 0), min(k + PREFETCH, len(r.ts) - 1)
        near = [tile] + [self._tile(int(seg[j]), int(fidx[j]), float(r.ts[j]), 0.0) for j in range(lo, hi + 1) if j != k]
        if request:  # the scrubber's frames only: a decode stops at the last frame it wants
            self._thumbs().request(near)
        return near

    def _rows_html(self, r: Review) -> str:
        rows = r.rows
        if rows.empty:
            return "<small>no labels yet</small>"
        shown = rows.sort_values("time", ascending=False).head(SHOWN_ROWS)
        items = " · ".join(f"{format_time(t)} {k}" for t, k in zip(shown["time"], shown["kind"]))
        more = f" (newest {SHOWN_ROWS} of {len(rows)})" if len(rows) > SHOWN_ROWS else ""
        return f"<small>labels{more}: {items}</small>"

    # ------------------------------------------------------------------ pictures

    def _thumbs(self) -> Thumbnails:
        if self._store is None:
            p = self.panel
            self._store = Thumbnails(p.session_dir / CACHE_DIR, p.thumb_store.segments, width=WIDTH,
                                     on_ready=lambda: p.request("label-thumbs"), on_error=p.report_error)
        return self._store

    @staticmethod
    def _tile(segment: int, frame_index: int, ts: float, score: float) -> Tile:
        # the full frame is shared with the Frames tab's cache (same name); the thumbnail is this tab's size
        return Tile(f"s{segment}-f{frame_index}-w{WIDTH}", ts, score, None, segment, frame_index)

    def _picture(self, tile: Tile) -> bytes:
        data = self._thumbs().thumb(tile)
        return data if data is not None else placeholder(WIDTH)

    def sync(self, timeout: float = 60.0) -> bool:
        """Wait for this tab's pictures and show them (for scripts and tests; `panel.sync()` waits for the Frames tab's)."""
        deadline = time.monotonic() + timeout
        while True:
            ok = self._thumbs().wait_idle(max(0.0, deadline - time.monotonic()))
            self.panel.request("label-thumbs", immediate=True)  # a redraw asks for what is still missing
            if not self._thumbs().busy or not ok:
                return ok and not self._thumbs().busy

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
        super().close()


def _html(css: str) -> widgets.HTML:
    w = widgets.HTML()
    w.add_class(css)
    return w


def _image(css: str) -> widgets.Image:
    w = widgets.Image(format="jpeg", width=WIDTH, layout=widgets.Layout(margin="2px"))
    w.add_class(css)
    return w


def _button(text: str, css: str, action: Callable[[], None], width: str = "auto") -> widgets.Button:
    b = widgets.Button(description=text, layout=widgets.Layout(width=width))
    b.add_class(css)
    b.on_click(lambda _b: action())
    return b
