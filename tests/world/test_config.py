import pytest

from featgeom.errors import ConfigError
from featgeom.world.config import PRESETS, WorldConfig, preset


def test_presets_round_trip_through_dict():
    for name in PRESETS:
        cfg = preset(name)
        assert WorldConfig.from_dict(cfg.to_dict()) == cfg


def test_published_16k_values():
    cfg = preset("synthsaebench-16k")
    assert (cfg.num_features, cfg.hidden_dim, cfg.seed) == (16_384, 768, 42)
    assert cfg.hierarchy.size() == 128 * (1 + 4 + 16 + 64)
    assert (cfg.correlation.rank, cfg.correlation.scale) == (25, 0.1)


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"num_features": 10, "hidden_dim": 0}, "hidden_dim"),
        ({"num_features": 10, "hidden_dim": 4, "colour": 1}, "colour"),
        ({"num_features": 10, "hidden_dim": 4, "firing": {"min_prob": 0.5, "max_prob": 0.4}}, "firing.min_prob"),
        ({"num_features": 10, "hidden_dim": 4, "hierarchy": {"branching": 1}}, "hierarchy.branching"),
        ({"num_features": 10, "hidden_dim": 4, "correlation": {"rank": 0}}, "correlation.rank"),
        ({"num_features": 10, "hidden_dim": 4, "mean_magnitude": {"kind": "weird"}}, "mean_magnitude.kind"),
        ({"num_features": "many", "hidden_dim": 4}, "num_features"),
        ({"hidden_dim": 4}, "WorldConfig"),
        ({"num_features": 10, "hidden_dim": 4, "bias": float("nan")}, "bias"),
        ({"num_features": 10, "hidden_dim": 4, "bias": float("inf")}, "bias"),
        ({"num_features": 10, "hidden_dim": 4, "correlation": {"scale": float("nan")}}, "correlation.scale"),
        ({"num_features": 10, "hidden_dim": 4, "mean_magnitude": {"kind": "linear", "start": float("inf")}},
         "mean_magnitude.start"),
        ({"num_features": 10, "hidden_dim": 4, "std_magnitude": {"value": float("nan")}}, "std_magnitude.value"),
        ({"num_features": 10, "hidden_dim": 4, "firing": {"exponent": float("nan")}}, "firing.exponent"),
        ({"num_features": 10, "hidden_dim": 4, "orthogonalization": {"lr": float("inf")}}, "orthogonalization.lr"),
        ({"num_features": 10, "hidden_dim": 4, "mean_magnitude": {"value": 0}}, "mean_magnitude.value"),
        ({"num_features": 10, "hidden_dim": 4, "mean_magnitude": {"value": -1.0}}, "mean_magnitude.value"),
        ({"num_features": 10, "hidden_dim": 4, "seed": -1}, "seed"),
        ({"num_features": 10, "hidden_dim": 4, "seed": 2**40}, "seed"),
        ({"num_features": 10, "hidden_dim": 4, "hierarchy": {"roots": 2, "branching": 2, "depth": 2}}, "hierarchy"),
    ],
)
def test_bad_world_config_names_the_field(data, field):
    with pytest.raises(ConfigError) as err:
        WorldConfig.from_dict(data)
    assert str(err.value).startswith(f"{field}:"), str(err.value)


def test_edge_values_the_world_accepts():
    cfg = WorldConfig.from_dict({"num_features": 14, "hidden_dim": 4, "std_magnitude": {"value": 0},
                                 "hierarchy": {"roots": 2, "branching": 2, "depth": 2}})  # 2 * (1 + 2 + 4) = 14
    assert cfg.hierarchy.size() == cfg.num_features and cfg.std_magnitude.value == 0


def test_hierarchy_message_gives_both_sizes():
    with pytest.raises(ConfigError, match=r"^hierarchy: .* = 14 features, more than num_features = 13$"):
        WorldConfig.from_dict({"num_features": 13, "hidden_dim": 4,
                               "hierarchy": {"roots": 2, "branching": 2, "depth": 2}})


def test_unknown_preset():
    with pytest.raises(ConfigError, match="unknown preset 'huge'"):
        preset("huge")
