"""The gallery: a fixed pool of thumbnail tiles, newest first, with an enlarged view on click.

The tiles are created once and re-filled: making and closing widgets on every threshold move
costs comm round-trips and leaks views in some frontends, and a re-filled tile only sends the
bytes that changed. ipywidgets images take no clicks, so each tile's caption (time and score) is
the button that enlarges it.
"""

from __future__ import annotations

import io
import logging
from functools import lru_cache
from typing import Callable, Sequence

import ipywidgets as widgets

from cht_lab.panel.text import format_time, plural
from cht_lab.panel.thumbs import THUMB_WIDTH, Thumbnails, Tile

log = logging.getLogger(__name__)


@lru_cache(maxsize=4)
def placeholder(width: int = THUMB_WIDTH) -> bytes:
    """A grey 16:9 tile shown while a thumbnail is being made."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (width, width * 9 // 16), (225, 225, 225)).save(buf, "JPEG", quality=60)
    return buf.getvalue()


class _Slot:
    def __init__(self, index: int, width: int, on_click: Callable[[int], None]):
        self.key: str | None = None
        self.loaded = False  # showing the real thumbnail, not the placeholder
        self.image = widgets.Image(format="jpeg", width=width)
        self.image.add_class("cht-thumb-img")
        self.caption = widgets.Button(description="", tooltip="click to enlarge",
                                      layout=widgets.Layout(width=f"{width}px", height="26px"))
        self.caption.add_class("cht-thumb-caption")
        self.caption.on_click(lambda _b: on_click(index))
        self.box = widgets.VBox([self.image, self.caption],
                                layout=widgets.Layout(display="none", align_items="center", margin="2px"))
        self.box.add_class("cht-thumb")


class Gallery(widgets.VBox):
    """Thumbnails of frames, newest first, capped at `max_tiles`; click a caption to enlarge."""

    def __init__(self, max_tiles: int = 24, width: int = THUMB_WIDTH):
        self.max_tiles = int(max_tiles)
        self.thumb_width = width
        self.tiles: list[Tile] = []  # what is shown, newest first
        self.total = 0  # how many frames there are in all
        self.enlarged_tile: Tile | None = None
        self._store: Thumbnails | None = None
        self.header = widgets.HTML()
        self.header.add_class("cht-gallery-header")
        self._slots = [_Slot(i, width, self.enlarge) for i in range(self.max_tiles)]
        self.grid = widgets.GridBox(
            [s.box for s in self._slots],
            layout=widgets.Layout(grid_template_columns=f"repeat(auto-fill, minmax({width + 8}px, 1fr))",
                                  grid_gap="4px", width="100%"))
        self.enlarged = widgets.Image(format="jpeg", layout=widgets.Layout(max_width="100%"))
        self.enlarged.add_class("cht-enlarged")
        self.enlarged_caption = widgets.HTML()
        self.close_button = widgets.Button(description="close", icon="times",
                                           layout=widgets.Layout(width="90px"))
        self.close_button.on_click(lambda _b: self.close_enlarged())
        self._enlarged_bar = widgets.HBox([self.enlarged_caption, self.close_button])
        self.enlarged_box = widgets.VBox(
            [self._enlarged_bar, self.enlarged],
            layout=widgets.Layout(display="none", border="1px solid #ccc", padding="4px"))
        super().__init__([self.header, self.enlarged_box, self.grid])
        self.show([], 0, None)

    @property
    def loaded(self) -> int:
        """How many shown tiles have their real thumbnail (not the placeholder)."""
        return sum(1 for s in self._slots[: len(self.tiles)] if s.loaded)

    def show(self, tiles: Sequence[Tile], total: int, store: Thumbnails | None,
             empty_text: str = "no frames yet") -> list[Tile]:
        """Fill the tiles; returns the shown tiles whose thumbnails are still missing."""
        self._store = store
        self.tiles = list(tiles[: self.max_tiles])
        self.total = int(total)
        if not self.tiles:
            self.header.value = f"<i>{empty_text}</i>"
        else:
            shown = plural(len(self.tiles), "frame")
            self.header.value = (f"showing {len(self.tiles):,} of {plural(self.total, 'frame')}, newest first"
                                 if self.total > len(self.tiles) else f"{shown}, newest first")
        missing: list[Tile] = []
        for slot, tile in zip(self._slots, self.tiles):
            data = store.thumb(tile) if store is not None else None
            if slot.key != tile.key or (data is not None and not slot.loaded):
                slot.image.value = data if data is not None else placeholder(self.thumb_width)
                slot.loaded = data is not None
                slot.caption.description = f"{format_time(tile.ts)} · {tile.score:.3f}"
                slot.key = tile.key
            if slot.box.layout.display != "flex":
                slot.box.layout.display = "flex"
            if not slot.loaded:
                missing.append(tile)
        for slot in self._slots[len(self.tiles):]:
            if slot.box.layout.display != "none":
                slot.box.layout.display = "none"
            slot.key, slot.loaded = None, False
        return missing

    def enlarge(self, i: int) -> None:
        """Show tile `i` at full resolution above the grid."""
        if i >= len(self.tiles) or self._store is None:
            return
        tile = self.tiles[i]
        data = self._store.full(tile)
        if data is None:
            self.enlarged_caption.value = f"<i>{format_time(tile.ts)}: full-resolution frame not ready yet</i>"
        else:
            self.enlarged.value = data
            self.enlarged_caption.value = (f"<b>{format_time(tile.ts)}</b> ({tile.ts:.3f} s) · score "
                                           f"{tile.score:.4f} · {len(data) // 1024} KiB")
        self.enlarged_tile = tile
        self.enlarged_box.layout.display = "flex"

    def close_enlarged(self) -> None:
        self.enlarged_box.layout.display = "none"
        self.enlarged_tile = None
        self.enlarged.value = b""

    def close(self) -> None:
        for slot in self._slots:
            for w in (slot.image, slot.caption, slot.box):
                w.close()
        for w in (self.header, self.grid, self.enlarged, self.enlarged_caption, self.close_button,
                  self._enlarged_bar, self.enlarged_box):
            w.close()
        super().close()
