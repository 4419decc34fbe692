# %% [markdown]
# # 8. Inverse problems: inpainting, DPS and DDRM
#
# An unconditional diffusion model is a prior $p(x_0)$; restoring an image from a measurement
# $y = A x_0 + n$, $n \sim \mathcal{N}(0, \sigma_y^2 I)$, means sampling the posterior
# $p(x_0 \mid y) \propto p(y \mid x_0)\,p(x_0)$ without retraining. Three ways to steer the
# sampler with $y$ (all in `ddpmkit.inverse`):
#
# - **replacement** (Song et al. 2021): after every ancestral step, overwrite the known pixels with
#   $y$ noised to the current level, $x_{t-1}^\text{known} \sim q(x_{t-1} \mid y)$;
# - **DPS** (Chung et al. 2023): an ancestral step plus a gradient step on the measurement error of
#   the current estimate, $x_{t-1} \mathrel{-}= \zeta\,\nabla_{x_t}\lVert y - A\,\hat x_0(x_t)\rVert$;
# - **DDRM** (Kawar et al. 2022): for linear $A = U\,\mathrm{diag}(s)\,V^\top$, sample in the spectral
#   coordinates $\bar x = V^\top x$, where measured coordinates are pulled towards
#   $\bar y = \mathrm{diag}(s)^{-1}U^\top y$ and the others follow DDIM.
#
# First on a prior whose posterior we know exactly, then with a tiny trained model through the
# high-level API (`Model.inpaint`, `Model.restore`).

# %%
import tempfile

import matplotlib.pyplot as plt
import torch

import ddpmkit
from ddpmkit import NoiseSchedule
from ddpmkit.core.analytic import GaussianDenoiser
from ddpmkit.core.grids import build_grid
from ddpmkit.core.randomness import PerSampleGenerator
from ddpmkit.data.digits import digits_arrays
from ddpmkit.inverse import Mask, SpectralOperator, ddrm, dps, inpaint_replacement

train_images, _ = digits_arrays("train")
heldout, heldout_labels = digits_arrays("heldout")
digit = heldout[5:6].double()  # one held-out digit, (1, 1, 8, 8)
print(f"the digit to restore is a {int(heldout_labels[5])}")

# %% [markdown]
# ## An exact prior: a Gaussian fitted to the digits
#
# A Gaussian $\mathcal{N}(m, S)$ with the digits' mean and covariance is a poor generator (its
# samples are blurry blobs) but a useful referee: its denoiser $D(x;\sigma) = m + S(S +
# \sigma^2 I)^{-1}(x - m)$ is exact (`GaussianDenoiser`), and so is its posterior given a linear
# measurement, $\mathbb{E}[x_0 \mid y] = m + SA^\top(ASA^\top + \sigma_y^2 I)^{-1}(y - Am)$. The gap
# between a method's average restoration and that exact mean is the method's own bias.

# %%
flat = train_images.double().flatten(1)  # (1500, 64)
mean = flat.mean(0)
cov = torch.cov(flat.T) + 1e-3 * torch.eye(
    64, dtype=torch.float64
)  # a ridge: some pixels never vary


class FlatGaussianDenoiser(GaussianDenoiser):
    """The exact Gaussian denoiser on image-shaped batches (B, 1, 8, 8)."""

    def __call__(self, x, sigma, class_labels=None):
        return super().__call__(x.flatten(1), sigma).view_as(x)


prior = FlatGaussianDenoiser(mean, cov)
mask = torch.ones(1, 1, 8, 8, dtype=torch.float64)
mask[..., 4:, :] = 0  # the bottom half is missing
operator = Mask(mask)
y = operator(digit)

known = mask.flatten().bool()
A = torch.eye(64, dtype=torch.float64)[known]  # the measurement as a matrix: the known pixels
gain = cov @ A.T @ torch.linalg.inv(A @ cov @ A.T)  # noiseless: σ_y = 0
exact_mean = (mean + gain @ (A @ digit.flatten() - A @ mean)).view(1, 1, 8, 8)
exact_cov = cov - gain @ A @ cov  # the posterior covariance

# %% [markdown]
# Each method runs as a sampler: `method(denoiser, sigmas, x_T, <measurement>, …)` on a grid of
# noise levels (here all 1,000 steps of the linear schedule). We draw 32 restorations per method,
# each from its own seeded generator (`PerSampleGenerator`), and average them.

