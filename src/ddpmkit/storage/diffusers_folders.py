"""diffusers model folders in and out, read and written as files (no diffusers import).

In: a pipeline folder (``model_index.json``, ``unet/``, ``scheduler/``) such as the public
``google/ddpm-cifar10-32``, or a bare ``UNet2DModel`` folder (``config.json`` +
``diffusion_pytorch_model.safetensors``) with a ``scheduler_config.json`` beside its files. The
U-Net is translated by ``networks.diffusers_compat``; the noise process by
`diffusion_config_from_scheduler`: ``num_train_timesteps``, ``beta_schedule`` (or
``trained_betas``), ``prediction_type`` and ``variance_type``, and the sample options
``clip_sample`` and ``thresholding``. Only safetensors weights are read: a ``.bin`` file is a
pickle, which would run code. Out: the same layout, which ``DDPMPipeline.from_pretrained`` loads.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from ddpmkit.config.schema import DiffusionConfig, ModelConfig, RunConfig, SampleConfig
from ddpmkit.core.parameterization import Parameterization
from ddpmkit.core.schedules import ReverseVariance
from ddpmkit.data import DataConfig
from ddpmkit.files import partial_folder
from ddpmkit.networks.diffusers_compat import diffusers_config_from, unet_config_from_diffusers
from ddpmkit.networks.diffusers_unet import (
    DiffusersUNet,
    diffusers_sample_shape,
    diffusers_unet_class,
    is_learned_variance,
)
from ddpmkit.storage.json_types import check_json_types

WEIGHTS = "diffusion_pytorch_model.safetensors"
CONFIG_NAME = "config.json"
SCHEDULER_CONFIG = "scheduler_config.json"
PREDICTIONS: dict[str, Parameterization] = {"epsilon": "eps", "sample": "x0", "v_prediction": "v"}
FIXED_VARIANCES: dict[str, ReverseVariance] = {
    "fixed_small": "beta_tilde",
    "fixed_small_log": "beta_tilde",
    "fixed_large": "beta",
    "fixed_large_log": "beta",
}
VARIANCE_EXPLODING_SCHEDULERS = ("ScoreSdeVeScheduler", "KarrasVeScheduler")
"""Scheduler classes without a β schedule: refused by name rather than read as VP."""
LABEL_DROPOUT_KEY = "_ddpmkit_label_dropout"
"""Written into a class-conditional U-Net's config.json: the model was trained with label dropout,
so its last class is the null class ∅ of classifier-free guidance (diffusers ignores the key)."""
DIFFUSERS_VERSION = "0.30.0"
"""The diffusers release whose file format the written folders follow (read by later ones)."""


@dataclasses.dataclass(frozen=True)
class DiffusersFolder:
    """Where a diffusers model's parts lie."""

    root: Path
    unet_config: Path
    weights: Path
    scheduler_config: Path


def is_diffusers_folder(path: str | Path) -> bool:
    """A pipeline folder (model_index.json) or a bare UNet2DModel folder (its config.json names
    the class)."""
    path = Path(path)
    if (path / "model_index.json").is_file():
        return True
    config = path / "config.json"
    return config.is_file() and '"UNet2DModel"' in config.read_text(errors="replace")


def locate(path: str | Path) -> DiffusersFolder:
    """The files of a diffusers pipeline or bare U-Net folder; errors name what is missing."""
    root = Path(path)
    if (root / "model_index.json").is_file():
        index = _read_json(root / "model_index.json")
        parts = {k for k, v in index.items() if not k.startswith("_") and v}
        extra = sorted(parts - {"unet", "scheduler"})
        if extra:
            raise ValueError(
                f"{root}/model_index.json: components {extra} are not read by ddpmkit (it reads "
                "unconditional pixel-space pipelines: unet + scheduler)"
            )
        unet, scheduler = root / "unet", root / "scheduler" / SCHEDULER_CONFIG
    else:
        unet, scheduler = root, root / SCHEDULER_CONFIG
    weights = unet / WEIGHTS
    if not weights.is_file():
        found = sorted(p.name for p in unet.glob("diffusion_pytorch_model*"))
        hint = (
            "; only safetensors are read (a .bin is a pickle, which would run code): convert it "
            "with diffusers' save_pretrained(..., safe_serialization=True)"
            if found
            else ""
        )
        raise FileNotFoundError(f"{weights} is missing (found {found or 'no weights'}){hint}")
    if not scheduler.is_file():
        raise FileNotFoundError(
            f"{scheduler} is missing: the noise schedule is read from it (put the pipeline's "
            f"scheduler/{SCHEDULER_CONFIG} beside the U-Net's config.json)"
        )
    return DiffusersFolder(root, unet / "config.json", weights, scheduler)


