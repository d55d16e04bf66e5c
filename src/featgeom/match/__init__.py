"""Pairing SAE latents across two models.

* :func:`activation_correlation` - Pearson correlation of every A latent with every B latent
  from sparse sufficient statistics (dense, scipy.sparse or streamed inputs), full or top-k.
* :class:`PermutedCorrelation` - the same after permuting B's samples, for permutation nulls
  (per-latent statistics computed once).
* :func:`pair` - pair latents from correlations (many_to_one, one_to_many, mutual, greedy,
  hungarian), with a threshold and keep masks; correlations over fewer than MIN_SAMPLES (100)
  samples are refused.
* :func:`pair_by_decoder_cosine` - the same modes on |cosine| between decoder rows.
* :func:`pair_by_correspondence` - pairs from a ground-truth correspondence matrix.
* :func:`soft_correspondence` - a soft many-to-many correspondence in [0, 1] (entropic matching).
"""

from featgeom.match.correlation import (
    MIN_SAMPLES,
    CorrelationAccumulator,
    CorrelationResult,
    PermutedCorrelation,
    activation_correlation,
)
from featgeom.match.correspondence import pair_by_correspondence
from featgeom.match.decoder import pair_by_decoder_cosine
from featgeom.match.pairing import MODES, Pairing, pair
from featgeom.match.soft import soft_correspondence

__all__ = [
    "MIN_SAMPLES",
    "MODES",
    "CorrelationAccumulator",
    "CorrelationResult",
    "Pairing",
    "PermutedCorrelation",
    "activation_correlation",
    "pair",
    "pair_by_correspondence",
    "pair_by_decoder_cosine",
    "soft_correspondence",
]
