"""Helpers of the experiment tests: a tiny quickstart spec, YAML writing, stored values."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from featgeom.experiments.spec import ExperimentSpec, load_spec


def tiny_spec() -> ExperimentSpec:
    """The registered quickstart at the tiny preset with fewer seeds, samples and permutations."""
    spec = load_spec("quickstart").at_preset("tiny")
    return replace(spec, sae=replace(spec.sae, seeds=[0], samples=60_000),
                   compare=replace(spec.compare, samples=2_000, n_perm=19))


def spec_yaml(spec: ExperimentSpec, path: Path) -> Path:
    """Write ``spec`` as a YAML experiment file (what `featgeom run FILE` reads)."""
    import yaml

    data = spec.to_dict()
    data.pop("note")
    path.write_text(yaml.safe_dump(data))
    return path


def stored_values(out: Path) -> list[tuple]:
    """Every result row of OUT as a comparable tuple (without versions)."""
    from featgeom.store.results import ResultsDB

    keys = ("condition", "seed_a", "seed_b", "pairing", "metric", "value", "p_value", "null_mean", "null_std")
    return sorted(tuple(r[k] for k in keys) for r in ResultsDB(out / "results.sqlite").results())
