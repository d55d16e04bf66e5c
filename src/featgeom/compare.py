"""The ``compare`` stage: one call that measures the universality of two SAEs on the same inputs.

Its own stage (below experiments, which run it over families, and real, which runs it over layer
pairs of two language models), so synthetic and real comparisons share one implementation.

Pipeline: encode both models' activations with their SAEs -> Pearson correlation of every latent
pair (sparse, streaming; :mod:`featgeom.match`) -> pairings in several modes -> similarity of the
paired decoder rows (every metric of the similarity registry, :data:`featgeom.similarity.SIMILARITY`,
or the ones asked for: SVCCA correct and legacy, RSA, linear CKA, Procrustes, debiased CKA, mutual
k-NN) each with a null that repeats the pairing on permuted samples (:func:`featgeom.stats.repair_tests`; the paper's
shuffled-pairing Test 1 on request) -> with a family, every ground-truth metric
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
from featgeom.device import optional_device
from featgeom.errors import ConfigError, DataError, ShapeError
from featgeom.match import PermutedCorrelation
from featgeom.match.correlation import check_samples
from featgeom.similarity.registry import SIMILARITY
from featgeom.stats import PRECISIONS, PairingProcedure, null_tests, repair_tests
from featgeom.stats.null import check_permutations
from featgeom.stats.repair import MIN_PAIRS

# every registered similarity metric, in registry order: what compare measures by default
SIMILARITY_METRICS = tuple(SIMILARITY)
# The nulls compare can run: the valid re-pairing null (default) and the paper's Test 1.
NULLS = ("repair", "shuffle")
# ground-truth values a comparison stores, in this order (GroundTruth.measure's scalar keys)
GT_KEYS = ("mcc_a", "mcc_b", "gt_mcc", "empirical_mcc", "universality_gap", "gap_missing_slots",
           "gap_imperfection", "cross_mcc_per_latent", "dead_rate_a", "dead_rate_b", "f1_a", "f1_b")
VALUE_KEYS = ("pairing", "metric", "value", "p_value", "null_mean", "null_std", "null_kind", "note")
FULL_MATRIX_LIMIT = 50_000_000  # latent pairs above which only top-k partners are kept
BEST_PARTNER_MODES = ("many_to_one", "one_to_many", "mutual")  # modes read off each latent's best partner


@dataclass
class CompareResult:
    """Everything ``compare`` measured, as plain numbers (``to_dict`` / ``to_json``).

    pairings[mode]: n_pairs, mean_corr and, per similarity metric, ``observed`` and
    ``nulls[name]`` (p_value, null_mean, null_std, n_perm, seed, kind, precision) for each null
    run (``nulls``, the first is the primary one); pairs[mode]: the Pairing itself (not
    serialised).
    """

    n_samples: int
    n_latents: tuple[int, int]
    dead: tuple[int, int]
    nulls: tuple[str, ...] = ("repair",)
    pairings: dict[str, dict[str, Any]] = field(default_factory=dict)
    pairs: dict[str, Any] = field(default_factory=dict, repr=False)
    ground_truth: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"n_samples": self.n_samples, "n_latents": list(self.n_latents), "dead": list(self.dead),
                "nulls": list(self.nulls), "pairings": self.pairings, "ground_truth": self.ground_truth}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)


def encode(sae: Any, acts: np.ndarray, side: str, n_latents: int, batch_size: int = 4096,
           device: Any = None) -> sp.csr_matrix:
    """Latent activations (n, n_latents) of an SAELens-style SAE (``encode``) as a float32 CSR matrix.

    With ``device`` (a torch.device) the SAE is moved there first (``sae.to(device)``, as SAELens
    does). Batches of ``batch_size`` rows of acts (n, d) go to the device and dtype of
    ``sae.W_dec`` (a torch tensor; otherwise they stay float32 CPU tensors); see :func:`_encoded`
    for the errors; running out of device memory is one ResourceError.
    """
    import torch

    from featgeom.device import device_memory

    if device is not None and hasattr(sae, "to"):
        sae.to(device)
    w_dec = sae.W_dec
    where = {"device": w_dec.device, "dtype": w_dec.dtype} if isinstance(w_dec, torch.Tensor) else {}
    parts = []
    with torch.no_grad(), device_memory(f"encoding acts_{side}", 4 * batch_size * (n_latents + acts.shape[1])):
        for start in range(0, acts.shape[0], batch_size):
            chunk = torch.as_tensor(np.ascontiguousarray(acts[start:start + batch_size]), **where)
            parts.append(sp.csr_matrix(_encoded(sae, chunk, side, n_latents)))
    return sp.vstack(parts, format="csr")


def _encoded(sae: Any, chunk: Any, side: str, n_latents: int) -> np.ndarray:
    """sae.encode(chunk) as a float32 (rows, n_latents) array; ConfigError naming sae_{side} when
    encode() fails, ShapeError when it does not return one column per decoder row."""
    import torch

    try:
        out = sae.encode(chunk)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise ConfigError(f"sae_{side}: encode() failed on a {tuple(chunk.shape)} batch of acts_{side} "
                          f"({type(exc).__name__}: {exc})") from None
    shape, want = tuple(getattr(out, "shape", ())), (chunk.shape[0], n_latents)
    if not isinstance(out, torch.Tensor) or shape != want:
        raise ShapeError(f"sae_{side}: encode() returned {type(out).__name__} of shape {shape} for "
                         f"{want[0]} rows of acts_{side}; expected a tensor of shape {want}, one column "
                         "per W_dec row")
    return out.detach().to("cpu", torch.float32).numpy()


def decoder_rows(sae: Any, name: str = "W_dec") -> np.ndarray:
    """Decoder directions (n_latents, d) of an SAELens-style SAE (``W_dec``) or an array."""
    return as_matrix(getattr(sae, "W_dec", sae), name)


def compare(
    sae_a: Any, sae_b: Any, acts_a: np.ndarray, acts_b: np.ndarray, *,
    modes: Sequence[str] | str = ("many_to_one", "mutual"), n_perm: int = 1000, seed: int = 0,
    rsa_max_items: int = 2000, ground_truth: GroundTruth | None = None, precision: str = "float32",
    nulls: Sequence[str] = ("repair",), min_corr: float | None = None, keep_a: Any = None, keep_b: Any = None,
    block_size: int | Sequence[int] = 1, device: Any = None, metrics: Sequence[str] | None = None,
) -> CompareResult:
    """Measure how similar two SAEs are on the same inputs.

    sae_a, sae_b: SAELens SAEs (anything with ``encode`` and ``W_dec``); acts_a (n, d_a), acts_b
    (n, d_b): the two models' activations on the same n >= 100 inputs (row i = same input;
    featgeom.match.MIN_SAMPLES). Encodes both (on ``device`` when given: the SAEs are moved there)
    and runs :func:`compare_latents` (all other arguments as there); every option is checked
    before anything is encoded.
    """
    modes, _, metrics = _checked_options(modes, nulls, precision, n_perm, seed, metrics)
    device = optional_device(device)
    acts_a, acts_b = as_matrix(acts_a, "acts_a", np.float32), as_matrix(acts_b, "acts_b", np.float32)
    check_same_rows(acts_a, acts_b, ("acts_a", "acts_b"))
    check_samples(acts_a.shape[0], "acts_a, acts_b")
    dec_a, dec_b = _checked_decoder(sae_a, acts_a, "a"), _checked_decoder(sae_b, acts_b, "b")
    return compare_latents(
        encode(sae_a, acts_a, "a", dec_a.shape[0], device=device),
        encode(sae_b, acts_b, "b", dec_b.shape[0], device=device), dec_a, dec_b,
        modes=modes, n_perm=n_perm, seed=seed, rsa_max_items=rsa_max_items,
        ground_truth=ground_truth, precision=precision, nulls=nulls, min_corr=min_corr, keep_a=keep_a,
        keep_b=keep_b, block_size=block_size, device=device, metrics=metrics,
    )



def compare_latents(
    lat_a: Any, lat_b: Any, dec_a: np.ndarray, dec_b: np.ndarray, *,
    modes: Sequence[str] | str = ("many_to_one", "mutual"), n_perm: int = 1000, seed: int = 0,
    rsa_max_items: int = 2000, ground_truth: GroundTruth | None = None, precision: str = "float32",
    nulls: Sequence[str] = ("repair",), min_corr: float | None = None, keep_a: Any = None, keep_b: Any = None,
    block_size: int | Sequence[int] = 1, device: Any = None, metrics: Sequence[str] | None = None,
) -> CompareResult:
    """:func:`compare` from latent activations: lat_a (n, N_a), lat_b (n, N_b) (dense or sparse,
    same n samples) and decoder rows dec_a (N_a, d_a), dec_b (N_b, d_b).

    Latents are paired by Pearson correlation of their activations in each of ``modes`` (pairs
    below ``min_corr`` dropped; only latents in the boolean masks ``keep_a`` (N_a,) / ``keep_b``
    (N_b,), e.g. without non-concept latents, may pair); per mode: number of pairs, mean
    correlation, and for each similarity metric in ``metrics`` (names of the similarity registry,
    :data:`featgeom.similarity.SIMILARITY`, in the order given; None: all of them, SIMILARITY_METRICS)
    the observed similarity of the paired decoder rows (RSA on at most ``rsa_max_items`` pairs) with a
    +1-corrected p-value, null mean and std from each null in ``nulls`` (``n_perm`` draws, seeded by
    ``seed``). The permutations do not depend on ``metrics``: a metric's numbers are the same whichever
    others are asked for (the spectral ones share one computation, so asking for CKA alone may change
    its last bits):

    * "repair" (default, valid): B's samples permuted (in whole blocks of ``block_size`` rows, or
      of the block lengths ``block_size`` lists, e.g. one per token window),
      correlation and pairing recomputed exactly as observed, then scored
      (:func:`featgeom.stats.repair_tests`). Answers "do the two SAEs share structure?".
    * "shuffle": the universality paper's Test 1, the observed pairing's rows shuffled
      (:func:`featgeom.stats.null_tests`; ``precision`` is its working precision). Answers only
      "does this pairing matter?": after pairing by activation correlation it finds similarity
      between SAEs of models that share nothing (see docs/experiments.md); kept to reproduce
      published numbers.

    ``ground_truth`` adds the metrics only a synthetic family allows (see :class:`GroundTruth`).

    ``device``: None (default) runs the correlation, pairing and nulls in NumPy / SciPy, the
    reference numbers; a device ('cpu', 'cuda', 'cuda:N' or a torch.device) runs the correlation
    (float64) and the similarity metrics and nulls (in ``precision``, near-ties re-scored in
    float64) in torch on it. The pairs are the NumPy path's except for exact ties, the p-values
    equal theirs, null means and stds agree to rounding (tests/experiments/test_compare_device.py).
    The pairing itself (greedy, mutual, Hungarian) and the ground-truth metrics run on the host
    from the correlations the device returns.

    Refused before any work: fewer than featgeom.match.MIN_SAMPLES (100) samples (ShapeError:
    chance correlations would swamp real ones), n_perm below 19 (p-values could never reach 0.05)
    or so large that the null scores of the metrics asked for would not fit 2 GiB (ConfigError;
    :func:`featgeom.stats.null.check_permutations`), an unknown or repeated metric (ConfigError).
    A pairing with fewer pairs than a metric needs (MIN_PAIRS = 3 for all; debiased_cka 4,
    mutual_knn k + 2 = 12: SimilarityMetric.pairs_needed) is a DataError naming the pairing and the
    metric, raised before any null draw is scored.
    """
    modes, nulls, metrics = _checked_options(modes, nulls, precision, n_perm, seed, metrics)
    device = optional_device(device)
    dec_a, dec_b = as_matrix(dec_a, "dec_a"), as_matrix(dec_b, "dec_b")
    for lat, dec, side in ((lat_a, dec_a, "a"), (lat_b, dec_b, "b")):
        if len(getattr(lat, "shape", ())) != 2:
            raise ShapeError(f"lat_{side}: expected a 2-D (n_samples, n_latents) array, got {type(lat).__name__}")
        if dec.shape[0] != lat.shape[1]:
            raise ShapeError(f"dec_{side}: has {dec.shape[0]} rows but lat_{side} has {lat.shape[1]} latents")
    check_same_rows(lat_a, lat_b, ("lat_a", "lat_b"))
    check_samples(lat_a.shape[0], "lat_a, lat_b")
    top_k = partners_kept(lat_a.shape[1], lat_b.shape[1], modes)
    procedure = PairingProcedure(modes, min_corr=min_corr, keep_a=keep_a, keep_b=keep_b, top_k=top_k)
    metric_kwargs = {"rsa": {"max_items": rsa_max_items}} if "rsa" in metrics else {}
    if "repair" in nulls:
        tested = repair_tests(lat_a, lat_b, dec_a, dec_b, procedure=procedure, metrics=metrics,
                              metric_kwargs=metric_kwargs, n_perm=n_perm, seed=seed, block_size=block_size,
                              device=device)
        corr, pairings = tested.corr, tested.pairings
    else:
        corr = PermutedCorrelation(lat_a, lat_b, top_k=procedure.top_k, device=device).result()
        pairings = procedure.pairings(corr)
    result = CompareResult(
        n_samples=lat_a.shape[0], n_latents=(lat_a.shape[1], lat_b.shape[1]),
        dead=(int(corr.dead_a.size), int(corr.dead_b.size)), nulls=nulls,
    )
    for mode in modes:
        pairing = pairings[mode]
        if len(pairing) < MIN_PAIRS:
            raise DataError(f"pairing '{mode}': only {len(pairing)} pairs; similarity needs at least {MIN_PAIRS}")
        _check_pairs(mode, len(pairing), metrics, metric_kwargs)
        result.pairs[mode] = pairing
        tests = {"repair": tested.tests[mode]} if "repair" in nulls else {}
        if "shuffle" in nulls:
            tests["shuffle"] = null_tests(metrics, dec_a[pairing.idx_a], dec_b[pairing.idx_b],
                                          n_perm=n_perm, seed=seed, precision=precision, metric_kwargs=metric_kwargs,
                                          device=device)
        result.pairings[mode] = _pairing_summary(pairing, tests, nulls, metrics)
    if ground_truth is not None:
        result.ground_truth = ground_truth.measure(dec_a, dec_b, lat_a, lat_b, corr, result.pairs)
    return result


# one measured value: (pairing, metric, value, p-value, null mean, null std, null kind, note)
Value = tuple[str, str, float | None, float | None, float | None, float | None, str, str]


def value_rows(context: dict[str, Any], values: Sequence[Value]) -> list[dict[str, Any]]:
    """Results rows: ``context`` (condition, members, seeds, ...) plus each value's VALUE_KEYS."""
    return [{**context, **dict(zip(VALUE_KEYS, v))} for v in values]


