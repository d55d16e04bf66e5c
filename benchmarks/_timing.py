"""Shared by the speed benchmarks: alternate timings of featgeom and its reference."""

from __future__ import annotations

import statistics
from collections.abc import Callable


def interleaved(ours: Callable[[], float], reference: Callable[[], float], reps: int) -> dict:
    """Alternate ``reps`` timings of each side (ours, then the reference, ...): a drift in machine
    speed hits both.  Median rates, and the median and range of the per-pair ratios."""
    pairs = [(ours(), reference()) for _ in range(reps)]
    ratios = [a / b for a, b in pairs]
    return {"ours": statistics.median(a for a, _ in pairs), "reference": statistics.median(b for _, b in pairs),
            "ratio": statistics.median(ratios), "ratio_range": [min(ratios), max(ratios)], "pairs": pairs}
