"""Every option documented by its dataclass field: help, choices and the default a run uses."""

import argparse
import dataclasses
from typing import get_args, get_type_hints

import pytest

from ddpmkit import SAMPLERS, DataConfig, RunConfig, SampleConfig
from ddpmkit.config.parsing import (
    ConfigError,
    add_config_flags,
    field_choices,
    format_value,
    from_dict,
)
from ddpmkit.data.config import SOURCES


def leaves(cls, prefix="", texts=None):
    """(flag name, field, type hint, default text of the enclosing section) of every leaf option."""
    hints = get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            yield from leaves(hints[f.name], f"{prefix}{f.name}.", f.metadata.get("default_texts"))
        else:
            yield f"{prefix}{f.name}", f, hints[f.name], (texts or {}).get(f.name)


def flag_help(parser, name):
    return next(a.help for a in parser._actions if f"--{name}" in a.option_strings)


LEAVES = list(leaves(RunConfig))


def test_the_walk_reaches_data_unet_and_mlp_options():
    names = {name for name, *_ in LEAVES}
    for name in ("data.source", "data.num_levels", "model.unet.channel_mults", "model.mlp.hidden"):
        assert name in names
    assert len(names) == len(LEAVES) > 80


@pytest.mark.parametrize(("name", "f"), [(name, f) for name, f, *_ in LEAVES])
def test_every_option_has_help_in_its_field(name, f):
    assert f.metadata.get("help", "").strip(), f"{name} has no help metadata"


@pytest.mark.parametrize("defaults_from", [None, "the checkpoint"])
def test_every_flag_shows_its_help_choices_and_default(defaults_from):
    parser = argparse.ArgumentParser()
    add_config_flags(parser, RunConfig, defaults_from=defaults_from)
    for name, f, hint, section_text in LEAVES:
        text = flag_help(parser, name) % {}  # argparse's %-formatting, as --help prints it
        assert text.startswith(f.metadata["help"]), name
        if f.default is not dataclasses.MISSING:
            default = section_text or f.metadata.get("default_text") or format_value(f.default)
            shown = default if defaults_from is None else f"the checkpoint's; {default} for"
            assert f"(default: {shown}" in text, (name, text)
        choices = field_choices(f, hint)
        if choices is not None:
            for choice in choices:
                assert format_value(choice) in text, (name, choice)
            if type(None) in get_args(hint):
                assert "none" in text


def test_literal_and_optional_literal_flags_list_their_choices():
    parser = argparse.ArgumentParser()
    add_config_flags(parser, RunConfig)
    actions = {a.option_strings[0]: a for a in parser._actions}
    grid = actions["--sample.grid"]
    assert grid.metavar == "{linspace,leading,trailing,uniform_t,log_snr,karras,none}"
    assert "(default: none)" in grid.help
    assert actions["--diffusion.schedule"].metavar == "{linear,cosine,sigmoid,custom}"
    assert actions["--data.source"].metavar == "{" + ",".join(SOURCES) + "}"
    assert actions["--sample.sampler"].metavar == "{" + ",".join(SAMPLERS) + "}"
    assert "(default: 1,2,2,2)" in actions["--model.unet.channel_mults"].help
    assert "(default: the data's)" in actions["--model.unet.in_channels"].help
    assert "(default: true)" in actions["--sample.use_ema"].help


def test_sample_flags_default_to_the_checkpoint():
    parser = argparse.ArgumentParser()
    add_config_flags(parser, SampleConfig, defaults_from="the checkpoint")
    assert "(default: the checkpoint's; 64 for a new run)" in flag_help(parser, "num_samples")
    assert parser.parse_args([]) == argparse.Namespace()  # unset flags stay out of the overrides


def test_the_sampler_names_come_from_the_registry():
    assert SampleConfig.__dataclass_fields__["sampler"].metadata["choices"] == tuple(SAMPLERS)
    for name in SAMPLERS:
        assert from_dict(SampleConfig, {"sampler": name}).sampler == name


def test_an_unknown_sampler_is_an_error_naming_the_key_and_the_samplers():
    with pytest.raises(ConfigError, match=r"sample\.sampler: 'heun' is not one of 'ancestral'"):
        from_dict(RunConfig, {"sample": {"sampler": "heun"}})
    with pytest.raises(ValueError, match=r"sample\.sampler: 'heun' is not one of .*'langevin'"):
        SampleConfig(sampler="heun")


def test_choices_metadata_is_checked_with_the_key():
    with pytest.raises(ConfigError, match=r"data\.toy: 'spiral' is not one of 'moons'"):
        from_dict(RunConfig, {"data": {"source": "toy2d", "toy": "spiral"}})
    with pytest.raises(ConfigError, match=r"data\.channels: 2 is not one of 1, 3, 4"):
        from_dict(RunConfig, {"data": {"source": "folder", "path": "x", "channels": "2"}})


def test_num_levels_defaults_to_the_sources_grey_levels():
    assert DataConfig().levels == 17
    assert DataConfig(source="mnist", path="data").levels == 256
    assert DataConfig(num_levels=5).levels == 5
    with pytest.raises(ValueError, match="num_levels"):
        DataConfig(num_levels=1)