def result_values(result: dict[str, Any]) -> list[Value]:
    """Flatten ``CompareResult.to_dict()`` into (pairing, metric, value, p, null mean, null std,
    null, note) tuples: a similarity metric gives one per null it was tested with."""
    values: list[Value] = []
    for mode, summary in sorted(result["pairings"].items()):
        values.append((mode, "n_pairs", float(summary["n_pairs"]), None, None, None, "", ""))
        values.append((mode, "mean_corr", summary["mean_corr"], None, None, None, "", ""))
        for metric, test in sorted(summary.items()):
            if isinstance(test, dict):
                values += [(mode, metric, test["observed"], t["p_value"], t["null_mean"], t["null_std"], null, "")
                           for null, t in test["nulls"].items()]
    gt = result.get("ground_truth") or {}
    for mode, acc in sorted(gt.get("correspondence_accuracy", {}).items()):
        values.append((mode, "correspondence_accuracy", acc, None, None, None, "", ""))
    for key in GT_KEYS:
        if key in gt:
            note = gt.get("empirical_mcc_unavailable", "") if gt[key] is None else ""
            values.append(("", key, gt[key], None, None, None, "", note))
    return values


def partners_kept(n_a: int, n_b: int, modes: Sequence[str]) -> int | None:
    """Partners per latent the correlation keeps: None (the full matrix) up to FULL_MATRIX_LIMIT
    latent pairs; beyond, 1 when every mode needs only each latent's best partner
    (BEST_PARTNER_MODES), else 8 (enough for greedy to certify its pairs in practice)."""
    if n_a * n_b <= FULL_MATRIX_LIMIT:
        return None
    return 1 if set(modes) <= set(BEST_PARTNER_MODES) else 8


