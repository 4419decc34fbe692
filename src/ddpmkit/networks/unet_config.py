"""The U-Net's configuration (``UNetConfig``, diffusers ``UNet2DModel``'s layout options) and the
checks that a configuration builds a network."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import cast

__all__ = ["UNetConfig"]


@dataclass(frozen=True)
class UNetConfig:
    """Hyper-parameters of `UNet`; defaults: the CIFAR-10 model of Ho et al. (2020)."""

    in_channels: int = field(default=3, metadata={"help": "channels of x_t"})
    out_channels: int | None = field(
        default=None,
        metadata={"help": "channels of the output; none: in_channels (2x for learned variance)"},
    )
    sample_size: int = field(
        default=32,
        metadata={"help": "training resolution; only used to decide which levels get attention"},
    )
    base_channels: int = field(
        default=128,
        metadata={"help": "channels of the first level; the time embedding is 4x this wide"},
    )
    channel_mults: tuple[int, ...] = field(
        default=(1, 2, 2, 2),
        metadata={"help": "level i has base_channels * channel_mults[i] channels"},
    )
    layers_per_block: int = field(
        default=2,
        metadata={"help": "resnets per down level (the up path has one more per level)"},
    )
    attention_resolutions: tuple[int, ...] = field(
        default=(16,), metadata={"help": "resolutions (at sample_size) with self-attention"}
    )
    dropout: float = field(default=0.1, metadata={"help": "dropout inside every residual block"})
    norm_groups: int = field(
        default=32, metadata={"help": "GroupNorm groups; must divide every level's channel count"}
    )
    norm_eps: float = field(default=1e-6, metadata={"help": "GroupNorm epsilon"})
    attention_head_dim: int | None = field(
        default=None, metadata={"help": "width of one attention head; none: a single head"}
    )
    patch_size: int = field(
        default=1,
        metadata={
            "help": "side of the square pixel patches folded into channels before the first "
            "convolution and unfolded after the last: the levels run at sample_size / "
            "patch_size, about patch_size² times cheaper (1: no patches)"
        },
    )
    num_classes: int | None = field(
        default=None,
        metadata={"help": "size of the class embedding table; none: unconditional"},
    )
    flip_sin_to_cos: bool = field(
        default=False,
        metadata={
            "help": "time embedding [cos, sin] instead of [sin, cos] (diffusers' default true; "
            "the DDPM checkpoints false)"
        },
    )
    freq_shift: int = field(
        default=1,
        metadata={
            "help": "time embedding frequencies max_period^(-k/(half - freq_shift)) (diffusers' "
            "default 0; the DDPM checkpoints 1)"
        },
    )
    downsample_padding: int = field(
        default=0,
        metadata={
            "choices": (0, 1),
            "help": "0: pad right and bottom by one, then a stride-2 conv (TensorFlow's SAME, the "
            "DDPM checkpoints); 1: a stride-2 conv padded by one on every side (diffusers' "
            "default)",
        },
    )
    cross_attention_dim: int | None = field(
        default=None,
        metadata={
            "help": "width of the context (e.g. text) sequence read by cross-attention after "
            "every self-attention block; none: no cross-attention"
        },
    )

    def __post_init__(self) -> None:
        _check_positive(self)
        _check_channels(self)
        _check_resolutions(self)

    @property
    def output_channels(self) -> int:
        """Channels of the network output (``out_channels`` or ``in_channels``)."""
        return self.in_channels if self.out_channels is None else self.out_channels

    @property
    def time_embed_dim(self) -> int:
        """Width of the time (and class) embedding: 4 x base_channels, as in diffusers."""
        return 4 * self.base_channels

    @property
    def level_channels(self) -> tuple[int, ...]:
        """Channel count of each resolution level (diffusers' ``block_out_channels``)."""
        return tuple(self.base_channels * m for m in self.channel_mults)

    @property
    def level_resolutions(self) -> tuple[int, ...]:
        """Resolution of each level for an input of size ``sample_size``."""
        first = self.sample_size // self.patch_size
        return tuple(first // 2**i for i in range(len(self.channel_mults)))

    @property
    def size_divisor(self) -> int:
        """What input heights and widths must be divisible by: patches, then halvings."""
        return self.patch_size * cast(int, 2 ** (len(self.channel_mults) - 1))

    @property
    def attention_levels(self) -> tuple[bool, ...]:
        """Whether each level (down and the matching up level) has self-attention."""
        return tuple(r in self.attention_resolutions for r in self.level_resolutions)


def _check_positive(config: UNetConfig) -> None:
    ints = {
        "in_channels": config.in_channels,
        "out_channels": config.output_channels,
        "sample_size": config.sample_size,
        "base_channels": config.base_channels,
        "layers_per_block": config.layers_per_block,
        "norm_groups": config.norm_groups,
        "patch_size": config.patch_size,
    }
    for name, value in ints.items():
        if value <= 0:
            raise ValueError(f"UNetConfig.{name} must be positive, got {value}")
    if not config.channel_mults or any(m <= 0 for m in config.channel_mults):
        raise ValueError(
            f"UNetConfig.channel_mults must be non-empty and positive, got {config.channel_mults}"
        )
    if not 0.0 <= config.dropout < 1.0:
        raise ValueError(f"UNetConfig.dropout must be in [0, 1), got {config.dropout}")
    if config.norm_eps <= 0:
        raise ValueError(f"UNetConfig.norm_eps must be positive, got {config.norm_eps}")
    if config.num_classes is not None and config.num_classes <= 0:
        raise ValueError(
            f"UNetConfig.num_classes must be positive or None, got {config.num_classes}"
        )
    if config.cross_attention_dim is not None and config.cross_attention_dim <= 0:
        raise ValueError(
            "UNetConfig.cross_attention_dim must be positive or None, "
            f"got {config.cross_attention_dim}"
        )


def _check_channels(config: UNetConfig) -> None:
    if config.base_channels < 4:
        raise ValueError(
            f"UNetConfig.base_channels must be at least 4 (the sinusoidal time embedding uses "
            f"base_channels // 2 frequencies with freq_shift=1), got {config.base_channels}"
        )
    for channels in config.level_channels:
        if channels % config.norm_groups != 0:
            raise ValueError(
                f"UNetConfig: level channels {channels} (base_channels * channel_mult) are not "
                f"divisible by norm_groups={config.norm_groups}"
            )
    head_dim = config.attention_head_dim
    if head_dim is None:
        return
    if head_dim <= 0:
        raise ValueError(f"UNetConfig.attention_head_dim must be positive or None, got {head_dim}")
    attended = [c for c, a in zip(config.level_channels, config.attention_levels, strict=True) if a]
    for channels in [*attended, config.level_channels[-1]]:  # the middle block always attends
        if channels % head_dim != 0:
            raise ValueError(
                f"UNetConfig: attention channels {channels} are not divisible by "
                f"attention_head_dim={head_dim}"
            )


def _check_resolutions(config: UNetConfig) -> None:
    factor = config.size_divisor
    if config.sample_size % factor != 0:
        raise ValueError(
            f"UNetConfig.sample_size={config.sample_size} must be divisible by "
            f"patch_size * 2**(levels-1)={factor} for patch_size {config.patch_size} and "
            f"{len(config.channel_mults)} levels"
        )
    for resolution in config.attention_resolutions:
        if resolution not in config.level_resolutions:
            raise ValueError(
                f"UNetConfig.attention_resolutions contains {resolution}, which no level reaches; "
                f"the level resolutions for sample_size={config.sample_size} are "
                f"{config.level_resolutions}"
            )
