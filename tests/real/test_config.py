import pytest

from featgeom.errors import ConfigError
from featgeom.real.config import PRESETS, RealConfig, real_config


def test_presets_build_and_overrides_merge():
    for name in PRESETS:
        assert isinstance(real_config(name), RealConfig)
    cfg = real_config("minilm-tiny", {"train": {"width": 256}, "n_perm": 49})
    assert cfg.train.width == 256 and cfg.train.l0 == 8  # the preset's other train fields stay
    assert cfg.n_perm == 49 and cfg.model_a == "minilm-l6"


@pytest.mark.parametrize("overrides, field", [
    ({"layers_a": [1, 1]}, "layers_a"),
    ({"layers_b": []}, "layers_b"),
    ({"sae_a": "release/blocks.3.hook_resid_post"}, "sae_a"),
    ({"modes": ["first_by_index"]}, "modes"),
    ({"nulls": ["none"]}, "nulls"),
    ({"null_blocks": "sentence"}, "null_blocks"),
    ({"n_perm": 5}, "n_perm"),
    ({"device": "gpu"}, "device"),
    ({"train": {"arch": "sparse"}}, "train.arch"),
    ({"train": {"l0": 5000}}, "train.l0"),
    ({"window": 0}, "window"),
    ({"synthetic_scale": "huge"}, "synthetic_scale"),
    ({"backend": "onnx"}, "backend"),
    ({"unknown_field": 1}, "unknown_field"),
])
def test_bad_values_name_their_field(overrides, field):
    with pytest.raises(ConfigError) as err:
        real_config("minilm-tiny", overrides)
    assert str(err.value).startswith(f"{field}:"), str(err.value)


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(ConfigError, match="preset: unknown 'gpt5'.*minilm"):
        real_config("gpt5")
