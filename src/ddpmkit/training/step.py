"""One optimizer step of Algorithm 1 (Ho et al. 2020) and what it changes: the network, its EMA, AdamW,
the loss (with its timestep sampler), the loss scale and the run's generator, as one unit whose
state a checkpoint saves and restores bit for bit. The run around the steps is ``training.loop``'s.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ddpmkit.config.builders import (
    build_denoiser,
    build_loss,
    build_network,
    first_feature_map_values,
)
from ddpmkit.config.execution import Execution
from ddpmkit.config.schema import RunConfig
from ddpmkit.core.randomness import BatchShard, rand_rows
from ddpmkit.data import hflip_batch
from ddpmkit.generation.conditioning import training_conditions
from ddpmkit.learning_rate import learning_rate
from ddpmkit.losses import LossOutput
from ddpmkit.memory import require_memory
from ddpmkit.networks.autoencoder import Autoencoder
from ddpmkit.networks.execution import CompiledNetwork
from ddpmkit.storage.checkpoints import TrainingState, load_training_state, load_weights
from ddpmkit.storage.model import TrainedModel
from ddpmkit.training.distributed import Processes
from ddpmkit.training.ema import EMA
from ddpmkit.training.run_logs import StepMetrics

FUSED_OPTIMIZER_DEVICES = ("cpu", "cuda")
"""Devices with a fused AdamW kernel (one pass over all parameters instead of one per operation)."""


class Learner:
    """The network of a resolved config, trained one optimizer step at a time."""

    def __init__(
        self,
        config: RunConfig,
        processes: Processes,
        execution: Execution,
        autoencoder: Autoencoder | None = None,
    ) -> None:
        self.requested = config
        """The resolved config as asked (``config`` may add a plan)."""
        self.processes, self.execution = processes, execution
        self.device = execution.device
        train = config.train
        self.rows = processes.rows(train.batch_size, train.grad_accum)
        torch.manual_seed(train.seed)
        micro_batch = max(1, train.batch_size // processes.world // train.grad_accum)
        check_training_memory(config, micro_batch, self.device)
        self.network = build_network(config.model).to(self.device)
        # the layout is set before DistributedDataParallel registers the parameters
        execution.set_layout(self.network)
        self.parallel = processes.wrap(self.network, self.device)
        self.ema = EMA(self.network, train.ema_decay, train.ema_warmup)
        # EMA weights, eval mode
        self.sampling_model = TrainedModel.of(config, self.ema.model, None, autoencoder)
        self.schedule = self.sampling_model.schedule
        fast_network = execution.prepare(self.parallel)
        self.compile_decision = (
            fast_network.decision if isinstance(fast_network, CompiledNetwork) else None
        )
        """``train.compile`` auto's decision, which the loop times steps for (else None)."""
        self.denoiser = build_denoiser(fast_network, self.schedule, config.diffusion)
        self.loss = build_loss(config.diffusion, self.schedule, config.data.levels)
        self.optimizer = torch.optim.AdamW(
            self.network.parameters(),
            lr=train.lr,
            betas=train.adam_betas,
            weight_decay=train.weight_decay,
            fused=self.device.type in FUSED_OPTIMIZER_DEVICES,
        )
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=execution.needs_grad_scaler())
        self.generator = torch.Generator(self.device).manual_seed(train.seed)
        self.step = 0
        # the first step whose loss or gradient was NaN/Inf (-1: none), kept on the device so
        # that checking it costs a host read only where outputs are written
        self._first_nonfinite = torch.tensor(-1, device=self.device)

    @property
    def config(self) -> RunConfig:
        """The options the steps follow."""
        return self.requested

    def train_step(self, x0: torch.Tensor, labels: torch.Tensor) -> tuple[StepMetrics, LossOutput]:
        """One step of Algorithm 1 (Ho et al. 2020) on a batch: loss, backward, AdamW, EMA.

        The batch is fed in ``train.grad_accum`` micro-batches, each loss divided by their
        count, so the gradients add up to the whole batch's mean-loss gradient.
        """
        train = self.config.train
        x0 = x0.to(self.device, non_blocking=True)
        lr = learning_rate(self.step, train.lr, train.warmup_steps, train.lr_decay, train.steps)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.network.train()
        self.optimizer.zero_grad(set_to_none=True)
        shared: list[torch.Tensor] = []  # the step's whole-batch draws, for every micro-batch
        size = len(x0) // train.grad_accum
        outputs = []
        for part in range(train.grad_accum):
            rows = slice(part * size, (part + 1) * size)
            with self.processes.accumulating(self.parallel, last=part == train.grad_accum - 1):
                output = self._micro_batch(x0[rows], labels[rows], self._generator(rows, shared))
                # the scaler multiplies only under fp16
                torch.autograd.backward(self.scaler.scale(output.loss / train.grad_accum))
            outputs.append(output)
        output = _joined(outputs)
        self.scaler.unscale_(self.optimizer)
        max_norm = train.grad_clip if train.grad_clip > 0 else float("inf")
        grad_norm = torch.nn.utils.clip_grad_norm_(self.network.parameters(), max_norm)
        metrics: StepMetrics = {"loss": output.loss.detach(), "lr": lr, "grad_norm": grad_norm}
        finite = torch.isfinite(output.loss.detach())
        if not self.scaler.is_enabled():  # with fp16 the scaler skips overflowing steps itself
            finite &= torch.isfinite(grad_norm)
        if train.skip_nonfinite and not bool(finite):  # a host read per step, in this mode only
            self.optimizer.zero_grad(set_to_none=True)
            return metrics | {"skipped": 1.0}, output
        first = self._first_nonfinite
        self._first_nonfinite = torch.where(~finite & (first < 0), self.step + 1, first)
        self.scaler.step(self.optimizer)  # skipped when fp16 gradients overflowed
        self.scaler.update()
        self.ema.update(self.network)
        return metrics, output

    def first_nonfinite_step(self) -> int | None:
        """The first step whose loss or gradient was NaN/Inf (one host read), or None."""
        step = int(self._first_nonfinite)
        return step if step >= 0 else None

    def _micro_batch(
        self, x0: torch.Tensor, labels: torch.Tensor, generator: torch.Generator | BatchShard
    ) -> LossOutput:
        """The loss of (part of) a batch: random flips and label dropout, then the objective."""
        if self.requested.data.hflip:
            x0 = hflip_batch(x0, rand_rows(len(x0), generator) < 0.5)
        conditions = self._class_labels(labels, generator)
        with self.execution.autocast():
            return self.loss(self.denoiser, x0, conditions, generator)

    def _generator(self, rows: slice, shared: list[torch.Tensor]) -> torch.Generator | BatchShard:
        """The run's generator for one process and one micro-batch; otherwise these ``rows`` of
        this process's part of the whole batch's draws, which the step's micro-batches share."""
        train = self.requested.train
        if not self.processes.distributed and train.grad_accum == 1:
            return self.generator
        start = self.rows.start
        whole_rows = slice(start + rows.start, start + rows.stop)
        return BatchShard(self.generator, whole_rows, train.batch_size, shared)

    def _class_labels(
        self, labels: torch.Tensor, generator: torch.Generator | BatchShard
    ) -> torch.Tensor | None:
        """What the network is conditioned on for the batch's ``labels``
        (``generation.conditioning.training_conditions``)."""
        return training_conditions(self.sampling_model, labels.to(self.device), generator)

    def training_state(self) -> TrainingState:
        """Everything besides the weights that a checkpoint keeps for a bit-for-bit resumption."""
        rng = {"torch": torch.get_rng_state(), "train": self.generator.get_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        return TrainingState(
            self.step,
            self.ema.num_updates,
            self.optimizer.state_dict(),
            rng,
            self.loss.timesteps.state_dict(),
            self.scaler.state_dict(),
        )

    def load(self, checkpoint: Path) -> int:
        """Weights, optimizer, EMA, timestep sampler, loss scale and RNGs of ``checkpoint``;
        returns its step."""
        load_weights(self.network, checkpoint, "model")
        load_weights(self.ema.model, checkpoint, "ema")
        state = load_training_state(checkpoint)
        self.optimizer.load_state_dict(state.optimizer)
        self.ema.num_updates = state.ema_updates
        if state.timesteps:
            self.loss.timesteps.load_state_dict(state.timesteps)
        if state.grad_scaler:
            self.scaler.load_state_dict(state.grad_scaler)
        torch.set_rng_state(state.rng["torch"])
        self.generator.set_state(state.rng["train"])
        if "cuda" in state.rng and self.device.type == "cuda":
            torch.cuda.set_rng_state(state.rng["cuda"], self.device)
        return state.step


def _joined(outputs: list[LossOutput]) -> LossOutput:
    """The micro-batches' outputs as one: their mean loss, their samples' losses in order."""
    if len(outputs) == 1:
        return outputs[0]
    loss = torch.stack([o.loss.detach() for o in outputs]).mean()
    per_sample = torch.cat([o.per_sample for o in outputs])
    return LossOutput(loss, per_sample, torch.cat([o.t for o in outputs]))


def check_training_memory(config: RunConfig, micro_batch: int, device: torch.device) -> None:
    """Refuse a run that cannot fit before its network is built: the weights, their gradient,
    AdamW's two moments and the EMA (5 × 4 bytes a parameter, counted on the meta device) and
    the activations a step keeps for its backward pass (at least 8 feature maps of the first
    level's width per item)."""
    try:
        with torch.device("meta"):
            parameters = sum(p.numel() for p in build_network(config.model).parameters())
    except Exception:  # a network that cannot be built on the meta device: not estimated
        return
    shape = config.model.sample_shape or ()
    activations = 8 * 4 * micro_batch * first_feature_map_values(config.model, shape)
    require_memory(
        20 * parameters + activations,
        f"training {parameters:,} parameters on micro-batches of {micro_batch} items of shape "
        f"{tuple(shape)}",
        device,
        "lower model.unet.base_channels, train.batch_size (or raise train.grad_accum) or "
        "data.image_size",
    )
