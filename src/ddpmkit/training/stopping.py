"""Stopping a run between two steps. SIGTERM (what job schedulers and ``kill`` send) and Ctrl-C
ask the loop to stop once the step in progress has ended; the loop then checkpoints that step
and raises `TrainingStopped`, so that nothing trained is lost. A second Ctrl-C stops at once."""

from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class TrainingStopped(KeyboardInterrupt):
    """The run stopped on a signal after checkpointing its last step.

    Args:
        signal_number: the signal that asked for the stop (SIGINT or SIGTERM).
    """

    def __init__(self, signal_number: int) -> None:
        super().__init__(signal.Signals(signal_number).name)
        self.signal_number = signal_number

    @property
    def exit_code(self) -> int:
        """The shell's code for a stop by this signal: 128 + its number (130, 143)."""
        return 128 + self.signal_number


class StopSignals:
    """While entered (in the main thread; elsewhere signals keep their handlers), SIGINT and
    SIGTERM set `requested` instead of stopping the process; a second SIGINT raises
    KeyboardInterrupt at once."""

    def __init__(self) -> None:
        self.requested: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for number in SIGNALS:
                self._previous[number] = signal.signal(number, self._ask)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous.clear()

    def _ask(self, number: int, frame: FrameType | None) -> None:
        if self.requested is not None and number == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now
        self.requested = number
