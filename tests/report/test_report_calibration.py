"""The null-calibration part of the report: false-positive rates, intervals and findings from the data."""

import numpy as np
import pytest

from featgeom.report.calibration import (
    binomial_interval,
    calibration_findings,
    calibration_rows,
    calibration_section,
    p_values,
)


def _rows(p_by_null: dict[str, list[float]], value: float = 0.0) -> list[dict]:
    rows = [{"swept_value": value, "pairing": "", "metric": "shared_fraction", "value": value, "p_value": None,
             "null_kind": ""}]
    for null, ps in p_by_null.items():
        rows += [{"swept_value": value, "pairing": "mutual", "metric": "svcca", "value": 0.5, "p_value": p,
                  "null_kind": null} for p in ps]
    return rows


def test_false_positive_rate_and_exact_interval_come_from_the_p_values():
    ps = list(np.linspace(0.005, 1, 200))  # 10 of 200 at or below 0.05
    (row,) = calibration_rows(p_values(_rows({"repair": ps})), 0.0)
    assert row[:5] == ["repair", "mutual", "svcca", 200, pytest.approx(0.05)]
    lo, hi = binomial_interval(10, 200)
    assert row[5] == f"[{lo:.3f}, {hi:.3f}]" and lo < 0.05 < hi and row[6] == "yes"
    assert (lo, hi) == pytest.approx((0.0243, 0.0900), abs=5e-4)  # Clopper-Pearson, binom(200, 0.05)


def test_findings_name_a_miscalibrated_null():
    rows = calibration_rows(p_values(_rows({"repair": [0.5] * 95 + [0.01] * 5, "shuffle": [0.01] * 90 + [0.5] * 10})), 0.0)
    text = "\n".join(calibration_findings(rows))
    assert "re-pairing null" in text and "for 1 of 1" in text
    assert "shuffled pairing (the paper's Test 1)" in text and "for 0 of 1" in text and "mutual svcca 0.900" in text


def test_no_section_without_independent_members(tmp_path):
    rows = _rows({"repair": [0.01, 0.5]}, value=1.0)
    rows[0]["value"] = 1.0  # shared_fraction 1: nothing holds the null hypothesis
    assert calibration_section(tmp_path, "x", rows, "shared fraction") == ""
    page = calibration_section(tmp_path, "x", _rows({"repair": [0.01, 0.5]}), "shared fraction")
    assert "Null calibration and power" in page and (tmp_path / "x-null-qq.png").exists()
