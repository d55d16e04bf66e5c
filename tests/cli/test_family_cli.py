import json

import pytest
import yaml

GOOD = {"name": "demo", "world": "tiny", "variants": [{"name": "rot", "basis_rotation_angle": 45},
                                                      {"name": "part", "feature_overlap_ratio": 0.75}]}


def write(tmp_path, cfg):
    path = tmp_path / "family.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_create_then_show(run_cli, tmp_path):
    code, out, err = run_cli("family", "create", write(tmp_path, GOOD), "--out", tmp_path / "fam")
    assert code == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert [m["name"] for m in summary["members"]] == ["base", "rot", "part"]
    part = summary["members"][2]
    assert part["shared_fraction_with_base"] == pytest.approx(96 / 128)
    assert {"num_features", "hidden_dim", "rho_mm"} <= set(part)
    code, out2, _ = run_cli("family", "show", tmp_path / "fam")
    assert code == 0
    assert json.loads(out2)["id"] == summary["id"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"variants": [{"name": "x", "feature_overlap_ratio": 1.2}]}, "variants[0].feature_overlap_ratio"),
        ({"variants": [{"name": "x", "basis_rotation_angle": 120}]}, "variants[0].basis_rotation_angle"),
        ({"world": {"num_features": 64, "hidden_dim": 0}}, "world.hidden_dim"),
        ({"typo_key": 1}, "typo_key"),
        ({"world": {"num_features": 64, "hidden_dim": 2, "seed": 1},
          "variants": [{"name": "x", "superposition_delta": 0.1}]}, "variants[0].superposition_delta"),
    ],
)
def test_bad_config_one_line_exit_2_nothing_written(run_cli, tmp_path, change, field):
    code, out, err = run_cli("family", "create", write(tmp_path, {**GOOD, **change}), "--out", tmp_path / "fam")
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {field}")
    assert not (tmp_path / "fam").exists()
    assert out == ""


def test_show_corrupted_artifact(run_cli, tmp_path):
    assert run_cli("family", "create", write(tmp_path, GOOD), "--out", tmp_path / "fam")[0] == 0
    (tmp_path / "fam" / "arrays.safetensors").write_bytes(b"garbage")
    code, _, err = run_cli("family", "show", tmp_path / "fam")
    assert code == 2 and "corrupted or truncated" in err


def test_missing_config_file(run_cli, tmp_path):
    code, _, err = run_cli("family", "create", tmp_path / "nope.yaml", "--out", tmp_path / "fam")
    assert code == 2 and "config file not found" in err


@pytest.mark.parametrize(("content", "message"), [
    (b"name: a\nname: b\nworld: tiny\n", "duplicate key 'name'"),
    (b"name: caf\xe9\nworld: tiny\n", "not UTF-8"),
    (b"world: {num_features: 64, hidden_dim: 16, bias: .nan}\n", "world.bias: must be a finite number"),
])
def test_bad_config_files_one_line_exit_2(run_cli, tmp_path, content, message):
    path = tmp_path / "family.yaml"
    path.write_bytes(content)
    code, _, err = run_cli("family", "create", path, "--out", tmp_path / "fam")
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and message in err, err
    assert not (tmp_path / "fam").exists()


def test_config_path_that_is_a_directory(run_cli, tmp_path):
    code, _, err = run_cli("family", "create", tmp_path, "--out", tmp_path / "fam")
    assert code == 2 and len(err.strip().splitlines()) == 1 and str(tmp_path) in err
