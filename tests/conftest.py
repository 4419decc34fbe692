"""Shared fixtures: tiny configurations that train in seconds on the CPU.

Every test process runs PyTorch on one thread: ``make test`` runs the suite as one process per
core (pytest-xdist), and two intra-op threads in one process spin-wait for each other whenever
another process holds a core (a 16 s test took 440 s next to one busy process). The variables
are exported too, for the subprocesses of the CLI tests.
"""

import contextlib
import dataclasses
import os

import pytest
import torch

from ddpmkit import DiffusionConfig, ModelConfig, RunConfig, SampleConfig, TrainConfig, UNetConfig

for _variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_variable] = "1"
torch.set_num_threads(1)
with contextlib.suppress(RuntimeError):  # raised once inter-op work has started: nothing to do
    torch.set_num_interop_threads(1)


def tiny_digits_config(**train_overrides) -> RunConfig:
    """A 16-channel U-Net on the digits, T = 100; every stochastic part (dropout, flips) enabled."""
    train = dict(
        steps=6,
        batch_size=16,
        lr=1e-3,
        warmup_steps=2,
        ema_decay=0.9,
        checkpoint_every=3,
        sample_every=0,
        log_every=2,
        seed=3,
    )
    train.update(train_overrides)
    return RunConfig(
        model=ModelConfig(
            unet=UNetConfig(
                sample_size=8,
                base_channels=16,
                channel_mults=(1, 2),
                layers_per_block=1,
                attention_resolutions=(4,),
                dropout=0.1,
                norm_groups=8,
            )
        ),
        diffusion=DiffusionConfig(num_steps=100),
        train=TrainConfig(**train),
        sample=SampleConfig(num_samples=6, batch_size=6),
    )


@pytest.fixture
def tiny_config() -> RunConfig:
    config = tiny_digits_config()
    return dataclasses.replace(config, data=dataclasses.replace(config.data, hflip=True))


class MissingPackages:
    """Tests skipped because a package could not be imported did not run: the summary lists
    them, and with DDPMKIT_ALL_TESTS=1 (``make test``) they fail the run."""

    def __init__(self) -> None:
        self.reasons: list[str] = []

    def _note(self, report: pytest.CollectReport | pytest.TestReport) -> None:
        if report.skipped:
            reason = report.longrepr[-1] if isinstance(report.longrepr, tuple) else report.longrepr
            if "could not import" in str(reason):
                self.reasons.append(f"{report.nodeid}: {reason}")

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self._note(report)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        self._note(report)

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if self.reasons:
            terminalreporter.section("not run: missing packages")
            for line in self.reasons:
                terminalreporter.write_line(line)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.reasons and os.environ.get("DDPMKIT_ALL_TESTS") == "1":
            session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(MissingPackages(), "ddpmkit-missing-packages")
