"""Guided sampling as denoiser wrappers: classifier-free, classifier guidance and autoguidance.

Every sampler calls only a denoiser D(x; σ, y) (``ddpmkit.core.denoisers``), so a guided denoiser works
with every sampler unchanged; pass the target classes as the sampler's ``class_labels``. A learned
variance fraction v of the wrapped denoiser passes through. All in VE coordinates x = x_0 + σε,
where the score is ∇ log p_σ(x) = (D(x; σ) - x)/σ² (Karras et al. 2022, eq. 3).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

import torch
from torch import Tensor, nn

from ddpmkit.core.denoisers import (
    Denoiser,
    DenoiserWrapper,
    append_dims,
    network_evaluations,
    network_inputs,
    per_sample_sigma,
    predict_with_variance,
)
from ddpmkit.core.schedules import NoiseSchedule

Classifier = Callable[[Tensor, Tensor], Tensor]
"""classifier(x, σ) -> (B, K) logits of p_φ(y | x) at noise level σ; x in VE coordinates, σ (B,)."""


def _require_labels(class_labels: Tensor | None, guidance: str) -> Tensor:
    if class_labels is None:
        raise ValueError(
            f"{guidance} needs class_labels: a (B,) tensor of the classes to guide towards "
            "(pass class_labels to the sampler)"
        )
    return class_labels


class ClassifierFreeGuidance(DenoiserWrapper):
    """D_w(x; σ, y) = D(x; σ, ∅) + w·(D(x; σ, y) - D(x; σ, ∅)) (Ho & Salimans 2022, eq. 6).

    The scale w is diffusers'/Imagen's: w = 1 is the plain conditional denoiser, w = 0 the
    unconditional one, w > 1 guides; Ho & Salimans' ε̃ = (1 + w')ε(y) - w'ε(∅) is w = 1 + w'.
    Guiding x̂_0 equals guiding ε: at fixed x and σ, x̂_0 = x - σε̂ is affine in ε̂ and the two
    weights sum to one. ∅ is the class label ``null_label`` the network was trained with for
    dropped labels. Both branches run as one batch of 2B rows, as in diffusers; at w = 1 (w = 0)
    only the conditional (unconditional) branch runs, so those scales reproduce it exactly. The
    variance fraction v is the conditional branch's (the unconditional's at w = 0).

    Args:
        denoiser: the class-conditional denoiser D(x; σ, y), trained with label dropout.
        scale: w, the guidance scale (1: no guidance; Ho & Salimans' w' = w - 1).
        null_label: the label ∅ that stood for a dropped label in training.
    """

    def __init__(self, denoiser: Denoiser, scale: float, null_label: int) -> None:
        self.denoiser, self.scale, self.null_label = denoiser, scale, null_label

    @property
    def network_evaluations(self) -> int:
        """Both branches (2B rows) per call, one at w = 1 or w = 0."""
        branches = 1 if self.scale in (0.0, 1.0) else 2
        return branches * network_evaluations(self.denoiser)

    def predict(
        self, x: Tensor, sigma: Tensor | float, class_labels: Tensor | None = None
    ) -> tuple[Tensor, Tensor | None]:
        """The guided x̂_0 and the conditional branch's variance fraction v (or None)."""
        labels = _require_labels(class_labels, "classifier-free guidance")
        null = torch.full_like(labels, self.null_label)
        if self.scale == 1.0:
            return predict_with_variance(self.denoiser, x, sigma, labels)
        if self.scale == 0.0:
            return predict_with_variance(self.denoiser, x, sigma, null)
        sigma = per_sample_sigma(sigma, x)
        x0_hat, v = predict_with_variance(
            self.denoiser, torch.cat([x, x]), torch.cat([sigma, sigma]), torch.cat([labels, null])
        )
        conditional, unconditional = x0_hat.chunk(2)
        guided = unconditional + self.scale * (conditional - unconditional)
        return guided, None if v is None else v.chunk(2)[0]


