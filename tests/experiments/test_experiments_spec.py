"""Declarative experiments: the registry, validation, preset overrides."""

from __future__ import annotations

import pytest

from featgeom.errors import ConfigError
from featgeom.experiments.spec import ExperimentSpec, load_spec, registry

BASE = {"name": "x", "description": "d", "sweep": {"variable": "basis_rotation_angle", "values": [0, 45]}}


def test_registry_ships_the_four_experiments():
    assert {"quickstart", "1a", "1b", "1c"} <= set(registry())


@pytest.mark.parametrize("preset", ["tiny", "small", "medium"])
@pytest.mark.parametrize("name", ["quickstart", "1a", "1b", "1c"])
def test_every_registered_experiment_loads_at_every_preset(name, preset):
    spec = load_spec(name).at_preset(preset)
    assert spec.preset == preset and spec.presets == {}
    assert len(spec.sae.seeds) >= 2
    cfg = spec.family_config()
    assert cfg["world"] == preset and len(cfg["variants"]) == len(spec.sweep.values)


def test_the_plans_sweeps_at_the_small_preset():
    assert load_spec("1a").at_preset("small").sweep.values == [0, 15, 30, 45, 60, 75, 90]
    assert load_spec("1b").at_preset("small").sweep.values == [0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    c = load_spec("1c").at_preset("small")
    assert c.sweep.variable == "superposition_delta" and c.sweep.values[0] == 0.0 and c.note


def test_preset_override_changes_only_what_it_names():
    small, tiny = load_spec("1a").at_preset("small"), load_spec("1a").at_preset("tiny")
    assert tiny.sweep.values == [0, 45, 90] and tiny.sae.samples < small.sae.samples
    assert tiny.sae.arch == small.sae.arch and tiny.sae.seeds == small.sae.seeds
    assert tiny.config_hash != small.config_hash


def test_config_hash_is_stable_and_sensitive():
    a = ExperimentSpec.from_dict(BASE)
    assert a.config_hash == ExperimentSpec.from_dict(dict(BASE)).config_hash
    assert a.config_hash != ExperimentSpec.from_dict({**BASE, "family_seed": 1}).config_hash


@pytest.mark.parametrize("change, field", [
    ({"colour": 1}, "colour"),
    ({"sweep": {"variable": "angle", "values": [0]}}, "sweep.variable"),
    ({"sweep": {"variable": "basis_rotation_angle", "values": [0, 120]}}, "sweep.values[1]"),
    ({"sweep": {"variable": "feature_overlap_ratio", "values": [1.3]}}, "sweep.values[0]"),
    ({"sweep": {"variable": "basis_rotation_angle", "values": []}}, "sweep.values"),
    ({"sae": {"arch": "relu"}}, "sae.arch"),
    ({"sae": {"seeds": [1, 1]}}, "sae.seeds"),
    ({"sae": {"samples": "many"}}, "sae.samples"),
    ({"compare": {"n_perm": 5}}, "compare.n_perm"),
    ({"compare": {"modes": ["best"]}}, "compare.modes"),
    ({"presets": {"huge": {}}}, "presets.huge"),
    ({"compare": {"sae_seeds": "mixed"}}, "compare.sae_seeds"),
    ({"sae": {"seeds": [3]}}, "compare.sae_seeds"),
    ({"presets": {"tiny": {"sae_samplez": 3}}}, "presets.tiny.sae_samplez"),
])
def test_bad_specs_name_the_field(change, field):
    with pytest.raises(ConfigError) as err:
        ExperimentSpec.from_dict({**BASE, **change})
    assert str(err.value).startswith(field + ":"), str(err.value)


def test_unknown_experiment_or_file(tmp_path):
    with pytest.raises(ConfigError, match="neither a registered experiment"):
        load_spec("2z")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_spec(bad)


def test_unknown_preset():
    with pytest.raises(ConfigError, match="preset"):
        load_spec("1a").at_preset("huge")


def test_seed_pairs_meet_independent_saes_by_default(tmp_path):
    from featgeom.experiments.runner import plan

    spec = ExperimentSpec.from_dict({**BASE, "sae": {"seeds": [0, 1, 2]}})
    assert spec.compare.seed_pairs(spec.sae.seeds) == [(0, 1), (1, 2), (2, 0)]
    _, compares = plan(spec, [tmp_path / "family"], tmp_path / "store")
    assert len(compares) == 2 * 3
    job, needs_a, needs_b = compares[0]
    assert (job.seed_a, job.seed_b) == (0, 1) and needs_a == "train:base:s0" and needs_b == "train:rot0:s1"
    same = ExperimentSpec.from_dict({**BASE, "compare": {"sae_seeds": "same"}})
    assert same.compare.seed_pairs([0, 1]) == [(0, 0), (1, 1)]


def test_disjoint_seeds_make_every_comparison_a_distinct_pair(tmp_path):
    from featgeom.experiments.runner import plan

    spec = ExperimentSpec.from_dict({**BASE, "sae": {"seeds": [0, 1]}, "compare": {"sae_seeds": "disjoint"}})
    trains, compares = plan(spec, [tmp_path / "family"], tmp_path / "store")
    assert [(j.seed_a, j.seed_b) for j, _, _ in compares] == [(0, 2), (1, 3)] * 2
    assert sorted((t.member, t.seed) for t in trains if t.member == "base") == [("base", 0), ("base", 1)]
    assert {t.seed for t in trains if t.member != "base"} == {2, 3}


def test_replicates_draw_independent_families_and_name_their_jobs(tmp_path):
    from featgeom.experiments.runner import plan

    spec = ExperimentSpec.from_dict({**BASE, "sae": {"seeds": [0]}, "compare": {"sae_seeds": "same"},
                                     "replicates": [3, 1]})
    assert spec.replicate_counts() == [3, 1]
    assert [len(spec.family_config(r)["variants"]) for r in range(3)] == [2, 1, 1]
    assert spec.family_config(2)["seed"] == spec.family_seed + 2
    dirs = [tmp_path / f"family{r}" for r in range(3)]
    trains, compares = plan(spec, dirs, tmp_path / "store")
    names = [j.name for j, _, _ in compares]
    assert len(names) == len(set(names)) == 4
    assert {j.replicate for j, _, _ in compares} == {0, 1, 2}
    assert {j.sample_seed for j, _, _ in compares} == {spec.compare.seed + r for r in range(3)}
    assert len({t.name for t in trains}) == len(trains) == 3 + 2 + 2


@pytest.mark.parametrize(("change", "field"), [
    ({"replicates": [2]}, "replicates"),
    ({"replicates": 0}, "replicates"),
    ({"compare": {"nulls": ["exact"]}}, "compare.nulls"),
    ({"compare": {"nulls": []}}, "compare.nulls"),
    ({"compare": {"sae_seeds": "mixed"}}, "compare.sae_seeds"),
])
def test_bad_replicates_and_nulls_name_the_field(change, field):
    with pytest.raises(ConfigError, match=f"^{field}"):
        ExperimentSpec.from_dict({**BASE, **change})
