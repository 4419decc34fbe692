"""Fast CPU tests of ddpmkit.networks: shapes, embeddings, conditioning, batch independence,
configs.
"""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from ddpmkit import UNet, UNetConfig
from ddpmkit.networks import (
    MLPConfig,
    MLPDenoiser,
    diffusers_config_from,
    unet_config_from_diffusers,
)
from ddpmkit.networks.embeddings import TimestepEmbedding, timestep_embedding

# a 2-level U-Net small enough to run in milliseconds; attention at the second level (8x8 of 16x16)
SMALL = UNetConfig(
    in_channels=3,
    sample_size=16,
    base_channels=16,
    channel_mults=(1, 2),
    layers_per_block=1,
    attention_resolutions=(8,),
    dropout=0.1,
    norm_groups=8,
)

CIFAR10_PARAMETERS = 35_746_307  # diffusers UNet2DModel with the google/ddpm-cifar10-32 config


def _eval(config: UNetConfig, seed: int = 0) -> UNet:
    torch.manual_seed(seed)
    return UNet(config).eval()


# --- (a) the paper's CIFAR-10 model -------------------------------------------------------------


def test_cifar10_parameter_count_matches_diffusers() -> None:
    """Ho et al. (2020) report 35.7M parameters; diffusers' ddpm-cifar10-32 has this many."""
    with torch.device("meta"):  # count without allocating or initialising
        model = UNet(UNetConfig())
    assert sum(p.numel() for p in model.parameters()) == CIFAR10_PARAMETERS


def test_cifar10_state_dict_names() -> None:
    with torch.device("meta"):
        keys = set(UNet(UNetConfig()).state_dict())
    expected = {
        "conv_in.weight",
        "time_embedding.linear_1.weight",
        "time_embedding.linear_2.bias",
        "down_blocks.0.resnets.0.time_emb_proj.weight",
        "down_blocks.0.downsamplers.0.conv.weight",
        "down_blocks.1.resnets.0.conv_shortcut.weight",
        "down_blocks.1.attentions.1.to_out.0.weight",
        "mid_block.resnets.1.norm2.weight",
        "mid_block.attentions.0.group_norm.bias",
        "up_blocks.2.attentions.2.to_q.bias",
        "up_blocks.3.resnets.2.conv_shortcut.weight",
        "up_blocks.0.upsamplers.0.conv.weight",
        "conv_norm_out.weight",
        "conv_out.bias",
    }
    assert expected <= keys
    assert not any(k.startswith("down_blocks.3.downsamplers") for k in keys)
    assert not any(k.startswith("up_blocks.3.upsamplers") for k in keys)
    assert not any(
        k.startswith(("down_blocks.0.attentions", "up_blocks.1.attentions")) for k in keys
    )


# --- (b) shapes -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("in_channels", "out_channels", "height", "width"),
    [(1, None, 16, 16), (4, None, 8, 24), (3, 6, 24, 16), (1, 2, 4, 4)],
)
def test_unet_output_shape(
    in_channels: int, out_channels: int | None, height: int, width: int
) -> None:
    config = replace(SMALL, in_channels=in_channels, out_channels=out_channels)
    out = _eval(config)(torch.randn(2, in_channels, height, width), torch.tensor([3.0, 700.5]))
    assert out.shape == (2, out_channels or in_channels, height, width)
    assert torch.isfinite(out).all()


def test_unet_three_levels_non_square_multi_head() -> None:
    config = replace(
        SMALL,
        sample_size=32,
        channel_mults=(1, 2, 2),
        attention_resolutions=(16, 8),
        attention_head_dim=8,
    )
    out = _eval(config)(torch.randn(1, 3, 16, 40), torch.tensor(5.0))
    assert out.shape == (1, 3, 16, 40)


def test_unet_rejects_indivisible_input_size() -> None:
    with pytest.raises(ValueError, match="divisible by 2"):
        _eval(SMALL)(torch.randn(1, 3, 16, 15), torch.tensor([1.0]))


