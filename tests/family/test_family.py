import numpy as np
import pytest

from featgeom.errors import ConfigError
from featgeom.family import FamilyConfig, build_family


def family_of(world, *variants, **extra):
    cfg = FamilyConfig.from_dict({"world": world.config.to_dict(), "variants": list(variants), **extra})
    return build_family(cfg, world=world)


@pytest.fixture(scope="module")
def fam(tiny_world):
    return family_of(
        tiny_world,
        {"name": "same"},
        {"name": "rot", "basis_rotation_angle": 37},
        {"name": "part", "feature_overlap_ratio": 0.7, "basis_rotation_angle": 10},
        {"name": "mix", "mixing_pairs": 4, "mixing_weight": 0.9},
        {"name": "wide", "hidden_dim": 48},
        {"name": "narrow", "hidden_dim": 20},
    )


def test_overlap_one_angle_zero_gives_identical_members(fam):
    base, same = fam.member("base"), fam.member("same")
    assert np.array_equal(base.feature_vectors, same.feature_vectors)
    assert np.array_equal(base.bias, same.bias)
    batch = fam.sample(2000, seed=1)
    assert np.array_equal(batch.hidden["base"], batch.hidden["same"])


def test_rotation_moves_every_direction_by_the_angle_and_keeps_cosines(fam):
    base, rot = fam.member("base").feature_vectors, fam.member("rot").feature_vectors
    angles = np.degrees(np.arccos(np.clip(np.sum(base * rot, axis=1), -1, 1)))
    np.testing.assert_allclose(angles, 37.0, atol=1e-2)
    np.testing.assert_allclose(np.cos(np.radians(angles)), np.cos(np.radians(37.0)), atol=1e-4)
    np.testing.assert_allclose(rot @ rot.T, base @ base.T, atol=1e-5)
    assert fam.member("rot").rho_mm == pytest.approx(fam.member("base").rho_mm, abs=1e-6)


def test_rotated_shared_features_move_by_angle_in_partial_member(fam):
    base, part = fam.member("base"), fam.member("part")
    c = fam.correspondence("base", "part").tocoo()
    cos = np.sum(base.feature_vectors[c.row] * part.feature_vectors[c.col], axis=1)
    np.testing.assert_allclose(cos, np.cos(np.radians(10.0)), atol=1e-4)


def test_correspondence_counts_and_shapes(fam):
    n = fam.world.num_features
    for name, ratio in [("same", 1.0), ("rot", 1.0), ("part", 0.7)]:
        c = fam.correspondence("base", name)
        assert c.shape == (n, n)
        assert np.count_nonzero(c.toarray() == 1.0) == round(ratio * n)
        assert c.nnz == round(ratio * n)
    # correspondence is symmetric in its arguments
    assert (fam.correspondence("part", "base") != fam.correspondence("base", "part").T).nnz == 0


def test_mixing_weights_in_correspondence(fam):
    c = fam.correspondence("base", "mix").toarray()
    fractional = (c > 0) & (c < 1)
    np.testing.assert_allclose(np.unique(np.round(c[fractional], 6)), [0.1, 0.9])
    mixed_cols = np.flatnonzero(fractional.any(axis=0))
    assert mixed_cols.size == 8  # 4 pairs -> 8 mixed features, each a 0.9/0.1 mixture of two base features
    np.testing.assert_allclose(c[:, mixed_cols].sum(axis=0), 1.0, atol=1e-6)
    assert np.count_nonzero(c == 1.0) == 128 - 8


def test_mixed_feature_activation_is_the_weighted_mixture(fam):
    batch = fam.sample(3000, seed=2, with_features=True)
    base_acts, mix_acts = batch.features["base"].toarray(), batch.features["mix"].toarray()
    c = fam.correspondence("base", "mix").toarray()
    np.testing.assert_allclose(mix_acts, base_acts @ c, atol=1e-5)


def test_shared_features_identical_and_unique_independent(fam):
    batch = fam.sample(40_000, seed=3, with_features=True)
    base, part = batch.features["base"].toarray(), batch.features["part"].toarray()
    c = fam.correspondence("base", "part").tocoo()
    np.testing.assert_array_equal(base[:, c.row], part[:, c.col])
    unique = np.setdiff1d(np.arange(part.shape[1]), c.col)
    assert unique.size == 128 - round(0.7 * 128)
    # a unique feature fires at its slot's rate, independently of the base feature in that slot
    on_b, on_p = base[:, unique] > 0, part[:, unique] > 0
    p_b, p_p, p_both = on_b.mean(0), on_p.mean(0), (on_b & on_p).mean(0)
    frequent = (p_b > 0.02) & (p_p > 0.02)
    assert frequent.sum() >= 3
    se = np.sqrt(p_b * p_p / len(base))
    assert np.all(np.abs(p_both - p_b * p_p)[frequent] < 5 * se[frequent])
    assert np.all(np.abs(p_b - p_p)[frequent] < 5 * np.sqrt(2 * p_b * (1 - p_b) / len(base))[frequent])


def test_paired_hidden_dims_and_streaming(fam):
    batches = list(fam.iter_batches(2500, seed=4, batch_size=1000))
    assert [b.hidden["wide"].shape for b in batches] == [(1000, 48), (1000, 48), (500, 48)]
    whole = fam.sample(2500, seed=4, batch_size=1000)
    np.testing.assert_array_equal(np.concatenate([b.hidden["narrow"] for b in batches]), whole.hidden["narrow"])
    assert whole.hidden["narrow"].shape == (2500, 20)


