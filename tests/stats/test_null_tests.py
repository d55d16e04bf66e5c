"""null_tests (several metrics, one set of permutations) and the float32 working precision."""

from __future__ import annotations

import numpy as np
import pytest

from featgeom.errors import ConfigError
from featgeom.stats import METRIC_NAMES, null_test, null_tests
from featgeom.stats import null as null_module
from featgeom.stats.kernels import singular_values


@pytest.fixture
def planted() -> tuple[np.ndarray, np.ndarray]:
    """x (80, 6); y (80, 5) = a noisy linear map of x for the first 60 rows, noise for the rest."""
    rng = np.random.default_rng(41)
    x = rng.standard_normal((80, 6)) * np.array([3.0, 2.0, 1.5, 1.0, 0.7, 0.4])
    y = x @ rng.standard_normal((6, 5)) + 0.5 * rng.standard_normal((80, 5))
    y[60:] = rng.standard_normal((20, 5))
    return x, y


def _first_corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a[:, 0], b[:, 0])[0, 1])


def test_every_metric_matches_its_own_null_test(planted) -> None:
    # rsa on a sub-sample permutes 30 items, the others 80: each must still get null_test's draws
    x, y = planted
    kwargs = {"svcca": {"variance": 0.9}, "rsa": {"max_items": 30}}
    metrics = (*METRIC_NAMES, _first_corr)
    joint = null_tests(metrics, x, y, n_perm=40, seed=7, metric_kwargs=kwargs)
    assert list(joint) == [*METRIC_NAMES, "_first_corr"]
    for metric in metrics:
        name = metric if isinstance(metric, str) else metric.__name__
        alone = null_test(metric, x, y, n_perm=40, seed=7, metric_kwargs=kwargs.get(name))
        np.testing.assert_allclose(joint[name].null, alone.null, rtol=0, atol=1e-10)
        assert joint[name].observed == pytest.approx(alone.observed, abs=1e-12)
        assert joint[name].p_value == alone.p_value
        assert (joint[name].n_perm, joint[name].seed, joint[name].kind) == (40, 7, "shuffle")


@pytest.mark.parametrize("metric", METRIC_NAMES)
def test_float32_null_is_the_float64_null_up_to_rounding(planted, metric: str) -> None:
    x, y = planted
    single = null_test(metric, x, y, n_perm=60, seed=3, precision="float32")
    double = null_test(metric, x, y, n_perm=60, seed=3)
    np.testing.assert_allclose(single.null, double.null, rtol=0, atol=1e-5)
    # the loop-path metrics (debiased_cka, mutual_knn) always run in float64
    assert not np.array_equal(single.null, double.null) or metric in ("svcca_legacy", "debiased_cka", "mutual_knn")
    assert single.observed == double.observed  # always computed in float64
    assert single.p_value == double.p_value
    assert single.to_dict()["precision"] == "float32" and double.precision == "float64"


def test_float32_rounding_is_far_below_the_refinement_window() -> None:
    # 3,000 items in 256 dims (C is 256 x 256 per permutation): float32 scores stay within
    # 1e-6 of float64 ones, 100x inside the window where scores are re-scored in float64.
    rng = np.random.default_rng(42)
    x = rng.standard_normal((3000, 256))
    y = x @ rng.standard_normal((256, 256)) + 2.0 * rng.standard_normal((3000, 256))
    metrics = ("svcca", "svcca_legacy", "cka", "procrustes")
    single = null_tests(metrics, x, y, n_perm=19, seed=1, precision="float32")
    double = null_tests(metrics, x, y, n_perm=19, seed=1)
    for metric in metrics:
        gap = np.abs(single[metric].null - double[metric].null).max()
        assert gap < null_module._FLOAT32_WINDOW / 100, metric


def test_float32_near_ties_are_rescored_in_float64() -> None:
    # 4 items: about 1 permutation in 24 is the identity and ties the observed score exactly.
    # Those ties must come out exactly as in float64, so p is the float64 p-value.
    rng = np.random.default_rng(9)
    x = rng.standard_normal((4, 3))
    y = x @ np.linalg.qr(rng.standard_normal((3, 3)))[0] + 0.3 * rng.standard_normal((4, 3))
    single = null_test("cka", x, y, n_perm=400, seed=3, precision="float32")
    double = null_test("cka", x, y, n_perm=400, seed=3)
    ties = np.abs(double.null - double.observed) < 1e-9
    assert ties.sum() >= 10
    np.testing.assert_array_equal(single.null[ties], double.null[ties])
    assert single.p_value == double.p_value