def test_patched_unet_is_the_network_on_space_to_depth_pixels() -> None:
    """patch_size p: the same weights as a U-Net on p²·C channels at H/p, applied to the image's
    p×p patches folded into channels (pixel_unshuffle) and unfolded after (pixel_shuffle); the
    attention level is the one at sample_size / p / 2."""
    patched = replace(SMALL, sample_size=32, patch_size=2)
    folded = replace(SMALL, in_channels=12, out_channels=12, sample_size=16)
    assert patched.level_resolutions == folded.level_resolutions == (16, 8)
    net, plain = _eval(patched), UNet(folded).eval()
    plain.load_state_dict(net.state_dict(), strict=True)
    x, t = torch.randn(2, 3, 32, 24), torch.tensor([3.0, 640.0])
    with torch.no_grad():
        expected = torch.nn.functional.pixel_shuffle(
            plain(torch.nn.functional.pixel_unshuffle(x, 2), t), 2
        )
        out = net(x, t)
    assert out.shape == x.shape
    torch.testing.assert_close(out, expected)
    with pytest.raises(ValueError, match="divisible by 4"):
        net(torch.randn(1, 3, 30, 32), t[:1])
    with pytest.raises(ValueError, match="no diffusers UNet2DModel"):
        diffusers_config_from(patched)


def test_unet_scalar_and_batched_t_agree() -> None:
    model = _eval(SMALL)
    x = torch.randn(3, 3, 16, 16)
    with torch.no_grad():
        a = model(x, torch.tensor(17.25))
        b = model(x, torch.full((3,), 17.25))
        c = model(x, torch.tensor([17.25]))
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(a, c)
    with pytest.raises(ValueError, match="shape"):
        model(x, torch.ones(2))


def test_unet_gradients_reach_every_parameter() -> None:
    model = UNet(replace(SMALL, num_classes=3))
    out = model(torch.randn(2, 3, 8, 8), torch.tensor([1.0, 2.0]), torch.tensor([0, 2]))
    out.square().mean().backward()
    missing = [
        n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0
    ]
    assert not missing


# --- (c) timestep embedding -----------------------------------------------------------------------


def _literal_embedding(
    t: float, dim: int, flip: bool, shift: float, max_period: float
) -> list[float]:
    """Ho et al. (2020), Appendix B: [sin(t w_k)], [cos(t w_k)], w_k = P^(-k/(half-shift))."""
    half = dim // 2
    omegas = [max_period ** (-k / (half - shift)) for k in range(half)]
    sin = [math.sin(t * w) for w in omegas]
    cos = [math.cos(t * w) for w in omegas]
    row = cos + sin if flip else sin + cos
    return row + [0.0] * (dim % 2)


@pytest.mark.parametrize(
    ("dim", "flip", "shift", "max_period"),
    [(128, False, 1.0, 10000.0), (32, True, 0.0, 10000.0), (7, False, 1.0, 100.0)],
)
def test_timestep_embedding_literal_formula(
    dim: int, flip: bool, shift: float, max_period: float
) -> None:
    t = [0.0, 1.0, 2.5, 999.0, 123.456]
    got = timestep_embedding(
        torch.tensor(t, dtype=torch.float64),
        dim,
        flip_sin_to_cos=flip,
        freq_shift=shift,
        max_period=max_period,
    )
    expected = torch.tensor([_literal_embedding(ti, dim, flip, shift, max_period) for ti in t])
    assert got.shape == (len(t), dim) and got.dtype == torch.float32
    torch.testing.assert_close(got, expected.float(), atol=1e-4, rtol=0)


def test_timestep_embedding_validates() -> None:
    with pytest.raises(ValueError, match="shape"):
        timestep_embedding(torch.zeros(2, 1), 8)
    with pytest.raises(ValueError, match="too small"):
        timestep_embedding(torch.zeros(2), 2, freq_shift=1)


def test_time_mlp_module_names() -> None:
    mlp = TimestepEmbedding(8, 32)
    assert set(mlp.state_dict()) == {f"linear_{i}.{p}" for i in (1, 2) for p in ("weight", "bias")}
    assert mlp(torch.zeros(5, 8)).shape == (5, 32)


# --- (d) class conditioning -----------------------------------------------------------------------


def test_class_labels_change_output_and_none_adds_nothing() -> None:
    model = _eval(replace(SMALL, num_classes=4))
    x, t = torch.randn(2, 3, 8, 8), torch.tensor([10.0, 10.0])
    with torch.no_grad():
        out_0 = model(x, t, torch.tensor([0, 0]))
        out_1 = model(x, t, torch.tensor([1, 1]))
        out_none = model(x, t)
        assert not torch.allclose(out_0, out_1)
        model.class_embedding.weight.zero_()  # type: ignore[union-attr]
        torch.testing.assert_close(model(x, t, torch.tensor([0, 3])), out_none)


