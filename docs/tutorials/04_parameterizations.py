# %% [markdown]
# # 4. Five parameterizations: ε, x_0, v, the score and the denoiser D
#
# Since $x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\varepsilon$, knowing $x_t$ and
# any one of several quantities determines the others. A network can be trained to output any of
# them (Ho et al. 2020 §3.2; Salimans & Ho 2022; Song et al. 2021; Karras et al. 2022):
#
# - **ε**, the noise: $\hat x_0 = (x_t - \sqrt{1-\bar\alpha}\,\varepsilon)/\sqrt{\bar\alpha}$;
# - **$x_0$**, the data itself;
# - **$v$** $= \sqrt{\bar\alpha}\,\varepsilon - \sqrt{1-\bar\alpha}\,x_0$:
#   $\hat x_0 = \sqrt{\bar\alpha}\,x_t - \sqrt{1-\bar\alpha}\,v$;
# - **the score** $\nabla_{x_t}\log q(x_t) \approx -\varepsilon/\sqrt{1-\bar\alpha}$, read by
#   Tweedie's formula $\hat x_0 = (x_t + (1-\bar\alpha)\,\nabla\log q(x_t))/\sqrt{\bar\alpha}$;
# - **EDM's denoiser** $D(x;\sigma) \approx \mathbb{E}[x_0 \mid x]$ at the variance-exploding
#   coordinate $x = x_t/\sqrt{\bar\alpha} = x_0 + \sigma\varepsilon$,
#   $\sigma = \sqrt{(1-\bar\alpha)/\bar\alpha}$: it *is* $\hat x_0$.
#
# Every identity lives once in `ddpmkit.core.parameterization`; `NetworkDenoiser` applies the
# right one so that samplers only ever see $D(x; \sigma)$. (A sixth choice, the posterior mean
# $\tilde\mu_t$ itself, is `mean_from_x0` / `x0_from_mean`.)

# %%
import matplotlib.pyplot as plt
import torch

from ddpmkit import NoiseSchedule, q_sample
from ddpmkit.core.parameterization import (
    X0_FROM_OUTPUT,
    alpha_bar_from_sigma,
    eps_from_score,
    eps_from_v,
    eps_from_x0,
    mean_from_x0,
    score_from_eps,
    training_target,
    v_from_x0_eps,
    x0_from_eps,
    x0_from_mean,
    x0_from_score,
    x0_from_v,
)
from ddpmkit.data.digits import digits_arrays
from ddpmkit.evaluation.testbed import Gaussian

schedule = NoiseSchedule.cosine(1000)
images, _ = digits_arrays("train")

# %% [markdown]
# ## What each network is asked to output
#
# For one digit and one noise draw, the regression target of each parameterization
# (`training_target`) at a few steps. The ε target is pure noise at every $t$; the $x_0$ target
# never changes; $v$ slides from $\varepsilon$ to $-x_0$ as the signal fades.

# %%
x0 = images[3:4].double()
eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
shown = [49, 249, 499, 749, 949]
rows = ["x_t", "eps", "x0", "v", "score", "mean"]
fig, axes = plt.subplots(len(rows), len(shown), figsize=(1.5 * len(shown), 1.55 * len(rows)))
for col, t in enumerate(shown):
    rows_t = torch.tensor([t])
    x_t = q_sample(schedule, x0, rows_t, eps)
    a_bar = schedule.at(schedule.alpha_bar, rows_t, x0)
    a_bar_prev = schedule.at(schedule.alpha_bar_prev, rows_t, x0)
    panels = {"x_t": x_t}
    for name in rows[1:]:
        panels[name] = training_target(name, x0, eps, x_t, a_bar, a_bar_prev)
    for row, name in enumerate(rows):
        image = panels[name][0, 0]
        ax = axes[row, col]
        ax.imshow(image, cmap="gray")
        ax.set_xticks([])
        ax.set_yticks([])
        if row == 0:
            ax.set_title(f"t = {t + 1}\nᾱ = {float(a_bar):.2f}", fontsize=9)
        if col == 0:
            ax.set_ylabel(name)
fig.suptitle("regression targets (each panel scaled to its own range)", fontsize=10)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Round trips
#
# Each conversion followed by its inverse must return what it started from, at every $t$. In
# float64 the largest error over all 1,000 steps and the 64 pixels is at the level of rounding.

