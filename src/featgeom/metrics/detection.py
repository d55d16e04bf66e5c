"""SAE latents as detectors of true features (task 5.1) and dead latents (task 6.1).

Activations are (n_samples, n_items), dense or scipy.sparse (never densified here). A latent
fires when its activation is != 0 (negative activations of AbsTopK-like SAEs count); a true
feature fires when its activation is > 0. Latent i detects feature m(i) = argmax_j
|cos(decoder_i, features_j)|, its best match by decoder direction, as in SAELens's
``ClassificationMetricsCalculator``; stream batches with :class:`DetectionAccumulator`.
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Real

import numpy as np
import scipy.sparse as sp

from featgeom import formulas
from featgeom.checks import as_activations, check_same_rows, to_numpy
from featgeom.errors import ConfigError, DataError, ShapeError
from featgeom.metrics._common import Acts, columns
from featgeom.metrics.recovery import abs_cosine


class DetectionAccumulator:
    """Per-latent TP/FP/FN/TN counts of latent firing vs. its best-matching feature's firing.

    decoder (n_latents, d), features (N, d). Call :meth:`add_batch` once per batch of
    (latent_acts (rows, n_latents), feature_acts (rows, N)), then :meth:`compute`.
    """

    def __init__(self, decoder: object, features: object) -> None:
        cos = abs_cosine(decoder, features)
        self.n_latents, self.n_features = cos.shape
        self.best = formulas.best_features(cos)  # m(i), (n_latents,)
        self.n_samples = 0
        self.tp = np.zeros(self.n_latents, dtype=np.int64)
        self.latent_fires = np.zeros(self.n_latents, dtype=np.int64)  # TP + FP
        self.feature_fires = np.zeros(self.n_latents, dtype=np.int64)  # TP + FN

    def add_batch(self, latent_acts: object, feature_acts: object) -> None:
        """Count one batch: latent_acts (rows, n_latents), feature_acts (rows, N)."""
        lat = as_activations(latent_acts, "latent_acts")
        feat = as_activations(feature_acts, "feature_acts")
        check_same_rows(lat, feat, ("latent_acts", "feature_acts"))
        columns(lat, self.n_latents, "latent_acts", "decoder rows (latents)")
        columns(feat, self.n_features, "feature_acts", "true features")
        lat_fires = _fires(lat, positive_only=False)
        feat_fires = _fires(feat, positive_only=True)[:, self.best]  # (rows, n_latents)
        self.tp += _column_counts(_both(lat_fires, feat_fires))
        self.latent_fires += _column_counts(lat_fires)
        self.feature_fires += _column_counts(feat_fires)
        self.n_samples += lat.shape[0]

    def compute(
        self, betas: Sequence[float] = (0.5, 1.0, 2.0), *, per_latent: bool = False
    ) -> dict[str, object]:
        """Mean precision, recall, F_beta (key ``f{beta:g}``) and accuracy over latents.

        Per latent: P = TP / (TP + FP), R = TP / (TP + FN), each 0 when its denominator is 0;
        F_beta = (1 + b^2) P R / (b^2 P + R), 0 when P = R = 0; accuracy = (TP + TN) / n_samples.
        All in [0, 1]; 1 = the latent fires exactly when its feature does. With ``per_latent``
        the result also holds "per_latent": a dict of (n_latents,) arrays (the same scores, the
        counts tp/fp/fn/tn, and "feature": m(i)).
        """
        if self.n_samples == 0:
            raise DataError("latent_acts: no samples were added")
        scores = self._per_latent(_betas(betas))
        out: dict[str, object] = {k: float(v.mean()) for k, v in scores.items() if k not in _COUNTS}
        if per_latent:
            out["per_latent"] = scores
        return out

    def _per_latent(self, betas: list[float]) -> dict[str, np.ndarray]:
        """Counts and scores of every latent."""
        tp = self.tp
        fp, fn = self.latent_fires - tp, self.feature_fires - tp
        tn = self.n_samples - tp - fp - fn
        precision, recall = formulas.precision_recall(tp, fp, fn)
        out = {"precision": precision, "recall": recall}
        for b in betas:
            out[f"f{b:g}"] = formulas.f_beta(precision, recall, b)
        out["accuracy"] = (tp + tn) / self.n_samples
        out.update(tp=tp, fp=fp, fn=fn, tn=tn, feature=self.best)
        return out


_COUNTS = ("tp", "fp", "fn", "tn", "feature")


def detection_scores(
    latent_acts: object,
    feature_acts: object,
    decoder: object,
    features: object,
    betas: Sequence[float] = (0.5, 1.0, 2.0),
    *,
    per_latent: bool = False,
) -> dict[str, object]:
    """Each latent as a detector of its best-matching true feature, over one set of samples.

    latent_acts (n_samples, n_latents), feature_acts (n_samples, N), decoder (n_latents, d),
    features (N, d). Returns the means described in :meth:`DetectionAccumulator.compute`;
    precision, recall, f1 and accuracy equal SAELens's ``compute_classification_metrics``.
    """
    acc = DetectionAccumulator(decoder, features)
    acc.add_batch(latent_acts, feature_acts)
    return acc.compute(betas, per_latent=per_latent)


def dead_latents(latent_acts: object) -> np.ndarray:
    """(n_latents,) bool: latent i is dead, never != 0 over latent_acts (n_samples, n_latents).

    One row of the checkpoint masks of :mod:`featgeom.metrics.dead`.
    """
    acts = as_activations(latent_acts, "latent_acts")
    return _column_counts(_fires(acts, positive_only=False)) == 0


def dead_latent_rate(latent_acts: object) -> float:
    """DLR = (latents never != 0 over the samples) / n_latents, latent_acts (n_samples, n_latents).

    Range [0, 1]: 0 when every latent fires at least once, 1 when none does.
    """
    return float(np.mean(dead_latents(latent_acts)))


def f_beta(precision: object, recall: object, beta: float = 1.0) -> np.ndarray | float:
    """F_beta = (1 + beta^2) P R / (beta^2 P + R), 0 where P = R = 0.

    precision, recall: numbers or arrays in [0, 1] of one shape (broadcast); beta > 0 weighs
    recall beta times as much as precision (F0.5 favours precision, F2 recall, F1 is their
    harmonic mean). Returns a float for scalar inputs, else an array of the broadcast shape.
    The checked inputs of :func:`featgeom.formulas.f_beta`.
    """
    if isinstance(beta, bool) or not isinstance(beta, Real) or not 0 < float(beta) < np.inf:
        raise ConfigError(f"beta: expected a finite number > 0, got {beta!r}")
    b = float(beta)
    p, r = _unit_values(precision, "precision"), _unit_values(recall, "recall")
    try:
        p, r = np.broadcast_arrays(p, r)
    except ValueError:
        raise ShapeError(
            f"precision has shape {p.shape} but recall has {r.shape}: they must broadcast"
        ) from None
    out = formulas.f_beta(p, r, b)
    return float(out) if out.ndim == 0 else out


def _unit_values(x: object, name: str) -> np.ndarray:
    """x as a float64 array with every value finite and in [0, 1]."""
    try:
        arr = np.asarray(to_numpy(x), dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{name}: cannot be read as numbers ({exc})") from None
    if not np.all(np.isfinite(arr)) or np.any(arr < 0) or np.any(arr > 1):
        raise DataError(f"{name}: values must be finite and in [0, 1]")
    return arr


def _fires(x: Acts, *, positive_only: bool) -> np.ndarray | sp.csc_array:
    """Boolean firing pattern (x > 0 or x != 0): dense bool array, or CSC without stored zeros."""
    if isinstance(x, np.ndarray):
        return x > 0 if positive_only else x != 0
    m = sp.csc_array(x > 0) if positive_only else sp.csc_array(x != 0)
    m.eliminate_zeros()
    return m


def _both(x: np.ndarray | sp.csc_array, y: np.ndarray | sp.csc_array) -> object:
    """Elementwise AND of two boolean patterns (sparse when either is)."""
    if isinstance(x, np.ndarray) and isinstance(y, np.ndarray):
        return x & y
    return x.multiply(y) if sp.issparse(x) else y.multiply(x)


def _column_counts(fires: np.ndarray | sp.sparray) -> np.ndarray:
    """Number of True entries per column, int64."""
    if isinstance(fires, np.ndarray):
        return np.count_nonzero(fires, axis=0).astype(np.int64)
    csc = sp.csc_array(fires)
    csc.eliminate_zeros()
    return np.diff(csc.indptr).astype(np.int64)


def _betas(betas: Sequence[float]) -> list[float]:
    """Validate F-score betas: a non-empty sequence of finite numbers > 0."""
    values = list(betas) if isinstance(betas, Sequence) else []
    ok = bool(values) and all(
        isinstance(b, Real) and not isinstance(b, bool) and 0 < float(b) < np.inf for b in values
    )
    if not ok:
        raise ConfigError(f"betas: expected a non-empty sequence of numbers > 0, got {betas!r}")
    return [float(b) for b in values]
