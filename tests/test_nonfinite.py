"""NaN and ±inf are refused where they enter (every float option of a config or a flag) and where
they would leave (samples, restorations, likelihood reports are not written), with the cause."""

from __future__ import annotations

import dataclasses
import math
import typing

import pytest
import torch

from ddpmkit import RunConfig, Trainer
from ddpmkit.cli import main
from ddpmkit.config.parsing import ConfigError, from_dict
from ddpmkit.generation.sampling import generate


def _float_options() -> list[tuple[str, str, int]]:
    """(section, key, length) of every float option of the sections of a RunConfig; length is
    the number of values of a fixed-length list of floats (1 otherwise)."""
    found = []
    for section in dataclasses.fields(RunConfig):
        cls = typing.get_type_hints(RunConfig)[section.name]
        if not dataclasses.is_dataclass(cls):
            continue
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            hint = hints[f.name]
            members = typing.get_args(hint) or (hint,)
            if float in members and not f.metadata.get("infinite", False):
                fixed = typing.get_origin(hint) is tuple and Ellipsis not in members
                found.append((section.name, f.name, len(members) if fixed else 1))
    return found


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
@pytest.mark.parametrize(("section", "key", "length"), _float_options())
def test_every_float_option_must_be_finite(section, key, length, value):
    given = ",".join([value] + ["0.5"] * (length - 1))
    with pytest.raises(ConfigError, match=rf"{section}\.{key}: must be a finite number, got"):
        from_dict(RunConfig, {section: {key: given}})


def test_the_sections_have_float_options_to_check():
    names = {f"{s}.{k}" for s, k, _ in _float_options()}
    assert {"train.lr", "sample.guidance", "sample.classifier_scale", "sample.eta"} <= names


@pytest.mark.parametrize(
    "flags", [["--noise_std", "inf"], ["--noise_std", "nan"], ["--blur_sigma=-inf"]]
)
def test_float_flags_must_be_finite(flags, capsys):
    with pytest.raises(SystemExit):
        main(["restore", "any-run", "--task", "deblur", "--image", "x.png", *flags])
    assert "must be a finite number" in capsys.readouterr().err


def test_repeated_timesteps_are_refused():
    with pytest.raises(ConfigError, match=r"sample.timesteps \[5, 5, 5\] must be distinct"):
        from_dict(RunConfig, {"sample": {"timesteps": "5,5,5"}})


def test_samples_that_overflow_are_not_returned_or_written(tmp_path, tiny_config):
    from ddpmkit.storage.model import load_model

    model = load_model(Trainer(tiny_config, tmp_path / "run").fit(), "cpu")
    with torch.no_grad():
        next(model.network.parameters()).fill_(math.inf)
    with pytest.raises(
        FloatingPointError,
        match=r"\d+ of \d+ samples hold NaN/Inf, so none was written: the network.s outputs",
    ):
        generate(model)