# %%
t = torch.arange(1000)
x0s = images[:1].double().expand(1000, -1, -1, -1)
eps = torch.randn(x0s.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
a_bar = schedule.at(schedule.alpha_bar, t, x0s)
a_bar_prev = schedule.at(schedule.alpha_bar_prev, t, x0s)
x_t = q_sample(schedule, x0s, t, eps)
sigma = ((1 - a_bar) / a_bar).sqrt()
x_ve = x_t / a_bar.sqrt()  # EDM's variance-exploding coordinate x = x_0 + σ ε

v = v_from_x0_eps(x0s, eps, a_bar)
score = score_from_eps(eps, a_bar)
mean = mean_from_x0(x_t, x0s, a_bar, a_bar_prev)
checks = {
    "x0 -> eps -> x0": x0_from_eps(x_t, eps_from_x0(x_t, x0s, a_bar), a_bar) - x0s,
    "(x0, eps) -> v -> x0": x0_from_v(x_t, v, a_bar) - x0s,
    "(x0, eps) -> v -> eps": eps_from_v(x_t, v, a_bar) - eps,
    "eps -> score -> eps": eps_from_score(score, a_bar) - eps,
    "score -> x0 (Tweedie)": x0_from_score(x_t, score, a_bar) - x0s,
    "x0 -> mean -> x0": (x0_from_mean(x_t, mean, a_bar, a_bar_prev) - x0s)[1:],  # t = 1: c_x0 = 1
    "D: x_ve - σ·eps": (x_ve - sigma * eps) - x0s,
    "ᾱ(σ) = 1/(1 + σ²)": alpha_bar_from_sigma(sigma) - a_bar,
}
for name, error in checks.items():
    print(f"{name:24s} max |error| = {error.abs().max():.1e}")

# %% [markdown]
# ## Why the choice matters: how an output error reaches x̂_0
#
# The conversions are exact, but a network's output is not. An error $\delta$ in the output moves
# $\hat x_0$ by $\delta$ times the conversion's gain: $\sigma = \sqrt{(1-\bar\alpha)/\bar\alpha}$ for
# ε (unbounded as $\bar\alpha \to 0$), $\sqrt{1-\bar\alpha} \le 1$ for $v$, $1$ for $x_0$,
# $(1-\bar\alpha)/\sqrt{\bar\alpha}$ for the score and $1/c_{x_0}$ for $\tilde\mu$. We add
# $\delta = 0.01\,z$ to each exact target, read it with `X0_FROM_OUTPUT` (what `NetworkDenoiser`
# does) and measure the RMS error of $\hat x_0$.

# %%
z = torch.randn(x0s.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
fig, ax = plt.subplots(figsize=(7, 4))
for name in ["eps", "x0", "v", "score", "mean"]:
    target = training_target(name, x0s, eps, x_t, a_bar, a_bar_prev)
    x0_hat = X0_FROM_OUTPUT[name](x_t, target + 0.01 * z, a_bar, a_bar_prev)
    rms = (x0_hat - x0s).pow(2).flatten(1).mean(1).sqrt()
    ax.plot(t + 1, rms, label=name)
ax.set(title="RMS error of x̂_0 from an output error δ = 0.01", xlabel="step t",
       ylabel="RMS error of x̂_0", yscale="log")  # fmt: skip
ax.legend()
plt.show()

# %% [markdown]
# This is why ε-prediction needs $\hat x_0$ clipped at high noise (DDPM's sampler does) and why
# $v$-prediction (ddpmkit's quick-start default) and EDM's preconditioned $D$ behave evenly across
# noise levels.
#
# ## Tweedie's formula: the optimal denoiser is the score
#
# For Gaussian data $x_0 \sim \mathcal{N}(m, S)$ the noised marginal is known,
# $q(x_t) = \mathcal{N}(\sqrt{\bar\alpha}\,m,\ \bar\alpha S + (1-\bar\alpha) I)$, and so is its
# score. The exact denoiser $D(x;\sigma) = \mathbb{E}[x_0 \mid x]$ (`GaussianDenoiser`), converted
# with `eps_from_x0` and `score_from_eps`, must give the same field.

# %%
data = Gaussian(torch.tensor([0.5, -0.3]), torch.tensor([[0.5, 0.35], [0.35, 0.4]]))
denoiser = data.denoiser()
row = 399
a = float(schedule.alpha_bar[row])
s = float(schedule.sigmas[row])
grid = torch.stack(
    torch.meshgrid(torch.linspace(-2, 2, 15), torch.linspace(-2, 2, 15), indexing="xy"), -1
)
x_t = grid.reshape(-1, 2).double()
a_bar = torch.full((len(x_t), 1), a, dtype=torch.float64)

x0_hat = denoiser(x_t / a**0.5, s)  # D(x; σ) at the VE coordinate x = x_t/√ᾱ
score_from_denoiser = score_from_eps(eps_from_x0(x_t, x0_hat, a_bar), a_bar)
cov_t = a * data.cov + (1 - a) * torch.eye(2, dtype=torch.float64)
score_exact = -(x_t - a**0.5 * data.mean) @ torch.linalg.inv(cov_t)
print(f"max |score from D - exact score| = {(score_from_denoiser - score_exact).abs().max():.1e}")

fig, axes = plt.subplots(1, 2, figsize=(10, 4.5), sharey=True)
samples = a**0.5 * data.sample(400, torch.Generator().manual_seed(3)) + (
    1 - a
) ** 0.5 * torch.randn(400, 2, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
for ax, field, title in [
    (axes[0], score_from_denoiser, "score from the denoiser D (Tweedie)"),
    (axes[1], score_exact, "exact score of q(x_t)"),
]:
    ax.scatter(samples[:, 0], samples[:, 1], s=3, alpha=0.3, color="gray", label="draws of $x_t$")
    ax.quiver(x_t[:, 0], x_t[:, 1], field[:, 0], field[:, 1], color="C0", angles="xy")
    ax.set(title=f"{title}, t = {row + 1}", xlabel="$x_t$[0]", aspect="equal")
axes[0].set_ylabel("$x_t$[1]")
axes[0].legend(loc="lower right")
fig.tight_layout()
plt.show()

# %% [markdown]
# The score points towards where $x_t$ is dense. Chapter 5 follows this field with Langevin
# dynamics and with the reverse SDE.
