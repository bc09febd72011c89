"""Several recorded sessions in one widget: label each, tune one threshold across all of them.

A threshold is chosen once for a kind of content, not per recording, so labels from several
sessions should pin it together. `SessionSetPanel` shows the threshold with the best summed F1
(`cht_lab.tuning.sessions.best_across`: complete labels files and label reviews mixed), a line
per session, and below it the full panel of the session chosen (its Label tab included); a
decision in any Label tab updates the summary at once.

    from cht_lab.panel.session_set import SessionSetPanel
    sessions = [cht_lab.open_session(p) for p in paths]
    SessionSetPanel(sessions)
"""

from __future__ import annotations

import logging
from typing import Any, Iterable

import ipywidgets as widgets

log = logging.getLogger(__name__)


class SessionSetPanel(widgets.VBox):
    """A summary of one threshold over `sessions`, a session chooser, and the chosen session's panel."""

    def __init__(self, sessions: Iterable[Any], *, metric: str | None = None, **panel_options: Any):
        self.sessions = list(sessions)
        if not self.sessions:
            raise ValueError("a set of sessions needs at least one session")
        self.metric = metric or self.sessions[0].resolve()[1]
        self.best: Any = None  # tuning.sweep.BestThreshold across the sessions (None before any label)
        self.table: Any = None  # per-session counts at the best threshold
        self._options = panel_options
        self._panels: dict[int, Any] = {}
        self.summary = widgets.HTML()
        self.summary.add_class("cht-set-summary")
        self.rows = widgets.HTML()
        self.rows.add_class("cht-set-table")
        self.apply_button = widgets.Button(description="apply to every session", icon="check", disabled=True,
                                           layout=widgets.Layout(width="240px"))
        self.apply_button.add_class("cht-set-apply")
        self.apply_button.on_click(lambda _b: self.apply_best())
        self.chooser = widgets.Dropdown(options=[(s.id, i) for i, s in enumerate(self.sessions)], value=0,
                                        description="session", layout=widgets.Layout(width="360px"))
        self.chooser.add_class("cht-set-chooser")
        self.chooser.observe(lambda c: self.show(int(c["new"])), names="value")
        self.holder = widgets.VBox([])
        super().__init__([self.summary, self.rows, self.apply_button, self.chooser, self.holder])
        self.add_class("cht-session-set")
        self.refresh()
        self.show(0)

    def panel(self, i: int) -> Any:
        """The panel of session `i` (made when first asked for; its Label tab updates this summary)."""
        if i not in self._panels:
            p = self.sessions[i].panel(**self._options)
            if p.metric != self.metric and self.metric in p.metric_dropdown.options:
                p.metric = self.metric
            for tab in p.tabs:
                if callable(getattr(tab, "on_change", None)):
                    tab.on_change(self.refresh)
            self._panels[i] = p
        return self._panels[i]

    def show(self, i: int) -> Any:
        """Show session `i`'s panel below the summary (what the chooser does)."""
        p = self.panel(i)
        self.holder.children = [p]
        if self.chooser.value != i:
            self.chooser.value = i
        return p

    def refresh(self) -> None:
        """Recompute the threshold across the sessions from their labels as they are now."""
        from cht_lab.tuning.sessions import best_across

        try:
            reviews = {i: _review_of(p) for i, p in self._panels.items()}
            self.best, self.table = best_across(self.sessions, metric=self.metric, reviews=reviews)
        except ValueError as exc:  # TuningError (no labeled event anywhere yet), LabelsError (a bad file)
            self.best = self.table = None
            self.summary.value = f"<i>{exc}</i>"
            self.rows.value = ""
            self.apply_button.disabled = True
            return
        b = self.best
        self.summary.value = (f"<b>{len(self.sessions)} sessions</b> · one threshold for all: <b>{b.threshold:.3f}</b> "
                              f"({self.metric}) · summed F1 <b>{b.f1:.2f}</b> · same F1 for {b.low:.3f}–{b.high:.3f}")
        cells = "".join(
            f"<tr><td>{r.session}</td><td>{r.labels}</td><td>{r.events}</td><td>{r.non_events}</td><td>{r.tp}</td>"
            f"<td>{r.fp}</td><td>{r.fn}</td><td>{r.f1:.2f}</td></tr>" for r in self.table.itertuples())
        self.rows.value = ("<table><tr><th>session</th><th>labels</th><th>events</th><th>non-events</th><th>tp</th>"
                           f"<th>fp</th><th>fn</th><th>F1</th></tr>{cells}</table>")
        self.apply_button.disabled = False
        self.apply_button.description = f"apply {b.threshold:.3f} to every session"

    def apply_best(self) -> float | None:
        """Set every session's (and shown panel's) threshold to the one across the set."""
        if self.best is None:
            return None
        for s in self.sessions:
            s.metric, s.threshold = self.metric, self.best.threshold
        for p in self._panels.values():
            p.metric = self.metric
            p.threshold = self.best.threshold
        return self.best.threshold

    def close(self) -> None:
        for p in self._panels.values():
            p.close()
        for w in (self.summary, self.rows, self.apply_button, self.chooser, self.holder):
            w.close()
        super().close()


def _review_of(panel: Any) -> Any:
    """A panel's label review in progress (None without one)."""
    for tab in panel.tabs:
        active = getattr(tab, "active_review", None)
        if callable(active):
            return active()
    return None


__all__ = ["SessionSetPanel"]
