"""Family configuration: a base world and K variant specs (seed 000, tasks 1.1 and 2.5)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from featgeom.config import build, check_seed, field_error, to_dict
from featgeom.errors import ConfigError
from featgeom.world.config import WorldConfig, preset


@dataclass(frozen=True)
class VariantSpec:
    """How one member diverges from the base world.

    feature_overlap_ratio: fraction of base features kept (exactly round(ratio * N)); the rest
        are replaced by variant-unique features with their own directions and independent firing.
        0 gives a model that shares nothing with the base (the plan's range is 0.5-1.0; 0 is
        the planted independence on which nulls are calibrated).
    basis_rotation_angle: degrees; the member's hidden space is the base's under an orthogonal
        map that moves every vector by exactly this angle (a rotation needs an even hidden_dim:
        in odd dimensions one direction stays fixed).
    superposition_delta: None keeps whatever rho_mm results; a number sets the member's
        rho_mm to base rho_mm + delta (within 0.01, else ConfigError: unreachable).
    hidden_dim: None keeps the base's; a larger one embeds isometrically, a smaller one projects.
    mixing_pairs / mixing_weight: that many disjoint pairs (i, j) of kept features become
        [w f_i + (1-w) f_j, (1-w) f_i + w f_j] (seed 000, task 2.5).
    """

    name: str
    feature_overlap_ratio: float = 1.0
    basis_rotation_angle: float = 0.0
    superposition_delta: float | None = None
    hidden_dim: int | None = None
    mixing_pairs: int = 0
    mixing_weight: float = 0.9

    def __post_init__(self) -> None:
        if not self.name or self.name == "base":
            raise field_error("name", f"must be a non-empty name other than 'base', got {self.name!r}")
        if not 0.0 <= self.feature_overlap_ratio <= 1.0:
            raise field_error("feature_overlap_ratio", f"must be in [0, 1], got {self.feature_overlap_ratio}")
        if not 0.0 <= self.basis_rotation_angle <= 90.0:
            raise field_error("basis_rotation_angle", f"must be in [0, 90] degrees, got {self.basis_rotation_angle}")
        if self.superposition_delta is not None and not -0.1 <= self.superposition_delta <= 0.1:
            raise field_error("superposition_delta", f"must be in [-0.1, 0.1], got {self.superposition_delta}")
        if self.hidden_dim is not None and self.hidden_dim < 1:
            raise field_error("hidden_dim", f"must be >= 1, got {self.hidden_dim}")
        if self.mixing_pairs < 0:
            raise field_error("mixing_pairs", f"must be >= 0, got {self.mixing_pairs}")
        if not 0.5 <= self.mixing_weight <= 1.0:
            raise field_error("mixing_weight", f"must be in [0.5, 1.0], got {self.mixing_weight}")


@dataclass(frozen=True)
class FamilyConfig:
    """A base world (member 'base') plus variants; ``num_categories`` semantic labels by subtree."""

    world: WorldConfig
    variants: list[VariantSpec] = field(default_factory=list)
    num_categories: int = 8
    seed: int = 0
    name: str = "family"

    def __post_init__(self) -> None:
        if self.num_categories < 1:
            raise field_error("num_categories", f"must be >= 1, got {self.num_categories}")
        check_seed("seed", self.seed)
        names = [v.name for v in self.variants]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise field_error("variants", f"duplicate variant name {duplicates[0]!r}")
        for i, v in enumerate(self.variants):
            self._check_variant(i, v)

    def _check_variant(self, i: int, v: VariantSpec) -> None:
        """What a variant needs of the world: enough kept features to mix, an even dimension to rotate."""
        if v.mixing_pairs * 2 > round(v.feature_overlap_ratio * self.world.num_features):
            raise field_error(f"variants[{i}].mixing_pairs", f"{v.mixing_pairs} pairs need more kept features")
        dim = v.hidden_dim or self.world.hidden_dim
        if v.basis_rotation_angle > 0 and dim % 2:
            raise field_error(f"variants[{i}].basis_rotation_angle",
                              f"a rotation needs an even hidden_dim (this member's is {dim}; in odd dimensions "
                              f"one direction stays fixed, so not every vector moves by the angle)")

    @classmethod
    def from_dict(cls, data: Any) -> FamilyConfig:
        """Build from a mapping; ``world`` may be a preset name or a full world mapping."""
        if not isinstance(data, dict):
            raise ConfigError(f"family config: expected a mapping, got {type(data).__name__}")
        data = dict(data)
        if isinstance(data.get("world"), str):
            try:
                data["world"] = preset(data["world"]).to_dict()
            except ConfigError as exc:
                raise field_error("world", str(exc).split(": ", 1)[1]) from None
        return build(cls, data)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON form (inverse of :meth:`from_dict`)."""
        return to_dict(self)
