"""Shared fixtures for featgeom.match tests: seeded generators and small SAE-like activations."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

MakeActs = Callable[[int, int, float], np.ndarray]


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


@pytest.fixture
def make_acts(rng: np.random.Generator) -> MakeActs:
    """make_acts(n, width, density): dense (n, width) positive activations, mostly zero."""

    def make(n: int, width: int, density: float) -> np.ndarray:
        return rng.exponential(1.0, (n, width)) * (rng.random((n, width)) < density)

    return make


@pytest.fixture
def planted(
    rng: np.random.Generator, make_acts: MakeActs
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(A (400, 30), B (400, 45), perm): B[:, perm[i]] is a noisy copy of A[:, i]."""
    a = make_acts(400, 30, 0.15)
    perm = rng.permutation(45)[:30]
    b = make_acts(400, 45, 0.15)
    b[:, perm] = a * rng.uniform(0.8, 1.2, a.shape) + 0.05 * make_acts(400, 30, 0.3)
    return a, b, perm
