"""train.minutes and automatic sizing: the plan's arithmetic, a run that plans itself, writes the
plan and resumes it without planning again, and the ladder a model is chosen from."""

import dataclasses
import json
import math

import pytest
import torch

from ddpmkit import PRESETS, RunConfig, TrainConfig, Trainer, UNetConfig
from ddpmkit.cli.main import main
from ddpmkit.config.parsing import from_dict, merge
from ddpmkit.storage.checkpoints import read_config
from ddpmkit.training import sizing
from ddpmkit.training.budget import PROBE_STEPS, half_life, plan_run
from ddpmkit.training.ema import EMA, warmup_decay
from ddpmkit.training.run_folder import PLAN_FILE
from ddpmkit.training.sizing import levels_for, rung


def test_the_plan_fills_the_budget_left_after_the_sample_grids():
    """A 5 s grid in a 60 s budget: one grid half-way (10% of the budget pays for one) and the
    final one are paid for; every step is logged (fewer than 100 rows otherwise)."""
    train = TrainConfig(minutes=1.0, warmup_steps=100, steps=10_000)
    plan = plan_run(train, steps_done=11, elapsed=10.0, seconds_per_step=0.5, sample_seconds=5.0)
    assert plan.train.steps == 11 + int((60 - 10 - 2 * 5) / 0.5)
    assert plan.train.sample_every == math.ceil(plan.train.steps / 2)
    assert plan.train.log_every == 1
    assert plan.train.warmup_steps == int(0.05 * plan.train.steps)  # ≤ 5% of the run
    assert plan.train.ema_decay**plan.ema_half_life == pytest.approx(0.5)
    steps = plan.train.steps
    assert plan.train.ema_decay == pytest.approx((1 + steps) / (10 + steps))  # the warm-up's
    assert plan.ema_half_life == pytest.approx(math.log(2) / 9 * (steps + 5.5), rel=0.01)
    assert plan.train.checkpoint_every == math.ceil(plan.train.steps / 4)
    assert plan.train.minutes == 1.0 and plan.train.lr == train.lr


def test_the_plan_respects_the_step_cap_and_always_takes_one_more_step():
    capped = plan_run(
        TrainConfig(minutes=60.0, steps=500),
        steps_done=11, elapsed=1.0, seconds_per_step=0.01, sample_seconds=0.0,
    )  # fmt: skip
    assert capped.train.steps == 500
    # no time to sample counted: a grid at every checkpoint; 100 log rows of the 500 steps
    assert capped.train.sample_every == capped.train.checkpoint_every == 125
    assert capped.train.log_every == 5
    late = plan_run(
        TrainConfig(minutes=0.1), steps_done=11, elapsed=30.0, seconds_per_step=1.0,
        sample_seconds=10.0,
    )  # fmt: skip
    assert late.train.steps == 12
    with pytest.raises(ValueError, match="minutes"):
        plan_run(TrainConfig(), steps_done=1, elapsed=0.0, seconds_per_step=1.0, sample_seconds=0.0)


def test_half_life_is_where_the_decay_reaches_one_half():
    assert 0.9 ** half_life(0.9) == pytest.approx(0.5)
    assert half_life(0.5) == pytest.approx(1.0)


def test_the_planned_ema_is_the_warm_up_average_all_the_way():
    """The plan's decay is the warm-up's at the last step, so min(decay, warm-up) is the
    warm-up's at every step: the planned run averages exactly as an uncapped warm-up would."""
    train = TrainConfig(minutes=1.0, steps=10_000)
    plan = plan_run(train, steps_done=1, elapsed=0.0, seconds_per_step=0.2, sample_seconds=0.0)
    ema = EMA(torch.nn.Linear(1, 1), plan.train.ema_decay, warmup=True)
    for n in range(plan.train.steps):
        assert ema.current_decay() == warmup_decay(n + 1)
        ema.num_updates += 1


@pytest.mark.parametrize("minutes", [-1.0, 0.0, float("inf")])
def test_train_minutes_must_be_positive_and_finite(minutes):
    with pytest.raises(ValueError, match=r"train\.minutes"):
        TrainConfig(minutes=minutes)


def tiny_budget_run(minutes):
    values = merge(
        PRESETS["digits"],
        {
            "model": {"unet": {"base_channels": 8, "norm_groups": 4}},
            "train": {"minutes": minutes, "batch_size": 16, "precision": "fp32", "steps": 40},
            "sample": {"num_samples": 4, "batch_size": 4, "sampler": "ddim", "steps": 3},
        },
    )
    return from_dict(RunConfig, values)


