"""A small, calibrated CNN classifier of the 8×8 digits, used to judge generated samples.

The classifier is trained on the 'train' split only, with weight decay and outlier exposure
(Hendrycks et al., 2019, "Deep Anomaly Detection with Outlier Exposure"): besides the usual
cross-entropy on real digits, a second term pushes the prediction on non-digits (Gaussian and
uniform noise, the mean training image, box-blurred digits) towards the uniform distribution.
Without it a plain classifier assigns the mean image to one class with near-certainty, so
"confidently classified" would not mean "recognisable". Training takes a few seconds on one CPU.
"""

from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ddpmkit.data.digits import digits_arrays

NUM_CLASSES = 10
FEATURE_DIM = 32
"""Width of the penultimate layer, whose activations feed the feature-space FID."""

EPOCHS = 30
BATCH_SIZE = 64
LEARNING_RATE = 3e-3
WEIGHT_DECAY = 1e-2
OUTLIER_WEIGHT = 0.2
"""Weight of the outlier-exposure term (cross-entropy to the uniform distribution on non-digits)."""
BLUR_KERNEL = 5
"""Side of the box filter that makes the blurred-digit outliers."""


class DigitsClassifier(nn.Module):
    """Two 3×3 convolutions (16, then 32 channels at stride 2), a 32-wide layer, 10 logits.

    Input: images (N, 1, 8, 8) in [-1, 1]. `features` returns the penultimate activations
    (N, FEATURE_DIM); `forward` returns logits (N, 10).
    """

    def __init__(self, width: int = 16, feature_dim: int = FEATURE_DIM) -> None:
        super().__init__()
        self.trunk = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1),
            nn.SiLU(),
            nn.Conv2d(width, 2 * width, 3, padding=1, stride=2),  # 8×8 -> 4×4
            nn.SiLU(),
            nn.Flatten(),
            nn.Linear(2 * width * 4 * 4, feature_dim),
            nn.SiLU(),
        )
        self.head = nn.Linear(feature_dim, NUM_CLASSES)

    def features(self, x: Tensor) -> Tensor:
        """Penultimate-layer activations (N, feature_dim) of images (N, 1, 8, 8)."""
        return cast(Tensor, self.trunk(x))

    def forward(self, x: Tensor) -> Tensor:
        """Logits (N, 10) of images (N, 1, 8, 8)."""
        return cast(Tensor, self.head(self.features(x)))


def _reset_parameters(model: nn.Module, generator: torch.Generator) -> None:
    """PyTorch's default initialisation of every conv/linear layer, drawn from `generator`."""
    for layer in model.modules():
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_uniform_(layer.weight, a=5**0.5, generator=generator)
            fan_in = layer.weight[0].numel()
            bound = fan_in**-0.5
            assert layer.bias is not None  # the classifier's layers all have biases
            nn.init.uniform_(layer.bias, -bound, bound, generator=generator)


def box_blur(images: Tensor, kernel: int) -> Tensor:
    """Mean over a kernel×kernel window (edges replicated) of images (N, C, H, W)."""
    padded = F.pad(images, (kernel // 2,) * 4, mode="replicate")
    return F.avg_pool2d(padded, kernel, stride=1)


def _outliers(x: Tensor, mean_image: Tensor, generator: torch.Generator) -> Tensor:
    """Non-digits, four equal parts: Gaussian noise, uniform noise, the mean image, blurred x."""
    q = len(x) // 4
    std = 0.5 + torch.rand(q, 1, 1, 1, generator=generator)
    gaussian = torch.randn(q, 1, 8, 8, generator=generator) * std
    uniform = torch.rand(q, 1, 8, 8, generator=generator) * 2 - 1
    mean = mean_image.expand(q, -1, -1, -1)
    blurred = box_blur(x[:q], BLUR_KERNEL)
    return torch.cat([gaussian, uniform, mean, blurred]).clamp(-1, 1)


def train_digits_classifier(
    seed: int = 0, images: Tensor | None = None, labels: Tensor | None = None
) -> DigitsClassifier:
    """Train a DigitsClassifier on the 'train' split (or on other 8×8 digit ``images`` (N, 1, 8, 8)
    in [-1, 1] with their ``labels``); deterministic in `seed`, CPU, a few seconds.

    The global RNG is left untouched: all randomness comes from a generator seeded with `seed`.
    Training runs on one thread (restored afterwards): for so small a network that is the fastest
    on a busy machine, and it makes the result independent of the machine's thread count.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    if images is None or labels is None:
        images, labels = digits_arrays("train")
    try:
        return _train(seed, images, labels)
    finally:
        torch.set_num_threads(threads)


def _train(seed: int, images: Tensor, labels: Tensor) -> DigitsClassifier:
    """The training loop of train_digits_classifier: AdamW, cross-entropy plus outlier exposure."""
    mean_image = images.mean(0, keepdim=True)
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):  # construction draws from the global RNG
        model = DigitsClassifier()
    _reset_parameters(model, generator)
    optimizer = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY)
    for _ in range(EPOCHS):
        order = torch.randperm(len(images), generator=generator)
        for start in range(0, len(images), BATCH_SIZE):
            batch = order[start : start + BATCH_SIZE]
            x, y = images[batch], labels[batch]
            loss = F.cross_entropy(model(x), y)
            log_probs_outliers = model(_outliers(x, mean_image, generator)).log_softmax(-1)
            loss = loss - OUTLIER_WEIGHT * log_probs_outliers.mean()  # CE to uniform targets
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    model.eval()
    return model
