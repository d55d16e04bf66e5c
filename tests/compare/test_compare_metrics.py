"""compare / compare_latents with a choice of similarity metrics (``metrics=``): the default is every
registered metric; adding metrics changes nothing of the others; bad choices are refused up front;
too few pairs for a metric is one DataError; and the two newer metrics (debiased linear CKA, mutual
k-NN) are calibrated and have power under the valid re-pairing null as users run it."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from featgeom.compare import SIMILARITY_METRICS, compare, compare_latents, result_values
from featgeom.errors import ConfigError, DataError
from featgeom.similarity import SIMILARITY, SimilarityMetric, register_similarity

FIVE = ("svcca", "svcca_legacy", "rsa", "cka", "procrustes")
NEW = ("debiased_cka", "mutual_knn")


class TinySAE:
    """SAELens-style: encode(x) = relu(x W_dec^T - 0.5), decoder rows W_dec; encode counts its calls."""

    def __init__(self, w_dec: np.ndarray) -> None:
        self.W_dec = torch.from_numpy(np.asarray(w_dec, dtype=np.float32))
        self.calls = 0

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return torch.relu(x @ self.W_dec.T - 0.5)


class _EncodingStarted(Exception):
    pass


class _StopsAtEncode(TinySAE):
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        raise _EncodingStarted


def cofiring_side(rng: np.random.Generator, n: int, n_latents: int, dim: int) -> tuple[sp.csr_array, np.ndarray]:
    """Sparse non-negative latents (n, n_latents) that co-fire in groups, and decoder rows
    (n_latents, dim) that follow the groups: pairing by activation correlation then carries the
    side's own geometry, which an invalid null (the shuffled pairing) mistakes for shared structure."""
    base = sp.random(n, 8, density=0.25, format="csr", random_state=rng, data_rvs=rng.random)
    mix = rng.random((8, n_latents)) * (rng.random((8, n_latents)) < 0.3) + np.eye(8, n_latents)
    dec = mix.T @ rng.standard_normal((8, dim)) + 0.3 * rng.standard_normal((n_latents, dim))
    return sp.csr_array(base @ mix), dec


def independent_case(seed: int, n: int = 200) -> tuple[sp.csr_array, sp.csr_array, np.ndarray, np.ndarray]:
    """Two independent latent sets (40 and 36 latents) with independent decoders (6 and 5 dims)."""
    rng = np.random.default_rng(seed)
    (a, dec_a), (b, dec_b) = cofiring_side(rng, n, 40, 6), cofiring_side(rng, n, 36, 5)
    return a, b, dec_a, dec_b


def shared_case(seed: int, n: int = 200, noise: float = 0.5) -> tuple[sp.csr_array, sp.csr_array, np.ndarray, np.ndarray]:
    """Planted shared structure: B's latents are A's with the columns permuted plus sparse noise, and
    B's decoder rows are A's (same permutation) rotated plus noise."""
    rng = np.random.default_rng(seed)
    a, dec_a = cofiring_side(rng, n, 40, 6)
    perm = rng.permutation(40)
    noise_acts = sp.random(n, 40, density=0.25, format="csr", random_state=rng, data_rvs=rng.random)
    b = sp.csr_array(a[:, perm] + noise * noise_acts)
    rotation = np.linalg.qr(rng.standard_normal((6, 6)))[0]
    return a, b, dec_a, dec_a[perm] @ rotation + noise * rng.standard_normal((40, 6))


def test_default_is_every_registered_metric_in_registry_order() -> None:
    assert SIMILARITY_METRICS == tuple(SIMILARITY) == (*FIVE, *NEW)
    a, b, dec_a, dec_b = independent_case(1)
    result = compare_latents(a, b, dec_a, dec_b, modes=("many_to_one", "hungarian"), n_perm=19)
    for summary in result.pairings.values():
        assert [k for k, v in summary.items() if isinstance(v, dict)] == list(SIMILARITY_METRICS)
    rows = {(mode, metric) for mode, metric, *_ in result_values(result.to_dict())}
    assert {("many_to_one", m) for m in SIMILARITY_METRICS} <= rows


def test_adding_metrics_changes_nothing_of_the_five() -> None:
    """Same p-values, null means and stds, observed values, to the bit: the permutations do not
    depend on the metric list, and the spectral metrics share the same kernel either way."""
    rng = np.random.default_rng(11)
    a = sp.random(150, 60, density=0.15, format="csr", random_state=rng, data_rvs=rng.random)
    b = sp.random(150, 50, density=0.15, format="csr", random_state=rng, data_rvs=rng.random)
    dec_a, dec_b = rng.standard_normal((60, 8)), rng.standard_normal((50, 7))
    options = {"modes": ("many_to_one", "hungarian"), "n_perm": 29, "seed": 3, "nulls": ("repair", "shuffle")}
    five = compare_latents(a, b, dec_a, dec_b, metrics=FIVE, **options)
    every = compare_latents(a, b, dec_a, dec_b, metrics=None, **options)
    for mode in options["modes"]:
        assert set(five.pairings[mode]) == {"n_pairs", "mean_corr", *FIVE}
        for metric in FIVE:
            assert five.pairings[mode][metric] == every.pairings[mode][metric], (mode, metric)
        assert all(np.isfinite(every.pairings[mode][m]["nulls"]["shuffle"]["null_mean"]) for m in NEW)
    # the newer metrics' numbers do not depend on the others either
    alone = compare_latents(a, b, dec_a, dec_b, metrics=NEW[::-1], **options)
    for mode in options["modes"]:
        assert [k for k in alone.pairings[mode] if k in NEW] == list(NEW[::-1])
        for metric in NEW:
            assert alone.pairings[mode][metric] == every.pairings[mode][metric], (mode, metric)


