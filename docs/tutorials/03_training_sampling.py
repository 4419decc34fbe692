# %% [markdown]
# # 3. Algorithm 1 (training) and Algorithm 2 (sampling)
#
# Ho et al. (2020) train a network $\varepsilon_\theta(x_t, t)$ to predict the noise in
# $x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\varepsilon$, with the simplified
# objective (eq. 14)
#
# $$L_\text{simple} = \mathbb{E}_{t,x_0,\varepsilon}\big\lVert \varepsilon - \varepsilon_\theta(
# \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\varepsilon,\ t)\big\rVert^2,$$
#
# and sample by running the learned reverse chain from pure noise (eq. 11):
#
# $$x_{t-1} = \frac{1}{\sqrt{\alpha_t}}\Big(x_t - \frac{\beta_t}{\sqrt{1-\bar\alpha_t}}\,
# \varepsilon_\theta(x_t, t)\Big) + \sigma_t z,\qquad z \sim \mathcal{N}(0, I),\ \sigma_t^2 = \beta_t.$$
#
# This page writes both algorithms out line by line with ddpmkit's building blocks, trains a tiny
# network on the bundled 8×8 digits for a few seconds, then does the same with the high-level API
# `ddpmkit.train`. The models are far too small and too briefly trained to draw good digits:
# the samples are rough, but recognisable.

# %%
import tempfile
import time

import matplotlib.pyplot as plt
import torch

import ddpmkit
from ddpmkit import NetworkDenoiser, NoiseSchedule, ddpm_ancestral, q_sample
from ddpmkit.core.parameterization import reverse_mean_from_eps
from ddpmkit.core.thresholding import ClippedDenoiser
from ddpmkit.data.digits import digits_arrays
from ddpmkit.networks import MLPConfig, MLPDenoiser

images, labels = digits_arrays("train")  # (1500, 1, 8, 8) in [-1, 1]
print(f"{len(images)} training digits of shape {tuple(images.shape[1:])}")


def show_grid(batch, title, ax=None, rows=8):
    """A grid of 8×8 digits in [-1, 1], one row of `len(batch) // rows` per line."""
    batch = batch.clamp(-1, 1)[:, 0]
    cols = len(batch) // rows
    canvas = torch.ones(rows * 9 - 1, cols * 9 - 1)  # white 1-pixel gaps
    for i, image in enumerate(batch[: rows * cols]):
        r, c = divmod(i, cols)
        canvas[r * 9 : r * 9 + 8, c * 9 : c * 9 + 8] = image
    ax = ax or plt.gca()
    ax.imshow(canvas, cmap="gray", vmin=-1, vmax=1)
    ax.set_title(title)
    ax.axis("off")


fig, ax = plt.subplots(figsize=(4, 4))
show_grid(images[:64], "training data: 64 digits")
plt.show()

# %% [markdown]
# ## Algorithm 1, line by line
#
# ```
# repeat
#   x_0 ~ q(x_0)                      # a batch of digits
#   t ~ Uniform({1, …, T})            # 0-based rows t = 0 … T-1 in ddpmkit
#   ε ~ N(0, I)
#   gradient step on ‖ε − ε_θ(√ᾱ_t x_0 + √(1−ᾱ_t) ε, t)‖²
# until converged
# ```
#
# The network is a residual MLP on the flattened 64 pixels (`MLPDenoiser`), conditioned on $t$ by
# the sinusoidal embedding of DDPM's U-Net; on 8×8 digits it learns much faster per CPU-second
# than the U-Net. `q_sample` is eq. 4.

# %%
torch.manual_seed(0)
schedule = NoiseSchedule.linear(1000)  # β_1 = 1e-4 … β_T = 0.02
network = MLPDenoiser(MLPConfig(dim=64, hidden=256, num_blocks=3))
optimizer = torch.optim.AdamW(network.parameters(), lr=2e-3)
generator = torch.Generator().manual_seed(0)
steps, batch_size = 800, 128  # small for the docs build: ~10 s on one CPU core

losses, start = [], time.perf_counter()
for step in range(steps):
    x0 = images[torch.randint(0, len(images), (batch_size,), generator=generator)]
    t = torch.randint(0, schedule.num_steps, (batch_size,), generator=generator)
    eps = torch.randn(x0.shape, generator=generator)
    x_t = q_sample(schedule, x0, t, eps)
    loss = (eps - network(x_t, t)).pow(2).mean()
    for group in optimizer.param_groups:  # a short linear warm-up
        group["lr"] = 2e-3 * min(1.0, (step + 1) / 100)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    losses.append(loss.item())
print(
    f"{steps} steps in {time.perf_counter() - start:.1f} s, final loss {sum(losses[-50:]) / 50:.3f}"
)

smooth = torch.tensor(losses).unfold(0, 25, 1).mean(1)
fig, ax = plt.subplots(figsize=(6, 3.2))
ax.plot(losses, alpha=0.3, label="batch loss")
ax.plot(range(24, steps), smooth, label="moving average (25 steps)")
ax.set(
    title="L_simple during training",
    xlabel="optimizer step",
    ylabel="‖ε − ε_θ‖² per pixel",
    yscale="log",
)
ax.legend()
plt.show()

