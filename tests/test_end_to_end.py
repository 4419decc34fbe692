"""The README's main job, shortened: a digits run whose samples a digits classifier recognises."""

import numpy as np
import torch

from ddpmkit.cli import main
from ddpmkit.evaluation import assess_digits


def test_short_digits_run_generates_recognizable_digits(tmp_path):
    """Criteria of the foundation issue: ≥ 85% confidently classified, classes 5–15%, FID ≤ 3×."""
    run = tmp_path / "digits"
    assert main(["train", "--preset", "digits", "--out", str(run), "--quiet",
                 "--train.steps", "1500"]) == 0  # fmt: skip
    samples = np.load(run / "samples" / "step-0001500.npz")["samples"]
    assert samples.shape == (400, 1, 8, 8)
    report = assess_digits(torch.from_numpy(samples))
    assert report.passes(), report.failures()
