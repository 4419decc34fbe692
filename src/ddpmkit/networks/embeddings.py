"""Timestep embeddings: the sinusoidal features and the two-layer time MLP.

Both follow Ho et al. (2020), Appendix B (the Transformer positional encoding of Vaswani et al.
(2017), Section 3.5, applied to the timestep) and are numerically identical to diffusers'
``get_timestep_embedding`` / ``TimestepEmbedding``, so diffusers checkpoints load unchanged.
"""

from __future__ import annotations

import math
from typing import cast

import torch
from torch import Tensor, nn

__all__ = ["TimestepEmbedding", "timestep_embedding"]


def timestep_embedding(
    timesteps: Tensor,
    embedding_dim: int,
    *,
    flip_sin_to_cos: bool = False,
    freq_shift: float = 1.0,
    max_period: float = 10000.0,
) -> Tensor:
    """Sinusoidal embedding of (possibly non-integer) timesteps, Ho et al. (2020), Appendix B.

    With ``half = embedding_dim // 2`` and frequencies
    ``omega_k = max_period ** (-k / (half - freq_shift))`` for ``k = 0..half-1`` the result is
    ``[sin(t * omega), cos(t * omega)]`` (or ``[cos, sin]`` when ``flip_sin_to_cos``), zero-padded
    by one column when ``embedding_dim`` is odd. Computed in float32 like diffusers'
    ``get_timestep_embedding``.

    Args:
        timesteps: shape (B,), any real dtype.
        embedding_dim: number of output features.
        flip_sin_to_cos: put the cosines first.
        freq_shift: diffusers' ``downscale_freq_shift`` (1 for the DDPM checkpoints).
        max_period: longest period of the sinusoids.

    Returns:
        float32 tensor of shape (B, embedding_dim).
    """
    if timesteps.ndim != 1:
        raise ValueError(f"timesteps must have shape (B,), got {tuple(timesteps.shape)}")
    half = embedding_dim // 2
    if half - freq_shift <= 0:
        raise ValueError(
            f"embedding_dim={embedding_dim} is too small for freq_shift={freq_shift}: "
            "need embedding_dim // 2 > freq_shift"
        )
    k = torch.arange(half, dtype=torch.float32, device=timesteps.device)
    omega = torch.exp(-math.log(max_period) * k / (half - freq_shift))  # (half,)
    angles = timesteps[:, None].float() * omega[None, :]  # (B, half)
    parts = (
        [torch.cos(angles), torch.sin(angles)]
        if flip_sin_to_cos
        else [torch.sin(angles), torch.cos(angles)]
    )
    emb = torch.cat(parts, dim=-1)
    if embedding_dim % 2 == 1:
        emb = nn.functional.pad(emb, (0, 1))
    return emb


class TimestepEmbedding(nn.Module):
    """Two-layer time MLP: Linear, SiLU, Linear (Ho et al. (2020), Appendix B)."""

    def __init__(self, in_features: int, embed_dim: int) -> None:
        super().__init__()
        self.linear_1 = nn.Linear(in_features, embed_dim)
        self.act = nn.SiLU()
        self.linear_2 = nn.Linear(embed_dim, embed_dim)

    def forward(self, features: Tensor) -> Tensor:
        """(B, in_features) -> (B, embed_dim)."""
        return cast(Tensor, self.linear_2(self.act(self.linear_1(features))))