def _checked_options(
    modes: Sequence[str] | str, nulls: Sequence[str], precision: str, n_perm: int, seed: int,
    metrics: Sequence[str] | None = None,
) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """(modes, nulls, metrics) as tuples (a single mode name is one mode; metrics None: every
    registered one); ConfigError for a bad option.

    n_perm and seed as :func:`featgeom.stats.null.check_permutations` checks them, with one null
    score per metric asked for, mode and null.
    """
    modes, nulls, metrics = PairingProcedure(modes).modes, checked_nulls(nulls), checked_metrics(metrics)
    if precision not in PRECISIONS:
        raise ConfigError(f"precision: unknown {precision!r} (allowed: {', '.join(PRECISIONS)})")
    check_permutations(n_perm, seed, n_scores=len(metrics) * len(modes) * len(nulls))
    return modes, nulls, metrics


def checked_metrics(metrics: Sequence[str] | None) -> tuple[str, ...]:
    """The similarity metrics as a tuple of distinct registered names (None: every registered
    metric, in registry order); ConfigError naming ``metrics`` otherwise."""
    if metrics is None:
        return tuple(SIMILARITY)
    if isinstance(metrics, str):
        raise ConfigError(f"metrics: expected a list of metric names, got the string {metrics!r} (use [{metrics!r}])")
    try:
        names = tuple(metrics)
    except TypeError:
        raise ConfigError(f"metrics: expected a list of metric names, got {type(metrics).__name__}") from None
    if not names:
        raise ConfigError(f"metrics: empty; name at least one of {', '.join(SIMILARITY)} (or None for all)")
    for name in names:
        if not isinstance(name, str) or name not in SIMILARITY:
            raise ConfigError(f"metrics: unknown similarity metric {name!r} (one of {', '.join(SIMILARITY)})")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ConfigError(f"metrics: {', '.join(map(repr, repeated))} listed more than once")
    return names


