"""The re-pairing null (featgeom.stats.repair_tests): equal to the naive loop, seeded, valid, errors."""

import numpy as np
import pytest
import scipy.sparse as sp

from featgeom.errors import ConfigError, DataError, ShapeError
from featgeom.match import MODES, PermutedCorrelation, activation_correlation, pair
from featgeom.similarity import linear_cka, procrustes, rsa, svcca
from featgeom.stats import PairingProcedure, repair_tests

METRICS = {"svcca": svcca, "svcca_legacy": lambda x, y: svcca(x, y, legacy_top1=True), "rsa": rsa,
           "cka": linear_cka, "procrustes": procrustes}


def latents(n=600, n_a=30, n_b=24, shared=0, seed=0, density=0.15):
    """Sparse non-negative latents; B's first ``shared`` latents copy A's (planted dependence)."""
    rng = np.random.default_rng(seed)
    a = sp.random(n, n_a, density=density, format="csr", random_state=rng, data_rvs=rng.random)
    own = sp.random(n, n_b - shared, density=density, format="csr", random_state=rng, data_rvs=rng.random)
    b = sp.hstack([a[:, :shared], own], format="csr") if shared else own
    return a, b, rng.standard_normal((n_a, 8)), rng.standard_normal((n_b, 6))


def naive_null(a, b, dec_a, dec_b, mode, n_perm, seed, min_corr=None):
    """Recompute everything per permutation: correlation, pairing, every metric (the reference)."""
    rng = np.random.default_rng(seed)
    out = {m: [] for m in METRICS}
    for _ in range(n_perm):
        perm = rng.permutation(a.shape[0])
        p = pair(activation_correlation(a, b[perm]), mode=mode, min_corr=min_corr)
        for name, f in METRICS.items():
            out[name].append(f(dec_a[p.idx_a], dec_b[p.idx_b]))
    return {m: np.array(v) for m, v in out.items()}


@pytest.mark.parametrize("dense", [False, True])
def test_permuted_correlation_equals_correlation_of_permuted_samples(dense):
    a, b, _, _ = latents()
    if dense:
        a, b = a.toarray(), b.toarray()
    perm = np.random.default_rng(1).permutation(a.shape[0])
    fast = PermutedCorrelation(a, b).result(perm)
    slow = activation_correlation(a, b[perm])
    np.testing.assert_array_equal(fast.alive_a, slow.alive_a)
    np.testing.assert_allclose(fast.matrix, slow.matrix, atol=1e-12)
    top = PermutedCorrelation(a, b, top_k=3).result(perm)
    np.testing.assert_array_equal(top.top_b_for_a[:, 0], slow.alive_b[slow.matrix.argmax(axis=1)])


@pytest.mark.parametrize("mode", MODES)
def test_null_equals_the_naive_loop_for_every_mode(mode):
    a, b, dec_a, dec_b = latents(shared=6)
    got = repair_tests(a, b, dec_a, dec_b, procedure=PairingProcedure((mode,)), metrics=tuple(METRICS), n_perm=19,
                       seed=4)
    want = naive_null(a, b, dec_a, dec_b, mode, 19, 4)
    observed = pair(activation_correlation(a, b), mode=mode)
    for name, f in METRICS.items():
        test = got.tests[mode][name]
        np.testing.assert_allclose(test.null, want[name], atol=1e-9)
        assert test.observed == pytest.approx(f(dec_a[observed.idx_a], dec_b[observed.idx_b]), abs=1e-9)
        exceed = int(np.sum(want[name] >= test.observed - 1e-12 * max(1, abs(test.observed))))
        assert test.p_value == (1 + exceed) / 20
        assert test.kind == "repair" and test.n_perm == 19 and test.seed == 4


def test_threshold_and_keep_masks_are_repeated_in_every_draw():
    a, b, dec_a, dec_b = latents(shared=8)
    keep_a = np.ones(30, dtype=bool)
    keep_a[::3] = False
    proc = PairingProcedure(("mutual",), min_corr=0.0, keep_a=keep_a)
    got = repair_tests(a, b, dec_a, dec_b, procedure=proc, metrics=["svcca"], n_perm=19, seed=2)
    rng = np.random.default_rng(2)
    for j in range(19):
        p = pair(activation_correlation(a, b[rng.permutation(600)]), mode="mutual", min_corr=0.0, keep_a=keep_a)
        assert got.tests["mutual"]["svcca"].null[j] == pytest.approx(svcca(dec_a[p.idx_a], dec_b[p.idx_b]), abs=1e-9)
        assert not np.isin(p.idx_a, np.flatnonzero(~keep_a)).any()


