"""repair_tests on the torch path (device="cpu") equals the NumPy path: pairings, nulls, p-values."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from featgeom.errors import ConfigError
from featgeom.stats import METRIC_NAMES, PairingProcedure, repair_tests

MODES = ("many_to_one", "mutual")


def case(shared: bool, n=300, n_a=60, n_b=50, seed=0):
    """Sparse continuous latents (ReLU of Gaussian projections, ~10% active) and decoders.

    shared: B's first 20 latents are noisy copies of A's first 20 and their decoder rows are
    noisy copies too (planted shared structure); else A and B are independent."""
    rng = np.random.default_rng(seed)

    def latents(width):
        pre = rng.standard_normal((n, 8)) @ rng.standard_normal((8, width)) + rng.standard_normal((n, width))
        return np.maximum(pre - np.quantile(pre, 0.9, axis=0), 0.0)

    a, b = latents(n_a), latents(n_b)
    dec_a, dec_b = rng.standard_normal((n_a, 8)), rng.standard_normal((n_b, 8))
    if shared:
        b[:, :20] = a[:, :20] * rng.uniform(0.8, 1.2, (n, 20))
        dec_b[:20] = dec_a[:20] + 0.3 * rng.standard_normal((20, 8))
    return sp.csr_array(a), sp.csr_array(b), dec_a, dec_b


@pytest.mark.parametrize("shared", [True, False])
@pytest.mark.parametrize("top_k", [None, 1, 5])
def test_device_null_equals_numpy_null(shared, top_k):
    a, b, dec_a, dec_b = case(shared)
    procedure = PairingProcedure(MODES, top_k=top_k)
    want = repair_tests(a, b, dec_a, dec_b, procedure=procedure, n_perm=19, seed=3)
    got = repair_tests(a, b, dec_a, dec_b, procedure=procedure, n_perm=19, seed=3, device="cpu")
    assert got.kind == want.kind == "repair"
    for mode in MODES:
        np.testing.assert_array_equal(got.pairings[mode].idx_a, want.pairings[mode].idx_a)
        np.testing.assert_array_equal(got.pairings[mode].idx_b, want.pairings[mode].idx_b)
        for metric in METRIC_NAMES:
            g, w = got.tests[mode][metric], want.tests[mode][metric]
            assert g.p_value == w.p_value
            assert g.observed == pytest.approx(w.observed, abs=1e-9)
            np.testing.assert_allclose(g.null, w.null, rtol=0, atol=1e-9)
            assert g.null.mean() == pytest.approx(w.null.mean(), abs=1e-9)
    if shared:  # the planted structure is found (a sanity check that the case is not trivial)
        assert got.tests["mutual"]["cka"].p_value == 1 / 20


@pytest.mark.parametrize("device", ["tpu", "cuda:7"])
def test_bad_or_absent_device_is_a_config_error(device):
    if device.startswith("cuda") and torch.cuda.device_count() > 7:
        pytest.skip("this machine has a cuda:7")
    a, b, dec_a, dec_b = case(False)
    with pytest.raises(ConfigError, match="^device: "):
        repair_tests(a, b, dec_a, dec_b, n_perm=19, device=device)
