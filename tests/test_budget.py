"""train.minutes: the plan's arithmetic, and a run that plans itself, writes the plan and resumes
it without planning again."""

import json
import math

import pytest

from ddpmkit.config.parsing import from_dict, merge
from ddpmkit.config.presets import PRESETS
from ddpmkit.config.schema import RunConfig, TrainConfig
from ddpmkit.pipeline.checkpoints import read_config
from ddpmkit.training.budget import PROBE_STEPS, ema_decay_for, plan_run
from ddpmkit.training.loop import PLAN_FILE, Trainer


def test_the_plan_fills_the_budget_left_after_the_sample_grid():
    train = TrainConfig(minutes=1.0, warmup_steps=100, steps=10_000)
    plan = plan_run(train, steps_done=11, elapsed=10.0, seconds_per_step=0.5, sample_seconds=5.0)
    assert plan.train.steps == 11 + int((60 - 10 - 5) / 0.5)
    assert plan.train.warmup_steps == int(0.05 * plan.train.steps)  # ≤ 5% of the run
    assert plan.train.ema_decay**plan.ema_half_life == pytest.approx(0.5)
    assert plan.ema_half_life == pytest.approx(0.1 * plan.train.steps)
    assert plan.train.checkpoint_every == math.ceil(plan.train.steps / 4)
    assert plan.train.minutes == 1.0 and plan.train.lr == train.lr


def test_the_plan_respects_the_step_cap_and_always_takes_one_more_step():
    capped = plan_run(
        TrainConfig(minutes=60.0, steps=500),
        steps_done=11, elapsed=1.0, seconds_per_step=0.01, sample_seconds=0.0,
    )  # fmt: skip
    assert capped.train.steps == 500
    late = plan_run(
        TrainConfig(minutes=0.1), steps_done=11, elapsed=30.0, seconds_per_step=1.0,
        sample_seconds=10.0,
    )  # fmt: skip
    assert late.train.steps == 12
    with pytest.raises(ValueError, match="minutes"):
        plan_run(TrainConfig(), steps_done=1, elapsed=0.0, seconds_per_step=1.0, sample_seconds=0.0)


def test_ema_decay_halves_a_steps_weight_after_its_half_life():
    assert ema_decay_for(10.0) ** 10 == pytest.approx(0.5)
    assert ema_decay_for(0.1) == 0.5  # at least one step


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
