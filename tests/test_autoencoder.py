"""The KL autoencoder (Rombach et al. 2022): shapes, the Gaussian posterior's KL, latent scaling,
diffusers ``AutoencoderKL`` folders in and out (with output parity when diffusers is installed) and
a tiny overfit."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_file

from ddpmkit.networks.autoencoder import (
    Autoencoder,
    AutoencoderConfig,
    DiagonalGaussian,
    autoencoder_loss,
)
from ddpmkit.networks.diffusers_autoencoder import (
    autoencoder_config_from_diffusers,
    diffusers_config_from_autoencoder,
)
from ddpmkit.storage.autoencoder_folders import load_autoencoder, save_autoencoder

TINY = AutoencoderConfig(
    in_channels=3, latent_channels=2, base_channels=8, channel_mults=(1, 2, 2), norm_groups=4
)

SMALL_DIFFUSERS: dict[str, Any] = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D"],
    "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D"],
    "block_out_channels": [8, 16],
    "layers_per_block": 1,
    "latent_channels": 2,
    "norm_num_groups": 4,
}


def _model(config: AutoencoderConfig = TINY, seed: int = 0) -> Autoencoder:
    """A randomly initialised autoencoder in eval mode."""
    torch.manual_seed(seed)
    return Autoencoder(config).eval()


@torch.no_grad()
def test_shapes_and_downsampling_factor() -> None:
    model = _model()
    assert TINY.downsampling_factor == 4 and TINY.level_channels == (8, 16, 16)
    x = torch.randn(2, 3, 16, 8)
    posterior = model.encode(x)
    assert posterior.mean.shape == posterior.logvar.shape == (2, 2, 4, 2)
    assert model.decode(posterior.mode()).shape == x.shape
    reconstruction, _ = model(x, torch.Generator().manual_seed(0))
    assert reconstruction.shape == x.shape
    assert model.latents(x).shape == (2, 2, 4, 2)


def test_indivisible_size_is_an_error() -> None:
    with pytest.raises(ValueError, match="downsampling_factor 4"):
        _model().encode(torch.randn(1, 3, 16, 10))


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"base_channels": 6}, "norm_groups"),
        ({"latent_channels": 0}, "latent_channels"),
        ({"channel_mults": ()}, "channel_mults"),
        ({"scaling_factor": 0.0}, "scaling_factor"),
        ({"shift_factor": math.nan}, "shift_factor"),
        ({"norm_eps": 0.0}, "norm_eps"),
    ],
)
def test_config_validation_names_the_field(overrides: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        AutoencoderConfig(**{**vars(TINY), **overrides})


def test_kl_matches_a_monte_carlo_estimate() -> None:
    """E_q[log q(z) - log p(z)] over z ~ q, with a tolerance of 5 Monte Carlo standard errors."""
    generator = torch.Generator().manual_seed(0)
    mean = torch.randn(2, 3, 2, 2, generator=generator, dtype=torch.float64)
    logvar = torch.randn(2, 3, 2, 2, generator=generator, dtype=torch.float64)
    q = DiagonalGaussian(mean, logvar)
    n = 20_000
    z = q.mean + q.std * torch.randn(n, *mean.shape, generator=generator, dtype=torch.float64)
    log_q = -0.5 * (((z - q.mean) / q.std) ** 2 + q.logvar + math.log(2 * math.pi))
    log_p = -0.5 * (z**2 + math.log(2 * math.pi))
    samples = (log_q - log_p).flatten(2).sum(dim=2)  # (n, B)
    estimate, error = samples.mean(dim=0), samples.std(dim=0) / math.sqrt(n)
    assert q.kl().shape == (2,)
    assert torch.all((q.kl() - estimate).abs() < 5 * error), (q.kl(), estimate, error)


def test_kl_of_the_prior_is_zero_and_logvar_is_clamped() -> None:
    zeros = torch.zeros(3, 2, 4, 4)
    assert torch.equal(DiagonalGaussian(zeros, zeros).kl(), torch.zeros(3))
    clamped = DiagonalGaussian(zeros, torch.full_like(zeros, -100.0))
    assert clamped.logvar.min().item() == -30.0


def test_sample_follows_the_generator() -> None:
    q = DiagonalGaussian(torch.zeros(2, 2, 4, 4), torch.zeros(2, 2, 4, 4))
    first = q.sample(torch.Generator().manual_seed(5))
    assert torch.equal(first, q.sample(torch.Generator().manual_seed(5)))
    assert not torch.equal(first, q.sample(torch.Generator().manual_seed(6)))


@torch.no_grad()
def test_latent_scaling_round_trip() -> None:
    config = AutoencoderConfig(**{**vars(TINY), "scaling_factor": 0.4, "shift_factor": 0.3})
    model = _model(config)
    x = torch.randn(2, 3, 8, 8)
    mean = model.encode(x).mode()
    latents = model.latents(x)
    torch.testing.assert_close(latents, (mean - 0.3) * 0.4)
    torch.testing.assert_close(model.images(latents), model.decode(mean), atol=1e-5, rtol=1e-5)
    sampled = model.latents(x, torch.Generator().manual_seed(0), sample=True)
    assert not torch.equal(sampled, latents)


@torch.no_grad()
def test_save_load_round_trip(tmp_path: Path) -> None:
    config = AutoencoderConfig(**{**vars(TINY), "scaling_factor": 0.25, "mid_attention": False})
    model = _model(config)
    folder = tmp_path / "vae"
    save_autoencoder(model, folder, sample_size=16, extra={"steps": 7})
    content = json.loads((folder / "config.json").read_text())
    assert content["_class_name"] == "AutoencoderKL" and content["ddpmkit"] == {"steps": 7}
    assert content["sample_size"] == 16 and content["shift_factor"] is None
    assert sorted(p.name for p in folder.iterdir()) == [
        "config.json",
        "diffusion_pytorch_model.safetensors",
    ]
    for source in (folder, tmp_path):  # the folder itself, or a pipeline folder with vae/
        loaded = load_autoencoder(source)
        assert loaded.config == config and not loaded.training
        x = torch.randn(2, 3, 8, 8)
        assert torch.equal(loaded.latents(x), model.latents(x))
        assert torch.equal(loaded.images(model.latents(x)), model.images(model.latents(x)))


def test_save_refuses_to_overwrite(tmp_path: Path) -> None:
    model = _model()
    save_autoencoder(model, tmp_path / "vae", sample_size=8)
    with pytest.raises(FileExistsError, match="vae"):
        save_autoencoder(model, tmp_path / "vae", sample_size=8)
    save_autoencoder(_model(seed=1), tmp_path / "vae", sample_size=8, overwrite=True)
    loaded = load_autoencoder(tmp_path / "vae")
    assert torch.equal(loaded.quant_conv.weight, _model(seed=1).quant_conv.weight)


def test_load_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "config.json"))):
        load_autoencoder(tmp_path)
    folder = tmp_path / "vae"
    save_autoencoder(_model(), folder, sample_size=8)
    config = folder / "config.json"
    good = config.read_text()
    config.write_text("{not json")
    with pytest.raises(ValueError, match=re.escape(str(config))):
        load_autoencoder(folder)
    config.write_text(good.replace('"silu"', '"gelu"'))
    with pytest.raises(ValueError, match=re.escape(f"{config}: ") + ".*act_fn='gelu'"):
        load_autoencoder(folder)
    config.write_text(good)
    weights = folder / "diffusion_pytorch_model.safetensors"
    tensors = load_file(weights)
    del tensors["decoder.conv_out.bias"]
    save_file(tensors, weights)
    with pytest.raises(ValueError, match=re.escape(str(weights))):
        load_autoencoder(folder)
    weights.unlink()
    with pytest.raises(FileNotFoundError, match=re.escape(str(weights))):
        load_autoencoder(folder)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("act_fn", "gelu"),
        ("_class_name", "AsymmetricAutoencoderKL"),
        ("use_quant_conv", False),
        ("use_post_quant_conv", False),
        ("out_channels", 1),
        ("latents_mean", [0.0, 0.0]),
        ("down_block_types", ["DownEncoderBlock2D", "AttnDownEncoderBlock2D"]),
        ("up_block_types", ["UpDecoderBlock2D"]),
        ("block_out_channels", [8, 12]),
        ("norm_type", "spatial"),
    ],
)
def test_unsupported_diffusers_config_names_the_key(key: str, value: Any) -> None:
    with pytest.raises(ValueError, match=key):
        autoencoder_config_from_diffusers({**SMALL_DIFFUSERS, key: value})


def test_diffusers_config_round_trip() -> None:
    config = AutoencoderConfig(**{**vars(TINY), "scaling_factor": 0.5, "shift_factor": -0.1})
    assert autoencoder_config_from_diffusers(diffusers_config_from_autoencoder(config)) == config
    defaults = autoencoder_config_from_diffusers({"_class_name": "AutoencoderKL"})
    assert defaults.level_channels == (64,) and defaults.scaling_factor == 0.18215


@torch.no_grad()
def _assert_same_outputs(vae: Any, model: Autoencoder) -> None:
    """Encoder moments and decoder outputs of diffusers' AutoencoderKL and ours agree."""
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(2, model.config.in_channels, 16, 16, generator=generator)
    theirs, ours = vae.encode(x).latent_dist, model.encode(x)
    torch.testing.assert_close(ours.mean, theirs.mean, atol=1e-5, rtol=0)
    torch.testing.assert_close(ours.logvar, theirs.logvar, atol=1e-5, rtol=0)
    z = theirs.mean + torch.randn(theirs.mean.shape, generator=generator)
    torch.testing.assert_close(model.decode(z), vae.decode(z).sample, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    "overrides",
    [
        {"in_channels": 1, "out_channels": 1},
        {"layers_per_block": 2, "mid_block_add_attention": False, "scaling_factor": 0.3},
    ],
)
def test_diffusers_folder_parity(tmp_path: Path, overrides: dict[str, Any]) -> None:
    diffusers = pytest.importorskip("diffusers")
    torch.manual_seed(0)
    vae = diffusers.AutoencoderKL(**{**SMALL_DIFFUSERS, **overrides}).eval()
    with torch.no_grad():  # away from the initialisation (GroupNorm affine 1/0, zero biases)
        for parameter in vae.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
    vae.save_pretrained(tmp_path)
    model = load_autoencoder(tmp_path)
    assert model.config.scaling_factor == vae.config.scaling_factor
    _assert_same_outputs(vae, model)