def test_window_is_what_makes_float32_p_values_exact(monkeypatch) -> None:
    # Without re-scoring, float32 rounding drops every identity-permutation tie below the
    # observed score for this seed (p = 1/401 instead of 18/401); the window restores them.
    rng = np.random.default_rng(12)
    x = rng.standard_normal((4, 3))
    y = x @ np.linalg.qr(rng.standard_normal((3, 3)))[0] + 0.3 * rng.standard_normal((4, 3))
    double = null_test("cka", x, y, n_perm=400, seed=3)
    assert null_test("cka", x, y, n_perm=400, seed=3, precision="float32").p_value == double.p_value
    monkeypatch.setattr(null_module, "_FLOAT32_WINDOW", 0.0)
    raw = null_test("cka", x, y, n_perm=400, seed=3, precision="float32")
    assert raw.p_value < double.p_value


@pytest.mark.parametrize("shape", [(5, 7, 3), (5, 3, 7), (2, 40, 40)])
def test_float32_singular_values_match_lapack(shape: tuple[int, int, int]) -> None:
    m = np.random.default_rng(43).standard_normal(shape)
    expected = np.sort(np.linalg.svd(m, compute_uv=False), axis=-1)
    got = singular_values(m.astype(np.float32))
    assert got.dtype == np.float32 and got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=2e-3 * np.abs(m).max())


def test_bad_options(planted) -> None:
    x, y = planted
    with pytest.raises(ConfigError, match="metrics: need distinct metrics"):
        null_tests([], x, y)
    with pytest.raises(ConfigError, match="metrics: need distinct metrics"):
        null_tests(["cka", "cka"], x, y)
    with pytest.raises(ConfigError, match=r"metric_kwargs: for metrics not listed: \['rsa'\]"):
        null_tests(["cka"], x, y, metric_kwargs={"rsa": {"max_items": 10}})
    with pytest.raises(ConfigError, match="metric: unknown name 'pwcca'"):
        null_tests(["cka", "pwcca"], x, y)
    with pytest.raises(ConfigError, match="precision: unknown 'float16'"):
        null_tests(["cka"], x, y, precision="float16")
    with pytest.raises(ConfigError, match="precision: only kind='shuffle'"):
        null_test("cka", x, y, kind="subset", pool_x=x, pool_y=y, precision="float32")
    with pytest.raises(ConfigError, match="n_perm: must be an integer >= 19"):
        null_tests(["cka"], x, y, n_perm=0)
    with pytest.raises(ConfigError, match=r"x 3 score\(s\) need .* use at most 89,478,485 permutations"):
        null_tests(["cka", "rsa", "svcca"], x, y, n_perm=10**9)


def test_a_single_metric_name_is_one_metric(planted) -> None:
    x, y = planted
    got = null_tests("cka", x, y, n_perm=19, seed=2)
    assert list(got) == ["cka"]
    np.testing.assert_array_equal(got["cka"].null, null_test("cka", x, y, n_perm=19, seed=2).null)


@pytest.mark.filterwarnings("error")  # no overflow / underflow on the way
@pytest.mark.parametrize("precision", ["float64", "float32"])
@pytest.mark.parametrize("scale", [1e300, 1e-300])
def test_inputs_near_the_float_limits_get_the_unscaled_null(planted, scale: float, precision: str) -> None:
    # every named metric is invariant to isotropic scaling; the kernels read rescaled sides
    x, y = planted
    want = null_tests(METRIC_NAMES, x, y, n_perm=19, seed=4, precision=precision)
    for sx, sy in ((scale, 1.0), (1.0, scale), (scale, scale)):
        got = null_tests(METRIC_NAMES, x * sx, y * sy, n_perm=19, seed=4, precision=precision)
        for name in METRIC_NAMES:
            assert got[name].observed == pytest.approx(want[name].observed, abs=1e-12), name
            np.testing.assert_allclose(got[name].null, want[name].null, rtol=0, atol=1e-5, err_msg=name)
            assert got[name].p_value == want[name].p_value, name
