"""Every similarity metric turns bad paired inputs into a named featgeom error."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from featgeom.errors import DataError, FeatgeomError, ShapeError
from featgeom.similarity import debiased_linear_cka, linear_cka, mutual_knn, procrustes, rsa, svcca, svcca_details

METRICS: dict[str, Callable[..., float]] = {
    "svcca": svcca,
    "svcca_details": lambda x, y: svcca_details(x, y).value,
    "svcca_legacy": lambda x, y: svcca(x, y, legacy_top1=True),
    "rsa": rsa,
    "cka": linear_cka,
    "debiased_cka": debiased_linear_cka,
    "mutual_knn": mutual_knn,
    "mutual_knn_euclidean": lambda x, y: mutual_knn(x, y, metric="euclidean"),
    "procrustes": procrustes,
}


@pytest.fixture(params=sorted(METRICS))
def metric(request) -> Callable[..., float]:
    return METRICS[request.param]


@pytest.fixture
def xy() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(5)
    return rng.standard_normal((12, 4)), rng.standard_normal((12, 3))


def test_mismatched_rows(metric, xy) -> None:
    x, y = xy
    with pytest.raises(ShapeError, match="x has 12 rows but y has 11"):
        metric(x, y[:11])


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values(metric, xy, bad: float) -> None:
    x, y = xy
    y = y.copy()
    y[2, 1] = bad
    with pytest.raises(DataError, match="y: contains 1 NaN or infinite"):
        metric(x, y)


@pytest.mark.parametrize(
    "bad_x, message",
    [
        (np.zeros((0, 4)), "x: array is empty"),
        (np.zeros((12, 0)), "x: array is empty"),
        (np.ones(12), "x: expected a 2-D array"),
        (np.ones((12, 4, 1)), "x: expected a 2-D array"),
    ],
)
def test_bad_shapes(metric, xy, bad_x: np.ndarray, message: str) -> None:
    with pytest.raises(ShapeError, match=message):
        metric(bad_x, xy[1])


def test_non_numeric_input(metric, xy) -> None:
    with pytest.raises(DataError, match="x: cannot be read as a numeric array"):
        metric([["a", "b"], ["c", "d"]], xy[1][:2])


def test_single_row(metric, xy) -> None:
    x, y = xy
    with pytest.raises(ShapeError, match="paired rows, got 1"):
        metric(x[:1], y[:1])


def test_constant_input(metric, xy) -> None:
    x, y = xy
    with pytest.raises(DataError, match="x: all"):
        metric(np.full_like(x, 0.1), y)


def test_errors_are_featgeom_errors_and_value_errors(metric, xy) -> None:
    with pytest.raises(FeatgeomError):
        metric(xy[0], xy[1][:3])
    with pytest.raises(ValueError):
        metric(xy[0], xy[1][:3])


def test_torch_tensors_that_require_grad_are_accepted(metric, xy) -> None:
    torch = pytest.importorskip("torch")
    x, y = xy
    tx = torch.tensor(x, requires_grad=True)
    ty = torch.tensor(y, dtype=torch.float32, requires_grad=True)
    assert metric(tx, ty) == pytest.approx(metric(x, y.astype(np.float32)), abs=1e-12)
    assert tx.grad is None and ty.requires_grad  # the caller's tensors are left untouched