def test_a_budget_run_plans_after_its_probe_and_resumes_its_plan(tmp_path):
    """A budget far beyond what 40 steps need: the plan is capped at train.steps = 40, written
    to config.json and plan.json, and a resumed run takes it over instead of planning anew."""
    config = tiny_budget_run(minutes=30.0)
    trainer = Trainer(config, tmp_path / "run")
    trainer.fit()
    assert trainer.plan is not None and trainer.step == 40
    saved = read_config(tmp_path / "run").train
    assert saved == trainer.plan.train and saved.steps == 40
    assert saved.warmup_steps == 2 and saved.checkpoint_every == 10
    figures = json.loads((tmp_path / "run" / PLAN_FILE).read_text())
    assert figures["seconds_per_step"] > 0 and figures["sample_seconds"] > 0
    assert (tmp_path / "run" / "samples").glob("*.png")
    resumed = Trainer(config, tmp_path / "run", resume=True)
    assert resumed.plan == trainer.plan and resumed.config.train.steps == 40
    assert resumed.step == 40  # nothing left to do, nothing re-planned


def test_a_tight_budget_stops_soon_after_the_probe(tmp_path):
    """A budget already spent when the probe ends: one more step, then the samples."""
    trainer = Trainer(tiny_budget_run(minutes=1e-4), tmp_path / "run")
    trainer.fit()
    assert trainer.step == PROBE_STEPS + 2  # one untimed step, PROBE_STEPS timed, one more


def test_the_ladder_has_levels_down_to_about_four_pixels():
    assert [levels_for(n) for n in (8, 28, 32, 64, 7)] == [2, 3, 4, 4, 1]
    unet = rung((1, 28, 28), 64, 1, 1)  # 2×2 patches: levels at 14 and 7
    assert unet.patch_size == 2 and unet.level_resolutions == (14, 7)
    assert unet.channel_mults == (1, 2) and unet.attention_resolutions == (7,)
    small = rung((1, 8, 8), 16, 1, 1)  # too small for patches
    assert small.patch_size == 1 and small.level_resolutions == (8, 4)
    assert rung((3, 32, 32), 16, 1, 0).level_resolutions == (16, 8, 4)
    assert rung((3, 32, 32), 16, 1, 0).attention_resolutions == ()
    assert rung((1, 18, 30), 16, 1, 0).patch_size == 2
    assert rung((1, 17, 32), 16, 1, 0).patch_size == 1  # an odd side


def test_sizing_takes_the_largest_rung_that_trains_enough_steps(monkeypatch):
    """With made-up step times (tiny 0.1 s, each rung twice the last) the budget holds 1.5×
    MIN_STEPS steps of tiny, 0.75× of small: tiny is chosen, and the rungs above are not timed."""
    timed = []

    def fake_time(config, batch, device, precision):
        timed.append(config.base_channels)
        return 0.1 * 2 ** (len(timed) - 1)

    monkeypatch.setattr(sizing, "seconds_per_step", fake_time)
    budget = 1.5 * sizing.MIN_STEPS * 0.1
    chosen = sizing.choose_network((1, 32, 32), budget, 32, torch.device("cpu"), "fp32")
    assert chosen.name == "tiny" and chosen.kind == "unet" and timed == [16, 32]
    assert chosen.expected_steps == pytest.approx(1.5 * sizing.MIN_STEPS)
    assert chosen.parameters == sum(
        p.numel() for p in sizing.network_of(chosen.network).parameters()
    )
    timed.clear()
    assert sizing.choose_network((1, 8, 8), 1e6, 32, torch.device("cpu"), "fp32").name == "xl"


