"""Declarative experiments: a YAML file -> a validated :class:`ExperimentSpec`, a grid of conditions.

An experiment is a grid of named **axes** plus the **analyses** to run at every grid point
(:mod:`featgeom.experiments.analyses`). An axis is ``<stage>.<field>`` with a list of values:

* ``world.<field>``: any field of the preset's :class:`~featgeom.world.WorldConfig`, dotted into
  nested ones (``world.hidden_dim``, ``world.hierarchy.depth``, ``world.correlation.rank``,
  ``world.firing.exponent``); every world value is a family of its own (base = that world);
  ``world.target_rho_mm`` (no WorldConfig field) is a target superposition level: the world's
  hidden_dim is the one whose rho_mm is nearest it, found by bisection
  (:mod:`featgeom.world.superposition`; within 0.01, else an error naming the value);
* ``variant.<field>``: a field of :class:`~featgeom.family.VariantSpec` (``feature_overlap_ratio``,
  ``basis_rotation_angle``, ``superposition_delta``, ``hidden_dim``, ``mixing_pairs``,
  ``mixing_weight``); the grid point's member is the variant built with those values;
* ``sae.<field>``: ``arch`` (categorical: a registered architecture), ``width_factor``, ``l0``,
  ``samples``, ``revival`` (categorical: none / aux / resample), ``checkpoint`` (fractions of the
  training in (0, 1], increasing: the point's SAE is the snapshot of the same run after that share
  of its steps, 1 = the final SAE);
* ``compare.<field>``: ``samples``, ``n_perm``, ``mode`` (categorical: one pairing mode), ``null``
  (categorical: one null of :data:`featgeom.compare.NULLS`, instead of the experiment's ``nulls``),
  ``rotation`` (degrees, 0-90: the basis rotation of the ``basis_rotation`` analysis).

Values are numbers (a numeric axis) or strings (a categorical axis). Several axes make a product
(grid order: the first axis varies slowest); axes named together in ``zip`` advance together
(equal lengths). A grid point without variant axes has the base world as its member.

A study also names registered **findings** (:mod:`featgeom.experiments.findings`): functions
over its rows that test a hypothesis of the plan, shown in the report.

With ``replicates`` > 1 the whole family is drawn again (family seed + r) for replicate r, so a
condition's comparisons are independent (what calibrating a null needs); a list gives one count
per grid point. The registry (``featgeom/experiments/registry/*.yaml``) ships the plan's
experiments and studies (``featgeom experiments`` lists them).
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
import re
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

from featgeom.compare import NULLS
from featgeom.config import build, check_seed, field_error, read_config_file, to_dict
from featgeom.device import canonical_device
from featgeom.errors import ConfigError
from featgeom.match.pairing import MODES as PAIR_MODES
from featgeom.sae.config import ARCHITECTURES, REVIVALS
from featgeom.store import canonical_json

PRESETS = ("tiny", "small", "medium", "synthsaebench-16k")
# Full scale (a GPU's job): the published 16k world with SynthSAEBench's SAE settings (width 4096,
# L0 25, 200M samples; featgeom.sae.recipes.PUBLISHED) and the universality paper's 30k inputs,
# before an experiment's own overrides for that preset.
FULL_SCALE = {"synthsaebench-16k": {"sae": {"width_factor": 4096 / 16_384, "l0": 25, "samples": 200_000_000},
                                    "compare": {"samples": 30_000}}}
NAME_PATTERN = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}")  # a name that is safe in file names
STAGES = ("world", "variant", "sae", "compare")
FAMILY_NAME = "grid"  # every experiment's families: equal configs are one artifact across experiments
SAE_AXES = ("arch", "width_factor", "l0", "samples", "revival", "checkpoint")
COMPARE_AXES = ("samples", "n_perm", "mode", "null", "rotation")
CATEGORICAL = {"sae.arch": ARCHITECTURES, "sae.revival": REVIVALS, "compare.mode": PAIR_MODES,
               "compare.null": NULLS}  # axis -> its registered values
# member-name prefix of a variant field, so the variant of overlap 0.7 is 'overlap0.7' as before grids
MEMBER_PREFIX = {"basis_rotation_angle": "rot", "feature_overlap_ratio": "overlap", "superposition_delta": "delta",
                 "hidden_dim": "dim", "mixing_pairs": "mix", "mixing_weight": "mixw"}


def variant_fields() -> tuple[str, ...]:
    """Fields of VariantSpec an axis may set (all but its name)."""
    from featgeom.family.config import VariantSpec

    return tuple(f.name for f in dataclasses.fields(VariantSpec) if f.name != "name")


@dataclass(frozen=True)
class Axis:
    """One named axis of the grid: ``axis`` = '<stage>.<field>' and its ``values`` (all numbers:
    a numeric axis; all strings: a categorical one, each registered where the axis has a
    registry, see CATEGORICAL)."""

    axis: str
    values: list[Any]

    def __post_init__(self) -> None:
        stage, _, name = self.axis.partition(".")
        if stage not in STAGES or not name:
            raise field_error("axis", f"unknown axis {self.axis!r}: expected '<stage>.<field>' with stage one of "
                                      f"{', '.join(STAGES)}")
        allowed = {"variant": variant_fields(), "sae": SAE_AXES, "compare": COMPARE_AXES}.get(stage)
        if allowed is not None and name not in allowed:
            raise field_error("axis", f"unknown {stage} field {name!r} in axis {self.axis!r} "
                                      f"(one of {', '.join(allowed)})")
        if not self.values:
            raise field_error("values", f"axis {self.axis}: needs at least one value")
        kinds = {isinstance(v, str) for v in self.values}
        if len(kinds) > 1 or any(isinstance(v, bool) or not isinstance(v, (str, int, float)) for v in self.values):
            raise field_error("values", f"axis {self.axis}: values must be all numbers or all strings, got {self.values}")
        if len({json.dumps(v) for v in self.values}) != len(self.values):
            raise field_error("values", f"axis {self.axis}: duplicate values in {self.values}")
        registered = CATEGORICAL.get(self.axis)
        for i, value in enumerate(self.values):
            if isinstance(value, float) and not math.isfinite(value):
                raise field_error(f"values[{i}]", f"axis {self.axis}: must be a finite number, got {value}")
            if stage == "variant":
                _check_variant_value(name, value, f"values[{i}]")
            if registered is not None and value not in registered:
                raise field_error(f"values[{i}]", f"axis {self.axis}: {value!r} is not registered "
                                                  f"(one of {', '.join(registered)})")
            if registered is None and isinstance(value, str) and stage != "world":
                raise field_error(f"values[{i}]", f"axis {self.axis}: expected a number, got {value!r}")
            if self.axis == "compare.rotation" and not 0 <= value <= 90:
                raise field_error(f"values[{i}]", f"axis {self.axis}: must be in [0, 90] degrees, got {value}")
            if self.axis == "sae.checkpoint" and not (0 < value <= 1 and (i == 0 or value > self.values[i - 1])):
                raise field_error(f"values[{i}]", f"axis {self.axis}: fractions of the training samples must lie "
                                                  f"in (0, 1] and increase, got {value}")

    @property
    def stage(self) -> str:
        return self.axis.partition(".")[0]

    @property
    def field_name(self) -> str:
        """The field within its stage ('feature_overlap_ratio', 'hierarchy.depth')."""
        return self.axis.partition(".")[2]

    @property
    def short(self) -> str:
        """The last dotted part, used in condition labels ('depth', 'arch')."""
        return self.axis.rsplit(".", 1)[1]

    @property
    def numeric(self) -> bool:
        return not isinstance(self.values[0], str)


def _check_variant_value(name: str, value: Any, where: str) -> None:
    """ConfigError naming ``where`` unless a variant with ``name`` = ``value`` is valid on its own."""
    from featgeom.family.config import VariantSpec

    try:
        build(VariantSpec, {"name": "v", name: value})
    except ConfigError as exc:
        raise field_error(where, str(exc).split(": ", 1)[1]) from None


@dataclass(frozen=True)
class Point:
    """One grid point: axis name -> value, in grid order."""

    values: dict[str, Any]

    def stage(self, stage: str) -> dict[str, Any]:
        """The point's values of one stage, keyed by field ('hierarchy.depth': 3)."""
        return {k.partition(".")[2]: v for k, v in self.values.items() if k.partition(".")[0] == stage}

    def without(self, *stages: str) -> Point:
        """The point with the axes of ``stages`` removed."""
        return Point({k: v for k, v in self.values.items() if k.partition(".")[0] not in stages})

    @property
    def member(self) -> str:
        """The point's member: its variant's name, or 'base' without variant axes."""
        return member_name(self.stage("variant"))

    @property
    def condition_json(self) -> str:
        return canonical_json(self.values)

    @property
    def label(self) -> str:
        return condition_label(self.values)


