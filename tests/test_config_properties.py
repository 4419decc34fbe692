"""Property tests: any config file, config table or command line gives a valid config or a clean
error (ValueError, which the CLI prints on one line, or argparse's usage error), never a traceback.

The strategies mix real section and key names (so the values reach the validators) with junk, and
values of every kind a TOML/YAML/JSON file or a flag can hold: NaN, ±inf, negative and huge
numbers, empty and odd strings, lists, nested tables, None.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ddpmkit import RunConfig, SampleConfig
from ddpmkit.cli import build_parser
from ddpmkit.cli.train import config_from_args
from ddpmkit.config.parsing import (
    ConfigError,
    from_dict,
    merge,
    overrides_from_args,
    read_config_file,
    to_dict,
)

DEFAULTS = RunConfig()
KEYS = {
    f.name: [key.name for key in dataclasses.fields(getattr(DEFAULTS, f.name))]
    for f in dataclasses.fields(RunConfig)
}
EXTREMES = [0, -1, 1, 2, 3, 10**12, -(10**12), 0.0, -0.5, 1e-300, 1e300, math.inf, -math.inf,
            math.nan, "", "auto", "nan", "inf", "-1", "0", "1,2", "true", "cpu", "cuda:7", "tpu",
            True, False, None]  # fmt: skip

scalars = st.one_of(
    st.sampled_from(EXTREMES),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.booleans(),
    st.none(),
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)


nested = st.dictionaries(
    st.sampled_from([f.name for f in dataclasses.fields(DEFAULTS.model.unet)] + ["depth"]),
    values,
    max_size=4,
)


@st.composite
def config_tables(draw: st.DrawFn) -> dict[str, object]:
    """A config table: real sections with real or junk keys, sometimes a junk section or a
    section that is not a table."""
    table: dict[str, object] = {}
    for section in draw(st.lists(st.sampled_from([*KEYS, "trian", ""]), max_size=3)):
        if draw(st.integers(0, 9)) == 0:
            table[section] = draw(values)
            continue
        names = KEYS.get(section, ["steps"])
        keys = draw(st.lists(st.sampled_from([*names, "stpes", "x"]), max_size=4))
        table[section] = {key: draw(nested if key in ("unet", "mlp") else values) for key in keys}
    return table


def _valid_or_config_error(make) -> None:
    with contextlib.suppress(ValueError):  # ConfigError and the dataclasses' own checks
        make()


@settings(max_examples=200, deadline=None)
@given(config_tables())
def test_any_config_table_is_a_config_or_a_named_error(table):
    _valid_or_config_error(lambda: from_dict(RunConfig, table, "config.toml"))


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@example(text="?", suffix=".yaml")  # {None: None}: a key that is no name (found by hypothesis)
@example(text="1: 2", suffix=".yaml")
@given(text=st.one_of(st.text(max_size=200), st.binary(max_size=200).map(lambda b: b.decode("latin-1"))),
       suffix=st.sampled_from([".toml", ".yaml", ".json", ".yml", ".txt"]))  # fmt: skip
def test_any_config_file_is_read_or_refused_by_name(tmp_path, text, suffix):
    path = tmp_path / f"config{suffix}"
    path.write_text(text, encoding="utf-8", errors="surrogateescape")
    try:
        table = read_config_file(path)
    except ConfigError as error:
        assert str(path) in str(error)
        return
    _valid_or_config_error(lambda: from_dict(RunConfig, table, str(path)))


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(config_tables())
def test_any_table_written_as_json_gives_the_same_outcome_as_in_memory(tmp_path, table):
    """A file goes through the same merge and checks as a table (the CLI merges every source
    into the defaults): what one accepts the other accepts, with the same result."""
    try:
        text = json.dumps(table)
    except ValueError:
        return
    path = tmp_path / "config.json"
    path.write_text(text)
    outcomes = []
    for source in (lambda: table, lambda: read_config_file(path)):
        try:
            outcomes.append(from_dict(RunConfig, merge({}, source()), "c"))
        except ValueError:
            outcomes.append("error")
    assert outcomes[0] == outcomes[1]


TRAIN_FLAGS = [
    action.option_strings[0]
    for action in build_parser("train")._subparsers._group_actions[0].choices["train"]._actions
    if action.option_strings
    and action.option_strings[0].startswith("--")
    and "." in action.option_strings[0]
]
flag_values = st.one_of(
    st.sampled_from([str(v) for v in EXTREMES]), st.text(max_size=10), st.integers().map(str),
    st.floats().map(repr),
)  # fmt: skip


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    pairs=st.lists(
        st.tuples(st.sampled_from([*TRAIN_FLAGS, "--train.step", "--model.unet.base", "--bogus"]),
                  flag_values),
        max_size=4,
    ),
    preset=st.sampled_from([None, "digits", "toy2d", "cifar10-ddpm", "nope"]),
)  # fmt: skip
def test_any_train_command_line_is_a_config_or_a_clean_error(tmp_path, pairs, preset):
    """What ``ddpmkit train`` does before it loads data: argparse, then presets, files and flags
    merged and checked. argparse's errors exit with status 2 and a usage line."""
    argv = ["train", "--out", str(tmp_path / "run")]
    if preset:
        argv += ["--preset", preset]
    for flag, value in pairs:
        argv += [flag, value]
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            args = build_parser("train").parse_args(argv)
    except SystemExit as stop:
        assert stop.code == 2 and "error:" in stderr.getvalue()
        return
    _valid_or_config_error(lambda: config_from_args(args, Path(args.out)))


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "--train.steps", "1e3"],
        ["train", "--train.lr", "nan"],
        ["train", "--diffusion.betas", "0.1,nan"],
        ["train", "--model.unet.channel_mults", ""],
        ["train", "--data.image_size", "0,0"],
        ["train", "--sample.steps", "-5"],
    ],
)
def test_out_of_range_flags_are_refused(tmp_path, argv):
    args = build_parser("train").parse_args([*argv, "--out", str(tmp_path / "r")])
    with pytest.raises(ValueError):
        config_from_args(args, Path(args.out))


def _flags(command: str) -> list[str]:
    parser = build_parser(command)._subparsers._group_actions[0].choices[command]
    return [a.option_strings[-1] for a in parser._actions if a.option_strings and a.nargs != 0]


COMMAND_FLAGS = {name: _flags(name) for name in ("sample", "eval", "inpaint", "restore", "edit")}


@settings(max_examples=200, deadline=None)
@given(
    command=st.sampled_from(sorted(COMMAND_FLAGS)),
    data=st.data(),
)
def test_any_command_line_of_the_other_commands_parses_or_is_refused(command, data):
    """sample/eval/inpaint/restore/edit: argparse with the ranged types of cli/options.py; for
    sample, the flags then merged into the checkpoint's sample settings (here the defaults)."""
    pairs = data.draw(
        st.lists(st.tuples(st.sampled_from(COMMAND_FLAGS[command]), flag_values), max_size=4)
    )
    argv = [command, "runs/x", *(word for pair in pairs for word in pair)]
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            args = build_parser(command).parse_args(argv)
    except SystemExit as stop:
        assert stop.code == 2 and "error:" in stderr.getvalue()
        return
    if command == "sample":
        overrides = overrides_from_args(args)
        _valid_or_config_error(
            lambda: from_dict(SampleConfig, merge(to_dict(SampleConfig()), overrides), "sample")
        )
