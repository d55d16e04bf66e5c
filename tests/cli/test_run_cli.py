"""``featgeom experiments`` and ``featgeom run``: listing and bad input."""

from __future__ import annotations


def test_experiments_lists_the_registry(run_cli):
    code, out, _ = run_cli("experiments")
    assert code == 0
    names = [line.split()[0] for line in out.strip().splitlines()]
    assert {"quickstart", "1a", "1b", "1c", "null-validity"} <= set(names)
    assert len({line.index(line.split()[1]) for line in out.strip().splitlines()}) == 1  # one column
    assert all(len(line.split(maxsplit=1)) == 2 for line in out.strip().splitlines())


def test_run_rejects_a_bad_config_naming_the_field(run_cli, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ndescription: d\naxes: [{axis: variant.basis_rotation_angle, values: [0, 100]}]\n")
    out = tmp_path / "out"
    code, _, err = run_cli("run", bad, "--preset", "tiny", "--out", out)
    assert code == 2
    assert err.strip().splitlines() == [err.strip()] and "axes[0].values[1]" in err
    assert not out.exists()


def test_run_rejects_unknown_experiment_and_preset(run_cli, tmp_path):
    code, _, err = run_cli("run", "2z", "--out", tmp_path / "o")
    assert code == 2 and "neither a registered experiment" in err
    code, _, err = run_cli("run", "1a", "--preset", "huge", "--out", tmp_path / "o")
    assert code == 2 and "preset" in err
    assert not (tmp_path / "o").exists()


def test_run_refuses_bad_fields_before_writing(run_cli, tmp_path):
    base = "description: d\naxes: [{axis: variant.basis_rotation_angle, values: [0, 30]}]\n"
    cases = {"family_seed": "name: x\nfamily_seed: -1\n" + base,
             "name": "name: ../../x\n" + base,
             "duplicate key 'name'": "name: x\nname: y\n" + base,
             "sae.samples": "name: x\nsae: {samples: 10}\n" + base}
    for expected, text in cases.items():
        bad = tmp_path / "bad.yaml"
        bad.write_text(text)
        out = tmp_path / "out"
        code, _, err = run_cli("run", bad, "--preset", "tiny", "--quiet", "--out", out)
        assert code == 2, (expected, err)
        assert len(err.strip().splitlines()) == 1 and expected in err, (expected, err)
        assert not out.exists(), expected
