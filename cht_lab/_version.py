"""The package version, in a module every layer may import without pulling in the public API."""

__version__ = "0.1.0"
