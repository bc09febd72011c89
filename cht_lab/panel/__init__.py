"""The ipywidgets panels: thumbnails, threshold, score plot and tabs for a recorded or live session."""