def scheduler_class(folder: DiffusersFolder) -> str:
    """The class named by the folder's scheduler config (read for the schedule whatever it is)."""
    return str(_read_json(folder.scheduler_config).get("_class_name", "an unnamed scheduler"))


def run_config_of(folder: DiffusersFolder) -> RunConfig:
    """The ddpmkit configuration of a diffusers model: its U-Net, noise process and sampling
    options, for 8-bit images (256 levels) of the U-Net's size.

    A DDPM-layout U-Net becomes ddpmkit's own `UNet`; any other ``UNet2DModel`` configuration
    runs through the installed diffusers (``model.kind`` "diffusers")."""
    unet_json = _read_json(folder.unet_config)
    scheduler_json = _read_json(folder.scheduler_config)
    check_json_types(unet_json, folder.unet_config)
    check_json_types(scheduler_json, folder.scheduler_config)
    diffusion, sample = diffusion_config_from_scheduler(
        scheduler_json, str(folder.scheduler_config)
    )
    model = _model_config(unet_json, folder.unet_config)
    learned = is_learned_variance(unet_json)
    if diffusion.learned_variance != learned:
        raise ValueError(
            f"{folder.scheduler_config}: variance_type {scheduler_json.get('variance_type')!r} "
            f"does not fit the U-Net's {unet_json.get('out_channels', 3)} output channels for "
            f"{unet_json.get('in_channels', 3)} input channels"
        )
    return RunConfig(
        data=DataConfig(num_levels=256), model=model, diffusion=diffusion, sample=sample
    )


def _model_config(unet_json: dict[str, Any], where: Path) -> ModelConfig:
    """ddpmkit's U-Net where it reproduces the layout, else the diffusers-backed network; a
    class embedding makes the model class-conditional (its null class, if ddpmkit wrote one)."""
    if unet_json.get("_class_name", "UNet2DModel") != "UNet2DModel":
        raise ValueError(
            f"{where}: expected a UNet2DModel config, got {unet_json['_class_name']!r}"
        )
    shape = diffusers_sample_shape(unet_json)
    dropout = float(unet_json.get(LABEL_DROPOUT_KEY, 0.0))
    classes = unet_json.get("num_class_embeds") is not None
    embedding = unet_json.get("class_embed_type")
    if embedding is not None and not (embedding == "timestep" and classes):
        raise ValueError(
            f"{where}: class_embed_type {embedding!r} without integer classes: ddpmkit "
            "conditions on labels 0 … K-1 (num_class_embeds, with class_embed_type null or "
            "'timestep'), not on vectors"
        )
    dropout = dropout if classes else 0.0
    try:
        unet = unet_config_from_diffusers(unet_json)
    except ValueError as native_refusal:
        try:
            diffusers_unet_class()
        except ImportError:
            raise ValueError(
                f"{where}: ddpmkit's U-Net does not reproduce this layout ({native_refusal}); "
                "any other UNet2DModel runs through diffusers: pip install 'ddpmkit[diffusers]'"
            ) from None
        text = json.dumps(unet_json, sort_keys=True)
        return ModelConfig(
            kind="diffusers", diffusers_unet=text, sample_shape=shape,
            class_conditional=classes, label_dropout=dropout,
        )  # fmt: skip
    return ModelConfig(
        kind="unet", unet=unet, sample_shape=shape, class_conditional=classes,
        label_dropout=dropout,
    )  # fmt: skip


def diffusion_config_from_scheduler(
    config: dict[str, Any], where: str
) -> tuple[DiffusionConfig, SampleConfig]:
    """The noise process of a diffusers scheduler config (DDPM, DDIM, PNDM, … share the keys)
    and the sample options it implies; unsupported values are errors naming the key."""

    def unsupported(key: str, why: str) -> ValueError:
        return ValueError(f"{where}: {key} = {config.get(key)!r} is not supported ({why})")

    kind = config.get("_class_name", "DDPMScheduler")
    if kind in VARIANCE_EXPLODING_SCHEDULERS:
        raise ValueError(
            f"{where}: {kind} describes a variance-exploding process (σ_min … σ_max), which "
            "ddpmkit does not read from diffusers folders; only β-schedule (DDPM-family) "
            "schedulers are read"
        )
    if config.get("rescale_betas_zero_snr", False):
        raise unsupported("rescale_betas_zero_snr", "ᾱ_T = 0 has no Gaussian prior")
    prediction = config.get("prediction_type", "epsilon")
    if prediction not in PREDICTIONS:
        raise unsupported("prediction_type", f"one of {sorted(PREDICTIONS)}")
    variance = config.get("variance_type") or "fixed_small"
    if variance not in (*FIXED_VARIANCES, "learned_range"):
        raise unsupported("variance_type", f"one of {sorted(FIXED_VARIANCES)} or learned_range")
    steps = int(config.get("num_train_timesteps", 1000))
    schedule = _schedule_fields(config, steps, unsupported)
    diffusion = DiffusionConfig(
        num_steps=steps,
        parameterization=PREDICTIONS[prediction],
        learned_variance=variance == "learned_range",
        loss="hybrid" if variance == "learned_range" else "simple",  # Improved DDPM's, for Σ_θ
        **schedule,
    )
    clip = bool(config.get("clip_sample", True))
    if clip and float(config.get("clip_sample_range", 1.0)) != 1.0:
        raise unsupported("clip_sample_range", "ddpmkit clips x̂_0 to [-1, 1]")
    threshold = None
    if config.get("thresholding", False):
        if float(config.get("sample_max_value", 1.0)) != 1.0:
            raise unsupported("sample_max_value", "dynamic thresholding bounds values at 1")
        threshold = float(config.get("dynamic_thresholding_ratio", 0.995))
    sample = SampleConfig(
        variance="learned" if variance == "learned_range" else FIXED_VARIANCES[variance],
        clip_x0=clip,
        dynamic_threshold=threshold,
    )
    return diffusion, sample