# %% [markdown]
# ddpmkit's `SimpleLoss` is this objective written on the denoiser (with ε, $x_0$ or $v$ targets,
# optional weights and timestep samplers); the trainer behind `ddpmkit train` adds EMA weights,
# checkpoints and resumption.
#
# ## Algorithm 2, line by line
#
# ```
# x_T ~ N(0, I)
# for t = T, …, 1:
#   z ~ N(0, I) if t > 1 else 0
#   x_{t-1} = (x_t − β_t/√(1−ᾱ_t) ε_θ(x_t, t))/√α_t + σ_t z
# return x_0
# ```
#
# `reverse_mean_from_eps` is eq. 11; the schedule's `at` picks the rows $t$ of its tables, shaped to
# broadcast over the batch.

# %%
network.eval()
generator = torch.Generator().manual_seed(1)
with torch.no_grad():
    x = torch.randn(64, 1, 8, 8, generator=generator)  # x_T
    for t in reversed(range(schedule.num_steps)):
        rows = torch.full((64,), t)
        alpha = schedule.at(schedule.alphas, rows, x)
        alpha_bar = schedule.at(schedule.alpha_bar, rows, x)
        mean = reverse_mean_from_eps(x, network(x, rows), alpha, alpha_bar)
        z = torch.randn(x.shape, generator=generator) if t > 0 else torch.zeros_like(x)
        x = mean + schedule.at(schedule.betas, rows, x).sqrt() * z
literal = x

# %% [markdown]
# ## The same with the library's sampler
#
# `NetworkDenoiser` reads the network as a denoiser $D(x;\sigma) = \hat x_0$, the one interface every
# sampler uses; `ddpm_ancestral` is Algorithm 2 on it, written with the posterior mean
# $\tilde\mu_t(x_t, \hat x_0)$, which equals eq. 11. From the same generator it draws the same $x_T$
# and the same $z$s as the loop above, so it must return the same digits. DDPM's code also clips
# $\hat x_0$ to the data range $[-1, 1]$ at every step (`ClippedDenoiser`); on a young model that
# lifts dark backgrounds into grey, which is why ddpmkit's quick recipe samples without it.

# %%
denoiser = NetworkDenoiser(network, schedule, "eps")
generator = torch.Generator().manual_seed(1)
x_T = torch.randn(64, 1, 8, 8, generator=generator)
result = ddpm_ancestral(
    denoiser, schedule, x_T, variance="beta", generator=generator, record_trajectory=True
)
difference = (result.samples - literal).abs().max()
print(f"ddpm_ancestral: {result.nfe} network evaluations; max |library − loop| = {difference:.1e}")
clipped = ddpm_ancestral(
    ClippedDenoiser(denoiser),
    schedule,
    x_T,
    variance="beta",
    generator=torch.Generator().manual_seed(1),
).samples

fig, axes = plt.subplots(1, 3, figsize=(13, 4.6))
show_grid(literal, "Algorithm 2 as written (σ² = β)", axes[0])
show_grid(result.samples, "ddpm_ancestral, same noise", axes[1])
show_grid(clipped, "ddpm_ancestral, x̂_0 clipped to [-1, 1]", axes[2])
fig.suptitle(f"samples of an MLP trained for {steps} steps: rough, as expected")
plt.show()

# %% [markdown]
# The reverse chain, recorded (`record_trajectory=True`): $x_t$ for eight samples at a few steps.

# %%
shown = [1000, 800, 600, 400, 300, 200, 100, 50, 0]  # t; the trajectory holds x_T … x_0
trajectory = result.trajectory
fig, axes = plt.subplots(8, len(shown), figsize=(1.1 * len(shown), 8.6))
for col, t in enumerate(shown):
    state = trajectory[len(trajectory) - 1 - t]
    for row in range(8):
        axes[row, col].imshow(state[row, 0], cmap="gray", vmin=-1.5, vmax=1.5)
        axes[row, col].set_xticks([])
        axes[row, col].set_yticks([])
    axes[0, col].set_title(f"t = {t}", fontsize=9)
for row in range(8):
    axes[row, 0].set_ylabel(f"sample {row}", fontsize=8)
fig.suptitle("Algorithm 2: x_T (pure noise) → x_0", y=0.995)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## In one call: ddpmkit.train and Model.sample
#
# The high-level API runs the same recipe with the trainer behind `ddpmkit train`: a run folder
# (here a temporary one), EMA weights, checkpoints, a log. Options are the configuration's
# sections as keyword dicts. We pick the same MLP with the quick recipe's $v$-prediction and
# cosine schedule, and sample with Algorithm 2 on 100 respaced steps.

# %%
with tempfile.TemporaryDirectory() as folder:
    start = time.perf_counter()
    model = ddpmkit.train(
        "digits",
        out=f"{folder}/run",
        progress=False,
        model={"kind": "mlp", "mlp": {"hidden": 256, "num_blocks": 3}},
        diffusion={"parameterization": "v", "schedule": "cosine"},
        train={
            "steps": 500,
            "batch_size": 128,
            "lr": 2e-3,
            "warmup_steps": 50,
            "checkpoint_every": 500,
        },  # small for the docs build
        sample={"num_samples": 16},
    )
    print(f"trained in {time.perf_counter() - start:.1f} s: {model.config.model.kind}, "
          f"{model.config.diffusion.parameterization}-prediction, shape {model.shape}")  # fmt: skip
    samples = model.sample(64, sampler="ancestral", steps=100, seed=0, progress=False)

fig, ax = plt.subplots(figsize=(4.5, 4.5))
show_grid(samples, "ddpmkit.train(...).sample(64, sampler='ancestral', steps=100)")
ax.title.set_fontsize(8)
plt.show()

# %% [markdown]
# With a minute or two instead of seconds (`ddpmkit.train("digits", minutes=2)`, which also sizes
# the network for the budget) the digits become clean; `make demo` trains the README's U-Net.
