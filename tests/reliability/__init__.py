"""Reliability suite: bad inputs, faults, lifecycle, confinement (a package so its conftest does not
shadow tests/conftest.py, whose make_clip it uses)."""
