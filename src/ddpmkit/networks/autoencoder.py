"""The KL-regularised convolutional autoencoder of latent diffusion, in diffusers' layout.

Rombach et al. (2022), "High-Resolution Image Synthesis with Latent Diffusion Models", §3 and
Appendix G: an encoder maps an image x to the mean and log-variance of a diagonal Gaussian
posterior q(z|x) over a latent z that is ``2**(levels-1)`` times smaller in H and W; a decoder maps
z back to an image; a small KL(q(z|x) ‖ N(0, I)) term keeps the latent space well behaved
(Kingma & Welling, 2014). Module names, parameter shapes and the forward computation match
diffusers' ``AutoencoderKL`` (``DownEncoderBlock2D`` / ``UpDecoderBlock2D`` levels, a
``UNetMidBlock2D`` with single-head attention, GroupNorm eps 1e-6, SiLU, ``quant_conv`` and
``post_quant_conv``), so its state dicts load with ``load_state_dict(strict=True)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ddpmkit.networks.layers import AttentionBlock, Downsample, ResnetBlock2D, Upsample

__all__ = ["Autoencoder", "AutoencoderConfig", "DiagonalGaussian", "autoencoder_loss"]

LOGVAR_RANGE = (-30.0, 20.0)
"""Bounds of the posterior log-variance (those of diffusers' ``DiagonalGaussianDistribution``)."""


@dataclass(frozen=True)
class AutoencoderConfig:
    """Hyper-parameters of `Autoencoder` (diffusers' ``AutoencoderKL`` arguments)."""

    in_channels: int = field(default=3, metadata={"help": "channels of the images"})
    latent_channels: int = field(default=4, metadata={"help": "channels of the latent z"})
    base_channels: int = field(
        default=64, metadata={"help": "channels of the first level (block_out_channels[0])"}
    )
    channel_mults: tuple[int, ...] = field(
        default=(1, 2, 2),
        metadata={
            "help": "level i has base_channels * channel_mults[i] channels; H and W shrink by "
            "2**(levels-1)"
        },
    )
    layers_per_block: int = field(
        default=1,
        metadata={"help": "resnets per encoder level (the decoder has one more per level)"},
    )
    norm_groups: int = field(
        default=32, metadata={"help": "GroupNorm groups; must divide every level's channel count"}
    )
    norm_eps: float = field(default=1e-6, metadata={"help": "GroupNorm epsilon"})
    mid_attention: bool = field(
        default=True, metadata={"help": "self-attention in the encoder's and decoder's mid block"}
    )
    scaling_factor: float = field(
        default=1.0,
        metadata={"help": "diffusion runs on (z - shift_factor) * scaling_factor; set from data"},
    )
    shift_factor: float = field(
        default=0.0, metadata={"help": "subtracted from z before scaling_factor is applied"}
    )

    def __post_init__(self) -> None:
        _check_positive(self)
        _check_channels(self)

    @property
    def level_channels(self) -> tuple[int, ...]:
        """Channel count of each resolution level (diffusers' ``block_out_channels``)."""
        return tuple(self.base_channels * m for m in self.channel_mults)

    @property
    def downsampling_factor(self) -> int:
        """How many times smaller the latent is than the image in H and W: 2**(levels-1)."""
        return cast(int, 2 ** (len(self.channel_mults) - 1))


def _check_positive(config: AutoencoderConfig) -> None:
    """ValueError naming the first field that is not positive (or not finite)."""
    ints = {
        "in_channels": config.in_channels,
        "latent_channels": config.latent_channels,
        "base_channels": config.base_channels,
        "layers_per_block": config.layers_per_block,
        "norm_groups": config.norm_groups,
    }
    for name, value in ints.items():
        if value <= 0:
            raise ValueError(f"AutoencoderConfig.{name} must be positive, got {value}")
    if not config.channel_mults or any(m <= 0 for m in config.channel_mults):
        raise ValueError(
            "AutoencoderConfig.channel_mults must be non-empty and positive, "
            f"got {config.channel_mults}"
        )
    if not config.norm_eps > 0:
        raise ValueError(f"AutoencoderConfig.norm_eps must be positive, got {config.norm_eps}")
    if not (math.isfinite(config.scaling_factor) and config.scaling_factor > 0):
        raise ValueError(
            f"AutoencoderConfig.scaling_factor must be positive and finite, "
            f"got {config.scaling_factor}"
        )
    if not math.isfinite(config.shift_factor):
        raise ValueError(
            f"AutoencoderConfig.shift_factor must be finite, got {config.shift_factor}"
        )


def _check_channels(config: AutoencoderConfig) -> None:
    """ValueError unless norm_groups divides every level's channel count."""
    for channels in config.level_channels:
        if channels % config.norm_groups != 0:
            raise ValueError(
                f"AutoencoderConfig: level channels {channels} (base_channels * channel_mult) "
                f"are not divisible by norm_groups={config.norm_groups}"
            )


@dataclass(eq=False)
class DiagonalGaussian:
    """The posterior q(z|x) = N(mean, diag(exp(logvar))) of Kingma & Welling (2014).

    ``logvar`` is clamped to [-30, 20] on construction, as in diffusers.
    """

    mean: Tensor
    logvar: Tensor

    def __post_init__(self) -> None:
        self.logvar = self.logvar.clamp(*LOGVAR_RANGE)

    @property
    def std(self) -> Tensor:
        """Standard deviation exp(logvar / 2)."""
        return torch.exp(0.5 * self.logvar)

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        """z = mean + std * eps, eps ~ N(0, I) (the reparameterisation, Kingma & Welling 2014)."""
        device = self.mean.device if generator is None else generator.device
        eps = torch.randn(
            self.mean.shape, generator=generator, device=device, dtype=self.mean.dtype
        )
        return self.mean + self.std * eps.to(self.mean.device)

    def mode(self) -> Tensor:
        """The most probable latent: the mean."""
        return self.mean

    def kl(self) -> Tensor:
        """KL(q ‖ N(0, I)) per batch element, summed over the other dims, shape (B,).

        ``0.5 * sum(mean² + var - 1 - logvar)``: Kingma & Welling (2014), Appendix B.
        """
        terms = self.mean.square() + self.logvar.exp() - 1.0 - self.logvar
        return 0.5 * terms.flatten(1).sum(dim=1)


def _resnet(config: AutoencoderConfig, in_channels: int, out_channels: int) -> ResnetBlock2D:
    """A residual block without timestep input (diffusers' ``temb_channels=None``)."""
    return ResnetBlock2D(
        in_channels,
        out_channels,
        None,
        norm_groups=config.norm_groups,
        norm_eps=config.norm_eps,
    )


class EncoderBlock(nn.Module):
    """One encoder level: resnets then an optional downsampler (diffusers' DownEncoderBlock2D)."""

    def __init__(
        self, config: AutoencoderConfig, in_channels: int, out_channels: int, *, downsample: bool
    ) -> None:
        super().__init__()
        self.resnets = nn.ModuleList(
            _resnet(config, in_channels if j == 0 else out_channels, out_channels)
            for j in range(config.layers_per_block)
        )
        self.downsamplers = nn.ModuleList([Downsample(out_channels)]) if downsample else None

    def forward(self, x: Tensor) -> Tensor:
        """(B, C_in, H, W) -> (B, C_out, H/2, W/2), or (B, C_out, H, W) without downsampler."""
        for resnet in self.resnets:
            x = resnet(x)
        return x if self.downsamplers is None else self.downsamplers[0](x)


class DecoderBlock(nn.Module):
    """One decoder level: ``layers_per_block + 1`` resnets (no skips), then an optional upsampler.

    diffusers' ``UpDecoderBlock2D``.
    """

    def __init__(
        self, config: AutoencoderConfig, in_channels: int, out_channels: int, *, upsample: bool
    ) -> None:
        super().__init__()
        self.resnets = nn.ModuleList(
            _resnet(config, in_channels if j == 0 else out_channels, out_channels)
            for j in range(config.layers_per_block + 1)
        )
        self.upsamplers = nn.ModuleList([Upsample(out_channels)]) if upsample else None

    def forward(self, x: Tensor) -> Tensor:
        """(B, C_in, H, W) -> (B, C_out, 2H, 2W), or (B, C_out, H, W) without upsampler."""
        for resnet in self.resnets:
            x = resnet(x)
        return x if self.upsamplers is None else self.upsamplers[0](x)


class MidBlock(nn.Module):
    """Resnet, single-head self-attention (optional), resnet: diffusers' ``UNetMidBlock2D``."""

    def __init__(self, config: AutoencoderConfig, channels: int) -> None:
        super().__init__()
        attention = AttentionBlock(
            channels, norm_groups=config.norm_groups, norm_eps=config.norm_eps
        )
        self.attentions = nn.ModuleList([attention] if config.mid_attention else [])
        self.resnets = nn.ModuleList(_resnet(config, channels, channels) for _ in range(2))

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, C, H, W)."""
        x = self.resnets[0](x)
        for attention in self.attentions:
            x = attention(x)
        return cast(Tensor, self.resnets[1](x))


class Encoder(nn.Module):
    """Image (B, C, H, W) -> posterior moments (B, 2L, H/f, W/f): diffusers' ``Encoder``."""

    def __init__(self, config: AutoencoderConfig) -> None:
        super().__init__()
        channels = config.level_channels
        self.conv_in = nn.Conv2d(config.in_channels, channels[0], kernel_size=3, padding=1)
        self.down_blocks = nn.ModuleList(
            EncoderBlock(
                config, channels[max(i - 1, 0)], channels[i], downsample=i < len(channels) - 1
            )
            for i in range(len(channels))
        )
        self.mid_block = MidBlock(config, channels[-1])
        self.conv_norm_out = nn.GroupNorm(config.norm_groups, channels[-1], eps=config.norm_eps)
        self.conv_out = nn.Conv2d(channels[-1], 2 * config.latent_channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, 2 * latent_channels, H/f, W/f): mean and logvar, stacked."""
        h = self.conv_in(x)
        for block in self.down_blocks:
            h = block(h)
        h = self.mid_block(h)
        return cast(Tensor, self.conv_out(F.silu(self.conv_norm_out(h))))


class Decoder(nn.Module):
    """Latent (B, L, h, w) -> image (B, C, h·f, w·f): diffusers' ``Decoder``."""

    def __init__(self, config: AutoencoderConfig) -> None:
        super().__init__()
        channels = config.level_channels[::-1]  # decoder levels run coarse to fine
        self.conv_in = nn.Conv2d(config.latent_channels, channels[0], kernel_size=3, padding=1)
        self.mid_block = MidBlock(config, channels[0])
        self.up_blocks = nn.ModuleList(
            DecoderBlock(
                config, channels[max(i - 1, 0)], channels[i], upsample=i < len(channels) - 1
            )
            for i in range(len(channels))
        )
        self.conv_norm_out = nn.GroupNorm(config.norm_groups, channels[-1], eps=config.norm_eps)
        self.conv_out = nn.Conv2d(channels[-1], config.in_channels, 3, padding=1)

    def forward(self, z: Tensor) -> Tensor:
        """(B, latent_channels, h, w) -> (B, in_channels, h * f, w * f)."""
        h = self.mid_block(self.conv_in(z))
        for block in self.up_blocks:
            h = block(h)
        return cast(Tensor, self.conv_out(F.silu(self.conv_norm_out(h))))


