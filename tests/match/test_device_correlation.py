"""The torch path of the correlation (device="cpu") equals the NumPy path: values, ids, sets, errors."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from featgeom.errors import ConfigError, DataError, ResourceError
from featgeom.match import (
    CorrelationAccumulator,
    PermutedCorrelation,
    _torch_correlation,
    activation_correlation,
)

N, N_A, N_B = 500, 200, 150


def relu_acts(rng, n, width, density, shared=None):
    """ReLU of Gaussian projections (n, width), each latent active on ~``density`` of the samples;
    the projections share ``shared`` (n, d) factors when given. Latent 0 is dead, latent 1 constant."""
    factors = rng.standard_normal((n, 16)) if shared is None else shared
    pre = factors @ rng.standard_normal((factors.shape[1], width)) + 0.5 * rng.standard_normal((n, width))
    acts = np.maximum(pre - np.quantile(pre, 1 - density, axis=0), 0.0)
    acts[:, 0], acts[:, 1] = 0.0, 0.7
    return acts


@pytest.fixture(scope="module")
def acts():
    """(A (N, N_A), B (N, N_B), perm): ~10% dense continuous activations with shared factors."""
    rng = np.random.default_rng(7)
    shared = rng.standard_normal((N, 16))
    return relu_acts(rng, N, N_A, 0.1, shared), relu_acts(rng, N, N_B, 0.1, shared), rng.permutation(N)


def inputs(acts, form):
    """The activations as scipy CSR ('sparse'), dense arrays ('dense', still sent through the
    sparse product by the NumPy path's rule) or dense Gaussian-shifted arrays ('blas')."""
    a, b, _ = acts
    if form == "sparse":
        return sp.csr_array(a), sp.csr_array(b)
    if form == "dense":
        return a, b
    return a + 1.0, b - 1.0  # no zeros left: the cross product goes through BLAS


def assert_same_sets(got, want):
    for field in ("alive_a", "alive_b", "dead_a", "dead_b", "constant_a", "constant_b"):
        np.testing.assert_array_equal(getattr(got, field), getattr(want, field))
    assert (got.n_samples, got.n_latents_a, got.n_latents_b) == (want.n_samples, want.n_latents_a, want.n_latents_b)


def assert_same_topk(got, want):
    assert got.matrix is None and got.top_k == want.top_k
    np.testing.assert_array_equal(got.top_b_for_a, want.top_b_for_a)
    np.testing.assert_array_equal(got.top_a_for_b, want.top_a_for_b)
    np.testing.assert_allclose(got.top_corr_for_a, want.top_corr_for_a, rtol=0, atol=1e-12)
    np.testing.assert_allclose(got.top_corr_for_b, want.top_corr_for_b, rtol=0, atol=1e-12)


@pytest.mark.parametrize("form", ["sparse", "dense", "blas"])
@pytest.mark.parametrize("permuted", [False, True])
def test_full_matrix_equals_numpy(acts, form, permuted):
    a, b = inputs(acts, form)
    perm = acts[2] if permuted else None
    want = PermutedCorrelation(a, b).result(perm)
    got = PermutedCorrelation(a, b, device="cpu").result(perm)
    assert_same_sets(got, want)
    assert form == "blas" or (want.dead_a.tolist() == [0] and want.constant_b.tolist() == [1])
    assert got.matrix.dtype == np.float64 and got.matrix.shape == want.matrix.shape
    np.testing.assert_allclose(got.matrix, want.matrix, rtol=0, atol=1e-12)


@pytest.mark.parametrize("form", ["sparse", "dense", "blas"])
@pytest.mark.parametrize("top_k", [1, 5])
def test_top_k_equals_numpy(acts, form, top_k):
    a, b = inputs(acts, form)
    want, got = PermutedCorrelation(a, b, top_k=top_k), PermutedCorrelation(a, b, top_k=top_k, device="cpu")
    for perm in (None, acts[2]):
        expected = want.result(perm)
        result = got.result(perm)
        assert_same_sets(result, expected)
        assert_same_topk(result, expected)


@pytest.mark.parametrize("top_k", [None, 1, 5, 12, 60])
def test_many_blocks_and_complete_lists(acts, monkeypatch, top_k):
    """Blocks of 7 rows (column lists merged across blocks, a last block shorter than k), and
    top_k beyond B's alive count (complete, sorted lists)."""
    a, b = inputs(acts, "sparse")
    b = b[:, :40]
    monkeypatch.setattr(_torch_correlation, "row_blocks",
                        lambda n_rows, n_cols, block_bytes: ((s, min(s + 7, n_rows)) for s in range(0, n_rows, 7)))
    want = PermutedCorrelation(a, b, top_k=top_k).result(acts[2])
    got = PermutedCorrelation(a, b, top_k=top_k, device=torch.device("cpu")).result(acts[2])
    if top_k is None:
        np.testing.assert_allclose(got.matrix, want.matrix, rtol=0, atol=1e-12)
        return
    assert got.top_b_for_a.shape == (N_A - 2, min(top_k, 38))
    assert_same_topk(got, want)


def test_ties_go_to_the_lower_id():
    """Pairs of identical B latents: equal correlations are listed lower id first, as in NumPy
    (k = 2: both of the better pair; k = 4: all; a tie cut at the k-th place would be arbitrary)."""
    rng = np.random.default_rng(3)
    a = relu_acts(rng, 200, 30, 0.2)
    b = a[:, [5, 5, 9, 9]].copy()
    for top_k in (1, 2, 4):
        want = PermutedCorrelation(a, b, top_k=top_k).result()
        got = PermutedCorrelation(a, b, top_k=top_k, device="cpu").result()
        np.testing.assert_array_equal(got.top_b_for_a, want.top_b_for_a)


@pytest.mark.parametrize("top_k", [None, 3])
def test_activation_correlation_on_device(acts, top_k):
    a, b, _ = acts
    want = activation_correlation(a, b, top_k=top_k, batch_size=128)
    got = activation_correlation(a, b, top_k=top_k, batch_size=128, device="cpu")
    streamed = activation_correlation(((a[i : i + 100], b[i : i + 100]) for i in range(0, N, 100)),
                                      top_k=top_k, device="cpu")
    for result in (got, streamed):
        assert_same_sets(result, want)
        if top_k is None:
            np.testing.assert_allclose(result.matrix, want.matrix, rtol=0, atol=1e-12)
        else:
            assert_same_topk(result, want)


def test_accumulator_result_on_device(acts):
    a, b, _ = acts
    acc = CorrelationAccumulator()
    acc.update(sp.csr_array(a), sp.csr_array(b))
    np.testing.assert_allclose(acc.result(device="cpu").matrix, acc.result().matrix, rtol=0, atol=1e-12)


@pytest.mark.parametrize("device", ["gpu", "cpu:1", "cuda:x", 3])
def test_bad_device_is_a_config_error(acts, device):
    a, b = inputs(acts, "sparse")
    with pytest.raises(ConfigError, match="device"):
        PermutedCorrelation(a, b, device=device)
    with pytest.raises(ConfigError, match="device"):
        activation_correlation(a, b, device=device)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_absent_cuda_is_a_config_error_naming_device(acts):
    a, b = inputs(acts, "sparse")
    with pytest.raises(ConfigError, match="^device: 'cuda'"):
        PermutedCorrelation(a, b, device="cuda")


def test_input_errors_are_those_of_the_numpy_path(acts):
    a, b = inputs(acts, "sparse")
    dead = sp.csr_array((N, 4))
    for device in (None, "cpu"):
        with pytest.raises(DataError, match="acts_b: all 4 latents are dead"):
            PermutedCorrelation(a, dead, device=device)
        with pytest.raises(DataError, match="perm: not a permutation"):
            PermutedCorrelation(a, b, device=device).result(np.zeros(N, dtype=int))


def _out_of_memory(*args, **kwargs):
    raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")


@pytest.mark.parametrize(("op", "top_k"), [("outer", None), ("outer", 2), ("repeat_interleave", None)])
def test_out_of_device_memory_is_a_resource_error(acts, monkeypatch, op, top_k):
    a, b = inputs(acts, "sparse")
    permuted = PermutedCorrelation(a, b, top_k=top_k, device="cpu")
    monkeypatch.setattr(torch, op, _out_of_memory)
    with pytest.raises(ResourceError, match="out of device memory"):
        permuted.result(acts[2])
