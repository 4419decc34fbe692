"""Guidance: classifier-free and classifier guidance against exact class-conditional denoisers.

The toy is a 2-D Gaussian mixture whose six modes carry three class labels (two opposite modes per
class). Its exact conditional denoiser of class y is the mixture restricted to y's components, the
unconditional one is the full mixture's, and the exact classifier is log p(y | x_σ) = log-softmax
over classes of the components' log joints, summed (logsumexp) within each class.
"""

import math

import pytest
import torch

from ddpmkit import SAMPLERS, ClassifierFreeGuidance, ClassifierGuidance, NoiseSchedule, sample
from ddpmkit.core.denoisers import per_sample_sigma
from ddpmkit.evaluation.testbed import GaussianMixture, GaussianMixtureDenoiser
from ddpmkit.guidance import classifier_on_sigma
from ddpmkit.networks.classifier import NoisyClassifier, NoisyClassifierConfig, NoisyMLPClassifier
from ddpmkit.training.classifier import train_noisy_classifier

NUM_CLASSES = 3
NULL = NUM_CLASSES  # the label of the unconditional branch
ANGLES = torch.arange(6, dtype=torch.float64) * math.pi / 3
MIXTURE = GaussianMixture(
    torch.tensor([1.0, 2.0, 3.0, 2.0, 1.0, 1.0], dtype=torch.float64),
    1.5 * torch.stack([ANGLES.cos(), ANGLES.sin()], dim=1),
    torch.full((6,), 0.3, dtype=torch.float64),
)
COMPONENT_CLASS = torch.arange(6) % NUM_CLASSES  # opposite modes share a class
CLASS_PRIOR = torch.stack([MIXTURE.weights[COMPONENT_CLASS.eq(c)].sum() for c in range(3)])
SCHEDULE = NoiseSchedule.linear(1000)


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def class_mixture(label: int) -> GaussianMixture:
    keep = COMPONENT_CLASS.eq(label)
    return GaussianMixture(MIXTURE.weights[keep], MIXTURE.means[keep], MIXTURE.stds[keep])


class ExactLabelledDenoiser:
    """E[x_0 | x, y]: class y's restricted mixture per row; the full mixture for the null label."""

    def __init__(self) -> None:
        self.denoisers = [GaussianMixtureDenoiser(class_mixture(c)) for c in range(NUM_CLASSES)]
        self.denoisers.append(MIXTURE.denoiser())

    def __call__(self, x, sigma, class_labels=None):
        sigma = per_sample_sigma(sigma, x)
        labels = torch.full((x.shape[0],), NULL) if class_labels is None else class_labels
        out = torch.empty_like(x)
        for label, denoiser in enumerate(self.denoisers):
            rows = labels == label
            if rows.any():
                out[rows] = denoiser(x[rows], sigma[rows])
        return out


def exact_classifier(x, sigma):
    """Logits log p(y, x_σ) = logsumexp over y's components of log π_k N(x; m_k, (s_k² + σ²)I)."""
    joint = MIXTURE.component_log_joint(x, sigma)
    return torch.stack(
        [torch.logsumexp(joint[:, COMPONENT_CLASS.eq(c)], dim=1) for c in range(NUM_CLASSES)], dim=1
    )


