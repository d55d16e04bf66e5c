"""An experiment's `device:` and the full-scale preset, as the spec reads them."""

import pytest

from featgeom.errors import ConfigError
from featgeom.experiments.spec import PRESETS, ExperimentSpec, Point, load_spec


def _spec(**changes):
    data = {"name": "dev", "description": "d", "axes": [{"axis": "variant.feature_overlap_ratio", "values": [1.0]}],
            **changes}
    return ExperimentSpec.from_dict(data)


def test_device_defaults_to_cpu_and_leaves_the_hash_alone():
    spec = _spec()
    assert spec.device == "cpu" and "device" not in spec.to_dict()
    assert _spec(device="cpu").config_hash == spec.config_hash


def test_a_gpu_experiment_is_a_different_run():
    gpu = _spec(device="CUDA:1")  # only the syntax is checked when the file is read
    assert gpu.device == "cuda:1" and gpu.to_dict()["device"] == "cuda:1"
    assert gpu.config_hash != _spec().config_hash
    assert ExperimentSpec.from_dict(gpu.to_dict()) == gpu


def test_bad_device_names_the_field():
    with pytest.raises(ConfigError, match="device: expected 'cpu', 'cuda' or 'cuda:N', got 'gpu0'"):
        _spec(device="gpu0")


def test_full_scale_preset_has_the_published_settings():
    assert "synthsaebench-16k" in PRESETS
    spec = load_spec("quickstart").at_preset("synthsaebench-16k")
    assert (spec.sae.samples, spec.sae.l0, spec.compare.samples) == (200_000_000, 25, 30_000)
    assert round(spec.sae.width_factor * 16_384) == 4096
    assert spec.family_config(Point({}))["world"] == "synthsaebench-16k"
    assert load_spec("quickstart").at_preset("small").sae.samples == 1_000_000  # CPU presets untouched