class AutoGuidance(DenoiserWrapper):
    """D_w(x; σ) = D_0(x; σ) + w·(D_1(x; σ) - D_0(x; σ)) (Karras et al. 2024, eq. 2).

    D_1 is the model sampled, D_0 a weaker version of it (here an earlier checkpoint), which
    errs the same way but more; w > 1 extrapolates away from its errors. For Gaussian data the
    probability-flow ODE of D_w ends with standard deviation s_1^w·s_0^(1-w) when D_1 and D_0 are
    exact for standard deviations s_1 and s_0. w = 1 runs D_1 alone. Both get the same labels;
    the variance fraction v is D_1's.

    Args:
        denoiser: D_1, the denoiser sampled.
        guide: D_0, the weaker guiding denoiser, on the same data and noise levels.
        weight: w, the guidance weight (1: no guidance; > 1 guides).
    """

    def __init__(self, denoiser: Denoiser, guide: Denoiser, weight: float) -> None:
        self.denoiser, self.guide, self.weight = denoiser, guide, weight

    @property
    def network_evaluations(self) -> int:
        """The sampled model's and the guide's (the sampled model's alone at w = 1)."""
        guide = 0 if self.weight == 1.0 else network_evaluations(self.guide)
        return network_evaluations(self.denoiser) + guide

    def predict(
        self, x: Tensor, sigma: Tensor | float, class_labels: Tensor | None = None
    ) -> tuple[Tensor, Tensor | None]:
        """The guided x̂_0 and the sampled model's variance fraction v (or None)."""
        x0_hat, v = predict_with_variance(self.denoiser, x, sigma, class_labels)
        if self.weight == 1.0:
            return x0_hat, v
        weak = predict_with_variance(self.guide, x, sigma, class_labels)[0]
        return weak + self.weight * (x0_hat - weak), v


class ClassifierGuidance(DenoiserWrapper):
    """x̂_0' = D(x; σ, y) + s·σ²·∇_x log p_φ(y | x, σ): the score plus s times the classifier's.

    Dhariwal & Nichol (2021), §4.2 and Algorithm 2 (ε̂' = ε̂ - √(1-ᾱ)·s∇_{x_t} log p_φ(y|x_t)), in
    score form: with score = (D - x)/σ², adding s∇ log p_φ to it adds sσ²∇ log p_φ to x̂_0. With
    s = 1 and exact p(y|x_σ) this is the exact class-conditional denoiser (Bayes' rule). The
    gradient is taken under ``torch.enable_grad`` (samplers run under ``no_grad``); s = 0 skips
    the classifier. ``class_labels`` are the targets y, also passed to a ``conditional`` denoiser.

    Args:
        denoiser: D(x; σ, y), or D(x; σ) when not ``conditional``.
        classifier: classifier(x, σ) -> (B, K) logits of p_φ(y | x) with x in VE coordinates
            and σ (B,) (``classifier_on_sigma`` adapts a network of x_t and t).
        scale: s, the classifier's weight (0: no guidance).
        conditional: whether the denoiser takes the labels; False: it is called without them.
    """

    def __init__(
        self, denoiser: Denoiser, classifier: Classifier, scale: float, conditional: bool = True
    ) -> None:
        self.denoiser, self.classifier, self.scale = denoiser, classifier, scale
        self.conditional = conditional  # False: the denoiser is unconditional and gets no labels

    def predict(
        self, x: Tensor, sigma: Tensor | float, class_labels: Tensor | None = None
    ) -> tuple[Tensor, Tensor | None]:
        """The guided x̂_0 and the wrapped denoiser's variance fraction v (or None)."""
        labels = _require_labels(class_labels, "classifier guidance")
        denoiser_labels = class_labels if self.conditional else None
        x0_hat, v = predict_with_variance(self.denoiser, x, sigma, denoiser_labels)
        if self.scale == 0.0:
            return x0_hat, v
        sigma = per_sample_sigma(sigma, x)
        gradient = self.log_prob_gradient(x, sigma, labels)
        return x0_hat + self.scale * append_dims(sigma**2, x) * gradient, v

    def log_prob_gradient(self, x: Tensor, sigma: Tensor, class_labels: Tensor) -> Tensor:
        """∇_x log p_φ(y | x, σ) per sample, by autograd through log-softmax of the logits."""
        with torch.enable_grad():
            x_in = x.detach().requires_grad_(True)
            log_probs = torch.log_softmax(self.classifier(x_in, sigma), dim=-1)
            chosen = log_probs.gather(-1, class_labels.to(log_probs.device)[:, None].long())
            (gradient,) = torch.autograd.grad(chosen.sum(), x_in)
        return gradient.to(x.dtype)


def classifier_on_sigma(network: nn.Module, schedule: NoiseSchedule) -> Classifier:
    """A classifier network(x_t, t) of VP x_t and step t, read at VE x and σ: x_t = x·√ᾱ, t = t(σ).

    The same conversion as ``NetworkDenoiser`` (``denoisers.network_inputs``).
    """

    def classifier(x: Tensor, sigma: Tensor) -> Tensor:
        x_t, t, _ = network_inputs(network, schedule, x, sigma)
        return cast(Tensor, network(x_t.to(t.dtype), t))

    return classifier
