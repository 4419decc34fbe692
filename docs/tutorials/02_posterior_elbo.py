# %% [markdown]
# # 2. The posterior q(x_{t-1} | x_t, x_0) and the ELBO
#
# Reversing one step of the forward process is intractable on its own, but given the data point
# $x_0$ it is a Gaussian (Ho et al. 2020, eqs. 6–7):
#
# $$q(x_{t-1} \mid x_t, x_0) = \mathcal{N}\big(x_{t-1};\ \tilde\mu_t(x_t, x_0),\ \tilde\beta_t I\big),$$
#
# $$\tilde\mu_t(x_t, x_0) = \frac{\sqrt{\bar\alpha_{t-1}}\,\beta_t}{1-\bar\alpha_t}\,x_0 +
# \frac{\sqrt{\alpha_t}\,(1-\bar\alpha_{t-1})}{1-\bar\alpha_t}\,x_t,
# \qquad
# \tilde\beta_t = \frac{1-\bar\alpha_{t-1}}{1-\bar\alpha_t}\,\beta_t .$$
#
# The model $p_\theta(x_{t-1} \mid x_t) = \mathcal{N}(\tilde\mu_t(x_t, \hat x_0(x_t)), \sigma_t^2 I)$
# plugs its estimate $\hat x_0$ into the same mean, and is trained on the variational bound
# (eq. 5), a sum of KL divergences between Gaussians:
#
# $$-\log p_\theta(x_0) \le
# \underbrace{D_{\mathrm{KL}}(q(x_T \mid x_0)\,\|\,p(x_T))}_{L_T} +
# \sum_{t>1} \underbrace{D_{\mathrm{KL}}(q(x_{t-1} \mid x_t, x_0)\,\|\,
# p_\theta(x_{t-1} \mid x_t))}_{L_{t-1}}
# \underbrace{-\log p_\theta(x_0 \mid x_1)}_{L_0}.$$
#
# In ddpmkit the posterior is `posterior_mean` / `posterior_variance` (tables
# `posterior_mean_coef_x0`, `posterior_mean_coef_xt`, `posterior_variance` of the schedule) and the
# bound is `ddpmkit.likelihood.variational_bound`, term by term.

# %%
import math

import matplotlib.pyplot as plt
import torch

from ddpmkit import NoiseSchedule, posterior_mean, posterior_variance, q_sample, q_step
from ddpmkit.evaluation.testbed import gaussian
from ddpmkit.likelihood import gaussian_log_density, schedule_log_variance, variational_bound

schedule = NoiseSchedule.linear(1000)
steps = torch.arange(1, 1001)

fig, axes = plt.subplots(1, 2, figsize=(11, 3.4))
axes[0].plot(steps, schedule.posterior_mean_coef_x0, label=r"coefficient of $x_0$")
axes[0].plot(steps, schedule.posterior_mean_coef_xt, label=r"coefficient of $x_t$")
axes[0].set(
    title=r"posterior mean $\tilde\mu_t$", xlabel="step t", ylabel="coefficient", xscale="log"
)
axes[1].plot(steps, schedule.betas, label=r"$\beta_t$ (forward step)")
axes[1].plot(steps[1:], schedule.posterior_variance[1:], label=r"$\tilde\beta_t$ (posterior)")
axes[1].set(
    title="two choices of reverse variance",
    xlabel="step t",
    ylabel="variance",
    xscale="log",
    yscale="log",
)
for ax in axes:
    ax.legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# Early in the chain the posterior mean leans on $x_0$ and its variance is far below $\beta_t$;
# later $\tilde\beta_t \approx \beta_t$, which is why DDPM found both choices of $\sigma_t^2$ to work.
#
# ## A Monte Carlo check of the posterior
#
# Fix a scalar $x_0$, draw $x_{t-1} \sim q(x_{t-1} \mid x_0)$ and one forward step
# $x_t \sim q(x_t \mid x_{t-1})$. The pairs are jointly Gaussian, so regressing $x_{t-1}$ on $x_t$
# must give the posterior: slope $=$ coefficient of $x_t$, intercept $=$ coefficient of $x_0$
# times $x_0$, residual variance $=\tilde\beta_t$.

