"""bench/sampler_testbed.py runs end to end on a tiny setting and writes its table."""

import importlib.util
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench" / "sampler_testbed.py"


def load_bench():
    spec = importlib.util.spec_from_file_location("sampler_testbed", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_bench_writes_a_table_with_the_floor_and_every_requested_sampler(tmp_path, capsys):
    bench = load_bench()
    out = tmp_path / "report.md"
    argv = ["--samples", "200", "--nfe", "5", "10", "--extra-nfe", "20", "--draws", "1"]
    argv += ["--floor-sets", "3", "--projections", "32", "--samplers", "ddim", "ode-rk45"]
    argv += ["--testbeds", "sharp-2d", "--no-diffusers", "--out", str(out)]
    argv += ["--plot", str(tmp_path / "plot.png")]
    bench.main(argv)
    report = out.read_text()
    assert "Command: `python bench/sampler_testbed.py --samples 200" in report
    assert "Monte-Carlo floor SW₂ =" in report
    assert "| ddim | " in report and "| ode-rk45 | 0.01 |" in report
    assert "| NFE 5 | NFE 10 |" in report
    assert capsys.readouterr().out.strip() == report.strip()
