"""The training loop: batches, checkpoints, sample grids, logs; no diffusion mathematics.

The diffusion objective is whatever loss the config builds (``ddpmkit.losses``) and one optimizer
step is ``training.step``'s; this module feeds the steps and keeps the run reproducible: a resumed
run continues bit for bit. The run folder (claim, resume) is ``training.run_folder``'s, the
network's size and a time budget's plan ``training.budget``'s.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import torch

from ddpmkit.config.builders import resolve_for_data
from ddpmkit.config.execution import Execution, pick_device
from ddpmkit.config.schema import RunConfig
from ddpmkit.data import dataset_size, load_data, stack_items
from ddpmkit.generation.sampling import write_samples
from ddpmkit.likelihood import (
    discretized_gaussian_log_likelihood,
    schedule_log_variance,
    variational_bound,
)
from ddpmkit.networks.autoencoder import Autoencoder
from ddpmkit.networks.execution import CompileDecision, synchronize
from ddpmkit.progress import ProgressCallback
from ddpmkit.storage.autoencoder_folders import load_autoencoder, run_autoencoder
from ddpmkit.storage.checkpoints import (
    checkpoint_name,
    prune_checkpoints,
    read_config,
    save_checkpoint,
)
from ddpmkit.storage.guides import find_guide
from ddpmkit.training.batches import StepBatches, batch_stream
from ddpmkit.training.budget import (
    Plan,
    Planner,
    resumed_sizing,
    sampling_seconds,
    sized_config,
)
from ddpmkit.training.distributed import Processes
from ddpmkit.training.latents import encode_dataset
from ddpmkit.training.run_folder import RunFolder
from ddpmkit.training.run_lock import RunLock
from ddpmkit.training.run_logs import LossLog, StepMetrics, TensorBoardLog
from ddpmkit.training.sizing import Sizing
from ddpmkit.training.step import Learner
from ddpmkit.training.stopping import StopSignals, TrainingStopped

TrainStepCallback = Callable[[int, StepMetrics], None]
"""Called after every step with (step, metrics); the CLI draws its progress bar with it."""


class Trainer(Learner):
    """Trains the network a ``RunConfig`` describes, in a run folder it owns.

    Args:
        config: the run's configuration; the data's shape and classes, and with
            ``model.auto_size`` the network's size, are resolved from it at construction.
        run_dir: the run folder: empty or absent for a new run (it is claimed: the config is
            written there), the folder of an earlier run when resuming.
        resume: continue from the newest readable checkpoint of ``run_dir`` (from step 0 if
            it has none yet); ``config`` may differ from the saved one only in
            ``train.steps``, ``train.grad_accum`` and ``train.tensorboard``.
    """

    def __init__(self, config: RunConfig, run_dir: str | Path, resume: bool = False) -> None:
        started = time.perf_counter()  # a time budget counts from here
        self.run = RunFolder(Path(run_dir))
        data = load_data(config.data, "train")
        processes = Processes.from_environment()
        device = processes.device(pick_device(config.train.device))
        processes.start(device)
        agree = partial(processes.slowest, device=device)  # one time for all processes: the slowest
        self._agree = agree
        self._lock = RunLock(self.run.path)  # one training process per run folder
        if processes.main and (not resume or self.run.path.is_dir()):
            self._lock.acquire()
        self.dataset, self.shape = data.dataset, data.shape
        autoencoder = None
        if config.model.autoencoder is not None:  # latent diffusion: encode the images once
            autoencoder = _frozen_autoencoder(self.run, config.model.autoencoder, resume, device)
            self.dataset = encode_dataset(autoencoder, data.dataset)
            self.shape = self.dataset.shape
        self.sizing: Sizing | None = None
        if config.model.auto_size and resume and (self.run.path / "config.json").is_file():
            config = resumed_sizing(config, read_config(self.run.path))  # the network it chose
        elif config.model.auto_size:
            config, self.sizing = sized_config(
                config, self.shape, dataset_size(self.dataset), processes.world, device, agree
            )
        resolved = resolve_for_data(config, self.shape, data.num_classes, data.class_names)
        super().__init__(resolved, processes, Execution.of(device, resolved.train), autoencoder)
        self.plan: Plan | None = None
        self._planner: Planner | None = None
        self._heldout: torch.Tensor | None = None
        self._board: TensorBoardLog | None = None  # set by fit when train.tensorboard
        if resume:
            self.plan = self.run.saved_plan(resolved.train.minutes)
            self.ema.decay = self.config.train.ema_decay
            self.step = self.run.resume(self.config, self.load, processes.main)
        elif processes.main:
            self.run.claim(resolved, self.network, autoencoder, data.shape[-1])
        if resolved.train.minutes is not None and self.plan is None:
            self._planner = Planner(started, agree)
        processes.barrier()  # no process reads the run folder before it is claimed

    @property
    def config(self) -> RunConfig:
        """The run's resolved config, with the planned training options once it has a plan."""
        if self.plan is None:
            return self.requested
        return dataclasses.replace(self.requested, train=self.plan.train)

    def fit(
        self, on_step: TrainStepCallback | None = None, on_sampling: ProgressCallback | None = None
    ) -> Path:
        """Train until ``train.steps``; returns the last checkpoint folder.

        ``on_step`` is called after every step, ``on_sampling`` as the sample grids are drawn.
        """
        train, main = self.config.train, self.processes.main
        order = StepBatches(
            dataset_size(self.dataset), train.batch_size, train.seed, self.step, rows=self.rows
        )
        batches = batch_stream(
            self.dataset, order, train.num_workers, pin_memory=self.device.type == "cuda"
        )
        log = LossLog(self.run.path / "log.csv", self.schedule.num_steps)
        start, first_step = time.perf_counter(), self.step
        if train.tensorboard and main:
            self._board = TensorBoardLog(self.run.path / "tensorboard", train.batch_size)
        if self.processes.main and not self._lock.held:
            self._lock.acquire()
        try:
            with StopSignals() as signals:
                self._loop(batches, log, on_step, on_sampling, signals)
        finally:
            self._lock.release()
            if self._board is not None:
                self._board.close()
        final = self.run.path / "samples" / checkpoint_name(self.step)
        if main and not final.with_suffix(".png").exists():
            self._write_grid(final, on_sampling)  # stopped after the checkpoint
        self.processes.barrier()
        if main:
            self._write_summary(time.perf_counter() - start, self.step - first_step, log)
        return self.latest_checkpoint()

    def _write_summary(self, seconds: float, steps: int, log: LossLog) -> None:
        """RUN/summary.json: what the run is, how far it got and its last figures."""
        train = self.config.train
        rate = round(steps * train.batch_size / seconds, 3) if seconds > 0 else None
        self.run.write_summary({
            "step": self.step,
            "steps": train.steps,
            "batch_size": train.batch_size,
            "processes": self.processes.world,
            "device": str(self.device),
            "parameters": sum(p.numel() for p in self.network.parameters()),
            "last_session": {"steps": steps, "seconds": round(seconds, 3), "images_per_second": rate},
            "last_log_row": log.last_row,
            "compile": self.compile_decision.reason if self.compile_decision else None,
        })  # fmt: skip

    def _loop(
        self,
        batches: Iterator[tuple[torch.Tensor, torch.Tensor]],
        log: LossLog,
        on_step: TrainStepCallback | None,
        on_sampling: ProgressCallback | None,
        signals: StopSignals,
    ) -> None:
        main = self.processes.main
        while self.step < self.config.train.steps:  # a train.minutes run plans on the way
            try:
                x0, labels = next(batches)
            except ValueError as error:  # a file that became unreadable after the start-up check
                # a DataLoader worker's error carries its traceback; its last line is the message
                reason = str(error).strip().splitlines()[-1].removeprefix("ValueError: ")
                raise ValueError(
                    f"step {self.step + 1}: {reason}; {self.run.stop_message()}"
                ) from error
            started = time.perf_counter()
            metrics, output = self.train_step(x0, labels)
            self.step += 1
            decision = self.compile_decision
            if decision is not None and decision.state != "decided":
                self._time_for_compilation(decision, started)  # before any plan: its cost counts
            if self._planner is not None:
                self._plan_when_timed(self._planner, decision)
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
            self._stop_if_asked(signals)

    def _stop_if_asked(self, signals: StopSignals) -> None:
        """After a step, a SIGTERM or Ctrl-C received by any process: checkpoint this step
        (unless it has one, or its loss was NaN/Inf) and raise `TrainingStopped` everywhere."""
        asked = float(signals.requested or 0)
        if self.processes.distributed:  # every process stops after the same step
            asked = self._agree(asked)
        if not asked:
            return
        self.check_finite()
        folder = self.run.path / "checkpoints" / checkpoint_name(self.step)
        if self.processes.main and not folder.exists():
            self.save()
        self.processes.barrier()
        raise TrainingStopped(int(asked))

    def _time_for_compilation(self, decision: CompileDecision, started: float) -> None:
        """Time the step that began at ``started`` for ``train.compile`` auto. The units left are
        the steps left, in a ``train.minutes`` run before its plan at most what the budget left
        holds at this step's rate; every process records the slowest process's figures, so all
        decide alike."""
        synchronize(self.device)
        seconds = self._agree(time.perf_counter() - started)
        units_left = float(self.config.train.steps - self.step)
        minutes = self.requested.train.minutes
        if self._planner is not None and minutes is not None:
            elapsed = self._agree(time.perf_counter() - self._planner.started)
            units_left = min(units_left, (60.0 * minutes - elapsed) / max(seconds, 1e-9))
        decision.record(seconds, units_left)

    def _plan_when_timed(self, planner: Planner, decision: CompileDecision | None) -> None:
        """Once the planner has timed enough steps, plan the rest of a ``train.minutes`` run and
        write the planned options to config.json; while ``train.compile`` auto decides, steps
        are timed but not planned on, and the compiling and compiled trials are not timed."""
        synchronize(self.device)  # a step's time is known once the device has done it
        if decision is not None and decision.state != "decided":
            if decision.use_compiled:
                planner.restart()
            else:
                planner.time_step()
            return
        seconds = partial(sampling_seconds, self.sampling_model, self.execution)
        plan = planner.plan_after_step(self.requested.train, self.step, seconds)
        if plan is None:
            return
        self.plan, self._planner = plan, None
        self.ema.decay = plan.train.ema_decay
        if self.processes.main:
            self.run.write_plan(self.config, plan)

    def heldout_bound(self) -> float:
        """The variational bound (all T terms, EMA weights) of the first held-out items, bits/dim."""
        if self._heldout is None:  # read once, on the first evaluation
            data = load_data(self.requested.data, "heldout").dataset
            count = min(self.requested.train.eval_samples, dataset_size(data))
            self._heldout = stack_items(data, count)[0]
        x0 = self._heldout.to(self.device, torch.float64)
        levels = self.requested.data.levels
        bound = variational_bound(
            self.sampling_model.denoiser, self.schedule, x0,
            schedule_log_variance(self.schedule, self.requested.sample.variance),
            generator=torch.Generator(self.device).manual_seed(self.requested.train.seed),
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
            stem = self.run.path / "samples" / checkpoint_name(step)
            self._write_grid(stem, on_sampling)
            if self._board is not None:
                self._board.picture("samples", stem.with_suffix(".png"), step)
        self.processes.barrier()  # no process runs ahead of a checkpoint being written

    def _write_grid(self, stem: Path, on_sampling: ProgressCallback | None) -> None:
        """A sample grid of the current weights, autoguided when ``sample.autoguidance`` ≠ 1 by
        ``sample.guide`` or this run's checkpoint nearest half the current step (a grid before
        any earlier checkpoint is drawn unguided)."""
        model, sample = self.sampling_model, self.requested.sample
        guide = find_guide(model, sample, run=(self.run.path, self.step))
        if guide is None and sample.autoguidance != 1.0:
            model = model.with_sample(dataclasses.replace(sample, autoguidance=1.0))
        write_samples(model, stem, on_sampling, guide)

    def check_finite(self) -> None:
        """Stop with the first step whose loss or gradient was NaN/Inf, before anything of it is
        written: the last checkpoint on disk stays the last good one."""
        step = self.first_nonfinite_step()
        if step is None:
            return
        raise FloatingPointError(
            f"step {step}: the loss or gradient is NaN/Inf, {self.run.stop_message()}. "
            "Lower train.lr, set train.grad_clip, check the noise schedule, or pass "
            "--train.skip_nonfinite true to skip such steps"
        )

    def save(self) -> Path:
        """Write a checkpoint of the current step."""
        folder = self.run.path / "checkpoints" / checkpoint_name(self.step)
        state = self.training_state()
        saved = save_checkpoint(folder, self.config, self.network, self.ema.model, state)
        prune_checkpoints(self.run.path, self.config.train.keep_checkpoints)
        return saved

    def latest_checkpoint(self) -> Path:
        return self.run.checkpoints[-1]


def _frozen_autoencoder(
    run: RunFolder, configured: str, resume: bool, device: torch.device
) -> Autoencoder:
    """The autoencoder of a latent run (a resumed run's own copy), frozen, on the device."""
    found = run_autoencoder(run.path, configured) if resume else load_autoencoder(configured)
    return found.to(device).eval().requires_grad_(False)