# %%
generator = torch.Generator().manual_seed(0)
n, x0_value, t = 200_000, 0.7, 99  # row 99 is the paper's step t = 100
x0 = torch.full((n, 1), x0_value, dtype=torch.float64)
rows = torch.full((n,), t)
x_prev = q_sample(
    schedule, x0, rows - 1, torch.randn(n, 1, generator=generator, dtype=torch.float64)
)
x_t = q_step(schedule, x_prev, rows, torch.randn(n, 1, generator=generator, dtype=torch.float64))

design = torch.cat([x_t, torch.ones_like(x_t)], dim=1)
(slope, intercept), *_ = torch.linalg.lstsq(design, x_prev).solution.T
residual_var = (x_prev - design @ torch.stack([slope, intercept])[:, None]).var()
print(f"slope      {slope:.5f}   vs c_xt       = {float(schedule.posterior_mean_coef_xt[t]):.5f}")
print(
    f"intercept  {intercept:.5f}   vs c_x0 · x_0 = {float(schedule.posterior_mean_coef_x0[t]) * x0_value:.5f}"
)
print(f"residual   {residual_var:.3e} vs β̃_t        = {float(schedule.posterior_variance[t]):.3e}")

grid = torch.linspace(float(x_t.min()), float(x_t.max()), 50, dtype=torch.float64)[:, None]
mean = posterior_mean(schedule, torch.full_like(grid, x0_value), grid, torch.full((50,), t))
std = posterior_variance(schedule, torch.full((50,), t), grid).sqrt()
fig, ax = plt.subplots(figsize=(6, 4))
ax.scatter(x_t[:3000], x_prev[:3000], s=2, alpha=0.3, label="draws of $(x_t, x_{t-1})$")
ax.plot(grid, mean, "k", label=r"$\tilde\mu_t(x_t, x_0)$ (posterior_mean)")
ax.fill_between(
    grid[:, 0],
    (mean - 2 * std)[:, 0],
    (mean + 2 * std)[:, 0],
    color="k",
    alpha=0.15,
    label=r"$\pm 2\sqrt{\tilde\beta_t}$",
)
ax.set(
    title=f"q(x_(t-1) | x_t, x_0 = {x0_value}) at t = {t + 1}", xlabel="$x_t$", ylabel="$x_{t-1}$"
)
ax.legend()
plt.show()

# %% [markdown]
# ## The bound term by term with an exact denoiser
#
# On Gaussian data $x_0 \sim \mathcal{N}(m, S)$ the best possible $\hat x_0$ is known in closed form,
# $\mathbb{E}[x_0 \mid x] = m + S(S + \sigma^2 I)^{-1}(x - m)$ (`GaussianDenoiser`), and so is the
# exact negative log-likelihood. With that denoiser every gap between the bound and the NLL is the
# bound's own, not a model's. The testbed `gaussian(8)` is an 8-dimensional Gaussian with standard
# deviations from 0.05 to 1 in a random rotation. Its decoder $L_0$ is a continuous Gaussian
# density (`gaussian_log_density`; image data use the discretized decoder of eq. 13), so bits/dim
# can be negative, as for any continuous density.

# %%
data = gaussian(8)
x0 = data.sample(2000, torch.Generator().manual_seed(1))  # small for the docs build
nll_bpd = -data.log_density(x0, 0.0) / (data.dim * math.log(2))  # (B,) exact -log₂ p(x_0)/D


def bound_of(schedule, variance):
    """All T + 1 terms of eq. 5 for the batch x0, each x_t drawn once from q(x_t|x_0)."""
    return variational_bound(
        data.denoiser(),
        schedule,
        x0,
        schedule_log_variance(schedule, variance),  # σ_t² = β_t or β̃_t
        generator=torch.Generator().manual_seed(2),
        clip=None,  # the data are not images in [-1, 1]
        decoder=gaussian_log_density,
    )


