"""Checkpoints: safetensors tensors plus readable JSON, so loading one never runs code.

A checkpoint is a folder ``step-NNNNNNN/`` holding ``config.json`` (the complete, resolved
configuration), ``model.safetensors`` (the trained weights), ``ema.safetensors`` (the averaged
weights used for sampling), and ``training.safetensors`` + ``training.json`` (optimizer moments,
RNG states, step and counters) for resuming. It is written under a temporary name and renamed,
so a crash never leaves a half-written checkpoint behind.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from ddpmkit.config.parsing import from_dict, to_dict, upgrade
from ddpmkit.config.schema import RunConfig

CHECKPOINT_PREFIX = "step-"


@dataclass
class TrainingState:
    """Everything besides the weights that a resumed run needs to continue bit for bit."""

    step: int
    ema_updates: int
    optimizer: dict[str, Any]
    rng: dict[str, Tensor]
    timesteps: dict[str, Tensor] = field(default_factory=dict)  # the timestep sampler's history
    grad_scaler: dict[str, Any] = field(default_factory=dict)  # fp16 loss scale (empty otherwise)


class UnreadableCheckpointError(ValueError):
    """A checkpoint file that is truncated or not what its name says (the resumed run skips it)."""


def checkpoint_name(step: int) -> str:
    return f"{CHECKPOINT_PREFIX}{step:07d}"


def save_checkpoint(
    folder: Path, config: RunConfig, model: nn.Module, ema: nn.Module, state: TrainingState
) -> Path:
    """Write the checkpoint folder atomically; refuses to replace an existing one."""

    def write(partial: Path) -> None:
        _write_weights(partial, config, model, ema)
        tensors, meta = _flatten_optimizer(state.optimizer)
        tensors |= {f"rng.{name}": value for name, value in state.rng.items()}
        tensors |= {f"timesteps.{name}": value for name, value in state.timesteps.items()}
        save_file(_contiguous(tensors), partial / "training.safetensors")
        meta |= {"step": state.step, "ema_updates": state.ema_updates}
        if state.grad_scaler:
            meta["grad_scaler"] = state.grad_scaler
        (partial / "training.json").write_text(json.dumps(meta, indent=2) + "\n")

    return _write_folder(folder, write)


def save_weights(folder: Path, config: RunConfig, network: nn.Module) -> Path:
    """A checkpoint to sample from, without training state: the network as model and EMA."""
    return _write_folder(folder, lambda partial: _write_weights(partial, config, network, network))


def _write_weights(folder: Path, config: RunConfig, model: nn.Module, ema: nn.Module) -> None:
    (folder / "config.json").write_text(json.dumps(to_dict(config), indent=2) + "\n")
    save_file(_contiguous(model.state_dict()), folder / "model.safetensors")
    save_file(_contiguous(ema.state_dict()), folder / "ema.safetensors")


def _write_folder(folder: Path, write: Callable[[Path], None]) -> Path:
    """Fill ``folder`` through ``write`` under a temporary name, flush it, then rename it into
    place, so a crash never leaves a half-written folder; refuses to replace an existing one."""
    if folder.exists():
        raise FileExistsError(f"checkpoint {folder} already exists; refusing to overwrite it")
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    write(partial)
    _fsync_folder(partial)
    partial.rename(folder)
    _fsync(folder.parent)  # the rename itself survives a power loss
    return folder


def _fsync(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _fsync_folder(folder: Path) -> None:
    """Flush every file of ``folder`` and the folder itself to disk."""
    for path in folder.iterdir():
        _fsync(path)
    _fsync(folder)


def prune_checkpoints(run_dir: Path, keep: int) -> list[Path]:
    """Delete all but the newest ``keep`` complete checkpoints (keep = 0: none); returns them."""
    found = find_checkpoints(run_dir)
    doomed = found[:-keep] if 0 < keep < len(found) else []
    for folder in doomed:
        shutil.rmtree(folder)
    return doomed


def read_config(checkpoint: Path) -> RunConfig:
    """The run configuration stored with a checkpoint."""
    path = Path(checkpoint) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{checkpoint} is not a ddpmkit checkpoint: {path} is missing")
    try:
        values = json.loads(path.read_text())
    except (json.JSONDecodeError, RecursionError) as error:
        reason = "nested too deeply" if isinstance(error, RecursionError) else str(error)
        raise ValueError(f"{path}: not a readable config ({reason})") from None
    return from_dict(RunConfig, upgrade(values), str(path))


def load_weights(module: nn.Module, checkpoint: Path, which: str = "ema") -> None:
    """Load ``ema`` or ``model`` weights (safetensors) into ``module``, every key required."""
    path = Path(checkpoint) / f"{which}.safetensors"
    try:
        if not path.is_file():
            raise FileNotFoundError(f"{checkpoint} has no {path.name}")
        load_weights_file(module, path, "config.json")
    except FileNotFoundError:
        if Path(checkpoint).is_dir():
            raise
        raise FileNotFoundError(  # it held config.json a moment ago
            f"{checkpoint} was removed while it was read (a training run's "
            "train.keep_checkpoints prunes its older checkpoints); load a newer one"
        ) from None


def load_weights_file(module: nn.Module, path: Path, described_by: str) -> None:
    """Load a safetensors file into ``module``, every key required; errors name the file and
    the config (``described_by``) that built the module."""
    try:
        tensors = load_file(path, device="cpu")
    except SafetensorError as error:
        raise UnreadableCheckpointError(
            f"{path} is not a readable safetensors file ({error})"
        ) from None
    try:
        module.load_state_dict(tensors, strict=True)
    except RuntimeError as error:  # missing, unexpected or mis-shaped weights
        first = str(error).strip().splitlines()[1:2] or [str(error)]
        raise ValueError(
            f"{path}: the weights do not fit the network its {described_by} describes "
            f"({first[0].strip()}); was {described_by} edited?"
        ) from None


def load_training_state(checkpoint: Path) -> TrainingState:
    """Optimizer moments, RNG states and counters of a checkpoint."""
    try:
        tensors = load_file(Path(checkpoint) / "training.safetensors", device="cpu")
    except SafetensorError as error:
        raise UnreadableCheckpointError(f"{checkpoint}/training.safetensors: {error}") from None
    meta = json.loads((Path(checkpoint) / "training.json").read_text())
    rng = _with_prefix(tensors, "rng.")
    optimizer = _unflatten_optimizer(tensors, meta["optimizer_param_groups"])
    timesteps = _with_prefix(tensors, "timesteps.")
    return TrainingState(
        meta["step"], meta["ema_updates"], optimizer, rng, timesteps, meta.get("grad_scaler", {})
    )


def _with_prefix(tensors: dict[str, Tensor], prefix: str) -> dict[str, Tensor]:
    """The tensors whose key starts with ``prefix``, keyed without it."""
    return {k.removeprefix(prefix): v for k, v in tensors.items() if k.startswith(prefix)}


def find_checkpoints(run_dir: Path) -> list[Path]:
    """The complete checkpoints of a run folder (folders named ``step-NNNNNNN``), oldest first."""
    folder = Path(run_dir) / "checkpoints"
    found = [p for p in folder.glob(f"{CHECKPOINT_PREFIX}*") if p.is_dir() and step_of(p.name)]
    return sorted(found, key=lambda p: p.name)


def step_of(name: str) -> int | None:
    """N of a name ``step-NNNNNNN`` (a checkpoint folder, a sample file's stem); None otherwise."""
    match = re.fullmatch(rf"{CHECKPOINT_PREFIX}(\d+)", name)
    return int(match.group(1)) if match else None


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint folder, or a run folder (meaning its latest checkpoint)."""
    path = Path(path)
    if (path / "config.json").is_file() and (path / "ema.safetensors").is_file():
        return path
    found = find_checkpoints(path) if path.is_dir() else []
    if not found:
        raise FileNotFoundError(f"{path} is neither a checkpoint nor a run folder with checkpoints")
    return found[-1]


def _contiguous(tensors: dict[str, Tensor]) -> dict[str, Tensor]:
    return {k: v.detach().contiguous().cpu() for k, v in tensors.items()}


def _flatten_optimizer(state_dict: dict[str, Any]) -> tuple[dict[str, Tensor], dict[str, Any]]:
    tensors = {}
    for param_id, param_state in state_dict["state"].items():
        for name, value in param_state.items():
            tensors[f"optimizer.{param_id}.{name}"] = torch.as_tensor(value)
    return tensors, {"optimizer_param_groups": state_dict["param_groups"]}


def _unflatten_optimizer(
    tensors: dict[str, Tensor], param_groups: list[dict[str, Any]]
) -> dict[str, Any]:
    state: dict[int, dict[str, Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optimizer."):
            _, param_id, name = key.split(".", 2)
            state.setdefault(int(param_id), {})[name] = value
    for group in param_groups:
        for key, value in group.items():
            if isinstance(value, list) and key != "params":
                group[key] = tuple(value)
    return {"state": state, "param_groups": param_groups}
