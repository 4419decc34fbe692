"""``ddpmkit presets``: list the presets, or print one's complete configuration."""

from __future__ import annotations

import argparse
import json

from ddpmkit.config.presets import PRESETS

DESCRIPTION = "List the named starting configurations, or print one's complete settings."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", nargs="?", choices=sorted(PRESETS), help="preset to print")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ddpmkit.config.parsing import from_dict, to_dict
    from ddpmkit.config.schema import RunConfig

    if args.name is None:
        for name in sorted(PRESETS):
            print(name)
        return 0
    config = from_dict(RunConfig, PRESETS[args.name], f"preset {args.name}")
    print(json.dumps(to_dict(config), indent=2))
    return 0
