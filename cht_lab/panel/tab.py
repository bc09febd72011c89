"""A panel tab: a title, a widget, and the parts of the panel whose change it redraws on.

Adding a tab is one new module with a `PanelTab` subclass, plus one line in `DEFAULT_TABS`
(or `session.panel(tabs=[*DEFAULT_TABS, MyTab])` for one panel only). A tab reads what it shows
from the panel (`panel.scores`, `panel.labels`, `panel.audio`, `panel.detections`,
`panel.threshold`, `panel.metric`, ...) and never talks to worker threads: `update()` always runs
on the kernel's thread, through the panel's coalescing updater.

The parts a panel announces: "threshold", "metric", "scores", "frames" (captured frames), "labels",
"audio", "thumbs" (thumbnails became ready), "status"; a tab may request its own part name
through `panel.request(...)` / `panel.request_later(...)` (the tuning tab's "tuning").
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any, ClassVar, Iterable, Sequence

import ipywidgets as widgets

if TYPE_CHECKING:
    from cht_lab.panel.base import Panel

log = logging.getLogger(__name__)

# The panel's tabs, in order, as "module:Class" under cht_lab.panel (imported when a panel is made).
DEFAULT_TABS: tuple[str, ...] = (
    "frames_tab:FramesTab",
    "label_tab:LabelTab",
    "tuning_tab:TuningTab",
    "audio_tab:AudioTab",
)


class PanelTab:
    """Base class of the panel's tabs; subclasses set `title` and `redraws_on`, and write
    `build()` and `update()`."""

    title: ClassVar[str] = "Tab"
    redraws_on: ClassVar[frozenset[str]] = frozenset()
    lazy: ClassVar[bool] = False  # True: while hidden, changes are only noted; it redraws when shown

    def __init__(self, panel: Panel):
        self.panel = panel
        self.stale: set[str] = set(self.redraws_on)  # not drawn yet: everything it shows is stale
        self.widget = self.build()
        self.widget.add_class(f"cht-tab-{self.name}")

    @property
    def name(self) -> str:
        """Lower-case title: what `panel.tab(name)` finds it by."""
        return self.title.lower()

    def build(self) -> widgets.Widget:
        """Create the tab's widgets once; returns the tab's content."""
        raise NotImplementedError

    def update(self, parts: set[str]) -> None:
        """Redraw what `parts` (a subset of `redraws_on`) made stale. Runs on the kernel's thread."""
        raise NotImplementedError

    def close(self) -> None:
        """Close the tab's widgets (the panel calls this once, when it closes)."""
        close_tree(self.widget)


def close_tree(widget: widgets.Widget) -> None:
    """Close a widget and everything under it (children first)."""
    for child in getattr(widget, "children", ()):
        close_tree(child)
    widget.close()


def resolve_tabs(tabs: Iterable[str | type[PanelTab]] | None) -> list[type[PanelTab]]:
    """Tab classes from classes or "module:Class" names (relative to cht_lab.panel, or absolute)."""
    out: list[type[PanelTab]] = []
    for spec in DEFAULT_TABS if tabs is None else tabs:
        if isinstance(spec, str):
            module, _, name = spec.partition(":")
            if not name:
                raise ValueError(f"tab {spec!r}: expected 'module:Class'")
            mod = importlib.import_module(module if "." in module else f"cht_lab.panel.{module}")
            spec = getattr(mod, name)
        if not (isinstance(spec, type) and issubclass(spec, PanelTab)):
            raise TypeError(f"{spec!r} is not a PanelTab subclass")
        out.append(spec)
    return out


def dispatch(tabs: Sequence[PanelTab], selected: int | None, parts: set[str],
             on_error: Any = None) -> None:
    """Give each tab the parts it redraws on: now if it is shown or not lazy, else when it is shown.

    A failing tab is reported through `on_error(where, exc)` and does not stop the others.
    """
    for i, tab in enumerate(tabs):
        hit = parts & tab.redraws_on
        if tab.lazy and i != selected:
            tab.stale |= hit
            continue
        todo = hit | tab.stale
        if not todo:
            continue
        tab.stale = set()
        try:
            tab.update(todo)
        except Exception as exc:  # one broken tab must not take the panel down
            log.exception("panel tab %r failed to update", tab.title)
            if on_error is not None:
                on_error(f"{tab.name} tab", exc)
