"""Study findings: planted numbers in, the plan's hypotheses judged correctly out."""

from __future__ import annotations

import json

import numpy as np
import pytest

from featgeom.errors import ConfigError
from featgeom.experiments.findings import FINDINGS, run_findings, slope_interval
from featgeom.experiments.spec import ExperimentSpec


def row(analysis: str, condition: dict, seed_a: int, metric: str, value: float, seed_b: int | None = None) -> dict:
    return {"analysis": analysis, "condition_json": json.dumps(condition, sort_keys=True), "seed_a": seed_a,
            "seed_b": seed_a if seed_b is None else seed_b, "replicate": 0, "metric": metric, "value": value}


def spectrum_rows(slope_per_rho: dict[str, float], noise: float = 0.01) -> list[dict]:
    """Recovery rows of 3 seeds x 5 worlds per architecture with MCC = 0.9 + slope * (rho - 0.1)
    + the seed's offset (-noise, 0, +noise): the least-squares slope is exactly the planted one."""
    rows = []
    for arch, slope in slope_per_rho.items():
        for d, rho in zip((384, 256, 192, 128, 64), (0.10, 0.15, 0.19, 0.25, 0.37)):
            for seed in range(3):
                cond = {"world.hidden_dim": d, "sae.arch": arch}
                rows += [row("recovery", cond, seed, "mcc", 0.9 + slope * (rho - 0.1) + noise * (seed - 1)),
                         row("recovery", cond, seed, "rho_mm", rho), row("recovery", cond, seed, "mcc_chance", 0.2)]
    return rows


def test_superposition_cost_holds_where_the_planted_cost_is_the_plans():
    (finding,) = run_findings(["superposition_cost"], spectrum_rows({"topk": -1.6, "standard": -0.4}))
    topk, standard = finding.numbers["per_0.05_rho_mm"]["topk"], finding.numbers["per_0.05_rho_mm"]["standard"]
    assert topk[1] < -0.08 < topk[2] and topk[0] == pytest.approx(-0.08)
    assert not standard[1] <= -0.08 <= standard[2]
    text = " ".join(finding.sentences)
    assert "topk: each +0.05 rho_mm changes MCC by -0.080" in text and "consistent with the plan's -0.08" in text
    assert "standard: " in text and "not consistent with the plan's -0.08" in text
    assert "standard loses least MCC" in text  # the flatter slope responds best to superposition


def test_slope_interval_by_hand():
    """y = 2x exactly: slope 2 with a zero-width interval; three points are the minimum."""
    slope, low, high = slope_interval(np.array([0.0, 1.0, 2.0]), np.array([0.0, 2.0, 4.0]))
    assert (slope, low, high) == pytest.approx((2.0, 2.0, 2.0))
    with pytest.raises(Exception, match="needs >= 3 points"):
        slope_interval(np.array([0.0, 1.0]), np.array([0.0, 1.0]))


def test_decomposition_ambiguity_reads_diversity_and_the_between_seed_mcc_at_the_lowest_rho():
    rows = []
    for d, rho, spread in ((512, 0.06, 0.001), (128, 0.25, 0.01), (64, 0.37, 0.03)):
        for seed, offset in enumerate((-1, 0, 1)):
            cond = {"world.hidden_dim": d}
            rows += [row("recovery", cond, seed, "mcc", 0.8 + spread * offset), row("recovery", cond, seed, "rho_mm", rho)]
        for a, b in ((0, 1), (0, 2), (1, 2)):
            rows += [row("sae_pairs", {"world.hidden_dim": d}, a, "decoder_mcc", 0.97 if d == 512 else 0.8, b),
                     row("sae_pairs", {"world.hidden_dim": d}, a, "rho_mm_a", rho, b)]
    (finding,) = run_findings(["decomposition_ambiguity"], rows)
    assert finding.numbers["diversity"] == pytest.approx([0.001, 0.01, 0.03])
    assert finding.numbers["spearman"] == pytest.approx(1.0)
    assert "at the lowest rho_mm reached (0.060" in " ".join(finding.sentences)
    assert "above the plan's 0.95" in " ".join(finding.sentences)


def test_a_finding_the_rows_cannot_support_says_why():
    (finding,) = run_findings(["superposition_cost"], [])
    assert finding.sentences == ["not computed: superposition_cost: no recovery rows with mcc and rho_mm"]


def test_unknown_finding_is_refused_by_the_spec():
    assert {"superposition_cost", "decomposition_ambiguity"} <= set(FINDINGS)
    with pytest.raises(ConfigError, match=r"^findings\[0\]: unknown finding 'colour'"):
        ExperimentSpec.from_dict({"name": "x", "description": "d", "analyses": ["recovery"], "findings": ["colour"]})


def test_rare_feature_capture_judges_the_rarest_decile():
    rows = []
    for arch, rare in (("topk", 0.3), ("standard", 0.7)):
        for seed in (0, 1):
            for d in range(1, 11):
                rows.append({**row("coverage", {"sae.arch": arch}, seed, f"coverage_rarity_d{d}", rare if d == 1 else 0.9)})
    (finding,) = run_findings(["rare_feature_capture"], rows)
    text = " ".join(finding.sentences)
    assert "topk: rarest decile captured 30%, most frequent 90% (below the plan's 50%)" in text
    assert "standard: rarest decile captured 70%" in text and "holds for 1 of 2 architectures" in text


def test_an_architecture_at_chance_is_named_not_fitted():
    rows = spectrum_rows({"topk": -1.6, "standard": -1.6})
    for r in rows:  # standard's MCC sits 0.01 above its random decoder's
        if r["metric"] == "mcc_chance" and '"standard"' in r["condition_json"]:
            r["value"] = 0.9 - 1.6 * 0.1
    for r in rows:
        if r["metric"] == "mcc" and '"standard"' in r["condition_json"]:
            r["value"] = 0.9 - 1.6 * 0.1 + 0.01
    (finding,) = run_findings(["superposition_cost"], rows)
    assert finding.numbers["at_chance"] == ["standard"]
    assert "standard: MCC within 0.05 of a random decoder's" in " ".join(finding.sentences)
    assert "slope_response" not in finding.numbers  # one architecture that learned: no response to compare
