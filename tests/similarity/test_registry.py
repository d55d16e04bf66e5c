"""The similarity registry (featgeom.similarity.registry): contents and order, registration rules,
errors, that featgeom.stats.kernels reads it, and every registered metric on a hand-computed case."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import numpy as np
import pytest
from scipy.stats import spearmanr

from featgeom.errors import ConfigError, DataError
from featgeom.similarity import SIMILARITY, SimilarityMetric, register_similarity, similarity_metric
from featgeom.stats import kernels
from featgeom.stats import METRIC_NAMES, null_test, null_tests

ORDER = ("svcca", "svcca_legacy", "rsa", "cka", "procrustes", "debiased_cka", "mutual_knn")


def _first_dim_corr(x: np.ndarray, y: np.ndarray, *, column: int = 0) -> float:
    """|pearson(x[:, column], y[:, column])|: a made-up metric for the registration tests."""
    return float(abs(np.corrcoef(x[:, column], y[:, column])[0, 1]))


@pytest.fixture
def extra_metric():
    """A metric registered for one test, removed afterwards (the registry is process-wide)."""
    metric = register_similarity(SimilarityMetric("first_dim_corr", "first-dim correlation", _first_dim_corr,
                                                  "|corr| of the first columns", chance=None, min_pairs=3))
    yield metric
    del SIMILARITY["first_dim_corr"]


def test_contents_and_order() -> None:
    assert tuple(SIMILARITY) == ORDER
    for name, metric in SIMILARITY.items():
        assert metric.name == name and similarity_metric(name) is metric
        assert metric.label and metric.description and "\n" not in metric.description
    assert len({m.label for m in SIMILARITY.values()}) == len(ORDER)
    assert [n for n, m in SIMILARITY.items() if m.spectral] == ["svcca", "svcca_legacy", "cka", "procrustes"]
    assert {n: m.chance for n, m in SIMILARITY.items() if m.chance is not None} == {"rsa": 0.0, "debiased_cka": 0.0}
    assert {n: m.pairs_needed() for n, m in SIMILARITY.items()} == {
        "svcca": 2, "svcca_legacy": 2, "rsa": 3, "cka": 2, "procrustes": 2, "debiased_cka": 4, "mutual_knn": 12}
    knn = SIMILARITY["mutual_knn"]
    assert dict(knn.defaults) == {"k": 10, "metric": "cosine"}
    assert knn.pairs_needed({"k": 3}) == 5 and knn.pairs_needed({"k": "many"}) == 12


def test_entries_are_frozen() -> None:
    metric = SIMILARITY["cka"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        metric.label = "CKA"  # type: ignore[misc]
    with pytest.raises(TypeError):
        SIMILARITY["mutual_knn"].defaults["k"] = 3  # type: ignore[index]


def test_duplicate_name_is_refused() -> None:
    with pytest.raises(ConfigError, match="metric: a similarity metric named 'cka' is already registered"):
        register_similarity(SIMILARITY["cka"])
    clone = dataclasses.replace(SIMILARITY["rsa"], label="RSA again")
    with pytest.raises(ConfigError, match="'rsa' is already registered"):
        register_similarity(clone)
    assert SIMILARITY["rsa"].label == "RSA" and tuple(SIMILARITY) == ORDER


def test_bad_registrations_are_refused() -> None:
    with pytest.raises(ConfigError, match="spectral: featgeom.stats.kernels has spectral readers only for"):
        register_similarity(SimilarityMetric("fast", "fast", _first_dim_corr, "claims a fast path", spectral=True))
    with pytest.raises(ConfigError, match="metric: expected a SimilarityMetric, got function"):
        register_similarity(_first_dim_corr)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="name: must be an identifier"):
        SimilarityMetric("first dim", "x", _first_dim_corr, "one line")
    with pytest.raises(ConfigError, match="description: must be a non-empty one-line string"):
        SimilarityMetric("first_dim", "x", _first_dim_corr, "two\nlines")
    with pytest.raises(ConfigError, match="function: must be callable, got int"):
        SimilarityMetric("first_dim", "x", 3, "one line")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="chance: must be a number or None"):
        SimilarityMetric("first_dim", "x", _first_dim_corr, "one line", chance="low")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="min_pairs: must be an integer >= 2, got 1"):
        SimilarityMetric("first_dim", "x", _first_dim_corr, "one line", min_pairs=1)
    knn = SIMILARITY["mutual_knn"]
    with pytest.raises(ConfigError, match="min_pairs: 2 disagrees with pairs_rule, which gives 7 for the defaults"):
        SimilarityMetric("knn5", "x", knn.function, "one line", defaults={"k": 5}, pairs_rule=knn.pairs_rule)
    assert tuple(SIMILARITY) == ORDER


def test_unknown_name_names_the_registered_ones() -> None:
    with pytest.raises(ConfigError, match=r"metric: unknown similarity metric 'pwcca' \(one of svcca, svcca_legacy, "
                                          r"rsa, cka, procrustes, debiased_cka, mutual_knn\)"):
        similarity_metric("pwcca")


def test_kernels_read_the_registry() -> None:
    assert METRIC_NAMES == kernels.METRIC_NAMES == ORDER
    assert kernels.SPECTRAL == ("svcca", "svcca_legacy", "cka", "procrustes")
    assert list(kernels._FUNCTIONS) == list(ORDER)
    for name in ORDER:
        assert kernels._FUNCTIONS[name] is SIMILARITY[name].function
    # a name's registry defaults are bound, the caller's kwargs over them
    assert kernels.metric_function("mutual_knn", {}).keywords == {"k": 10, "metric": "cosine"}
    assert kernels.metric_function("mutual_knn", {"k": 4}).keywords == {"k": 4, "metric": "cosine"}
    assert kernels.metric_function("cka", {}).keywords == {}


def test_paired_scores_of_every_metric_equal_the_registered_functions() -> None:
    rng = np.random.default_rng(5)
    x = rng.standard_normal((40, 6))
    y = x[:, :4] @ rng.standard_normal((4, 5)) + 0.8 * rng.standard_normal((40, 5))
    got = kernels.paired_scores([(name, {}) for name in ORDER], x, y)
    want = [SIMILARITY[name](x, y) for name in ORDER]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-10)
    assert 0.2 < got[ORDER.index("mutual_knn")] < 1  # planted structure: well above chance 10 / 39


def test_registered_metrics_are_reachable_by_name(extra_metric) -> None:
    rng = np.random.default_rng(2)
    x = rng.standard_normal((30, 3))
    y = x + 0.5 * rng.standard_normal((30, 3))
    assert similarity_metric("first_dim_corr") is extra_metric
    assert tuple(SIMILARITY)[-1] == "first_dim_corr"
    alone = null_test("first_dim_corr", x, y, n_perm=19, seed=1)
    assert alone.observed == pytest.approx(_first_dim_corr(x, y)) and alone.p_value == pytest.approx(1 / 20)
    joint = null_tests(["cka", "first_dim_corr"], x, y, n_perm=19, seed=1,
                       metric_kwargs={"first_dim_corr": {"column": 2}})
    assert joint["first_dim_corr"].observed == pytest.approx(_first_dim_corr(x, y, column=2))
    with pytest.raises(DataError, match="metric first_dim_corr: needs at least 3 paired rows, got 2"):
        kernels.paired_scores([("first_dim_corr", {})], x[:2], y[:2])


def test_too_few_rows_for_a_named_metric_is_one_data_error() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((8, 3)), rng.standard_normal((8, 3))
    with pytest.raises(DataError, match="metric mutual_knn: needs at least 12 paired rows, got 8"):
        null_test("mutual_knn", x, y, n_perm=19)
    with pytest.raises(DataError, match="metric mutual_knn: needs at least 12 paired rows, got 8"):
        null_tests(["svcca", "mutual_knn"], x, y, n_perm=19)
    with pytest.raises(DataError, match="metric debiased_cka: needs at least 4 paired rows, got 3"):
        kernels.paired_scores([("debiased_cka", {})], x[:3], y[:3])
    # with a smaller k, fewer rows do
    assert 0 <= null_test("mutual_knn", x, y, n_perm=19, metric_kwargs={"k": 3}).observed <= 1


# hand-made case: 1-D points x = 0..4 and y = (0, 2, 1, 3, 4). Centered: xc = (-2, -1, 0, 1, 2),
# yc = (-2, 0, -1, 1, 2), xc . yc = 9, |xc|^2 = |yc|^2 = 10, so pearson r = 0.9.
LINE_X = np.arange(5.0)[:, None]
LINE_Y = np.array([0.0, 2.0, 1.0, 3.0, 4.0])[:, None]


def _debiased_cka_by_matrices(x: np.ndarray, y: np.ndarray) -> float:
    """The docstring's formula with explicit n x n kernels (zero diagonals), independent of the fast form."""
    n = x.shape[0]

    def hsic(k: np.ndarray, l_: np.ndarray) -> float:
        k, l_ = k - np.diag(np.diag(k)), l_ - np.diag(np.diag(l_))
        one = np.ones(n)
        return (np.trace(k @ l_) + (one @ k @ one) * (one @ l_ @ one) / ((n - 1) * (n - 2))
                - 2.0 / (n - 2) * (one @ k @ l_ @ one)) / (n * (n - 3))

    kx, ky = x @ x.T, y @ y.T
    return hsic(kx, ky) / np.sqrt(hsic(kx, kx) * hsic(ky, ky))


