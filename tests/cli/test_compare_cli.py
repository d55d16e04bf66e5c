import json

import pytest



def test_compare_prints_json_last_line(run_cli, stored):
    root, (a, b) = stored
    code, out, err = run_cli("compare", a.path, b.path, "--family", root / "family", "--samples", 3000,
                             "--n-perm", 19, "--json")
    assert code == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert set(result["pairings"]) == {"many_to_one", "mutual"}
    assert 0 < result["pairings"]["mutual"]["svcca"]["nulls"]["repair"]["p_value"] <= 1
    assert result["nulls"] == ["repair"]
    assert result["ground_truth"]["gt_mcc"] == pytest.approx(1.0)
    assert result["n_latents"] == [64, 64]


def test_compare_runs_the_papers_null_on_request(run_cli, stored):
    root, (a, b) = stored
    code, out, err = run_cli("compare", a.path, b.path, "--family", root / "family", "--samples", 3000,
                             "--n-perm", 19, "--null", "repair", "--null", "shuffle")
    assert code == 0, err
    assert "repair" in out and "shuffle" in out
    code, _, err = run_cli("compare", a.path, b.path, "--family", root / "family", "--null", "exact")
    assert code == 2 and "nulls" in err


def test_compare_refuses_an_sae_of_another_family(run_cli, stored):
    root, (a, b) = stored
    code, _, err = run_cli("compare", a.path, b.path, "--family", root / "other", "--n-perm", 19)
    assert code == 2 and "trained on family" in err
