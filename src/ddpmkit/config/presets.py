"""Named starting configurations for ``ddpmkit train --preset NAME`` (overridable key by key)."""

from __future__ import annotations

from typing import Any

PRESETS: dict[str, dict[str, Any]] = {
    "digits": {
        # The built-in demo: scikit-learn's 8×8 digits, a small U-Net, a few minutes on 2 CPU cores.
        "data": {"source": "digits"},
        "model": {
            "kind": "unet",
            "unet": {
                "sample_size": 8,
                "base_channels": 32,
                "channel_mults": [1, 2],
                "layers_per_block": 1,
                "attention_resolutions": [],
                "dropout": 0.0,
                "norm_groups": 16,
            },
        },
        "diffusion": {"schedule": "linear", "num_steps": 1000},
        "train": {
            "steps": 3000,
            "batch_size": 128,
            "lr": 2e-3,
            "warmup_steps": 100,
            "ema_decay": 0.995,
            "checkpoint_every": 1000,
            "sample_every": 0,
            "precision": "auto",
        },
        "sample": {"num_samples": 400, "batch_size": 400, "precision": "auto"},
    },
    "toy2d": {
        # Two moons in 2-D with the MLP denoiser: seconds to train, a scatter plot to look at.
        "data": {"source": "toy2d", "toy": "moons"},
        "model": {"kind": "mlp", "mlp": {"hidden": 128, "num_blocks": 3}},
        "diffusion": {"schedule": "linear", "num_steps": 1000},
        "train": {
            "steps": 3000,
            "batch_size": 256,
            "lr": 1e-3,
            "warmup_steps": 100,
            "ema_decay": 0.995,
            "checkpoint_every": 1000,
            "sample_every": 0,
        },
        "sample": {"num_samples": 2000, "batch_size": 2000, "clip_x0": False},
    },
    "cifar10-ddpm": {
        # Ho et al. (2020), Appendix B: 35.7M-parameter U-Net, 800k steps; needs a GPU.
        "data": {"source": "cifar10", "path": "data/cifar10", "hflip": True},
        "model": {
            "kind": "unet",
            "unet": {
                "sample_size": 32,
                "base_channels": 128,
                "channel_mults": [1, 2, 2, 2],
                "layers_per_block": 2,
                "attention_resolutions": [16],
                "dropout": 0.1,
            },
        },
        "diffusion": {
            "schedule": "linear",
            "num_steps": 1000,
            "beta_start": 1e-4,
            "beta_end": 0.02,
        },
        "train": {
            "steps": 800_000,
            "batch_size": 128,
            "lr": 2e-4,
            "warmup_steps": 5000,
            "grad_clip": 1.0,
            "ema_decay": 0.9999,
            "checkpoint_every": 10_000,
            "sample_every": 10_000,
            "num_workers": 4,
        },
        "sample": {"num_samples": 64, "batch_size": 64},
    },
}

PRESETS["ddpm-paper"] = {
    # Ho et al. (2020)'s recipe on your own data (set data.*): the CIFAR-10 model and training,
    # sized to the data's resolution by model.unet.sample_size; the defaults of an explicit config.
    key: value
    for key, value in PRESETS["cifar10-ddpm"].items()
    if key != "data"
}

_DIGITS32_TRAIN = {
    "steps": 3000,
    "batch_size": 128,
    "lr": 2e-3,
    "warmup_steps": 100,
    "ema_decay": 0.995,
    "checkpoint_every": 1000,
    "sample_every": 0,
    "precision": "auto",
}
_LATENT_UNET = {  # the digits preset's U-Net, on 8×8×4 latents
    "sample_size": 8,
    "base_channels": 32,
    "channel_mults": [1, 2],
    "layers_per_block": 1,
    "attention_resolutions": [],
    "dropout": 0.0,
    "norm_groups": 16,
}
DIGIT_CAPTIONS = ["a handwritten {name}", "the digit {label}", "a {name}", "{name}"]
"""Caption templates of the digits: "a handwritten seven", "the digit 7", …"""

