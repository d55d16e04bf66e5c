"""World configuration: every SynthSAEBench knob, validated on construction, plus presets.

A :class:`WorldConfig` maps one-to-one onto SAELens's ``SyntheticModelConfig`` (see
:func:`featgeom.world.build.to_saelens_config`); building both from the same values gives the
same world (feature directions equal up to float rounding of the orthogonalization, everything
else bit-identical).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from featgeom.config import build, check_seed, field_error, to_dict
from featgeom.errors import ConfigError

MAGNITUDE_KINDS = ("constant", "linear", "exponential", "folded_normal")


@dataclass(frozen=True)
class ZipfFiring:
    """Zipf (power-law) firing probabilities p_k ∝ k^-exponent, rescaled to [min_prob, max_prob].

    Feature 0 is the most frequent (SAELens ``ZipfianFiringProbabilityConfig``).
    """

    exponent: float = 0.5
    max_prob: float = 0.4
    min_prob: float = 5e-4

    def __post_init__(self) -> None:
        if self.exponent <= 0:
            raise field_error("exponent", f"must be > 0, got {self.exponent}")
        if not 0 < self.min_prob < self.max_prob <= 1:
            raise field_error(
                "min_prob", f"need 0 < min_prob < max_prob <= 1, got {self.min_prob}, {self.max_prob}"
            )


@dataclass(frozen=True)
class Magnitude:
    """Per-feature magnitude profile (SAELens ``MagnitudeConfig`` registry).

    kind: constant (value), linear / exponential (start -> end over feature index),
    folded_normal (|N(mean, std^2)| per feature, drawn with the world's seed).  A constant
    0 is a valid std profile (deterministic magnitudes); a world's mean profile must be > 0.
    """

    kind: str = "constant"
    value: float = 1.0
    start: float = 1.0
    end: float = 1.0
    mean: float = 0.0
    std: float = 0.1

    def __post_init__(self) -> None:
        if self.kind not in MAGNITUDE_KINDS:
            raise field_error("kind", f"unknown magnitude kind {self.kind!r} (one of {MAGNITUDE_KINDS})")
        if self.kind in ("linear", "exponential") and (self.start <= 0 or self.end <= 0):
            raise field_error("start", "start and end must be > 0")
        if self.kind == "folded_normal" and self.std <= 0:
            raise field_error("std", f"must be > 0, got {self.std}")
        if self.kind == "constant" and self.value < 0:
            raise field_error("value", f"must be >= 0, got {self.value}")


@dataclass(frozen=True)
class HierarchySpec:
    """Forest of feature trees (SAELens ``HierarchyConfig``); features 0.. fill it breadth-first.

    A child fires only if its parent fires; under a mutually exclusive parent at most one child
    survives (chosen uniformly among the active ones); with ``scale_children_by_parent`` a child's
    value is multiplied by parent_value / parent_mean_magnitude.
    """

    roots: int = 8
    branching: int = 4
    depth: int = 2
    mutually_exclusive_portion: float = 1.0
    compensate_probabilities: bool = True
    scale_children_by_parent: bool = True

    def __post_init__(self) -> None:
        if self.roots < 1:
            raise field_error("roots", f"must be >= 1, got {self.roots}")
        if self.branching < 2:
            raise field_error("branching", f"must be >= 2, got {self.branching}")
        if self.depth < 1:
            raise field_error("depth", f"must be >= 1, got {self.depth}")
        if not 0.0 <= self.mutually_exclusive_portion <= 1.0:
            raise field_error("mutually_exclusive_portion", f"must be in [0, 1], got {self.mutually_exclusive_portion}")

    def size(self) -> int:
        """Number of features the forest occupies: roots * (1 + b + ... + b^depth)."""
        return self.roots * sum(self.branching**level for level in range(self.depth + 1))


@dataclass(frozen=True)
class CorrelationSpec:
    """Low-rank Gaussian-copula correlation: C = F F^T + diag(1 - |F_i|^2), F_ij ~ N(0, scale^2)."""

    rank: int = 25
    scale: float = 0.1

    def __post_init__(self) -> None:
        if self.rank < 1:
            raise field_error("rank", f"must be >= 1, got {self.rank}")
        if self.scale < 0:
            raise field_error("scale", f"must be >= 0, got {self.scale}")


@dataclass(frozen=True)
class OrthogonalizationSpec:
    """Adam steps on sum_{i!=j} (e_i.e_j)^2 + N sum_i (|e_i|^2 - 1)^2 (SAELens's loss)."""

    steps: int = 100
    lr: float = 3e-4

    def __post_init__(self) -> None:
        if self.steps < 0:
            raise field_error("steps", f"must be >= 0, got {self.steps}")
        if self.lr <= 0:
            raise field_error("lr", f"must be > 0, got {self.lr}")


@dataclass(frozen=True)
class WorldConfig:
    """A synthetic world: N features with unit directions in R^hidden_dim, plus firing statistics.

    hidden = feature_acts @ feature_vectors + bias, feature_acts of shape (n, N) sparse and >= 0.
    """

    num_features: int
    hidden_dim: int
    firing: ZipfFiring = field(default_factory=ZipfFiring)
    mean_magnitude: Magnitude = field(default_factory=lambda: Magnitude(kind="constant", value=1.0))
    std_magnitude: Magnitude = field(default_factory=lambda: Magnitude(kind="constant", value=0.0))
    hierarchy: HierarchySpec | None = None
    correlation: CorrelationSpec | None = None
    orthogonalization: OrthogonalizationSpec | None = None
    bias: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.num_features < 2:
            raise field_error("num_features", f"must be >= 2, got {self.num_features}")
        if self.hidden_dim < 1:
            raise field_error("hidden_dim", f"must be >= 1, got {self.hidden_dim}")
        if self.bias < 0:
            raise field_error("bias", f"must be >= 0 (the bias norm), got {self.bias}")
        check_seed("seed", self.seed)
        if self.mean_magnitude.kind == "constant" and self.mean_magnitude.value <= 0:
            raise field_error("mean_magnitude.value", f"must be > 0 (a feature of magnitude 0 never shows in "
                                                      f"the hidden activations), got {self.mean_magnitude.value}")
        if self.hierarchy is not None and self.hierarchy.size() > self.num_features:
            raise field_error("hierarchy", f"the forest needs roots * (1 + branching + ... + branching^depth) = "
                                           f"{self.hierarchy.size()} features, more than num_features = "
                                           f"{self.num_features}")

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "") -> WorldConfig:
        """Build from a plain mapping; unknown keys and bad values raise ConfigError."""
        return build(cls, data, where)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON form (inverse of :meth:`from_dict`)."""
        return to_dict(self)

    def with_changes(self, **changes: Any) -> WorldConfig:
        """A copy with some top-level fields replaced (validated again)."""
        return replace(self, **changes)


def _synthsaebench_16k() -> WorldConfig:
    """The published SynthSAEBench-16k world (values from the SynthSAEBench paper, seed 42)."""
    return WorldConfig(
        num_features=16_384,
        hidden_dim=768,
        firing=ZipfFiring(exponent=0.5, max_prob=0.4, min_prob=5e-4),
        mean_magnitude=Magnitude(kind="linear", start=5.0, end=4.0),
        std_magnitude=Magnitude(kind="folded_normal", mean=0.5, std=0.5),
        hierarchy=HierarchySpec(roots=128, branching=4, depth=3, mutually_exclusive_portion=1.0),
        correlation=CorrelationSpec(rank=25, scale=0.1),
        orthogonalization=OrthogonalizationSpec(steps=100, lr=3e-4),
        bias=0.5,
        seed=42,
    )


def _cpu_world(num_features: int, hidden_dim: int, roots: int, depth: int, rank: int, seed: int) -> WorldConfig:
    """A CPU-sized world with the 16k world's structure (hierarchy, correlation, magnitudes).

    min_prob is raised to 5e-3 so that rare features are seen often enough in a few million
    samples for an SAE to learn them.
    """
    return WorldConfig(
        num_features=num_features,
        hidden_dim=hidden_dim,
        firing=ZipfFiring(exponent=0.5, max_prob=0.4, min_prob=5e-3),
        mean_magnitude=Magnitude(kind="linear", start=5.0, end=4.0),
        std_magnitude=Magnitude(kind="folded_normal", mean=0.5, std=0.5),
        hierarchy=HierarchySpec(roots=roots, branching=4, depth=depth, mutually_exclusive_portion=1.0),
        correlation=CorrelationSpec(rank=rank, scale=0.1),
        orthogonalization=OrthogonalizationSpec(steps=100, lr=3e-4),
        bias=0.5,
        seed=seed,
    )


PRESETS: dict[str, Any] = {
    "synthsaebench-16k": _synthsaebench_16k,
    "tiny": lambda: _cpu_world(num_features=128, hidden_dim=32, roots=4, depth=2, rank=8, seed=0),
    "small": lambda: _cpu_world(num_features=512, hidden_dim=128, roots=16, depth=2, rank=16, seed=0),
    "medium": lambda: _cpu_world(num_features=1024, hidden_dim=256, roots=32, depth=2, rank=25, seed=0),
}


def preset(name: str) -> WorldConfig:
    """The world config of a named preset (see ``PRESETS``); unknown names raise ConfigError."""
    if name not in PRESETS:
        raise ConfigError(f"preset: unknown preset {name!r} (one of {', '.join(PRESETS)})")
    return PRESETS[name]()