@pytest.mark.parametrize(
    ("shape", "mlp", "expected"),
    [((1, 8, 8), True, "mlp-small"), ((1, 8, 8), False, "tiny"), ((1, 16, 16), True, "tiny")],
)
def test_a_tiny_image_gets_the_mlp_when_no_unet_trains_enough_steps(
    monkeypatch, shape, mlp, expected
):
    """U-Net steps of 1 s leave 0.15× MIN_STEPS in the budget, MLP steps of 0.1 s (doubling per
    rung) 1.5× for the first: an 8×8 image takes mlp-small, unless the MLP is ruled out (text
    conditioning) or the image has more than MLP_MAX_VALUES values."""
    timed = []

    def fake_time(config, batch, device, precision):
        timed.append(type(config).__name__)
        if isinstance(config, UNetConfig):
            return 1.0
        return 0.1 * 2 ** (timed.count("MLPConfig") - 1)

    monkeypatch.setattr(sizing, "seconds_per_step", fake_time)
    budget = 1.5 * sizing.MIN_STEPS * 0.1
    chosen = sizing.choose_network(shape, budget, 32, torch.device("cpu"), "fp32", mlp=mlp)
    assert chosen.name == expected
    assert timed[0] == "UNetConfig"  # the U-Nets are tried first; tiny does not fit
    if chosen.kind == "mlp":
        assert chosen.network.dim == math.prod(shape)
        assert timed[1:] == ["MLPConfig", "MLPConfig"]
        assert chosen.expected_steps == pytest.approx(1.5 * sizing.MIN_STEPS)
    else:
        assert timed == ["UNetConfig"]


def test_an_mlp_rung_sees_the_whole_image():
    assert sizing.MLP_MAX_VALUES == 64 and sizing.mlp_rung((1, 8, 8), 256, 2).dim == 64
    assert sizing.mlp_rung((3, 4, 4), 256, 2).dim == 48


def test_the_batch_doubles_while_images_per_second_grow_by_a_quarter(monkeypatch):
    """Made-up step times: a CPU whose step time grows with the batch (images/s flat) keeps 32;
    a device with a fixed cost per step fills up to the cap; one whose images/s grow by 1.5× per
    doubling up to 128 and 1.1× after stops at 128; a budget too short for MIN_STEPS steps of
    the doubled batch keeps the smaller one. Sizing reports the batch it timed."""
    cases = [
        (lambda b: 0.007 * b, sizing.FIRST_BATCH),
        (lambda b: 0.05, sizing.MAX_BATCH),
        (lambda b: 0.05 * (2 / 1.5) ** math.log2(b / 32) * (2 / 1.1 if b > 128 else 1), 128),
    ]
    config = rung((1, 8, 8), 16, 1, 0)
    for seconds, expected in cases:
        monkeypatch.setattr(sizing, "seconds_per_step", lambda c, b, d, p, s=seconds: s(b))
        batch, per_step = sizing.batch_for(config, 1e3, torch.device("cpu"), "fp32")
        assert batch == expected and per_step == pytest.approx(seconds(batch))
    mlp = sizing.mlp_rung((1, 8, 8), 256, 2)  # an MLP starts from a larger batch
    assert sizing.batch_for(mlp, 1e3, torch.device("cpu"), "fp32")[0] == sizing.MLP_FIRST_BATCH
    # the budget holds 1.2× MIN_STEPS of batch 32 (0.05 s) but 0.9× of batch 64 (0.0667 s)
    budget = 1.2 * sizing.MIN_STEPS * 0.05
    assert sizing.batch_for(config, budget, torch.device("cpu"), "fp32")[0] == 32
    chosen = sizing.choose_network((1, 32, 32), 1e3, None, torch.device("cpu"), "fp32")
    assert chosen.batch == 128 and chosen.seconds_per_step == pytest.approx(cases[2][0](128))


def test_an_automatic_batch_needs_automatic_sizing():
    with pytest.raises(ValueError, match=r"model\.auto_size"):
        from_dict(RunConfig, {"train": {"batch_size": 0}})
    sized = from_dict(RunConfig, {"train": {"batch_size": 0}, "model": {"auto_size": True}})
    assert sized.train.batch_size == 0


