"""``compare``: one call that measures the universality of two SAEs on the same inputs.

Pipeline: encode both models' activations with their SAEs -> Pearson correlation of every latent
pair (sparse, streaming; :mod:`featgeom.match`) -> pairings in several modes -> similarity of the
paired decoder rows (SVCCA correct and legacy, RSA, linear CKA, Procrustes) each with a shuffled-
pairing null (:mod:`featgeom.stats`) -> with a family, every ground-truth metric
(:mod:`featgeom.metrics`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from featgeom.checks import as_matrix, check_same_rows
from featgeom.errors import ConfigError, DataError, ShapeError
from featgeom.match import MODES, activation_correlation, pair
from featgeom.stats import null_tests

SIMILARITY_METRICS = ("svcca", "svcca_legacy", "rsa", "cka", "procrustes")
FULL_MATRIX_LIMIT = 50_000_000  # latent pairs above which only top-k partners are kept


@dataclass
class CompareResult:
    """Everything ``compare`` measured, as plain numbers (``to_dict`` / ``to_json``).

    pairings[mode]: n_pairs, mean_corr and, per similarity metric, observed / null_mean /
    null_std / p_value; pairs[mode]: the Pairing itself (not serialised).
    """

    n_samples: int
    n_latents: tuple[int, int]
    dead: tuple[int, int]
    pairings: dict[str, dict[str, Any]] = field(default_factory=dict)
    pairs: dict[str, Any] = field(default_factory=dict, repr=False)
    ground_truth: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"n_samples": self.n_samples, "n_latents": list(self.n_latents), "dead": list(self.dead),
                "pairings": self.pairings, "ground_truth": self.ground_truth}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)


def encode(sae: Any, acts: np.ndarray, batch_size: int = 4096) -> sp.csr_matrix:
    """Latent activations (n, n_latents) of an SAELens-style SAE (``encode``) as a CSR matrix."""
    import torch

    parts = []
    with torch.no_grad():
        for start in range(0, acts.shape[0], batch_size):
            chunk = torch.from_numpy(np.ascontiguousarray(acts[start:start + batch_size], dtype=np.float32))
            parts.append(sp.csr_matrix(sae.encode(chunk).detach().cpu().numpy()))
    return sp.vstack(parts, format="csr")


def decoder_rows(sae: Any) -> np.ndarray:
    """Decoder directions (n_latents, d) of an SAELens-style SAE (``W_dec``) or an array."""
    w = getattr(sae, "W_dec", sae)
    w = w.detach().cpu().numpy() if hasattr(w, "detach") else np.asarray(w)
    return as_matrix(w, "W_dec")


def compare(
    sae_a: Any, sae_b: Any, acts_a: np.ndarray, acts_b: np.ndarray, *,
    modes: Sequence[str] = ("many_to_one", "mutual"), n_perm: int = 1000, seed: int = 0,
    rsa_max_items: int = 2000, ground_truth: GroundTruth | None = None, precision: str = "float32",
) -> CompareResult:
    """Measure how similar two SAEs are on the same inputs.

    sae_a, sae_b: SAELens SAEs (anything with ``encode`` and ``W_dec``); acts_a (n, d_a), acts_b
    (n, d_b): the two models' activations on the same n inputs (row i = same input).
    Encodes both and runs :func:`compare_latents` (all other arguments as there).
    """
    acts_a, acts_b = as_matrix(acts_a, "acts_a", np.float32), as_matrix(acts_b, "acts_b", np.float32)
    check_same_rows(acts_a, acts_b, ("acts_a", "acts_b"))
    _check_modes(modes)
    return compare_latents(
        encode(sae_a, acts_a), encode(sae_b, acts_b), decoder_rows(sae_a), decoder_rows(sae_b),
        modes=modes, n_perm=n_perm, seed=seed, rsa_max_items=rsa_max_items,
        ground_truth=ground_truth, precision=precision,
    )


def compare_latents(
    lat_a: Any, lat_b: Any, dec_a: np.ndarray, dec_b: np.ndarray, *,
    modes: Sequence[str] = ("many_to_one", "mutual"), n_perm: int = 1000, seed: int = 0,
    rsa_max_items: int = 2000, ground_truth: GroundTruth | None = None, precision: str = "float32",
) -> CompareResult:
    """:func:`compare` from latent activations: lat_a (n, N_a), lat_b (n, N_b) (dense or sparse,
    same n samples) and decoder rows dec_a (N_a, d_a), dec_b (N_b, d_b).

    Per pairing mode: number of pairs, mean correlation, and for each of SIMILARITY_METRICS the
    observed value, null mean/std and +1-corrected p-value over ``n_perm`` shuffled pairings
    (:func:`featgeom.stats.null_tests`: one set of permutations for all metrics, RSA on at most
    ``rsa_max_items`` pairs). ``precision`` is the nulls' working precision: "float32" (about
    twice as fast; p-values equal the float64 ones, null mean/std to ~1e-6) or "float64".
    ``ground_truth`` adds the metrics only a synthetic family allows (see :class:`GroundTruth`).
    """
    _check_modes(modes)
    dec_a, dec_b = as_matrix(dec_a, "dec_a"), as_matrix(dec_b, "dec_b")
    for lat, dec, side in ((lat_a, dec_a, "a"), (lat_b, dec_b, "b")):
        if dec.shape[0] != lat.shape[1]:
            raise ShapeError(f"dec_{side}: has {dec.shape[0]} rows but lat_{side} has {lat.shape[1]} latents")
    full = lat_a.shape[1] * lat_b.shape[1] <= FULL_MATRIX_LIMIT
    corr = activation_correlation(lat_a, lat_b, top_k=None if full else 8)
    result = CompareResult(
        n_samples=lat_a.shape[0], n_latents=(lat_a.shape[1], lat_b.shape[1]),
        dead=(int(corr.dead_a.size), int(corr.dead_b.size)),
    )
    for mode in modes:
        result.pairs[mode] = pair(corr, mode=mode)
        result.pairings[mode] = _pairing_summary(
            result.pairs[mode], dec_a, dec_b, n_perm, seed, rsa_max_items, precision)
    if ground_truth is not None:
        result.ground_truth = ground_truth.measure(dec_a, dec_b, lat_a, lat_b, corr, result.pairs)
    return result


def _check_modes(modes: Sequence[str]) -> None:
    """ConfigError for an empty list or an unknown pairing mode."""
    unknown = sorted(set(modes) - set(MODES))
    if unknown or not modes:
        raise ConfigError(f"modes: unknown or empty pairing modes {unknown or list(modes)}")


def _pairing_summary(pairing: Any, dec_a: np.ndarray, dec_b: np.ndarray, n_perm: int, seed: int,
                     rsa_max_items: int, precision: str) -> dict[str, Any]:
    """Pair count, mean correlation and the similarity of the paired decoder rows with nulls."""
    if len(pairing) < 3:
        raise DataError(f"pairing '{pairing.mode}': only {len(pairing)} pairs; similarity needs at least 3")
    x, y = dec_a[pairing.idx_a], dec_b[pairing.idx_b]
    summary: dict[str, Any] = {"n_pairs": len(pairing), "mean_corr": float(np.mean(pairing.score))}
    tests = null_tests(SIMILARITY_METRICS, x, y, n_perm=n_perm, seed=seed, precision=precision,
                       metric_kwargs={"rsa": {"max_items": rsa_max_items}})
    for metric, test in tests.items():
        summary[metric] = {k: v for k, v in test.to_dict().items() if k != "null"}
    return summary


@dataclass(frozen=True)
class GroundTruth:
    """What a synthetic family knows about two of its members, on the samples being compared.

    features_a (N_a, d_a), features_b (N_b, d_b): true feature directions; true_acts_a (n, N_a),
    true_acts_b (n, N_b): true feature activations on the same n samples (CSR);
    correspondence (N_a, N_b): the family's ground-truth correspondence.
    """

    features_a: np.ndarray
    features_b: np.ndarray
    true_acts_a: sp.csr_matrix
    true_acts_b: sp.csr_matrix
    correspondence: sp.csr_matrix

    @classmethod
    def from_family(cls, family: Any, member_a: str, member_b: str, features: dict[str, sp.csr_matrix]) -> GroundTruth:
        """From a family and the true activations of a paired batch (``sample(with_features=True)``)."""
        return cls(family.member(member_a).feature_vectors, family.member(member_b).feature_vectors,
                   features[member_a], features[member_b], family.correspondence(member_a, member_b))

    def measure(self, dec_a: np.ndarray, dec_b: np.ndarray, lat_a: sp.csr_matrix, lat_b: sp.csr_matrix,
                corr: Any, pairs: dict[str, Any]) -> dict[str, Any]:
        """Recovery of each SAE, GT-MCC vs empirical cross-model MCC (UG), pairing accuracy.

        The empirical MCC needs the full correlation matrix; when only top-k partners were kept
        (more than FULL_MATRIX_LIMIT latent pairs) it and the gap are None, and
        ``empirical_mcc_unavailable`` says why.
        """
        from featgeom import metrics

        gt = metrics.gt_mcc(self.true_acts_a, self.true_acts_b, self.correspondence, undefined_as_zero=True)
        empirical = metrics.cross_mcc(corr) if corr.matrix is not None else None
        feature_of_a = metrics.feature_assignment(dec_a, self.features_a, mode="argmax")
        feature_of_b = metrics.feature_assignment(dec_b, self.features_b, mode="argmax")
        out: dict[str, Any] = {
            "mcc_a": metrics.mcc(dec_a, self.features_a),
            "mcc_b": metrics.mcc(dec_b, self.features_b),
            "gt_mcc": gt,
            "empirical_mcc": empirical,
            "universality_gap": None if empirical is None else metrics.universality_gap(gt, empirical),
            "dead_rate_a": metrics.dead_latent_rate(lat_a),
            "dead_rate_b": metrics.dead_latent_rate(lat_b),
            "correspondence_accuracy": {
                mode: metrics.correspondence_accuracy(p.idx_a, p.idx_b, feature_of_a, feature_of_b,
                                                      self.correspondence)
                for mode, p in pairs.items()
            },
        }
        if empirical is None:
            out["empirical_mcc_unavailable"] = f"only top-k partners kept (> {FULL_MATRIX_LIMIT:,} latent pairs)"
        for side, lat, dec, acts, feats in (("a", lat_a, dec_a, self.true_acts_a, self.features_a),
                                            ("b", lat_b, dec_b, self.true_acts_b, self.features_b)):
            scores = metrics.detection_scores(lat, acts, dec, feats)
            out[f"f1_{side}"] = scores["f1"]
        return out

