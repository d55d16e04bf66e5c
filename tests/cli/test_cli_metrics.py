"""``featgeom metrics`` (the similarity registry as a listing) and ``featgeom compare --metrics``: the
listing, the option, and the command-line contract (exit 2 with one error line for bad input, before
any work; 130 on an interrupt; 1 with a request to report on an internal error)."""

from __future__ import annotations

import json

import pytest

from featgeom.similarity import SIMILARITY

ORDER = ["svcca", "svcca_legacy", "rsa", "cka", "procrustes", "debiased_cka", "mutual_knn"]


def _must_not_run(*_args, **_kwargs):
    raise AssertionError("work started before --metrics was checked")


def _interrupt(*_args, **_kwargs):
    raise KeyboardInterrupt


def _crash(*_args, **_kwargs):
    raise RuntimeError("planted")


def _one_line(err: str, starts: str) -> str:
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith(starts)]
    assert len(lines) == 1, err
    return lines[0]


def test_metrics_lists_every_registered_metric_in_order(run_cli):
    code, out, err = run_cli("metrics")
    assert code == 0, err
    lines = out.strip().splitlines()
    assert [line.split()[0] for line in lines] == ORDER
    for line, name in zip(lines, ORDER):
        assert SIMILARITY[name].label in line and line.endswith(SIMILARITY[name].description)
    # aligned columns: every label starts at the same offset
    offsets = {line.index(SIMILARITY[name].label, len(name)) for line, name in zip(lines, ORDER)}
    assert len(offsets) == 1


def test_metrics_is_listed_in_the_help(run_cli):
    code, out, _ = run_cli("--help")
    assert code == 0 and "metrics" in out


@pytest.mark.parametrize(("args", "message"), [
    (["extra"], "Got unexpected extra argument"),
    (["--bogus"], "No such option: --bogus"),
])
def test_metrics_bad_usage_exits_2(run_cli, args, message):
    code, _, err = run_cli("metrics", *args)
    assert code == 2
    assert message in _one_line(err, "Error:")


def test_metrics_interrupt_and_internal_error(run_cli, monkeypatch):
    monkeypatch.setattr("featgeom.similarity.registry.similarity_metric", _interrupt)
    code, _, err = run_cli("metrics")
    assert code == 130 and "rerun the same command" in _one_line(err, "interrupted")
    monkeypatch.setattr("featgeom.similarity.registry.similarity_metric", _crash)
    code, _, err = run_cli("metrics")
    assert code == 1 and "RuntimeError: planted" in err and "please report it" in err.strip().splitlines()[-1]


@pytest.mark.parametrize(("value", "message"), [
    ("svcca,pwcca", "--metrics: unknown similarity metric 'pwcca' (one of svcca, svcca_legacy, rsa, cka, "
                    "procrustes, debiased_cka, mutual_knn)"),
    ("cka,cka", "--metrics: 'cka' listed more than once"),
    ("svcca,,cka", "--metrics: empty name in 'svcca,,cka'"),
    ("", "--metrics: empty name in ''"),
])
def test_compare_refuses_bad_metrics_before_any_work(run_cli, monkeypatch, tmp_path, value, message):
    monkeypatch.setattr("featgeom.family.load", _must_not_run)
    monkeypatch.setattr("featgeom.sae.load", _must_not_run)
    code, out, err = run_cli("compare", tmp_path / "a", tmp_path / "b", "--family", tmp_path / "fam",
                             "--metrics", value)
    assert code == 2 and out == ""
    assert message in _one_line(err, "error:")


def test_compare_measures_only_the_metrics_asked_for(run_cli, stored):
    root, (sae, _) = stored
    sae = sae.path
    args = ["compare", sae, sae, "--family", root / "family", "--samples", "2000", "--n-perm", "19"]
    code, out, err = run_cli(*args, "--metrics", " mutual_knn, cka ", "--json")
    assert code == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    for summary in result["pairings"].values():
        assert [k for k, v in summary.items() if isinstance(v, dict)] == ["cka", "mutual_knn"]  # JSON sorts keys
        assert summary["mutual_knn"]["observed"] == pytest.approx(1.0)  # one SAE against itself
    code, out, err = run_cli(*args, "--metrics", "debiased_cka")
    assert code == 0, err
    first = out.strip().splitlines()[0]
    assert "debiased_cka" in first and "svcca" not in first and "rsa" not in first
    code, out, err = run_cli(*args, "--json")  # default: every registered metric
    assert code == 0, err
    summary = json.loads(out.strip().splitlines()[-1])["pairings"]["mutual"]
    assert sorted(k for k, v in summary.items() if isinstance(v, dict)) == sorted(ORDER)
