# %% [markdown]
# # 1. The forward process and q(x_t | x_0)
#
# A diffusion model destroys data by adding Gaussian noise in $T$ small steps
# (Ho et al. 2020, eq. 2):
#
# $$q(x_t \mid x_{t-1}) = \mathcal{N}\big(x_t;\ \sqrt{1-\beta_t}\,x_{t-1},\ \beta_t I\big),$$
#
# and because a composition of Gaussian steps is Gaussian, any step can be reached from the data in
# one jump (eq. 4), with $\alpha_t = 1-\beta_t$ and $\bar\alpha_t = \prod_{s \le t} \alpha_s$:
#
# $$q(x_t \mid x_0) = \mathcal{N}\big(x_t;\ \sqrt{\bar\alpha_t}\,x_0,\ (1-\bar\alpha_t) I\big),
# \qquad x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\varepsilon,\quad
# \varepsilon \sim \mathcal{N}(0, I).$$
#
# In ddpmkit the schedule $\beta_1 \dots \beta_T$ and every table derived from it live in one
# object, `NoiseSchedule`; `q_step` and `q_sample` are these two equations. Row `t` of every table
# (0-based) is the paper's step $t+1$.

# %%
import matplotlib.pyplot as plt
import torch

from ddpmkit import NoiseSchedule, q_sample, q_step
from ddpmkit.data.digits import digits_arrays

T = 1000
schedules = {
    "linear": NoiseSchedule.linear(T),
    "cosine": NoiseSchedule.cosine(T),
    "sigmoid": NoiseSchedule.sigmoid(T),
}
linear = schedules["linear"]
print(f"T = {linear.num_steps}, β_1 = {linear.betas[0]:.1e}, β_T = {linear.betas[-1]:.3f}")
print("ᾱ_T: " + ", ".join(f"{k} {float(s.alpha_bar[-1]):.1e}" for k, s in schedules.items()))

# %% [markdown]
# ## Schedules: β_t, ᾱ_t and the signal-to-noise ratio
#
# The linear schedule of DDPM raises $\beta_t$ from $10^{-4}$ to $0.02$; the cosine schedule
# (Nichol & Dhariwal 2021, eq. 17) defines $\bar\alpha_t = \cos^2\!\big(\tfrac{t/T+s}{1+s}\tfrac\pi2\big)$
# directly, so it destroys information more evenly. The log signal-to-noise ratio
# $\log\frac{\bar\alpha_t}{1-\bar\alpha_t}$ is the table `log_snr`.

# %%
steps = torch.arange(1, T + 1)
fig, axes = plt.subplots(1, 3, figsize=(13, 3.4))
for name, schedule in schedules.items():
    axes[0].plot(steps, schedule.betas, label=name)
    axes[1].plot(steps, schedule.alpha_bar, label=name)
    axes[2].plot(steps, schedule.log_snr, label=name)
axes[0].set(title=r"$\beta_t$", xlabel="step t", ylabel=r"$\beta_t$", yscale="log")
axes[1].set(title=r"$\bar\alpha_t$ (signal kept)", xlabel="step t", ylabel=r"$\bar\alpha_t$")
axes[2].set(title="log SNR", xlabel="step t", ylabel=r"$\log \bar\alpha_t/(1-\bar\alpha_t)$")
for ax in axes:
    ax.legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Noised digits: x_t ~ q(x_t | x_0) in one jump
#
# The bundled data are scikit-learn's 8×8 handwritten digits scaled to $[-1, 1]$. One noise draw
# $\varepsilon$ per image, shared by every column, shows how fast each schedule erases a digit.

# %%
images, labels = digits_arrays("train")
x0 = images[:1].expand(len(schedules), -1, -1, -1)  # the same digit for every schedule
shown = [0, 50, 100, 200, 300, 400, 600, 999]  # 0-based rows: step t + 1
eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(0))

fig, axes = plt.subplots(len(schedules), len(shown), figsize=(1.3 * len(shown), 4.3))
for row, (name, schedule) in enumerate(schedules.items()):
    for col, t in enumerate(shown):
        x_t = q_sample(schedule, x0[row : row + 1], torch.tensor([t]), eps[row : row + 1])
        ax = axes[row, col]
        ax.imshow(x_t[0, 0], cmap="gray", vmin=-2, vmax=2)
        ax.set_xticks([])
        ax.set_yticks([])
        if row == 0:
            ax.set_title(f"t = {t + 1}")
        if col == 0:
            ax.set_ylabel(name)
        ax.set_xlabel(f"ᾱ={float(schedule.alpha_bar[t]):.2f}", fontsize=8)
