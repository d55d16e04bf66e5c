import json

import pytest

FAST = ("--width", "48", "--l0", "4", "--samples", "8192", "--batch-size", "512", "--eval-samples", "2048",
        "--no-progress")


def last_json(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


def test_train_then_eval_print_the_same_metrics(run_cli, family_dir, tmp_path):
    code, out, err = run_cli("sae", "train", "--family", family_dir, "--member", "rot", "--arch", "topk", *FAST,
                             "--seed", "1", "--out", tmp_path)
    assert code == 0, err
    trained = last_json(out)
    assert {"path", "mcc", "f1", "explained_variance", "l0", "dead_fraction"} <= set(trained)
    assert trained["l0"] == pytest.approx(4.0)
    code, out, err = run_cli("sae", "eval", trained["path"], "--family", family_dir, "--member", "rot",
                             "--eval-samples", "2048")
    assert code == 0, err
    evaluated = last_json(out)
    for key in ("mcc", "f1", "explained_variance", "l0", "dead_fraction"):
        assert evaluated[key] == pytest.approx(trained[key], abs=1e-9), key


@pytest.mark.parametrize(("args", "message"), [
    (("--arch", "relu9000"), "error: arch: unknown architecture 'relu9000'"),
    (("--arch", "topk", "--width", "0"), "error: width: must be >= 1"),
    (("--arch", "topk", "--member", "nobody"), "error: member: unknown member 'nobody'"),
])
def test_bad_input_one_error_line_exit_2_nothing_written(run_cli, family_dir, tmp_path, args, message):
    fast = dict(zip(FAST[::2], FAST[1::2]))
    fast.pop("--no-progress", None)
    given = dict(zip(args[::2], args[1::2]))
    merged = [x for k, v in {**fast, **given}.items() for x in (k, v)]
    code, out, err = run_cli("sae", "train", "--family", family_dir, *merged, "--no-progress", "--out", tmp_path / "s")
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), err
    assert out == "" and not (tmp_path / "s").exists()


def test_eval_on_member_of_other_dim_is_one_error_line(run_cli, family_dir, tmp_path):
    code, out, _ = run_cli("sae", "train", "--family", family_dir, "--arch", "batchtopk", *FAST, "--out", tmp_path)
    assert code == 0
    code, out, err = run_cli("sae", "eval", last_json(out)["path"], "--family", family_dir, "--member", "narrow",
                             "--cross-member")
    assert code == 2 and out == ""
    assert err.strip() == "error: sae: input dim 32 differs from member 'narrow''s hidden dim 24"


@pytest.fixture(scope="module")
def base_sae(family_dir, tmp_path_factory):
    """Path of a small TopK SAE trained on 'base' through the CLI function."""
    from featgeom.family import load as load_family
    from featgeom.sae import train
    from featgeom.sae.recipes import recipe

    fam = load_family(family_dir)
    cfg = recipe("topk", fam, "base", width=48, l0=4, samples=8192, batch_size=512)
    return train(fam, "base", cfg, tmp_path_factory.mktemp("store"), eval_samples=2048).path


def test_eval_on_another_member_of_the_same_dim_needs_cross_member(run_cli, family_dir, base_sae):
    code, out, err = run_cli("sae", "eval", base_sae, "--family", family_dir, "--member", "rot",
                             "--eval-samples", "2048")
    assert code == 2 and out == ""
    assert err.strip() == ("error: member: the SAE was trained on member 'base', not 'rot'; pass --cross-member "
                           "(cross_member=True) to evaluate its transfer to another member")
    code, out, err = run_cli("sae", "eval", base_sae, "--family", family_dir, "--member", "rot",
                             "--eval-samples", "2048", "--cross-member")
    assert code == 0, err
    assert last_json(out)["member"] == "rot"


def test_eval_on_another_family_is_refused(run_cli, tiny_world, base_sae, tmp_path):
    from featgeom.family import FamilyConfig, build_family, save

    other = build_family(FamilyConfig.from_dict({"name": "other", "world": tiny_world.config.to_dict()}),
                         world=tiny_world)
    save(other, tmp_path / "other")
    code, out, err = run_cli("sae", "eval", base_sae, "--family", tmp_path / "other", "--eval-samples", "2048")
    assert code == 2 and out == ""
    assert err.startswith("error: family: the SAE was trained on family ") and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(("args", "message"), [
    (("--eval-samples", "0"), "error: eval_samples: must be an integer >= 512"),
    (("--eval-samples", "-5"), "error: eval_samples: must be an integer >= 512"),
    (("--eval-samples", "100"), "error: eval_samples: must be an integer >= 512"),
    (("--seed", "-1"), "error: seed: must be an integer seed in [0, "),
])
def test_eval_refuses_bad_sample_counts_and_seeds(run_cli, family_dir, base_sae, args, message):
    code, out, err = run_cli("sae", "eval", base_sae, "--family", family_dir, *args)
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), err


@pytest.mark.parametrize(("args", "message"), [
    (("--eval-samples", "0"), "error: eval_samples: must be an integer >= 512"),
    (("--seed", "-1"), "error: seed: must be an integer seed in [0, "),
    (("--threads", "0"), "error: threads: must be > 0"),
    (("--checkpoint-every", "-1"), "error: checkpoint_every: must be >= 0"),
])
def test_train_refuses_bad_values_before_training(run_cli, family_dir, tmp_path, monkeypatch, args, message):
    from featgeom.sae.data import MemberStream

    monkeypatch.setattr(MemberStream, "next_hidden", _must_not_train)
    code, out, err = run_cli("sae", "train", "--family", family_dir, "--arch", "topk", *FAST, *args,
                             "--out", tmp_path / "s")
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), err
    assert not (tmp_path / "s").exists()


def _must_not_train(*_args, **_kwargs):
    raise AssertionError("training started before the values were checked")


def test_train_without_a_terminal_prints_plain_progress_lines(run_cli, family_dir, tmp_path):
    fast = [a for a in FAST if a != "--no-progress"]
    code, out, err = run_cli("sae", "train", "--family", family_dir, "--arch", "topk", *fast, "--out", tmp_path)
    assert code == 0, err
    lines = err.strip().splitlines()
    # 16 steps of 512, a history row after each: a line at the first row past each tenth of 8,192
    done = [1024, 2048, 2560, 3584, 4096, 5120, 6144, 6656, 7680, 8192]
    assert [line.split(": ")[1].split(" samples")[0] for line in lines] == [f"{n:,}/8,192" for n in done], err
    assert all(line.startswith("sae train topk width 48: ") and "samples/s" in line and ", loss " in line
               for line in lines), err
    assert lines[-1].startswith("sae train topk width 48: 8,192/8,192 samples (100%)")
    assert last_json(out)["path"].startswith(str(tmp_path))


def test_eval_of_a_non_sae_directory(run_cli, family_dir):
    code, _, err = run_cli("sae", "eval", family_dir, "--family", family_dir)
    assert code == 2 and "holds a 'family' artifact, expected 'sae'" in err
