"""Autoguidance's weaker model (Karras et al. 2024): a checkpoint named by ``sample.guide``, or
by default the same run's checkpoint nearest half the sampled model's steps — trained the same
way for less long, so it errs the same way but more."""

from __future__ import annotations

from pathlib import Path

from ddpmkit.config.builders import class_labels_of
from ddpmkit.pipeline.checkpoints import find_checkpoints, step_of
from ddpmkit.pipeline.model import TrainedModel, load_model, outputs_folder_of


def guide_checkpoint(run_dir: Path, step: int) -> Path | None:
    """The run's checkpoint before ``step`` whose step is nearest step/2 (the earlier of two
    equally near); None when the run has none before it."""
    earlier = [c for c in find_checkpoints(run_dir) if (step_of(c.name) or 0) < step]
    if not earlier:
        return None
    return min(earlier, key=lambda c: (abs(2 * (step_of(c.name) or 0) - step), c.name))


def default_guide(model: TrainedModel) -> Path | None:
    """The default guide of a model read from a run's checkpoint folder; None when the run has
    no checkpoint before it."""
    checkpoint = model.checkpoint
    run_dir = outputs_folder_of(checkpoint) if checkpoint is not None else None
    step = step_of(checkpoint.name) if checkpoint is not None else None
    if run_dir is None or run_dir == checkpoint or step is None:
        raise ValueError(
            f"sample.autoguidance needs sample.guide (a checkpoint folder): {checkpoint or 'the model'}"
            " is not a checkpoint of a run whose earlier checkpoints could guide it"
        )
    return guide_checkpoint(run_dir, step)


def load_guide(model: TrainedModel, guide: str | Path | None = None) -> TrainedModel | None:
    """The weaker model for ``model``: the checkpoint ``guide`` (or the run's default; None if the
    run has none before the model), its EMA weights on the model's device; it must draw the same
    shape under the same conditioning."""
    folder = Path(guide) if guide is not None else default_guide(model)
    if folder is None:
        return None
    weak = load_model(folder, str(model.device), "ema")
    if weak.shape != model.shape:
        raise ValueError(
            f"sample.guide {folder}: it draws {weak.shape}, the model sampled draws {model.shape}"
        )
    conditioning = class_labels_of(weak.config.model), weak.captions is None
    if conditioning != (class_labels_of(model.config.model), model.captions is None):
        raise ValueError(
            f"sample.guide {folder}: its class or text conditioning differs from the model's"
        )
    return weak
