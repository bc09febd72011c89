"""The ipywidgets panels of a recorded or live session: `session.panel()`, `live.panel()`.

base.py: `Panel`, the VBox both share (threshold/metric traits, controls, plot, tabs, export);
session_panel.py / live_panel.py: where each gets its data; tab.py: `PanelTab` and the tab list;
frames_tab.py, label_tab.py, tuning_tab.py, audio_tab.py: one tab each; session_set.py: several
sessions, one threshold; gallery.py + thumbs.py: thumbnails;
plot.py (PNG renditions) + plotting.py (the drawing, also used by the demo); sync.py: the one path
from worker threads into the widgets; text.py: how numbers are worded.
"""
