"""The model object of the Python API: `load` reads one from a folder, and its methods
sample, restore, measure likelihoods and export, each with keyword options instead of config
surgery. The commands ``ddpmkit sample``, ``inpaint``, ``restore``, ``edit``, ``eval`` and
``export-diffusers`` call these same methods."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, overload

import numpy as np
from PIL import Image
from torch import Tensor

from ddpmkit.api.likelihood import ImageData, measure_likelihood
from ddpmkit.api.model_card import model_card
from ddpmkit.api.quality import QualityReport, measure_quality
from ddpmkit.api.restoration import ImageInput, MaskInput, as_image, as_mask
from ddpmkit.config.parsing import from_dict, merge, to_dict
from ddpmkit.config.schema import SampleConfig
from ddpmkit.core.schedules import ReverseVariance
from ddpmkit.generation.sampling import generate, sample_batches
from ddpmkit.likelihood.report import NLLMethod, NLLReport
from ddpmkit.outputs import Output, to_images
from ddpmkit.pipeline.restoration import Restoration, Task, restore
from ddpmkit.progress import ProgressCallback, progress_callback
from ddpmkit.samplers import SampleResult
from ddpmkit.storage.autoencoder_folders import run_autoencoder_folder
from ddpmkit.storage.classifier_folders import load_classifier
from ddpmkit.storage.diffusers_folders import write_pipeline_folder
from ddpmkit.storage.model import ModelSource, TrainedModel, load_model

if TYPE_CHECKING:
    from ddpmkit.training.distributed import Processes

Weights = Literal["ema", "model"]


class Model(TrainedModel):
    """A trained diffusion model: its network, noise schedule, denoiser and configuration, with
    methods that sample, restore, measure and export. Get one from `ddpmkit.load` or
    `ddpmkit.train`.

    The fields are those of the model folder it was read from: ``config`` (the resolved
    `ddpmkit.config.schema.RunConfig`), ``network``, ``schedule``, ``denoiser`` (the
    network read as D(x; σ)), ``shape`` (one sample's shape), ``source``, ``autoencoder`` (a
    latent model's) and ``captions`` (a text-conditional model's).
    """

    @classmethod
    def wrap(cls, model: TrainedModel) -> Model:
        """The API object of an internal `TrainedModel` (same weights, nothing copied).

        Args:
            model: a model read by `ddpmkit.storage.model.load_model`.
        """
        return cls(**{f.name: getattr(model, f.name) for f in dataclasses.fields(model)})

    def sample_config(self, **options: Any) -> SampleConfig:
        """The stored sample options with ``options`` (any ``SampleConfig`` field) replaced;
        an unknown name or an ill-typed value is an error naming it.

        Args:
            options: ``sample`` section keys and values, e.g. ``sampler="ddim", steps=50``.
        """
        given = {key: value for key, value in options.items() if value is not None}
        return from_dict(SampleConfig, merge(to_dict(self.config.sample), given), "sample")

    def draw(
        self,
        num_samples: int | None = None,
        *,
        sampler: str | None = None,
        steps: int | None = None,
        seed: int | None = None,
        guidance: float | None = None,
        label: int | None = None,
        prompt: str | None = None,
        progress: bool | ProgressCallback = True,
        trajectory: bool = False,
        rows: slice | None = None,
        **options: Any,
    ) -> SampleResult:
        """Samples with their trajectory and count of network evaluations (what `sample`
        returns as pictures); sample i is seeded ``seed + i``.

        Args:
            num_samples: how many (default: the stored ``sample.num_samples``).
            sampler: a name of ``ddpmkit.SAMPLERS`` ("ancestral", "ddim", "dpm++2m", …).
            steps: sampling steps (default: the stored; None with the stored None: all T).
            seed: sample i is seeded ``seed + i``.
            guidance: the classifier-free guidance scale w (1: none).
            label: the class of every sample (class-conditional models, classifier guidance).
            prompt: the text of every sample (text-conditional models).
            progress: draw a progress bar (True), none (False), or call this with (done, total).
            trajectory: also keep every state x_T … x_0 (``SampleResult.trajectory``).
            rows: draw only these samples of the ``num_samples`` (one process's share).
            options: any other ``sample`` option (``classifier``, ``classifier_scale``,
                ``autoguidance``, ``eta``, ``clip_x0``, ``batch_size``, …); None keeps the stored.
        """
        config = self.sample_config(
            num_samples=num_samples, sampler=sampler, steps=steps, seed=seed, guidance=guidance,
            label=label, prompt=prompt, **options,
        )  # fmt: skip
        model = self.with_sample(config) if config.compile != self.config.sample.compile else self
        classifier = load_classifier(config.classifier) if config.classifier else None
        with progress_callback(progress, "sample", "step") as report:
            return generate(
                model, config, classifier=classifier, record_trajectory=trajectory,
                progress=report, rows=rows,
            )  # fmt: skip

    def draw_batches(
        self,
        num_samples: int | None = None,
        *,
        progress: bool | ProgressCallback = True,
        **options: Any,
    ) -> Iterator[SampleResult]:
        """`draw`'s samples one batch (``batch_size``) at a time, each a `SampleResult`, to be
        written as they come: memory stays one batch whatever ``num_samples`` (``sample
        --num_samples 10000000`` streams its arrays and PNGs to disk this way).

        Args:
            num_samples: how many (default: the stored ``sample.num_samples``).
            progress: draw a progress bar (True), none (False), or call this with (done, total).
            options: `draw`'s keywords (``sampler``, ``steps``, ``seed``, ``guidance``,
                ``label``, ``prompt``, ``batch_size``, any other ``sample`` option).
        """
        config = self.sample_config(num_samples=num_samples, **options)
        model = self.with_sample(config) if config.compile != self.config.sample.compile else self
        classifier = load_classifier(config.classifier) if config.classifier else None
        with progress_callback(progress, "sample", "step") as report:
            yield from sample_batches(model, config, classifier=classifier, progress=report)

    @overload
    def sample(
        self,
        num_samples: int | None = None,
        *,
        sampler: str | None = None,
        steps: int | None = None,
        seed: int | None = None,
        guidance: float | None = None,
        label: int | None = None,
        prompt: str | None = None,
        output: Literal["tensor"] = "tensor",
        progress: bool | ProgressCallback = True,
        **options: Any,
    ) -> Tensor: ...
    @overload
    def sample(
        self,
        num_samples: int | None = None,
        *,
        sampler: str | None = None,
        steps: int | None = None,
        seed: int | None = None,
        guidance: float | None = None,
        label: int | None = None,
        prompt: str | None = None,
        output: Literal["numpy"],
        progress: bool | ProgressCallback = True,
        **options: Any,
    ) -> np.ndarray: ...
    @overload
    def sample(
        self,
        num_samples: int | None = None,
        *,
        sampler: str | None = None,
        steps: int | None = None,
        seed: int | None = None,
        guidance: float | None = None,
        label: int | None = None,
        prompt: str | None = None,
        output: Literal["pil"],
        progress: bool | ProgressCallback = True,
        **options: Any,
    ) -> list[Image.Image]: ...
    def sample(
        self,
        num_samples: int | None = None,
        *,
        sampler: str | None = None,
        steps: int | None = None,
        seed: int | None = None,
        guidance: float | None = None,
        label: int | None = None,
        prompt: str | None = None,
        output: Output = "tensor",
        progress: bool | ProgressCallback = True,
        **options: Any,
    ) -> Tensor | np.ndarray | list[Image.Image]:
        """``num_samples`` samples (Algorithm 2 of Ho et al. 2020, or the configured sampler) as
        a tensor (N, C, H, W) in [-1, 1], a uint8 array (N, H, W, C) or a list of PIL images.

        Args:
            num_samples: how many (default: the stored ``sample.num_samples``).
            sampler: a name of ``ddpmkit.SAMPLERS`` ("ancestral", "ddim", "dpm++2m", …).
            steps: sampling steps (default: the stored; None with the stored None: all T).
            seed: sample i is seeded ``seed + i``.
            guidance: the classifier-free guidance scale w (1: none).
            label: the class of every sample (class-conditional models, classifier guidance).
            prompt: the text of every sample (text-conditional models).
            output: ``"tensor"``, ``"numpy"`` or ``"pil"`` (see `ddpmkit.to_images`).
            progress: draw a progress bar (True), none (False), or call this with (done, total).
            options: any other ``sample`` option by name, None keeping the stored value:
                ``autoguidance``, ``classifier``, ``classifier_scale``, ``eta``, ``clip_x0``,
                ``batch_size``, ``precision``, …
        """
        samples = self.draw(
            num_samples, sampler=sampler, steps=steps, seed=seed, guidance=guidance, label=label,
            prompt=prompt, progress=progress, **options,
        ).samples  # fmt: skip
        return to_images(samples, output)

    def restore(
        self,
        image: ImageInput,
        task: Task,
        *,
        mask: MaskInput | None = None,
        invert_mask: bool = False,
        progress: bool | ProgressCallback = True,
        **options: Any,
    ) -> Restoration:
        """Restorations of ``image`` from its degraded measurement y = A(x) + s·n by posterior
        sampling: super-resolution, deblurring or inpainting (DPS, DDRM, ΠGDM, RePaint, …).

        Args:
            image: the clean image: a file path, a PIL image or a (C, H, W) / (B, C, H, W) tensor
                in [-1, 1], of the model's size.
            task: ``"super-resolution"``, ``"deblur"``, ``"inpaint"`` or ``"edit"``.
            mask: inpainting: a black-and-white file or a (1, H, W) tensor, 1 (white) = known.
            invert_mask: read white as the region to fill in (diffusers' convention).
            progress: draw a progress bar (True), none (False), or call this with (done, total).
            options: ``method``, ``num_samples``, ``seed``, ``steps``, ``noise_std``, ``scale``,
                ``blur_sigma``, ``step_size``, ``jump_length``, ``resamplings``, ``strength``,
                ``sampler``: see `ddpmkit.pipeline.restoration.restore`.

        Returns:
            A `Restoration`: ``input``, ``measurement`` and ``result`` (B, K, C, H, W).
        """
        pixels = as_image(image, self.shape)
        known = None if mask is None else as_mask(mask, self.shape, invert_mask)
        with progress_callback(progress, task, "step") as report:
            return restore(self, pixels, task, mask=known, progress=report, **options)

    def inpaint(
        self,
        image: ImageInput,
        mask: MaskInput,
        *,
        method: str = "replacement",
        progress: bool | ProgressCallback = True,
        **options: Any,
    ) -> Restoration:
        """The masked region of ``image`` filled in by ``method``: replacement, RePaint (Lugmayr
        et al. 2022), DPS, DDRM or ΠGDM.

        Args:
            image: a file path, a PIL image or a (C, H, W) tensor in [-1, 1].
            mask: a black-and-white file or a (1, H, W) tensor: 1 (white) = known pixels.
            method: the inpainting method.
            progress: draw a progress bar (True), none (False), or call this with (done, total).
            options: as for `restore` (``invert_mask``, ``num_samples``, ``seed``, …).
        """
        return self.restore(
            image, "inpaint", mask=mask, method=method, progress=progress, **options
        )

    def edit(
        self,
        image: ImageInput,
        strength: float = 0.5,
        *,
        sampler: str = "ancestral",
        progress: bool | ProgressCallback = True,
        **options: Any,
    ) -> Restoration:
        """SDEdit (Meng et al. 2022): ``image`` noised to t_0 = strength·T and sampled back.

        Args:
            image: a file path, a PIL image or a (C, H, W) tensor in [-1, 1].
            strength: t_0/T in [0, 1]; low stays close to the image, high follows the model.
            sampler: the sampler from t_0 (a name of ``ddpmkit.SAMPLERS``).
            progress: draw a progress bar (True), none (False), or call this with (done, total).
            options: ``num_samples``, ``seed``, ``steps`` (see `restore`).
        """
        return self.restore(
            image, "edit", strength=strength, sampler=sampler, progress=progress, **options
        )

    def likelihood(
        self,
        data: ImageData = None,
        *,
        method: NLLMethod = "vlb",
        num_samples: int = 100,
        batch_size: int = 100,
        split: Literal["heldout", "train"] = "heldout",
        num_levels: int | None = None,
        variance: ReverseVariance = "auto",
        seed: int = 0,
        progress: bool | ProgressCallback = True,
        processes: Processes | None = None,
    ) -> NLLReport:
        """Negative log-likelihood in bits/dim with a 95% confidence interval: the variational
        bound with all T terms (Ho et al. 2020, Eq. 5) or the probability-flow ODE (Song et al.
        2021, Eq. 39).

        Args:
            data: what to evaluate: None (the model's training data, ``split``), a source name
                (``"digits"``), an image folder, an .npy/.npz file, or a tensor (N, C, H, W) in
                [-1, 1].
            method: ``"vlb"`` or ``"ode"``.
            num_samples: how many items to evaluate (at most all).
            batch_size: items per batch.
            split: of the run's data: ``"heldout"`` or ``"train"``.
            num_levels: quantization levels (default: the data's; digits 17, else 256).
            variance: σ_t² of the bound: ``"auto"`` (learned if the model has it), ``"beta"``,
                ``"posterior"``, ``"learned"``.
            seed: seeds the bound's noise.
            progress: draw a progress bar (True), none (False), or call this with (done, total).
            processes: under torchrun, the processes that share the work (default: this one).
        """
        with progress_callback(progress, method, "item") as report:
            return measure_likelihood(
                self, data, method, num_samples=num_samples, batch_size=batch_size, split=split,
                num_levels=num_levels, variance=variance, seed=seed, progress=report,
                processes=processes,
            )  # fmt: skip

    def quality(
        self,
        metrics: tuple[str, ...] = ("fid",),
        reference: str = "run",
        *,
        num_samples: int = 1000,
        samples: str | Path | None = None,
        inception_weights: str | Path | None = None,
        batch_size: int = 100,
        seed: int = 0,
        progress: bool | ProgressCallback = True,
    ) -> QualityReport:
        """Inception-v3 metrics of the model's samples against a reference (torch-fidelity, the
        ``metrics`` extra): FID (Heusel et al. 2017), IS, KID, precision/recall/density/coverage.

        Args:
            metrics: names among ``fid``, ``is``, ``kid``, ``prdc``.
            reference: ``"run"`` (the training data), a source name, an image folder, an
                .npy/.npz array, or an .npz of precomputed statistics (mu, sigma: FID only).
            num_samples: how many samples to draw and score (with the stored sample options).
            samples: score these images (a folder or .npz) instead of sampling.
            inception_weights: torch-fidelity's Inception weights file, checked against its
                published checksum (default: torch-fidelity downloads it).
            batch_size: images per Inception batch.
            seed: seeds KID's subsets.
            progress: draw a progress bar (True), none (False), or call this with (done, total).
        """
        with progress_callback(progress, "quality", "image") as report:
            return measure_quality(
                self, metrics, reference, num_samples=num_samples, samples=samples,
                inception_weights=inception_weights, batch_size=batch_size, seed=seed,
                progress=report,
            )  # fmt: skip

    def export_diffusers(self, folder: str | Path, *, card: bool = True) -> Path:
        """Write the model as a diffusers ``DDPMPipeline`` folder (``model_index.json``, ``unet/``,
        ``scheduler/``) with the weights it was loaded with; never overwrites. A latent model
        adds ``vae/`` (its ``AutoencoderKL``) and has no ``model_index.json``: diffusers has no
        pipeline of AutoencoderKL + UNet2DModel, so each part loads with its own class.

        Args:
            folder: the new pipeline folder.
            card: also write a model card, ``README.md``: the training config and the figures
                of the run's ``summary.json``.
        """
        autoencoder = None
        if self.config.model.autoencoder is not None and self.source is not None:
            autoencoder = run_autoencoder_folder(
                self.source.outputs_folder, self.config.model.autoencoder
            )
        extra = {"README.md": model_card(self)} if card else {}
        return write_pipeline_folder(self.config, self.network, Path(folder), autoencoder, extra)

    def with_sample(self, sample: SampleConfig) -> Model:
        """The same weights with other stored sample options.

        Args:
            sample: the new ``sample`` section.
        """
        return Model.wrap(super().with_sample(sample))


def load(
    path: str | Path | ModelSource,
    device: str | None = None,
    weights: Weights | None = None,
) -> Model:
    """A trained model from a run folder (its latest checkpoint), a checkpoint folder, a
    diffusers model folder or a Hugging Face Hub repo id, in eval mode.

    Args:
        path: the folder, or ``owner/name[@revision]`` of the Hub (the ``hub`` extra; only its
            JSON and safetensors files are downloaded, into the standard Hub cache; a local
            path of that name wins).
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, …; None picks CUDA when available.
        weights: ``"ema"`` or ``"model"``; None takes those the checkpoint samples with
            (``sample.use_ema``, usually EMA). A diffusers folder holds one set.
    """
    return Model.wrap(load_model(path, device or "auto", weights))
