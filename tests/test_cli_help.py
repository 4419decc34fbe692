"""Every option of every command prints help, and asking for help is quick."""

import argparse
import subprocess
import sys
import time

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