def _check_pairs(mode: str, n_pairs: int, metrics: Sequence[str], metric_kwargs: dict[str, Any]) -> None:
    """DataError naming the pairing and the metric when a metric needs more pairs than it has."""
    for name in metrics:
        needed = SIMILARITY[name].pairs_needed(metric_kwargs.get(name))
        if n_pairs < needed:
            raise DataError(f"pairing '{mode}': only {n_pairs} pairs; metric {name} needs at least {needed} "
                            "(leave it out with metrics=..., or pair more latents)")


def checked_nulls(nulls: Sequence[str]) -> tuple[str, ...]:
    """The nulls as a tuple of distinct names from NULLS; ConfigError otherwise."""
    if isinstance(nulls, str):
        raise ConfigError(f"nulls: expected a list of nulls, got the string {nulls!r} (use [{nulls!r}])")
    nulls = tuple(nulls)
    if not nulls or len(set(nulls)) < len(nulls) or not set(nulls) <= set(NULLS):
        raise ConfigError(f"nulls: need distinct nulls from {', '.join(NULLS)}, got {list(nulls)}")
    return nulls


def _checked_decoder(sae: Any, acts: np.ndarray, side: str) -> np.ndarray:
    """The decoder rows (n_latents, d_in) of ``sae``; ConfigError / ShapeError unless it is an SAE
    (``encode`` and ``W_dec``) that reads activations of acts' width."""
    if not hasattr(sae, "encode") or not hasattr(sae, "W_dec"):
        raise ConfigError(f"sae_{side}: expected an SAE with encode() and W_dec, got {type(sae).__name__}")
    dec = decoder_rows(sae, f"sae_{side}.W_dec")
    if dec.shape[1] != acts.shape[1]:
        raise ShapeError(f"acts_{side}: has width {acts.shape[1]} but sae_{side} reads {dec.shape[1]}-dim activations")
    return dec