def condition_label(values: dict[str, Any]) -> str:
    """'k=v, k=v' with each axis's last dotted part; a pair axis [a, b] reads 'k=a vs b'."""
    def shown(v: Any) -> str:
        return " vs ".join(f"{x:g}" if isinstance(x, float) else str(x) for x in v) if isinstance(v, list) \
            else (f"{v:g}" if isinstance(v, float) else str(v))

    return ", ".join(f"{k.rsplit('.', 1)[1]}={shown(v)}" for k, v in values.items())


def member_name(variant: dict[str, Any]) -> str:
    """Name of the variant with fields ``variant`` ('overlap0.7', 'overlap0.7-rot45'), 'base' when empty."""
    if not variant:
        return "base"
    return "-".join(f"{MEMBER_PREFIX.get(k, k)}{v:g}" for k, v in variant.items())


@dataclass(frozen=True)
class SAESpec:
    """SAEs trained at every grid point: architecture, seeds, training samples, optional width/L0
    (an ``sae.*`` axis overrides the field at its points)."""

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
        if isinstance(self.samples, bool) or not isinstance(self.samples, int) or self.samples < 1:
            raise field_error("samples", f"must be an integer >= 1, got {self.samples}")
        if self.width_factor is not None and self.width_factor <= 0:
            raise field_error("width_factor", f"must be > 0, got {self.width_factor}")
        if self.l0 is not None and (isinstance(self.l0, bool) or not isinstance(self.l0, int) or self.l0 < 1):
            raise field_error("l0", f"must be an integer >= 1, got {self.l0}")


