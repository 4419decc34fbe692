"""Every option of every command prints help, and asking for help is quick."""

import argparse
import dataclasses
import subprocess
import sys
import time
from typing import get_type_hints

import pytest

from ddpmkit.cli import build_parser
from ddpmkit.cli.main import COMMANDS


def _commands() -> dict[str, argparse.ArgumentParser]:
    subparsers = next(
        a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)
    )
    return dict(subparsers.choices)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_option_has_help(name):
    parser = _commands()[name]
    assert parser.description, f"ddpmkit {name} has no description"
    undocumented = [
        action.option_strings or action.dest
        for action in parser._actions
        if not isinstance(action, argparse._HelpAction) and not (action.help or "").strip()
    ]
    assert not undocumented, f"ddpmkit {name}: options without help: {undocumented}"


def test_sample_options_default_to_the_checkpoint():
    text = " ".join(_commands()["sample"].format_help().split())
    assert "the checkpoint's; 64 for a new run" in text  # --num_samples
    assert "{linspace,leading,trailing,uniform_t,log_snr,karras,none}" in text  # --grid


def test_top_level_help_lists_the_commands_without_loading_torch():
    code = (
        "import sys, contextlib, io\n"
        "from ddpmkit.cli import main\n"
        "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()) as out:\n"
        "    main(['--help'])\n"
        "assert 'torch' not in sys.modules\n"
        "print(out.getvalue())\n"
    )
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    )
    assert all(name in result.stdout for name in COMMANDS)
    assert time.perf_counter() - start < 30  # generous: a shared CI core; measured 0.2 s


@pytest.mark.parametrize("name", ["mps", "xla", "cuda", "gpu0"])
def test_an_unusable_device_is_one_line_naming_the_option(name):
    import torch

    from ddpmkit.config.execution import pick_device

    if name == "cuda" and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ValueError, match=rf"^--device '{name}'") as error:
        pick_device(name, "--device")
    assert "\n" not in str(error.value)


def _leaf_flags(cls, prefix=""):
    """``--section.key`` of every leaf option of config dataclass ``cls``."""
    hints = get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            yield from _leaf_flags(hints[f.name], f"{prefix}{f.name}.")
        else:
            yield f"--{prefix}{f.name}"


def _group_titles(parser: argparse.ArgumentParser) -> list[str]:
    return [group.title or "" for group in parser._action_groups]


def test_train_help_groups_the_flags_by_section_in_order():
    from ddpmkit.config.schema import RunConfig

    parser = _commands()["train"]
    sections = [title.split(" (")[0] for title in _group_titles(parser)[2:]]
    assert sections == [
        "data",
        "model",
        "model.text",
        "model.unet",
        "model.mlp",
        "diffusion",
        "train",
        "sample",
    ]
    for group in parser._action_groups[2:]:
        section = group.title.split(" (")[0]
        assert "(" in group.title and "\n" not in group.title  # a one-line description
        for action in group._group_actions:
            name = action.option_strings[0].removeprefix("--")
            assert name.rsplit(".", 1)[0] == section, (name, group.title)
    text = parser.format_help()
    assert "\nmodel.unet (the U-Net" in text
    assert text.index("\ndata (") < text.index("\nmodel (") < text.index("\nsample (")
    flags = set(text.split())
    missing = [flag for flag in _leaf_flags(RunConfig) if flag not in flags]
    assert not missing


@pytest.mark.parametrize("name", ["train", "sample", "train-autoencoder"])
def test_usage_is_short_and_every_flag_is_in_the_help(name):
    parser = _commands()[name]
    usage = parser.format_usage()
    assert len(usage) < 200 and usage.startswith(f"usage: ddpmkit {name} [-h]"), usage
    help_text = parser.format_help()
    for action in parser._actions:
        for flag in action.option_strings:
            assert flag in help_text, flag


def test_sample_flags_keep_their_names_in_a_group_of_their_own():
    parser = _commands()["sample"]
    assert "settings (default: the checkpoint's)" in _group_titles(parser)
    args = parser.parse_args(["run", "--sampler", "ddim", "--steps", "5"])
    assert vars(args)["config:sampler"] == "ddim" and vars(args)["config:steps"] == "5"


def test_every_preset_has_a_one_line_summary_that_presets_prints(capsys):
    from ddpmkit.cli.main import main
    from ddpmkit.config.presets import PRESETS, SUMMARIES

    assert set(SUMMARIES) == set(PRESETS)
    assert all(text.strip() and "\n" not in text for text in SUMMARIES.values())
    assert main(["presets"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(PRESETS)
    for line, name in zip(lines, sorted(PRESETS), strict=True):
        assert line.split(maxsplit=1) == [name, SUMMARIES[name]]
    assert main(["presets", "toy2d"]) == 0
    assert '"source": "toy2d"' in capsys.readouterr().out
