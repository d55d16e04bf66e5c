"""null_test: result object, p-values, determinism, vectorised == naive, power, subset null."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from featgeom.similarity import linear_cka, procrustes, rsa, svcca
from featgeom.stats import METRIC_NAMES, NullTestResult, null_test
from featgeom.stats import null as null_module

NAIVE = {
    "svcca": svcca,
    "svcca_legacy": lambda x, y, **kw: svcca(x, y, legacy_top1=True, **kw),
    "rsa": rsa,
    "cka": linear_cka,
    "procrustes": procrustes,
}


def _orthogonal(d: int, rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    return q * np.sign(np.diag(r))


@pytest.fixture
def related() -> tuple[np.ndarray, np.ndarray]:
    """y = rotated x + small noise, plus two extra noise dims: x (60, 6), y (60, 8)."""
    rng = np.random.default_rng(21)
    x = rng.standard_normal((60, 6)) * np.array([3.0, 2.5, 2.0, 1.5, 1.0, 0.5])
    y = np.hstack([x @ _orthogonal(6, rng), np.zeros((60, 2))]) + 0.1 * rng.standard_normal((60, 8))
    return x, y


@pytest.fixture
def unrelated() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(22)
    return rng.standard_normal((50, 5)), rng.standard_normal((50, 7))


def _naive_shuffle(metric: str, x, y, n_perm: int, seed: int, **kwargs) -> np.ndarray:
    """The documented null, one metric call per permutation of y's rows."""
    rng = np.random.default_rng(seed)
    return np.array([NAIVE[metric](x, y[rng.permutation(len(y))], **kwargs) for _ in range(n_perm)])


@pytest.mark.parametrize(
    "metric, kwargs",
    [
        ("svcca", {}),
        ("svcca", {"k": 2}),
        ("svcca", {"variance": 0.8}),
        ("svcca_legacy", {}),
        ("rsa", {}),
        ("rsa", {"rdm": "correlation", "compare": "pearson"}),
        ("rsa", {"rdm": "cosine"}),
        ("cka", {}),
        ("procrustes", {}),
    ],
)
def test_vectorised_null_equals_naive_loop(unrelated, metric: str, kwargs: dict) -> None:
    x, y = unrelated
    res = null_test(metric, x, y, n_perm=25, seed=9, metric_kwargs=kwargs)
    naive = _naive_shuffle(metric, x, y, 25, 9, **kwargs)
    np.testing.assert_allclose(res.null, naive, rtol=0, atol=1e-10)
    assert res.observed == pytest.approx(NAIVE[metric](x, y, **kwargs), abs=1e-10)


def test_cka_gram_path_equals_naive_loop() -> None:
    # 100 items with rank-99 sides: ranks^2 > 64 n, so the kernel compares Gram matrices.
    rng = np.random.default_rng(23)
    x, y = rng.standard_normal((100, 120)), rng.standard_normal((100, 110))
    res = null_test("cka", x, y, n_perm=19, seed=2)
    np.testing.assert_allclose(res.null, _naive_shuffle("cka", x, y, 19, 2), rtol=0, atol=1e-10)


def test_batch_size_does_not_change_the_permutations(unrelated, monkeypatch) -> None:
    x, y = unrelated
    whole = null_test("svcca", x, y, n_perm=30, seed=4)
    monkeypatch.setattr(null_module, "_BATCH_BYTES", 1)  # one permutation per batch
    # same permutations; only BLAS blocking (rounding) may differ
    split = null_test("svcca", x, y, n_perm=30, seed=4)
    np.testing.assert_allclose(split.null, whole.null, rtol=0, atol=1e-14)


def test_rsa_beyond_max_items_permutes_within_the_subsample() -> None:
    rng = np.random.default_rng(24)
    x = rng.standard_normal((30, 4))
    y = x + 0.5 * rng.standard_normal((30, 4))
    res = null_test("rsa", x, y, n_perm=19, seed=1, metric_kwargs={"max_items": 12, "seed": 5})
    items = np.sort(np.random.default_rng(5).choice(30, size=12, replace=False))
    assert res.observed == pytest.approx(rsa(x, y, max_items=12, seed=5), abs=1e-12)
    naive = _naive_shuffle("rsa", x[items], y[items], 19, 1)
    np.testing.assert_allclose(res.null, naive, rtol=0, atol=1e-12)


def test_callable_metric_is_called_per_permutation(unrelated) -> None:
    x, y = unrelated

    def first_column_corr(a: np.ndarray, b: np.ndarray, col: int = 0) -> float:
        return float(np.corrcoef(a[:, col], b[:, col])[0, 1])

    res = null_test(first_column_corr, x, y, n_perm=40, seed=3, metric_kwargs={"col": 1})
    rng = np.random.default_rng(3)
    expected = [first_column_corr(x, y[rng.permutation(50)], col=1) for _ in range(40)]
    np.testing.assert_array_equal(res.null, expected)
    assert res.metric == "first_column_corr"
    assert res.observed == first_column_corr(x, y, col=1)


def test_p_value_formula_and_summary(unrelated) -> None:
    x, y = unrelated
    res = null_test("cka", x, y, n_perm=99, seed=0)
    assert res.p_value == (1 + np.sum(res.null >= res.observed)) / 100
    assert res.null_mean == pytest.approx(res.null.mean())
    assert res.null_std == pytest.approx(res.null.std())
    assert (res.n_perm, res.kind, res.seed, res.metric) == (99, "shuffle", 0, "cka")


