"""Parity of ddpmkit's UNet with diffusers' UNet2DModel: weights load with strict=True, outputs
agree.

Needs the optional ``diffusers`` extra; downloads nothing (configs are written out, weights are
random).
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from ddpmkit import UNet, UNetConfig
from ddpmkit.networks import unet_config_from_diffusers

diffusers = pytest.importorskip("diffusers")

pytestmark = pytest.mark.slow

SMALL_DIFFUSERS: dict[str, Any] = {
    "sample_size": 16,
    "in_channels": 3,
    "out_channels": 3,
    "block_out_channels": (32, 64),
    "down_block_types": ("DownBlock2D", "AttnDownBlock2D"),
    "up_block_types": ("AttnUpBlock2D", "UpBlock2D"),
    "layers_per_block": 2,
    "norm_num_groups": 8,
    "norm_eps": 1e-6,
    "downsample_padding": 0,
    "flip_sin_to_cos": False,
    "freq_shift": 1,
    "attention_head_dim": None,
}

THREE_LEVELS: dict[str, Any] = {
    **SMALL_DIFFUSERS,
    "sample_size": 32,
    "in_channels": 1,
    "out_channels": 2,
    "block_out_channels": (16, 32, 32),
    "down_block_types": ("AttnDownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
    "up_block_types": ("AttnUpBlock2D", "UpBlock2D", "AttnUpBlock2D"),
    "layers_per_block": 1,
    "attention_head_dim": 8,  # multi-head attention (4 heads of 8 at 32 channels)
}

# config.json of the public checkpoints (google/ddpm-cifar10-32; -celebahq-256, -church-256,
# -bedroom-256 and -cat-256 share the 256 one)
DDPM_COMMON: dict[str, Any] = {
    "act_fn": "silu",
    "attention_head_dim": None,
    "center_input_sample": False,
    "downsample_padding": 0,
    "flip_sin_to_cos": False,
    "freq_shift": 1,
    "in_channels": 3,
    "layers_per_block": 2,
    "mid_block_scale_factor": 1,
    "norm_eps": 1e-06,
    "norm_num_groups": 32,
    "out_channels": 3,
    "time_embedding_type": "positional",
}
DDPM_CIFAR10_32 = {
    **DDPM_COMMON,
    "block_out_channels": [128, 256, 256, 256],
    "down_block_types": ["DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"],
    "sample_size": 32,
}
DDPM_256 = {
    **DDPM_COMMON,
    "block_out_channels": [128, 128, 256, 256, 512, 512],
    "down_block_types": ["DownBlock2D"] * 4 + ["AttnDownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "AttnUpBlock2D"] + ["UpBlock2D"] * 4,
    "sample_size": 256,
}


def _pair(kwargs: dict[str, Any], seed: int = 0) -> tuple[Any, UNet]:
    """A random diffusers UNet2DModel and our UNet holding the same weights (loaded strictly)."""
    torch.manual_seed(seed)
    reference = diffusers.UNet2DModel(**kwargs).eval()
    ours = UNet(unet_config_from_diffusers(kwargs)).eval()
    ours.load_state_dict(reference.state_dict(), strict=True)
    return reference, ours


def _shapes(module: torch.nn.Module) -> list[tuple[str, tuple[int, ...]]]:
    return [(k, tuple(v.shape)) for k, v in module.state_dict().items()]


@pytest.mark.parametrize(
    ("kwargs", "shape"),
    [
        (SMALL_DIFFUSERS, (3, 3, 16, 16)),
        (SMALL_DIFFUSERS, (2, 3, 8, 24)),  # non-square, not sample_size
        (THREE_LEVELS, (2, 1, 32, 16)),
    ],
)
def test_outputs_match_diffusers(kwargs: dict[str, Any], shape: tuple[int, ...]) -> None:
    reference, ours = _pair(kwargs)
    assert _shapes(ours) == _shapes(reference)
    x = torch.randn(*shape)
    with torch.no_grad():
        for t in (0.0, 1.5, 250.0, 999.25):
            timesteps = torch.full((shape[0],), t)
            expected = reference(x, timesteps).sample
            torch.testing.assert_close(ours(x, timesteps), expected, atol=1e-5, rtol=1e-5)


def test_class_conditional_outputs_match_diffusers() -> None:
    reference, ours = _pair({**SMALL_DIFFUSERS, "num_class_embeds": 5})
    x = torch.randn(3, 3, 16, 16)
    t = torch.tensor([3.0, 400.5, 998.0])
    labels = torch.tensor([0, 4, 2])
    with torch.no_grad():
        expected = reference(x, t, class_labels=labels).sample
        torch.testing.assert_close(ours(x, t, labels), expected, atol=1e-5, rtol=1e-5)


def test_scalar_timestep_matches_diffusers() -> None:
    reference, ours = _pair(SMALL_DIFFUSERS)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        expected = reference(x, torch.tensor(42.0)).sample
        torch.testing.assert_close(ours(x, torch.tensor(42.0)), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    ("config", "parameters"), [(DDPM_CIFAR10_32, 35_746_307), (DDPM_256, 113_673_219)]
)
def test_public_checkpoint_layout(config: dict[str, Any], parameters: int) -> None:
    """Same parameter names, order and shapes as diffusers for the google/ddpm-* configs."""
    with torch.device("meta"):
        reference = diffusers.UNet2DModel(**config)
        ours = UNet(unet_config_from_diffusers(config))
    assert _shapes(ours) == _shapes(reference)
    assert sum(p.numel() for p in ours.parameters()) == parameters
    assert sum(p.numel() for p in reference.parameters()) == parameters


def test_cifar10_default_config_is_the_checkpoint() -> None:
    assert unet_config_from_diffusers(DDPM_CIFAR10_32, dropout=0.1) == UNetConfig(out_channels=3)
