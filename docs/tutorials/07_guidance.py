# %% [markdown]
# # 7. Classifier and classifier-free guidance
#
# To sample from $p(x \mid y)$ we need the conditional score. By Bayes' rule
# $\nabla\log p_\sigma(x \mid y) = \nabla\log p_\sigma(x) + \nabla\log p_\sigma(y \mid x)$, and
# guidance scales the second term by $s$ to trade diversity for class fidelity:
#
# - **classifier guidance** (Dhariwal & Nichol 2021) adds a noisy classifier's gradient; since the
#   score is $(D(x;\sigma) - x)/\sigma^2$, in denoiser form
#   $\hat x_0' = D(x;\sigma) + s\,\sigma^2\,\nabla_x \log p_\phi(y \mid x, \sigma)$
#   (`ClassifierGuidance`);
# - **classifier-free guidance** (Ho & Salimans 2022) uses one network trained with and without
#   the label ($\varnothing$): $D_w(x;\sigma,y) = D(x;\sigma,\varnothing) + w\,\big(D(x;\sigma,y) -
#   D(x;\sigma,\varnothing)\big)$, so $w = 1$ is the conditional model, $w = 0$ the unconditional
#   one and $w > 1$ extrapolates (`ClassifierFreeGuidance`).
#
# Both are *denoiser wrappers*: any sampler runs them unchanged. To see exactly what they do we
# use a labelled 2-D mixture whose conditional and unconditional denoisers and whose classifier
# $p(y \mid x_\sigma)$ are all known in closed form: six Gaussian modes on a hexagon, opposite modes
# sharing one of three classes.

# %%
import math

import matplotlib.pyplot as plt
import torch

from ddpmkit import NoiseSchedule
from ddpmkit.core.denoisers import per_sample_sigma
from ddpmkit.evaluation.testbed import GaussianMixture, GaussianMixtureDenoiser
from ddpmkit.guidance import ClassifierFreeGuidance, ClassifierGuidance
from ddpmkit.samplers import sample

NUM_CLASSES, NULL = 3, 3  # labels 0, 1, 2 and the null label ∅ = 3
angles = torch.arange(6, dtype=torch.float64) * math.pi / 3
mixture = GaussianMixture(
    weights=torch.tensor([1.0, 2.0, 3.0, 2.0, 1.0, 1.0], dtype=torch.float64),
    means=1.5 * torch.stack([angles.cos(), angles.sin()], dim=1),
    stds=torch.full((6,), 0.3, dtype=torch.float64),
)
component_class = torch.arange(6) % NUM_CLASSES  # opposite modes share a class


def class_mixture(label):
    keep = component_class == label
    return GaussianMixture(mixture.weights[keep], mixture.means[keep], mixture.stds[keep])


class ExactLabelledDenoiser:
    """E[x_0 | x, y]: class y's own mixture per row, the full mixture for the null label ∅."""

    def __init__(self):
        self.denoisers = [GaussianMixtureDenoiser(class_mixture(c)) for c in range(NUM_CLASSES)]
        self.denoisers.append(mixture.denoiser())

    def __call__(self, x, sigma, class_labels=None):
        sigma = per_sample_sigma(sigma, x)
        labels = torch.full((len(x),), NULL) if class_labels is None else class_labels
        out = torch.empty_like(x)
        for label, denoiser in enumerate(self.denoisers):
            rows = labels == label
            if rows.any():
                out[rows] = denoiser(x[rows], sigma[rows])
        return out


def exact_classifier(x, sigma):
    """Logits of p(y | x_σ): log Σ over y's components of π_k N(x; m_k, (s_k² + σ²)I)."""
    joint = mixture.component_log_joint(x, sigma)
    return torch.stack(
        [torch.logsumexp(joint[:, component_class == c], 1) for c in range(NUM_CLASSES)], 1
    )


