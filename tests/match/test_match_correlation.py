"""activation_correlation: equality with np.corrcoef, dead/constant latents, top-k, bad inputs."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.sparse as sp

from featgeom.errors import ConfigError, DataError, FeatgeomError, ShapeError
from featgeom.match import CorrelationAccumulator, activation_correlation
from featgeom.match._topk import topk_rows


def naive(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Dense reference: Pearson correlation of every column of a with every column of b."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.corrcoef(a.T, b.T)[: a.shape[1], a.shape[1] :]


def check_equal(result, a: np.ndarray, b: np.ndarray) -> None:
    ref = naive(a, b)[np.ix_(result.alive_a, result.alive_b)]
    assert result.matrix.shape == ref.shape
    np.testing.assert_allclose(result.matrix, ref, atol=1e-5, rtol=0)


def test_dense_gaussian_input_equals_corrcoef(rng):
    a, b = rng.standard_normal((300, 12)), rng.standard_normal((300, 17))
    b[:, 3] += 2 * a[:, 5]
    res = activation_correlation(a, b)
    check_equal(res, a, b)
    assert res.n_samples == 300 and res.alive_a.size == 12 and res.alive_b.size == 17


@pytest.mark.parametrize("fmt", [sp.csr_array, sp.csc_array, sp.csr_matrix, sp.coo_array])
def test_sparse_input_equals_corrcoef(planted, fmt):
    a, b, _ = planted
    check_equal(activation_correlation(fmt(a), fmt(b)), a, b)


def test_streamed_batches_equal_corrcoef(planted):
    a, b, _ = planted
    cuts = [0, 37, 150, 151, 290, 400]
    stream = (
        (a[s:e], sp.csr_array(b[s:e])) if k % 2 else (sp.csc_array(a[s:e]), b[s:e])
        for k, (s, e) in enumerate(itertools.pairwise(cuts))
    )
    check_equal(activation_correlation(stream), a, b)


def test_accumulator_update_equals_corrcoef(planted):
    a, b, _ = planted
    acc = CorrelationAccumulator()
    for s in range(0, 400, 64):
        acc.update(sp.csr_array(a[s : s + 64]), b[s : s + 64])
    check_equal(acc.result(), a, b)


def test_dense_and_sparse_cross_products_combine(rng, make_acts):
    """A dense batch goes through BLAS, a sparse one through sparse products; the sum is exact."""
    dense_a, dense_b = rng.standard_normal((50, 10)), rng.standard_normal((50, 14))
    sparse_a, sparse_b = make_acts(200, 10, 0.05), make_acts(200, 14, 0.05)
    a, b = np.vstack([dense_a, sparse_a]), np.vstack([dense_b, sparse_b])
    check_equal(activation_correlation([(dense_a, dense_b), (sparse_a, sparse_b)]), a, b)


def test_batch_size_does_not_change_result(planted):
    a, b, _ = planted
    whole = activation_correlation(a, b)
    chunked = activation_correlation(a, b, batch_size=7)
    np.testing.assert_allclose(chunked.matrix, whole.matrix, atol=1e-12)


def test_dead_and_constant_latents_are_reported_and_excluded(planted):
    a, b, _ = planted
    a, b = a.copy(), b.copy()
    a[:, 2] = 0.0  # dead
    a[:, 5] = 3.0  # constant, active everywhere
    b[:, 0] = 0.0
    b[:, 7] = -1.5
    for x, y in [(a, b), (sp.csr_array(a), sp.csr_array(b))]:
        res = activation_correlation(x, y)
        assert res.dead_a.tolist() == [2] and res.constant_a.tolist() == [5]
        assert res.dead_b.tolist() == [0] and res.constant_b.tolist() == [7]
        assert 2 not in res.alive_a and 5 not in res.alive_a and res.alive_a.size == 28
        assert res.matrix.shape == (28, 43)
        assert np.all(np.isfinite(res.matrix))
        check_equal(res, a, b)


def test_latent_constant_within_each_batch_but_not_overall_is_alive(rng):
    """Constant-ness is judged over all samples, not per batch."""
    a = np.vstack([np.full((20, 1), 1.0), np.full((20, 1), 2.0)])
    b = rng.standard_normal((40, 3))
    res = activation_correlation([(a[:20], b[:20]), (sp.csr_array(a[20:]), b[20:])])
    assert res.alive_a.tolist() == [0] and res.constant_a.size == 0
    check_equal(res, a, b)


def test_all_dead_side_raises(planted):
    a, b, _ = planted
    with pytest.raises(DataError, match="acts_b: all 45 latents are dead"):
        activation_correlation(a, np.zeros_like(b))
    with pytest.raises(
        DataError, match="acts_a: all 30 latents are dead \\(0\\) or constant \\(30\\)"
    ):
        activation_correlation(np.ones_like(a), b)


def test_nearly_constant_latent_raises_instead_of_losing_precision(rng):
    a = 1e6 + 1e-3 * rng.standard_normal((100, 2))
    with pytest.raises(DataError, match="nearly constant"):
        activation_correlation(a, rng.standard_normal((100, 3)))


@pytest.mark.parametrize("k", [1, 3, 45, 100])
def test_top_k_equals_argsort_of_full_matrix(planted, k):
    a, b, _ = planted
    full = activation_correlation(a, b)
    top = activation_correlation(sp.csr_array(a), sp.csr_array(b), top_k=k)
    assert top.matrix is None and top.top_k == k
    m = full.matrix
    k_a, k_b = min(k, m.shape[1]), min(k, m.shape[0])
    order_a = np.argsort(-m, axis=1, kind="stable")[:, :k_a]
    order_b = np.argsort(-m.T, axis=1, kind="stable")[:, :k_b]
    np.testing.assert_array_equal(top.top_b_for_a, full.alive_b[order_a])
    np.testing.assert_array_equal(top.top_a_for_b, full.alive_a[order_b])
    np.testing.assert_allclose(
        top.top_corr_for_a, np.take_along_axis(m, order_a, axis=1), atol=1e-12
    )
    np.testing.assert_allclose(
        top.top_corr_for_b, np.take_along_axis(m.T, order_b, axis=1), atol=1e-12
    )


def test_streamed_top_k_equals_in_memory_top_k(planted):
    a, b, _ = planted
    whole = activation_correlation(a, b, top_k=3)
    streamed = activation_correlation(
        ((a[s : s + 50], b[s : s + 50]) for s in range(0, 400, 50)), top_k=3
    )
    np.testing.assert_array_equal(streamed.top_b_for_a, whole.top_b_for_a)
    np.testing.assert_array_equal(streamed.top_a_for_b, whole.top_a_for_b)
    np.testing.assert_allclose(streamed.top_corr_for_a, whole.top_corr_for_a, atol=1e-12)


def test_top_k_over_many_blocks_equals_full(rng, make_acts):
    a, b = make_acts(300, 2500, 0.02), make_acts(300, 140, 0.05)
    full = activation_correlation(a, b)
    top = activation_correlation(
        sp.csr_array(a), sp.csr_array(b), top_k=2, block_mb=1
    )  # 1 MiB < 2500 x 140 x 8 B
    order = np.argsort(-full.matrix, axis=1, kind="stable")[:, :2]
    np.testing.assert_array_equal(top.top_b_for_a, full.alive_b[order])


def test_topk_rows_block_boundaries_do_not_matter(rng):
    m = rng.standard_normal((23, 9))

    def block(start: int, stop: int, out: np.ndarray) -> None:
        out[:] = m[start:stop]

    for block_bytes in [8 * 9, 8 * 9 * 4, 10**6]:
        idx, val = topk_rows(block, 23, 9, 3, block_bytes)
        np.testing.assert_array_equal(idx, np.argsort(-m, axis=1)[:, :3])
        np.testing.assert_array_equal(val, np.sort(m, axis=1)[:, ::-1][:, :3])


def test_dead_latents_never_appear_in_top_k(planted):
    a, b, _ = planted
    b = b.copy()
    b[:, 4] = 0.0
    top = activation_correlation(a, b, top_k=50)
    assert top.top_b_for_a.shape == (30, 44)
    assert 4 not in top.top_b_for_a


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "pattern"),
    [
        (
            (np.ones((10, 3)), np.ones((11, 4))),
            {},
            ShapeError,
            "acts_a has 10 rows but acts_b has 11",
        ),
        ((np.ones(10), np.ones((10, 4))), {}, ShapeError, "acts_a: expected a non-empty 2-D"),
        ((np.ones((0, 3)), np.ones((0, 4))), {}, ShapeError, "acts_a: expected a non-empty 2-D"),
        ((sp.csr_array((10, 3)), sp.csr_array((11, 4))), {}, ShapeError, "rows"),
        ((np.array([["x", "y"]]), np.ones((1, 2))), {}, DataError, "acts_a"),
        ((np.ones((10, 3)),), {}, ShapeError, "acts_b is missing"),
        ((42,), {}, DataError, "expected an array or an iterable"),
        (([(np.ones((2, 2)),)],), {}, DataError, "item #0 of the stream is not a"),
        (([],), {}, DataError, "no samples"),
        ((np.eye(3), np.eye(3)), {"top_k": 0}, ConfigError, "top_k"),
        ((np.eye(3), np.eye(3)), {"batch_size": -1}, ConfigError, "batch_size"),
        ((np.eye(3), np.eye(3)), {"block_mb": 0.5}, ConfigError, "block_mb"),
    ],
)
def test_bad_inputs_raise_featgeom_errors(args, kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        activation_correlation(*args, **kwargs)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values_are_rejected(planted, bad):
    a, b, _ = planted
    b = b.copy()
    b[300, 4] = bad
    with pytest.raises(DataError, match=r"acts_b.*NaN or infinite"):
        activation_correlation(a, b)
    with pytest.raises(DataError, match=r"acts_b.*NaN or infinite"):
        activation_correlation(sp.csr_array(a), sp.csr_array(b))
    with pytest.raises(DataError, match="acts_b batch #1: contains 1 NaN or infinite"):
        activation_correlation([(a[:200], b[:200]), (a[200:], sp.csr_array(b[200:]))])


def test_batches_with_different_widths_raise():
    acc = CorrelationAccumulator()
    acc.update(np.eye(3), np.eye(3))
    with pytest.raises(ShapeError, match="batch_b #1: has 4 latents"):
        acc.update(np.eye(3), np.ones((3, 4)))
    with pytest.raises(FeatgeomError, match="no samples"):
        CorrelationAccumulator().result()


@pytest.mark.parametrize("scale", [1e300, 1e150, 1e-150, 1e-300])
def test_activations_whose_moments_would_overflow_or_underflow_are_refused(planted, scale):
    a, b, _ = planted
    for acts_a in (a * scale, sp.csr_array(a * scale)):
        with pytest.raises(DataError, match=r"acts_a: latent\(s\) 0, 1, .* have activations of magnitude"):
            activation_correlation(acts_a, b)
    assert activation_correlation(a * 1e100, b * 1e-100).matrix == pytest.approx(
        activation_correlation(a, b).matrix, abs=1e-12
    )


def test_fewer_than_min_samples_cannot_be_paired(planted):
    from featgeom.match import MIN_SAMPLES, PermutedCorrelation, pair

    a, b, _ = planted
    assert MIN_SAMPLES == 100
    few = activation_correlation(a[:99], b[:99])  # a correlation of few samples is still defined
    with pytest.raises(ShapeError, match="corr_or_result: 99 samples .* too few to pair latents"):
        pair(few, mode="mutual")
    with pytest.raises(ShapeError, match=r"acts_a, acts_b: 5 samples \(rows\) are too few .* at least 100"):
        PermutedCorrelation(a[:5], b[:5])
    assert len(pair(PermutedCorrelation(a[:100], b[:100]).result(), mode="mutual")) > 0


def test_torch_tensors_that_require_grad_are_accepted(planted):
    torch = pytest.importorskip("torch")
    from featgeom.match import PermutedCorrelation, pair_by_decoder_cosine

    a, b, _ = planted
    ta, tb = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    want = activation_correlation(a, b).matrix
    np.testing.assert_array_equal(activation_correlation(ta, tb).matrix, want)
    np.testing.assert_array_equal(PermutedCorrelation(ta, tb).result().matrix, want)
    dec = np.random.default_rng(0).standard_normal((30, 8))
    got = pair_by_decoder_cosine(torch.tensor(dec, requires_grad=True), dec)
    np.testing.assert_array_equal(got.idx_b, np.arange(30))