def test_class_labels_without_class_embedding_raise() -> None:
    with pytest.raises(ValueError, match="num_classes=None"):
        _eval(SMALL)(torch.randn(1, 3, 8, 8), torch.tensor([1.0]), torch.tensor([0]))


# --- (e) batch independence -----------------------------------------------------------------------


# In float64: CPU kernels chosen by batch size round differently, by ~1e-6 here in float32 (as
# much as perturbing every weight by float32's ε) but ~1e-15 in float64; a layer that mixes the
# samples of a batch (a norm over it) moves outputs of size ~1 by far more than 1e-12.
BATCH_ATOL = 1e-12


def test_unet_samples_are_independent_in_eval_mode() -> None:
    model = _eval(replace(SMALL, num_classes=3)).double()
    x = torch.randn(4, 3, 16, 8, dtype=torch.float64)
    t = torch.tensor([0.0, 10.5, 500.0, 999.0])
    labels = torch.tensor([0, 1, 2, 1])
    with torch.no_grad():
        batched = model(x, t, labels)
        single = torch.cat([model(x[i : i + 1], t[i : i + 1], labels[i : i + 1]) for i in range(4)])
    assert batched.dtype == torch.float64
    torch.testing.assert_close(batched, single, atol=BATCH_ATOL, rtol=0)


def test_dropout_is_active_only_in_train_mode() -> None:
    model = _eval(SMALL)
    x, t = torch.randn(1, 3, 8, 8), torch.tensor([3.0])
    with torch.no_grad():
        torch.testing.assert_close(model(x, t), model(x, t))
        model.train()
        assert not torch.allclose(model(x, t), model(x, t))


# --- (f) MLP -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("dim", "out_dim"), [(2, None), (5, 10)])
def test_mlp_shapes(dim: int, out_dim: int | None) -> None:
    model = MLPDenoiser(
        MLPConfig(dim=dim, hidden=32, num_blocks=2, time_embed_dim=16, out_dim=out_dim)
    )
    out = model(torch.randn(7, dim), torch.rand(7) * 1000)
    assert out.shape == (7, out_dim or dim)
    assert model(torch.randn(3, dim), torch.tensor(4.5)).shape == (3, out_dim or dim)


def test_mlp_gradients_and_class_conditioning() -> None:
    torch.manual_seed(0)
    model = MLPDenoiser(
        MLPConfig(hidden=32, num_blocks=2, time_embed_dim=16, num_classes=3, dropout=0.1)
    )
    x, t, labels = torch.randn(6, 2), torch.rand(6) * 1000, torch.tensor([0, 1, 2, 0, 1, 2])
    model(x, t, labels).square().mean().backward()
    missing = [
        n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0
    ]
    assert not missing
    model.eval()
    with torch.no_grad():
        assert not torch.allclose(model(x, t, labels), model(x, t, (labels + 1) % 3))
        model.double()
        batched = model(x.double(), t, labels)
        single = torch.cat(
            [model(x[i : i + 1].double(), t[i : i + 1], labels[i : i + 1]) for i in range(6)]
        )
    assert batched.dtype == torch.float64
    torch.testing.assert_close(batched, single, atol=BATCH_ATOL, rtol=0)
    with pytest.raises(ValueError, match="num_classes=None"):
        MLPDenoiser(MLPConfig(hidden=8, time_embed_dim=8))(x, t, labels)


def test_mlp_on_images_is_the_mlp_on_the_flattened_pixels() -> None:
    """An image batch (B, C, H, W) is read as (B, C·H·W) vectors in row-major order, and a
    learned-variance output of 2·C·H·W values comes back as 2C channels: the first C hold the
    first C·H·W outputs (the mean), as ``chunk(2, dim=1)`` splits both layouts alike."""
    torch.manual_seed(0)
    model = MLPDenoiser(MLPConfig(dim=3 * 4 * 4, hidden=32, time_embed_dim=16, out_dim=96)).double()
    images, t = torch.randn(5, 3, 4, 4, dtype=torch.float64), torch.rand(5) * 1000
    out = model(images, t)
    flat = model(images.reshape(5, -1), t)
    assert out.shape == (5, 6, 4, 4) and flat.shape == (5, 96)
    assert torch.equal(out.reshape(5, -1), flat)
    for half_image, half_flat in zip(out.chunk(2, dim=1), flat.chunk(2, dim=1), strict=True):
        assert torch.equal(half_image.reshape(5, -1), half_flat)
    channels_last = images.contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(model(channels_last, t), out, rtol=0, atol=1e-12)


