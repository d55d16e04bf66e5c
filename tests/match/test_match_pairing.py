"""pair(): modes on hand-made matrices, brute force, thresholds, masks, top-k, errors."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import scipy.sparse as sp

from featgeom.errors import ConfigError, DataError, ShapeError
from featgeom.match import MODES, Pairing, activation_correlation, pair

# A latents are rows, B latents columns.
HAND = np.array(
    [
        [0.9, 0.8, 0.1, 0.0],
        [0.7, 0.2, 0.6, 0.1],
        [0.95, 0.3, 0.5, 0.4],
    ]
)
HAND_ANSWERS = {
    "many_to_one": [(0, 0), (1, 0), (2, 0)],
    "one_to_many": [(0, 1), (1, 2), (2, 0), (2, 3)],
    "mutual": [(2, 0)],
    "greedy": [(0, 1), (1, 2), (2, 0)],  # 0.95, then 0.8, then 0.6
    "hungarian": [(0, 1), (1, 2), (2, 0)],  # 0.8 + 0.6 + 0.95 = 2.35
}


def pairs(p: Pairing) -> list[tuple[int, int]]:
    return list(zip(p.idx_a.tolist(), p.idx_b.tolist(), strict=True))


def paper_one_to_one(m: np.ndarray) -> list[tuple[int, int]]:
    """The rule to avoid: many-to-one, then keep the first A latent (by index) of each B latent."""
    best = m.argmax(axis=1)
    first: dict[int, int] = {}
    for i, j in enumerate(best.tolist()):
        first.setdefault(j, i)
    return sorted((i, j) for j, i in first.items())


def sequential_greedy(m: np.ndarray) -> list[tuple[int, int]]:
    """Reference greedy: scan entries by (value desc, row, col), take those with both ends free."""
    rows, cols = np.unravel_index(np.lexsort((np.arange(m.size), -m.ravel())), m.shape)
    used_r, used_c, out = set(), set(), []
    for i, j in zip(rows.tolist(), cols.tolist(), strict=True):
        if i not in used_r and j not in used_c:
            used_r.add(i)
            used_c.add(j)
            out.append((i, j))
    return sorted(out)


@pytest.mark.parametrize("mode", MODES)
def test_modes_on_hand_made_matrix(mode):
    p = pair(HAND, mode=mode)
    assert pairs(p) == HAND_ANSWERS[mode]
    np.testing.assert_array_equal(p.score, HAND[p.idx_a, p.idx_b])
    assert p.mode == mode and p.score_name == "pearson"


def test_first_by_index_one_to_one_differs_from_mutual_and_hungarian():
    # A0 and A1 both prefer B0; B0 prefers A1. The first-by-index rule keeps (A0, B0).
    m = np.array([[0.6, 0.1], [0.9, 0.5]])
    assert paper_one_to_one(m) == [(0, 0)]
    assert pairs(pair(m, mode="mutual")) == [(1, 0)]
    assert pairs(pair(m, mode="hungarian")) == [(0, 0), (1, 1)]  # 1.1 > 0.1 + 0.9
    assert pairs(pair(m, mode="greedy")) == [(0, 1), (1, 0)]


@pytest.mark.parametrize("shape", [(3, 3), (3, 5), (5, 3), (4, 4)])
@pytest.mark.parametrize("seed", range(5))
def test_hungarian_equals_brute_force(shape, seed):
    m = np.random.default_rng(seed).uniform(-1, 1, shape)
    n_r, n_c = shape
    if n_r <= n_c:
        best = max(
            sum(m[i, c[i]] for i in range(n_r)) for c in itertools.permutations(range(n_c), n_r)
        )
    else:
        best = max(
            sum(m[r[j], j] for j in range(n_c)) for r in itertools.permutations(range(n_r), n_c)
        )
    p = pair(m, mode="hungarian")
    assert len(p) == min(shape)
    assert len(set(p.idx_a.tolist())) == len(set(p.idx_b.tolist())) == len(p)
    assert p.score.sum() == pytest.approx(best, abs=1e-12)


@pytest.mark.parametrize("seed", range(8))
def test_greedy_equals_sequential_scan(seed):
    gen = np.random.default_rng(seed)
    shape = tuple(gen.integers(2, 9, size=2))
    continuous = gen.uniform(-1, 1, shape)
    tied = gen.integers(0, 3, shape).astype(float)  # many ties: lower row, then column, wins
    for m in (continuous, tied):
        assert pairs(pair(m, mode="greedy")) == sequential_greedy(m)


def test_greedy_is_not_hungarian():
    m = np.array([[1.0, 0.9], [0.9, 0.0]])
    assert pairs(pair(m, mode="greedy")) == [(0, 0), (1, 1)]  # total 1.0
    assert pairs(pair(m, mode="hungarian")) == [(0, 1), (1, 0)]  # total 1.8


def test_ties_go_to_the_lower_index():
    m = np.array([[0.5, 0.5], [0.5, 0.5]])
    assert pairs(pair(m, mode="many_to_one")) == [(0, 0), (1, 0)]
    assert pairs(pair(m, mode="one_to_many")) == [(0, 0), (0, 1)]
    assert pairs(pair(m, mode="mutual")) == [(0, 0)]
    assert pairs(pair(m, mode="greedy")) == [(0, 0), (1, 1)]


def test_min_corr_drops_weak_pairs_without_changing_partners():
    p = pair(HAND, mode="many_to_one", min_corr=0.8)
    assert pairs(p) == [(0, 0), (2, 0)]
    assert pairs(pair(HAND, mode="greedy", min_corr=0.7)) == [(0, 1), (2, 0)]
    assert pairs(pair(HAND, mode="hungarian", min_corr=0.7)) == [(0, 1), (2, 0)]


def test_keep_masks_restrict_both_sides():
    keep_a = np.array([True, True, False])
    keep_b = np.array([False, True, True, True])
    assert pairs(pair(HAND, mode="many_to_one", keep_a=keep_a, keep_b=keep_b)) == [(0, 1), (1, 2)]
    assert pairs(pair(HAND, mode="mutual", keep_b=keep_b)) == [(0, 1), (1, 2)]
    assert pairs(pair(HAND, mode="hungarian", keep_a=keep_a, keep_b=keep_b)) == [(0, 1), (1, 2)]


def test_masks_on_result_index_all_latents_and_dead_never_pair(planted):
    a, b, perm = planted
    a = a.copy()
    a[:, 3] = 0.0
    res = activation_correlation(a, b)
    keep_a = np.ones(30, dtype=bool)
    keep_a[:10] = False
    p = pair(res, mode="many_to_one", keep_a=keep_a)
    assert p.idx_a.tolist() == list(range(10, 30))
    np.testing.assert_array_equal(p.idx_b, perm[10:])
    assert 3 not in pair(res, mode="many_to_one").idx_a
    with pytest.raises(DataError, match="keep_a: keeps none of the 29 pairable A latents"):
        pair(res, keep_a=np.arange(30) == 3)


@pytest.mark.parametrize("mode", MODES)
def test_planted_permutation_is_recovered(planted, mode):
    a, b, perm = planted
    res = activation_correlation(sp.csr_array(a), sp.csr_array(b))
    p = pair(res, mode=mode, min_corr=0.5)
    assert p.idx_a.tolist() == list(range(30))
    np.testing.assert_array_equal(p.idx_b, perm)
    assert p.score.min() > 0.5


@pytest.mark.parametrize("mode", ["many_to_one", "one_to_many", "mutual", "greedy"])
@pytest.mark.parametrize("k", [1, 2, 5])
@pytest.mark.parametrize("min_corr", [None, 0.3])
def test_top_k_results_pair_like_the_full_matrix(planted, mode, k, min_corr):
    a, b, _ = planted
    full = pair(activation_correlation(a, b), mode=mode, min_corr=min_corr)
    top = pair(activation_correlation(a, b, top_k=k), mode=mode, min_corr=min_corr)
    assert pairs(top) == pairs(full)
    np.testing.assert_allclose(top.score, full.score, atol=1e-12)


def test_top_k_refuses_what_it_cannot_certify(planted, make_acts):
    a, b, _ = planted
    unpartnered = np.hstack([a, make_acts(400, 10, 0.15)])  # 10 A latents without a copy in B
    with pytest.raises(
        DataError, match=r"pair\(mode='greedy'\) from top_k=1 results: greedy pair #3\d may lie"
    ):
        pair(activation_correlation(unpartnered, b, top_k=1), mode="greedy")
    top = activation_correlation(a, b, top_k=1)
    keep_b = np.ones(45, dtype=bool)
    keep_b[top.top_b_for_a[:, 0]] = False  # every A latent loses its only listed partner
    with pytest.raises(DataError, match="the best B partner of A latent"):
        pair(top, mode="many_to_one", keep_b=keep_b)
    with pytest.raises(ConfigError, match="hungarian"):
        pair(top, mode="hungarian")


@pytest.mark.parametrize("mode", ["many_to_one", "mutual", "greedy"])
def test_top_k_with_masks_pairs_like_the_full_matrix(planted, mode):
    a, b, perm = planted
    keep_b = np.ones(45, dtype=bool)
    keep_b[perm[:5]] = False  # A latents 0-4 lose their planted partner
    top = activation_correlation(a, b, top_k=2)  # the 2nd listed partner certifies the rest
    full = activation_correlation(a, b)
    kwargs = {"mode": mode, "keep_b": keep_b, "min_corr": 0.2 if mode == "greedy" else None}
    assert pairs(pair(top, **kwargs)) == pairs(pair(full, **kwargs))


def test_to_dict_is_plain_json():
    d = pair(HAND, mode="greedy").to_dict()
    assert json.loads(json.dumps(d)) == d
    assert (
        d["mode"] == "greedy"
        and d["n_pairs"] == 3
        and d["idx_a"] == [0, 1, 2]
        and d["idx_b"] == [1, 2, 0]
    )


@pytest.mark.parametrize(
    ("kwargs", "error", "pattern"),
    [
        ({"mode": "one_to_one"}, ConfigError, "mode: expected one of many_to_one"),
        ({"min_corr": float("nan")}, ConfigError, "min_corr"),
        ({"min_corr": "0.5"}, ConfigError, "min_corr"),
        (
            {"min_corr": 0.99},
            DataError,
            r"min_corr=0.99: no many_to_one pair scores at least this \(best 0.95\)",
        ),
        (
            {"keep_a": np.ones(4, dtype=bool)},
            ShapeError,
            r"keep_a: expected a boolean mask of shape \(3,\)",
        ),
        (
            {"keep_b": np.ones(3, dtype=bool)},
            ShapeError,
            r"keep_b: expected a boolean mask of shape \(4,\)",
        ),
        ({"keep_a": np.array([1, 0, 1])}, DataError, "keep_a: expected a boolean mask, got dtype"),
        ({"keep_b": np.zeros(4, dtype=bool)}, DataError, "keep_b: keeps none"),
    ],
)
def test_bad_arguments_raise_featgeom_errors(kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        pair(HAND, **kwargs)


@pytest.mark.parametrize(
    ("matrix", "error"),
    [
        (np.array([[0.1, np.nan]]), DataError),
        (np.ones(3), ShapeError),
        (np.ones((0, 3)), ShapeError),
    ],
)
def test_bad_matrices_raise_featgeom_errors(matrix, error):
    with pytest.raises(error, match="corr"):
        pair(matrix)


def test_column_argmax_equals_numpys_including_ties_and_minus_infinity():
    from featgeom.match._dense import column_argmax

    rng = np.random.default_rng(0)
    for shape in ((1, 5), (200, 3), (130, 77)):
        m = rng.integers(0, 4, size=shape).astype(float)  # many exact ties
        m[:, 0] = -np.inf
        np.testing.assert_array_equal(column_argmax(m), m.argmax(axis=0))
        m = rng.standard_normal(shape)
        np.testing.assert_array_equal(column_argmax(m), m.argmax(axis=0))
