"""null_test turns bad options and bad inputs into named featgeom errors."""

from __future__ import annotations

import numpy as np
import pytest

from featgeom.errors import ConfigError, DataError, ShapeError
from featgeom.stats import null_test


@pytest.fixture
def xy() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(41)
    return rng.standard_normal((20, 4)), rng.standard_normal((20, 3))


def test_unknown_metric_name(xy) -> None:
    allowed = r"\(allowed: svcca, svcca_legacy, rsa, cka, procrustes, debiased_cka, mutual_knn\)"
    with pytest.raises(ConfigError, match="metric: unknown name 'pwcca' " + allowed):
        null_test("pwcca", *xy)


def test_metric_not_callable(xy) -> None:
    with pytest.raises(ConfigError, match="metric: expected a name or a callable, got int"):
        null_test(42, *xy)  # type: ignore[arg-type]


def test_unknown_kind(xy) -> None:
    with pytest.raises(ConfigError, match="kind: unknown null 'bootstrap'"):
        null_test("cka", *xy, kind="bootstrap")


@pytest.mark.parametrize("n_perm", [0, -5, 1, 18, 2.5, True, "100"])
def test_bad_n_perm(xy, n_perm) -> None:
    # p >= 1 / (1 + n_perm): n_perm = 1 always gave p >= 0.5, so it is refused below 19
    with pytest.raises(ConfigError, match=r"n_perm: must be an integer >= 19, got .* reach 0.05"):
        null_test("cka", *xy, n_perm=n_perm)
    with pytest.raises(ConfigError, match="n_perm: must be an integer >= 19"):
        null_test("cka", *xy, n_perm=n_perm, kind="subset", pool_x=xy[0], pool_y=xy[1])


def test_fewest_permutations_reach_p_005(xy) -> None:
    x, _ = xy
    assert null_test("procrustes", x, x, n_perm=19).p_value == pytest.approx(0.05)


@pytest.mark.parametrize("kind", ["shuffle", "subset"])
def test_n_perm_whose_null_would_not_fit_memory_is_refused_before_allocating(xy, kind) -> None:
    pools = {"pool_x": xy[0], "pool_y": xy[1]} if kind == "subset" else {}
    with pytest.raises(ConfigError, match=r"n_perm: 1,000,000,000,000 permutations x 1 score\(s\) need "
                                          r"7,450.6 GiB of null scores, over the 2 GiB limit; use at most "
                                          r"268,435,456 permutations"):
        null_test("cka", *xy, n_perm=10**12, kind=kind, **pools)


@pytest.mark.parametrize("seed", [-1, 1.5, None])
def test_bad_seed(xy, seed) -> None:
    with pytest.raises(ConfigError, match="seed: must be a non-negative integer"):
        null_test("cka", *xy, seed=seed)


def test_bad_metric_kwargs(xy) -> None:
    with pytest.raises(ConfigError, match="metric_kwargs: not accepted by metric cka"):
        null_test("cka", *xy, metric_kwargs={"variance": 0.9})
    with pytest.raises(ConfigError, match="metric_kwargs: not accepted by metric svcca_legacy"):
        null_test("svcca_legacy", *xy, metric_kwargs={"k": 2})
    with pytest.raises(ConfigError, match="metric_kwargs: must be a mapping"):
        null_test("cka", *xy, metric_kwargs=[("k", 2)])  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="metric_kwargs: not accepted by metric my_metric"):
        null_test(my_metric, *xy, metric_kwargs={"alpha": 1})


def my_metric(x: np.ndarray, y: np.ndarray) -> float:
    return 0.0


def test_metric_option_errors_pass_through(xy) -> None:
    with pytest.raises(ShapeError, match="k: 5 exceeds"):
        null_test("svcca", *xy, metric_kwargs={"k": 5})
    with pytest.raises(ConfigError, match="rdm: unknown dissimilarity"):
        null_test("rsa", *xy, metric_kwargs={"rdm": "manhattan"})


def test_bad_inputs(xy) -> None:
    x, y = xy
    with pytest.raises(ShapeError, match="x has 20 rows but y has 19"):
        null_test("svcca", x, y[:19])
    bad = x.copy()
    bad[0, 0] = np.nan
    with pytest.raises(DataError, match="x: contains 1 NaN"):
        null_test("svcca", bad, y)
    with pytest.raises(ShapeError, match="x: array is empty"):
        null_test("svcca", np.zeros((0, 4)), np.zeros((0, 3)))
    with pytest.raises(ShapeError, match="paired rows, got 1"):
        null_test(lambda a, b: 1.0, x[:1], y[:1])
    with pytest.raises(DataError, match="x: all rows are identical"):
        null_test("cka", np.ones_like(x), y)


def test_callable_returning_garbage(xy) -> None:
    def returns_nan(a: np.ndarray, b: np.ndarray) -> float:
        return float("nan")

    def returns_text(a: np.ndarray, b: np.ndarray) -> str:
        return "high"

    with pytest.raises(DataError, match="metric returns_nan: returned a non-finite value"):
        null_test(returns_nan, *xy)
    with pytest.raises(DataError, match="metric returns_text: returned str, not a number"):
        null_test(returns_text, *xy)
    with pytest.raises(DataError, match="returned a non-finite value"):
        null_test(returns_nan, *xy, kind="subset", pool_x=xy[0], pool_y=xy[1])


def test_pool_options(xy) -> None:
    x, y = xy
    with pytest.raises(ConfigError, match="pool_x, pool_y, paired_pool: only used by kind='subset"):
        null_test("cka", x, y, pool_x=x, pool_y=y)
    with pytest.raises(ConfigError, match="only used by kind='subset'"):
        null_test("cka", x, y, paired_pool=True)
    with pytest.raises(ConfigError, match="kind='subset' needs both pools"):
        null_test("cka", x, y, kind="subset", pool_x=x)
    with pytest.raises(ShapeError, match="pool_y: has dim 5 but its side of the pairs has dim 3"):
        null_test("cka", x, y, kind="subset", pool_x=x, pool_y=np.ones((30, 5)))
    with pytest.raises(ShapeError, match="pool_x: has 10 rows, fewer than the 20 rows to draw"):
        null_test("cka", x, y, kind="subset", pool_x=x[:10], pool_y=y)
    with pytest.raises(ShapeError, match="pool_x has 20 rows but pool_y has 25"):
        bigger = np.vstack([y, y[:5]])
        null_test("cka", x, y, kind="subset", pool_x=x, pool_y=bigger, paired_pool=True)
    pool_y = y.copy()
    pool_y[3, 1] = np.inf
    with pytest.raises(DataError, match="pool_y: contains 1 NaN or infinite"):
        null_test("cka", x, y, kind="subset", pool_x=x, pool_y=pool_y)


def test_torch_tensors_that_require_grad_are_accepted(xy) -> None:
    torch = pytest.importorskip("torch")
    x, y = xy
    tx, ty = torch.tensor(x, requires_grad=True), torch.tensor(y, requires_grad=True)
    assert null_test("cka", tx, ty, n_perm=19).p_value == null_test("cka", x, y, n_perm=19).p_value
    subset = null_test("cka", tx, ty, n_perm=19, kind="subset", pool_x=tx, pool_y=ty)
    assert subset.p_value == null_test("cka", x, y, n_perm=19, kind="subset", pool_x=x, pool_y=y).p_value
