"""Progress on stderr: a bar on a terminal, a plain line per tenth of the samples otherwise."""

from __future__ import annotations

import io

from featgeom.sae.progress import ProgressBar, ProgressLines, progress_reporter

ROW = {"loss": 0.5, "l0": 4.0, "mse": 0.25, "samples_per_s": 1000.0}


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_the_bar_anything_else_plain_lines(quick):
    bar = progress_reporter(quick("topk"), 0, _Terminal())
    try:
        assert isinstance(bar, ProgressBar)
    finally:
        bar.close()
    assert isinstance(progress_reporter(quick("topk"), 0, io.StringIO()), ProgressLines)


def test_a_resumed_run_reports_only_the_tenths_still_to_come(quick):
    stream = io.StringIO()
    lines = ProgressLines(quick("topk"), 8192, stream)  # 16,384 samples, half done at the checkpoint
    for samples in range(8192 + 512, 16_385, 512):
        lines.update(samples, ROW)
    shown = [line.split(": ")[1].split(" samples")[0] for line in stream.getvalue().splitlines()]
    # the first update past 6/10, 7/10, ... of 16,384 (tenths 1-5 were reported before the kill)
    assert shown == ["10,240/16,384", "11,776/16,384", "13,312/16,384", "14,848/16,384", "16,384/16,384"]
    assert stream.getvalue().splitlines()[-1].startswith("sae train topk width 64: 16,384/16,384 samples (100%), "
                                                         "loss 0.5, L0 4.0, ")
