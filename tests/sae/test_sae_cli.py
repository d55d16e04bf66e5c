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
    code, out, err = run_cli("sae", "eval", last_json(out)["path"], "--family", family_dir, "--member", "narrow")
    assert code == 2 and out == ""
    assert err.strip() == "error: sae: input dim 32 differs from member 'narrow''s hidden dim 24"


def test_eval_of_a_non_sae_directory(run_cli, family_dir):
    code, _, err = run_cli("sae", "eval", family_dir, "--family", family_dir)
    assert code == 2 and "holds a 'family' artifact, expected 'sae'" in err
