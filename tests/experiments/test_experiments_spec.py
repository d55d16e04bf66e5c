"""Declarative experiments: the registry, validation, preset overrides."""

from __future__ import annotations

import pytest

from featgeom.errors import ConfigError
from featgeom.experiments.spec import SAE_SEED_RULES, CompareSpec, ExperimentSpec, Point, load_spec, registry

ROT = "variant.basis_rotation_angle"
BASE = {"name": "x", "description": "d", "axes": [{"axis": ROT, "values": [0, 45]}]}
WORLD = Point({})  # the preset's world: a grid without world axes has one family per replicate


def plan_of(spec: ExperimentSpec, tmp_path, replicates: int = 1):
    """The job graph of ``spec`` with made-up family directories (one per replicate)."""
    from featgeom.experiments.runner import plan

    dirs = {("{}", r): tmp_path / f"family{r}" for r in range(replicates)}
    return plan(spec, dirs, tmp_path / "store")


def test_registry_ships_the_four_experiments():
    assert {"quickstart", "1a", "1b", "1c"} <= set(registry())


@pytest.mark.parametrize("preset", ["tiny", "small", "medium"])
@pytest.mark.parametrize("name", ["quickstart", "1a", "1b", "1c"])
def test_every_registered_experiment_loads_at_every_preset(name, preset):
    spec = load_spec(name).at_preset(preset)
    assert spec.preset == preset and spec.presets == {}
    assert len(spec.sae.seeds) >= 2
    cfg = spec.family_config(WORLD)
    (axis,) = spec.axes
    assert cfg["world"] == preset and len(cfg["variants"]) == len(axis.values)