def _schedule_fields(
    config: dict[str, Any], steps: int, unsupported: Callable[[str, str], ValueError]
) -> dict[str, Any]:
    """DiffusionConfig schedule fields giving diffusers' β_1 … β_T for ``beta_schedule``."""
    if config.get("trained_betas") is not None:
        return {"schedule": "custom", "betas": tuple(float(b) for b in config["trained_betas"])}
    start = float(config.get("beta_start", 0.0001))
    end = float(config.get("beta_end", 0.02))
    kind = config.get("beta_schedule", "linear")
    if kind == "linear":  # ddpmkit's linear range is given at T = 1000 and rescaled by 1000/T
        return {
            "schedule": "linear",
            "beta_start": start * steps / 1000,
            "beta_end": end * steps / 1000,
        }
    if kind == "squaredcos_cap_v2":  # ᾱ(t) = cos²((t + 0.008)/1.008 · π/2), β ≤ 0.999
        return {"schedule": "cosine", "cosine_s": 0.008}
    if kind == "scaled_linear":  # latent diffusion's: √β linear in t
        betas = torch.linspace(math.sqrt(start), math.sqrt(end), steps, dtype=torch.float64) ** 2
    elif kind == "sigmoid":  # GeoDiff's: β = σ(linspace(-6, 6)) rescaled to [β_start, β_end]
        ramp = torch.linspace(-6, 6, steps, dtype=torch.float64)
        betas = torch.sigmoid(ramp) * (end - start) + start
    else:
        raise unsupported(
            "beta_schedule", "linear, scaled_linear, squaredcos_cap_v2, sigmoid or trained_betas"
        )
    return {"schedule": "custom", "betas": tuple(betas.tolist())}


def scheduler_config_of(config: RunConfig) -> dict[str, Any]:
    """The ``DDPMScheduler`` config of a ddpmkit model: the inverse of
    `diffusion_config_from_scheduler` (the β_t table itself, unless the schedule is a
    diffusers one)."""
    diffusion, sample = config.diffusion, config.sample
    if diffusion.parameterization not in PREDICTIONS.values():
        raise ValueError(
            f"diffusion.parameterization = {diffusion.parameterization!r} has no diffusers "
            f"prediction_type (they are {', '.join(PREDICTIONS)})"
        )
    steps = diffusion.num_steps
    if diffusion.schedule == "linear":
        beta = {"beta_schedule": "linear", "beta_start": diffusion.beta_start * 1000 / steps,
                "beta_end": diffusion.beta_end * 1000 / steps}  # fmt: skip
    elif diffusion.schedule == "cosine" and diffusion.cosine_s == 0.008:
        beta = {"beta_schedule": "squaredcos_cap_v2"}
    else:
        from ddpmkit.config.builders import build_schedule

        beta = {"trained_betas": build_schedule(diffusion).betas.tolist()}
    prediction = {v: k for k, v in PREDICTIONS.items()}[diffusion.parameterization]
    if diffusion.learned_variance:
        variance = "learned_range"
    else:
        variance = "fixed_large" if sample.variance == "beta" else "fixed_small"
    thresholding = sample.dynamic_threshold is not None
    return {
        "_class_name": "DDPMScheduler",
        "_diffusers_version": DIFFUSERS_VERSION,
        "num_train_timesteps": steps,
        **beta,
        "prediction_type": prediction,
        "variance_type": variance,
        "clip_sample": sample.clip_x0,
        "clip_sample_range": 1.0,
        "thresholding": thresholding,
        "dynamic_thresholding_ratio": sample.dynamic_threshold if thresholding else 0.995,
        "sample_max_value": 1.0,
    }


