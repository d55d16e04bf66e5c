"""The plan's SAE studies as registered grid experiments, run end to end on `tiny`.

Every study runs into one output directory, as a user would run a series of studies: the
content-addressed store lets later studies reuse the families and SAEs earlier ones trained
(e.g. feature-coverage reads arch-compare's SAEs), which keeps these tests short."""

from __future__ import annotations

import json
from collections import defaultdict

import pytest

from featgeom.experiments.runner import run_experiment
from featgeom.experiments.spec import load_spec
from featgeom.store.results import ResultsDB


@pytest.fixture(scope="module")
def studies_out(tmp_path_factory):
    """One OUT for every study of this module."""
    return tmp_path_factory.mktemp("studies")


def rows_of(name: str, out) -> list[dict]:
    """Run study ``name`` at tiny into ``out``, write the report; the study's own rows."""
    from featgeom.report.experiment import write_experiment_report

    summary = run_experiment(load_spec(name).at_preset("tiny"), out, workers=1, progress=False)
    assert write_experiment_report(out).exists()
    return ResultsDB(out / "results.sqlite").results(summary.config_hash)


@pytest.mark.slow
def test_architecture_comparison_on_tiny(studies_out):
    """Tasks 2.1 / 2.2: every architecture's SAEs are measured against ground truth, and every
    unordered pair of architectures (the diagonal too) is compared on two different seeds."""
    spec = load_spec("arch-compare").at_preset("tiny")
    archs, seeds = spec.axes[0].values, spec.sae.seeds
    rows = rows_of("arch-compare", studies_out)
    recovery = [r for r in rows if r["analysis"] == "recovery" and r["metric"] == "mcc"]
    assert sorted((json.loads(r["condition_json"])["sae.arch"], r["seed_a"]) for r in recovery) == \
        sorted((a, s) for a in archs for s in seeds)
    assert all(0 < r["value"] <= 1 for r in recovery)
    pairs = [r for r in rows if r["analysis"] == "sae_pairs" and r["metric"] == "svcca" and r["null_kind"] == "repair"]
    cells = defaultdict(list)
    for r in pairs:
        cells[tuple(json.loads(r["condition_json"])["sae.arch"])].append((r["seed_a"], r["seed_b"]))
    assert set(cells) == {(a, b) for i, a in enumerate(archs) for b in archs[i:]}
    assert all(len(v) == len(seeds) and all(s != t for s, t in v) for v in cells.values())
    assert all(1 / (spec.compare.n_perm + 1) <= r["p_value"] <= 1 for r in pairs)
    coverage = {r["metric"] for r in rows if r["analysis"] == "sae_pairs" and r["pairing"] == ""}
    assert {"architecture_agreement", "complementary_coverage", "ensemble_gain", "decoder_mcc", "gt_mcc"} <= coverage


@pytest.mark.slow
def test_l0_sweep_on_tiny(studies_out):
    """Task 5.1: TopK reaches every target L0 exactly, and recall rises with L0 (each latent fires
    more often, so it misses fewer of its feature's firings)."""
    rows = rows_of("l0-sweep", studies_out)
    value = {(json.loads(r["condition_json"])["sae.arch"], json.loads(r["condition_json"])["sae.l0"], r["metric"]):
             r["value"] for r in rows}
    for l0 in (2, 4, 16):
        assert value["topk", l0, "l0"] == pytest.approx(l0)
        for metric in ("f0_5", "f1", "f2", "precision", "recall", "explained_variance", "rho_mm"):
            assert ("topk", l0, metric) in value and ("jumprelu", l0, metric) in value
    assert value["topk", 16, "recall"] > value["topk", 2, "recall"]


@pytest.mark.slow
def test_superposition_spectrum_on_tiny(studies_out):
    """Task 3.1: every (world, architecture, seed) SAE has a recovery row with its member's rho_mm,
    rho_mm falls as the hidden dimension grows, and the study finding is computed from the rows."""
    from featgeom.experiments.findings import run_findings

    rows = rows_of("superposition-spectrum", studies_out)
    rho = {json.loads(r["condition_json"])["world.hidden_dim"]: r["value"] for r in rows if r["metric"] == "rho_mm"}
    assert sorted(rho) == [16, 32, 48] and rho[16] > rho[32] > rho[48]
    mcc = [r for r in rows if r["metric"] == "mcc"]
    assert len(mcc) == 3 * 2 * 2
    chance = [r["value"] for r in rows if r["metric"] == "mcc_chance"]
    assert len(chance) == len(mcc) and all(0 < c < 1 for c in chance)
    (finding,) = run_findings(["superposition_cost"], rows)
    assert set(finding.numbers["per_0.05_rho_mm"]) == {"topk", "jumprelu"}
    assert "Study findings" in (studies_out / "report.html").read_text()


@pytest.mark.slow
def test_decomposition_ambiguity_on_tiny(studies_out):
    """Task 9.1: three seeds per world, every pair of seeds compared, diversity against rho_mm."""
    from featgeom.experiments.findings import run_findings

    rows = rows_of("decomposition-ambiguity", studies_out)
    pairs = {(json.loads(r["condition_json"])["world.hidden_dim"], r["seed_a"], r["seed_b"])
             for r in rows if r["metric"] == "decoder_mcc"}
    assert pairs == {(d, a, b) for d in (16, 32, 64) for a, b in ((0, 1), (0, 2), (1, 2))}
    (finding,) = run_findings(["decomposition_ambiguity"], rows)
    assert len(finding.numbers["diversity"]) == 3 and len(finding.numbers["between_seed_mcc"]) == 3


@pytest.mark.slow
def test_feature_coverage_on_tiny(studies_out):
    """Tasks 6.2 / 6.5: ten rarity deciles and every depth per SAE; overlap + unique = union per pair."""
    from featgeom.experiments.findings import run_findings

    rows = rows_of("feature-coverage", studies_out)
    deciles = {r["metric"] for r in rows if r["metric"].startswith("coverage_rarity_d")}
    assert deciles == {f"coverage_rarity_d{i}" for i in range(1, 11)}
    assert {"coverage_depth_0", "coverage_depth_1", "coverage_depth_2"} <= {r["metric"] for r in rows}
    pairs = defaultdict(dict)
    for r in rows:
        if r["analysis"] == "coverage_pairs":
            pairs[r["condition_json"], r["seed_a"], r["seed_b"]][r["metric"]] = r["value"]
    assert len(pairs) == 6 * 2
    for v in pairs.values():
        assert v["overlap"] + v["unique_a"] + v["unique_b"] == pytest.approx(v["union"])
    (finding,) = run_findings(["rare_feature_capture"], rows)
    assert set(finding.numbers) == {"topk", "jumprelu", "matching_pursuit"}


@pytest.mark.slow
def test_basis_dependence_on_tiny(studies_out):
    """Task 5.2: rotating an SAE with its data keeps its latents and every similarity to the
    unrotated SAE at 1, while precision and recall in the member's basis fall with the angle."""
    rows = rows_of("basis-dependence", studies_out)
    value = {(json.loads(r["condition_json"])["compare.rotation"], r["pairing"], r["metric"]): r["value"]
             for r in rows if r["null_kind"] in ("", "repair")}
    for angle in (0, 30, 90):
        assert value[angle, "", "max_latent_change"] < 1e-4
        for metric in ("svcca", "rsa", "cka", "procrustes"):
            assert value[angle, "mutual", metric] == pytest.approx(1.0, abs=1e-4), (angle, metric)
    assert value[90, "", "precision"] < value[30, "", "precision"] < value[0, "", "precision"]
    assert value[90, "", "recall"] < value[0, "", "recall"]
