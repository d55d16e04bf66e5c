import filecmp
import json
import os

import numpy as np
import pytest

from featgeom.errors import ArtifactError
from featgeom.family import FamilyConfig, build_family, load, save
from featgeom.store import artifact_id, read_artifact, write_artifact


@pytest.fixture(scope="module")
def family(tiny_world):
    cfg = FamilyConfig.from_dict({"world": tiny_world.config.to_dict(),
                                  "variants": [{"name": "v", "feature_overlap_ratio": 0.6, "basis_rotation_angle": 20,
                                                "mixing_pairs": 2}]})
    return build_family(cfg, world=tiny_world)


def test_family_round_trips_bit_for_bit(family, tmp_path):
    family_id = save(family, tmp_path / "a")
    loaded = load(tmp_path / "a")
    assert save(loaded, tmp_path / "b") == family_id
    for name in os.listdir(tmp_path / "a"):
        assert filecmp.cmp(tmp_path / "a" / name, tmp_path / "b" / name, shallow=False), name
    for m1, m2 in zip(family.members, loaded.members):
        assert np.array_equal(m1.feature_vectors, m2.feature_vectors)
        assert (m1.source != m2.source).nnz == 0
    np.testing.assert_array_equal(family.sample(200, seed=1).hidden["v"], loaded.sample(200, seed=1).hidden["v"])


def test_id_depends_on_config_and_generator():
    a = artifact_id("family", {"x": 1}, "g1")
    assert a == artifact_id("family", {"x": 1}, "g1")
    assert a != artifact_id("family", {"x": 2}, "g1")
    assert a != artifact_id("family", {"x": 1}, "g2")


def test_rewriting_same_artifact_is_a_no_op_and_different_one_refused(tmp_path):
    arrays = {"x": np.arange(5, dtype=np.float32)}
    aid = write_artifact(tmp_path / "art", "thing", {"a": 1}, {}, arrays, "g")
    assert write_artifact(tmp_path / "art", "thing", {"a": 1}, {}, arrays, "g") == aid
    with pytest.raises(ArtifactError, match="refusing to overwrite"):
        write_artifact(tmp_path / "art", "thing", {"a": 2}, {}, arrays, "g")


@pytest.mark.parametrize("damage", ["truncate", "flip", "config", "delete"])
def test_corrupted_artifact_gives_a_clear_error(family, tmp_path, damage):
    path = tmp_path / "fam"
    save(family, path)
    tensors = path / "arrays.safetensors"
    if damage == "truncate":
        tensors.write_bytes(tensors.read_bytes()[:-100])
    elif damage == "flip":
        data = bytearray(tensors.read_bytes())
        data[len(data) // 2] ^= 0xFF
        tensors.write_bytes(bytes(data))
    elif damage == "config":
        cfg = json.loads((path / "config.json").read_text())
        cfg["seed"] = 99
        (path / "config.json").write_text(json.dumps(cfg))
    else:
        (path / "meta.json").unlink()
    with pytest.raises(ArtifactError, match=str(path)):
        load(path)


def test_killed_write_leaves_no_artifact(tmp_path, monkeypatch):
    import safetensors.numpy

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr(safetensors.numpy, "save_file", crash)
    with pytest.raises(KeyboardInterrupt):
        write_artifact(tmp_path / "art", "thing", {"a": 1}, {}, {"x": np.zeros(3)}, "g")
    assert os.listdir(tmp_path) == []


def test_wrong_kind_and_missing_directory(family, tmp_path):
    save(family, tmp_path / "fam")
    with pytest.raises(ArtifactError, match="expected 'sae'"):
        read_artifact(tmp_path / "fam", kind="sae")
    with pytest.raises(ArtifactError, match="no such artifact directory"):
        read_artifact(tmp_path / "nothing")
