"""Dead latents across training checkpoints: do they die early, do they come back? (task 6.1)

Input: masks (T, n_latents) bool, masks[t, i] = latent i is dead at checkpoint t (T >= 2, in
training order), e.g. ``np.stack([dead_latents(acts_t) for acts_t in ...])`` with
:func:`~featgeom.metrics.detection.dead_latents`. D_t = the set of latents dead at t. Per step
t -> t + 1 (T - 1 steps):

* stability  DLS_t   = |D_t & D_{t+1}| / |D_{t+1}|  (of the latents dead later, the share already
  dead before: the plan's "what percentage of latents that are dead at 100M tokens were also
  dead at 50M tokens?", which "measures whether dead latents die early")
* recovery   DLRec_t = |D_t - D_{t+1}| / |D_t|      (revival rate: of the latents dead at t, the
  share alive at t + 1; 1 - DLRec_t is the share that stays dead)

A ratio with an empty denominator is NaN; the scalar versions average the defined steps (NaN
when none is defined). To compare two chosen checkpoints (50M vs 100M) pass just those two rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from featgeom.errors import ShapeError
from featgeom.metrics._common import bool_array


@dataclass(frozen=True)
class DeadLatentTransitions:
    """Per checkpoint: dead (T,) = |D_t|. Per step t -> t + 1, each (T - 1,): stayed =
    |D_t & D_{t+1}|, revived = |D_t - D_{t+1}|, died = |D_{t+1} - D_t| (int64); stability and
    recovery as in the module docstring (float, NaN where undefined)."""

    dead: np.ndarray
    stayed: np.ndarray
    revived: np.ndarray
    died: np.ndarray
    stability: np.ndarray
    recovery: np.ndarray


def dead_latent_transitions(masks: object) -> DeadLatentTransitions:
    """Counts and per-step DLS / DLRec of dead-latent masks (T, n_latents), T >= 2."""
    m = bool_array(masks, "masks", 2)
    if m.shape[0] < 2:
        raise ShapeError(f"masks: need at least 2 checkpoints (rows), got {m.shape[0]}")
    before, after = m[:-1], m[1:]
    stayed = (before & after).sum(axis=1)
    revived = (before & ~after).sum(axis=1)
    died = (~before & after).sum(axis=1)
    dead = m.sum(axis=1)
    return DeadLatentTransitions(
        dead=dead, stayed=stayed, revived=revived, died=died,
        stability=_ratio(stayed, dead[1:]), recovery=_ratio(revived, dead[:-1]),
    )


def dead_latent_stability(masks: object) -> float:
    """DLS (plan task 6.1): mean over steps t of |D_t & D_{t+1}| / |D_{t+1}|.

    masks (T, n_latents) bool, T >= 2. Range [0, 1]: 1 when every latent dead at a checkpoint was
    already dead at the one before (dead latents die early and stay dead), 0 when all of them
    died since. NaN when no later checkpoint has a dead latent.
    """
    return _mean_defined(dead_latent_transitions(masks).stability)


def dead_latent_recovery(masks: object) -> float:
    """DLRec (plan task 6.1): revival rate, mean over steps t of |D_t - D_{t+1}| / |D_t|.

    masks (T, n_latents) bool, T >= 2. Range [0, 1]: 0 when no dead latent ever comes back, 1
    when every latent dead at t is alive at t + 1. NaN when no earlier checkpoint has a dead
    latent. Compare runs with and without a revival method (auxiliary loss, re-initialization).
    """
    return _mean_defined(dead_latent_transitions(masks).recovery)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den as float, NaN where den == 0."""
    out = np.full(num.shape, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _mean_defined(values: np.ndarray) -> float:
    """Mean of the non-NaN values, NaN when there are none (no warning)."""
    ok = ~np.isnan(values)
    return float(values[ok].mean()) if ok.any() else float("nan")
