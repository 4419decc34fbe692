"""Autoguidance's weaker model (Karras et al. 2024): a checkpoint named by ``sample.guide``, or
by default the same run's checkpoint nearest half the sampled model's steps — trained the same
way for less long, so it errs the same way but more."""

from __future__ import annotations

from pathlib import Path

from ddpmkit.config.builders import class_labels_of
from ddpmkit.config.schema import SampleConfig
from ddpmkit.storage.checkpoints import find_checkpoints, step_of
from ddpmkit.storage.model import TrainedModel, load_model


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
    source = model.source
    step = source.run_step if source is not None else None
    if source is None or step is None:
        raise ValueError(
            f"sample.autoguidance needs sample.guide (a checkpoint folder): {model.checkpoint or 'the model'}"
            " is not a checkpoint of a run whose earlier checkpoints could guide it"
        )
    return guide_checkpoint(source.outputs_folder, step)


def find_guide(
    model: TrainedModel, config: SampleConfig, run: tuple[Path, int] | None = None
) -> TrainedModel | None:
    """Autoguidance's weaker model for sampling ``model`` with ``config``: None when
    ``config.autoguidance`` is 1, else ``config.guide``, or the checkpoint nearest half the
    model's step in its run (``run``: the run folder and step of a model in training); None when
    the run has no checkpoint before it."""
    if config.autoguidance == 1.0:
        return None
    if config.guide is not None:
        return load_guide(model, config.guide)
    if run is None:
        return load_guide(model)
    folder = guide_checkpoint(*run)
    return None if folder is None else load_guide(model, folder)


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