@pytest.mark.parametrize("metric", METRIC_NAMES)
def test_p_value_is_never_zero_and_related_pairs_are_significant(related, metric: str) -> None:
    x, y = related
    res = null_test(metric, x, y, n_perm=199, seed=1)
    assert res.p_value == pytest.approx(1 / 200)  # nothing in the null reaches the observed score
    assert 0 < res.p_value < 0.01


def test_identical_inputs_still_get_a_positive_p_value(unrelated) -> None:
    x, _ = unrelated
    assert null_test("procrustes", x, x, n_perm=50).p_value == pytest.approx(1 / 51)


def test_same_seed_same_numbers_other_seed_other_numbers(unrelated) -> None:
    x, y = unrelated
    a, b = null_test("rsa", x, y, n_perm=30, seed=5), null_test("rsa", x, y, n_perm=30, seed=5)
    np.testing.assert_array_equal(a.null, b.null)
    assert a.p_value == b.p_value
    assert not np.array_equal(null_test("rsa", x, y, n_perm=30, seed=6).null, a.null)


def test_result_is_frozen_read_only_and_json_ready(unrelated) -> None:
    x, y = unrelated
    res = null_test("svcca_legacy", x, y, n_perm=20, seed=2)
    assert isinstance(res, NullTestResult)
    with pytest.raises(dataclasses.FrozenInstanceError):
        res.p_value = 0.0  # type: ignore[misc]
    with pytest.raises(ValueError):
        res.null[0] = 1.0
    data = json.loads(json.dumps(res.to_dict()))
    assert data["null"] == res.null.tolist()
    assert {k: data[k] for k in ("metric", "kind", "n_perm", "seed")} == {
        "metric": "svcca_legacy",
        "kind": "shuffle",
        "n_perm": 20,
        "seed": 2,
    }
    assert data["p_value"] == res.p_value and data["observed"] == res.observed


def test_subset_null_draws_unpaired_random_rows_of_the_pools() -> None:
    rng = np.random.default_rng(25)
    pool_x, pool_y = rng.standard_normal((80, 5)), rng.standard_normal((70, 4))
    x, y = pool_x[:20], pool_y[:20]
    res = null_test("cka", x, y, kind="subset", n_perm=19, seed=8, pool_x=pool_x, pool_y=pool_y)
    draws = np.random.default_rng(8)
    expected = []
    for _ in range(19):
        ix = draws.choice(80, size=20, replace=False)
        iy = draws.choice(70, size=20, replace=False)
        expected.append(linear_cka(pool_x[ix], pool_y[iy]))
    np.testing.assert_array_equal(res.null, expected)
    assert res.observed == linear_cka(x, y)
    assert res.kind == "subset"


def test_subset_null_with_paired_pool_keeps_the_pairing() -> None:
    rng = np.random.default_rng(26)
    pool_x = rng.standard_normal((90, 5))
    pool_y = pool_x @ _orthogonal(5, rng) + 0.3 * rng.standard_normal((90, 5))
    x, y = pool_x[:25], pool_y[:25]
    pools = {"pool_x": pool_x, "pool_y": pool_y, "paired_pool": True}
    res = null_test("svcca", x, y, kind="subset", n_perm=19, seed=3, **pools)
    draws = np.random.default_rng(3)
    expected = []
    for _ in range(19):
        idx = draws.choice(90, size=25, replace=False)
        expected.append(svcca(pool_x[idx], pool_y[idx]))
    np.testing.assert_array_equal(res.null, expected)
    assert res.p_value > 0.05  # a random paired subset is no more similar than other paired subsets


def test_subset_null_detects_a_specially_aligned_subset() -> None:
    # Pools are independent except for 30 planted pairs; the planted pairs beat random subsets.
    rng = np.random.default_rng(27)
    pool_x, pool_y = rng.standard_normal((300, 6)), rng.standard_normal((300, 6))
    pool_y[:30] = pool_x[:30] @ _orthogonal(6, rng) + 0.1 * rng.standard_normal((30, 6))
    res = null_test(
        "svcca", pool_x[:30], pool_y[:30], kind="subset", n_perm=99, pool_x=pool_x, pool_y=pool_y
    )
    assert res.p_value == pytest.approx(0.01)


def test_scores_tied_with_the_observed_one_count_despite_rounding() -> None:
    # With 4 items, 1 in 24 permutations is the identity and scores exactly like the observed
    # pairing; rounding in the batched kernel must not push those ties below the observed score.
    # (Seed picked so that, without the tie tolerance, rounding puts every tie below: p = 1/401.)
    rng = np.random.default_rng(9)
    x = rng.standard_normal((4, 3))
    y = x @ _orthogonal(3, rng) + 0.3 * rng.standard_normal((4, 3))
    res = null_test("cka", x, y, n_perm=400, seed=3)
    draws = np.random.default_rng(3)
    naive = np.array([linear_cka(x, y[draws.permutation(4)]) for _ in range(400)])
    ties_or_more = int(np.sum(naive >= res.observed - 1e-9))
    assert ties_or_more >= 10
    assert res.p_value == pytest.approx((1 + ties_or_more) / 401)


def test_svcca_keeping_every_direction_scores_one_for_every_pairing() -> None:
    # 4 items in 3 dims: the kept subspaces are all of the 3-D centered item space, so every
    # permutation scores 1 (up to rounding) and p must be exactly 1 (without the tie tolerance,
    # rounding gives p = 38/101 for this seed).
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    assert null_test("svcca", x, y, n_perm=100).p_value == 1.0
