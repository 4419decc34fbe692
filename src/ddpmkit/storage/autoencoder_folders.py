"""Autoencoder folders: a ddpmkit `Autoencoder` is saved as a diffusers ``AutoencoderKL``
folder (``config.json`` + ``diffusion_pytorch_model.safetensors``), which diffusers'
``AutoencoderKL.from_pretrained`` loads, and diffusers' folders load back (a bare ``AutoencoderKL``
folder, or a pipeline folder with a ``vae/`` subfolder). Only safetensors weights are read: a
``.bin`` file is a pickle, which would run code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor

from ddpmkit.files import write_atomically, write_text_atomically
from ddpmkit.networks.autoencoder import Autoencoder
from ddpmkit.networks.diffusers_autoencoder import (
    autoencoder_config_from_diffusers,
    diffusers_config_from_autoencoder,
)
from ddpmkit.storage.diffusers_folders import DIFFUSERS_VERSION, WEIGHTS

__all__ = [
    "RUN_AUTOENCODER",
    "load_autoencoder",
    "run_autoencoder",
    "run_autoencoder_folder",
    "save_autoencoder",
]

RUN_AUTOENCODER = "autoencoder"
"""The sub-folder of a latent run that holds its autoencoder (a diffusers AutoencoderKL folder)."""
CONFIG = "config.json"
METADATA_KEY = "ddpmkit"
"""The config.json key under which ``save_autoencoder``'s ``extra`` is stored."""


def save_autoencoder(
    model: Autoencoder,
    folder: Path,
    *,
    sample_size: int,
    extra: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> None:
    """Write ``model`` as a diffusers ``AutoencoderKL`` folder; ``extra`` (JSON-serialisable
    training metadata) goes under ``config.json["ddpmkit"]``.

    Each file is written to a temporary file and moved into place. A non-empty ``folder`` is only
    written into with ``overwrite=True`` (else ``FileExistsError``).
    """
    folder = Path(folder)
    if folder.is_dir() and any(folder.iterdir()) and not overwrite:
        raise FileExistsError(f"{folder} exists and is not empty; pass overwrite=True to replace")
    config = {
        **diffusers_config_from_autoencoder(model.config, sample_size=sample_size),
        "_diffusers_version": DIFFUSERS_VERSION,
    }
    if extra is not None:
        config[METADATA_KEY] = extra
    text = json.dumps(config, indent=2) + "\n"
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    folder.mkdir(parents=True, exist_ok=True)
    write_atomically(
        folder / WEIGHTS,
        lambda path: save_file(tensors, path, {"format": "pt"}),
        overwrite=True,
    )
    write_text_atomically(folder / CONFIG, text, overwrite=True)


def load_autoencoder(folder: Path | str) -> Autoencoder:
    """The `Autoencoder` of an ``AutoencoderKL`` folder (or of a pipeline folder's
    ``vae/``), weights loaded with ``strict=True``, in eval mode.

    Errors name the file: ``FileNotFoundError`` for a missing config or weights file,
    ``ValueError`` for unreadable JSON, an unsupported config or weights that do not fit.
    """
    root = _locate(Path(folder))
    config_path = root / CONFIG
    content = _read_json(config_path)
    try:
        config = autoencoder_config_from_diffusers(content)
    except ValueError as error:
        raise ValueError(f"{config_path}: {error}") from None
    model = Autoencoder(config)
    state = _read_weights(root / WEIGHTS)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise ValueError(f"{root / WEIGHTS} does not fit {config_path}: {error}") from None
    return model.eval()


def _locate(folder: Path) -> Path:
    """The folder holding the autoencoder's config.json: ``folder`` itself or ``folder/vae``."""
    for candidate in (folder, folder / "vae"):
        if (candidate / CONFIG).is_file():
            return candidate
    raise FileNotFoundError(f"{folder / CONFIG} is missing (and so is {folder / 'vae' / CONFIG})")


def _read_json(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``; ValueError naming the file otherwise."""
    try:
        content = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"cannot read {path}: {error}") from None
    if not isinstance(content, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(content).__name__}")
    return content


def _read_weights(path: Path) -> dict[str, Tensor]:
    """The tensors of a safetensors file; FileNotFoundError or ValueError naming the file."""
    if not path.is_file():
        found = sorted(p.name for p in path.parent.glob("diffusion_pytorch_model*"))
        raise FileNotFoundError(
            f"{path} is missing (found {found or 'no weights'}; only safetensors are read: a "
            ".bin is a pickle, which would run code)"
        )
    try:
        return load_file(path)
    except (OSError, SafetensorError) as error:
        raise ValueError(f"cannot read {path}: {error}") from None


def run_autoencoder_folder(run_folder: Path, configured: str | None) -> Path:
    """The folder of a latent run's autoencoder: the copy in the run folder, else the configured
    one (its existence is the reader's to check)."""
    copy = run_folder / RUN_AUTOENCODER
    if (copy / "config.json").is_file() or configured is None:
        return copy
    return Path(configured)


def run_autoencoder(run_folder: Path, configured: str | None) -> Autoencoder:
    """A latent run's autoencoder: the copy in the run folder, else the configured folder."""
    copy = run_folder / RUN_AUTOENCODER
    if (copy / "config.json").is_file():
        return load_autoencoder(copy)
    if configured is None:
        raise ValueError(f"{run_folder}: a latent model without model.autoencoder")
    if not Path(configured).exists():
        raise FileNotFoundError(
            f"the model's autoencoder is neither in {copy} nor at model.autoencoder = {configured}"
        )
    return load_autoencoder(configured)