def test_bad_metric_lists_are_refused_before_any_work() -> None:
    sae = TinySAE(np.random.default_rng(0).standard_normal((16, 12)))
    acts = np.random.default_rng(1).standard_normal((300, 12))
    a, b, dec_a, dec_b = independent_case(2)
    allowed = r"\(one of svcca, svcca_legacy, rsa, cka, procrustes, debiased_cka, mutual_knn\)"
    cases = [
        (["svcca", "pwcca"], r"metrics: unknown similarity metric 'pwcca' " + allowed),
        (["cka", "svcca", "cka"], r"metrics: 'cka' listed more than once"),
        ("cka", r"metrics: expected a list of metric names, got the string 'cka'"),
        ([], r"metrics: empty"),
        ([3], r"metrics: unknown similarity metric 3 "),
    ]
    for metrics, message in cases:
        with pytest.raises(ConfigError, match=message):
            compare(sae, sae, acts, acts, n_perm=19, metrics=metrics)
        with pytest.raises(ConfigError, match=message):
            compare_latents(a, b, dec_a, dec_b, n_perm=19, metrics=metrics)
    assert sae.calls == 0


@pytest.mark.parametrize(("metrics", "nulls", "scores"), [
    (("svcca", "cka"), ("repair",), 2 * 2),
    (None, ("repair", "shuffle"), 7 * 2 * 2),
    (("mutual_knn",), ("shuffle",), 1 * 2),
])
def test_the_null_size_check_counts_the_metrics_asked_for(metrics, nulls, scores) -> None:
    sae = TinySAE(np.random.default_rng(0).standard_normal((16, 12)))
    acts = np.random.default_rng(1).standard_normal((300, 12))
    message = rf"n_perm: 1,000,000,000,000 permutations x {scores} score\(s\)"
    with pytest.raises(ConfigError, match=message):
        compare(sae, sae, acts, acts, n_perm=10**12, metrics=metrics, nulls=nulls)
    assert sae.calls == 0
    a, b, dec_a, dec_b = independent_case(3)
    with pytest.raises(ConfigError, match=message):
        compare_latents(a, b, dec_a, dec_b, n_perm=10**12, metrics=metrics, nulls=nulls)
    # the count is exact: the most permutations that fit pass the check (encoding starts), one more does not
    most = (2 << 30) // (8 * scores)
    with pytest.raises(ConfigError, match=rf"x {scores} score"):
        compare(sae, sae, acts, acts, n_perm=most + 1, metrics=metrics, nulls=nulls)
    with pytest.raises(_EncodingStarted):
        compare(_StopsAtEncode(sae.W_dec.numpy()), sae, acts, acts, n_perm=most, metrics=metrics, nulls=nulls)


def test_compare_passes_the_metrics_on() -> None:
    rng = np.random.default_rng(4)
    sae = TinySAE(rng.standard_normal((48, 12)))
    acts = rng.standard_normal((400, 12))
    result = compare(sae, sae, acts, acts, modes="many_to_one", n_perm=19, metrics=("mutual_knn", "cka"))
    summary = result.pairings["many_to_one"]
    assert [k for k, v in summary.items() if isinstance(v, dict)] == ["mutual_knn", "cka"]
    assert summary["mutual_knn"]["observed"] == pytest.approx(1.0)  # the same SAE on the same inputs
    assert summary["cka"]["nulls"]["repair"]["p_value"] == pytest.approx(1 / 20)


