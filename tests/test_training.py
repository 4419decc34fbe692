"""The training loop: it learns, it resumes bit for bit, its checkpoints reproduce its samples."""

import csv
import dataclasses
import json
import math
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from conftest import tiny_digits_config
from PIL import Image
from safetensors.torch import load_file, save_file

from ddpmkit import (
    DataConfig,
    DiffusionConfig,
    ModelConfig,
    RunConfig,
    SampleConfig,
    TrainConfig,
    Trainer,
)
from ddpmkit.cli import main
from ddpmkit.data.digits import digits_arrays
from ddpmkit.generation.sampling import generate
from ddpmkit.learning_rate import learning_rate
from ddpmkit.networks import MLPConfig
from ddpmkit.storage.checkpoints import find_checkpoints
from ddpmkit.storage.model import load_model
from ddpmkit.training.batches import StepBatches, batch_stream


def _state(trainer):
    tensors = dict(trainer.network.state_dict())
    tensors |= {f"ema.{k}": v for k, v in trainer.ema.model.state_dict().items()}
    for i, s in trainer.optimizer.state_dict()["state"].items():
        tensors |= {f"opt.{i}.{k}": v for k, v in s.items()}
    return tensors


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_resumed_run_reaches_the_same_weights_as_an_uninterrupted_one(
    tmp_path, tiny_config, precision
):
    # Periodic held-out bounds run on the way and must not disturb any random stream; in fp16
    # the gradient scaler's loss scale is part of the state that resumes.
    train = dataclasses.replace(
        tiny_config.train, eval_every=2, eval_samples=3, precision=precision
    )
    tiny_config = dataclasses.replace(tiny_config, train=train)
    whole = Trainer(tiny_config, tmp_path / "whole")
    whole.fit()
    first_half = dataclasses.replace(
        tiny_config, train=dataclasses.replace(tiny_config.train, steps=3)
    )
    Trainer(first_half, tmp_path / "split").fit()
    resumed = Trainer(tiny_config, tmp_path / "split", resume=True)
    assert resumed.step == 3
    resumed.fit()
    a, b = _state(whole), _state(resumed)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert torch.equal(whole.generator.get_state(), resumed.generator.get_state())
    assert whole.scaler.state_dict() == resumed.scaler.state_dict()
    if precision == "fp16":  # the scale (on overflow) or its growth count changed after step 3
        state = whole.scaler.state_dict()
        assert whole.scaler.is_enabled()
        assert state["scale"] < 2.0**16 or state["_growth_tracker"] > 3


def test_resume_refuses_a_changed_config(tmp_path, tiny_config):
    Trainer(tiny_config, tmp_path / "run").fit()
    changed = dataclasses.replace(
        tiny_config, diffusion=dataclasses.replace(tiny_config.diffusion, num_steps=200)
    )
    with pytest.raises(ValueError, match="diffusion"):
        Trainer(changed, tmp_path / "run", resume=True)


def test_a_new_run_never_overwrites_an_existing_one(tmp_path, tiny_config):
    Trainer(tiny_config, tmp_path / "run").fit()
    with pytest.raises(FileExistsError, match="--resume"):
        Trainer(tiny_config, tmp_path / "run")


def test_checkpoint_alone_reproduces_the_samples(tmp_path, tiny_config):
    trainer = Trainer(tiny_config, tmp_path / "run")
    checkpoint = trainer.fit()
    again = generate(load_model(checkpoint, "cpu")).samples
    original = generate(trainer.sampling_model).samples
    assert torch.equal(again, original)
    assert [p.name for p in find_checkpoints(tmp_path / "run")] == ["step-0000003", "step-0000006"]
    assert (tmp_path / "run" / "samples" / "step-0000006.png").is_file()


def test_samples_do_not_depend_on_the_batch_size(tmp_path):
    config = tiny_digits_config(steps=2)
    trainer = Trainer(config, tmp_path / "run")
    trainer.fit()
    model = trainer.sampling_model
    # The network in float64: batch-size-dependent CPU kernels then differ by ~1e-16, not ~1e-7,
    # and the float32 sampler around it rounds both alike (measured: equal; float32 network:
    # 4e-7 apart on a Zen 3). Samples of another seed differ by ~1.
    model.network.double()
    one_batch = generate(model, dataclasses.replace(config.sample, batch_size=6)).samples
    in_pieces = generate(model, dataclasses.replace(config.sample, batch_size=4)).samples
    assert torch.allclose(one_batch, in_pieces, rtol=0, atol=1e-5)
    shifted = generate(model, dataclasses.replace(config.sample, seed=1)).samples
    assert torch.allclose(one_batch[1:], shifted[:-1], rtol=0, atol=1e-5)


