"""Progress of a training run on stderr: a rich bar on a terminal, plain lines otherwise.

Both are fed the history rows of :func:`featgeom.sae.train.train` (keys of HISTORY_KEYS) as they
are logged.  The plain lines (for logs, pipes, batch jobs) come each time another tenth of the
samples is done: samples done, loss, L0 and the rate since the previous line.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Protocol, TextIO

from featgeom.sae.config import SAETrainConfig

LINES = 10  # plain progress lines per run


class Progress(Protocol):
    """What the trainer calls: ``update`` after each history row, ``close`` at the end."""

    def update(self, samples: int, row: dict[str, float]) -> None: ...

    def close(self) -> None: ...


def progress_reporter(cfg: SAETrainConfig, done: int, stream: TextIO | None = None) -> Progress:
    """A :class:`ProgressBar` when ``stream`` (default stderr) is a terminal, else :class:`ProgressLines`."""
    stream = sys.stderr if stream is None else stream
    return ProgressBar(cfg, done) if stream.isatty() else ProgressLines(cfg, done, stream)


def _label(cfg: SAETrainConfig) -> str:
    return f"sae train {cfg.arch} width {cfg.width}"


class ProgressBar:
    """A rich progress bar on stderr: samples, samples/s, L0, MSE."""

    def __init__(self, cfg: SAETrainConfig, done: int) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        self.progress = Progress(TextColumn(_label(cfg)), BarColumn(),
                                 TextColumn("{task.completed:,}/{task.total:,}"), TextColumn("{task.fields[info]}"),
                                 TimeRemainingColumn(), console=Console(stderr=True), transient=False)
        self.task = self.progress.add_task("train", total=cfg.steps * cfg.batch_size, completed=done, info="")
        self.progress.start()

    def update(self, samples: int, row: dict[str, float]) -> None:
        info = f"{row['samples_per_s']:,.0f} samples/s  L0 {row['l0']:.1f}  MSE {row['mse']:.4g}"
        self.progress.update(self.task, completed=samples, info=info)

    def close(self) -> None:
        self.progress.stop()


class ProgressLines:
    """One plain line on ``stream`` each time another 1/LINES of the samples is done."""

    def __init__(self, cfg: SAETrainConfig, done: int, stream: TextIO) -> None:
        self.label, self.total, self.stream = _label(cfg), cfg.steps * cfg.batch_size, stream
        self.shown = done * LINES // self.total  # tenths already reported (a resumed run skips them)
        self.clock, self.clock_samples = time.perf_counter(), done

    def update(self, samples: int, row: dict[str, Any]) -> None:
        part = samples * LINES // self.total
        if part <= self.shown:
            return
        now = time.perf_counter()
        rate = (samples - self.clock_samples) / max(now - self.clock, 1e-9)
        print(f"{self.label}: {samples:,}/{self.total:,} samples ({100 * samples / self.total:.0f}%), "
              f"loss {row['loss']:.4g}, L0 {row['l0']:.1f}, {rate:,.0f} samples/s", file=self.stream, flush=True)
        self.shown, self.clock, self.clock_samples = part, now, samples

    def close(self) -> None:
        """Nothing to release (every line is already flushed)."""