def test_sampling_some_members_gives_their_samples_of_a_full_draw(fam):
    full = fam.sample(1500, seed=6, batch_size=700, with_features=True)
    some = fam.sample(1500, seed=6, batch_size=700, with_features=True, members=["part", "base"])
    assert set(some.hidden) == set(some.features) == {"part", "base"}
    for name in ("part", "base"):
        np.testing.assert_array_equal(some.hidden[name], full.hidden[name])
        assert (some.features[name] != full.features[name]).nnz == 0
    assert fam.universe_samplers(6, ["rot"])[fam.names.index("part")] is None  # part's own block is not drawn


def test_wider_member_is_an_isometric_embedding(fam):
    base, wide = fam.member("base").feature_vectors, fam.member("wide").feature_vectors
    np.testing.assert_allclose(wide @ wide.T, base @ base.T, atol=1e-5)
    assert fam.member("narrow").rho_mm > fam.member("base").rho_mm


def test_metadata(fam):
    base, part = fam.member("base"), fam.member("part")
    assert base.depth().max() == fam.world.config.hierarchy.depth
    assert np.all(np.diff(base.firing_probability) <= 1e-12)  # Zipf: feature 0 most frequent
    # a tree shares one category; categories are balanced over trees
    roots = np.flatnonzero((base.parent < 0) & np.isin(np.arange(128), base.parent))
    for r in roots:
        assert np.all(base.category[base.parent == r] == base.category[r])
    assert set(np.unique(base.category)) == set(range(8))
    # inside a partial member, a parent link survives only between features of the same draw
    c = fam.correspondence("base", "part")
    shared = np.zeros(128, dtype=bool)
    shared[c.tocoo().col] = True
    linked = np.flatnonzero(part.parent >= 0)
    assert np.all(shared[linked] == shared[part.parent[linked]])


@pytest.mark.parametrize("delta", [0.05, -0.05])
def test_superposition_delta_target_is_met(tiny_world, delta):
    fam = family_of(tiny_world, {"name": "v", "superposition_delta": delta})
    target = fam.member("base").rho_mm + delta
    assert fam.member("v").rho_mm == pytest.approx(target, abs=0.01)
    from featgeom.world.geometry import rho_mm
    assert rho_mm(fam.member("v").feature_vectors) == pytest.approx(fam.member("v").rho_mm, abs=1e-6)


def test_unreachable_superposition_target_is_a_clear_error():
    from featgeom.world.build import build_world
    from featgeom.world.config import WorldConfig

    crowded = build_world(WorldConfig(num_features=64, hidden_dim=2, seed=1))  # rho_mm ~ 1 already
    with pytest.raises(ConfigError, match=r"variants\[0\]\.superposition_delta: target rho_mm .* unreachable"):
        family_of(crowded, {"name": "v", "superposition_delta": 0.1})


def test_family_construction_is_deterministic(tiny_world, fam):
    again = family_of(tiny_world, *[v.__dict__ for v in fam.config.variants])
    for a, b in zip(fam.members, again.members):
        assert np.array_equal(a.feature_vectors, b.feature_vectors)
        assert (a.source != b.source).nnz == 0


@pytest.mark.parametrize(
    ("variant", "field"),
    [
        ({"name": "v", "feature_overlap_ratio": -0.1}, r"variants\[0\]\.feature_overlap_ratio"),
        ({"name": "v", "basis_rotation_angle": 91}, r"variants\[0\]\.basis_rotation_angle"),
        ({"name": "v", "basis_rotation_angle": -1}, r"variants\[0\]\.basis_rotation_angle"),
        ({"name": "v", "superposition_delta": 0.2}, r"variants\[0\]\.superposition_delta"),
        ({"name": "v", "hidden_dim": 0}, r"variants\[0\]\.hidden_dim"),
        ({"name": "v", "speed": 3}, r"variants\[0\]\.speed"),
        ({"name": "base"}, r"variants\[0\]\.name"),
    ],
)
def test_bad_variant_names_the_field(variant, field):
    with pytest.raises(ConfigError, match=f"^{field}"):
        FamilyConfig.from_dict({"world": "tiny", "variants": [variant]})


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"world": "tiny", "seed": -1}, "seed"),
        ({"world": "huge"}, "world"),
        ({"world": {"num_features": 64, "hidden_dim": 33}, "variants": [{"name": "v", "basis_rotation_angle": 10}]},
         "variants[0].basis_rotation_angle"),
        ({"world": "tiny", "variants": [{"name": "a"}, {"name": "v", "basis_rotation_angle": 10, "hidden_dim": 31}]},
         "variants[1].basis_rotation_angle"),
        ({"world": {"num_features": 64, "hidden_dim": 32, "bias": float("nan")}}, "world.bias"),
    ],
)
def test_bad_family_config_names_the_field(data, field):
    with pytest.raises(ConfigError) as err:
        FamilyConfig.from_dict(data)
    assert str(err.value).startswith(f"{field}:"), str(err.value)


def test_rotation_needs_an_even_member_dimension_only():
    odd = {"num_features": 64, "hidden_dim": 33}
    variants = [{"name": "v", "basis_rotation_angle": 10, "hidden_dim": 32}, {"name": "w", "hidden_dim": 31}]
    cfg = FamilyConfig.from_dict({"world": odd, "variants": variants})
    assert [v.name for v in cfg.variants] == ["v", "w"]
    with pytest.raises(ConfigError, match=r"even hidden_dim \(this member's is 33;"):
        FamilyConfig.from_dict({"world": odd, "variants": [{"name": "v", "basis_rotation_angle": 10}]})


def test_unknown_member(fam):
    with pytest.raises(ConfigError, match="unknown member 'nope'"):
        fam.correspondence("base", "nope")
