"""The torch path of the similarity kernels and null tests, run on device="cpu", equals the NumPy path.

Same permutations, so equal p-values; null scores equal to rounding (float64: 1e-10, float32:
1e-5, where the float32 near-ties are re-scored in float64 on both paths).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from featgeom.errors import ConfigError, ResourceError
from featgeom.stats import METRIC_NAMES, null_test, null_tests
from featgeom.stats import _torch_kernels
from featgeom.stats.kernels import paired_scores, shuffle_kernels

TOLERANCE = {"float64": 1e-10, "float32": 1e-5}


def _orthogonal(d: int, rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    return q * np.sign(np.diag(r))


def _linked(n: int, dx: int, dy: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """x (n, dx) with a decaying spectrum; y (n, dy) a noisy linear map of it."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, dx)) * np.linspace(3.0, 0.5, dx)
    return x, x @ rng.standard_normal((dx, dy)) + 0.5 * rng.standard_normal((n, dy))


def _rank_deficient(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """x (60, 10) of rank 3, y (60, 8) of rank 5: the thin SVDs are cut to the numerical rank."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((60, 3))
    x = z @ rng.standard_normal((3, 10))
    return x, np.hstack([z, rng.standard_normal((60, 2))]) @ rng.standard_normal((5, 8))


CASES = {
    "tall": lambda seed: _linked(80, 6, 5, seed),
    "square": lambda seed: _linked(40, 30, 25, seed),
    "rank_deficient": _rank_deficient,
}


def _assert_same_test(got, want, precision: str) -> None:
    tol = TOLERANCE[precision]
    assert got.p_value == want.p_value, got.metric
    assert got.observed == pytest.approx(want.observed, abs=1e-10), got.metric
    np.testing.assert_allclose(got.null, want.null, rtol=0, atol=tol, err_msg=got.metric)
    assert got.null_mean == pytest.approx(want.null_mean, abs=tol), got.metric
    assert got.null_std == pytest.approx(want.null_std, abs=tol), got.metric
    assert (got.n_perm, got.seed, got.kind, got.precision) == (want.n_perm, want.seed, want.kind, precision)
    assert got.null.dtype == np.float64


@pytest.mark.parametrize("precision", ["float64", "float32"])
@pytest.mark.parametrize("seed", [0, 7])
@pytest.mark.parametrize("case", list(CASES))
def test_every_metric_equals_the_numpy_path(case: str, seed: int, precision: str) -> None:
    x, y = CASES[case](seed)
    kwargs = {"svcca": {"variance": 0.9}, "rsa": {"max_items": 30}}  # rsa: n > max_items
    numpy = null_tests(METRIC_NAMES, x, y, n_perm=40, seed=seed, metric_kwargs=kwargs, precision=precision)
    torch_ = null_tests(
        METRIC_NAMES, x, y, n_perm=40, seed=seed, metric_kwargs=kwargs, precision=precision, device="cpu"
    )
    assert list(torch_) == list(METRIC_NAMES)
    for name in METRIC_NAMES:
        _assert_same_test(torch_[name], numpy[name], precision)


@pytest.mark.parametrize("precision", ["float64", "float32"])
@pytest.mark.parametrize(
    "metric, kwargs",
    [
        ("svcca", {}),
        ("svcca", {"k": 2}),
        ("svcca_legacy", {}),
        ("rsa", {}),
        ("rsa", {"rdm": "correlation", "compare": "pearson"}),
        ("rsa", {"rdm": "cosine", "max_items": 20, "seed": 3}),
        ("cka", {}),
        ("procrustes", {}),
    ],
)
def test_null_test_of_each_metric_alone(metric: str, kwargs: dict, precision: str) -> None:
    x, y = _linked(50, 5, 7, seed=3)
    want = null_test(metric, x, y, n_perm=30, seed=4, metric_kwargs=kwargs, precision=precision)
    got = null_test(metric, x, y, n_perm=30, seed=4, metric_kwargs=kwargs, precision=precision, device="cpu")
    _assert_same_test(got, want, precision)


@pytest.mark.parametrize("precision", ["float64", "float32"])
def test_cka_alone_on_gram_matrices(monkeypatch, precision: str) -> None:
    # 100 items with rank-99 sides: ranks^2 > 64 n, so CKA alone compares permuted Gram matrices
    rng = np.random.default_rng(23)
    x, y = rng.standard_normal((100, 120)), rng.standard_normal((100, 110))
    y[:, :60] += x[:, :60]
    aligned = []
    square_alignment = _torch_kernels.TorchOps.square_alignment
    def spy(mx: torch.Tensor, my: torch.Tensor) -> object:
        aligned.append(tuple(mx.shape))
        return square_alignment(mx, my)

    monkeypatch.setattr(_torch_kernels.TorchOps, "square_alignment", staticmethod(spy))
    want = null_test("cka", x, y, n_perm=25, seed=2, precision=precision)
    got = null_test("cka", x, y, n_perm=25, seed=2, precision=precision, device="cpu")
    assert aligned == [(100, 100)]
    _assert_same_test(got, want, precision)


def test_paired_scores_equal_the_numpy_path() -> None:
    requests = [
        ("svcca", {}),
        ("svcca_legacy", {}),
        ("rsa", {"max_items": 25}),
        ("cka", {}),
        ("procrustes", {}),
        (lambda a, b: float(np.corrcoef(a[:, 0], b[:, 0])[0, 1]), {}),
    ]
    for x, y in (_linked(60, 4, 9, seed=1), _rank_deficient(2), _linked(30, 40, 35, seed=5)):
        want = paired_scores(requests, x, y)
        for device in ("cpu", torch.device("cpu")):
            got = paired_scores(requests, x, y, device=device)
            assert got.dtype == np.float64 and got.shape == (len(requests),)
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-10)
    x, y = _linked(100, 120, 110, seed=6)  # CKA alone: the Gram-matrix branch
    want = paired_scores([("cka", {})], x, y)
    np.testing.assert_allclose(paired_scores([("cka", {})], x, y, device="cpu"), want, rtol=0, atol=1e-10)


@pytest.mark.parametrize("precision", ["float64", "float32"])
def test_planted_truth_reaches_the_smallest_p_value_on_both_paths(precision: str) -> None:
    rng = np.random.default_rng(31)
    x = rng.standard_normal((120, 8)) * np.linspace(2.0, 0.5, 8)
    y = x @ _orthogonal(8, rng) + 0.05 * rng.standard_normal((120, 8))
    for device in (None, "cpu"):
        got = null_tests(METRIC_NAMES, x, y, n_perm=49, seed=0, precision=precision, device=device)
        assert {name: got[name].p_value for name in METRIC_NAMES} == dict.fromkeys(METRIC_NAMES, 1 / 50)


@pytest.mark.parametrize("metric", ["svcca", "svcca_legacy", "cka", "procrustes"])
def test_float32_near_ties_keep_their_float64_bits(metric: str) -> None:
    # 4 items: about 1 permutation in 24 is the identity and ties the observed score; re-scored in
    # float64 (and kept in float64, also when every score of the kernel was float32), p is exact
    rng = np.random.default_rng(9)
    x = rng.standard_normal((4, 3))
    y = x @ _orthogonal(3, rng) + 0.3 * rng.standard_normal((4, 3))
    double = null_test(metric, x, y, n_perm=400, seed=3)
    ties = np.abs(double.null - double.observed) < 1e-9
    assert ties.sum() >= 10
    for device in (None, "cpu"):
        single = null_test(metric, x, y, n_perm=400, seed=3, precision="float32", device=device)
        assert single.p_value == double.p_value, device
        np.testing.assert_allclose(single.null[ties], double.null[ties], rtol=0, atol=1e-12)


@pytest.mark.parametrize("metric", METRIC_NAMES)
def test_subset_null_scores_named_metrics_on_the_device(metric: str) -> None:
    rng = np.random.default_rng(12)
    pool_x, pool_y = rng.standard_normal((70, 5)), rng.standard_normal((70, 6))
    x, y = pool_x[:30], pool_x[:30] @ rng.standard_normal((5, 6)) + pool_y[:30]
    options = {"kind": "subset", "pool_x": pool_x, "pool_y": pool_y, "n_perm": 19, "seed": 5}
    want = null_test(metric, x, y, **options)
    got = null_test(metric, x, y, **options, device="cpu")
    _assert_same_test(got, want, "float64")


def test_callables_run_in_numpy_on_any_device() -> None:
    def first_corr(a: np.ndarray, b: np.ndarray) -> float:
        assert isinstance(a, np.ndarray) and isinstance(b, np.ndarray)
        return float(np.corrcoef(a[:, 0], b[:, 0])[0, 1])

    x, y = _linked(40, 3, 3, seed=8)
    want = null_tests([first_corr, "cka"], x, y, n_perm=19, seed=1)
    got = null_tests([first_corr, "cka"], x, y, n_perm=19, seed=1, device="cpu")
    np.testing.assert_array_equal(got["first_corr"].null, want["first_corr"].null)
    _assert_same_test(got["cka"], want["cka"], "float64")


@pytest.mark.parametrize("device", ["gpu", "cuda:x", "cpu:1", "", 3])
def test_bad_device_is_a_config_error_naming_device(device: object) -> None:
    x, y = _linked(30, 3, 3, seed=0)
    with pytest.raises(ConfigError, match="^device: "):
        null_test("cka", x, y, n_perm=19, device=device)
    with pytest.raises(ConfigError, match="^device: "):
        null_tests(["cka", "rsa"], x, y, n_perm=19, device=device)
    with pytest.raises(ConfigError, match="^device: "):
        paired_scores([("cka", {})], x, y, device=device)
    with pytest.raises(ConfigError, match="^device: "):
        null_test("cka", x, y, kind="subset", pool_x=x, pool_y=y, n_perm=19, device=device)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_is_a_config_error_naming_device() -> None:
    x, y = _linked(30, 3, 3, seed=0)
    with pytest.raises(ConfigError, match="^device: 'cuda' asked for, but this machine has no CUDA device"):
        null_tests(METRIC_NAMES, x, y, n_perm=19, device="cuda")
    with pytest.raises(ConfigError, match="^device: 'cuda:1' asked for"):
        shuffle_kernels([("svcca", {})], x, y, device="cuda:1")


def _out_of_memory(*args: object, **kwargs: object) -> None:
    raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")


def test_running_out_of_device_memory_is_a_resource_error(monkeypatch) -> None:
    x, y = _linked(50, 5, 5, seed=0)
    with monkeypatch.context() as patch:  # per-permutation work
        patch.setattr(torch.linalg, "svdvals", _out_of_memory)
        with pytest.raises(ResourceError, match=r"^null test of svcca, procrustes \(1 permutation on cpu\): "
                           r"out of device memory \(needs about \d+\.\d+ [KMG]iB\); CUDA out of memory"):
            null_tests(["svcca", "procrustes"], x, y, n_perm=19, device="cpu")
    with monkeypatch.context() as patch:  # one-time preparation
        patch.setattr(torch.linalg, "eigh", _out_of_memory)
        with pytest.raises(ResourceError, match=r"^null test: thin SVD of x \(50, 5\): out of device memory"):
            null_test("cka", x, y, n_perm=19, device="cpu")
    with monkeypatch.context() as patch:  # RSA's square alignment
        patch.setattr(torch.Tensor, "reshape", _out_of_memory)
        with pytest.raises(ResourceError, match=r"^null test of rsa \(1 permutation on cpu\): out of device"):
            null_test("rsa", x, y, n_perm=19, device="cpu")
