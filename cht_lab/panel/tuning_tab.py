"""The Tuning tab: precision, recall and F1 against threshold from the labels, and "apply best".

One sweep gives the curves and the best threshold (the same call as `session.best_threshold()`).
It is redone whenever the scores, labels or metric it was computed from are replaced — for a live
session that is every poll, so while the session is still growing a sweep is redone at most every
`refresh_interval` seconds, and a skipped one is scheduled for later: the curves and the best
threshold always end up computed on every score the session has.

While a label review is in progress (the Label tab's `Review.active`: its labels hold `none`
decisions), the curves and the best threshold come from the review (`cht_lab.tuning.review`):
candidates nobody reviewed yet are unknown, not false detections, so the answer is right after a
few decisions. Either way the tab says how well the labels pin the threshold: the range of
thresholds with the same F1.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import ipywidgets as widgets
import pandas as pd

from cht_lab.panel.tab import PanelTab
from cht_lab.panel.text import format_time, plural

log = logging.getLogger(__name__)

NO_LABELS = ("<i>no labels yet: mark events in the Label tab, or add a labels.csv (columns time,end,kind,note)"
             "</i>")


class TuningTab(PanelTab):
    """Curves and best threshold for the panel's metric; the button moves the threshold there."""

    title = "Tuning"
    redraws_on = frozenset({"threshold", "metric", "scores", "labels", "tuning"})
    lazy = True  # a sweep reads every score: done when the tab is shown or the best is asked for
    refresh_interval = 5.0  # s between sweeps while a live session's scores grow

    def build(self) -> widgets.Widget:
        self.info = widgets.HTML()
        self.info.add_class("cht-tuning-info")
        self.apply_best_button = widgets.Button(description="apply best threshold", icon="check", disabled=True,
                                                layout=widgets.Layout(width="240px"))
        self.apply_best_button.add_class("cht-apply-best")
        self.apply_best_button.on_click(lambda _b: self.panel.apply_best())
        self.plot = widgets.Image(format="png", layout=widgets.Layout(width="100%", max_width="560px"))
        self.plot.add_class("cht-tuning-plot")
        self._renderer: Any = None
        self._inputs: tuple[Any, ...] = ()  # (metric, scores, labels, min_gap) the cached sweep was made from
        self._result: tuple[pd.DataFrame, float | None] | None = None
        self.range: tuple[float, float] | None = None  # thresholds with the best F1: (low, high]
        self._swept_at = float("-inf")
        self._later = False  # a refresh is scheduled
        self.swept_rows = 0  # how many score rows the current sweep saw
        return widgets.VBox([self.info, self.apply_best_button, self.plot])

    # ------------------------------------------------------------------ the sweep

    def result(self) -> tuple[pd.DataFrame, float | None] | None:
        """(sweep, best threshold or None) for the panel's scores, labels and metric; None without both."""
        p = self.panel
        scores, labels, metric = p.scores, p.labels, p.metric
        review = self.review()
        if review is None and (labels is None or labels.empty):
            return None
        if scores.empty or metric not in scores:
            return None
        inputs = (metric, scores, labels, p.min_gap, None if review is None else (id(review), review.version))
        if self._result is not None and _same(inputs, self._inputs):
            return self._result
        same_question = self._result is not None and _same(inputs[:1] + inputs[2:], self._inputs[:1] + self._inputs[2:])
        wait = self._swept_at + self.refresh_interval - time.monotonic()
        if same_question and p.growing and wait > 0:
            if not self._later:  # the newest scores get their sweep once the interval is over
                self._later = True
                p.request_later(wait, "tuning")
            return self._result
        self._later = False
        self._result = self._sweep(scores, labels, metric, p.min_gap) if review is None else self._reviewed(review)
        self._inputs, self._swept_at, self.swept_rows = inputs, time.monotonic(), len(scores)
        return self._result

    def _sweep(self, scores: pd.DataFrame, labels: pd.DataFrame, metric: str,
               min_gap: float) -> tuple[pd.DataFrame, float | None]:
        from cht_lab.tuning import sweep as tuning

        try:
            found = tuning.find_best(scores, labels, metric=metric, min_gap=min_gap)
            self.range = (float(found.low), float(found.high))
            return found.sweep, float(found.threshold)
        except ValueError as exc:  # TuningError: no threshold finds any labeled event (yet)
            log.info("no best threshold for %s: %s", metric, exc)
            self.range = None
            return tuning.sweep(scores, labels, metric=metric, min_gap=min_gap), None

    def _reviewed(self, review: Any) -> tuple[pd.DataFrame, float | None]:
        pl = review.plateau
        self.range = (pl.low, pl.high) if pl.events else None
        return review.sweep(), (pl.threshold if pl.events else None)

    def review(self) -> Any:
        """The Label tab's review while one is in progress (None otherwise, or without a Label tab)."""
        for t in getattr(self.panel, "tabs", ()):
            find = getattr(t, "active_review", None)
            if callable(find):
                return find()
        return None

    @property
    def best_threshold(self) -> float | None:
        result = self.result()
        return None if result is None else result[1]

    # ------------------------------------------------------------------ drawing

    def update(self, parts: set[str]) -> None:
        from cht_lab.tuning import sweep as tuning

        p = self.panel
        review = self.review()
        if review is None and (p.labels is None or p.labels.empty):
            self._show(NO_LABELS, best=None)
            return
        result = self.result()
        if result is None:
            self._show("<i>no scores yet</i>", best=None)
            return
        sweep, best = result
        if review is not None:
            self._show_review(review, sweep, best)
            return
        scores, labels, metric, threshold = p.scores, p.labels, p.metric, p.threshold
        now = tuning.evaluate(scores, labels, threshold, metric=metric, min_gap=p.min_gap)
        text = (f"current {threshold:.3f}: precision {now.precision:.2f} · recall {now.recall:.2f} · "
                f"<b>F1 {now.f1:.2f}</b>")
        if best is not None:
            at_best = tuning.evaluate(scores, labels, best, metric=metric, min_gap=p.min_gap)
            text = (f"best threshold <b>{best:.3f}</b> ({metric}): precision {at_best.precision:.2f} · "
                    f"recall {at_best.recall:.2f} · <b>F1 {at_best.f1:.2f}</b>{self._range_html()}<br>{text}")
        else:
            text = f"<i>no threshold finds any of the labeled events yet</i><br>{text}"
        note = f"{plural(len(labels), 'labeled event')}"
        if self.swept_rows < len(scores):
            covered = scores["ts"].iloc[self.swept_rows - 1] if self.swept_rows else 0.0
            note += f" · curves from the first {format_time(float(covered))}, refreshed every {self.refresh_interval:g} s"
        self._show(f"{text}<br><small>{note}</small>", best)
        self._plot(sweep, best)

    def _range_html(self) -> str:
        if self.range is None:
            return ""
        return f" · same F1 for {self.range[0]:.3f}–{self.range[1]:.3f} <small>(how well the labels pin it)</small>"

    def _show_review(self, review: Any, sweep: pd.DataFrame, best: float | None) -> None:
        """The review's answer: decided moments only, unreviewed candidates unknown."""
        p, pl = self.panel, review.plateau
        now = review.at(p.threshold)
        text = (f"current {p.threshold:.3f}: precision {now['precision']:.2f} · recall {now['recall']:.2f} · "
                f"<b>F1 {now['f1']:.2f}</b>")
        if best is None:
            text = f"<i>no event marked yet: the review has only non-events</i><br>{text}"
        else:
            text = (f"best threshold <b>{best:.3f}</b> ({review.metric}): precision {pl.precision:.2f} · recall "
                    f"{pl.recall:.2f} · <b>F1 {pl.f1:.2f}</b>{self._range_html()}<br>{text}")
        state = ("settled: these labels are enough to choose the threshold" if pl.settled else
                 f"{plural(pl.inside, 'unreviewed candidate')} inside the range can still move it")
        note = (f"from the label review: {review.reviewed} of {review.total} candidates reviewed, "
                f"{plural(pl.events, 'event')} and {plural(pl.non_events, 'non-event')} decided · {state} · "
                "unreviewed candidates are not counted")
        self._show(f"{text}<br><small>{note}</small>", best)
        self._plot(sweep, best)

    def _plot(self, sweep: pd.DataFrame, best: float | None) -> None:
        p = self.panel
        if self._renderer is None:
            from cht_lab.panel.plot import TuningPlot

            self._renderer = TuningPlot()
        self.plot.value = self._renderer.render(sweep, best, p.threshold, p.metric)
        self.plot.layout.display = None

    def _show(self, html: str, best: float | None) -> None:
        self.info.value = html
        self.apply_best_button.disabled = best is None
        self.apply_best_button.description = "apply best threshold" if best is None else f"apply best ({best:.3f})"
        if best is None and "F1" not in html:
            self.plot.layout.display = "none"


def _same(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    """Element-wise: identity for tables (a new DataFrame is new data), equality for the rest."""
    return len(a) == len(b) and all(
        x is y if isinstance(x, pd.DataFrame) or isinstance(y, pd.DataFrame) or x is None else x == y
        for x, y in zip(a, b))
