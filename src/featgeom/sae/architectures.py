"""The registry of SAE architectures: each one's facts in one place.

An :class:`Architecture` says how featgeom trains one SAELens training SAE class (its name in
SAELens's registry): which coefficient the L0 controller adapts (``coefficient``; None when the
target L0 is set directly, as k or an iteration cap), which parameter the post-training L0
calibration shifts (``gate``), whether the auxiliary-loss revival applies (``aux_revival``; else
dead latents are resampled), whether :mod:`featgeom.sae.sparse` reproduces its training pass
(``sparse_pass``), and its CPU recipe (``recipe``: SAETrainConfig settings, plus ``width_factor``
for :func:`featgeom.sae.recipes.recipe`; docs/sae_recipes.md has how each was found). The config,
the training loop, the recipes, the grid's ``sae.arch`` axis and ``featgeom architectures`` read it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Architecture:
    """One registered architecture (see module docstring)."""

    name: str
    description: str
    recipe: Mapping[str, Any] = field(default_factory=dict)
    coefficient: str | None = None
    gate: str | None = None
    aux_revival: bool = False
    sparse_pass: bool = False

    @property
    def controlled(self) -> bool:
        """Whether the L0 controller adapts a sparsity coefficient (and calibrate_l0 shifts the gate)."""
        return self.coefficient is not None


_REGISTRY = (
    Architecture("standard", "ReLU SAE with an L1 penalty (SAELens 'standard')",
                 {"lr": 3e-3, "samples": 3_000_000, "revival": "resample", "schedule": "cosine",
                  "sparsity_coefficient": 3.0, "controller_gain": 0.02},
                 coefficient="l1", gate="b_enc"),
    # width_factor: width = round(width_factor x the member's number of features).
    Architecture("topk", "k largest pre-activations per sample",
                 {"lr": 3e-3, "samples": 4_500_000, "revival": "aux", "width_factor": 1.25},
                 aux_revival=True, sparse_pass=True),
    Architecture("batchtopk", "k x batch largest pre-activations per batch; inference with a learned global threshold",
                 {"lr": 3e-3, "samples": 5_000_000, "revival": "aux", "width_factor": 1.25},
                 aux_revival=True, sparse_pass=True),
    Architecture("matryoshka_batchtopk", "BatchTopK with nested prefix reconstructions",
                 {"lr": 3e-3, "samples": 2_600_000, "revival": "aux", "width_factor": 1.25},
                 aux_revival=True),
    # quadratic loss around the target L0 (no controller: it pulls L0 both ways) and the threshold
    # at 5x the lr (Adam moves it ~lr per step; docs/sae_recipes.md); ste_to_input True
    # (Anthropic) kills 86% of latents here
    Architecture("jumprelu", "per-latent learned thresholds (L0 loss through a straight-through estimator)",
                 {"lr": 3e-3, "samples": 3_000_000, "revival": "aux", "schedule": "cosine",
                  "sparsity_coefficient": 1.0, "controller_gain": 0.0, "controller_proportional": 0.0,
                  "jumprelu_sparsity_loss": "quadratic", "threshold_lr_factor": 5.0, "aux_coefficient": 0.01,
                  "jumprelu_ste_to_input": False},
                 coefficient="l0", gate="threshold", aux_revival=True),
    Architecture("gated", "separate gate and magnitude paths, L1 on the gate",
                 {"lr": 3e-3, "samples": 3_000_000, "revival": "resample", "schedule": "cosine",
                  "sparsity_coefficient": 3.0, "controller_gain": 0.02},
                 coefficient="l1", gate="b_gate"),
    Architecture("matching_pursuit", "greedy pursuit over unit decoder rows, at most l0 iterations",
                 {"lr": 3e-3, "samples": 1_500_000, "revival": "resample"}),
)
REGISTRY: dict[str, Architecture] = {a.name: a for a in _REGISTRY}


def architecture(name: str) -> Architecture:
    """The registered architecture ``name``; KeyError for an unknown one (callers name the field)."""
    return REGISTRY[name]
