"""The Frames tab: thumbnails of the frames the threshold selects (recorded) or captured (live)."""

from __future__ import annotations

import ipywidgets as widgets

from cht_lab.panel.gallery import Gallery
from cht_lab.panel.tab import PanelTab


class FramesTab(PanelTab):
    """The gallery, newest first; missing thumbnails are made in the background (`thumbs.Thumbnails`)."""

    title = "Frames"
    redraws_on = frozenset({"threshold", "metric", "scores", "frames", "thumbs"})

    def build(self) -> widgets.Widget:
        self.gallery = Gallery(self.panel.max_thumbs)
        self.gallery.add_class("cht-gallery")
        return self.gallery

    def update(self, parts: set[str]) -> None:
        p = self.panel
        tiles, total = p.tiles(self.gallery.max_tiles)
        missing = self.gallery.show(tiles, total, p.thumb_store, empty_text=p.no_frames_text())
        if missing:
            p.thumb_store.request(tiles)

    def close(self) -> None:
        self.gallery.close()  # the gallery closes its own pool of tiles
