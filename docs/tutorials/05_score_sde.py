# %% [markdown]
# # 5. Scores, Langevin dynamics, SDEs and the ODE likelihood
#
# A denoiser is a score in disguise. By Tweedie's formula, in variance-exploding coordinates
# $x = x_0 + \sigma\varepsilon$,
#
# $$\nabla_x \log p_\sigma(x) = \frac{D(x;\sigma) - x}{\sigma^2},$$
#
# so everything written with scores runs on ddpmkit's denoisers:
#
# - **NCSN** (Song & Ermon 2019) samples by *annealed Langevin dynamics* down a ladder of noise
#   levels $\sigma_1 > \dots > \sigma_L$: at each level,
#   $x \leftarrow x + \tfrac{\alpha_i}{2}\nabla\log p_{\sigma_i}(x) + \sqrt{\alpha_i}\,z$ with
#   $\alpha_i = c\,\sigma_i^2$ (`annealed_langevin`, sampler `"langevin"`).
# - The **VP SDE** (Song et al. 2021) is DDPM's forward process in continuous time,
#   $dx = -\tfrac12\beta(t)\,x\,dt + \sqrt{\beta(t)}\,dw$. Its time reversal is the
#   **reverse SDE** $dx = [-\tfrac12\beta(t)\,x - \beta(t)\nabla_x\log p_t(x)]\,dt +
#   \sqrt{\beta(t)}\,d\bar w$ (`euler_maruyama`, `"pc"` adds Langevin corrector steps).
# - The **probability-flow ODE** $dx = [-\tfrac12\beta(t)\,x - \tfrac12\beta(t)\nabla_x\log
#   p_t(x)]\,dt$ has the same marginals with no noise at all (`ode_euler`, `ode_heun`, `ode_rk45`);
#   in VE coordinates it is simply $dx/d\sigma = (x - D(x;\sigma))/\sigma$ (Karras et al. 2022).
#   Being a deterministic, invertible map, it also gives an **exact likelihood** by the
#   instantaneous change of variables (`ode_log_likelihood`).
#
# We use data whose noised densities are known exactly: a 2-D mixture of 8 Gaussians on a ring,
# with its exact denoiser, so that every difference we see is the sampler's.

# %%
import math

import matplotlib.pyplot as plt
import torch

from ddpmkit import NoiseSchedule
from ddpmkit.core.grids import build_grid
from ddpmkit.evaluation.testbed import GaussianMixture
from ddpmkit.likelihood import ode_log_likelihood
from ddpmkit.samplers import sample

angles = torch.arange(8, dtype=torch.float64) * math.pi / 4
data = GaussianMixture(
    weights=torch.tensor([1, 2, 1, 2, 1, 2, 1, 2], dtype=torch.float64),
    means=1.5 * torch.stack([angles.cos(), angles.sin()], dim=1),
    stds=torch.full((8,), 0.12, dtype=torch.float64),
)
denoiser = data.denoiser()  # the exact E[x_0 | x_0 + σε = x]
n = 1000  # small for the docs build
x_data = data.sample(n, torch.Generator().manual_seed(0))