fig.suptitle(f"q(x_t | x_0) for a digit {int(labels[0])}: rows are schedules")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Closed form against composed steps
#
# Eq. 4 claims that $t$ applications of `q_step` (eq. 2) have the law of one `q_sample`. We run
# 2,000 chains of the linear schedule from one digit $x_0$ and, at every step, compare the chains'
# mean and variance with the closed form: the projection $\langle \bar x_t, x_0\rangle /
# \lVert x_0\rVert^2$ should be $\sqrt{\bar\alpha_t}$ and the per-pixel variance $1-\bar\alpha_t$.

# %%
chains = 2000  # small for the docs build
generator = torch.Generator().manual_seed(1)
digit = images[0].double().flatten()  # (64,)
x = digit.expand(chains, -1).clone()
coefficients, variances = [], []
for t in range(T):
    x = q_step(
        linear,
        x,
        torch.full((chains,), t),
        torch.randn(x.shape, generator=generator, dtype=x.dtype),
    )
    coefficients.append(float(x.mean(0) @ digit / (digit @ digit)))
    variances.append(float(x.var(0).mean()))

fig, axes = plt.subplots(1, 2, figsize=(11, 3.4))
axes[0].plot(
    steps, linear.sqrt_alpha_bar, "k", lw=3, alpha=0.3, label=r"closed form $\sqrt{\bar\alpha_t}$"
)
axes[0].plot(steps, coefficients, "C0", lw=1, label="composed steps (2,000 chains)")
axes[0].set(title="mean: coefficient of $x_0$", xlabel="step t", ylabel="coefficient")
axes[1].plot(
    steps, 1 - linear.alpha_bar, "k", lw=3, alpha=0.3, label=r"closed form $1-\bar\alpha_t$"
)
axes[1].plot(steps, variances, "C1", lw=1, label="composed steps (2,000 chains)")
axes[1].set(title="variance per pixel", xlabel="step t", ylabel="variance")
for ax in axes:
    ax.legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# ## A Monte Carlo check of the law at one step
#
# At $t = 300$ we compare the composed chains with fresh one-jump draws pixel by pixel: the
# difference of means should be within a few standard errors $\sqrt{2(1-\bar\alpha_t)/n}$, and the
# standardised residual $(x_t - \sqrt{\bar\alpha_t}x_0)/\sqrt{1-\bar\alpha_t}$ should be
# $\mathcal{N}(0, 1)$.

# %%
t = 299
x = digit.expand(chains, -1).clone()
for s in range(t + 1):
    x = q_step(
        linear,
        x,
        torch.full((chains,), s),
        torch.randn(x.shape, generator=generator, dtype=x.dtype),
    )
direct = q_sample(
    linear,
    digit.expand(chains, -1),
    torch.full((chains,), t),
    torch.randn(chains, 64, generator=generator, dtype=torch.float64),
)
a_bar = float(linear.alpha_bar[t])
standard_error = (2 * (1 - a_bar) / chains) ** 0.5
z = (x.mean(0) - direct.mean(0)) / standard_error
print(
    f"ᾱ_300 = {a_bar:.4f}; mean difference in standard errors: max |z| over 64 pixels = {z.abs().max():.2f}"
)
residual = ((x - a_bar**0.5 * digit) / (1 - a_bar) ** 0.5).flatten()
print(
    f"standardised residual of the composed chains: mean {residual.mean():+.4f}, std {residual.std():.4f}"
)

grid = torch.linspace(-4, 4, 200)
fig, ax = plt.subplots(figsize=(6, 3.4))
ax.hist(residual.numpy(), bins=80, density=True, alpha=0.6, label="300 composed steps of eq. 2")
ax.plot(grid, torch.exp(-(grid**2) / 2) / (2 * torch.pi) ** 0.5, "k", label="N(0, 1) (eq. 4)")
ax.set(title="standardised $x_{300}$, all pixels", xlabel="value", ylabel="density")
ax.legend()
plt.show()

# %% [markdown]
# The two routes agree, which is what makes training cheap: Algorithm 1 draws $x_t$ for a random
# $t$ with one `q_sample` instead of $t$ steps. The next chapter reverses one step.
