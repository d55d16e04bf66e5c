"""Declarative experiments: a YAML file -> a validated :class:`ExperimentSpec`.

An experiment sweeps one variant knob of a family (seed 000, task 1.2): every swept value becomes
one variant of a single family whose base is the preset's world, so condition ``v`` compares the
base with the variant built at ``v``.  For each condition and pair of SAE seeds
(:meth:`CompareSpec.seed_pairs`) the SAE of the base is compared with the SAE of the variant.
With ``replicates`` > 1 the whole family is drawn again (family seed + r) for replicate r, so a
condition's comparisons are independent (what calibrating a null needs).  The registry
(``featgeom/experiments/registry/*.yaml``) ships ``quickstart``, ``1a``, ``1b``, ``1c`` and
``null-validity``.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

from featgeom.config import build, check_seed, field_error, read_config_file, to_dict
from featgeom.device import canonical_device
from featgeom.errors import ConfigError
from featgeom.match.pairing import MODES as PAIR_MODES
from featgeom.sae.config import ARCHITECTURES
from featgeom.store import canonical_json


@dataclass(frozen=True)
class Sweepable:
    """A variant field an experiment can sweep: member-name prefix, axis title, and the value at
    which the variant is identical to the base."""

    prefix: str
    label: str
    identity: float


SWEEPABLE = {
    "basis_rotation_angle": Sweepable("rot", "rotation angle (degrees)", 0.0),
    "feature_overlap_ratio": Sweepable("overlap", "shared fraction of features", 1.0),
    "superposition_delta": Sweepable("delta", "rho_mm(variant) - rho_mm(base)", 0.0),
}
PRESETS = ("tiny", "small", "medium", "synthsaebench-16k")
# Full scale (a GPU's job): the published 16k world with SynthSAEBench's SAE settings (width 4096,
# L0 25, 200M samples; featgeom.sae.recipes.PUBLISHED) and the universality paper's 30k inputs,
# before an experiment's own overrides for that preset.
FULL_SCALE = {"synthsaebench-16k": {"sae": {"width_factor": 4096 / 16_384, "l0": 25, "samples": 200_000_000},
                                    "compare": {"samples": 30_000}}}
NAME_PATTERN = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}")  # a name that is safe in file names


@dataclass(frozen=True)
class SweepSpec:
    """The swept variant field and its values (one condition per value)."""

    variable: str
    values: list[float]

    def __post_init__(self) -> None:
        if self.variable not in SWEEPABLE:
            raise field_error("variable", f"unknown sweep variable {self.variable!r} (one of {', '.join(SWEEPABLE)})")
        if not self.values:
            raise field_error("values", "needs at least one value")
        if len(set(self.values)) != len(self.values):
            raise field_error("values", f"duplicate values in {self.values}")
        from featgeom.family.config import VariantSpec

        for i, value in enumerate(self.values):
            try:
                VariantSpec(name=self.member_name(value), **{self.variable: value})
            except ConfigError as exc:
                raise field_error(f"values[{i}]", str(exc).split(": ", 1)[1]) from None

    @property
    def label(self) -> str:
        """Axis title of the swept variable."""
        return SWEEPABLE[self.variable].label

    def member_name(self, value: float) -> str:
        """Name of the variant built at ``value``, e.g. 'rot45', 'overlap0.7'."""
        return f"{SWEEPABLE[self.variable].prefix}{value:g}"


@dataclass(frozen=True)
class SAESpec:
    """SAEs trained on every member: architecture, seeds, training samples, optional width/L0."""

    arch: str = "topk"
    seeds: list[int] = field(default_factory=lambda: [0, 1])
    samples: int = 1_000_000
    width_factor: float | None = None
    l0: int | None = None

    def __post_init__(self) -> None:
        if self.arch not in ARCHITECTURES:
            raise field_error("arch", f"unknown architecture {self.arch!r} (one of {', '.join(ARCHITECTURES)})")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise field_error("seeds", f"needs distinct seeds, got {self.seeds}")
        for i, seed in enumerate(self.seeds):
            check_seed(f"seeds[{i}]", seed)
        if self.samples < 1:
            raise field_error("samples", f"must be >= 1, got {self.samples}")
        if self.width_factor is not None and self.width_factor <= 0:
            raise field_error("width_factor", f"must be > 0, got {self.width_factor}")
        if self.l0 is not None and self.l0 < 1:
            raise field_error("l0", f"must be >= 1, got {self.l0}")


@dataclass(frozen=True)
class CompareSpec:
    """How each pair of SAEs is compared: shared inputs, null permutations, pairing modes, which
    SAE seeds meet (``sae_seeds``, see :meth:`seed_pairs`), and the nulls (``nulls``: 'repair',
    the valid null that re-pairs on permuted samples, and/or 'shuffle', the paper's Test 1; the
    first is the one the report's bands show).

    ``sae_seeds``: 'different' trains the variants' SAEs on seeds of their own
    (:func:`variant_seeds`) and compares base seed i with variant seed i, so two independently
    initialised SAEs meet as they would for two real models, and the identical-members condition
    measures the SAE-seed floor; 'same' compares base and variant SAEs of equal seeds (on
    identical members the two SAEs are the same, which checks the pipeline).  Under either rule
    every comparison of a condition is a distinct pair of SAEs, even on identical members, and
    each SAE of a variant is in exactly one comparison of its condition.
    """

    samples: int = 20_000
    n_perm: int = 1000
    modes: list[str] = field(default_factory=lambda: ["many_to_one", "mutual"])
    seed: int = 2024
    sae_seeds: str = "different"
    nulls: list[str] = field(default_factory=lambda: ["repair"])

    def __post_init__(self) -> None:
        from featgeom.compare import SIMILARITY_METRICS, checked_nulls
        from featgeom.match.correlation import MIN_SAMPLES
        from featgeom.stats.null import check_permutations

        checked_nulls(self.nulls)  # ConfigError "nulls: ..." names the field
        if self.samples < MIN_SAMPLES:
            raise field_error("samples", f"must be >= {MIN_SAMPLES}, got {self.samples}")
        unknown = [m for m in self.modes if m not in PAIR_MODES]
        if not self.modes or unknown:
            raise field_error("modes", f"unknown pairing mode {unknown[0] if unknown else None!r} (any of {', '.join(PAIR_MODES)})")
        # at least MIN_N_PERM draws, and null scores that fit in memory ("n_perm: ..." / "seed: ...")
        check_permutations(self.n_perm, self.seed, n_scores=len(SIMILARITY_METRICS) * len(self.modes) * len(self.nulls))
        if self.sae_seeds not in SAE_SEED_RULES:
            raise field_error("sae_seeds", f"must be one of {', '.join(SAE_SEED_RULES)}, got {self.sae_seeds!r}")
        check_seed("seed", self.seed)

    def seed_pairs(self, seeds: list[int]) -> list[tuple[int, int]]:
        """(base SAE seed, variant SAE seed) of every comparison of a condition: the base's seed i
        with the variant's seed i (see :meth:`member_seeds`)."""
        return list(zip(seeds, self._variant_seeds(seeds), strict=True))

    def member_seeds(self, seeds: list[int], member: str) -> list[int]:
        """The SAE seeds trained on ``member``: ``seeds`` for the base; for a variant, ``seeds``
        with 'same' and :func:`variant_seeds` with 'different'."""
        return list(seeds) if member == "base" else self._variant_seeds(seeds)

    def _variant_seeds(self, seeds: list[int]) -> list[int]:
        """The SAE seeds of every variant under this rule."""
        return variant_seeds(seeds) if self.sae_seeds == "different" else list(seeds)


SAE_SEED_RULES = ("different", "same")


def variant_seeds(seeds: list[int]) -> list[int]:
    """Seeds of the variants' SAEs under sae_seeds 'different': seed + max(seeds) + 1, so no
    variant SAE shares an initialisation with a base SAE and every comparison is a distinct pair."""
    offset = max(seeds) + 1
    return [s + offset for s in seeds]


@dataclass(frozen=True)
class PresetOverride:
    """What a preset changes so the experiment fits its size; ``note`` is shown in the report."""

    values: list[float] | None = None
    sae_samples: int | None = None
    compare_samples: int | None = None
    n_perm: int | None = None
    replicates: int | list[int] | None = None
    note: str = ""


@dataclass(frozen=True)
class ExperimentSpec:
    """One declarative experiment (see module docstring).

    device: where its torch work runs: 'cpu' (default; the comparisons use the NumPy path), 'cuda'
    or 'cuda:N' (SAE training, encoding, correlation, pairing's correlations and every null on
    that device; :mod:`featgeom.device`); checked against the machine when a run starts.
    """

    name: str
    description: str
    sweep: SweepSpec
    sae: SAESpec = field(default_factory=SAESpec)
    compare: CompareSpec = field(default_factory=CompareSpec)
    family_seed: int = 0
    replicates: int | list[int] = 1
    presets: dict[str, PresetOverride] = field(default_factory=dict)
    preset: str = "small"
    note: str = ""
    device: str = "cpu"

    def __post_init__(self) -> None:
        object.__setattr__(self, "device", canonical_device(self.device, "device"))
        if not NAME_PATTERN.fullmatch(self.name):
            raise field_error("name", "must be 1-100 letters, digits, '-', '_' or '.', not starting with '.' "
                                      f"(it names the experiment's output files), got {self.name!r}")
        check_seed("family_seed", self.family_seed)
        self.replicate_counts()
        unknown = sorted(set(self.presets) - set(PRESETS))
        if unknown:
            raise field_error(f"presets.{unknown[0]}", f"unknown preset (one of {', '.join(PRESETS)})")
        if self.preset not in PRESETS:
            raise field_error("preset", f"unknown preset {self.preset!r} (one of {', '.join(PRESETS)})")
        for preset in self.presets:
            self._check_override(preset)

    def _check_override(self, preset: str) -> None:
        """Apply ``presets[preset]`` now, so a bad override fails at load time naming the preset."""
        try:
            self.at_preset(preset)
        except ConfigError as exc:
            raise field_error(f"presets.{preset}", str(exc)) from None

    @classmethod
    def from_dict(cls, data: Any, where: str = "") -> ExperimentSpec:
        """Validate a mapping (ConfigError naming the field on any problem)."""
        return build(cls, data, where)

    def to_dict(self) -> dict[str, Any]:
        """The experiment as a mapping; ``device`` only when it is not 'cpu', so the config hash of
        a CPU run is what it was before devices existed (a GPU run's SAEs and last bits differ,
        so it is a different run)."""
        out = to_dict(self)
        if out["device"] == "cpu":
            del out["device"]
        return out

    def at_preset(self, preset: str) -> ExperimentSpec:
        """This experiment on ``preset`` with that preset's overrides applied (``presets`` emptied)."""
        if preset not in PRESETS:
            raise ConfigError(f"preset: unknown preset {preset!r} (one of {', '.join(PRESETS)})")
        o = self.presets.get(preset, PresetOverride())
        full = FULL_SCALE.get(preset, {})
        sweep = replace(self.sweep, values=o.values) if o.values is not None else self.sweep
        sae = replace(self.sae, **full.get("sae", {}))
        sae = replace(sae, samples=o.sae_samples) if o.sae_samples is not None else sae
        compare = replace(self.compare, **full.get("compare", {}))
        if o.compare_samples is not None:
            compare = replace(compare, samples=o.compare_samples)
        if o.n_perm is not None:
            compare = replace(compare, n_perm=o.n_perm)
        replicates = self.replicates if o.replicates is None else o.replicates
        note = " ".join(n for n in (self.note, o.note) if n)
        return replace(self, sweep=sweep, sae=sae, compare=compare, presets={}, preset=preset, note=note,
                       replicates=replicates)

    def replicate_counts(self) -> list[int]:
        """Independent replicate families per swept value (``replicates``: one count for every
        value, or one per value); ConfigError naming the field otherwise."""
        counts = self.replicates if isinstance(self.replicates, list) else [self.replicates] * len(self.sweep.values)
        if len(counts) != len(self.sweep.values):
            raise field_error("replicates", f"needs one count per swept value ({len(self.sweep.values)}), "
                                            f"got {len(counts)}")
        if any(isinstance(c, bool) or not isinstance(c, int) or c < 1 for c in counts):
            raise field_error("replicates", f"counts must be integers >= 1, got {self.replicates}")
        return counts

    @property
    def config_hash(self) -> str:
        """sha256 (16 hex digits) of the resolved experiment's canonical JSON."""
        return hashlib.sha256(canonical_json(self.to_dict()).encode()).hexdigest()[:16]

    def family_config(self, replicate: int = 0) -> dict[str, Any]:
        """The family of ``replicate`` (as a FamilyConfig mapping): the preset's world (seed
        family_seed + replicate) plus one variant per swept value that has that many replicates."""
        variants = [{"name": self.sweep.member_name(v), self.sweep.variable: v}
                    for v, count in zip(self.sweep.values, self.replicate_counts()) if count > replicate]
        return {"name": f"exp-{self.name}", "world": self.preset, "seed": self.family_seed + replicate,
                "variants": variants}


def registry() -> dict[str, Path]:
    """The shipped experiments: name -> YAML path."""
    folder = resources.files("featgeom.experiments") / "registry"
    return {Path(p.name).stem: Path(str(p)) for p in folder.iterdir() if p.name.endswith(".yaml")}


def load_spec(name_or_file: str | Path) -> ExperimentSpec:
    """A registered experiment by name, or a YAML file (read by :func:`featgeom.config.read_config_file`,
    so duplicate keys are refused); ConfigError naming the problem."""
    shipped = registry()
    path = shipped.get(str(name_or_file), Path(name_or_file))
    if not path.exists():
        raise ConfigError(f"experiment: {str(name_or_file)!r} is neither a registered experiment "
                          f"({', '.join(sorted(shipped))}) nor a YAML file")
    return ExperimentSpec.from_dict(read_config_file(path), where=path.name)
