"""The model card (``README.md``) an exported diffusers folder carries: what the model is, how it
was trained and what its run measured, in the Hub's card format (YAML front matter, Markdown)."""

from __future__ import annotations

import json
from typing import Any

from ddpmkit.config.parsing import to_dict
from ddpmkit.storage.model import TrainedModel


def model_card(model: TrainedModel) -> str:
    """The card of ``model``: its data, network, noise process, sample options, the run's
    summary figures (``summary.json``) when it came from a run, and how to load it.

    Args:
        model: the model being exported.
    """
    config = model.config
    data = config.data
    shape = "×".join(map(str, model.shape))
    summary = _run_summary(model)
    lines = [
        "---",
        "library_name: diffusers",
        "tags: [ddpmkit, ddpm, unconditional-image-generation]",
        "pipeline_tag: unconditional-image-generation",
        "---",
        "",
        f"# A DDPM trained with ddpmkit on {data.source}{f' ({data.path})' if data.path else ''}",
        "",
        f"Samples are {shape} (channels × height × width) in [-1, 1]; the U-Net predicts "
        f"{config.diffusion.parameterization} on a {config.diffusion.schedule} schedule of "
        f"T = {config.diffusion.num_steps} steps.",
        "",
        *(_latent_usage() if config.model.autoencoder is not None else _pipeline_usage()),
        "",
        "## Training run",
        "",
        *(_summary_lines(summary) if summary else ["No run summary (the model was not read from "
                                                    "a ddpmkit run folder)."]),
        "",
        "## Configuration (ddpmkit)",
        "",
        "```json",
        json.dumps(to_dict(config), indent=2),
        "```",
        "",
    ]  # fmt: skip
    return "\n".join(lines)


def _pipeline_usage() -> list[str]:
    return [
        "```python",
        "from diffusers import DDPMPipeline",
        "",
        'images = DDPMPipeline.from_pretrained("THIS_FOLDER")(batch_size=4).images',
        "```",
    ]


def _latent_usage() -> list[str]:
    return [
        "A latent model (Rombach et al. 2022): the U-Net denoises the latents of `vae/`. diffusers",
        "has no pipeline of AutoencoderKL + UNet2DModel, so the parts load one by one:",
        "",
        "```python",
        "from diffusers import AutoencoderKL, DDPMScheduler, UNet2DModel",
        "",
        'vae = AutoencoderKL.from_pretrained("THIS_FOLDER/vae")',
        'unet = UNet2DModel.from_pretrained("THIS_FOLDER/unet")',
        'scheduler = DDPMScheduler.from_pretrained("THIS_FOLDER/scheduler")',
        "# sample latents z with unet + scheduler, then: vae.decode(z / vae.config.scaling_factor)",
        "```",
    ]


def _run_summary(model: TrainedModel) -> dict[str, Any] | None:
    """The run's ``summary.json`` beside the checkpoint's run folder, if there is one."""
    if model.source is None or model.source.format != "ddpmkit":
        return None
    path = model.source.outputs_folder / "summary.json"
    try:
        summary: dict[str, Any] = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return summary


def _summary_lines(summary: dict[str, Any]) -> list[str]:
    """The figures of a run's summary as a Markdown list."""
    session = summary.get("last_session") or {}
    log = summary.get("last_log_row") or {}
    figures = {
        "steps": f"{summary.get('step')} of {summary.get('steps')}",
        "batch size": summary.get("batch_size"),
        "parameters": f"{summary.get('parameters', 0):,}",
        "device": summary.get("device"),
        "images per second (last session)": session.get("images_per_second"),
        "last logged loss": log.get("loss"),
    }
    return [f"- {name}: {value}" for name, value in figures.items() if value is not None]


__all__ = ["model_card"]
