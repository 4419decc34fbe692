"""``ddpmkit presets``: list the presets, or print one's complete configuration."""

from __future__ import annotations

import argparse
import json

from ddpmkit.config.presets import PRESETS, SUMMARIES

DESCRIPTION = "List the named starting configurations, or print one's complete settings."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The optional preset name of ``ddpmkit presets``, on ``parser``."""
    parser.add_argument("name", nargs="?", choices=sorted(PRESETS), help="preset to print")
    parser.set_defaults(run=run)


def listing() -> str:
    """Each preset's name and its one-line summary, one preset a line, the summaries aligned."""
    width = max(map(len, PRESETS))
    return "\n".join(f"{name:<{width}}   {SUMMARIES[name]}" for name in sorted(PRESETS))


def run(args: argparse.Namespace) -> int:
    """Print the list of presets, or the complete configuration of preset ``args.name``."""
    from ddpmkit.config.parsing import from_dict, to_dict
    from ddpmkit.config.schema import RunConfig

    if args.name is None:
        print(listing())
        return 0
    config = from_dict(RunConfig, PRESETS[args.name], f"preset {args.name}")
    print(json.dumps(to_dict(config), indent=2))
    return 0
