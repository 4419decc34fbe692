"""The training loop: optimizer, EMA, checkpoints, sample grids, log; no diffusion mathematics.

The diffusion objective is whatever loss the config builds (``ddpmkit.training.losses``); this module only
feeds it batches and keeps the run reproducible: a resumed run continues bit for bit.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import time
import warnings
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import torch

from ddpmkit.config.builders import (
    build_denoiser,
    build_loss,
    build_network,
    class_labels_of,
    pick_device,
    resolve_for_data,
)
from ddpmkit.config.parsing import to_dict
from ddpmkit.config.schema import RunConfig
from ddpmkit.core.precision import autocast, needs_grad_scaler
from ddpmkit.core.randomness import BatchShard, rand_rows
from ddpmkit.data import hflip_batch, load_data, stack_items
from ddpmkit.likelihood import (
    discretized_gaussian_log_likelihood,
    schedule_log_variance,
    variational_bound,
)
from ddpmkit.networks.autoencoder import Autoencoder
from ddpmkit.networks.execution import CompiledNetwork, set_layout
from ddpmkit.pipeline.autoencoder_folders import load_autoencoder, save_autoencoder
from ddpmkit.pipeline.autoguidance import guide_checkpoint, load_guide
from ddpmkit.pipeline.checkpoints import (
    CHECKPOINT_PREFIX,
    TrainingState,
    UnreadableCheckpointError,
    checkpoint_name,
    find_checkpoints,
    load_training_state,
    load_weights,
    prune_checkpoints,
    read_config,
    save_checkpoint,
    step_of,
)
from ddpmkit.pipeline.generation import ProgressCallback, write_samples
from ddpmkit.pipeline.latents import RUN_AUTOENCODER, encode_dataset, run_autoencoder
from ddpmkit.pipeline.model import TrainedModel
from ddpmkit.samplers import SAMPLERS
from ddpmkit.training.batches import StepBatches, batch_stream
from ddpmkit.training.budget import PROBE_STEPS, Plan, plan_run
from ddpmkit.training.distributed import Processes
from ddpmkit.training.ema import EMA
from ddpmkit.training.learning_rate import learning_rate
from ddpmkit.training.losses import LossOutput
from ddpmkit.training.run_logs import LossLog, StepMetrics, TensorBoardLog, write_summary
from ddpmkit.training.sizing import VECTOR_BATCH, Sizing, choose_network

DEFAULT_SIZING_MINUTES = 10.0
"""The budget automatic sizing assumes without train.minutes."""

PLAN_FILE = "plan.json"
"""What a train.minutes run planned (written once; a resumed run keeps the plan)."""

FUSED_OPTIMIZER_DEVICES = ("cpu", "cuda")
"""Devices with a fused AdamW kernel (one pass over all parameters instead of one per operation)."""


TrainStepCallback = Callable[[int, StepMetrics], None]
"""Called after every step with (step, metrics); the CLI draws its progress bar with it."""


class Trainer:
    """Trains the network a ``RunConfig`` describes, in a run folder it owns."""

    def __init__(self, config: RunConfig, run_dir: str | Path, resume: bool = False) -> None:
        self._started = time.perf_counter()  # a time budget counts from here
        self.run_dir = Path(run_dir)
        data = load_data(config.data, "train")
        self.processes = Processes.from_environment()
        self.device = self.processes.device(pick_device(config.train.device))
        self.processes.start(self.device)
        self.dataset, self.shape = data.dataset, data.shape
        self.autoencoder: Autoencoder | None = None
        if config.model.autoencoder is not None:  # latent diffusion: encode the images once
            self.autoencoder = self._autoencoder(config.model.autoencoder, resume)
            self.dataset = encode_dataset(self.autoencoder, data.dataset)
            self.shape = self.dataset.shape
        self.image_shape = data.shape
        self.sizing: Sizing | None = None
        if config.model.auto_size:
            config = self._sized(config, resume)
        self.config = resolve_for_data(config, self.shape, data.num_classes, data.class_names)
        train = self.config.train
        self.rows = self.processes.rows(train.batch_size, train.grad_accum)
        torch.manual_seed(train.seed)
        self.network = build_network(self.config.model).to(self.device)
        # the layout is set before DistributedDataParallel registers the parameters
        set_layout(self.network, compiled=train.compile)
        self.parallel = self.processes.wrap(self.network, self.device)
        fast_network = CompiledNetwork(self.parallel) if train.compile else self.parallel
        self.ema = EMA(self.network, train.ema_decay, train.ema_warmup)
        # EMA weights, eval mode
        self.sampling_model = TrainedModel.of(self.config, self.ema.model, None, self.autoencoder)
        self.schedule = self.sampling_model.schedule
        self.denoiser = build_denoiser(fast_network, self.schedule, self.config.diffusion)
        levels = self.config.data.levels
        self.loss = build_loss(self.config.diffusion, self.schedule, levels)
        self.optimizer = torch.optim.AdamW(
            self.network.parameters(),
            lr=train.lr,
            betas=train.adam_betas,
            weight_decay=train.weight_decay,
            fused=self.device.type in FUSED_OPTIMIZER_DEVICES,
        )
        self.scaler = torch.amp.GradScaler(
            self.device.type, enabled=needs_grad_scaler(train.precision, self.device)
        )
        self.generator = torch.Generator(self.device).manual_seed(train.seed)
        self.step = 0
        # the first step whose loss or gradient was NaN/Inf (-1: none), kept on the device so
        # that checking it costs a host read only where outputs are written
        self._first_nonfinite = torch.tensor(-1, device=self.device)
        self._heldout: torch.Tensor | None = None
        self._board: TensorBoardLog | None = None  # set by fit when train.tensorboard
        self.plan: Plan | None = None  # set after the first steps of a train.minutes run
        self._plan_pending = self.config.train.minutes is not None
        if resume:
            self._restore()
        elif self.processes.main:
            self._claim_run_dir()
        self.processes.barrier()  # no process reads the run folder before it is claimed

    def _sized(self, config: RunConfig, resume: bool) -> RunConfig:
        """The config with the network chosen for the data and the budget (``model.auto_size``);
        a resumed run keeps the one it chose."""
        train, world = config.train, self.processes.world
        saved = self.run_dir / "config.json"
        if resume and saved.is_file():
            chosen = read_config(self.run_dir)
            batch = train.batch_size or chosen.train.batch_size
            train = dataclasses.replace(train, batch_size=batch)
            return dataclasses.replace(config, model=chosen.model, train=train)
        if len(self.shape) != 3:  # vectors: the MLP at its defaults
            model = dataclasses.replace(config.model, kind="mlp", auto_size=False)
            batch = min(VECTOR_BATCH, len(self.dataset) // world) * world
            train = dataclasses.replace(train, batch_size=train.batch_size or batch)
            return dataclasses.replace(config, model=model, train=train)
        self.sizing = choose_network(
            self.shape,
            budget_seconds=60.0 * (train.minutes or DEFAULT_SIZING_MINUTES),
            batch=train.batch_size // world if train.batch_size else None,
            device=self.device,
            precision=train.precision,
            agree=partial(self.processes.slowest, device=self.device),
            largest=len(self.dataset) // world,
            mlp=not config.model.text_conditional,
        )
        network = {self.sizing.kind: self.sizing.network}
        model = dataclasses.replace(config.model, kind=self.sizing.kind, auto_size=False, **network)
        train = dataclasses.replace(train, batch_size=self.sizing.batch * world)
        return dataclasses.replace(config, model=model, train=train)

    def _autoencoder(self, configured: str, resume: bool) -> Autoencoder:
        """The autoencoder of a latent run (a resumed run's own copy), frozen, on the device."""
        found = (
            run_autoencoder(self.run_dir, configured) if resume else load_autoencoder(configured)
        )
        return found.to(self.device).eval().requires_grad_(False)

    def fit(
        self, on_step: TrainStepCallback | None = None, on_sampling: ProgressCallback | None = None
    ) -> Path:
        """Train until ``train.steps``; returns the last checkpoint folder.

        ``on_step`` is called after every step, ``on_sampling`` as the sample grids are drawn.
        """
        train = self.config.train
        order = StepBatches(
            len(self.dataset), train.batch_size, train.seed, self.step, rows=self.rows
        )
        batches = batch_stream(
            self.dataset, order, train.num_workers, pin_memory=self.device.type == "cuda"
        )
        log = LossLog(self.run_dir / "log.csv", self.schedule.num_steps)
        main = self.processes.main
        start, first_step = time.perf_counter(), self.step
        self._step_times: list[float] = []
        board = None
        if train.tensorboard and main:
            board = TensorBoardLog(self.run_dir / "tensorboard", train.batch_size)
        self._board = board
        try:
            self._loop(batches, log, on_step, on_sampling)
        finally:
            if board is not None:
                board.close()
        final = self.run_dir / "samples" / checkpoint_name(self.step)
        if main and not final.with_suffix(".png").exists():
            self._write_grid(final, on_sampling)  # stopped after the checkpoint
        self.processes.barrier()
        if main:
            self._write_summary(time.perf_counter() - start, self.step - first_step, log)
        return self.latest_checkpoint()

    def _loop(
        self,
        batches: Iterator[tuple[torch.Tensor, torch.Tensor]],
        log: LossLog,
        on_step: TrainStepCallback | None,
        on_sampling: ProgressCallback | None,
    ) -> None:
        main = self.processes.main
        while self.step < self.config.train.steps:  # a train.minutes run plans on the way
            try:
                x0, labels = next(batches)
            except ValueError as error:  # a file that became unreadable after the start-up check
                # a DataLoader worker's error carries its traceback; its last line is the message
                reason = str(error).strip().splitlines()[-1].removeprefix("ValueError: ")
                raise ValueError(f"step {self.step + 1}: {reason}; {self._stopped()}") from error
            metrics, output = self.train_step(x0, labels)
            self.step += 1
            if self._plan_pending:
                self._synchronize()  # a step's time is known once the device has done it
                self._plan_when_timed()
            train = self.config.train
            log.add(self.step, metrics, output)
            if main and train.eval_every > 0 and self.step % train.eval_every == 0:
                log.heldout_bpd = self.heldout_bound()
            if self.step % train.log_every == 0 or self.step == train.steps:
                self.check_finite()
                if main:
                    row = log.write()
                    if self._board is not None:
                        self._board.row(self.step, row)
            if on_step is not None:
                on_step(self.step, metrics)
            self._periodic_outputs(on_sampling)

    def _plan_when_timed(self) -> None:
        """After PROBE_STEPS timed steps (the first one is not timed), plan the rest of a
        ``train.minutes`` run and write the planned options to config.json."""
        self._step_times.append(time.perf_counter())
        if len(self._step_times) <= PROBE_STEPS:
            return
        per_step = (self._step_times[-1] - self._step_times[0]) / PROBE_STEPS
        slowest = partial(self.processes.slowest, device=self.device)
        plan = plan_run(
            self.config.train,
            steps_done=self.step,
            elapsed=slowest(time.perf_counter() - self._started),
            seconds_per_step=slowest(per_step),
            sample_seconds=slowest(self._sample_seconds()),
        )
        self.plan, self._plan_pending = plan, False
        self.config = dataclasses.replace(self.config, train=plan.train)
        self.ema.decay = plan.train.ema_decay
        if self.processes.main:
            (self.run_dir / "config.json").write_text(
                json.dumps(to_dict(self.config), indent=2) + "\n"
            )
            (self.run_dir / PLAN_FILE).write_text(
                json.dumps(dataclasses.asdict(plan), indent=2) + "\n"
            )

    def _synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    @torch.no_grad()
    def _sample_seconds(self) -> float:
        """The time the final sample grid will take: one timed network call at the sample batch
        size, times the calls the configured sampler makes."""
        sample = self.config.sample
        batch = min(sample.batch_size, sample.num_samples)
        x = torch.zeros(batch, *self.shape, device=self.device)
        sampler = SAMPLERS[sample.sampler]
        calls = sample.steps_for(self.schedule.num_steps) * sampler.calls_per_level
        calls *= math.ceil(sample.num_samples / batch) * (2 if sample.guidance != 1.0 else 1)
        calls *= 2 if sample.autoguidance != 1.0 else 1
        with autocast(sample.precision, self.device):
            self.sampling_model.denoiser(x, 1.0)  # warm-up
            self._synchronize()
            start = time.perf_counter()
            self.sampling_model.denoiser(x, 1.0)
            self._synchronize()
            seconds = time.perf_counter() - start
        return seconds * calls

    def _write_summary(self, seconds: float, steps: int, log: LossLog) -> None:
        """RUN/summary.json: what the run is, how far it got, its last figures and files."""
        train = self.config.train
        checkpoints = find_checkpoints(self.run_dir)
        samples = sorted((self.run_dir / "samples").glob(f"{CHECKPOINT_PREFIX}*.png"))
        rate = round(steps * train.batch_size / seconds, 3) if seconds > 0 else None
        write_summary(
            self.run_dir / "summary.json",
            {
                "step": self.step,
                "steps": train.steps,
                "batch_size": train.batch_size,
                "processes": self.processes.world,
                "device": str(self.device),
                "parameters": sum(p.numel() for p in self.network.parameters()),
                "last_session": {
                    "steps": steps,
                    "seconds": round(seconds, 3),
                    "images_per_second": rate,
                },
                "last_log_row": log.last_row,
                "checkpoint": str(checkpoints[-1]) if checkpoints else None,
                "samples": str(samples[-1]) if samples else None,
                "log": str(self.run_dir / "log.csv"),
            },
        )

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
                self.scaler.scale(output.loss / train.grad_accum).backward()
            outputs.append(output)
        output = _joined(outputs)
        self.scaler.unscale_(self.optimizer)
        max_norm = train.grad_clip if train.grad_clip > 0 else float("inf")
        grad_norm = torch.nn.utils.clip_grad_norm_(self.network.parameters(), max_norm)
        metrics: StepMetrics = {"loss": output.loss.detach(), "lr": lr, "grad_norm": grad_norm}
        finite = torch.isfinite(metrics["loss"])
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

    def check_finite(self) -> None:
        """Stop with the first step whose loss or gradient was NaN/Inf, before anything of it is
        written: the last checkpoint on disk stays the last good one."""
        step = int(self._first_nonfinite)
        if step < 0:
            return
        raise FloatingPointError(
            f"step {step}: the loss or gradient is NaN/Inf, {self._stopped()}. "
            "Lower train.lr, set train.grad_clip, check the noise schedule, or pass "
            "--train.skip_nonfinite true to skip such steps"
        )

    def _stopped(self) -> str:
        """'training stopped' and the checkpoint a resumed run would start from."""
        found = find_checkpoints(self.run_dir)
        last = f"the last good checkpoint is {found[-1]}" if found else "no checkpoint was written"
        return f"training stopped; {last}"

    def _micro_batch(
        self, x0: torch.Tensor, labels: torch.Tensor, generator: torch.Generator | BatchShard
    ) -> LossOutput:
        """The loss of (part of) a batch: random flips and label dropout, then the objective."""
        if self.config.data.hflip:
            x0 = hflip_batch(x0, rand_rows(len(x0), generator) < 0.5)
        class_labels = self._class_labels(labels, generator)
        with autocast(self.config.train.precision, self.device):
            return self.loss(self.denoiser, x0, class_labels, generator)

    def _generator(self, rows: slice, shared: list[torch.Tensor]) -> torch.Generator | BatchShard:
        """The run's generator for one process and one micro-batch; otherwise these ``rows`` of
        this process's part of the whole batch's draws, which the step's micro-batches share."""
        train = self.config.train
        if not self.processes.distributed and train.grad_accum == 1:
            return self.generator
        start = self.rows.start
        whole_rows = slice(start + rows.start, start + rows.stop)
        return BatchShard(self.generator, whole_rows, train.batch_size, shared)

    def _class_labels(
        self, labels: torch.Tensor, generator: torch.Generator | BatchShard
    ) -> torch.Tensor | None:
        """The batch's labels, each replaced by ∅ with probability model.label_dropout (Ho &
        Salimans 2022, Algorithm 1); None for an unconditional model."""
        model = self.config.model
        if not (model.class_conditional or model.text_conditional):
            return None
        labels = labels.to(self.device)
        captions = self.sampling_model.captions
        if captions is not None:  # a caption per image: its class with a random template
            labels = captions.tokens(
                labels, captions.draw_template(rand_rows(len(labels), generator))
            )
        _, null = class_labels_of(model)
        if null is None:
            return labels
        drop = rand_rows(len(labels), generator)
        if captions is not None:
            drop = drop[:, None]
        return torch.where(drop < model.label_dropout, torch.full_like(labels, null), labels)

    def heldout_bound(self) -> float:
        """The variational bound (all T terms, EMA weights) of the first held-out items, bits/dim."""
        if self._heldout is None:  # read once, on the first evaluation
            data = load_data(self.config.data, "heldout").dataset
            count = min(self.config.train.eval_samples, len(data))
            self._heldout = stack_items(data, count)[0]
        x0 = self._heldout.to(self.device, torch.float64)
        denoiser = self.sampling_model.denoiser
        levels = self.config.data.levels
        bound = variational_bound(
            denoiser, self.schedule, x0,
            schedule_log_variance(self.schedule, self.config.sample.variance),
            generator=torch.Generator(self.device).manual_seed(self.config.train.seed),
            decoder=partial(discretized_gaussian_log_likelihood, num_levels=levels),
        )  # fmt: skip
        return float(bound.mean_bpd)

    def _periodic_outputs(self, on_sampling: ProgressCallback | None) -> None:
        train, step = self.config.train, self.step
        last = step == train.steps
        checkpoint = last or step % train.checkpoint_every == 0
        samples = last or (train.sample_every > 0 and step % train.sample_every == 0)
        if not (checkpoint or samples):
            return
        self.check_finite()
        if checkpoint and self.processes.main:
            self.save()
        if samples and self.processes.main:
            stem = self.run_dir / "samples" / checkpoint_name(step)
            self._write_grid(stem, on_sampling)
            if self._board is not None:
                self._board.picture("samples", stem.with_suffix(".png"), step)
        self.processes.barrier()  # no process runs ahead of a checkpoint being written

    def _write_grid(self, stem: Path, on_sampling: ProgressCallback | None) -> None:
        """A sample grid of the current weights, autoguided when ``sample.autoguidance`` ≠ 1 by
        ``sample.guide`` or this run's checkpoint nearest half the current step (a grid before
        any earlier checkpoint is drawn unguided)."""
        sample, model, guide = self.config.sample, self.sampling_model, None
        if sample.autoguidance != 1.0:
            folder = sample.guide or guide_checkpoint(self.run_dir, self.step)
            if folder is None:
                model = model.with_sample(dataclasses.replace(sample, autoguidance=1.0))
            else:
                guide = load_guide(model, folder)
        write_samples(model, stem, on_sampling, guide)

    def save(self) -> Path:
        """Write a checkpoint of the current step."""
        rng = {"torch": torch.get_rng_state(), "train": self.generator.get_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        state = TrainingState(
            self.step,
            self.ema.num_updates,
            self.optimizer.state_dict(),
            rng,
            self.loss.timesteps.state_dict(),
            self.scaler.state_dict(),
        )
        folder = self.run_dir / "checkpoints" / checkpoint_name(self.step)
        saved = save_checkpoint(folder, self.config, self.network, self.ema.model, state)
        prune_checkpoints(self.run_dir, self.config.train.keep_checkpoints)
        return saved

    def latest_checkpoint(self) -> Path:
        return find_checkpoints(self.run_dir)[-1]

    def _claim_run_dir(self) -> None:
        if self.run_dir.exists() and any(self.run_dir.iterdir()):
            raise FileExistsError(
                f"run folder {self.run_dir} is not empty; resume it with --resume "
                "or choose a new folder with --out"
            )
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            (self.run_dir / "config.json").write_text(
                json.dumps(to_dict(self.config), indent=2) + "\n"
            )
            if self.autoencoder is not None:  # the run keeps the autoencoder it was trained on
                save_autoencoder(
                    self.autoencoder,
                    self.run_dir / RUN_AUTOENCODER,
                    sample_size=self.image_shape[-1],
                )
        except OSError as error:
            raise ValueError(
                f"run folder {self.run_dir}: cannot write there ({error.strerror})"
            ) from None
        self._check_disk_space()

    def _check_disk_space(self) -> None:
        """Refuse to start when the run folder's disk cannot hold two checkpoints: the weights,
        their average and AdamW's two moments, each as large as the network."""
        weights = sum(p.numel() * p.element_size() for p in self.network.parameters())
        needed = 2 * 4 * weights
        free = shutil.disk_usage(self.run_dir).free
        if free < needed:
            raise ValueError(
                f"run folder {self.run_dir}: {free / 2**20:,.0f} MiB free on its disk, but two "
                f"checkpoints of this network need {needed / 2**20:,.0f} MiB"
            )

    def _restore(self) -> None:
        """Continue from the newest readable checkpoint (falling back past corrupt ones), or from
        step 0 when the run stopped before its first; outputs of later steps are discarded."""
        self._adopt_plan()
        found = find_checkpoints(self.run_dir)
        if not found and (self.run_dir / "config.json").is_file():
            _check_resumable(read_config(self.run_dir), self.config, self.run_dir)
            if self.processes.main:
                self._discard_outputs_after(0)
            return
        for checkpoint in reversed(found):
            try:
                saved = read_config(checkpoint)
            except (json.JSONDecodeError, OSError) as error:
                _set_aside(checkpoint, error)
                continue
            _check_resumable(saved, self.config, checkpoint)
            try:
                self._load(checkpoint)
            except (UnreadableCheckpointError, json.JSONDecodeError, OSError, KeyError) as error:
                _set_aside(checkpoint, error)
                continue
            if self.processes.main:
                self._discard_outputs_after(self.step)
            return
        raise FileNotFoundError(f"cannot resume: {self.run_dir} holds no readable checkpoint")

    def _adopt_plan(self) -> None:
        """A resumed ``train.minutes`` run continues its plan (config.json holds the planned
        options) instead of planning again."""
        if self._plan_pending and (self.run_dir / PLAN_FILE).is_file():
            saved = read_config(self.run_dir).train
            if saved.minutes == self.config.train.minutes:
                figures = json.loads((self.run_dir / PLAN_FILE).read_text())
                figures.pop("train")
                self.plan = Plan(saved, **figures)
                self.config = dataclasses.replace(self.config, train=saved)
                self.ema.decay, self._plan_pending = saved.ema_decay, False

    def _load(self, checkpoint: Path) -> None:
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
        self.step = state.step

    def _discard_outputs_after(self, step: int) -> None:
        """Remove log rows and sample files of steps after ``step``: the resumed run writes them
        again, identically."""
        log = self.run_dir / "log.csv"
        if log.is_file():
            lines = log.read_text().splitlines(keepends=True)
            kept = [lines[0], *(row for row in lines[1:] if int(row.split(",")[0]) <= step)]
            log.write_text("".join(kept))
        for path in (self.run_dir / "samples").glob(f"{CHECKPOINT_PREFIX}*"):
            written_at = step_of(path.stem)  # None for `ddpmkit sample`'s own outputs
            if written_at is not None and written_at > step:
                path.unlink()


def _joined(outputs: list[LossOutput]) -> LossOutput:
    """The micro-batches' outputs as one: their mean loss, their samples' losses in order."""
    if len(outputs) == 1:
        return outputs[0]
    loss = torch.stack([o.loss.detach() for o in outputs]).mean()
    per_sample = torch.cat([o.per_sample for o in outputs])
    return LossOutput(loss, per_sample, torch.cat([o.t for o in outputs]))


def _set_aside(checkpoint: Path, error: Exception) -> None:
    """Rename an unreadable checkpoint to ``….unreadable`` (kept, out of the resumed run's way)."""
    aside = checkpoint.with_name(checkpoint.name + ".unreadable")
    checkpoint.rename(aside)
    warnings.warn(
        f"checkpoint {checkpoint} is unreadable ({type(error).__name__}: {error}); kept as "
        f"{aside.name}, resuming from the one before it",
        RuntimeWarning,
        stacklevel=3,
    )


def _check_resumable(saved: RunConfig, requested: RunConfig, checkpoint: Path) -> None:
    """Only the length of training, the micro-batching of a step and the TensorBoard log may
    change on resume; anything else would not be a resumption."""
    same_except_steps = dataclasses.replace(
        requested,
        train=dataclasses.replace(
            requested.train,
            steps=saved.train.steps,
            grad_accum=saved.train.grad_accum,
            tensorboard=saved.train.tensorboard,
        ),
    )
    if same_except_steps != saved:
        changed = [
            f.name
            for f in dataclasses.fields(saved)
            if getattr(saved, f.name) != getattr(same_except_steps, f.name)
        ]
        raise ValueError(
            f"cannot resume from {checkpoint}: the config differs in section(s) {', '.join(changed)}; "
            "only train.steps, train.grad_accum and train.tensorboard may change when resuming"
        )