def test_training_lowers_the_loss_on_the_digits(tmp_path):
    config = tiny_digits_config(steps=150, batch_size=64, lr=2e-3, warmup_steps=10, log_every=10)
    trainer = Trainer(config, tmp_path / "run")
    x0 = digits_arrays("train")[0][:256]

    def held_loss():
        trainer.network.eval()
        with torch.no_grad():
            return float(
                trainer.loss(trainer.denoiser, x0, None, torch.Generator().manual_seed(0)).loss
            )

    before = held_loss()
    trainer.fit()
    after = held_loss()
    assert after < 0.5 * before
    with (tmp_path / "run" / "log.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 15 and {"loss_q0", "loss_q3", "lr", "grad_norm"} <= rows[0].keys()
    # Improved DDPM's observation: the first quarter of t (least noise) has the largest ε-loss.
    assert float(rows[-1]["loss_q0"]) > float(rows[-1]["loss_q3"])


def test_learning_rate_warms_up_linearly_then_stays():
    assert learning_rate(0, 1.0, 10) == pytest.approx(0.1)
    assert learning_rate(9, 1.0, 10) == 1.0 and learning_rate(500, 1.0, 10) == 1.0
    assert learning_rate(0, 1.0, 0) == 1.0


def test_training_logs_the_heldout_bound_periodically(tmp_path):
    config = tiny_digits_config(steps=4, eval_every=2, eval_samples=4, log_every=1)
    Trainer(config, tmp_path / "run").fit()
    with (tmp_path / "run" / "log.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    bounds = [row["heldout_bpd"] for row in rows]
    assert bounds[0] == "" and bounds[2] == ""  # only every second step
    assert 0.1 < float(bounds[1]) < 20 and 0.1 < float(bounds[3]) < 20


def _hybrid_toy_config(steps: int) -> RunConfig:
    """An MLP on 2-D points with L_hybrid and importance-sampled t that leaves uniform early."""
    return RunConfig(
        data=DataConfig(source="toy2d", toy_size=512),
        model=ModelConfig(kind="mlp", mlp=MLPConfig(hidden=32, num_blocks=1)),
        diffusion=DiffusionConfig(
            schedule="cosine", num_steps=6, learned_variance=True, loss="hybrid",
            timestep_sampling="importance",
        ),
        train=TrainConfig(
            steps=steps, batch_size=64, lr=1e-3, warmup_steps=1, checkpoint_every=3,
            sample_every=0, log_every=1, seed=1,
        ),
        sample=SampleConfig(num_samples=8, batch_size=8),
    )  # fmt: skip


def test_hybrid_run_with_importance_sampling_resumes_bit_for_bit(tmp_path):
    whole = Trainer(_hybrid_toy_config(7), tmp_path / "whole")
    assert whole.config.model.mlp.out_dim == 4  # mean and Σ_θ for each of the 2 coordinates
    whole.fit()
    split = Trainer(_hybrid_toy_config(3), tmp_path / "split")
    split.fit()
    assert (split.loss.timesteps.counts == 10).all()  # the importance sampler is active by now
    resumed = Trainer(_hybrid_toy_config(7), tmp_path / "split", resume=True)
    assert torch.equal(resumed.loss.timesteps.history, split.loss.timesteps.history)
    resumed.fit()
    a, b = _state(whole), _state(resumed)
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert torch.equal(whole.loss.timesteps.history, resumed.loss.timesteps.history)
    probabilities = whole.loss.timesteps.probabilities()
    assert not torch.allclose(probabilities, torch.full_like(probabilities, 1 / 6))


class _PoisonedLoss:
    """The trainer's loss, made NaN at the given (1-based) steps, as a diverging run would be."""

    def __init__(self, trainer: Trainer, bad_steps: set[int]) -> None:
        self.loss, self.trainer, self.bad_steps = trainer.loss, trainer, bad_steps

    def __getattr__(self, name: str):
        return getattr(self.loss, name)

    def __call__(self, denoiser, x0, labels, generator):
        output = self.loss(denoiser, x0, labels, generator)
        if self.trainer.step + 1 in self.bad_steps:
            return dataclasses.replace(output, loss=output.loss * float("nan"))
        return output


def _poison_step(trainer: Trainer, bad_steps: set[int]) -> None:
    trainer.loss = _PoisonedLoss(trainer, bad_steps)


def test_a_nonfinite_step_stops_training_and_keeps_the_last_good_checkpoint(tmp_path, tiny_config):
    config = dataclasses.replace(
        tiny_config, train=dataclasses.replace(tiny_config.train, checkpoint_every=2, log_every=1)
    )
    trainer = Trainer(config, tmp_path / "run")
    _poison_step(trainer, {5})
    with pytest.raises(
        FloatingPointError, match=r"step 5: .*last good checkpoint is .*step-0000004"
    ):
        trainer.fit()
    assert [p.name for p in find_checkpoints(tmp_path / "run")] == ["step-0000002", "step-0000004"]
    resumed = Trainer(config, tmp_path / "run", resume=True)  # and the run goes on from there
    assert resumed.step == 4
    assert all(torch.isfinite(p).all() for p in resumed.network.parameters())


def test_skip_nonfinite_skips_and_counts_the_bad_steps(tmp_path, tiny_config):
    train = dataclasses.replace(tiny_config.train, skip_nonfinite=True, log_every=3)
    trainer = Trainer(dataclasses.replace(tiny_config, train=train), tmp_path / "run")
    _poison_step(trainer, {2, 3})
    trainer.fit()
    assert all(torch.isfinite(p).all() for p in trainer.network.parameters())
    with (tmp_path / "run" / "log.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [row["skipped"] for row in rows] == ["2", ""]
    assert all(math.isfinite(float(row["loss"])) for row in rows)


class _Stop(Exception):
    """Stands for a kill at a chosen step."""


def _stop_at(step: int):
    def on_step(done: int, metrics) -> None:
        if done == step:
            raise _Stop

    return on_step


def _rows(run) -> list[dict[str, str]]:
    with (run / "log.csv").open() as handle:
        return list(csv.DictReader(handle))


def _config(tiny_config, **train):
    return dataclasses.replace(tiny_config, train=dataclasses.replace(tiny_config.train, **train))


def test_resume_rewrites_the_outputs_of_the_lost_steps(tmp_path, tiny_config):
    """Samples every 2 steps, checkpoints every 3: a stop at step 5 leaves step-4 samples and log
    rows past the checkpoint; resuming writes them again, once, identical to an unbroken run."""
    config = _config(tiny_config, sample_every=2, log_every=1)
    whole = Trainer(config, tmp_path / "whole")
    whole.fit()
    with pytest.raises(_Stop):
        Trainer(config, tmp_path / "run").fit(on_step=_stop_at(5))
    assert (tmp_path / "run" / "samples" / "step-0000004.png").exists()
    resumed = Trainer(config, tmp_path / "run", resume=True)
    assert resumed.step == 3
    resumed.fit()
    assert [row["step"] for row in _rows(tmp_path / "run")] == ["1", "2", "3", "4", "5", "6"]
    for name in ("step-0000004.npz", "step-0000006.npz"):
        a = np.load(tmp_path / "whole" / "samples" / name)["samples"]
        b = np.load(tmp_path / "run" / "samples" / name)["samples"]
        assert np.array_equal(a, b), name


def test_resume_before_the_first_checkpoint_starts_the_run_over(tmp_path, tiny_config):
    with pytest.raises(_Stop):
        Trainer(tiny_config, tmp_path / "run").fit(on_step=_stop_at(2))  # checkpoint_every is 3
    assert find_checkpoints(tmp_path / "run") == []
    resumed = Trainer(tiny_config, tmp_path / "run", resume=True)
    assert resumed.step == 0
    resumed.fit()
    whole = Trainer(tiny_config, tmp_path / "whole")
    whole.fit()
    a, b = _state(whole), _state(resumed)
    assert all(torch.equal(a[key], b[key]) for key in a)
    assert [row["step"] for row in _rows(tmp_path / "run")] == ["2", "4", "6"]


def test_final_samples_missing_after_the_last_checkpoint_are_written_on_resume(
    tmp_path, tiny_config
):
    Trainer(tiny_config, tmp_path / "run").fit()
    final = tmp_path / "run" / "samples" / "step-0000006"
    for suffix in (".png", ".npz"):
        final.with_suffix(suffix).unlink()
    Trainer(tiny_config, tmp_path / "run", resume=True).fit()
    assert final.with_suffix(".png").exists() and final.with_suffix(".npz").exists()


@pytest.mark.parametrize("damaged", ["training.safetensors", "training.json", "ema.safetensors"])
def test_a_corrupt_latest_checkpoint_falls_back_to_the_previous_one(tmp_path, tiny_config, damaged):
    whole = Trainer(tiny_config, tmp_path / "whole")
    whole.fit()
    Trainer(tiny_config, tmp_path / "run").fit()
    latest = tmp_path / "run" / "checkpoints" / "step-0000006"
    data = (latest / damaged).read_bytes()
    (latest / damaged).write_bytes(data[: len(data) // 2])  # a write cut short
    with pytest.warns(RuntimeWarning, match="step-0000006 is unreadable"):
        resumed = Trainer(tiny_config, tmp_path / "run", resume=True)
    assert resumed.step == 3 and (latest.parent / "step-0000006.unreadable").is_dir()
    resumed.fit()
    a, b = _state(whole), _state(resumed)
    assert all(torch.equal(a[key], b[key]) for key in a)


def test_keep_checkpoints_keeps_the_newest(tmp_path, tiny_config):
    config = _config(tiny_config, checkpoint_every=1, keep_checkpoints=2)
    Trainer(config, tmp_path / "run").fit()
    names = [p.name for p in find_checkpoints(tmp_path / "run")]
    assert names == ["step-0000005", "step-0000006"]


def test_an_unwritable_or_full_run_folder_is_an_error_before_training(
    tmp_path, tiny_config, monkeypatch
):
    (tmp_path / "a-file").write_text("")
    with pytest.raises(ValueError, match="a-file/run: cannot write there"):
        Trainer(tiny_config, tmp_path / "a-file" / "run")
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage._replace(free=1000))
    with pytest.raises(ValueError, match=r"0 MiB free on its disk, but two checkpoints"):
        Trainer(tiny_config, tmp_path / "full")


def test_a_model_with_nonfinite_weights_is_refused_for_sampling(tmp_path, tiny_config):
    checkpoint = Trainer(tiny_config, tmp_path / "run").fit()
    weights = load_file(checkpoint / "ema.safetensors")
    save_file({k: v * float("nan") for k, v in weights.items()}, checkpoint / "ema.safetensors")
    with pytest.raises(ValueError, match="its ema weights hold NaN/Inf"):
        load_model(checkpoint, "cpu")


@pytest.mark.parametrize("kill_after", ["step-0000010", "step-0000020"])
def test_a_sigkilled_run_resumes_to_the_weights_of_an_unbroken_one(tmp_path, kill_after):
    """A real `ddpmkit train` process is killed with SIGKILL once a checkpoint has appeared (the
    next one may be half-written), then resumed: the final weights equal an unbroken run's."""
    flags = ["--preset", "toy2d", "--quiet", "--train.steps", "60", "--train.checkpoint_every",
             "10", "--train.log_every", "5", "--diffusion.num_steps", "60",
             "--sample.num_samples", "8"]  # fmt: skip
    run = tmp_path / "killed"
    command = [sys.executable, "-m", "ddpmkit", "train", "--out", str(run), *flags]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (run / "checkpoints" / kill_after).exists() and process.poll() is None:
        assert time.monotonic() < deadline, "the run never reached its checkpoint"
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert main(["train", "--resume", "--out", str(run), *flags]) == 0
    assert main(["train", "--out", str(tmp_path / "whole"), *flags]) == 0
    name = "checkpoints/step-0000060/model.safetensors"
    killed, whole = load_file(run / name), load_file(tmp_path / "whole" / name)
    assert all(torch.equal(killed[k], whole[k]) for k in whole)
    steps = [row["step"] for row in _rows(run)]
    assert steps == sorted(set(steps), key=int)  # no duplicate or missing log rows


def _gradient(trainer: Trainer) -> torch.Tensor:
    order = StepBatches(len(trainer.dataset), trainer.config.train.batch_size, seed=3)
    trainer.train_step(*next(batch_stream(trainer.dataset, order)))
    return torch.cat([p.grad.flatten() for p in trainer.network.parameters()])


def test_gradient_accumulation_takes_the_step_of_the_whole_batch(tmp_path, tiny_config):
    """Four micro-batches of 4 take the step of batches of 16: the step's flips, label dropout,
    t and ε are drawn once for the whole batch and sliced per micro-batch, and the micro-losses
    are divided by 4. Only float sums are ordered differently: the gradient agrees to ~1e-6 of
    its largest entry (bound 1e-5). AdamW divides by √v, so entries whose gradient is nearly 0
    can move by up to lr = 1e-3 on rounding alone: after six steps the weights agree to ~2e-5
    (bound 1e-4, a tenth of one step's largest change) while training moved them by ~5e-3.
    Network dropout draws per forward pass, so it is off in this comparison."""
    unet = dataclasses.replace(tiny_config.model.unet, dropout=0.0)
    model = dataclasses.replace(
        tiny_config.model, unet=unet, class_conditional=True, label_dropout=0.3
    )
    config = dataclasses.replace(tiny_config, model=model)
    accumulated = _config(config, grad_accum=4)
    whole, parts = (
        _gradient(Trainer(config, tmp_path / "g1")),
        _gradient(Trainer(accumulated, tmp_path / "g4")),
    )
    assert float((whole - parts).abs().max()) < 1e-5 * float(whole.abs().max())

    start = Trainer(config, tmp_path / "start").network.state_dict()
    one, four = Trainer(config, tmp_path / "one"), Trainer(accumulated, tmp_path / "four")
    one.fit()
    four.fit()
    a, b = one.network.state_dict(), four.network.state_dict()
    moved = max(float((a[k] - start[k]).abs().max()) for k in a)
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-4 < moved
    assert torch.equal(one.generator.get_state(), four.generator.get_state())
    # the micro-batching may change when a run resumes: it is not part of the mathematics
    longer = _config(config, grad_accum=2, steps=8)
    assert Trainer(longer, tmp_path / "four", resume=True).step == 6
    with pytest.raises(ValueError, match=r"divisible by train\.grad_accum = 3"):
        _config(config, grad_accum=3)


def test_a_file_damaged_mid_run_stops_with_its_name_and_the_run_resumes(tmp_path, tiny_config):
    folder = tmp_path / "images"
    folder.mkdir()
    for i, image in enumerate(digits_arrays("train")[0][:32]):
        pixels = ((image[0] + 1) * 127.5).round().numpy().astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"{i:02d}.png")
    data = DataConfig(source="folder", path=str(folder), image_size=8, channels=1)
    config = dataclasses.replace(tiny_config, data=data)
    trainer = Trainer(config, tmp_path / "run")
    victim = folder / "05.png"
    kept = victim.read_bytes()
    victim.write_bytes(kept[: len(kept) // 2])  # damaged after the start-up check
    with pytest.raises(ValueError, match=r"step \d: cannot read image .*05\.png.*training stopped"):
        trainer.fit()
    victim.write_bytes(kept)
    resumed = Trainer(config, tmp_path / "run", resume=True)
    resumed.fit()
    assert resumed.step == config.train.steps


def test_tensorboard_and_summary_logs(tmp_path, tiny_config):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    config = _config(tiny_config, tensorboard=True, sample_every=3)
    Trainer(config, tmp_path / "run").fit()
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard")).Reload()
    tags = events.Tags()
    assert {"train/loss", "train/loss_q0", "train/lr", "train/grad_norm",
            "train/images_per_second"} <= set(tags["scalars"])  # fmt: skip
    rows = _rows(tmp_path / "run")
    logged = [(e.step, e.value) for e in events.Scalars("train/loss")]
    assert logged == [(int(r["step"]), pytest.approx(float(r["loss"]), rel=1e-5)) for r in rows]
    assert [e.step for e in events.Images("samples")] == [3, 6]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["step"] == 6 and summary["last_session"]["steps"] == 6
    assert summary["checkpoint"].endswith("step-0000006")
    assert summary["last_log_row"]["step"] == 6


@pytest.mark.parametrize(
    ("parameterization", "loss"),
    [("score", "simple"), ("mean", "simple"), ("mean", "vlb"), ("eps", "vlb"), ("v", "vlb")],
)
def test_every_parameterization_trains_and_samples(tmp_path, parameterization, loss):
    """Selectable from the command line, with L_simple or the true bound (fixed σ_t² = β_t)."""
    run = tmp_path / "run"
    args = ["train", "--preset", "toy2d", "--out", str(run), "--quiet", "--train.steps", "30",
            "--train.checkpoint_every", "30", "--diffusion.num_steps", "50",
            "--diffusion.parameterization", parameterization, "--diffusion.loss", loss,
            "--sample.num_samples", "64", "--sample.sampler", "ddim", "--sample.steps", "10"]  # fmt: skip
    assert main(args) == 0
    rows = _rows(run)
    assert all(math.isfinite(float(r["loss"])) for r in rows)
    samples = np.load(run / "samples" / "step-0000030.npz")["samples"]
    assert samples.shape == (64, 2) and np.isfinite(samples).all()
    config = json.loads((run / "config.json").read_text())["diffusion"]
    assert (config["parameterization"], config["loss"]) == (parameterization, loss)


def test_cosine_learning_rate_falls_from_the_peak_to_zero_after_the_warm_up():
    assert learning_rate(9, 1.0, 10, "cosine", 110) == 1.0  # the warm-up's last step
    assert learning_rate(60, 1.0, 10, "cosine", 110) == pytest.approx(0.5)
    assert learning_rate(35, 1.0, 10, "cosine", 110) == pytest.approx((1 + math.sqrt(0.5)) / 2)
    assert learning_rate(110, 1.0, 10, "cosine", 110) == pytest.approx(0.0)
