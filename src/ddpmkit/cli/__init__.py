"""The ``ddpmkit`` command line: one module per command, imported only when it runs."""

from ddpmkit.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