@dataclass(frozen=True)
class CompareSpec:
    """How each pair of SAEs is compared: shared inputs, null permutations, pairing modes, which
    SAE seeds meet (``sae_seeds``, see :meth:`seed_pairs`), the nulls (``nulls``: 'repair', the
    valid null that re-pairs on permuted samples, and/or 'shuffle', the paper's Test 1; the first
    is the one the report's bands show) and the similarity metrics (``metrics``; None: every
    registered one).

    ``sae_seeds``: 'different' trains the variants' SAEs on seeds of their own
    (:func:`variant_seeds`) and compares base seed i with variant seed i, so two independently
    initialised SAEs meet as they would for two real models, and the identical-members condition
    measures the SAE-seed floor; 'same' compares base and variant SAEs of equal seeds (on
    identical members the two SAEs are the same, which checks the pipeline).
    """

    samples: int = 20_000
    n_perm: int = 1000
    modes: list[str] = field(default_factory=lambda: ["many_to_one", "mutual"])
    seed: int = 2024
    sae_seeds: str = "different"
    nulls: list[str] = field(default_factory=lambda: ["repair"])
    metrics: list[str] | None = None

    def __post_init__(self) -> None:
        from featgeom.compare import SIMILARITY_METRICS, checked_nulls
        from featgeom.match.correlation import MIN_SAMPLES
        from featgeom.stats.null import check_permutations

        checked_nulls(self.nulls)  # ConfigError "nulls: ..." names the field
        metrics = SIMILARITY_METRICS if self.metrics is None else self.metrics
        unknown_metrics = [m for m in metrics if m not in SIMILARITY_METRICS]
        if not metrics or unknown_metrics or len(set(metrics)) != len(metrics):
            raise field_error("metrics", f"need distinct similarity metrics from {', '.join(SIMILARITY_METRICS)}, "
                                         f"got {self.metrics}")
        if isinstance(self.samples, bool) or not isinstance(self.samples, int) or self.samples < MIN_SAMPLES:
            raise field_error("samples", f"must be an integer >= {MIN_SAMPLES}, got {self.samples}")
        unknown = [m for m in self.modes if m not in PAIR_MODES]
        if not self.modes or unknown:
            raise field_error("modes", f"unknown pairing mode {unknown[0] if unknown else None!r} (any of {', '.join(PAIR_MODES)})")
        # at least MIN_N_PERM draws, and null scores that fit in memory ("n_perm: ..." / "seed: ...")
        check_permutations(self.n_perm, self.seed, n_scores=len(metrics) * len(self.modes) * len(self.nulls))
        if self.sae_seeds not in SAE_SEED_RULES:
            raise field_error("sae_seeds", f"must be one of {', '.join(SAE_SEED_RULES)}, got {self.sae_seeds!r}")
        check_seed("seed", self.seed)

    def seed_pairs(self, seeds: list[int]) -> list[tuple[int, int]]:
        """(base SAE seed, variant SAE seed) of every cross-member comparison of a condition: the
        base's seed i with the variant's seed i (see :meth:`member_seeds`)."""
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
class AnalysisSpec:
    """One analysis to run at every grid point: a registered name and its options (``across``: the
    axis, or 'seed', two SAEs of an 'sae_pairs' comparison differ in)."""

    name: str
    across: str = "seed"

    def __post_init__(self) -> None:
        from featgeom.experiments.analyses import ANALYSES

        if self.name not in ANALYSES:
            raise field_error("name", f"unknown analysis {self.name!r} (one of {', '.join(ANALYSES)})")