def _pairing_summary(
    pairing: Any, tests: dict[str, dict[str, Any]], nulls: tuple[str, ...], metrics: Sequence[str]
) -> dict[str, Any]:
    """Pair count, mean correlation and, per metric, the observed value and each null's summary."""
    summary: dict[str, Any] = {"n_pairs": len(pairing), "mean_corr": float(np.mean(pairing.score))}
    for metric in metrics:
        first = tests[nulls[0]][metric]
        summary[metric] = {
            "observed": first.observed,
            "nulls": {name: {k: v for k, v in tests[name][metric].to_dict().items()
                             if k not in ("null", "metric", "observed")} for name in nulls},
        }
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

        GT-MCC and empirical MCC are both per ground-truth feature slot (m = min(N_a, N_b)
        features; :func:`featgeom.metrics.universality_gap_details`): UG = gt_mcc -
        empirical_mcc = (gt_mcc - 1) + gap_missing_slots + gap_imperfection, where
        gap_missing_slots is the share of slots without an alive latent pair and
        gap_imperfection the shortfall of the matched pairs' |corr| from 1. Dead latents are
        reported separately (dead_rate_a, dead_rate_b); cross_mcc_per_latent is the older
        per-latent score (dead latents count 0, divided by min(#latents)).

        The empirical MCC needs the full correlation matrix; when only top-k partners were kept
        (more than FULL_MATRIX_LIMIT latent pairs) it and the gap are None, and
        ``empirical_mcc_unavailable`` says why.
        """
        from featgeom import metrics

        gt = metrics.gt_mcc(self.true_acts_a, self.true_acts_b, self.correspondence, undefined_as_zero=True)
        units = min(self.features_a.shape[0], self.features_b.shape[0])
        gap = metrics.universality_gap_details(gt, corr, units) if corr.matrix is not None else None
        feature_of_a = metrics.feature_assignment(dec_a, self.features_a, mode="argmax")
        feature_of_b = metrics.feature_assignment(dec_b, self.features_b, mode="argmax")
        out: dict[str, Any] = {
            "mcc_a": metrics.mcc(dec_a, self.features_a),
            "mcc_b": metrics.mcc(dec_b, self.features_b),
            "gt_mcc": gt,
            "empirical_mcc": None if gap is None else gap.empirical_mcc,
            "universality_gap": None if gap is None else gap.universality_gap,
            "gap_missing_slots": None if gap is None else gap.missing_slots / gap.n_units,
            "gap_imperfection": None if gap is None else gap.matched_slots / gap.n_units * gap.imperfection,
            "cross_mcc_per_latent": None if gap is None else metrics.cross_mcc(corr),
            "dead_rate_a": metrics.dead_latent_rate(lat_a),
            "dead_rate_b": metrics.dead_latent_rate(lat_b),
            "correspondence_accuracy": {
                mode: metrics.correspondence_accuracy(p.idx_a, p.idx_b, feature_of_a, feature_of_b,
                                                      self.correspondence)
                for mode, p in pairs.items()
            },
        }
        if gap is None:
            out["empirical_mcc_unavailable"] = f"only top-k partners kept (> {FULL_MATRIX_LIMIT:,} latent pairs)"
        for side, lat, dec, acts, feats in (("a", lat_a, dec_a, self.true_acts_a, self.features_a),
                                            ("b", lat_b, dec_b, self.true_acts_b, self.features_b)):
            scores = metrics.detection_scores(lat, acts, dec, feats)
            out[f"f1_{side}"] = scores["f1"]
        return out