def test_too_few_pairs_for_a_metric_is_one_data_error_naming_it_and_the_pairing() -> None:
    rng = np.random.default_rng(5)
    a = sp.random(200, 8, density=0.2, format="csr", random_state=rng, data_rvs=rng.random)
    b = sp.random(200, 8, density=0.2, format="csr", random_state=rng, data_rvs=rng.random)
    dec_a, dec_b = rng.standard_normal((8, 5)), rng.standard_normal((8, 5))
    # 8 latents -> 8 many_to_one pairs; mutual_knn (k = 10) needs k + 2 = 12
    with pytest.raises(DataError, match="the observed pairing, pairing 'many_to_one': metric mutual_knn: "
                                        "needs at least 12 paired rows, got 8"):
        compare_latents(a, b, dec_a, dec_b, modes="many_to_one", n_perm=19)
    with pytest.raises(DataError, match="pairing 'many_to_one': only 8 pairs; metric mutual_knn needs at least 12"):
        compare_latents(a, b, dec_a, dec_b, modes="many_to_one", n_perm=19, nulls=("shuffle",))
    # debiased CKA needs 4 pairs: a pairing left with 3 by min_corr names it
    full = compare_latents(a, b, dec_a, dec_b, modes="many_to_one", n_perm=19, metrics=["cka"], nulls=("shuffle",))
    scores = np.sort(full.pairs["many_to_one"].score)
    threshold = float((scores[-3] + scores[-4]) / 2)  # keeps the top 3 pairs
    with pytest.raises(DataError, match="pairing 'many_to_one': only 3 pairs; metric debiased_cka needs at least 4"):
        compare_latents(a, b, dec_a, dec_b, modes="many_to_one", n_perm=19, nulls=("shuffle",), min_corr=threshold,
                        metrics=["cka", "debiased_cka"])
    # without the metrics that need more, the same case runs
    result = compare_latents(a, b, dec_a, dec_b, modes="many_to_one", n_perm=19, metrics=FIVE + ("debiased_cka",))
    assert result.pairings["many_to_one"]["n_pairs"] == 8


def test_a_metric_registered_later_is_reachable() -> None:
    def top_corr(x: np.ndarray, y: np.ndarray) -> float:
        return float(abs(np.corrcoef(x[:, 0], y[:, 0])[0, 1]))

    register_similarity(SimilarityMetric("top_corr", "top corr", top_corr, "|corr| of the first dims", min_pairs=3))
    try:
        a, b, dec_a, dec_b = independent_case(6)
        result = compare_latents(a, b, dec_a, dec_b, modes="many_to_one", n_perm=19, metrics=["top_corr"],
                                 nulls=("repair", "shuffle"))
        test = result.pairings["many_to_one"]["top_corr"]
        pairing = result.pairs["many_to_one"]
        assert test["observed"] == pytest.approx(top_corr(dec_a[pairing.idx_a], dec_b[pairing.idx_b]))
        assert set(test["nulls"]) == {"repair", "shuffle"}
        assert "top_corr" in [k for k in compare_latents(a, b, dec_a, dec_b, n_perm=19, modes="hungarian")
                              .pairings["hungarian"]]
    finally:
        del SIMILARITY["top_corr"]


def _new_metric_p_values(case, seeds, modes, null: str = "repair") -> dict[tuple[str, str], np.ndarray]:
    """(mode, metric) -> p-values of ``null`` (19 permutations) of the two newer metrics, one per seed."""
    out: dict[tuple[str, str], list[float]] = {}
    for seed in seeds:
        a, b, dec_a, dec_b = case(seed)
        result = compare_latents(a, b, dec_a, dec_b, modes=modes, n_perm=19, seed=seed, metrics=NEW, nulls=(null,))
        for mode in modes:
            for metric in NEW:
                out.setdefault((mode, metric), []).append(result.pairings[mode][metric]["nulls"][null]["p_value"])
    return {key: np.array(v) for key, v in out.items()}


@pytest.mark.slow  # 1,000 compare_latents calls of 19 permutations: ~60 s on 2 cores
def test_new_metrics_are_calibrated_under_the_repair_null() -> None:
    """Planted independence, 1,000 replicates: P(p <= 0.05) is 1/20 for a valid null with 19
    permutations (ties only lower it), and the false-positive rate must lie in [0.03, 0.07] for each
    newer metric and pairing mode (binomial sd 0.0069: a calibrated test stays inside with
    probability > 0.99 per cell). (300 replicates, sd 0.0126, would leave a calibrated test outside
    [0.03, 0.07] about one time in nine per cell.)"""
    p = _new_metric_p_values(independent_case, range(1000), ("many_to_one", "hungarian"))
    for key, values in p.items():
        assert values.shape == (1000,)
        rate = float(np.mean(values <= 0.05))
        assert 0.03 <= rate <= 0.07, (key, rate)


def test_the_cases_catch_an_invalid_null() -> None:
    """The same independent cases under the paper's shuffled-pairing null (measured on 200: 0.74
    debiased CKA, 0.87 mutual k-NN on many_to_one): the calibration test above can fail."""
    p = _new_metric_p_values(independent_case, range(100), ("many_to_one",), null="shuffle")
    for key, values in p.items():
        assert float(np.mean(values <= 0.05)) > 0.5, key


def test_new_metrics_have_power_under_the_repair_null() -> None:
    """Planted shared structure (B = A's latents permuted + noise, decoders rotated + noise), 100
    replicates: each newer metric rejects at p <= 0.05 in more than 90% of them (measured: all)."""
    p = _new_metric_p_values(shared_case, range(2000, 2100), ("many_to_one", "hungarian"))
    for key, values in p.items():
        assert float(np.mean(values <= 0.05)) > 0.9, key