def test_our_autoencoder_loads_into_diffusers(tmp_path: Path) -> None:
    diffusers = pytest.importorskip("diffusers")
    model = _model(AutoencoderConfig(**{**vars(TINY), "in_channels": 1, "shift_factor": 0.2}))
    vae = diffusers.AutoencoderKL(**diffusers_config_from_autoencoder(model.config)).eval()
    vae.load_state_dict(model.state_dict(), strict=True)
    _assert_same_outputs(vae, model)
    save_autoencoder(model, tmp_path, sample_size=16, extra={"steps": 3})
    loaded = diffusers.AutoencoderKL.from_pretrained(tmp_path).eval()
    assert loaded.config.shift_factor == 0.2
    _assert_same_outputs(loaded, model)


@pytest.mark.slow
def test_tiny_overfit() -> None:
    """100 Adam steps on 16 fixed 8x8 images push the per-pixel MSE well below the variance."""
    torch.manual_seed(0)
    config = AutoencoderConfig(
        in_channels=1, latent_channels=4, base_channels=8, channel_mults=(1, 2), norm_groups=4
    )
    model = Autoencoder(config)
    images = torch.nn.functional.interpolate(torch.randn(16, 1, 4, 4), scale_factor=2.0)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(0)
    for _ in range(100):
        loss, stats = autoencoder_loss(model, images, kl_weight=1e-6, generator=generator)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert set(stats) == {"loss", "mse", "kl"}
    with torch.no_grad():
        mse = (model.eval().images(model.latents(images)) - images).square().mean().item()
    assert mse < 0.25 * images.var().item(), (mse, images.var().item())
