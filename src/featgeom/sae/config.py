"""Training configuration of one SAE on one family member, validated on construction.

``SAETrainConfig`` holds every knob of a run (architecture, width, target L0, optimiser, schedule,
data, revival, threads, checkpoints); :func:`featgeom.sae.recipes.recipe` gives the tuned
defaults per architecture.  Same config + same member ⇒ same SAE, bit for bit, on the same torch
build and CPU instruction set (see :mod:`featgeom.sae.artifact` for what the id holds).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from featgeom.config import build, check_seed, field_error, to_dict
from featgeom.device import canonical_device
from featgeom.sae.architectures import REGISTRY

ARCHITECTURES = tuple(REGISTRY)  # the registered architectures (featgeom.sae.architectures)
CONTROLLED = tuple(a.name for a in REGISTRY.values() if a.controlled)  # sparsity coefficient adapted to hit the target L0
SCHEDULES = ("constant", "cosine", "linear_decay")
# JumpReLU's sparsity loss (SAELens's jumprelu_sparsity_loss_mode): 'step' = coefficient x L0
# (DeepMind), 'tanh' (Anthropic), 'quadratic' = coefficient x 2 / l0 x (L0 - l0)^2 per sample
# around the target (Gemma Scope 2: pulls L0 up as well as down, so it needs no controller).
JUMPRELU_SPARSITY_LOSSES = ("step", "tanh", "quadratic")
REVIVALS = ("none", "aux", "resample")
CHECKPOINT_FRACTION = 0.1  # default checkpoint interval: this fraction of the training samples


@dataclass(frozen=True)
class SAETrainConfig:
    """One training run.

    arch: one of ARCHITECTURES.  width: number of latents.  l0: target mean active latents per
    sample (k for the TopK family, the iteration cap for matching pursuit, the controller's
    target for standard / jumprelu / gated).  lr, warmup_fraction, schedule (constant, cosine to
    lr/10, linear_decay to 0 over the last decay_fraction), batch_size, samples, seed.
    revival: 'aux' (TopK-family auxiliary loss / JumpReLU pre-activation loss), 'resample'
    (dead latents re-initialised towards badly reconstructed inputs every resample_every samples),
    or 'none'.  dead_window: samples without firing after which a latent counts as dead.
    sparsity_coefficient: initial L1 / L0 coefficient, then adapted by the PI controller
    (controller_gain: integral gain per step, controller_proportional: proportional gain).
    calibrate_l0: after training, shift the gate of a controlled SAE so its L0 on fresh samples
    equals the target (see :func:`featgeom.sae.train.calibrate_l0`).
    jumprelu_ste_to_input: JumpReLU's L0 gradient also reaches the encoder (Anthropic) or not (DeepMind).
    jumprelu_sparsity_loss: one of JUMPRELU_SPARSITY_LOSSES (the quadratic one targets l0 itself).
    threshold_lr_factor: JumpReLU's threshold trains with base learning rate lr x this factor (the
    schedule applies to it as to every parameter). Adam moves a parameter by about its lr per step
    whatever the gradient's scale, and SAELens parameterises the threshold directly, so from its
    init 0.01 a threshold needs ~t / lr steps to reach a working value t (~2 on `small`: 700 steps
    at lr 3e-3, i.e. 700k samples): a larger L0 coefficient cannot speed it up (docs/sae_recipes.md).
    matryoshka_levels: nested prefix widths as fractions of width (the last level is width).
    threads: torch intra-op (and BLAS) threads while training and evaluating; some reductions
    depend on it, so it is part of the id.  Default 1: on a 2-core CPU, two threads train TopK
    (width 640, 128 dims, batch 1024) ~1.3x faster while the other core is idle but ~12x slower
    while another process keeps it busy (spinning OpenMP threads wait for the descheduled one).
    checkpoint_every: samples between checkpoints (0: none; None: CHECKPOINT_FRACTION of samples);
    not part of the id: checkpoints change neither the weights nor the history.
    log_every: samples between history rows.
    device: 'cpu', 'cuda' or 'cuda:N' (:mod:`featgeom.device`; checked against the machine when
    training starts, so a stored GPU run's config still reads on a CPU machine).  On CUDA, training
    runs with torch's deterministic algorithms (repeatable for a seed on one GPU model; ops without a
    deterministic kernel warn).  Its type is part of the id (GPU and CPU bits differ); the index is not.
    """

    arch: str
    width: int
    l0: float
    lr: float = 1e-3
    warmup_fraction: float = 0.01
    schedule: str = "linear_decay"
    decay_fraction: float = 0.2
    batch_size: int = 1024
    samples: int = 2_000_000
    seed: int = 0
    revival: str = "aux"
    aux_coefficient: float = 1.0
    resample_every: int = 250_000
    dead_window: int = 200_000
    sparsity_coefficient: float = 1.0
    controller_gain: float = 0.01
    controller_proportional: float = 1.0
    jumprelu_bandwidth: float = 0.05
    jumprelu_init_threshold: float = 0.01
    jumprelu_ste_to_input: bool = True
    jumprelu_sparsity_loss: str = "step"
    threshold_lr_factor: float = 1.0
    calibrate_l0: bool = True
    matryoshka_levels: list[float] | None = None
    decoder_init_norm: float = 0.1
    threads: int = 1
    checkpoint_every: int | None = None
    log_every: int = 50_000
    device: str = "cpu"

    def __post_init__(self) -> None:
        object.__setattr__(self, "device", canonical_device(self.device, "device"))
        if self.arch not in ARCHITECTURES:
            raise field_error("arch", f"unknown architecture {self.arch!r} (one of {', '.join(ARCHITECTURES)})")
        if self.width < 1:
            raise field_error("width", f"must be >= 1, got {self.width}")
        if not 0 < self.l0 <= self.width:
            raise field_error("l0", f"must be in (0, width={self.width}], got {self.l0}")
        if self.arch in ("topk", "matching_pursuit") and self.l0 != int(self.l0):
            raise field_error("l0", f"must be an integer for {self.arch}, got {self.l0}")
        self._check_positive("lr", "batch_size", "samples", "dead_window", "log_every", "sparsity_coefficient",
                             "threads", "threshold_lr_factor")
        if self.samples < self.batch_size:
            raise field_error("samples", f"must be >= batch_size ({self.batch_size}), got {self.samples}")
        check_seed("seed", self.seed)
        if self.schedule not in SCHEDULES:
            raise field_error("schedule", f"unknown schedule {self.schedule!r} (one of {', '.join(SCHEDULES)})")
        if self.jumprelu_sparsity_loss not in JUMPRELU_SPARSITY_LOSSES:
            raise field_error("jumprelu_sparsity_loss", f"unknown loss {self.jumprelu_sparsity_loss!r} "
                              f"(one of {', '.join(JUMPRELU_SPARSITY_LOSSES)})")
        if self.revival not in REVIVALS:
            raise field_error("revival", f"unknown revival {self.revival!r} (one of {', '.join(REVIVALS)})")
        if self.revival == "aux" and not REGISTRY[self.arch].aux_revival:
            raise field_error("revival", f"'aux' needs a TopK-family or jumprelu SAE; use 'resample' for {self.arch}")
        for name in ("warmup_fraction", "decay_fraction"):
            if not 0 <= getattr(self, name) < 1:
                raise field_error(name, f"must be in [0, 1), got {getattr(self, name)}")
        if self.checkpoint_every is not None and self.checkpoint_every < 0:
            raise field_error("checkpoint_every", f"must be >= 0, got {self.checkpoint_every}")
        if self.matryoshka_levels is not None and not all(0 < f < 1 for f in self.matryoshka_levels):
            raise field_error("matryoshka_levels", "fractions must lie in (0, 1)")

    def _check_positive(self, *names: str) -> None:
        for name in names:
            if not getattr(self, name) > 0:
                raise field_error(name, f"must be > 0, got {getattr(self, name)}")

    @property
    def steps(self) -> int:
        """Number of optimiser steps: samples // batch_size."""
        return self.samples // self.batch_size

    @property
    def checkpoint_interval(self) -> int:
        """Samples between checkpoints: checkpoint_every, or CHECKPOINT_FRACTION of samples (at least
        one batch) when it is None; 0 means no checkpoints."""
        if self.checkpoint_every is not None:
            return self.checkpoint_every
        return max(self.batch_size, int(CHECKPOINT_FRACTION * self.samples))

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "") -> SAETrainConfig:
        """Strict construction from a mapping (unknown keys, bad values -> ConfigError)."""
        return build(cls, data, where)

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)

    def with_changes(self, **changes: Any) -> SAETrainConfig:
        """A validated copy with some fields replaced."""
        return replace(self, **changes)