# --- (g) invalid configs --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"base_channels": 24, "norm_groups": 32}, "not divisible by norm_groups=32"),
        ({"attention_resolutions": (4,)}, "which no level reaches"),
        ({"sample_size": 17}, "divisible by patch_size \\* 2\\*\\*\\(levels-1\\)"),
        ({"sample_size": 32, "patch_size": 3}, "patch_size 3"),
        ({"patch_size": 0}, "patch_size must be positive"),
        ({"in_channels": 0}, "in_channels must be positive"),
        ({"out_channels": -1}, "out_channels must be positive"),
        ({"layers_per_block": 0}, "layers_per_block must be positive"),
        ({"channel_mults": ()}, "channel_mults must be non-empty"),
        ({"channel_mults": (1, 0)}, "channel_mults must be non-empty and positive"),
        ({"dropout": 1.0}, "dropout must be in"),
        ({"norm_eps": 0.0}, "norm_eps must be positive"),
        ({"num_classes": 0}, "num_classes must be positive"),
        ({"attention_head_dim": 12}, "not divisible by attention_head_dim=12"),
        ({"base_channels": 2, "norm_groups": 1}, "base_channels must be at least 4"),
    ],
)
def test_invalid_unet_config(changes: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        replace(SMALL, **changes)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"dim": 0}, "dim must be positive"),
        ({"num_blocks": 0}, "num_blocks must be positive"),
        ({"time_embed_dim": 2}, "time_embed_dim must be at least 4"),
        ({"dropout": -0.1}, "dropout must be in"),
        ({"num_classes": 0}, "num_classes must be positive"),
        ({"out_dim": 0}, "out_dim must be positive"),
    ],
)
def test_invalid_mlp_config(changes: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MLPConfig(**changes)


# --- diffusers config translation (no diffusers import needed) -----------------------------------

DDPM_CIFAR10_CONFIG = {  # config.json of google/ddpm-cifar10-32, as published
    "_class_name": "UNet2DModel",
    "act_fn": "silu",
    "attention_head_dim": None,
    "block_out_channels": [128, 256, 256, 256],
    "center_input_sample": False,
    "down_block_types": ["DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"],
    "downsample_padding": 0,
    "flip_sin_to_cos": False,
    "freq_shift": 1,
    "in_channels": 3,
    "layers_per_block": 2,
    "mid_block_scale_factor": 1,
    "norm_eps": 1e-06,
    "norm_num_groups": 32,
    "out_channels": 3,
    "sample_size": 32,
    "time_embedding_type": "positional",
    "up_block_types": ["UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"],
}


def test_unet_config_from_diffusers_cifar10() -> None:
    config = unet_config_from_diffusers(DDPM_CIFAR10_CONFIG, dropout=0.1)
    assert config == UNetConfig(out_channels=3)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"resnet_time_scale_shift": "scale_shift"}, "resnet_time_scale_shift"),
        ({"downsample_padding": None}, "downsample_padding"),
        ({"sample_size": None}, "sample_size"),
        ({"up_block_types": ["UpBlock2D"] * 4}, "mirror"),
        (
            {
                "down_block_types": [
                    "DownBlock2D",
                    "CrossAttnDownBlock2D",
                    "DownBlock2D",
                    "DownBlock2D",
                ]
            },
            "down block",
        ),
    ],
)
def test_unet_config_from_diffusers_rejects_unsupported(changes: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        unet_config_from_diffusers({**DDPM_CIFAR10_CONFIG, **changes})


@pytest.mark.parametrize(
    "config",
    [
        UNetConfig(),
        UNetConfig(
            in_channels=1, sample_size=28, base_channels=32, channel_mults=(1, 2, 2),
            layers_per_block=1, attention_resolutions=(14,), attention_head_dim=16, num_classes=10,
        ),
    ],
)  # fmt: skip
def test_diffusers_config_round_trip(config: UNetConfig) -> None:
    """Our config written as UNet2DModel arguments reads back as the same network."""
    back = unet_config_from_diffusers(diffusers_config_from(config))
    assert back == replace(config, out_channels=config.output_channels)