def test_the_plans_sweeps_at_the_small_preset():
    assert load_spec("1a").at_preset("small").axis(ROT).values == [0, 15, 30, 45, 60, 75, 90]
    assert load_spec("1b").at_preset("small").axis("variant.feature_overlap_ratio").values == [0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    c = load_spec("1c").at_preset("small")
    assert [a.axis for a in c.axes] == ["variant.superposition_delta"] and c.axes[0].values[0] == 0.0 and c.note


def test_preset_override_changes_only_what_it_names():
    small, tiny = load_spec("1a").at_preset("small"), load_spec("1a").at_preset("tiny")
    assert tiny.axis(ROT).values == [0, 45, 90] and tiny.sae.samples < small.sae.samples
    assert tiny.sae.arch == small.sae.arch and tiny.sae.seeds == small.sae.seeds
    assert tiny.config_hash != small.config_hash


def test_config_hash_is_stable_and_sensitive():
    a = ExperimentSpec.from_dict(BASE)
    assert a.config_hash == ExperimentSpec.from_dict(dict(BASE)).config_hash
    assert a.config_hash != ExperimentSpec.from_dict({**BASE, "family_seed": 1}).config_hash


@pytest.mark.parametrize("change, field", [
    ({"colour": 1}, "colour"),
    ({"axes": [{"axis": "variant.angle", "values": [0]}]}, "axes[0].axis"),
    ({"axes": [{"axis": "colour", "values": [0]}]}, "axes[0].axis"),
    ({"axes": [{"axis": "sae.colour", "values": [0]}]}, "axes[0].axis"),
    ({"axes": [{"axis": ROT, "values": [0, 120]}]}, "axes[0].values[1]"),
    ({"axes": [{"axis": "variant.feature_overlap_ratio", "values": [1.3]}]}, "axes[0].values[0]"),
    ({"axes": [{"axis": ROT, "values": []}]}, "axes[0].values"),
    ({"axes": [{"axis": ROT, "values": [0, 0]}]}, "axes[0].values"),
    ({"axes": [{"axis": ROT, "values": [0, "x"]}]}, "axes[0].values"),
    ({"axes": [{"axis": ROT, "values": [0]}, {"axis": ROT, "values": [1]}]}, "axes"),
    ({"axes": [{"axis": ROT, "values": [0]}, {"axis": "sae.arch", "values": ["topk", "resnet"]}]},
     "axes[1].values[1]"),
    ({"axes": [{"axis": ROT, "values": [0]}, {"axis": "compare.mode", "values": ["best"]}]}, "axes[1].values[0]"),
    ({"axes": [{"axis": ROT, "values": [0]}, {"axis": "compare.null", "values": ["repair", "bootstrap"]}]},
     "axes[1].values[1]"),
    ({"axes": [{"axis": ROT, "values": [0]}, {"axis": "world.hidden_dim", "values": [0]}]},
     "axes.world.hidden_dim.values[0]"),
    ({"axes": [{"axis": ROT, "values": [0]}, {"axis": "world.hierarchy.colour", "values": [1]}]},
     "axes.world.hierarchy.colour.values[0]"),
    ({"axes": [{"axis": ROT, "values": [0, 1]}, {"axis": "sae.l0", "values": [4]}], "zip": [[ROT, "sae.l0"]]},
     "zip[0]"),
    ({"zip": [[ROT, "sae.l0"]]}, "zip[0]"),
    ({"analyses": []}, "analyses"),
    ({"analyses": ["colour"]}, "analyses[0].name"),
    ({"axes": [{"axis": "sae.arch", "values": ["topk"]}]}, "analyses[0]"),
    ({"analyses": [{"name": "sae_pairs", "across": "sae.l0"}]}, "analyses[0].across"),
    ({"analyses": [{"name": "sae_pairs"}], "sae": {"seeds": [0]}}, "analyses[0].across"),
    ({"analyses": [{"name": "recovery", "across": "sae.arch"}]}, "analyses[0].across"),
    ({"axes": [{"axis": "sae.arch", "values": ["topk", "batchtopk"]}],
      "analyses": [{"name": "dead_latents", "across": "sae.arch"}]}, "analyses[0].across"),
    ({"analyses": ["recovery"], "findings": ["colour"]}, "findings[0]"),
    ({"sae": {"arch": "relu"}}, "sae.arch"),
    ({"sae": {"seeds": [1, 1]}}, "sae.seeds"),
    ({"sae": {"samples": "many"}}, "sae.samples"),
    ({"compare": {"n_perm": 5}}, "compare.n_perm"),
    ({"compare": {"modes": ["best"]}}, "compare.modes"),
    ({"presets": {"huge": {}}}, "presets.huge"),
    ({"compare": {"sae_seeds": "mixed"}}, "compare.sae_seeds"),
    ({"compare": {"sae_seeds": "disjoint"}}, "compare.sae_seeds"),
    ({"presets": {"tiny": {"sae_samplez": 3}}}, "presets.tiny.sae_samplez"),
    ({"presets": {"tiny": {"n_perm": 5}}}, "presets.tiny"),
    ({"presets": {"tiny": {"axes": {ROT: [0, 120]}}}}, "presets.tiny"),
    ({"presets": {"tiny": {"axes": {"sae.l0": [3]}}}}, "presets.tiny"),
    ({"presets": {"tiny": {"replicates": [1, 2, 3]}}}, "presets.tiny"),
    ({"family_seed": -1}, "family_seed"),
    ({"compare": {"seed": -5}}, "compare.seed"),
    ({"sae": {"seeds": [0, -1]}}, "sae.seeds[1]"),
    ({"axes": [{"axis": ROT, "values": [0, float("nan")]}]}, "axes[0].values[1]"),
    ({"sae": {"width_factor": float("inf")}}, "sae.width_factor"),
    ({"name": "../../x"}, "name"),
    ({"name": ".hidden"}, "name"),
    ({"name": "a/b"}, "name"),
    ({"name": ""}, "name"),
    ({"name": "x" * 101}, "name"),
])
def test_bad_specs_name_the_field(change, field):
    with pytest.raises(ConfigError) as err:
        ExperimentSpec.from_dict({**BASE, **change})
    assert str(err.value).startswith(field + ":"), str(err.value)


def test_names_that_are_safe_slugs_are_accepted():
    for name in ("1a", "null-validity", "my_exp.v2", "-x"):
        assert ExperimentSpec.from_dict({**BASE, "name": name}).name == name
    with pytest.raises(ConfigError, match=r"^name: .*not starting with '\.' \(it names the experiment's output"):
        ExperimentSpec.from_dict({**BASE, "name": "../../x"})


def test_unknown_experiment_or_file(tmp_path):
    with pytest.raises(ConfigError, match="neither a registered experiment"):
        load_spec("2z")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed")
    with pytest.raises(ConfigError, match="invalid YAML at line 1"):
        load_spec(bad)
    with pytest.raises(ConfigError, match="is a directory"):
        load_spec(tmp_path)


def test_load_spec_refuses_duplicate_keys(tmp_path):
    path = tmp_path / "dup.yaml"
    path.write_text("name: x\ndescription: d\nfamily_seed: 1\n"
                    "axes: [{axis: variant.basis_rotation_angle, values: [0, 45]}]\nfamily_seed: 2\n")
    with pytest.raises(ConfigError, match=r"line 5, column 1: duplicate key 'family_seed' \(first given at line 3\)"):
        load_spec(path)


def test_unknown_preset():
    with pytest.raises(ConfigError, match="preset"):
        load_spec("1a").at_preset("huge")


def test_seed_pairs_meet_independent_saes_by_default(tmp_path):
    spec = ExperimentSpec.from_dict({**BASE, "sae": {"seeds": [0, 1, 2]}})
    assert spec.compare.sae_seeds == "different"
    assert spec.compare.seed_pairs(spec.sae.seeds) == [(0, 3), (1, 4), (2, 5)]
    trains, analyses = plan_of(spec, tmp_path)
    assert len(analyses) == 2 * 3
    job, (needs_a, needs_b) = analyses[0]
    assert (job.seed_a, job.seed_b) == (0, 3)
    assert needs_a.startswith("train:base:topk:s0@") and needs_b.startswith("train:rot0:topk:s3@")
    assert sorted(t.seed for t in trains if t.member == "base") == [0, 1, 2]
    assert {t.seed for t in trains if t.member != "base"} == {3, 4, 5}
    same = ExperimentSpec.from_dict({**BASE, "compare": {"sae_seeds": "same"}})
    assert same.compare.seed_pairs([0, 1]) == [(0, 0), (1, 1)]


def test_one_sae_seed_is_enough_for_either_rule():
    for rule in SAE_SEED_RULES:
        spec = ExperimentSpec.from_dict({**BASE, "sae": {"seeds": [3]}, "compare": {"sae_seeds": rule}})
        assert len(spec.compare.seed_pairs(spec.sae.seeds)) == 1


@pytest.mark.parametrize("rule", SAE_SEED_RULES)
@pytest.mark.parametrize("seeds", [[0], [0, 1], [1, 0], [0, 1, 2], [5, 2, 9], [0, 3, 4, 10]])
def test_every_comparison_of_a_condition_is_a_distinct_pair_of_saes(rule, seeds):
    """An SAE is identified by (member, seed); on a variant identical to the base the variant's SAE
    of seed s is the base's SAE of seed s, so its identity is the seed alone.  Either way no two
    comparisons of a condition may compare the same two SAEs (in either order)."""
    compare = CompareSpec(sae_seeds=rule)
    pairs = compare.seed_pairs(seeds)
    assert [a for a, _ in pairs] == seeds
    assert sorted(b for _, b in pairs) == sorted(compare.member_seeds(seeds, "v"))  # each variant SAE once
    distinct_members = [frozenset({("base", a), ("v", b)}) for a, b in pairs]
    identical_members = [frozenset({a, b}) for a, b in pairs]
    assert len(set(distinct_members)) == len(set(identical_members)) == len(pairs)
    if rule == "different":  # no comparison meets two SAEs of one initialisation
        assert all(a != b for a, b in pairs) and not set(seeds) & {b for _, b in pairs}


def test_replicates_draw_independent_families_and_name_their_jobs(tmp_path):
    spec = ExperimentSpec.from_dict({**BASE, "sae": {"seeds": [0]}, "compare": {"sae_seeds": "same"},
                                     "replicates": [3, 1]})
    assert spec.replicate_counts() == [3, 1]
    assert [len(spec.family_config(WORLD, r)["variants"]) for r in range(3)] == [2, 1, 1]
    assert spec.family_config(WORLD, 2)["seed"] == spec.family_seed + 2
    trains, analyses = plan_of(spec, tmp_path, replicates=3)
    names = [j.name for j, _ in analyses]
    assert len(names) == len(set(names)) == 4
    assert {j.replicate for j, _ in analyses} == {0, 1, 2}
    assert {j.sample_seed for j, _ in analyses} == {spec.compare.seed + r for r in range(3)}
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