def test_seeded_and_deterministic():
    a, b, dec_a, dec_b = latents()
    one = repair_tests(a, b, dec_a, dec_b, n_perm=20, seed=7).tests["many_to_one"]["svcca"]
    two = repair_tests(a, b, dec_a, dec_b, n_perm=20, seed=7).tests["many_to_one"]["svcca"]
    other = repair_tests(a, b, dec_a, dec_b, n_perm=20, seed=8).tests["many_to_one"]["svcca"]
    np.testing.assert_array_equal(one.null, two.null)
    assert not np.array_equal(one.null, other.null)


def test_planted_shared_latents_have_power():
    a, b, dec_a, _ = latents(shared=20, n_b=24)
    rotation = np.linalg.qr(np.random.default_rng(3).standard_normal((8, 8)))[0]
    dec_b = np.vstack([dec_a[:20] @ rotation, np.random.default_rng(4).standard_normal((4, 8))])
    got = repair_tests(a, b, dec_a, dec_b, procedure=PairingProcedure(MODES), metrics=tuple(METRICS), n_perm=99)
    for mode in MODES:
        assert got.tests[mode]["svcca"].p_value == pytest.approx(0.01), mode


@pytest.mark.parametrize("kind", ["permute", "subset"])
def test_false_positive_rate_on_independent_latents(kind):
    """Fast calibration without training: independent sparse latents with co-firing structure
    inside each side (so pairing is informative about each side's own geometry)."""
    hits, n = 0, 300
    for seed in range(n):
        rng = np.random.default_rng(seed)
        sides = []
        for n_latents, dim in ((20, 5), (16, 4)):
            base = sp.random(400, 8, density=0.25, format="csr", random_state=rng, data_rvs=rng.random)
            mix = rng.random((8, n_latents)) * (rng.random((8, n_latents)) < 0.3) + np.eye(8, n_latents)
            dec = mix.T @ rng.standard_normal((8, dim)) + 0.3 * rng.standard_normal((n_latents, dim))
            sides.append((sp.csr_array(base @ mix), dec))
        (a, dec_a), (b, dec_b) = sides
        subset = {"subset_a": rng.random(20) < 0.75} if kind == "subset" else {}
        test = repair_tests(a, b, dec_a, dec_b, metrics=["svcca"], n_perm=19, seed=seed, kind=kind, **subset)
        hits += test.tests["many_to_one"]["svcca"].p_value <= 0.05
    assert 0.025 <= hits / n <= 0.085  # binomial(300, 0.05): 99% interval


def test_subset_null_repairs_inside_random_subsets():
    a, b, dec_a, dec_b = latents(shared=10)
    chosen = np.zeros(30, dtype=bool)
    chosen[:12] = True
    got = repair_tests(a, b, dec_a, dec_b, procedure=PairingProcedure(("mutual",)), metrics=["cka"], n_perm=19,
                       seed=3, kind="subset", subset_a=chosen)
    corr = activation_correlation(a, b)
    observed = pair(corr, mode="mutual", keep_a=chosen)
    assert got.tests["mutual"]["cka"].observed == pytest.approx(linear_cka(dec_a[observed.idx_a], dec_b[observed.idx_b]))
    rng = np.random.default_rng(3)
    for j in range(19):
        mask = np.zeros(30, dtype=bool)
        mask[rng.choice(corr.alive_a, size=12, replace=False)] = True
        p = pair(corr, mode="mutual", keep_a=mask)
        assert got.tests["mutual"]["cka"].null[j] == pytest.approx(linear_cka(dec_a[p.idx_a], dec_b[p.idx_b]))
    assert got.kind == "subset_repair"


def test_block_permutation_moves_whole_blocks():
    a, b, dec_a, dec_b = latents(n=600)
    got = repair_tests(a, b, dec_a, dec_b, metrics=["svcca"], n_perm=19, seed=1, block_size=50)
    rng = np.random.default_rng(1)
    for j in range(19):
        order = rng.permutation(12)
        perm = (order[:, None] * 50 + np.arange(50)).ravel()
        p = pair(activation_correlation(a, b[perm]))
        assert got.tests["many_to_one"]["svcca"].null[j] == pytest.approx(svcca(dec_a[p.idx_a], dec_b[p.idx_b]))
    assert got.block_size == 50


def test_unequal_blocks_move_whole_and_are_checked():
    """Windows that keep different numbers of tokens: each null draw is the blocks concatenated
    in the order rng.permutation(n_blocks); bad lengths are one clear error."""
    a, b, dec_a, dec_b = latents(n=600)
    lengths = np.array([40, 60, 50] * 4)
    got = repair_tests(a, b, dec_a, dec_b, metrics=["svcca"], n_perm=19, seed=2, block_size=lengths)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    rng = np.random.default_rng(2)
    for j in range(19):
        perm = np.concatenate([np.arange(starts[i], starts[i] + lengths[i]) for i in rng.permutation(12)])
        assert np.array_equal(np.sort(perm), np.arange(600))
        p = pair(activation_correlation(a, b[perm]))
        assert got.tests["many_to_one"]["svcca"].null[j] == pytest.approx(svcca(dec_a[p.idx_a], dec_b[p.idx_b]))
    assert got.block_size == tuple(lengths.tolist())
    with pytest.raises(ShapeError, match="block lengths sum to 599, not the 600 samples"):
        repair_tests(a, b, dec_a, dec_b, n_perm=19, block_size=np.r_[lengths[:-1], 49])
    with pytest.raises(ConfigError, match="block_size: must be a positive integer or a sequence"):
        repair_tests(a, b, dec_a, dec_b, n_perm=19, block_size=[600.0])
    with pytest.raises(DataError, match="3 exchangeable block"):
        repair_tests(a, b, dec_a, dec_b, n_perm=19, block_size=[200, 300, 100])


