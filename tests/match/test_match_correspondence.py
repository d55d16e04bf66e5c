"""pair_by_correspondence: each row's max-weight column, with explicit ties and zero rows."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from featgeom.errors import ConfigError, DataError, ShapeError
from featgeom.match import pair_by_correspondence


def test_permutation_with_mixtures_and_zero_rows():
    c = np.zeros((5, 6))
    c[0, 3] = 1.0
    c[1, [0, 4]] = [0.3, 0.7]  # mixture: the larger weight wins
    c[3, 1] = 1.0  # row 2 and row 4 have no partner
    p = pair_by_correspondence(sp.csr_array(c))
    assert p.idx_a.tolist() == [0, 1, 3] and p.idx_b.tolist() == [3, 4, 1]
    np.testing.assert_array_equal(p.score, [1.0, 0.7, 1.0])
    assert p.mode == "many_to_one" and p.score_name == "weight"
    dense = pair_by_correspondence(c)
    assert dense.to_dict() == p.to_dict()


def test_ties_are_handled_explicitly():
    c = sp.csr_array(np.array([[0.5, 0.5, 0.0], [0.0, 0.2, 0.8]]))
    with pytest.raises(DataError, match=r"C: row\(s\) 0 share their largest weight"):
        pair_by_correspondence(c)
    lowest = pair_by_correspondence(c, ties="lowest")
    assert lowest.idx_a.tolist() == [0, 1] and lowest.idx_b.tolist() == [0, 2]
    dropped = pair_by_correspondence(c, ties="drop")
    assert dropped.idx_a.tolist() == [1] and dropped.idx_b.tolist() == [2]
    with pytest.raises(DataError, match="ties='drop'"):
        pair_by_correspondence(sp.csr_array(np.array([[0.5, 0.5]])), ties="drop")


def test_a_lower_second_weight_is_not_a_tie():
    c = sp.coo_array(np.array([[0.4, 0.6, 0.4]]))
    assert pair_by_correspondence(c).idx_b.tolist() == [1]


def test_masks_and_min_weight():
    c = np.array([[1.0, 0.0], [0.0, 0.4], [0.9, 0.1]])
    keep_b = np.array([False, True])
    p = pair_by_correspondence(c, keep_b=keep_b)
    assert p.idx_a.tolist() == [1, 2] and p.idx_b.tolist() == [1, 1]
    assert pair_by_correspondence(c, min_weight=0.5).idx_a.tolist() == [0, 2]
    with pytest.raises(DataError, match=r"min_weight=1.5: no pair reaches it \(best 1\)"):
        pair_by_correspondence(c, min_weight=1.5)
    with pytest.raises(DataError, match="keep_b"):
        pair_by_correspondence(c, keep_a=np.array([True, False, False]), keep_b=keep_b)


@pytest.mark.parametrize(
    ("c", "kwargs", "error", "pattern"),
    [
        (np.array([[1.2, 0.0]]), {}, DataError, r"weights must lie in \[0, 1\]"),
        (sp.csr_array(np.array([[-0.1, 0.5]])), {}, DataError, r"weights must lie in \[0, 1\]"),
        (sp.csr_array(np.array([[np.nan, 0.5]])), {}, DataError, "C: contains 1 NaN"),
        (np.zeros((3, 3)), {}, DataError, "no positive weight"),
        (sp.csr_array((0, 3)), {}, ShapeError, "C: expected a non-empty"),
        (np.ones(3), {}, ShapeError, "C"),
        (np.eye(2), {"ties": "first"}, ConfigError, "ties"),
        (np.eye(2), {"keep_a": [True, False, True]}, ShapeError, "keep_a"),
    ],
)
def test_bad_inputs_raise(c, kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        pair_by_correspondence(c, **kwargs)
