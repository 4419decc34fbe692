"""What the inpainting samplers share besides ``samplers.ancestral.ancestral_step``: the known region.

All work on the VP state x_t at the grid's levels σ (ᾱ = 1/(1 + σ²)), as ``samplers.ancestral``.
"""

from __future__ import annotations

from torch import Tensor

from ddpmkit.core.parameterization import alpha_bar_from_sigma
from ddpmkit.core.randomness import Generator, randn_like


def replace_known(
    x: Tensor, known: Tensor, mask: Tensor, sigma: float, generator: Generator
) -> Tensor:
    """m ⊙ x_t^known + (1 - m) ⊙ x_t with x_t^known ~ q(x_t|y) (Lugmayr et al. 2022, §4.1).

    At σ = 0 the known region is y itself, exactly (for a 0/1 mask).
    """
    if sigma > 0:
        alpha_bar = alpha_bar_from_sigma(sigma)
        known = alpha_bar**0.5 * known + (1.0 - alpha_bar) ** 0.5 * randn_like(x, generator)
    mask = mask.to(x)
    return mask * known + (1.0 - mask) * x