PRESETS |= {
    "digits32": {
        # Pixel diffusion on the digits resized to 32×32: latent diffusion's point of comparison.
        "data": {"source": "digits", "image_size": 32},
        "model": {
            "kind": "unet",
            "unet": {
                "sample_size": 32,
                "base_channels": 32,
                "channel_mults": [1, 2, 2],
                "layers_per_block": 1,
                "attention_resolutions": [],
                "dropout": 0.0,
                "norm_groups": 16,
            },
        },
        "diffusion": {"schedule": "linear", "num_steps": 1000},
        "train": _DIGITS32_TRAIN,
        "sample": {"num_samples": 100, "batch_size": 100, "sampler": "dpm++2m", "steps": 50},
    },
    "digits32-latent": {
        # Latent diffusion on 32×32 digits: pass --autoencoder FOLDER (ddpmkit train-autoencoder).
        "data": {"source": "digits", "image_size": 32},
        "model": {"kind": "unet", "unet": _LATENT_UNET},
        "diffusion": {"schedule": "linear", "num_steps": 1000},
        "train": _DIGITS32_TRAIN,
        "sample": {"num_samples": 100, "batch_size": 100, "sampler": "dpm++2m", "steps": 50},
    },
    "digits32-text": {
        # Text-to-image on 32×32 digits in latent space (pass --autoencoder FOLDER), captions
        # from the labels, 10% empty prompts for classifier-free guidance.
        "data": {"source": "digits", "image_size": 32},
        "model": {
            "kind": "unet",
            "unet": _LATENT_UNET | {"attention_resolutions": [4]},
            "text_conditional": True,
            "label_dropout": 0.1,
            "captions": DIGIT_CAPTIONS,
            "text": {"kind": "builtin", "max_length": 8, "width": 64, "layers": 2, "heads": 4},
        },
        "diffusion": {"schedule": "linear", "num_steps": 1000},
        "train": _DIGITS32_TRAIN,
        "sample": {
            "num_samples": 100,
            "batch_size": 100,
            "sampler": "dpm++2m",
            "steps": 50,
            "guidance": 2.0,
        },
    },
}

SUMMARIES: dict[str, str] = {
    "digits": "8×8 bundled digits, small U-Net, 3,000 steps: a few minutes on 2 CPU cores",
    "toy2d": "two moons in 2-D, the MLP denoiser: seconds to train, a scatter plot to look at",
    "cifar10-ddpm": "Ho et al. (2020) on CIFAR-10: 35.7M-parameter U-Net, 800k steps; needs a GPU",
    "ddpm-paper": "Ho et al. (2020)'s U-Net and training on your own data (set data.*)",
    "digits32": "digits at 32×32 in pixel space, DPM-Solver++ samples: latent diffusion's baseline",
    "digits32-latent": "latent diffusion on 32×32 digits: pass --autoencoder FOLDER",
    "digits32-text": "text-to-image on 32×32 latent digits (--autoencoder FOLDER), prompts from labels",
}
"""One line per preset, for ``ddpmkit presets``: the data, the network and what it is for."""

QUICK_START: dict[str, Any] = {
    # What `ddpmkit train` uses when no model is named: a network sized for the data and the time
    # budget (train.minutes; a U-Net, or an MLP for 8×8 grey images whose budget is too short
    # for every U-Net), bf16 where the hardware has it, and the recipe that learned fastest
    # at equal wall time (docs/benchmarks.md, "Quality per CPU-minute"): v-prediction, and the
    # batch chosen with the model: the smallest whose doubling no longer raises images/s much
    # (on a CPU at 28×28 that is 32, whose 4× as many steps beat batch 128). Samples come from
    # Algorithm 2 without clipping x̂_0: clipping the under-shooting background predictions of a
    # young model lifts them step after step into grey backgrounds, and the stochastic steps
    # correct what the deterministic solvers carry along (feature FID 82 → 50 on 28×28 digits).
    # Autoguidance by the run's half-way checkpoint then raised the confident share at twice the
    # network calls: w = 2 from 0.79 to 0.86 and 0.74 to 0.81 on two runs, w = 2.5 to 0.84 on
    # both at a feature FID 1–2 higher (docs/benchmarks.md). The cosine schedule (Nichol &
    # Dhariwal 2021) beat the linear one at equal steps on 8×8 digits (feature-FID ratio 2.4 and
    # 1.9 against 3.2) and matched it at 28×28 in 4 minutes (FID 1.40× against 1.48× real)
    "model": {"auto_size": True},
    "diffusion": {"parameterization": "v", "schedule": "cosine"},
    "train": {
        "precision": "auto",
        "batch_size": 0,
        "lr": 2e-3,
        "warmup_steps": 100,
        "ema_decay": 0.995,
    },
    "sample": {
        "sampler": "ancestral",
        "steps": 100,
        "clip_x0": False,
        "autoguidance": 2.5,
        "num_samples": 64,
        "precision": "auto",
    },
}