@dataclass(frozen=True)
class PresetOverride:
    """What a preset changes so the experiment fits its size; ``note`` is shown in the report.
    ``axes`` replaces the values of the axes it names."""

    axes: dict[str, list[Any]] = field(default_factory=dict)
    sae_samples: int | None = None
    sae_seeds: list[int] | None = None
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
    axes: list[Axis] = field(default_factory=list)
    zip: list[list[str]] = field(default_factory=list)
    analyses: list[AnalysisSpec] = field(default_factory=lambda: [AnalysisSpec("cross_member")])
    findings: list[str] = field(default_factory=list)
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
        unknown = sorted(set(self.presets) - set(PRESETS))
        if unknown:
            raise field_error(f"presets.{unknown[0]}", f"unknown preset (one of {', '.join(PRESETS)})")
        if self.preset not in PRESETS:
            raise field_error("preset", f"unknown preset {self.preset!r} (one of {', '.join(PRESETS)})")
        self._check_grid()
        for preset in self.presets:
            self._check_override(preset)

    def _check_grid(self) -> None:
        """Axes distinct, zip groups valid, the grid non-empty, every world and variant value
        valid, the analyses' needs met, replicate counts matching the grid."""
        names = [a.axis for a in self.axes]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise field_error("axes", f"axis {dup[0]!r} appears twice")
        zipped = [n for group in self.zip for n in group]
        for i, group in enumerate(self.zip):
            missing = [n for n in group if n not in names]
            if missing:
                raise field_error(f"zip[{i}]", f"unknown axis {missing[0]!r} (axes: {', '.join(names) or 'none'})")
            lengths = {len(self.axis(n).values) for n in group}
            if len(group) < 2 or len(lengths) != 1:
                raise field_error(f"zip[{i}]", f"needs >= 2 axes of equal length, got {group} "
                                               f"with lengths {[len(self.axis(n).values) for n in group]}")
        if len(set(zipped)) != len(zipped):
            raise field_error("zip", "an axis is in more than one zip group")
        if not self.analyses:
            raise field_error("analyses", "needs at least one analysis")
        from featgeom.experiments.findings import FINDINGS

        for i, name in enumerate(self.findings):
            if name not in FINDINGS:
                raise field_error(f"findings[{i}]", f"unknown finding {name!r} (one of {', '.join(FINDINGS)})")
        for i, analysis in enumerate(self.analyses):
            self._check_analysis(i, analysis)
        self._check_worlds()
        self._check_variants()
        self.replicate_counts()

    def _check_analysis(self, i: int, analysis: AnalysisSpec) -> None:
        from featgeom.experiments.analyses import ANALYSES

        kind = ANALYSES[analysis.name]
        if kind.pairs != "within" and analysis.across != "seed":
            raise field_error(f"analyses[{i}].across", f"{analysis.name!r} compares no SAEs within a member; "
                                                       "'across' applies to sae_pairs-like analyses only")
        if kind.pairs == "members" and not any(a.stage == "variant" for a in self.axes):
            raise field_error(f"analyses[{i}]", f"{analysis.name!r} compares the base with a variant member, but "
                                                "the grid has no variant.* axis")
        if kind.across and analysis.across != kind.across:
            raise field_error(f"analyses[{i}].across", f"{analysis.name!r} compares SAEs across {kind.across} only, "
                                                       f"got {analysis.across!r}")
        if kind.pairs == "within":
            if analysis.across == "seed":
                if len(self.sae.seeds) < 2:
                    raise field_error(f"analyses[{i}].across", "'seed' needs at least 2 SAE seeds (sae.seeds)")
            elif analysis.across not in [a.axis for a in self.axes if a.stage == "sae"]:
                raise field_error(f"analyses[{i}].across", f"unknown axis {analysis.across!r}: expected 'seed' or "
                                                           "one of the grid's sae.* axes")

    def _check_worlds(self) -> None:
        """Every value of every world axis gives a valid world (ConfigError naming the axis and value)."""
        for axis in self.axes:
            if axis.stage != "world":
                continue
            for i, value in enumerate(axis.values):
                try:
                    self.world_config({axis.field_name: value})
                except ConfigError as exc:
                    raise field_error(f"axes.{axis.axis}.values[{i}]", f"{value!r} makes an invalid world ({exc})") from None
        self._check_target_worlds()

    def _check_target_worlds(self) -> None:
        """With a world.target_rho_mm axis next to other world axes, every world point's target is
        reachable with that point's other fields (ConfigError naming the axis and the point)."""
        from featgeom.world.superposition import FIELD as TARGET

        world_axes = [a.axis for a in self.axes if a.stage == "world"]
        if f"world.{TARGET}" not in world_axes or len(world_axes) < 2:
            return
        for world in self.world_points():
            try:
                self.world_config(world.stage("world"))
            except ConfigError as exc:
                raise field_error(f"axes.world.{TARGET}", f"at {world.label}: {exc}") from None

    def _check_variants(self) -> None:
        """Every variant of the grid is a valid VariantSpec of its world (the family's checks)."""
        from featgeom.family import FamilyConfig

        if not any(a.stage == "variant" for a in self.axes):
            return
        for world in self.world_points():
            try:
                FamilyConfig.from_dict(self.family_config(world, 0, check_counts=False))
            except ConfigError as exc:
                raise field_error("axes", f"a variant of the grid is invalid ({exc})") from None

    def axis(self, name: str) -> Axis:
        (found,) = [a for a in self.axes if a.axis == name]
        return found

    def _check_override(self, preset: str) -> None:
        """Apply ``presets[preset]`` now, so a bad override fails at load time naming the preset."""
        try:
            self.at_preset(preset)
        except ConfigError as exc:
            raise field_error(f"presets.{preset}", str(exc)) from None

    @classmethod
    def from_dict(cls, data: Any, where: str = "") -> ExperimentSpec:
        """Validate a mapping (ConfigError naming the field on any problem). ``analyses`` entries
        may be names or mappings."""
        if isinstance(data, dict) and isinstance(data.get("analyses"), list):
            data = {**data, "analyses": [{"name": a} if isinstance(a, str) else a for a in data["analyses"]]}
        return build(cls, data, where)

    def to_dict(self) -> dict[str, Any]:
        """The experiment as a mapping; ``device`` only when it is not 'cpu' (a GPU run's SAEs
        and last bits differ, so it is a different run)."""
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
        unknown = sorted(set(o.axes) - {a.axis for a in self.axes})
        if unknown:
            raise field_error(f"axes.{unknown[0]}", "not an axis of the experiment")
        axes = [Axis(a.axis, o.axes[a.axis]) if a.axis in o.axes else a for a in self.axes]
        sae = replace(self.sae, **full.get("sae", {}))
        sae = replace(sae, samples=o.sae_samples) if o.sae_samples is not None else sae
        sae = replace(sae, seeds=o.sae_seeds) if o.sae_seeds is not None else sae
        compare = replace(self.compare, **full.get("compare", {}))
        if o.compare_samples is not None:
            compare = replace(compare, samples=o.compare_samples)
        if o.n_perm is not None:
            compare = replace(compare, n_perm=o.n_perm)
        replicates = self.replicates if o.replicates is None else o.replicates
        note = " ".join(n for n in (self.note, o.note) if n)
        return replace(self, axes=axes, sae=sae, compare=compare, presets={}, preset=preset, note=note,
                       replicates=replicates)

    def points(self) -> list[Point]:
        """Every grid point, in grid order (the first axis, or zip group, varies slowest)."""
        groups: list[list[Axis]] = []
        for axis in self.axes:
            group = next((g for g in self.zip if axis.axis in g), None)
            if group is None:
                groups.append([axis])
            elif axis.axis == group[0]:
                groups.append([self.axis(n) for n in group])
        steps = [[{a.axis: a.values[i] for a in g} for i in range(len(g[0].values))] for g in groups]
        order = [a.axis for a in self.axes]
        return [Point({k: merged[k] for k in order})
                for merged in ({k: v for part in combo for k, v in part.items()} for combo in itertools.product(*steps))]

    def world_points(self) -> list[Point]:
        """The distinct world settings of the grid (one family each), in grid order."""
        seen: dict[str, Point] = {}
        for p in self.points():
            seen.setdefault(world_of(p), p.without("variant", "sae", "compare"))
        return list(seen.values())

    def replicate_counts(self) -> list[int]:
        """Independent replicate families per grid point (``replicates``: one count for every
        point, or one per point); ConfigError naming the field otherwise."""
        n = len(self.points())
        counts = self.replicates if isinstance(self.replicates, list) else [self.replicates] * n
        if len(counts) != n:
            raise field_error("replicates", f"needs one count per grid point ({n}), got {len(counts)}")
        if any(isinstance(c, bool) or not isinstance(c, int) or c < 1 for c in counts):
            raise field_error("replicates", f"counts must be integers >= 1, got {self.replicates}")
        return counts

    @property
    def config_hash(self) -> str:
        """sha256 (16 hex digits) of the resolved experiment's canonical JSON."""
        return hashlib.sha256(canonical_json(self.to_dict()).encode()).hexdigest()[:16]

    def world_config(self, world: dict[str, Any]) -> dict[str, Any]:
        """The preset's world (as a mapping) with the fields ``world`` sets (dotted into nested
        ones), validated as a WorldConfig (ConfigError naming the field). ``target_rho_mm`` (not a
        WorldConfig field) sets hidden_dim to the dimension whose rho_mm is nearest that target for
        the world's other fields (:func:`featgeom.world.superposition.hidden_dim_for_rho_mm`)."""
        from featgeom.world.config import WorldConfig, preset
        from featgeom.world.superposition import FIELD as TARGET
        from featgeom.world.superposition import hidden_dim_for_rho_mm

        data = preset(self.preset).to_dict()
        for dotted, value in world.items():
            if dotted == TARGET:
                continue
            *parents, leaf = dotted.split(".")
            node = data
            for part in parents:
                if not isinstance(node.get(part), dict):
                    raise field_error(dotted, f"unknown world field (no {part!r} section)")
                node = node[part]
            if leaf not in node or isinstance(node[leaf], dict):
                raise field_error(dotted, f"unknown world field (one of {', '.join(sorted(node))})")
            node[leaf] = value
        config = build(WorldConfig, data)
        if TARGET in world:
            if "hidden_dim" in world:
                raise field_error(TARGET, "chooses the hidden dimension, so it cannot be combined with world.hidden_dim")
            config = config.with_changes(hidden_dim=hidden_dim_for_rho_mm(config, world[TARGET]).hidden_dim)
        return config.to_dict()

    def family_config(self, world: Point, replicate: int = 0, check_counts: bool = True) -> dict[str, Any]:
        """The family of ``world`` (a world point) in ``replicate`` (as a FamilyConfig mapping): its
        world (seed family_seed + replicate) plus one variant per distinct variant setting of the
        grid points at that world that have that many replicates. Its name is the same for every
        experiment (FAMILY_NAME), so experiments run into one OUT share the families and SAEs they
        have in common (the store is content-addressed)."""
        counts = self.replicate_counts() if check_counts else [1] * len(self.points())
        variants: dict[str, dict[str, Any]] = {}
        for p, count in zip(self.points(), counts):
            if world_of(p) == world.condition_json and count > replicate and p.stage("variant"):
                variants.setdefault(p.member, {"name": p.member, **p.stage("variant")})
        world_fields = {k.partition(".")[2]: v for k, v in world.values.items()}
        config = self.world_config(world_fields) if world_fields else self.preset
        return {"name": FAMILY_NAME, "world": config, "seed": self.family_seed + replicate,
                "variants": list(variants.values())}


def world_of(point: Point) -> str:
    """The canonical JSON of a point's world axes (its family's key within a replicate)."""
    return point.without("variant", "sae", "compare").condition_json


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