def export_refusal(config: RunConfig) -> str | None:
    """Why a model has no diffusers ``DDPMPipeline`` form (None when it has one); said at the
    start of training and by ``export-diffusers``."""
    model = config.model
    if model.kind == "mlp":
        return "an MLP has no diffusers form (UNet2DModel); train a U-Net (--model.kind unet)"
    if model.text_conditional:
        return (
            "a text-conditional model's U-Net reads its own text encoder by cross-attention, "
            "which no diffusers pipeline loads; its autoencoder folder is already a diffusers "
            "AutoencoderKL"
        )
    if config.diffusion.process != "vp":
        return (
            f"diffusion.process {config.diffusion.process!r} is not the variance-preserving "
            "process that diffusers' DDPM-family schedulers (a β schedule) describe, so an export "
            "would be read back as another model; train with --diffusion.process vp to export"
        )
    if model.kind == "unet" and model.unet.patch_size != 1:
        size = model.unet.patch_size
        return (
            f"its U-Net works on {size}×{size} patches (model.unet.patch_size {size}), which "
            "diffusers' UNet2DModel has not; a U-Net named by --model.unet.* flags or a preset "
            "(patch_size 1, each step costlier) exports"
        )
    return None


def write_pipeline_folder(
    config: RunConfig,
    network: torch.nn.Module,
    destination: Path,
    autoencoder: Path | None = None,
    texts: dict[str, str] | None = None,
) -> Path:
    """A ``DDPMPipeline`` folder of the U-Net and its schedule, and ``texts`` (file name →
    content, e.g. a model card), written as ``destination.partial`` and renamed when complete;
    refuses to write into an existing folder (`export_refusal` says which models have no
    diffusers form).

    A latent model (``autoencoder``: its AutoencoderKL folder) is written as ``unet/``,
    ``scheduler/`` and ``vae/`` without ``model_index.json``: diffusers has no unconditional
    latent pipeline of AutoencoderKL + UNet2DModel; each part loads with its class."""
    refusal = export_refusal(config)
    if refusal is not None:
        raise ValueError(refusal)
    if destination.exists():
        raise FileExistsError(f"{destination} already exists; refusing to overwrite it")
    if (config.model.autoencoder is not None) != (autoencoder is not None):
        raise ValueError("a latent model is exported with its autoencoder folder (and only it)")
    unet, weights = _unet_files(config, network)
    files = {
        "model_index.json": {
            "_class_name": "DDPMPipeline",
            "_diffusers_version": DIFFUSERS_VERSION,
            "scheduler": ["diffusers", "DDPMScheduler"],
            "unet": ["diffusers", "UNet2DModel"],
        },
        "unet/config.json": {
            "_class_name": "UNet2DModel",
            "_diffusers_version": DIFFUSERS_VERSION,
            **unet,
        },
        f"scheduler/{SCHEDULER_CONFIG}": scheduler_config_of(config),
    }
    if autoencoder is not None:
        del files["model_index.json"]
    tensors = {k: v.detach().contiguous().cpu() for k, v in weights.state_dict().items()}
    with partial_folder(destination) as partial:  # a kill leaves no half-written export
        if autoencoder is not None:
            (partial / "vae").mkdir()
            for name in (CONFIG_NAME, WEIGHTS):
                shutil.copyfile(autoencoder / name, partial / "vae" / name)
        for name, content in files.items():
            (partial / name).parent.mkdir(parents=True, exist_ok=True)
            (partial / name).write_text(json.dumps(content, indent=2) + "\n")
        save_file(tensors, partial / "unet" / WEIGHTS, metadata={"format": "pt"})
        for name, text in (texts or {}).items():
            (partial / name).write_text(text)
    return destination


def _unet_files(
    config: RunConfig, network: torch.nn.Module
) -> tuple[dict[str, Any], torch.nn.Module]:
    """The ``UNet2DModel`` config and the module whose state dict is its weights file; a
    class-conditional model records its null class (label dropout) for ddpmkit to read back."""
    model = config.model
    if model.kind == "diffusers" and model.diffusers_unet is not None:
        unet = {k: v for k, v in json.loads(model.diffusers_unet).items() if not k.startswith("_")}
        return unet, network.unet if isinstance(network, DiffusersUNet) else network
    unet = diffusers_config_from(model.unet)
    if model.class_conditional and model.label_dropout > 0:
        unet[LABEL_DROPOUT_KEY] = model.label_dropout
    return unet, network


def _read_json(path: Path) -> dict[str, Any]:
    try:
        content = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"cannot read {path}: {error}") from None
    except RecursionError:
        raise ValueError(f"cannot read {path}: nested too deeply") from None
    if not isinstance(content, dict):
        raise ValueError(f"{path}: expected a JSON object")
    return content