def noise(seed):
    return torch.randn(n, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


# %% [markdown]
# ## The score field at a few noise levels
#
# The exact score $(D(x;\sigma) - x)/\sigma^2$, with the density $p_\sigma$ (`log_density`) behind
# it. At large $\sigma$ it points towards the centre of mass; at small $\sigma$ to the nearest mode.

# %%
lim = 2.6
line = torch.linspace(-lim, lim, 120, dtype=torch.float64)
mesh = torch.stack(torch.meshgrid(line, line, indexing="xy"), -1).reshape(-1, 2)
coarse = torch.linspace(-lim, lim, 17, dtype=torch.float64)
arrows = torch.stack(torch.meshgrid(coarse, coarse, indexing="xy"), -1).reshape(-1, 2)
fig, axes = plt.subplots(1, 4, figsize=(15, 4))
for ax, sigma in zip(axes, [2.0, 0.6, 0.25, 0.05], strict=True):
    density = data.log_density(mesh, sigma).exp().reshape(120, 120)
    ax.contourf(line, line, density, levels=20, cmap="Blues")
    score = (denoiser(arrows, sigma) - arrows) / sigma**2
    score = score / score.norm(dim=1, keepdim=True).clamp_min(1e-12)  # directions only
    ax.quiver(arrows[:, 0], arrows[:, 1], score[:, 0], score[:, 1], color="k", alpha=0.6)
    ax.set(title=f"p_σ and its score, σ = {sigma}", xlabel="x[0]", aspect="equal")
axes[0].set_ylabel("x[1]")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Four ways down the noise levels
#
# NCSN's own noise levels are geometric between $\sigma_{min}$ and $\sigma_{max}$
# (`NoiseSchedule.geometric`), $\sigma_{max}$ about the largest distance between data points.
# The VP SDE and the ODE use DDPM's linear schedule. All four start from $\mathcal{N}(0, I)$
# noise (scaled to $\sigma_{max}$ in VE coordinates) and call the same exact denoiser.

# %%
ve = NoiseSchedule.geometric(100, sigma_min=0.01, sigma_max=3.0)
vp = NoiseSchedule.linear(1000)
runs = {
    "annealed Langevin (NCSN), 100 levels × 5 steps": sample(
        "langevin", denoiser, ve, noise(1), 100, generator=torch.Generator().manual_seed(1),
        langevin_steps=5, langevin_step_size=0.2, record_trajectory=True,
    ),
    "reverse VP SDE, Euler–Maruyama, 200 steps": sample(
        "euler-maruyama", denoiser, vp, noise(2), 200, generator=torch.Generator().manual_seed(2),
        record_trajectory=True,
    ),
    "probability-flow ODE, Heun, 50 levels": sample(
        "ode-heun", denoiser, vp, noise(2), 50, record_trajectory=True
    ),
}  # fmt: skip
fig, axes = plt.subplots(1, 4, figsize=(15, 4), sharex=True, sharey=True)
axes[0].scatter(x_data[:, 0], x_data[:, 1], s=2, alpha=0.5, color="k")
axes[0].set(title="data", xlabel="x[0]", ylabel="x[1]", aspect="equal")
for ax, (name, result) in zip(axes[1:], runs.items(), strict=True):
    x = result.samples
    ax.scatter(x[:, 0], x[:, 1], s=2, alpha=0.5)
    ax.set(title=f"{name}\n{result.nfe} denoiser calls", xlabel="x[0]", aspect="equal")
    ax.title.set_fontsize(9)
axes[0].set_xlim(-lim, lim)
axes[0].set_ylim(-lim, lim)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Stochastic and deterministic paths
#
# The reverse SDE and the probability-flow ODE (here both from the same starting noise) share
# their marginals at every noise level, but one path is a random walk and the other a smooth curve.
# We plot the first coordinate of 12 samples against the step.

# %%
grids = {  # the samplers' default grids: training steps for the SDE, uniform log-SNR for the ODE
    list(runs)[1]: build_grid(vp, "linspace", 200),
    list(runs)[2]: build_grid(vp, "log_snr", 50),
}
fig, axes = plt.subplots(1, 2, figsize=(12, 3.8), sharey=True)
for ax, (name, sigmas) in zip(axes, grids.items(), strict=True):
    path = torch.stack(runs[name].trajectory)[:, :12, 0]  # (steps + 1, 12), VP coordinates x_t
    ax.plot((1 + sigmas**2) ** -0.5, path, lw=0.9)
    ax.set(title=name, xlabel="signal level √ᾱ = 1/√(1 + σ²)  (0: noise, 1: data)", xlim=(0, 1))
axes[0].set_ylabel("x_t[0] (VP coordinates)")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## The ODE likelihood against the exact density
#
# Integrating the probability-flow ODE from the data up to $\sigma_{max}$ while accumulating the
# divergence $\nabla\cdot$ of its velocity gives
# $\log p_{\sigma_{min}}(x) = \log p_{\sigma_{max}}(x(\sigma_{max})) + \int \nabla\cdot g\,d\log\sigma$
# (Song et al. 2021, App. D.2). In 2-D the trace can be computed exactly (`estimator="exact"`; in
# image dimensions Hutchinson's estimator is used). The mixture's exact log density at
# $\sigma_{min}$ is `log_density(x, σ_min)`.

# %%
x = x_data[:40]  # small for the docs build
result = ode_log_likelihood(denoiser, vp, x, estimator="exact", rtol=1e-5, atol=1e-5)
sigma_min = float(vp.sigmas[0])
exact = data.log_density(x, sigma_min)
error = result.log_likelihood - exact
print(f"{result.nfe} evaluations of RK45; |ODE − exact| log-density: mean {error.abs().mean():.4f}, "
      f"max {error.abs().max():.4f} nats")  # fmt: skip

fig, ax = plt.subplots(figsize=(5, 4.5))
ax.scatter(exact, result.log_likelihood, s=12)
span = [float(exact.min()) - 0.2, float(exact.max()) + 0.2]
ax.plot(span, span, "k", lw=0.8, label="y = x")
ax.set(title="log p(x): probability-flow ODE vs exact", xlabel="exact log p_σmin(x) (nats)",
       ylabel="ODE log-likelihood (nats)")  # fmt: skip
ax.legend()
plt.show()

# %% [markdown]
# The small remaining error is the ODE solver's and the prior's: the integration ends at
# $\sigma_{max} \approx 157$ and scores the end point under $\mathcal{N}(0, (1+\sigma_{max}^2) I)$
# instead of the exact $p_{\sigma_{max}}$.
