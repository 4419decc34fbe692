"""Progress bars for the commands and the Python API: the library reports (done, total); these draw."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from tqdm import tqdm


class ProgressBar:
    """A progress callback (done, total) drawing a tqdm bar, opened on its first call."""

    def __init__(self, desc: str, unit: str, disable: bool) -> None:
        self.desc, self.unit, self.disable = desc, unit, disable
        self.bar: tqdm[Any] | None = None

    def __enter__(self) -> ProgressBar:
        return self

    def __call__(self, done: float, total: int) -> None:
        if self.bar is None or self.bar.total != total or done < self.bar.n:
            self.close()
            self.bar = tqdm(total=total, desc=self.desc, unit=self.unit, disable=self.disable)
        bar = self.bar
        bar.update(done - bar.n)
        if done == total:
            self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __exit__(self, *exc: object) -> None:
        self.close()


def reporter(main: bool) -> Callable[..., None]:
    """``print`` for the process that reports (rank 0 under torchrun), a no-op for the others."""
    return print if main else _silent


def _silent(*_args: object, **_kwargs: object) -> None:
    """Says nothing."""


ProgressCallback = Callable[[float, int], None]
"""Called with (steps done, total) as work advances."""


@contextmanager
def progress_callback(
    progress: bool | ProgressCallback, desc: str, unit: str
) -> Iterator[ProgressCallback | None]:
    """The callback that ``progress`` asks for: a tqdm bar named ``desc`` counting ``unit`` (True),
    none (False), or ``progress`` itself (a callable); the bar is closed on the way out."""
    if progress is True:
        with ProgressBar(desc, unit, disable=False) as bar:
            yield bar
    else:
        yield None if isinstance(progress, bool) else progress
