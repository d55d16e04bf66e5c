"""The null-calibration part of the report: false-positive rates, intervals and findings from the data,
the independent-members condition found by its condition_json."""

import html
import json

import numpy as np
import pytest

from featgeom.report.calibration import (
    binomial_interval,
    calibration_findings,
    calibration_rows,
    calibration_section,
    independent_conditions,
    p_values,
    power_positions,
)
from featgeom.report.experiment import write_experiment_report
from featgeom.store.results import ResultsDB

AXIS = "variant.feature_overlap_ratio"


def _cj(value: float) -> str:
    return json.dumps({AXIS: value}, sort_keys=True)


def _rows(p_by_null: dict[str, list[float]], value: float = 0.0) -> list[dict]:
    """One condition (overlap ``value``): its shared_fraction row and a svcca row per p-value."""
    base = {"condition_json": _cj(value), "condition": f"feature_overlap_ratio={value:g}"}
    rows = [{**base, "pairing": "", "metric": "shared_fraction", "value": value, "p_value": None, "null_kind": ""}]
    for null, ps in p_by_null.items():
        rows += [{**base, "pairing": "mutual", "metric": "svcca", "value": 0.5, "p_value": p, "null_kind": null}
                 for p in ps]
    return rows


def test_false_positive_rate_and_exact_interval_come_from_the_p_values():
    ps = list(np.linspace(0.005, 1, 200))  # 10 of 200 at or below 0.05
    (row,) = calibration_rows(p_values(_rows({"repair": ps})), _cj(0.0))
    assert row[:5] == ["repair", "mutual", "svcca", 200, pytest.approx(0.05)]
    lo, hi = binomial_interval(10, 200)
    assert row[5] == f"[{lo:.3f}, {hi:.3f}]" and lo < 0.05 < hi and row[6] == "yes"
    assert (lo, hi) == pytest.approx((0.0243, 0.0900), abs=5e-4)  # Clopper-Pearson, binom(200, 0.05)


def test_findings_name_a_miscalibrated_null():
    rows = calibration_rows(p_values(_rows({"repair": [0.5] * 95 + [0.01] * 5, "shuffle": [0.01] * 90 + [0.5] * 10})),
                            _cj(0.0))
    text = "\n".join(calibration_findings(rows))
    assert "re-pairing null" in text and "for 1 of 1" in text
    assert "shuffled pairing (the paper's Test 1)" in text and "for 0 of 1" in text and "mutual svcca 0.900" in text


def test_the_independent_condition_is_the_one_with_shared_fraction_zero():
    rows = _rows({"repair": [0.5]}, value=1.0) + _rows({"repair": [0.2]}, value=0.0)
    assert independent_conditions(rows) == [_cj(0.0)]
    assert power_positions([_cj(0.0), _cj(1.0)]) == ([0.0, 1.0], None)  # one numeric axis: its values
    two = [json.dumps({"sae.arch": a, AXIS: 0.0}) for a in ("topk", "relu")]
    assert power_positions(two) == ([0.0, 1.0], two)  # a categorical axis: one tick per condition


def test_no_section_without_independent_members(tmp_path):
    rows = _rows({"repair": [0.01, 0.5]}, value=1.0)  # shared_fraction 1: nothing holds the null hypothesis
    assert calibration_section(tmp_path, "x", rows, "shared fraction") == ""
    page = calibration_section(tmp_path, "x", _rows({"repair": [0.01, 0.5]}), "shared fraction")
    assert "Null calibration and power" in page and "condition feature_overlap_ratio=0" in page
    assert (tmp_path / "x-null-qq.png").exists() and (tmp_path / "x-null-power.svg").exists()


def test_report_calibrates_the_nulls_on_independent_members(tmp_path):
    """A null-validity-like run: 100 independent replicates at overlap 0 (p uniform: 5 of 100 <= 0.05)
    and 100 at overlap 1 (all p small)."""
    db = ResultsDB(tmp_path / "results.sqlite")
    config = {"axes": [{"axis": AXIS, "values": [0.0, 1.0]}], "analyses": ["cross_member"],
              "compare": {"nulls": ["repair"], "n_perm": 99}}
    db.register_run("nv", "null-validity", "tiny", config, {"featgeom": "t", "sae_lens": "t"})
    rows = []
    for value in (0.0, 1.0):
        cond = {AXIS: value}
        for rep in range(100):
            p = (rep + 1) / 100 if value == 0.0 else 0.01
            common = {"experiment": "null-validity", "config_hash": "nv", "analysis": "cross_member",
                      "condition": f"feature_overlap_ratio={value:g}", "condition_json": json.dumps(cond),
                      "member_a": "base", "member_b": f"overlap{value:g}", "seed_a": 0, "seed_b": 1,
                      "replicate": rep, "featgeom_version": "t", "sae_lens_version": "t"}
            rows += [{**common, "pairing": "mutual", "metric": "svcca", "value": 0.2 + 0.5 * value, "p_value": p,
                      "null_mean": 0.2, "null_std": 0.05, "null_kind": "repair"},
                     {**common, "pairing": "", "metric": "shared_fraction", "value": value, "p_value": None,
                      "null_mean": None, "null_std": None}]
    db.record_job("nv", "all", "compare", 1.0, {}, rows)
    page = html.unescape(write_experiment_report(tmp_path).read_text())
    assert "Null calibration and power" in page and "(condition feature_overlap_ratio=0)" in page
    assert ("re-pairing null (B's samples permuted, pairing recomputed): false-positive rate at α = 0.05 within "
            "[0.03, 0.07] for 1 of 1 (pairing, metric) cells over 100 independent comparisons each") in page
    for kind in ("null-qq", "null-power"):
        assert (tmp_path / f"null-validity-tiny-cross_member-{kind}.png").stat().st_size > 1000
    assert page.count('src="data:image/png;base64,') == 2 + 2  # similarity and members lines + QQ + power