def labelled_samples(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    k = torch.multinomial(MIXTURE.weights, n, replacement=True, generator=generator)
    z = torch.randn(n, 2, generator=generator, dtype=torch.float64)
    return MIXTURE.means[k] + MIXTURE.stds[k, None] * z, COMPONENT_CLASS[k]


def class_share(x: torch.Tensor, label: int) -> float:
    """Fraction of samples whose most probable class (noise-free, exact) is ``label``."""
    return (exact_classifier(x, 0.0).argmax(dim=1) == label).double().mean().item()


def noisy_batch(sigma: float, n: int = 256, seed: int = 1):
    g = seeded(seed)
    x0, _ = labelled_samples(n, g)
    x = x0 + sigma * torch.randn(n, 2, generator=g, dtype=torch.float64)
    return x, torch.randint(NUM_CLASSES, (n,), generator=g)


def test_cfg_scales_one_and_zero_are_exactly_conditional_and_unconditional():
    denoiser = ExactLabelledDenoiser()
    x, labels = noisy_batch(0.7)
    sigma = torch.tensor(0.7, dtype=torch.float64)
    conditional = ClassifierFreeGuidance(denoiser, scale=1.0, null_label=NULL)(x, sigma, labels)
    unconditional = ClassifierFreeGuidance(denoiser, scale=0.0, null_label=NULL)(x, sigma, labels)
    assert torch.equal(conditional, denoiser(x, sigma, labels))
    assert torch.equal(unconditional, denoiser(x, sigma, torch.full_like(labels, NULL)))


def test_cfg_evaluates_both_branches_in_one_batch():
    calls = []

    def counting(x, sigma, class_labels=None):
        calls.append((x.shape[0], class_labels.clone()))
        return ExactLabelledDenoiser()(x, sigma, class_labels)

    x, labels = noisy_batch(0.4, n=32)
    guided = ClassifierFreeGuidance(counting, scale=3.0, null_label=NULL)(x, 0.4, labels)
    assert len(calls) == 1 and calls[0][0] == 64
    assert torch.equal(calls[0][1], torch.cat([labels, torch.full_like(labels, NULL)]))
    denoiser = ExactLabelledDenoiser()
    conditional = denoiser(x, 0.4, labels)
    unconditional = denoiser(x, 0.4, torch.full_like(labels, NULL))
    expected = unconditional + 3.0 * (conditional - unconditional)
    torch.testing.assert_close(guided, expected, rtol=1e-12, atol=1e-12)


def test_cfg_with_null_labels_is_unconditional_and_needs_labels():
    denoiser = ExactLabelledDenoiser()
    x, labels = noisy_batch(0.4, n=16)
    null = torch.full_like(labels, NULL)
    guided = ClassifierFreeGuidance(denoiser, scale=5.0, null_label=NULL)(x, 0.4, null)
    torch.testing.assert_close(guided, denoiser(x, 0.4, null), rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="classifier-free guidance needs class_labels"):
        ClassifierFreeGuidance(denoiser, scale=2.0, null_label=NULL)(x, 0.4)
    with pytest.raises(ValueError, match="classifier guidance needs class_labels"):
        ClassifierGuidance(MIXTURE.denoiser(), exact_classifier, scale=1.0)(x, 0.4)


class VarianceDenoiser:
    """x̂_0 = x·(label + 1) and v = label/10: both branches are told apart by their outputs."""

    def predict(self, x, sigma, class_labels=None):
        factor = (class_labels.to(x.dtype) + 1.0)[:, None]
        return x * factor, factor.expand_as(x) / 10.0 - 0.1

    def __call__(self, x, sigma, class_labels=None):
        return self.predict(x, sigma, class_labels)[0]


def test_learned_variance_passes_through_both_guidances():
    x = torch.randn(4, 2, generator=seeded(0), dtype=torch.float64)
    labels = torch.tensor([0, 1, 2, 1])
    v_conditional = labels.to(x.dtype)[:, None].expand_as(x) / 10.0
    for scale in (1.0, 2.5):
        x0_hat, v = ClassifierFreeGuidance(VarianceDenoiser(), scale, null_label=7).predict(
            x, 0.3, labels
        )
        torch.testing.assert_close(v, v_conditional)
        torch.testing.assert_close(x0_hat, x * 8.0 + scale * (x * (labels + 1.0)[:, None] - x * 8))
    _, v = ClassifierGuidance(VarianceDenoiser(), exact_classifier, 2.0).predict(x, 0.3, labels)
    torch.testing.assert_close(v, v_conditional)


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_neutral_scales_reproduce_unguided_sampling_bit_for_bit(name):
    denoiser = ExactLabelledDenoiser()
    noise = torch.randn(64, 2, generator=seeded(3), dtype=torch.float64)
    labels = torch.arange(64) % NUM_CLASSES

    def run(d, class_labels):
        return sample(name, d, SCHEDULE, noise, 6, generator=seeded(4), class_labels=class_labels)

    conditional = run(denoiser, labels)
    unconditional = run(denoiser, torch.full_like(labels, NULL))
    cfg_one = run(ClassifierFreeGuidance(denoiser, 1.0, NULL), labels)
    cfg_zero = run(ClassifierFreeGuidance(denoiser, 0.0, NULL), labels)
    classifier_zero = run(ClassifierGuidance(denoiser, exact_classifier, 0.0), labels)
    assert torch.equal(cfg_one.samples, conditional.samples)
    assert torch.equal(cfg_zero.samples, unconditional.samples)
    assert torch.equal(classifier_zero.samples, conditional.samples)
    assert cfg_one.nfe == conditional.nfe
    assert not torch.equal(conditional.samples, unconditional.samples)


@pytest.mark.parametrize("sigma", [0.02, 0.3, 1.0, 4.0, 50.0])
def test_exact_classifier_guidance_is_the_exact_conditional_denoiser(sigma):
    """Bayes: ∇ log p_σ(x|y) = ∇ log p_σ(x) + ∇ log p_σ(y|x), so s = 1 gives E[x_0 | x, y]."""
    x, labels = noisy_batch(sigma)
    sigma_t = torch.tensor(sigma, dtype=torch.float64)
    guided = ClassifierGuidance(MIXTURE.denoiser(), exact_classifier, 1.0)(x, sigma_t, labels)
    torch.testing.assert_close(
        guided, ExactLabelledDenoiser()(x, sigma_t, labels), rtol=1e-8, atol=1e-8
    )


@pytest.mark.parametrize("scale", [0.5, 3.0])
def test_exact_classifier_guidance_equals_classifier_free_guidance(scale):
    """With exact models D(x; σ, y) - D(x; σ, ∅) = σ²∇ log p(y|x): the two guidances coincide."""
    x, labels = noisy_batch(0.5)
    cfg = ClassifierFreeGuidance(ExactLabelledDenoiser(), scale, NULL)(x, 0.5, labels)
    cg = ClassifierGuidance(MIXTURE.denoiser(), exact_classifier, scale)(x, 0.5, labels)
    torch.testing.assert_close(cfg, cg, rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize(
    "guided",
    [
        ClassifierFreeGuidance(ExactLabelledDenoiser(), 3.0, NULL),
        ClassifierGuidance(MIXTURE.denoiser(), exact_classifier, 3.0),
    ],
    ids=["classifier-free", "classifier"],
)
def test_guided_sampling_puts_the_mass_on_the_target_class(guided):
    target = 0
    noise = torch.randn(2000, 2, generator=seeded(5), dtype=torch.float64)
    labels = torch.full((2000,), target)
    unguided = sample("dpm++2m", MIXTURE.denoiser(), SCHEDULE, noise, 30).samples
    conditional = sample(
        "dpm++2m", ExactLabelledDenoiser(), SCHEDULE, noise, 30, class_labels=labels
    )
    samples = sample("dpm++2m", guided, SCHEDULE, noise, 30, class_labels=labels).samples
    assert abs(class_share(unguided, target) - CLASS_PRIOR[target].item()) < 0.04
    assert class_share(samples, target) >= 0.95
    assert class_share(samples, target) > class_share(conditional.samples, target)  # sharper


def test_trained_mlp_classifier_beats_chance_and_guides():
    schedule = NoiseSchedule.linear(100)
    g = seeded(0)
    x0, labels = labelled_samples(2048, g)
    torch.manual_seed(0)
    network = NoisyMLPClassifier(2, NUM_CLASSES).double()
    losses = train_noisy_classifier(
        network, schedule, x0, labels, steps=300, batch_size=128, lr=3e-3, generator=g
    )
    assert len(losses) == 300 and sum(losses[-50:]) < sum(losses[:50])
    network.eval()
    classifier = classifier_on_sigma(network, schedule)
    x, _ = noisy_batch(0.1, n=1000, seed=9)
    with torch.no_grad():
        predicted = classifier(x, torch.tensor(0.1, dtype=torch.float64)).argmax(dim=1)
    bayes = exact_classifier(x, 0.1).argmax(dim=1)
    assert (predicted == bayes).double().mean() >= 0.95  # chance: at most 0.4
    noise = torch.randn(500, 2, generator=seeded(6), dtype=torch.float64)
    guided = ClassifierGuidance(MIXTURE.denoiser(), classifier, 3.0)
    target = torch.full((500,), 1)
    samples = sample("ddim", guided, schedule, noise, 20, class_labels=target).samples
    assert class_share(samples, 1) >= 0.9  # unguided: about its prior, 0.3


def test_noisy_classifier_trains_reproducibly_and_guides_an_image_denoiser():
    config = NoisyClassifierConfig(in_channels=1, sample_size=8, num_classes=3, base_channels=8)
    schedule = NoiseSchedule.linear(50)
    images = torch.randn(16, 1, 8, 8, generator=seeded(1))
    labels = torch.arange(16) % 3

    def train() -> tuple[NoisyClassifier, list[float]]:
        torch.manual_seed(0)
        network = NoisyClassifier(config)
        return network, train_noisy_classifier(
            network, schedule, images, labels, steps=3, batch_size=4, lr=1e-3, generator=seeded(2)
        )

    network, losses = train()
    assert losses == train()[1] and all(math.isfinite(loss) for loss in losses)
    assert network(images[:2], torch.tensor(3.5)).shape == (2, 3)
    network.eval()

    def halving(x, sigma, class_labels=None):
        return 0.5 * x

    x = torch.randn(4, 1, 8, 8, generator=seeded(3), dtype=torch.float64)
    guided = ClassifierGuidance(halving, classifier_on_sigma(network, schedule), 2.0)
    with torch.no_grad():
        out = guided(x, 0.8, labels[:4])
    assert out.dtype == torch.float64 and out.shape == x.shape
    assert torch.isfinite(out).all() and not torch.equal(out, 0.5 * x)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"num_classes": 1}, "num_classes"),
        ({"base_channels": 12}, "norm_groups"),
        ({"sample_size": 6, "channel_mults": (1, 2, 2)}, "divisible"),
        ({"channel_mults": ()}, "channel_mults"),
    ],
)
def test_noisy_classifier_config_is_validated(overrides, message):
    kwargs = {"in_channels": 1, "sample_size": 8, "num_classes": 3, **overrides}
    with pytest.raises(ValueError, match=message):
        NoisyClassifierConfig(**kwargs)


