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
    ],
)
def test_bad_world_config_names_the_field(data, field):
    with pytest.raises(ConfigError, match=rf"^{field}"):
        WorldConfig.from_dict(data)


def test_unknown_preset():
    with pytest.raises(ConfigError, match="unknown preset 'huge'"):
        preset("huge")