def _unit(degrees: list[float]) -> np.ndarray:
    angles = np.deg2rad(degrees)
    return np.column_stack([np.cos(angles), np.sin(angles)])


def test_every_registered_metric_on_a_hand_computed_case() -> None:
    values = {name: SIMILARITY[name](LINE_X, LINE_Y) for name in ORDER if name != "mutual_knn"}
    assert values["svcca"] == pytest.approx(0.9)  # one direction per side: |r|
    assert values["svcca_legacy"] == pytest.approx(0.9)  # |corr(PC1_x, PC1_y)|
    assert values["cka"] == pytest.approx(0.81)  # 1-D linear CKA is r^2
    assert values["procrustes"] == pytest.approx(0.9)  # nuclear norm of the 1 x 1 matrix: |r|
    distances_x = np.abs(LINE_X - LINE_X.T)[np.triu_indices(5, 1)]
    distances_y = np.abs(LINE_Y - LINE_Y.T)[np.triu_indices(5, 1)]
    assert values["rsa"] == pytest.approx(spearmanr(distances_x, distances_y).statistic)
    x2 = np.column_stack([LINE_X[:, 0], LINE_X[:, 0] ** 2])  # debiased CKA needs some spread beyond 1-D
    y2 = np.column_stack([LINE_Y[:, 0], np.array([1.0, 0.0, 2.0, 0.5, 3.0])])
    assert SIMILARITY["debiased_cka"](x2, y2) == pytest.approx(_debiased_cka_by_matrices(x2 - x2.mean(0),
                                                                                        y2 - y2.mean(0)))
    assert SIMILARITY["debiased_cka"](LINE_X, LINE_X) == pytest.approx(1.0)
    # mutual k-NN, k = 1, cosine: x at 0, 10, 90, 100 degrees -> nearest 1, 0, 3, 2;
    # y at 0, 10, 90, 200 degrees -> nearest 1, 0, 1, 2 (200 is closest to 90): 3 of 4 shared
    assert SIMILARITY["mutual_knn"](_unit([0, 10, 90, 100]), _unit([0, 10, 90, 200]), k=1) == 0.75
    with pytest.raises(ConfigError, match=r"k: must be an integer in \[1, n - 2\]"):
        SIMILARITY["mutual_knn"](_unit([0, 10, 90, 100]), _unit([0, 10, 90, 200]))  # default k = 10 > n - 2


def test_importing_the_registry_is_cheap() -> None:
    code = ("import sys, featgeom.similarity.registry; "
            "heavy = [m for m in ('torch', 'sae_lens', 'transformer_lens', 'featgeom.stats') if m in sys.modules]; "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)