def test_a_command_without_a_model_is_sized_and_vectors_get_the_mlp(tmp_path, capsys):
    flags = ["--train.steps", "2", "--train.batch_size", "8", "--train.precision", "fp32",
             "--train.minutes", "0.01", "--sample.num_samples", "2", "--sample.steps", "2",
             "--sample.sampler", "ddim", "--quiet"]  # fmt: skip
    assert main(["train", "--out", str(tmp_path / "img"), *flags]) == 0
    assert "model sized for the data" in capsys.readouterr().out
    saved = read_config(tmp_path / "img").model
    assert saved.auto_size is False and saved.kind == "mlp"  # the choice is recorded:
    assert saved.mlp.dim == 64 and saved.sample_shape == (1, 8, 8)  # 8×8 digits get the MLP
    assert main(["sample", str(tmp_path / "img"), "--num_samples", "2", "--steps", "2",
                 "--out", str(tmp_path / "drawn.png")]) == 0  # fmt: skip
    assert (tmp_path / "drawn.png").is_file()
    assert read_config(tmp_path / "img").sample.clip_x0 is False  # the quick recipe's sampling
    assert main(["train", "--out", str(tmp_path / "img"), "--resume", *flags]) == 0
    vectors = ["--data.source", "toy2d", "--data.toy_size", "64"]
    assert main(["train", "--out", str(tmp_path / "toy"), *vectors, *flags]) == 0
    assert read_config(tmp_path / "toy").model.kind == "mlp"
    unbatched = [flag for flag in flags if flag not in ("--train.batch_size", "8")]
    assert main(["train", "--out", str(tmp_path / "auto"), *unbatched]) == 0
    batch = read_config(tmp_path / "auto").train.batch_size  # chosen with the model, recorded
    assert batch >= sizing.FIRST_BATCH and batch & (batch - 1) == 0
    assert main(["train", "--out", str(tmp_path / "toy-auto"), *vectors, *unbatched]) == 0
    assert read_config(tmp_path / "toy-auto").train.batch_size == 64  # all the 64 points


def _stand_in_compiler(monkeypatch) -> list[int]:
    """torch.compile replaced by eager calls that are counted (a real compilation takes a minute;
    tests/test_execution.py's slow test compares a real one with eager)."""
    calls: list[int] = []

    def compile(network, **options):
        def compiled(*args, **kwargs):
            calls.append(1)
            return network(*args, **kwargs)

        return compiled

    monkeypatch.setattr(torch, "compile", compile)
    return calls


def _compiling_trainer(config: RunConfig, folder) -> Trainer:
    """A trainer whose train.compile auto decision compiles whatever the work left, and keeps
    the compiled graph whatever its timing."""
    trainer = Trainer(config, folder)
    assert trainer.compile_decision is not None
    trainer.compile_decision.expected_compile_seconds = 0.0
    trainer.compile_decision.margin = -1e9
    return trainer


def test_train_compile_auto_times_steps_then_plans_on_the_mode_it_keeps(tmp_path, monkeypatch):
    """train.compile auto (the default) in a budget run: warm-up and eager steps, a compiling
    step and compiled ones are timed for the decision before the planner times anything, and
    the decision is written to summary.json."""
    compiled_calls = _stand_in_compiler(monkeypatch)
    config = tiny_budget_run(minutes=30.0)
    assert config.train.compile == "auto"
    trainer = _compiling_trainer(config, tmp_path / "auto")
    trainer.fit()
    decision = trainer.compile_decision
    assert decision is not None and decision.state == "decided" and decision.use_compiled
    assert len(compiled_calls) == 40 - 1 - decision.trials  # every step after the eager ones
    assert trainer.plan is not None and trainer.step == 40
    # planned after the decision's 1 + 2 × trials + 1 steps and PROBE_STEPS + 1 more
    assert trainer.plan.seconds_per_step > 0
    summary = json.loads((tmp_path / "auto" / "summary.json").read_text())
    assert summary["compile"].startswith("compiled: compiled units ran")


def test_compiled_steps_save_the_weights_eager_steps_save(tmp_path, monkeypatch):
    """A compiled run's checkpoint is the eager run's: the same names, and with a stand-in
    compiler that computes eagerly the same values, bit for bit."""
    _stand_in_compiler(monkeypatch)
    base = tiny_budget_run(minutes=None)
    config = dataclasses.replace(base, train=dataclasses.replace(base.train, steps=12))
    auto = _compiling_trainer(config, tmp_path / "auto")
    auto.fit()
    assert auto.compile_decision is not None and auto.compile_decision.use_compiled
    eager_train = dataclasses.replace(config.train, compile=False)
    eager = Trainer(dataclasses.replace(config, train=eager_train), tmp_path / "eager")
    assert eager.compile_decision is None
    eager.fit()
    for (name, a), (_, b) in zip(
        auto.network.state_dict().items(), eager.network.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name


def test_train_compile_auto_stays_eager_in_a_short_run(tmp_path, monkeypatch):
    compiled_calls = _stand_in_compiler(monkeypatch)
    trainer = Trainer(tiny_budget_run(minutes=1e-4), tmp_path / "run")
    trainer.fit()
    assert trainer.compile_decision is not None and not trainer.compile_decision.use_compiled
    assert compiled_calls == [] and trainer.step == PROBE_STEPS + 2
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["compile"].startswith("eager: 0 s of work left")
