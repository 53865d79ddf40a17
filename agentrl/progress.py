"""Progress of long phases: a rich progress bar on an interactive console, plain lines elsewhere.

::

    progress = Progress()
    with progress.phase("evaluating (greedy)", total=32, unit="episode") as bar:
        workers.collect(jobs, rng_seed=0, on_episode=bar.advance)

On an interactive terminal the phase shows ``evaluating (greedy) ━━━━━━━━ 12/32 episodes 0:00:07 ETA
0:00:11`` and removes the bar when it ends (the per-iteration table rows stay). When stdout
is not a terminal (CI logs, ``nohup``, a pipe) nothing is redrawn, so no carriage returns
reach the log: a phase opened with ``plain_updates`` prints a line about every tenth of
its work (``warm start: step 12/120, 30 s``), the others print nothing.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.progress import Progress as RichProgress


class Phase:
    """A running phase: call :meth:`advance` as work finishes (it is the ``on_episode`` /
    per-step callback); :meth:`set_total` when the amount of work is known only later."""

    def __init__(
        self,
        name: str,
        total: int | None,
        unit: str,
        console: Console,
        bar: RichProgress | None,
        plain_updates: bool,
    ):
        self.name, self.total, self.unit = name, total, unit
        self.done = 0
        self._console = console
        self._bar = bar
        self._task: TaskID | None = None
        self._plain = plain_updates and bar is None
        self._start = time.perf_counter()
        if bar is not None:
            self._task = bar.add_task(name, total=total, unit=unit)

    def set_total(self, total: int | None) -> None:
        """Set how much work the phase has (``None``: unknown, the bar pulses)."""
        self.total = total
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, total=total)

    def advance(self, n: int = 1) -> None:
        """``n`` more units of work are done."""
        before, self.done = self.done, self.done + n
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, advance=n)
        elif self._plain:  # a line about every tenth of the work, and at its end
            every = max(1, (self.total or 0) // 10)
            if self.done // every > before // every or self.done == self.total:
                self._console.print(self.line(), highlight=False, soft_wrap=True)

    def line(self) -> str:
        """``name: unit done/total, elapsed s`` (the plain progress line)."""
        total = "?" if self.total is None else str(self.total)
        elapsed = time.perf_counter() - self._start
        return f"{self.name}: {self.unit} {self.done}/{total}, {elapsed:.0f} s"


class Progress:
    """Progress bars for a run's long phases.

    Args:
        enabled: ``False`` turns everything off (``logging.progress=false``): phases do nothing.
        console: where to draw (default: a console on stdout). Bars are drawn only when it is
            an interactive terminal (:attr:`interactive`).
    """

    def __init__(self, enabled: bool = True, console: Console | None = None):
        self.enabled = enabled
        self.console = console if console is not None else Console()

    @property
    def interactive(self) -> bool:
        """Whether bars are drawn: enabled, and rich sees an interactive terminal (a TTY that
        is not ``TERM=dumb``; the environment variable ``TTY_INTERACTIVE=0`` says it is not)."""
        return self.enabled and self.console.is_interactive

    @contextmanager
    def phase(
        self, name: str, total: int | None, unit: str = "step", plain_updates: bool = False
    ) -> Iterator[Phase]:
        """A phase of ``total`` units of ``unit``: a bar with done/total, elapsed time and ETA
        while the block runs (removed at its end) on an interactive console; without one,
        about ten ``name: unit done/total, N s`` lines if ``plain_updates``, else nothing."""
        bar = None
        if self.interactive:
            bar = RichProgress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[unit]}s"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=self.console,
                transient=True,
            )
            bar.start()
        try:
            yield Phase(name, total, unit, self.console, bar, plain_updates and self.enabled)
        finally:
            if bar is not None:
                bar.stop()
