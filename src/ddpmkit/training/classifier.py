"""Training a time-aware classifier p_φ(y | x_t, t) on noised data, for classifier guidance."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ddpmkit.core.forward import q_sample
from ddpmkit.core.schedules import NoiseSchedule


def train_noisy_classifier(
    network: nn.Module,
    schedule: NoiseSchedule,
    dataset_x: Tensor,
    labels: Tensor,
    *,
    steps: int,
    batch_size: int,
    lr: float,
    generator: torch.Generator | None = None,
    on_step: Callable[[int, float], None] | None = None,
) -> list[float]:
    """Adam on the cross-entropy of network(x_t, t) against y; the per-step losses.

    Each step draws a batch (x_0, y) with replacement, t ~ U{0, …, T-1} and x_t = q_sample(x_0, t,
    ε) (Dhariwal & Nichol 2021, §4: the classifier is trained on noised x_t). Every draw comes
    from ``generator`` (on the CPU), so the run is reproducible given it and the initial weights.
    The network's train/eval mode is restored afterwards.
    """
    if dataset_x.shape[0] != labels.shape[0] or labels.ndim != 1:
        raise ValueError(
            f"expected dataset_x (N, ...) and labels (N,), got {tuple(dataset_x.shape)} and "
            f"{tuple(labels.shape)}"
        )
    if steps <= 0 or batch_size <= 0:
        raise ValueError(f"steps and batch_size must be positive, got {steps} and {batch_size}")
    weight = next(network.parameters())
    optimizer = torch.optim.Adam(network.parameters(), lr=lr)
    was_training = network.training
    network.train()
    losses = []
    for _ in range(steps):
        index = torch.randint(dataset_x.shape[0], (batch_size,), generator=generator)
        t = torch.randint(schedule.num_steps, (batch_size,), generator=generator)
        x0 = dataset_x[index.to(dataset_x.device)].to(weight.device, weight.dtype)
        noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype).to(weight.device)
        x_t = q_sample(schedule, x0, t, noise)
        logits = network(x_t, t.to(weight.device, weight.dtype))
        loss = F.cross_entropy(logits, labels[index.to(labels.device)].to(weight.device).long())
        optimizer.zero_grad(set_to_none=True)
        torch.autograd.backward(loss)
        optimizer.step()
        losses.append(loss.item())
        if on_step is not None:
            on_step(len(losses), losses[-1])
    network.train(was_training)
    return losses


@torch.no_grad()
def noisy_accuracy(
    network: nn.Module,
    schedule: NoiseSchedule,
    x0: Tensor,
    labels: Tensor,
    step: int,
    generator: torch.Generator | None = None,
) -> float:
    """Share of x_t = q_sample(x_0, t = step) whose arg-max logit is the label."""
    weight = next(network.parameters())
    x0 = x0.to(weight.device, weight.dtype)
    t = torch.full((x0.shape[0],), step, dtype=torch.long)
    noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype).to(weight.device)
    logits = network.eval()(q_sample(schedule, x0, t, noise), t.to(weight.device, weight.dtype))
    return float((logits.argmax(dim=1).cpu() == labels.cpu()).float().mean())