class Autoencoder(nn.Module):
    """KL-regularised autoencoder, Rombach et al. (2022) §3, in diffusers' ``AutoencoderKL`` layout.

    ``encode``/``decode`` work on raw latents; ``latents``/``images`` on the scaled latents
    ``(z - shift_factor) * scaling_factor`` that a latent diffusion model is trained on
    (Rombach et al. 2022, §4.3.2 and Appendix D.1). H and W must be divisible by
    ``config.downsampling_factor``.
    """

    def __init__(self, config: AutoencoderConfig) -> None:
        super().__init__()
        self.config = config
        latent = config.latent_channels
        self.encoder = Encoder(config)
        self.quant_conv = nn.Conv2d(2 * latent, 2 * latent, kernel_size=1)
        self.post_quant_conv = nn.Conv2d(latent, latent, kernel_size=1)
        self.decoder = Decoder(config)

    def encode(self, x: Tensor) -> DiagonalGaussian:
        """The posterior q(z|x) over raw latents of shape (B, latent_channels, H/f, W/f)."""
        factor = self.config.downsampling_factor
        if x.shape[-2] % factor or x.shape[-1] % factor:
            raise ValueError(
                f"input height and width {tuple(x.shape[-2:])} must be divisible by the "
                f"downsampling_factor {factor}"
            )
        mean, logvar = self.quant_conv(self.encoder(x)).chunk(2, dim=1)
        return DiagonalGaussian(mean, logvar)

    def decode(self, z: Tensor) -> Tensor:
        """The reconstruction (B, in_channels, h * f, w * f) of raw latents z."""
        return cast(Tensor, self.decoder(self.post_quant_conv(z)))

    def latents(
        self, x: Tensor, generator: torch.Generator | None = None, sample: bool = False
    ) -> Tensor:
        """Scaled latents ``(z - shift_factor) * scaling_factor`` of the posterior mean (or a
        posterior sample with ``sample=True``)."""
        posterior = self.encode(x)
        z = posterior.sample(generator) if sample else posterior.mode()
        return (z - self.config.shift_factor) * self.config.scaling_factor

    def images(self, latents: Tensor) -> Tensor:
        """Decode scaled latents: ``decode(latents / scaling_factor + shift_factor)``."""
        return self.decode(latents / self.config.scaling_factor + self.config.shift_factor)

    def forward(
        self, x: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, DiagonalGaussian]:
        """The reconstruction of x from a posterior sample, and the posterior."""
        posterior = self.encode(x)
        return self.decode(posterior.sample(generator)), posterior


def autoencoder_loss(
    model: Autoencoder, x: Tensor, kl_weight: float, generator: torch.Generator | None = None
) -> tuple[Tensor, dict[str, float]]:
    """Per-pixel loss ``(‖x - x̂‖² + kl_weight · KL(q(z|x) ‖ N(0, I))) / (C·H·W)``, batch mean.

    x̂ is decoded from a posterior sample (the reparameterised ELBO of Kingma & Welling 2014). The
    squared error and the KL are both summed over the image (latent) and divided by the number of
    pixel values C·H·W, so the first term is the per-pixel MSE and ``kl_weight`` weighs the KL
    against the summed reconstruction error exactly as in Rombach et al. (2022), Appendix G
    (``kl_weight`` ~1e-6 there, with an L1 + perceptual reconstruction term; we use MSE). Returns
    the loss and ``{"loss", "mse", "kl"}`` floats, "kl" being the KL per image in nats.
    """
    reconstruction, posterior = model(x, generator)
    mse = (reconstruction - x).square().mean()
    kl = posterior.kl().mean()
    loss = mse + kl_weight * kl / x[0].numel()
    return loss, {"loss": loss.item(), "mse": mse.item(), "kl": kl.item()}