# %%
schedule = NoiseSchedule.linear(1000)
sigmas = build_grid(schedule, "linspace", 1000)
k = 32  # small for the docs build
x_T = torch.randn(k, 1, 8, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
ys, masks = y.expand(k, -1, -1, -1), mask.expand(k, -1, -1, -1)
runs = {
    "replacement": inpaint_replacement(prior, sigmas, x_T, ys, masks, generator=PerSampleGenerator(range(k))),
    "DPS (ζ = 1)": dps(prior, sigmas, x_T, ys, Mask(masks), step_size=1.0,
                       generator=PerSampleGenerator(range(k))),
    "DDRM (η = 0.85)": ddrm(prior, sigmas, x_T, ys, SpectralOperator.of(operator, (1, 8, 8)),
                            generator=PerSampleGenerator(range(k))),
}  # fmt: skip

fig, axes = plt.subplots(2, 5, figsize=(11, 5))
panels = [("original", digit[0, 0]), ("measurement y", torch.where(mask.bool(), y, torch.nan)[0, 0]),
          ("exact E[x | y]", exact_mean[0, 0])]  # fmt: skip
panels += [(f"{name}\nmean of {k}", run.samples.mean(0)[0]) for name, run in list(runs.items())[:2]]
panels2 = [(f"{name}\nmean of {k}", run.samples.mean(0)[0]) for name, run in list(runs.items())[2:]]
panels2 += [(f"{name}\none sample", run.samples[0, 0]) for name, run in runs.items()]
panels2.append(("", None))
for ax, (title, image) in zip(axes.flatten(), panels + panels2, strict=True):
    ax.axis("off")
    if image is not None:
        ax.imshow(image.clamp(-1, 1), cmap="gray", vmin=-1, vmax=1)
        ax.set_title(title, fontsize=9)
fig.suptitle(
    "inpainting the bottom half under the Gaussian prior (missing pixels of y shown white)"
)
fig.tight_layout()
plt.show()

floor = (exact_cov.diagonal().mean() / k).sqrt()  # RMS error of the mean of k exact draws
print(f"a perfect sampler's mean of {k} would miss the exact mean by {floor:.3f} RMS")
for name, run in runs.items():
    bias = (run.samples.mean(0) - exact_mean[0]).pow(2).mean().sqrt()
    kept = (run.samples * mask - y * mask).abs().max()
    print(f"{name:16s} RMS(mean − exact mean) = {bias:.3f}   max |known pixels − y| = {kept:.1e}")

# %% [markdown]
# Replacement and DDRM keep the known pixels exactly; DPS only approximately (its step $\zeta$
# trades fidelity against staying on the prior). With 32 restorations the averages cannot resolve
# biases much below the Monte Carlo error printed above; `tests/test_inverse.py` measures each
# method against the closed form with thousands of samples, and finds none of them an exact
# posterior sampler (replacement, in particular, denoises the unknown pixels against noised copies
# of $y$, which carry less information than $y$ itself).
#
# ## A learned prior through the high-level API
#
# Now a tiny model trained for a few seconds (the MLP of chapter 3), restoring the same digit by
# `Model.inpaint` (replacement, RePaint, DPS, DDRM) and `Model.restore` (2× super-resolution by
# DDRM). Each call returns a `Restoration` with the `input`, the `measurement` and `result`
# (B, K, C, H, W). The model is rough, so are the restorations.

# %%
with tempfile.TemporaryDirectory() as folder:
    model = ddpmkit.train(
        "digits",
        out=f"{folder}/run",
        progress=False,
        model={"kind": "mlp", "mlp": {"hidden": 256, "num_blocks": 3}},
        # small for the docs build: 800 steps, so a short EMA
        train={
            "steps": 800,
            "batch_size": 128,
            "lr": 2e-3,
            "warmup_steps": 50,
            "ema_decay": 0.99,
            "checkpoint_every": 800,
        },
    )

image = digit[0].float()  # (C, H, W) in [-1, 1]
known_half = mask[0].float()  # (1, H, W), 1 = known
options = {"num_samples": 4, "seed": 0, "steps": 250, "progress": False}
restorations = {
    "replacement": model.inpaint(image, known_half, method="replacement", **options),
    "RePaint": model.inpaint(image, known_half, method="repaint", jump_length=10, resamplings=3, **options),
    "DPS": model.inpaint(image, known_half, method="dps", **options),
    "DDRM": model.inpaint(image, known_half, method="ddrm", **options),
    "DDRM, 2× super-res.": model.restore(image, "super-resolution", scale=2, method="ddrm", **options),
}  # fmt: skip

fig, axes = plt.subplots(len(restorations), 6, figsize=(8, 1.5 * len(restorations) + 0.6))
for row, (name, restoration) in enumerate(restorations.items()):
    measurement = restoration.measurement[0, 0]
    if name != "DDRM, 2× super-res.":
        measurement = torch.where(known_half[0].bool(), measurement, torch.nan)
    shown = [restoration.input[0, 0], measurement, *restoration.result[0, :, 0]]
    for col, picture in enumerate(shown):
        axes[row, col].imshow(picture, cmap="gray", vmin=-1, vmax=1)
        axes[row, col].set_xticks([])
        axes[row, col].set_yticks([])
    axes[row, 0].set_ylabel(name, fontsize=9)
for col, title in enumerate(["original", "measurement", "restoration 1", "2", "3", "4"]):
    axes[0, col].set_title(title, fontsize=9)
fig.suptitle("a tiny learned prior (seconds of training): rough but consistent with y", fontsize=10)
fig.tight_layout()
plt.show()

# %% [markdown]
# The command line runs the same: `ddpmkit inpaint RUN --image in.png --mask mask.png --method
# repaint`, `ddpmkit restore RUN --task super-resolution --scale 2 --image in.png`; the
# [restoration benchmark](../../benchmarks-restoration/) compares the methods on a properly
# trained model.
