"""Architecture-specific response (ASR) to superposition across a rho_mm spectrum (task 3.1)."""

from __future__ import annotations

import numpy as np
import pytest

from featgeom.errors import DataError, ShapeError
from featgeom.metrics import architecture_specific_response


def test_by_hand() -> None:
    # A: 0.9, 0.8 at rho 0.1, 0.7 at 0.3; B: 0.8 at 0.1, 0.4, 0.6 at 0.3
    got = architecture_specific_response(
        ["A", "A", "A", "B", "B", "B"], [0.1, 0.1, 0.3, 0.1, 0.3, 0.3],
        [0.9, 0.8, 0.7, 0.8, 0.4, 0.6],
    )
    assert got.architectures.tolist() == ["A", "B"]
    np.testing.assert_allclose(got.levels, [0.1, 0.3])
    np.testing.assert_array_equal(got.n_runs, [[2, 1], [1, 2]])
    np.testing.assert_allclose(got.mean_mcc, [[0.85, 0.7], [0.8, 0.5]])
    np.testing.assert_allclose(got.response, [[0.025, 0.1], [-0.025, -0.1]])  # level means .825, .6
    np.testing.assert_allclose(got.diversity, [[np.sqrt(0.005), np.nan], [np.nan, np.sqrt(0.02)]])
    np.testing.assert_allclose(got.slope, [-0.75, -1.5])  # (0.7 - 0.85) / 0.2, (0.5 - 0.8) / 0.2
    np.testing.assert_allclose(got.slope_response, [0.375, -0.375])


def test_planted_slopes(rng) -> None:
    levels = np.linspace(0.05, 0.4, 5)
    slopes = {"l1": -0.5, "topk": -1.0, "mp": -1.5}
    rows = [(arch, x, 0.95 + s * x + e) for arch, s in slopes.items() for x in levels
            for e in (-0.02, 0.0, 0.02)]
    rows = [rows[i] for i in rng.permutation(len(rows))]  # order of runs does not matter
    arch, rho, score = (list(col) for col in zip(*rows, strict=True))
    got = architecture_specific_response(arch, np.array(rho), np.array(score))
    assert got.architectures.tolist() == ["l1", "mp", "topk"]
    np.testing.assert_allclose(got.slope, [-0.5, -1.5, -1.0])
    np.testing.assert_allclose(got.slope_response, [0.5, -0.5, 0.0], atol=1e-12)
    np.testing.assert_allclose(got.response, np.outer([0.5, -0.5, 0.0], levels), atol=1e-12)
    np.testing.assert_allclose(got.diversity, 0.02, rtol=1e-9)
    np.testing.assert_allclose(got.response.sum(axis=0), 0.0, atol=1e-12)


@pytest.mark.parametrize(
    ("args", "error", "name"),
    [
        ((["A", "B"], [0.1, 0.2, 0.3], [0.5, 0.5]), ShapeError, "rho_mm"),
        ((["A", "B"], [0.1, 0.2], [0.5]), ShapeError, "mcc"),
        ((["A", "B"], [0.1, np.nan], [0.5, 0.5]), DataError, "rho_mm"),
        ((["A", "B"], [0.1, 0.2], [0.5, 1.5]), DataError, "mcc"),
        ((["A", "A"], [0.1, 0.2], [0.5, 0.6]), DataError, "architectures"),
        ((["A", "B"], [0.1, 0.1], [0.5, 0.6]), DataError, "rho_mm"),
        ((["A", "A", "B"], [0.1, 0.2, 0.1], [0.5, 0.6, 0.7]), DataError, "'B' has no run"),
        (([["A", "B"]], [0.1, 0.2], [0.5, 0.6]), ShapeError, "architectures"),
    ],
    ids=["rho-length", "mcc-length", "nan", "mcc-range", "one-architecture", "one-level",
         "missing-cell", "2-d-names"],
)
def test_errors(args, error, name) -> None:
    with pytest.raises(error, match=name):
        architecture_specific_response(*args)
