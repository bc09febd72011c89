"""cht_lab: watch and tune live scene detection on screen-share recordings, in Jupyter."""

__version__ = "0.1.0"