denoiser = ExactLabelledDenoiser()
schedule = NoiseSchedule.linear(1000)
n = 1500  # small for the docs build
x_T = torch.randn(n, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
target = torch.zeros(n, dtype=torch.long)  # guide every sample towards class 0


def draw(guided_denoiser):
    return sample("dpm++2m", guided_denoiser, schedule, x_T, 25, class_labels=target).samples


# %% [markdown]
# ## Samples as the guidance scale grows
#
# Each panel draws 1,500 samples towards class 0 (the modes at 0° and 180°, blue) with DPM-Solver++
# in 25 steps. Scale 0 is the unconditional model for classifier-free guidance and the unguided
# unconditional model for classifier guidance; scale 1 is the exact conditional distribution for
# both (for classifier guidance with an exact classifier that is Bayes' rule).

# %%
scales = [0.0, 1.0, 3.0, 10.0]
colors = ["C0", "C1", "C2"]
lim = 3.0
fig, axes = plt.subplots(2, len(scales), figsize=(3.2 * len(scales), 6.6), sharex=True, sharey=True)
shares = {"classifier-free": [], "classifier": []}
for col, scale in enumerate(scales):
    guided = {
        "classifier-free": ClassifierFreeGuidance(denoiser, scale=scale, null_label=NULL),
        "classifier": ClassifierGuidance(
            denoiser, exact_classifier, scale=scale, conditional=False
        ),
    }
    for row, (kind, wrapper) in enumerate(guided.items()):
        x = draw(wrapper)
        predicted = exact_classifier(x, 0.0).argmax(1)
        shares[kind].append(float((predicted == 0).double().mean()))
        ax = axes[row, col]
        for c in range(NUM_CLASSES):
            m = mixture.means[component_class == c]
            ax.scatter(m[:, 0], m[:, 1], s=300, facecolors="none", edgecolors=colors[c], lw=1.5)
        ax.scatter(x[:, 0], x[:, 1], s=2, alpha=0.35, c=[colors[int(p)] for p in predicted])
        ax.set(xlim=(-lim, lim), ylim=(-lim, lim), aspect="equal")
        if row == 0:
            ax.set_title(f"scale {scale:g}")
        if row == 1:
            ax.set_xlabel("x[0]")
        if col == 0:
            ax.set_ylabel(f"{kind} guidance\nx[1]")
fig.suptitle(
    "guided towards class 0 (blue); circles: the six modes coloured by class; dots: samples by class"
)
fig.tight_layout()
plt.show()

# %% [markdown]
# The two rows are the same picture. That is no accident: for exact models Bayes' rule gives
# $D(x;\sigma,y) - D(x;\sigma,\varnothing) = \sigma^2\,\nabla_x\log p_\sigma(y \mid x)$, so
# classifier-free guidance with scale $w$ *is* classifier guidance with $s = w$ on the
# unconditional denoiser. Learned models break the identity in different ways, which is why the
# two methods behave differently in practice.

# %%
for scale in (3.0, 10.0):
    difference = draw(ClassifierFreeGuidance(denoiser, scale=scale, null_label=NULL)) - draw(
        ClassifierGuidance(denoiser, exact_classifier, scale=scale, conditional=False)
    )
    print(
        f"scale {scale:g}: max |classifier-free − classifier-guided sample| = {difference.abs().max():.1e}"
    )

# %% [markdown]
# ## Fidelity against spread
#
# The share of samples that land in the target class rises with the scale, and the samples move
# away from the boundary with the other classes, past the modes: for $s > 1$ guidance samples
# from something like $p(x)\,p(y \mid x)^s$, not from $p(x \mid y)$.

# %%
dense = [0.0, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0]
fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
for kind in shares:
    share, radius = [], []
    for scale in dense:
        wrapper = (
            ClassifierFreeGuidance(denoiser, scale=scale, null_label=NULL)
            if kind == "classifier-free"
            else ClassifierGuidance(denoiser, exact_classifier, scale=scale, conditional=False)
        )
        x = draw(wrapper)
        share.append(float((exact_classifier(x, 0.0).argmax(1) == 0).double().mean()))
        radius.append(
            float(x[:, 0].abs().mean())
        )  # distance from the y-axis: away from classes 1, 2
    style = "o-" if kind == "classifier-free" else "x--"  # the curves coincide
    axes[0].plot(dense, share, style, label=f"{kind} guidance")
    axes[1].plot(dense, radius, style, label=f"{kind} guidance")
exact_class0 = class_mixture(0).sample(20_000, torch.Generator().manual_seed(1))
axes[1].axhline(
    float(exact_class0[:, 0].abs().mean()), color="k", ls=":", label="exact p(x | y = 0)"
)
axes[0].set(title="share of samples in the target class", xlabel="guidance scale", ylabel="share")
axes[1].set(title="mean |x[0]| of the samples", xlabel="guidance scale", ylabel="|x[0]|")
for ax in axes:
    ax.legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# At scale 1 both reproduce the exact conditional (the dotted line); beyond it they push samples
# further out than $p(x \mid y)$ does, the well-known loss of diversity. In practice
# classifier-free guidance needs only the diffusion network, trained with label dropout
# (`model.label_dropout`); classifier guidance needs a separately trained noisy classifier
# (`ddpmkit train-classifier`).
