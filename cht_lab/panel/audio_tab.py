"""The Audio tab: the session's WAV chunks, with level and speech share, and a player.

The player is made when a chunk is selected, with that chunk's bytes, and replaced on the next
selection. ipywidgets' Audio view turns its value into a blob URL for the <audio> element; an empty
placeholder player is a zero-byte blob, which Chromium requests by byte range and reports as
ERR_REQUEST_RANGE_NOT_SATISFIABLE in the console (reproduced with tests/test_browser.py, which
fails on any console error).
"""

from __future__ import annotations

import logging
from typing import Any

import ipywidgets as widgets

from cht_lab.panel.tab import PanelTab
from cht_lab.panel.text import fmt_value, format_time, plural

log = logging.getLogger(__name__)

MAX_ROWS = 8  # list rows shown before it scrolls


class AudioTab(PanelTab):
    """A list of the chunks (time, level, speech share) and a player for the selected one."""

    title = "Audio"
    redraws_on = frozenset({"audio"})

    def build(self) -> widgets.Widget:
        self.info = widgets.HTML()
        self.info.add_class("cht-audio-info")
        self.chunks = widgets.Select(options=[], rows=2, layout=widgets.Layout(width="520px", max_width="100%"))
        self.chunks.add_class("cht-audio-list")
        self.chunks.observe(self._selected, names="value")
        self.player: widgets.Audio | None = None
        self._player_box = widgets.VBox([])
        return widgets.VBox([self.info, widgets.HBox([self.chunks, self._player_box],
                                                     layout=widgets.Layout(flex_flow="row wrap"))])

    def update(self, parts: set[str]) -> None:
        audio = self.panel.audio
        if audio.empty:
            self.info.value = f"<i>{self.panel.no_audio_text()}</i>"
            if self.chunks.options:
                self.chunks.options = []
            self.chunks.layout.display = "none"
            return
        options = [(_label(r), str(r.id)) for r in audio.sort_values("start").itertuples(index=False)]
        if list(self.chunks.options) != options:
            keep = self.chunks.value
            self.chunks.options = options
            if keep in {v for _, v in options}:
                self.chunks.value = keep
        self.chunks.rows = max(2, min(len(options), MAX_ROWS))  # a size-1 <select> would be a dropdown
        self.chunks.layout.display = None
        if self.chunks.value is None:
            total = float(audio["duration"].sum()) if "duration" in audio else 0.0
            self.info.value = (f"{plural(len(audio), 'chunk')}, {format_time(total)} of audio — "
                               "select one to play")

    def _selected(self, change: dict[str, Any]) -> None:
        chunk_id = change["new"]
        audio = self.panel.audio
        if chunk_id is None or audio.empty:
            return
        rows = audio[audio["id"].astype(str) == chunk_id]
        if rows.empty:
            return
        row = rows.iloc[0]
        path = self.panel.session_dir / str(row["path"])
        try:
            data = path.read_bytes()
        except OSError as exc:
            self.panel.report_error(f"audio {chunk_id}", exc)
            return
        old, self.player = self.player, widgets.Audio(value=data, format="wav", autoplay=False, loop=False,
                                                      controls=True)
        self.player.add_class("cht-player")
        self._player_box.children = [self.player]
        if old is not None:
            old.close()
        speech = row.get("speech_ratio")
        self.info.value = (f"<b>{chunk_id}</b> {format_time(float(row['start']))}, "
                           f"{float(row['duration']):.1f} s · level {fmt_value(row.get('rms_dbfs'), '.1f', ' dBFS')} "
                           f"(peak {fmt_value(row.get('peak_dbfs'), '.1f', ' dBFS')}) · speech "
                           f"{fmt_value(None if speech is None else 100 * float(speech), '.0f', '%')}")

    def close(self) -> None:
        if self.player is not None:
            self.player.close()
        super().close()


def _label(r: Any) -> str:
    speech = getattr(r, "speech_ratio", None)
    start = float(r.start)
    return (f"{r.id}  {format_time(start)}–{format_time(start + float(r.duration))}  "
            f"{fmt_value(getattr(r, 'rms_dbfs', None), '.0f', ' dBFS')}  "
            f"speech {fmt_value(None if speech is None else 100 * speech, '.0f', '%')}")
