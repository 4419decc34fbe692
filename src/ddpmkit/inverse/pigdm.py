"""Pseudoinverse-guided diffusion models for linear y = A x_0 + n (Song J. et al. 2023).

ΠGDM takes p(x_0|x_t) ≈ N(x̂_0, r_t² I), so p(y|x_t) ≈ N(A x̂_0, r_t² AAᵀ + σ_y² I), and adds the
score of that likelihood: in VE coordinates the guided denoiser is Tweedie's
x̂_0 + σ² ∇_x log p(y|x), with ∇_x log p(y|x) = (∂x̂_0/∂x)ᵀ Aᵀ(r² AAᵀ + σ_y² I)⁻¹(y - A x̂_0)
(eq. 7), a vector-Jacobian product through the network. r_t² = σ_t²/(1 + σ_t²), the paper's choice,
is the exact posterior variance for data of unit variance. Any sampler then runs on it; here DDIM.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ddpmkit.core.denoisers import Denoiser
from ddpmkit.core.randomness import Generator
from ddpmkit.inverse.spectral import SpectralOperator
from ddpmkit.samplers.common import Sampler, SamplerRun
from ddpmkit.samplers.ddim import ddim_loop


class PseudoinverseGuided:
    """The ΠGDM-guided denoiser D_y(x; σ) = x̂_0 + σ² ∇_x log p(y|x) of a denoiser D."""

    def __init__(
        self, denoiser: Denoiser, measurement: Tensor, operator: SpectralOperator, noise_std: float
    ) -> None:
        self.denoiser, self.measurement = denoiser, measurement
        self.operator, self.noise_var = operator, noise_std**2

    def __call__(
        self, x: Tensor, sigma: Tensor | float, class_labels: Tensor | None = None
    ) -> Tensor:
        sigma = float(sigma)
        with torch.enable_grad():
            x_in = x.detach().requires_grad_(True)
            x0_hat = self.denoiser(x_in, sigma, class_labels)
            residual = self.measurement.to(x0_hat) - self._apply(x0_hat.detach())
            r2 = sigma**2 / (1.0 + sigma**2)
            weighted = self.operator.regularised_adjoint(residual, r2, self.noise_var)
            (score,) = torch.autograd.grad(x0_hat, x_in, grad_outputs=weighted)
        return x0_hat.detach() + sigma**2 * score

    def _apply(self, x: Tensor) -> Tensor:
        """A x through its decomposition: U diag(s) Vᵀ x, shaped like the measurement."""
        op = self.operator
        coefficients = op.to_spectral(x)[:, : op.rank] * op.s.to(x)
        return (coefficients @ op.u.to(x).T).reshape(self.measurement.shape)


def pigdm_loop(
    run: SamplerRun,
    grid: list[float],
    x: Tensor,
    generator: Generator,
    measurement: Tensor,
    operator: SpectralOperator,
    *,
    noise_std: float = 0.0,
    eta: float = 1.0,
) -> Tensor:
    """DDIM (η = 1: ancestral) on the ΠGDM-guided denoiser (Song J. et al. 2023, Algorithm 1)."""
    run.denoiser = PseudoinverseGuided(run.denoiser, measurement, operator, noise_std)
    return ddim_loop(run, grid, x, generator, eta=eta)


pigdm = Sampler(pigdm_loop, "linspace")
"""ΠGDM: ``pigdm(denoiser, sigmas, x_T, measurement, SpectralOperator.of(A, shape),
noise_std=σ_y, eta=1.0, generator=…)``.

DDIM on the guided denoiser x̂_0 + σ² ∇_x log p(y|x) (Song J. et al. 2023, Algorithm 1);
default grid "linspace"; one denoiser call and one vector-Jacobian product through it per step.

Args:
    denoiser (Denoiser): D(x; σ) ≈ E[x_0 | x] for x = x_t/√ᾱ in VE coordinates, called on the
        whole batch with ``class_labels`` under ``torch.enable_grad``: it must be
        differentiable.
    sigmas (Tensor): the noise grid σ_0 > σ_1 > … > σ_N = 0, 1-D, descending and ending in 0
        (``build_grid``); N steps, read as float64 Python floats.
    x_T (Tensor): (B, …) standard normal noise, the VP prior N(0, I); the chain starts there.
    measurement (Tensor): y = A x_0 + n, shaped like A's output for the batch.
    operator (SpectralOperator): A = U diag(s) Vᵀ, ``SpectralOperator.of(A, shape)``.

Keyword Args:
    generator (Generator): the steps' noise, drawn only when η > 0: a ``torch.Generator``, a
        ``PerSampleGenerator`` (row i from its own seed) or None (the default: PyTorch's
        global RNG).
    class_labels (Tensor | None): (B,) labels passed to every denoiser call; None (the default):
        unconditional.
    record_trajectory (bool): keep x_T, …, x_0 (VP coordinates, on the CPU) in the result's
        ``trajectory`` (False by default).
    callback (StepCallback | None): called as ``callback(steps done, N, x_t)`` after every
        step (x_t in VP coordinates); None (the default): no reports.
    noise_std (float): σ_y ≥ 0, the standard deviation of n (0 by default: exact measurements).
    eta (float): DDIM's η in [0, 1] (1 by default: ancestral steps, as in the paper).

Returns:
    (SampleResult): x_0 (B, …), the trajectory when recorded, and nfe = N denoiser calls.
"""