def test_bad_input_gives_one_clear_error():
    a, b, dec_a, dec_b = latents()
    with pytest.raises(ShapeError, match=r"acts_a, acts_b: 6 samples \(rows\) are too few"):
        repair_tests(a[:6], b[:6], dec_a, dec_b, n_perm=19)
    with pytest.raises(DataError, match="6 exchangeable block.* too few for 999 distinct permutations"):
        repair_tests(a, b, dec_a, dec_b, n_perm=999, block_size=100)
    with pytest.raises(ShapeError, match="block_size: 7 does not divide"):
        repair_tests(a, b, dec_a, dec_b, n_perm=19, block_size=7)
    with pytest.raises(ShapeError, match="keep_a"):
        repair_tests(a, b, dec_a, dec_b, procedure=PairingProcedure(keep_a=np.ones(29, dtype=bool)), n_perm=19)
    with pytest.raises(ShapeError, match="dec_b: has 23 rows"):
        repair_tests(a, b, dec_a, dec_b[:23], n_perm=19)
    with pytest.raises(ConfigError, match="kind"):
        repair_tests(a, b, dec_a, dec_b, kind="bootstrap")
    with pytest.raises(ConfigError, match="subset_a, subset_b"):
        repair_tests(a, b, dec_a, dec_b, kind="subset")
    with pytest.raises(ConfigError, match="modes"):
        PairingProcedure(("closest",))
    with pytest.raises(ConfigError, match="metrics"):
        repair_tests(a, b, dec_a, dec_b, metrics=["svcca", "svcca"])
    for n_perm in (0, 1, 18):
        with pytest.raises(ConfigError, match="n_perm: must be an integer >= 19"):
            repair_tests(a, b, dec_a, dec_b, n_perm=n_perm)
    # 7 metrics (every registered one) x 2 modes: refused before the (7 x 2 x n_perm) null is allocated
    with pytest.raises(ConfigError, match=r"n_perm: 1,000,000,000,000 permutations x 14 score\(s\)"):
        repair_tests(a, b, dec_a, dec_b, procedure=PairingProcedure(("many_to_one", "mutual")), n_perm=10**12)


def test_a_pairing_that_is_empty_under_permutation_is_refused():
    a, b, dec_a, dec_b = latents(shared=4)
    observed = pair(activation_correlation(a, b), mode="mutual")
    threshold = float(np.sort(observed.score)[-3])  # the planted pairs pass it, permuted ones do not
    with pytest.raises(DataError, match="null draw 0 .*cannot be formed"):
        repair_tests(a, b, dec_a, dec_b, procedure=PairingProcedure(("mutual",), min_corr=threshold),
                     metrics=tuple(METRICS), n_perm=19)


def test_scores_of_more_pairs_than_rsa_keeps_use_rsas_own_subsample():
    from featgeom.stats.kernels import paired_scores

    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((300, 6)), rng.standard_normal((300, 5))
    got = paired_scores([("rsa", {"max_items": 50}), ("svcca", {})], x, y)
    assert got[0] == pytest.approx(rsa(x, y, max_items=50)) and got[1] == pytest.approx(svcca(x, y))


def test_subset_null_draws_as_many_pairable_latents_as_the_chosen_subset_holds():
    a, b, dec_a, dec_b = latents(shared=10)
    a = sp.csr_array(a)
    a[:, 5] = 0.0  # latent 5 is dead: chosen, but it can never pair
    a.eliminate_zeros()
    chosen = np.zeros(30, dtype=bool)
    chosen[:12] = True
    got = repair_tests(a, b, dec_a, dec_b, procedure=PairingProcedure(("many_to_one",)), metrics=["cka"],
                       n_perm=19, seed=1, kind="subset", subset_a=chosen)
    corr = activation_correlation(a, b)
    assert 5 not in corr.alive_a
    rng = np.random.default_rng(1)
    for j in range(19):
        mask = np.zeros(30, dtype=bool)
        mask[rng.choice(corr.alive_a, size=11, replace=False)] = True
        p = pair(corr, keep_a=mask)
        assert len(p) == 11
        assert got.tests["many_to_one"]["cka"].null[j] == pytest.approx(linear_cka(dec_a[p.idx_a], dec_b[p.idx_b]))
