"""Config files, presets and flags: every key checked, every mistake named."""

import dataclasses
import json
import re

import pytest

from ddpmkit import PRESETS, DiffusionConfig, ModelConfig, NoiseSchedule, RunConfig, SampleConfig
from ddpmkit.config.builders import build_loss, resolve_for_data
from ddpmkit.config.parsing import ConfigError, from_dict, merge, read_config_file, to_dict


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_are_valid_configs(name):
    config = from_dict(RunConfig, PRESETS[name], name)
    assert from_dict(RunConfig, to_dict(config)) == config


def test_paper_preset_has_the_papers_settings():
    config = from_dict(RunConfig, PRESETS["cifar10-ddpm"])
    assert config.model.unet.channel_mults == (1, 2, 2, 2)
    assert config.model.unet.attention_resolutions == (16,)
    assert (config.train.lr, config.train.ema_decay, config.train.batch_size) == (2e-4, 0.9999, 128)
    assert config.diffusion.num_steps == 1000


def test_unknown_key_is_an_error_that_names_it_and_suggests_a_fix():
    with pytest.raises(ConfigError, match=r"train.*'bach_size'.*did you mean 'batch_size'"):
        from_dict(RunConfig, {"train": {"bach_size": 3}})
    with pytest.raises(ConfigError, match="unknown key 'optimiser'"):
        from_dict(RunConfig, {"optimiser": {}})


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"train": {"steps": "many"}}, "train.steps: expected int"),
        ({"train": {"precision": "fp8"}}, "train.precision: 'fp8' is not one of"),
        ({"diffusion": {"schedule": "quadratic"}}, "'quadratic' is not one of"),
        ({"model": {"unet": {"channel_mults": [1, "x"]}}}, r"channel_mults\[1\]"),
        ({"train": {"ema_decay": 1.5}}, "ema_decay"),
        ({"diffusion": {"schedule": "custom", "num_steps": 3, "betas": [0.1, 0.2]}}, "2 values"),
    ],
)
def test_ill_typed_values_are_errors(values, message):
    with pytest.raises(ConfigError, match=message):
        from_dict(RunConfig, values)


def test_config_files_in_three_formats(tmp_path):
    (tmp_path / "a.toml").write_text("[train]\nsteps = 7\n[model.unet]\nchannel_mults = [1, 2]\n")
    (tmp_path / "a.yaml").write_text(
        "train:\n  steps: 7\nmodel:\n  unet:\n    channel_mults: [1, 2]\n"
    )
    (tmp_path / "a.json").write_text(
        json.dumps({"train": {"steps": 7}, "model": {"unet": {"channel_mults": [1, 2]}}})
    )
    configs = [
        from_dict(RunConfig, read_config_file(tmp_path / f"a.{ext}"))
        for ext in ("toml", "yaml", "json")
    ]
    assert configs[0] == configs[1] == configs[2]
    assert configs[0].train.steps == 7 and configs[0].model.unet.channel_mults == (1, 2)


def test_bad_config_files_name_the_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[train\nsteps = 1")
    with pytest.raises(ConfigError, match=r"bad\.toml"):
        read_config_file(bad)
    with pytest.raises(ConfigError, match="not found"):
        read_config_file(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match=r"\.ini"):
        (tmp_path / "c.ini").write_text("")
        read_config_file(tmp_path / "c.ini")


def test_learned_variance_and_the_losses_that_train_it_go_together():
    with pytest.raises(ValueError, match="learned_variance = true"):
        DiffusionConfig(loss="hybrid")
    with pytest.raises(ValueError, match="'hybrid' or 'vlb'"):
        DiffusionConfig(learned_variance=True)
    with pytest.raises(ValueError, match="loss_weighting"):
        build_loss(
            DiffusionConfig(learned_variance=True, loss="vlb", loss_weighting="min_snr"),
            NoiseSchedule.cosine(10),
        )


def test_learned_variance_doubles_the_network_output():
    config = RunConfig(diffusion=DiffusionConfig(learned_variance=True, loss="hybrid"))
    unet = resolve_for_data(config, (3, 32, 32), None).model.unet
    assert (unet.in_channels, unet.output_channels) == (3, 6)
    mlp_config = dataclasses.replace(config, model=ModelConfig(kind="mlp"))
    assert resolve_for_data(mlp_config, (5,), None).model.mlp.output_dim == 10
    plain = resolve_for_data(RunConfig(), (3, 32, 32), None).model.unet
    assert plain.output_channels == 3


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"steps": 100_000_000}, "sample.steps = 100000000 is more than 100,000"),
        ({"rho": 0}, "sample.rho must be positive and finite, got 0"),
        ({"snr": -1}, "sample.snr must be positive and finite, got -1"),
        ({"rtol": 0}, "sample.rtol must be positive and finite, got 0"),
        ({"churn": -10}, "sample.churn must be >= 0 and finite, got -10"),
        (
            {"churn_min": 5, "churn_max": 1},
            "sample.churn_min (5.0) must not exceed churn_max (1.0)",
        ),
        ({"langevin_steps": 0}, "sample.langevin_steps must be >= 1"),
        ({"guidance": float("nan")}, "guidance: must be a finite number, got nan"),
    ],
)
def test_out_of_range_sample_options_are_errors(values, message):
    """Options that used to hang (rtol 0), exhaust memory (10^8 steps) or divide by zero (rho 0)."""
    with pytest.raises(ValueError, match=re.escape(message)):
        from_dict(SampleConfig, values)


def test_an_empty_or_malformed_section_never_resets_the_preset(tmp_path):
    """YAML `train:` with its lines commented out, then a flag of that section: the preset's other
    train keys stay (they used to fall back to the dataclass defaults, 10,000 steps)."""
    empty = tmp_path / "empty.yaml"
    empty.write_text("train:\n  # steps: 5\n")
    values = merge(merge(PRESETS["digits"], read_config_file(empty)), {"train": {"lr": 1e-3}})
    config = from_dict(RunConfig, values)
    assert config.train.steps == PRESETS["digits"]["train"]["steps"] and config.train.lr == 1e-3
    listed = tmp_path / "list.yaml"
    listed.write_text("train:\n  - 1\n")
    with pytest.raises(ConfigError, match=r"train: a section must be a table of keys, got \[1\]"):
        merge(PRESETS["digits"], read_config_file(listed))
    with pytest.raises(ConfigError, match="train: a section must be a table of keys"):
        merge(read_config_file(listed), {"train": {"lr": 1e-3}})
