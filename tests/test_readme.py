"""The README's Python example runs as written (with fewer training steps)."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_example_runs():
    code = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)[0]
    assert "range(1500)" in code and "NoiseSchedule.linear(1000)" in code
    short = code.replace("range(1500)", "range(3)").replace("linear(1000)", "linear(100)")
    namespace: dict = {}
    exec(compile(short, str(README), "exec"), namespace)
    samples = namespace["samples"]
    assert samples.shape == (64, 1, 8, 8) and samples.abs().max() <= 1.0
