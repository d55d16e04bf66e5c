"""Pair latents by the |cosine| between their decoder directions."""

from __future__ import annotations

import numpy as np

from featgeom.checks import as_matrix
from featgeom.errors import DataError, ShapeError
from featgeom.match._topk import both_sides
from featgeom.match._validate import positive_int, preview
from featgeom.match.pairing import Pairing, Scores, kept, pair_scores


def pair_by_decoder_cosine(
    dec_a: object,
    dec_b: object,
    *,
    mode: str = "many_to_one",
    min_cos: float | None = None,
    keep_a: object = None,
    keep_b: object = None,
    top_k: int | None = None,
    block_mb: int = 4,
) -> Pairing:
    """Pair A and B latents by |cos(u_i, v_j)| = |u_i . v_j| / (|u_i| |v_j|) of decoder rows.

    dec_a (n_a, d), dec_b (n_b, d): one decoder direction per latent, same d. Modes, threshold
    (``min_cos``) and masks as in :func:`featgeom.match.pair`; zero rows must be masked out.
    With ``top_k`` the scores are kept as top-k lists, computed ``block_mb`` MiB at a time.
    """
    a, b = as_matrix(dec_a, "dec_a"), as_matrix(dec_b, "dec_b")
    if a.shape[1] != b.shape[1]:
        raise ShapeError(
            f"dec_a rows have dimension {a.shape[1]} but dec_b rows have {b.shape[1]}: "
            "decoder directions must live in the same space"
        )
    rows = np.flatnonzero(kept(keep_a, a.shape[0], np.arange(a.shape[0]), "keep_a", "A"))
    cols = np.flatnonzero(kept(keep_b, b.shape[0], np.arange(b.shape[0]), "keep_b", "B"))
    unit_a = _unit_rows(a[rows], rows, "dec_a", "keep_a")
    unit_b = _unit_rows(b[cols], cols, "dec_b", "keep_b")
    if top_k is None:
        scores = Scores(rows, cols, a.shape[0], b.shape[0], matrix=np.abs(unit_a @ unit_b.T))
    else:
        top = both_sides(
            lambda s, e, out: np.abs(np.matmul(unit_a[s:e], unit_b.T, out=out), out=out),
            lambda s, e, out: np.abs(np.matmul(unit_b[s:e], unit_a.T, out=out), out=out),
            (rows.size, cols.size),
            positive_int(top_k, "top_k"),
            positive_int(block_mb, "block_mb") << 20,
        )
        scores = Scores(rows, cols, a.shape[0], b.shape[0], topk=top)
    return pair_scores(scores, mode, ("min_cos", min_cos), keep_a, keep_b, "abs_cosine")


def _unit_rows(x: np.ndarray, ids: np.ndarray, name: str, mask_name: str) -> np.ndarray:
    """Rows of ``x`` (n, d) scaled to unit length; zero rows (ids given) -> DataError.

    Each row is first divided by its largest |entry|, so the squares in its norm neither overflow
    nor underflow: rows near 1e300 or 1e-300 get the directions of their unscaled copies.
    """
    peak = np.abs(x).max(axis=1)
    zero = peak == 0
    if zero.any():
        raise DataError(
            f"{name}: row(s) {preview(ids[zero])} have zero norm, so their cosine is undefined; "
            f"leave them out with {mask_name}"
        )
    x = x / peak[:, None]
    return x / np.linalg.norm(x, axis=1)[:, None]
