"""pair_by_decoder_cosine: |cosine| scores, modes, top-k, zero rows and dimension checks."""

from __future__ import annotations

import numpy as np
import pytest

from featgeom.errors import ConfigError, DataError, ShapeError
from featgeom.match import pair_by_decoder_cosine


def abs_cos(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.abs(
        (x / np.linalg.norm(x, axis=1, keepdims=True))
        @ (y / np.linalg.norm(y, axis=1, keepdims=True)).T
    )


@pytest.mark.parametrize("mode", ["many_to_one", "mutual", "greedy", "hungarian"])
def test_permuted_scaled_sign_flipped_decoders_are_recovered(rng, mode):
    dec_a = rng.standard_normal((20, 16))
    perm = rng.permutation(25)[:20]
    dec_b = 0.1 * rng.standard_normal((25, 16))
    dec_b[perm] = dec_a * rng.choice([-3.0, 0.5], size=(20, 1))
    p = pair_by_decoder_cosine(dec_a, dec_b, mode=mode, min_cos=0.9)
    np.testing.assert_array_equal(p.idx_a, np.arange(20))
    np.testing.assert_array_equal(p.idx_b, perm)
    np.testing.assert_allclose(p.score, 1.0, atol=1e-6)
    assert p.score_name == "abs_cosine"


def test_scores_are_absolute_cosines_and_top_k_agrees(rng):
    dec_a, dec_b = rng.standard_normal((30, 8)), rng.standard_normal((40, 8))
    full = pair_by_decoder_cosine(dec_a, dec_b)
    ref = abs_cos(dec_a, dec_b)
    np.testing.assert_array_equal(full.idx_b, ref.argmax(axis=1))
    np.testing.assert_allclose(full.score, ref.max(axis=1), atol=1e-12)
    for mode in ["many_to_one", "one_to_many", "mutual"]:
        top = pair_by_decoder_cosine(dec_a, dec_b, mode=mode, top_k=3, block_mb=1)
        exact = pair_by_decoder_cosine(dec_a, dec_b, mode=mode)
        np.testing.assert_array_equal(top.idx_a, exact.idx_a)
        np.testing.assert_array_equal(top.idx_b, exact.idx_b)


def test_dimension_mismatch_raises_shape_error(rng):
    with pytest.raises(ShapeError, match="dec_a rows have dimension 8 but dec_b rows have 9"):
        pair_by_decoder_cosine(rng.standard_normal((5, 8)), rng.standard_normal((5, 9)))


def test_zero_rows_must_be_masked_out(rng):
    dec_a, dec_b = rng.standard_normal((6, 4)), rng.standard_normal((7, 4))
    dec_a[2] = 0.0
    with pytest.raises(DataError, match=r"dec_a: row\(s\) 2 have zero norm.*keep_a"):
        pair_by_decoder_cosine(dec_a, dec_b)
    keep_a = np.arange(6) != 2
    p = pair_by_decoder_cosine(dec_a, dec_b, keep_a=keep_a)
    assert p.idx_a.tolist() == [0, 1, 3, 4, 5]


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"mode": "best"}, ConfigError),
        ({"top_k": 0}, ConfigError),
        ({"keep_b": np.ones(3, dtype=bool)}, ShapeError),
    ],
)
def test_bad_arguments_raise(rng, kwargs, error):
    with pytest.raises(error):
        pair_by_decoder_cosine(rng.standard_normal((5, 4)), rng.standard_normal((6, 4)), **kwargs)


def test_non_finite_decoder_raises(rng):
    dec_b = rng.standard_normal((6, 4))
    dec_b[1, 1] = np.nan
    with pytest.raises(DataError, match="dec_b"):
        pair_by_decoder_cosine(rng.standard_normal((5, 4)), dec_b)


@pytest.mark.parametrize("scale", [1e300, 1e-300])
def test_decoders_near_the_float_limits_pair_like_their_unscaled_copies(rng, scale):
    dec_a, dec_b = rng.standard_normal((12, 6)), rng.standard_normal((15, 6))
    want = pair_by_decoder_cosine(dec_a, dec_b, mode="mutual")
    for a, b in ((dec_a * scale, dec_b), (dec_a, dec_b * scale), (dec_a * scale, dec_b * scale)):
        got = pair_by_decoder_cosine(a, b, mode="mutual")
        np.testing.assert_array_equal(got.idx_a, want.idx_a)
        np.testing.assert_array_equal(got.idx_b, want.idx_b)
        np.testing.assert_allclose(got.score, want.score, atol=1e-12)
