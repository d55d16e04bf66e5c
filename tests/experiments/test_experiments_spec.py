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
    ({"sweep": {"variable": "feature_overlap_ratio", "values": [0.3]}}, "sweep.values[0]"),
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
    _, compares = plan(spec, tmp_path / "family", tmp_path / "store")
    assert len(compares) == 2 * 3
    job, needs_a, needs_b = compares[0]
    assert (job.seed_a, job.seed_b) == (0, 1) and needs_a == "train:base:s0" and needs_b == "train:rot0:s1"
    same = ExperimentSpec.from_dict({**BASE, "compare": {"sae_seeds": "same"}})
    assert same.compare.seed_pairs([0, 1]) == [(0, 0), (1, 1)]
