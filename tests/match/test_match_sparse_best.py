"""PermutedCorrelation(top_k=1): best partners read off the sparse cross product.

Every result must equal the blockwise dense finish (``finish_correlation``) bit for bit: same
partner ids on both sides (ties to the lower id) and identical correlation values; pairings
(many_to_one, one_to_many, mutual) must equal those of the full matrix.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from featgeom.match import (
    PermutedCorrelation,
    _sparse_best,
    activation_correlation,
    pair,
)
from featgeom.match.correlation import _cross_product, _Side, finish_correlation

FIELDS = ("top_b_for_a", "top_corr_for_a", "top_a_for_b", "top_corr_for_b")
BEST_MODES = ("many_to_one", "one_to_many", "mutual")


def blockwise(pc: PermutedCorrelation, perm: np.ndarray | None):
    """The result of the dense blockwise finish on the same cross product and statistics."""
    b = pc._b if perm is None else pc._b[perm]
    cross = _cross_product(pc._a, b)
    assert sp.issparse(cross), "test data must give a sparse cross product"
    return finish_correlation(cross, pc._sides, pc._counts, pc.n_samples, 1, pc._block_bytes)


def assert_same_top1(got, want) -> None:
    for name in FIELDS:
        g, w = getattr(got, name), getattr(want, name)
        assert g.shape == w.shape and g.dtype == w.dtype, name
        np.testing.assert_array_equal(g, w, err_msg=name)
        assert np.array_equal(np.signbit(g), np.signbit(w)), name  # even the sign of zeros
    for name in ("alive_a", "alive_b", "dead_a", "dead_b", "constant_a", "constant_b"):
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name))
    assert got.top_k == want.top_k == 1 and got.matrix is None


def sparse_latents(rng: np.random.Generator, n: int, width: int, density: float, signed: bool) -> np.ndarray:
    """Dense (n, width) activations, mostly zero; with ``signed`` half the values negative."""
    values = rng.exponential(1.0, (n, width))
    if signed:
        values *= rng.choice([-1.0, 1.0], (n, width))
    return values * (rng.random((n, width)) < density)


def awkward_latents(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A (n, n_a), B (n, n_b) with every awkward case: always-on latents, z < 0 and z == 0,
    exact duplicates (ties), rounded values, latents firing once (z equal up to rounding),
    dead and constant latents."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(100, 240))  # at least MIN_SAMPLES
    n_a, n_b = int(rng.integers(8, 40)), int(rng.integers(8, 50))
    signed = seed % 2 == 1
    a = sparse_latents(rng, n, n_a, rng.uniform(0.02, 0.08), signed)
    b = sparse_latents(rng, n, n_b, rng.uniform(0.02, 0.08), signed)
    if seed % 3 == 0:
        a, b = np.round(a * 2) / 2, np.round(b * 2) / 2
    a[:, 0] = rng.exponential(1.0, n) + 0.1  # fires in every sample: stores every B latent
    b[:, 1] = 0.0
    b[: n // 3, 1], b[n // 3 : 2 * (n // 3), 1] = 1.0, -1.0  # mean exactly 0: z == 0
    a[:, 2] = -b[:, 1] * 2.0  # z == 0 on side A too
    b[:, 3] = b[:, 4]  # exact duplicates
    a[:, 3] = a[:, 4]
    for col in (5, 6, 7):  # fire once each, with different values: z equal up to rounding
        b[:, col] = 0.0
        b[rng.integers(n), col] = rng.uniform(0.5, 3.0)
    a[:, 5] = 0.0  # dead
    a[:, 6] = 1.5  # constant
    b[:, 2] = 0.0  # dead
    return a, b


@pytest.mark.parametrize("seed", range(12))
def test_awkward_latents_equal_blockwise_finish(seed):
    a, b = awkward_latents(seed)
    pc = PermutedCorrelation(sp.csr_array(a), sp.csr_array(b), top_k=1)
    rng = np.random.default_rng(seed + 100)
    for perm in (None, rng.permutation(a.shape[0]), rng.permutation(a.shape[0])):
        assert_same_top1(pc.result(perm), blockwise(pc, perm))


@pytest.mark.parametrize(
    ("seed", "shape"), [(0, (500, 60, 90)), (1, (300, 120, 40)), (2, (800, 33, 257)), (3, (100, 5, 7))]
)
def test_random_sparse_latents_equal_blockwise_finish(seed, shape):
    n, n_a, n_b = shape
    rng = np.random.default_rng(seed)
    a = sparse_latents(rng, n, n_a, 0.04, signed=seed % 2 == 1)
    b = sparse_latents(rng, n, n_b, 0.06, signed=seed % 2 == 1)
    b[:, -1] = a[:, 0] * 1.5  # a planted copy
    pc = PermutedCorrelation(sp.csr_array(a), sp.csr_array(b), top_k=1)
    for perm in (None, *(rng.permutation(n) for _ in range(3))):
        assert_same_top1(pc.result(perm), blockwise(pc, perm))


def test_identity_equals_activation_correlation(make_acts):
    a, b = make_acts(400, 30, 0.05), make_acts(400, 45, 0.05)
    a[:, 0] = 1.0 + np.arange(400) % 3  # always on
    want = activation_correlation(sp.csr_array(a), sp.csr_array(b), top_k=1)
    assert_same_top1(PermutedCorrelation(a, b, top_k=1).result(), want)
    assert_same_top1(PermutedCorrelation(sp.csr_array(a), sp.csr_array(b), top_k=1).result(), want)


def test_sparse_path_is_used_and_dense_cross_falls_back(monkeypatch, rng, make_acts):
    calls = []
    original = _sparse_best.best_partners
    monkeypatch.setattr(
        "featgeom.match.correlation.best_partners", lambda *args: calls.append(1) or original(*args)
    )
    a, b = make_acts(300, 20, 0.05), make_acts(300, 25, 0.05)
    PermutedCorrelation(a, b, top_k=1).result(rng.permutation(300))
    assert calls == [1]
    g_a, g_b = rng.standard_normal((200, 6)), rng.standard_normal((200, 8))  # dense: BLAS cross
    got = PermutedCorrelation(g_a, g_b, top_k=1).result()
    assert calls == [1]
    assert_same_top1(got, activation_correlation(g_a, g_b, top_k=1))
    PermutedCorrelation(a, b, top_k=2).result()
    assert calls == [1]


@pytest.mark.parametrize("seed", range(6))
def test_pairings_equal_full_matrix_pairings(seed):
    a, b = awkward_latents(seed)
    pc = PermutedCorrelation(sp.csr_array(a), sp.csr_array(b), top_k=1)
    full = PermutedCorrelation(sp.csr_array(a), sp.csr_array(b))
    perm = np.random.default_rng(seed).permutation(a.shape[0])
    for p in (None, perm):
        top, matrix = pc.result(p), full.result(p)
        for mode in BEST_MODES:
            got, want = pair(top, mode=mode), pair(matrix, mode=mode)
            np.testing.assert_array_equal(got.idx_a, want.idx_a, err_msg=mode)
            np.testing.assert_array_equal(got.idx_b, want.idx_b, err_msg=mode)
            np.testing.assert_array_equal(got.score, want.score, err_msg=mode)


def fake_sides(rng: np.random.Generator, n_a: int, n_b: int, z_a: np.ndarray, z_b: np.ndarray):
    """_Side pairs with chosen z (sd = 1, so z = mean) and some latents not alive."""
    sides = []
    for count, z in ((n_a, z_a), (n_b, z_b)):
        alive = np.sort(rng.choice(count, z.size, replace=False))
        rest = np.setdiff1d(np.arange(count), alive)
        dead, constant = rest[: rest.size // 2], rest[rest.size // 2 :]
        sides.append(_Side(alive, dead, constant, z.copy(), np.ones(z.size)))
    return tuple(sides)


def near_equal_z(rng: np.random.Generator, size: int) -> np.ndarray:
    """z values in a few clusters of adjacent floats (products of unequal z round to ties),
    with exact duplicates, zeros and both signs."""
    centres = rng.choice([0.3, 1.7, 1e-3, 2.5e-160], size=4, replace=False) * rng.choice([-1.0, 1.0], 4)
    z = centres[rng.integers(4, size=size)]
    steps = rng.integers(0, 3, size)
    for _ in range(2):
        bump = steps > 0
        z[bump] = np.nextafter(z[bump], np.inf)
        steps -= 1
    z[rng.random(size) < 0.1] = 0.0
    return z


@pytest.mark.parametrize("cap", [16, 1, 3])
@pytest.mark.parametrize("seed", range(20))
def test_rounding_ties_and_tiny_products_equal_blockwise_finish(seed, cap, monkeypatch):
    """Chosen statistics: z in clusters of adjacent floats (unequal z whose products round to
    the same value), tiny z (products underflow), z == 0; S with empty and full rows. A small
    ``cap`` sends most latents through the exact search for their first unstored partner."""
    monkeypatch.setattr(_sparse_best, "_CAP", cap)
    rng = np.random.default_rng(seed)
    n_a, n_b = int(rng.integers(5, 40)), int(rng.integers(5, 60))
    alive_a, alive_b = int(rng.integers(3, n_a + 1)), int(rng.integers(3, n_b + 1))
    z_a, z_b = near_equal_z(rng, alive_a), near_equal_z(rng, alive_b)
    sides = fake_sides(rng, n_a, n_b, z_a, z_b)
    dense = rng.standard_normal((n_a, n_b)) * (rng.random((n_a, n_b)) < rng.uniform(0.05, 0.6))
    dense[rng.integers(n_a)] = 0.0  # an empty row
    dense[:, rng.integers(n_b)] = 0.0  # an empty column
    dense[rng.integers(n_a)] = rng.standard_normal(n_b)  # a full row
    dense[rng.random((n_a, n_b)) < 0.05] = 1e-300  # stored, but equal to -z_i z_j after rounding
    cross = sp.csc_array(dense)
    n = int(rng.integers(2, 50))
    want = finish_correlation(cross, sides, (n_a, n_b), n, 1, 1 << 12)
    pc = object.__new__(PermutedCorrelation)
    pc._sides, pc._counts, pc.n_samples, pc._axes = sides, (n_a, n_b), n, None
    assert_same_top1(pc._sparse_top1(cross), want)


def test_deep_rows_need_the_exact_mex(monkeypatch):
    """Latents whose first preferred partners are all stored (more than the small table holds)."""
    monkeypatch.setattr(_sparse_best, "_CAP", 2)
    for seed in range(4):
        a, b = awkward_latents(seed)
        pc = PermutedCorrelation(sp.csr_array(a), sp.csr_array(b), top_k=1)
        perm = np.random.default_rng(seed).permutation(a.shape[0])
        assert_same_top1(pc.result(perm), blockwise(pc, perm))


@pytest.mark.parametrize("chunk", [1, 7, 100])
def test_chunks_of_columns_do_not_change_the_result(monkeypatch, chunk):
    """Running maxima over many chunks of S's columns give the same partners."""
    monkeypatch.setattr(_sparse_best, "_CHUNK", chunk)
    for seed in range(3):
        a, b = awkward_latents(seed)
        pc = PermutedCorrelation(sp.csr_array(a), sp.csr_array(b), top_k=1)
        perm = np.random.default_rng(seed).permutation(a.shape[0])
        assert_same_top1(pc.result(perm), blockwise(pc, perm))


def test_no_stored_entries_at_all(rng, make_acts):
    """A fires only in the first half of the samples, B only in the second: S is empty."""
    a, b = make_acts(200, 12, 0.1), make_acts(200, 15, 0.1)
    a[100:], b[:100] = 0.0, 0.0
    a[0, :], b[100, :] = 1.0, 1.0  # no dead latents
    b[101, 3] = -2.0
    pc = PermutedCorrelation(sp.csr_array(a), sp.csr_array(b), top_k=1)
    assert blockwise(pc, None).n_samples == 200 and _cross_product(pc._a, pc._b).nnz == 0
    assert_same_top1(pc.result(), blockwise(pc, None))