def gap(bound):
    """Mean of bound − NLL in bits/dim and the half-width of its 95% interval."""
    difference = bound.total_bpd - nll_bpd
    return float(difference.mean()), 1.96 * float(difference.std()) / len(x0) ** 0.5


bounds = {variance: bound_of(schedule, variance) for variance in ("beta", "beta_tilde")}
print(f"exact NLL: {nll_bpd.mean():.4f} bits/dim")
for variance, bound in bounds.items():
    print(
        f"σ_t² = {variance:10s}: bound {bound.mean_bpd:.4f} bits/dim = "
        f"L_T {bound.prior_bpd.mean():.1e} + Σ L_t {bound.terms_bpd[1:].sum():.4f} "
        f"+ L_0 {bound.terms_bpd[0]:.4f};  bound − NLL = {gap(bound)[0]:.4f} ± {gap(bound)[1]:.4f}"
    )

fig, ax = plt.subplots(figsize=(8, 4))
for (variance, bound), marker in zip(bounds.items(), "os", strict=True):
    (line,) = ax.plot(
        steps[1:], bound.terms_bpd[1:], label=rf"$L_{{t-1}}$, $\sigma_t^2$ = {variance}"
    )
    ax.scatter([1], [bound.terms_bpd[0]], color=line.get_color(), marker=marker, zorder=3,
               label=rf"$L_0$ (decoder), $\sigma_1^2$ = {variance}")  # fmt: skip
ax.axhline(bounds["beta"].prior_bpd.mean(), color="gray", ls=":", label=r"$L_T$ (prior)")
ax.set(title="ELBO terms on 8-D Gaussian data, exact denoiser, T = 1000", xlabel="step t",
       ylabel="bits/dim (symlog scale)", xscale="log")  # fmt: skip
ax.set_yscale("symlog", linthresh=1e-5)
ax.set_ylim(-20, 3)
ax.legend(fontsize=8, loc="center right")
plt.show()

# %% [markdown]
# The decoder term $L_0$ is negative here (a sharp continuous density) and the KL terms carry the
# rest; they are largest at small $t$ and fade towards $t = T$. The prior term $L_T$ is tiny
# because $\bar\alpha_T \approx 4\cdot 10^{-5}$. With $\sigma_t^2 = \beta_t$ the bound is within
# its Monte Carlo error of the exact NLL; with $\tilde\beta_t$, a lower bound on the true reverse
# variance (reached only when $x_0$ is a single point, Ho et al. §3.2), it stays looser.
#
# ## The bound tightens as T grows
#
# With the exact denoiser the only slack left is the discretisation of time. Fewer, larger steps
# (the linear schedule rescaled to keep $\bar\alpha_T$, as `NoiseSchedule.linear` does for
# $T \ne 1000$) make a looser bound.

# %%
Ts = [25, 50, 100, 200, 500, 1000]
fig, ax = plt.subplots(figsize=(6.5, 3.8))
for variance in ("beta", "beta_tilde"):
    gaps = [gap(bound_of(NoiseSchedule.linear(T), variance)) for T in Ts]
    print(
        variance, ", ".join(f"T={T}: {g:.3f}±{e:.3f}" for T, (g, e) in zip(Ts, gaps, strict=True))
    )
    ax.errorbar(Ts, [g for g, _ in gaps], yerr=[e for _, e in gaps], marker="o", capsize=3,
                label=rf"$\sigma_t^2$ = {variance}")  # fmt: skip
ax.axhline(0, color="k", lw=0.8)
ax.set(title="bound − exact NLL (95% intervals), exact denoiser", xlabel="number of steps T",
       ylabel="bits/dim", xscale="log")  # fmt: skip
ax.legend()
plt.show()

# %% [markdown]
# A learned model adds its own error on top of this discretisation gap. Chapter 3 trains one by
# the simplified objective $L_\text{simple}$, which drops the weights of these KL terms.