def test_training_rejects_mismatched_labels():
    network = NoisyMLPClassifier(2, 3)
    with pytest.raises(ValueError, match="labels"):
        train_noisy_classifier(
            network, SCHEDULE, torch.zeros(8, 2), torch.zeros(7), steps=1, batch_size=2, lr=1e-3
        )


def test_network_evaluations_count_every_guidance_branch():
    """A sampler's result counts its denoiser calls (nfe) and the network evaluations they cost:
    classifier-free guidance and autoguidance evaluate two branches per call, except at the
    scales that run one; clipping and classifier guidance add no diffusion-network evaluation."""
    from ddpmkit.core.denoisers import network_evaluations
    from ddpmkit.core.thresholding import ClippedDenoiser
    from ddpmkit.guidance import AutoGuidance

    denoiser = GaussianMixtureDenoiser(MIXTURE)
    labels = torch.tensor([0, 1, 2, 0])
    noise = torch.randn(4, 2, generator=seeded(2), dtype=torch.float64)
    cases = {
        ClassifierFreeGuidance(denoiser, 3.0, NULL): 2,
        ClassifierFreeGuidance(denoiser, 1.0, NULL): 1,
        AutoGuidance(denoiser, denoiser, 2.0): 2,
        AutoGuidance(denoiser, denoiser, 1.0): 1,
        ClippedDenoiser(
            AutoGuidance(ClassifierFreeGuidance(denoiser, 2.0, NULL), denoiser, 2.0)
        ): 3,
        ClassifierGuidance(denoiser, exact_classifier, 1.0): 1,
    }
    for wrapped, per_call in cases.items():
        assert network_evaluations(wrapped) == per_call
        result = sample(
            "ddim", wrapped, SCHEDULE, noise, 5, generator=seeded(4), class_labels=labels
        )
        assert result.nfe == 5 and result.network_evaluations == 5 * per_call
    assert network_evaluations(denoiser) == 1
