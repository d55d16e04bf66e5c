"""Shared fixtures for the featgeom.metrics tests: seeded generators and planted decoders."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20250101)


@pytest.fixture
def features(rng: np.random.Generator) -> np.ndarray:
    """40 random unit feature directions in 64 dims (|cos| between features ~0.1)."""
    f = rng.standard_normal((40, 64))
    return f / np.linalg.norm(f, axis=1, keepdims=True)


Plant = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


@pytest.fixture
def plant(rng: np.random.Generator) -> Plant:
    """plant(features) -> (decoder, perm): rows permuted, sign-flipped and rescaled.

    decoder[i] = sign_i * scale_i * features[perm[i]].
    """

    def make(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = features.shape[0]
        perm = rng.permutation(n)
        signs = rng.choice([-1.0, 1.0], n)
        scales = rng.uniform(0.2, 5.0, n)
        return features[perm] * (signs * scales)[:, None], perm

    return make


@pytest.fixture
def make_acts(rng: np.random.Generator) -> Callable[[int, int, float], np.ndarray]:
    """make_acts(n, width, density): dense (n, width) nonnegative activations, each entry
    active (exponential magnitude) with probability ``density``."""

    def make(n: int, width: int, density: float) -> np.ndarray:
        return rng.exponential(1.0, (n, width)) * (rng.random((n, width)) < density)

    return make
