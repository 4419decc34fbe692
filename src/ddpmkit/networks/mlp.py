"""A residual MLP denoiser for low-dimensional data: 2-D toy points, vectors and small images
(flattened; on 8×8 digits in one CPU-minute it learned more than the U-Net, docs/benchmarks.md).

The time conditioning mirrors the U-Net of Ho et al. (2020), Appendix B: sinusoidal features, a
two-layer time MLP, and a per-block projection of SiLU(temb) added to the hidden state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ddpmkit.networks.embeddings import TimestepEmbedding, timestep_embedding

__all__ = ["MLPConfig", "MLPDenoiser"]


@dataclass(frozen=True)
class MLPConfig:
    """Hyper-parameters of `MLPDenoiser`."""

    dim: int = field(
        default=2, metadata={"help": "features of x (C·H·W for images, which are flattened)"}
    )
    hidden: int = field(
        default=256, metadata={"help": "width of the residual stream and of the time embedding"}
    )
    num_blocks: int = field(default=4, metadata={"help": "residual blocks"})
    time_embed_dim: int = field(
        default=128, metadata={"help": "number of sinusoidal timestep features"}
    )
    dropout: float = field(default=0.0, metadata={"help": "dropout inside every residual block"})
    num_classes: int | None = field(
        default=None,
        metadata={"help": "size of the class embedding table; none: unconditional"},
    )
    out_dim: int | None = field(
        default=None, metadata={"help": "features of the output; none: dim"}
    )

    def __post_init__(self) -> None:
        for name in ("dim", "hidden", "num_blocks", "time_embed_dim"):
            if getattr(self, name) <= 0:
                raise ValueError(f"MLPConfig.{name} must be positive, got {getattr(self, name)}")
        if self.time_embed_dim < 4:
            raise ValueError(
                f"MLPConfig.time_embed_dim must be at least 4, got {self.time_embed_dim}"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"MLPConfig.dropout must be in [0, 1), got {self.dropout}")
        for name in ("num_classes", "out_dim"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"MLPConfig.{name} must be positive or None, got {value}")

    @property
    def output_dim(self) -> int:
        """Features of the network output (``out_dim`` or ``dim``)."""
        return self.dim if self.out_dim is None else self.out_dim


class MLPBlock(nn.Module):
    """Pre-norm residual block with an additive time embedding.

    ``x + linear_2(dropout(SiLU(linear_1(SiLU(norm(x))) + time_emb_proj(SiLU(temb)))))``.
    """

    def __init__(self, hidden: int, dropout: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(hidden)
        self.linear_1 = nn.Linear(hidden, hidden)
        self.time_emb_proj = nn.Linear(hidden, hidden)
        self.dropout = nn.Dropout(dropout)
        self.linear_2 = nn.Linear(hidden, hidden)

    def forward(self, x: Tensor, temb: Tensor) -> Tensor:
        """x, temb: (B, hidden) -> (B, hidden)."""
        h = self.linear_1(F.silu(self.norm(x))) + self.time_emb_proj(F.silu(temb))
        return cast(Tensor, x + self.linear_2(self.dropout(F.silu(h))))


class MLPDenoiser(nn.Module):
    """Residual MLP on (B, dim) inputs, conditioned on timesteps t (B,) or () and optional class
    labels.

    ``class_labels`` (int64, shape (B,)) adds a learned class embedding to the time embedding;
    ``None`` adds nothing (an unconditional evaluation of the same network).
    """

    def __init__(self, config: MLPConfig) -> None:
        super().__init__()
        self.config = config
        self.time_embedding = TimestepEmbedding(config.time_embed_dim, config.hidden)
        self.class_embedding: nn.Embedding | None = None
        if config.num_classes is not None:
            self.class_embedding = nn.Embedding(config.num_classes, config.hidden)
        self.linear_in = nn.Linear(config.dim, config.hidden)
        self.blocks = nn.ModuleList(
            MLPBlock(config.hidden, config.dropout) for _ in range(config.num_blocks)
        )
        self.norm_out = nn.LayerNorm(config.hidden)
        self.linear_out = nn.Linear(config.hidden, config.output_dim)

    def embed(self, t: Tensor | float, batch: int, class_labels: Tensor | None = None) -> Tensor:
        """Time (plus class) embedding of shape (B, hidden); ``t`` of shape (B,), (1,) or ()."""
        t = torch.as_tensor(t, device=self.linear_in.weight.device).reshape(-1)
        if t.numel() == 1:
            t = t.expand(batch)
        elif t.numel() != batch:
            raise ValueError(f"t must be a scalar or have shape ({batch},), got {t.numel()} values")
        features = timestep_embedding(t, self.config.time_embed_dim)
        temb: Tensor = self.time_embedding(features.to(self.linear_in.weight.dtype))
        if class_labels is None:
            return temb
        if self.class_embedding is None:
            raise ValueError(
                "class_labels were given but the MLP has no class embedding (num_classes=None)"
            )
        return temb + cast(Tensor, self.class_embedding(class_labels)).to(temb.dtype)

    def forward(self, x: Tensor, t: Tensor | float, class_labels: Tensor | None = None) -> Tensor:
        """(B, dim), t (B,) or () -> (B, output_dim); an image batch (B, C, H, W) with
        C·H·W = dim is flattened, and its output comes back as (B, C·output_dim/dim, H, W)."""
        flat = self.forward_flat(x.flatten(1), t, class_labels)
        return flat.view(x.shape[0], -1, *x.shape[2:])

    def forward_flat(
        self, x: Tensor, t: Tensor | float, class_labels: Tensor | None = None
    ) -> Tensor:
        """(B, dim), t (B,) or () -> (B, output_dim)."""
        temb = self.embed(t, x.shape[0], class_labels)
        h = self.linear_in(x)
        for block in self.blocks:
            h = block(h, temb)
        return cast(Tensor, self.linear_out(F.silu(self.norm_out(h))))
