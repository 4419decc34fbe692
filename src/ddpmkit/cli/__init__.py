"""The ``ddpmkit`` command line: one module per command, imported only when it runs."""

from ddpmkit.cli.main import main

__all__ = ["main"]
