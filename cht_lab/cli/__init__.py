"""The `cht-lab` command (see cht_lab.cli.main for the exit codes)."""

from cht_lab.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
