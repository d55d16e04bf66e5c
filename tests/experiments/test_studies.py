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


@pytest.mark.slow
def test_training_stability_on_tiny(studies_out):
    """Task 2.4: every SAE measured at each checkpoint (its snapshot, not the final SAE), every
    unordered pair of architectures compared at every checkpoint, and the finding computed."""
    from featgeom.experiments.findings import run_findings

    spec = load_spec("training-stability").at_preset("tiny")
    archs, checkpoints = spec.axis("sae.arch").values, spec.axis("sae.checkpoint").values
    rows = rows_of("training-stability", studies_out)
    mcc = {(c["sae.arch"], c["sae.checkpoint"], r["seed_a"]): r["value"] for r in rows
           if r["analysis"] == "recovery" and r["metric"] == "mcc" for c in [json.loads(r["condition_json"])]}
    assert set(mcc) == {(a, c, s) for a in archs for c in checkpoints for s in spec.sae.seeds}
    assert all(mcc[a, checkpoints[0], s] != mcc[a, 1.0, s] for a in archs for s in spec.sae.seeds)
    cells = {(tuple(c["sae.arch"]), c["sae.checkpoint"]) for r in rows if r["analysis"] == "sae_pairs"
             and r["metric"] == "decoder_mcc" for c in [json.loads(r["condition_json"])]}
    assert cells == {((a, b), c) for i, a in enumerate(archs) for b in archs[i:] for c in checkpoints}
    (finding,) = run_findings(["weak_strong_universality"], rows)
    assert finding.numbers["checkpoints"] == checkpoints and len(finding.numbers["weak"]) == len(checkpoints)
    assert isinstance(finding.numbers["held"], bool)


@pytest.mark.slow
def test_dead_latents_on_tiny(studies_out):
    """Task 6.1: DLR at every checkpoint, DLS / DLRec between consecutive checkpoints of one run for
    every revival method, and the finding per architecture and revival."""
    from featgeom.experiments.findings import run_findings

    spec = load_spec("dead-latents").at_preset("tiny")
    revivals = spec.axis("sae.revival").values
    rows = rows_of("dead-latents", studies_out)
    steps = [(json.loads(r["condition_json"]), r) for r in rows if r["analysis"] == "dead_latents"]
    assert {(c["sae.revival"], tuple(c["sae.checkpoint"])) for c, _ in steps} == {(v, (0.5, 1.0)) for v in revivals}
    for _, r in steps:
        if r["metric"] in ("dead_fraction_a", "dead_fraction_b", "dead_latent_stability", "dead_latent_recovery"):
            assert (r["value"] is None and r["note"]) or 0 <= r["value"] <= 1
    (finding,) = run_findings(["dead_latent_dynamics"], rows)
    assert set(finding.numbers) >= {f"topk/{v}" for v in revivals} and "discovery_gap" in finding.numbers


@pytest.mark.slow
def test_mp_vs_l1_on_tiny(studies_out):
    """Task 3.2: every (target rho_mm, architecture, seed) SAE has recovery and feature_splitting
    rows; the condition is the target, the rows record the hidden_dim searched for it and the
    rho_mm reached (within the search's tolerance); the finding judges every claim per world and
    the report draws the split feature's decoder vectors."""
    from featgeom.experiments.findings import run_findings
    from featgeom.world import preset
    from featgeom.world.superposition import TOLERANCE, hidden_dim_for_rho_mm

    rows = rows_of("mp-vs-l1", studies_out)
    cells = defaultdict(dict)
    for r in rows:
        cond = json.loads(r["condition_json"])
        cells[cond["world.target_rho_mm"], cond["sae.arch"], r["seed_a"]][r["analysis"], r["metric"]] = r["value"]
    assert sorted(cells) == [(t, a, 0) for t in (0.3, 0.4) for a in ("matching_pursuit", "standard")]
    for (target, _, _), m in cells.items():
        assert m["feature_splitting", "hidden_dim"] == hidden_dim_for_rho_mm(preset("tiny"), target).hidden_dim
        assert abs(m["recovery", "rho_mm"] - target) <= TOLERANCE and m["feature_splitting", "rho_mm"] == m["recovery", "rho_mm"]
        assert 0 <= m["feature_splitting", "split_fraction"] <= 1
    assert all(cells[t, "matching_pursuit", 0]["feature_splitting", "exploitation"] >= 1 for t in (0.3, 0.4))
    (finding,) = run_findings(["mp_exploitation"], rows)
    assert set(finding.numbers) == {"target_rho_mm=0.3", "target_rho_mm=0.4"}
    verdicts = {"held", "held in every seed", "not held", "not testable"}
    assert all(set(e["claims"].values()) <= verdicts for e in finding.numbers.values())
    assert (studies_out / "mp-vs-l1-tiny-feature_splitting-splitting.png").exists()
