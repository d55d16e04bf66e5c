"""The experiment report: findings computed from the data, figures, and a real browser render."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from featgeom.report.experiment import (
    FIGURES,
    FLAT,
    Table,
    findings,
    write_experiment_report,
)
from featgeom.store.results import ResultsDB


def _rows(metric_by_value: dict[str, dict[float, list[float]]], p: float = 0.01) -> list[dict]:
    rows = []
    for metric, by_value in metric_by_value.items():
        for value, seeds in by_value.items():
            for seed, v in enumerate(seeds):
                pairing = "" if metric in ("gt_mcc", "empirical_mcc", "universality_gap") else "mutual"
                tested = metric in ("svcca", "cka")
                rows.append({"swept_value": value, "seed_a": seed, "seed_b": seed, "pairing": pairing, "metric": metric, "value": v,
                             "p_value": p if tested else None, "null_mean": 0.1 if tested else None,
                             "null_std": 0.01 if tested else None, "null_kind": "repair" if tested else "",
                             "replicate": 0})
    return rows


def test_findings_classify_flat_and_falling_metrics_from_the_numbers():
    table = Table(_rows({
        "svcca": {0.0: [0.95, 0.97], 45.0: [0.96, 0.96], 90.0: [0.95, 0.96]},
        "cka": {0.0: [0.9, 0.9], 45.0: [0.7, 0.7], 90.0: [0.5, 0.5]},
        "correspondence_accuracy": {0.0: [1.0], 45.0: [1.0], 90.0: [1.0]},
        "gt_mcc": {0.0: [1.0], 45.0: [1.0], 90.0: [1.0]},
        "empirical_mcc": {0.0: [0.8], 45.0: [0.8], 90.0: [0.8]},
        "universality_gap": {0.0: [0.2], 45.0: [0.2], 90.0: [0.2]},
    }))
    text = "\n".join(findings(table, "basis_rotation_angle"))
    assert ("On identical members (basis_rotation_angle = 0; SAEs of equal seeds), mutual pairing gives "
            "svcca 0.960, cka 0.900") in text
    flat_line = next(s for s in text.splitlines() if s.startswith("Flat across"))
    assert "svcca 0.960 → 0.955" in flat_line and "cka" not in flat_line
    assert "cka (mutual pairing) falls from 0.900 to 0.500 (-44%) as basis_rotation_angle goes 0 → 90 (Spearman ρ = -1.00)" in text
    assert "GT-MCC is constant (1.000)" in text
    assert 0.4 > FLAT  # the cka change is well outside the flat tolerance


def test_findings_call_a_non_monotone_metric_noisy_not_a_trend():
    table = Table(_rows({"svcca": {0.0: [0.1, 0.2], 30.0: [0.7, 0.6], 60.0: [0.2, 0.1], 90.0: [0.5, 0.3]}}))
    text = "\n".join(findings(table, "basis_rotation_angle"))
    assert "svcca (mutual pairing) varies between 0.150 and 0.650 across conditions with no monotone trend" in text
    assert "rises" not in text and "Flat" not in text


def test_findings_say_where_a_metric_is_not_above_its_null():
    rows = _rows({"svcca": {0.5: [0.2], 1.0: [0.9]}})
    rows[0]["p_value"] = 0.4
    text = "\n".join(findings(Table(rows), "feature_overlap_ratio"))
    assert "svcca: above its repair null (p < 0.05 for every comparison) except at 0.5" in text


def test_table_keeps_only_the_primary_null():
    rows = _rows({"svcca": {0.5: [0.2], 1.0: [0.9]}})
    shuffled = [{**r, "null_kind": "shuffle", "p_value": 0.001} for r in rows]
    table = Table(rows + shuffled, "repair")
    assert table.series("mutual", "svcca").shape == (2, 1)  # one comparison per condition, not two
    assert list(table.series("mutual", "svcca", "p_value")[:, 0]) == [0.01, 0.01]
    assert list(Table(rows + shuffled, "shuffle").series("mutual", "svcca", "p_value")[:, 0]) == [0.001, 0.001]


def test_report_has_figures_tables_and_config(tiny_run):
    report = write_experiment_report(tiny_run.out)
    page = report.read_text()
    assert page.count('src="data:image/png;base64,') == len(FIGURES) == 4
    for kind in FIGURES:
        assert (tiny_run.out / f"quickstart-tiny-{kind}.png").stat().st_size > 1000
        assert (tiny_run.out / f"quickstart-tiny-{kind}.svg").read_text().lstrip().startswith("<?xml")
    svcca = next(r for r in ResultsDB(tiny_run.db).results()
                 if r["swept_value"] == 1.0 and r["pairing"] == "mutual" and r["metric"] == "svcca")
    assert f"svcca {svcca['value']:.3f}" in page  # the identical-members finding quotes the stored number
    assert tiny_run.config_hash in page and "sae_lens" in page
    assert "http://" not in page and "https://" not in page  # self-contained


@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium (.ci/run installs it)")
def test_report_renders_in_headless_chromium(tiny_run, tmp_path):
    report = write_experiment_report(tiny_run.out)
    cmd = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp_path / 'profile'}",
           "--virtual-time-budget=10000", "--dump-dom", report.as_uri()]
    dom = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=True).stdout
    body = re.search(r"<body([^>]*)>", dom).group(1)
    assert 'data-figures="4"' in body and 'data-figures-rendered="4"' in body, body
    shot = tmp_path / "shot.png"
    subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp_path / 'p2'}",
                    "--window-size=1200,2400", f"--screenshot={shot}", report.as_uri()],
                   capture_output=True, timeout=600, check=True)
    assert _ink_fraction(shot) > 0.03  # a rendered page with figures, not a blank one


def _ink_fraction(png) -> float:
    """Fraction of pixels of a screenshot that are not near-white."""
    import matplotlib.image as mpimg

    pixels = mpimg.imread(png)[..., :3]
    return float((pixels.mean(axis=2) < 0.9).mean())


def test_findings_report_the_achieved_superposition():
    rows = _rows({"svcca": {0.0: [0.9], 0.05: [0.9], 0.1: [0.9]}})
    for value, rho in ((0.0, 0.25), (0.05, 0.3), (0.1, 0.349)):
        for metric, v in (("rho_mm_a", 0.25), ("rho_mm_b", rho)):
            rows.append({"swept_value": value, "seed_a": 0, "seed_b": 0, "pairing": "", "metric": metric, "value": v,
                         "p_value": None, "null_mean": None, "null_std": None, "null_kind": "", "replicate": 0})
    text = "\n".join(findings(Table(rows), "superposition_delta"))
    assert "the variant's rho_mm goes 0.250 → 0.349 (base 0.250)" in text
