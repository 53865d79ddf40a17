"""Ctrl-C during a training run: the first one asks the run to stop after the iteration it
is in (the trainer then saves a checkpoint and writes its summary), a second one aborts at
once."""

from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType
from typing import Any


class StopOnCtrlC:
    """While the ``with`` block runs, SIGINT sets :attr:`requested` instead of raising
    ``KeyboardInterrupt`` (a second SIGINT, once requested, raises it). Signal handlers can
    only be set in the main thread: elsewhere the block runs with the handler unchanged.
    :attr:`requested` stays set after the block (a run stopped once stays stopped)."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def __enter__(self) -> StopOnCtrlC:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:  # a second Ctrl-C aborts at once
            raise KeyboardInterrupt
        self.requested = True
        print(
            "\nCtrl-C: finishing this iteration, saving a checkpoint, then exiting (Ctrl-C again to abort)"
        )


__all__ = ["StopOnCtrlC"]
