"""Every similarity metric is invariant to isotropic scaling of either side, so inputs near 1e300
or 1e-300 give the value of their unscaled copy: no overflow, underflow, NaN or LinAlgError."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from featgeom.similarity import debiased_linear_cka, linear_cka, mutual_knn, procrustes, rsa, svcca, svcca_details
from featgeom.similarity.base import centered, rescaled

METRICS: dict[str, Callable[..., float]] = {
    "svcca": svcca,
    "svcca_k2": lambda x, y: svcca(x, y, k=2),
    "svcca_details": lambda x, y: svcca_details(x, y).value,
    "svcca_legacy": lambda x, y: svcca(x, y, legacy_top1=True),
    "cka": linear_cka,
    "debiased_cka": debiased_linear_cka,
    "mutual_knn": mutual_knn,
    "mutual_knn_euclidean": lambda x, y: mutual_knn(x, y, metric="euclidean"),
    "procrustes": procrustes,
    **{
        f"rsa_{rdm}_{compare}": (lambda r, c: lambda x, y: rsa(x, y, rdm=r, compare=c))(rdm, compare)
        for rdm in ("euclidean", "correlation", "cosine")
        for compare in ("spearman", "pearson")
    },
}


@pytest.fixture(scope="module")
def xy() -> tuple[np.ndarray, np.ndarray]:
    """Paired rows with some shared structure: x (40, 6), y (40, 4)."""
    rng = np.random.default_rng(17)
    x = rng.standard_normal((40, 6)) * np.array([3.0, 2.0, 1.5, 1.0, 0.5, 0.2])
    return x, x[:, :4] @ rng.standard_normal((4, 4)) + 0.5 * rng.standard_normal((40, 4))


@pytest.mark.filterwarnings("error")  # an overflow/underflow RuntimeWarning fails the test
@pytest.mark.parametrize("scale", [1e300, 1e307, 1e-300, 1e-310])
@pytest.mark.parametrize("side", ["x", "y", "both"])
@pytest.mark.parametrize("name", sorted(METRICS))
def test_extreme_magnitudes_give_the_unscaled_value(xy, name: str, side: str, scale: float) -> None:
    x, y = xy
    metric = METRICS[name]
    want = metric(x, y)
    sx = scale if side in ("x", "both") else 1.0
    sy = scale if side in ("y", "both") else 1.0
    # 1e-310 is subnormal: the input itself keeps only ~13 significant digits
    tol = 1e-9 if scale < 1e-308 else 1e-12
    assert metric(x * sx, y * sy) == pytest.approx(want, abs=tol)


def test_rescaling_is_an_exact_power_of_two() -> None:
    a = np.random.default_rng(3).standard_normal((30, 5))
    for k in (-1000, -60, 0, 7, 1000):
        b = np.ldexp(a, k)  # a * 2**k, exact
        np.testing.assert_array_equal(rescaled(b), rescaled(a))
        np.testing.assert_array_equal(centered(b, "x"), centered(a, "x"))
    assert 0.5 <= np.abs(rescaled(a)).max() < 1.0
    np.testing.assert_array_equal(rescaled(np.zeros((3, 2))), np.zeros((3, 2)))
