"""The README's Python example runs as written (with fewer training steps)."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_block(containing: str) -> str:
    """The README's Python block that contains ``containing``."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    return next(block for block in blocks if containing in block)


def test_readme_python_example_runs():
    code = _python_block("range(1500)")
    assert "range(1500)" in code and "NoiseSchedule.linear(1000)" in code
    short = code.replace("range(1500)", "range(3)").replace("linear(1000)", "linear(100)")
    namespace: dict = {}
    exec(compile(short, str(README), "exec"), namespace)
    samples = namespace["samples"]
    assert samples.shape == (64, 1, 8, 8) and samples.abs().max() <= 1.0


def test_readme_model_methods_run_as_written(tmp_path, monkeypatch):
    """The quick start's second block (sample, inpaint, likelihood, export) on a tiny model; the
    first block, 1 minute of training in a fresh venv, is ``make test-install``'s."""
    import numpy as np
    from PIL import Image

    import ddpmkit

    monkeypatch.chdir(tmp_path)
    tiny = {"model": {"unet": {"base_channels": 16, "channel_mults": (1, 2),
                               "layers_per_block": 1, "norm_groups": 8}},
            "diffusion": {"num_steps": 40}, "sample": {"steps": 5},
            "train": {"steps": 2, "batch_size": 8, "precision": "fp32"}}  # fmt: skip
    model = ddpmkit.train("digits", out="runs/quick", preset="digits", progress=False, **tiny)
    model.sample(1, output="pil", progress=False)[0].save("digit-00.png")
    mask = np.full((8, 8), 255, np.uint8)
    mask[2:6, 2:6] = 0
    Image.fromarray(mask).save("mask.png")
    namespace = {"model": model}
    exec(compile(_python_block("model.inpaint("), str(README), "exec"), namespace)
    assert namespace["x"].shape == (64, 1, 8, 8)
    assert namespace["restored"].result.shape == (1, 1, 1, 8, 8)
    assert namespace["report"].bits_per_dim > 0
    assert (tmp_path / "pipeline" / "model_index.json").is_file()


def test_the_contents_list_every_section():
    text = README.read_text()
    sections = [h for h in re.findall(r"^## (.+)$", text, re.M) if h != "Contents"]
    listed = re.findall(r"^- \[(.+?)\]\(#", text.split("## Contents", 1)[1], re.M)
    assert listed[: len(sections)] == sections


def test_the_docs_home_shows_the_readme_quick_start():
    home = (README.parent / "docs" / "index.md").read_text()
    for marker in ("ddpmkit.train(", "model.inpaint("):
        assert _python_block(marker) in home
