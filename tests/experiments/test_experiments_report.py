"""The experiment report: figures picked from the grid axes, findings computed from the data, and a
real browser render. Result databases are built by hand (rows of the results schema), so each case
knows its numbers."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from featgeom.report.experiment import (
    FIGURES,
    FLAT,
    Axis,
    Table,
    findings,
    pair_matrix,
    pareto_objectives,
    varying_axes,
    write_experiment_report,
)
from featgeom.store.results import DEFAULTS, RESULT_COLUMNS, ResultsDB

VERSIONS = {"featgeom": "0.0.test", "sae_lens": "6.test", "numpy": "2.test"}
SIMILARITY_TESTED = ("svcca", "cka")
GT = ("gt_mcc", "empirical_mcc", "universality_gap")
ARCHS = ("standard", "topk", "batchtopk", "matryoshka_batchtopk", "jumprelu", "gated", "matching_pursuit")


def _label(condition: dict) -> str:
    def shown(v):
        return " vs ".join(shown(x) for x in v) if isinstance(v, list) else (f"{v:g}" if isinstance(v, float) else str(v))
    return ", ".join(f"{k.rsplit('.', 1)[-1]}={shown(v)}" for k, v in condition.items())


def _row(analysis: str, condition: dict, metric: str, value: float | None, *, pairing: str = "", seed_a: int = 0,
         seed_b: int | None = None, member_a: str = "base", member_b: str | None = None, replicate: int = 0,
         p: float | None = None, null_mean: float | None = None, null_std: float | None = None,
         null_kind: str = "") -> dict:
    """A results row of the schema (every RESULT_COLUMNS key but those with DEFAULTS)."""
    row = {"experiment": "exp", "config_hash": "h", "analysis": analysis, "condition": _label(condition),
           "condition_json": json.dumps(condition, sort_keys=True), "member_a": member_a,
           "member_b": member_a if member_b is None else member_b, "seed_a": seed_a,
           "seed_b": seed_a if seed_b is None else seed_b, "replicate": replicate, "pairing": pairing,
           "metric": metric, "value": value, "p_value": p, "null_mean": null_mean, "null_std": null_std,
           "null_kind": null_kind, "featgeom_version": VERSIONS["featgeom"], "sae_lens_version": VERSIONS["sae_lens"]}
    assert all(c in row or c in DEFAULTS for c in RESULT_COLUMNS)
    return row


def cross_rows(axis: str, metric_by_value: dict[str, dict[float, list[float]]], p: float = 0.01,
               modes: tuple[str, ...] = ("mutual",)) -> list[dict]:
    """cross_member rows over one axis: base vs a variant per value, one row per seed (similarity
    metrics in every mode, tested against a repair null; the rest pairing '' or per mode)."""
    rows = []
    for metric, by_value in metric_by_value.items():
        for value, seeds in by_value.items():
            for seed, v in enumerate(seeds):
                tested = metric in SIMILARITY_TESTED
                per_mode = tested or metric in ("correspondence_accuracy", "n_pairs", "mean_corr")
                for mode in modes if per_mode else ("",):
                    rows.append(_row("cross_member", {axis: value}, metric, v, pairing=mode, seed_a=seed,
                                     member_b=f"v{value:g}", p=p if tested else None,
                                     null_mean=0.1 if tested else None, null_std=0.01 if tested else None,
                                     null_kind="repair" if tested else ""))
    return rows


def make_db(out: Path, rows: list[dict], axes: list[dict], analyses: list, name: str = "exp",
            config_hash: str = "c0ffee12", **config) -> Path:
    """OUT/results.sqlite with one run (config: the axes and analyses given) holding ``rows``."""
    db = ResultsDB(out / "results.sqlite")
    full = {"description": f"hand-built {name}", "axes": axes, "analyses": analyses,
            "compare": {"nulls": ["repair"], "n_perm": 99, "samples": 2000}, "sae": {"seeds": [0, 1]}, **config}
    db.register_run(config_hash, name, "tiny", full, VERSIONS)
    if rows:
        db.record_job(config_hash, "all", "compare", 1.0, {},
                      [{**r, "config_hash": config_hash, "experiment": name} for r in rows])
    return out


def images(page: str) -> int:
    return page.count('src="data:image/png;base64,')


def _classic_table(rows: list[dict], axis: str, values: tuple) -> Table:
    return Table(rows, "repair", [Axis(axis, values)])


# --- findings over one numeric axis (the classic sweep) -------------------------------------------


def test_findings_classify_flat_and_falling_metrics_from_the_numbers():
    axis = "variant.basis_rotation_angle"
    rows = cross_rows(axis, {
        "svcca": {0.0: [0.95, 0.97], 45.0: [0.96, 0.96], 90.0: [0.95, 0.96]},
        "cka": {0.0: [0.9, 0.9], 45.0: [0.7, 0.7], 90.0: [0.5, 0.5]},
        "correspondence_accuracy": {0.0: [1.0], 45.0: [1.0], 90.0: [1.0]},
        "gt_mcc": {0.0: [1.0], 45.0: [1.0], 90.0: [1.0]},
        "empirical_mcc": {0.0: [0.8], 45.0: [0.8], 90.0: [0.8]},
        "universality_gap": {0.0: [0.2], 45.0: [0.2], 90.0: [0.2]},
    })
    (found,) = varying_axes({"axes": [{"axis": axis, "values": [0.0, 45.0, 90.0]}]}, rows)
    assert found.name == axis and found.values == (0.0, 45.0, 90.0) and found.numeric
    assert found.title == "rotation angle (degrees)"
    text = "\n".join(findings(Table(rows, "repair", [found]), found))
    assert ("On identical members (basis_rotation_angle = 0; SAEs of equal seeds), mutual pairing gives "
            "svcca 0.960, cka 0.900") in text
    flat_line = next(s for s in text.splitlines() if s.startswith("Flat across"))
    assert "svcca 0.960 → 0.955" in flat_line and "cka" not in flat_line
    assert ("cka (mutual pairing) falls from 0.900 to 0.500 (-44%) as basis_rotation_angle goes 0 → 90 "
            "(Spearman ρ = -1.00)") in text
    assert "GT-MCC is constant (1.000)" in text
    assert 0.4 > FLAT  # the cka change is well outside the flat tolerance


def test_findings_order_a_descending_grid_axis_ascending():
    axis = "variant.feature_overlap_ratio"  # quickstart's grid lists 1.0, 0.85, 0.7
    rows = cross_rows(axis, {"cka": {1.0: [0.9], 0.85: [0.7], 0.7: [0.5]}})
    (found,) = varying_axes({"axes": [{"axis": axis, "values": [1.0, 0.85, 0.7]}]}, rows)
    text = "\n".join(findings(Table(rows, "repair", [found]), found))
    assert "cka (mutual pairing) rises from 0.500 to 0.900 (+80%) as feature_overlap_ratio goes 0.7 → 1" in text
    assert "On identical members (feature_overlap_ratio = 1; SAEs of equal seeds), mutual pairing gives cka 0.900" in text


def test_findings_call_a_non_monotone_metric_noisy_not_a_trend():
    axis = "variant.basis_rotation_angle"
    rows = cross_rows(axis, {"svcca": {0.0: [0.1, 0.2], 30.0: [0.7, 0.6], 60.0: [0.2, 0.1], 90.0: [0.5, 0.3]}})
    text = "\n".join(findings(_classic_table(rows, axis, (0.0, 30.0, 60.0, 90.0)), Axis(axis, (0.0, 30.0, 60.0, 90.0))))
    assert "svcca (mutual pairing) varies between 0.150 and 0.650 across conditions with no monotone trend" in text
    assert "rises" not in text and "Flat" not in text


def test_findings_say_where_a_metric_is_not_above_its_null():
    axis = "variant.feature_overlap_ratio"
    rows = cross_rows(axis, {"svcca": {0.5: [0.2], 1.0: [0.9]}})
    rows[0]["p_value"] = 0.4
    text = "\n".join(findings(_classic_table(rows, axis, (0.5, 1.0)), Axis(axis, (0.5, 1.0))))
    assert "svcca: above its repair null (p < 0.05 for every comparison) except at feature_overlap_ratio=0.5" in text
    for r in rows:
        r["p_value"] = 0.05  # the smallest p-value 19 permutations can give
    text = "\n".join(findings(_classic_table(rows, axis, (0.5, 1.0)), Axis(axis, (0.5, 1.0))))
    assert "svcca: above its repair null (p < 0.05 for every comparison) at no condition (smallest p-value 0.05)" in text


def test_table_keeps_only_the_primary_null():
    axis = "variant.feature_overlap_ratio"
    rows = cross_rows(axis, {"svcca": {0.5: [0.2], 1.0: [0.9]}})
    shuffled = [{**r, "null_kind": "shuffle", "p_value": 0.001} for r in rows]
    table = _classic_table(rows + shuffled, axis, (0.5, 1.0))
    assert table.series("mutual", "svcca").shape == (2, 1)  # one comparison per condition, not two
    assert list(table.series("mutual", "svcca", "p_value")[:, 0]) == [0.01, 0.01]
    other = Table(rows + shuffled, "shuffle", [Axis(axis, (0.5, 1.0))])
    assert list(other.series("mutual", "svcca", "p_value")[:, 0]) == [0.001, 0.001]


def test_findings_report_the_achieved_superposition():
    axis = "variant.superposition_delta"
    rows = cross_rows(axis, {"svcca": {0.0: [0.9], 0.05: [0.9], 0.1: [0.9]}})
    for value, rho in ((0.0, 0.25), (0.05, 0.3), (0.1, 0.349)):
        for metric, v in (("rho_mm_a", 0.25), ("rho_mm_b", rho)):
            rows.append(_row("cross_member", {axis: value}, metric, v, member_b=f"v{value:g}"))
    text = "\n".join(findings(_classic_table(rows, axis, (0.0, 0.05, 0.1)), Axis(axis, (0.0, 0.05, 0.1))))
    assert "the variant's rho_mm goes 0.250 → 0.349 (base 0.250)" in text


# --- whole reports from hand-built databases -----------------------------------------------------


def _classic_rows(axis: str, values: list[float]) -> list[dict]:
    """Every metric a cross_member comparison stores, 2 seeds, 2 modes; cka planted rising with the axis."""
    per_value = {}
    for i, v in enumerate(values):
        per_value[v] = {"svcca": [0.9, 0.92], "cka": [0.3 + 0.2 * i, 0.32 + 0.2 * i],
                        "correspondence_accuracy": [0.5 + 0.1 * i] * 2, "n_pairs": [100.0, 104.0],
                        "mean_corr": [0.6, 0.62], "gt_mcc": [0.4 + 0.2 * i] * 2, "empirical_mcc": [0.35 + 0.2 * i] * 2,
                        "universality_gap": [0.05] * 2, "mcc_a": [0.8] * 2, "mcc_b": [0.79] * 2, "f1_a": [0.7] * 2,
                        "f1_b": [0.71] * 2, "dead_rate_a": [0.0] * 2, "dead_rate_b": [0.01] * 2,
                        "rho_mm_a": [0.25] * 2, "rho_mm_b": [0.25] * 2, "shared_fraction": [v] * 2}
    by_metric = {m: {v: per_value[v][m] for v in values} for m in per_value[values[0]]}
    return cross_rows(axis, by_metric, modes=("many_to_one", "mutual"))


def test_one_numeric_axis_cross_member_report_has_the_classic_figures_and_findings(tmp_path):
    axis = "variant.feature_overlap_ratio"
    rows = _classic_rows(axis, [0.7, 0.85, 1.0])
    out = make_db(tmp_path, rows, [{"axis": axis, "values": [1.0, 0.85, 0.7]}], ["cross_member"],
                  name="quickstart", note="a planted note")
    page = write_experiment_report(out).read_text()
    assert images(page) == len(FIGURES) == 4
    for kind in FIGURES:
        assert (out / f"quickstart-tiny-cross_member-{kind}.png").stat().st_size > 1000
        assert (out / f"quickstart-tiny-cross_member-{kind}.svg").read_text().lstrip().startswith("<?xml")
    svcca = np.mean([r["value"] for r in rows if r["condition_json"] == json.dumps({axis: 1.0})
                     and r["pairing"] == "mutual" and r["metric"] == "svcca"])
    assert f"svcca {svcca:.3f}" in page  # the identical-members finding quotes the stored numbers
    assert "cka (mutual pairing) rises from 0.310 to 0.710 (+129%) as feature_overlap_ratio goes 0.7 → 1" in page
    assert "shared fraction of features" in page and "a planted note" in page
    assert "feature_overlap_ratio=0.85" in page  # the values table's columns are the conditions' labels
    assert "2 independent SAE pair(s) (no SAE in two) per condition" in page
    assert "Null calibration" not in page  # no independent members here
    assert "c0ffee12" in page and "sae_lens 6.test" in page
    assert "http://" not in page and "https://" not in page  # self-contained


def test_one_categorical_axis_recovery_gets_grouped_bars(tmp_path):
    axis = "sae.arch"
    mcc = dict(zip(ARCHS, (0.50, 0.80, 0.78, 0.85, 0.70, 0.60, 0.40)))
    rows = [_row("recovery", {axis: arch}, metric, value + 0.01 * seed, seed_a=seed, member_a="base")
            for arch in ARCHS for seed in (0, 1)
            for metric, value in (("mcc", mcc[arch]), ("f1", mcc[arch] - 0.1), ("explained_variance", 0.9),
                                  ("l0", 25.0), ("dead_fraction", 0.02))]
    out = make_db(tmp_path, rows, [{"axis": axis, "values": list(ARCHS)}], ["recovery"])
    page = write_experiment_report(out).read_text()
    assert (out / "exp-tiny-recovery-recovery.png").stat().st_size > 1000
    assert (out / "exp-tiny-recovery-recovery.svg").exists()
    assert images(page) == 2  # the bars and the Pareto scatter (recovery declares its objectives)
    assert "mcc: highest 0.855 at arch=matryoshka_batchtopk, lowest 0.405 at arch=matching_pursuit" in page
    assert "over 7 conditions; mean std over seeds 0.005" in page
    assert "2 SAE(s) per condition" in page
    # every condition is on the front's x (equal explained variance), so the best MCC dominates all
    assert "1 of 7 conditions are non-dominated: arch=matryoshka_batchtopk" in page
    assert "arch=matryoshka_batchtopk is best on both objectives" in page  # the tie in explained variance is broken by mcc
    assert "About equal at every condition (range &lt; 0.05, relative for counts and errors): explained_variance" in page


def test_two_numeric_axes_recovery_gets_heatmaps(tmp_path):
    axes = [{"axis": "world.hidden_dim", "values": [32, 64]}, {"axis": "sae.l0", "values": [8, 16, 32]}]
    rows = []
    for dim in (32, 64):
        for l0 in (8, 16, 32):
            for seed in (0, 1):
                cond = {"sae.l0": l0, "world.hidden_dim": dim}
                rows += [_row("recovery", cond, "mcc", dim / 100 + l0 / 1000, seed_a=seed),
                         _row("recovery", cond, "explained_variance", 0.5 + l0 / 100, seed_a=seed)]
    out = make_db(tmp_path, rows, axes, [{"name": "recovery"}])
    page = write_experiment_report(out).read_text()
    assert images(page) == 2  # heatmaps + Pareto
    assert (out / "exp-tiny-recovery-heatmaps.png").stat().st_size > 1000
    assert "by hidden dimension (rows) and SAE target L0 (columns)" in page
    assert "mcc: highest 0.672 at hidden_dim=64, l0=32, lowest 0.328 at hidden_dim=32, l0=8" in page
    from featgeom.report.experiment import grid_means

    found = varying_axes({"axes": axes}, rows)
    assert [a.name for a in found] == ["world.hidden_dim", "sae.l0"]
    table = Table(rows, "repair", found)
    grid = grid_means(table, ("", "mcc"), found[0], found[1], table.conditions)
    assert grid == pytest.approx(np.array([[0.328, 0.336, 0.352], [0.648, 0.656, 0.672]]))


def _pair_rows() -> list[dict]:
    """sae_pairs over sae.arch (topk, relu, jumprelu): each unordered pair twice (seeds 0-0 and 1-1,
    once listed in the other order), and a seed-vs-seed pair per arch (the floor)."""
    value = {("relu", "topk"): 0.5, ("jumprelu", "topk"): 0.7, ("jumprelu", "relu"): 0.6}
    floor = {"topk": 0.9, "relu": 0.8, "jumprelu": 0.85}
    rows = []
    for (a, b), v in value.items():
        for seed, order in ((0, [a, b]), (1, [b, a])):
            rows += [_row("sae_pairs", {"sae.arch": order}, metric, v + 0.01 * seed, pairing="mutual", seed_a=seed,
                          p=0.01, null_mean=0.1, null_std=0.02, null_kind="repair") for metric in ("svcca", "cka")]
    for arch, v in floor.items():
        rows += [_row("sae_pairs", {"sae.arch": arch}, metric, v, pairing="mutual", seed_a=0, seed_b=1, p=0.01,
                      null_mean=0.1, null_std=0.02, null_kind="repair") for metric in ("svcca", "cka")]
    return rows


def test_sae_pairs_arch_matrix_is_symmetric_with_the_seed_floor_on_its_diagonal(tmp_path):
    rows = _pair_rows()
    config = {"axes": [{"axis": "sae.arch", "values": ["topk", "relu", "jumprelu"]}]}
    from featgeom.report.experiment import pair_axis

    axis = pair_axis(config, rows, "sae.arch")
    assert axis.values == ("topk", "relu", "jumprelu")
    table = Table(rows, "repair", varying_axes(config, rows))
    matrix = pair_matrix(table, axis, "mutual", "svcca", table.conditions)
    assert matrix == pytest.approx(np.array([[0.9, 0.505, 0.705], [0.505, 0.8, 0.605], [0.705, 0.605, 0.85]]))
    out = make_db(tmp_path, rows, config["axes"], [{"name": "sae_pairs", "across": "sae.arch"}])
    page = write_experiment_report(out).read_text()
    assert images(page) == 1 and (out / "exp-tiny-sae_pairs-matrix-arch.png").stat().st_size > 1000
    assert "the diagonal = SAEs of equal settings and different seeds, the seed-vs-seed floor" in page
    assert ("svcca (mutual pairing) by arch: seed-vs-seed floor topk 0.900, relu 0.800, jumprelu 0.850; between "
            "different arch values from 0.505 (topk vs relu) to 0.705 (topk vs jumprelu); 3 of 3 pairs below the "
            "lowest floor 0.800") in page
    assert "arch=topk vs relu" in page  # the pair conditions' labels head the values table
    from featgeom.report.experiment import pair_matrix_findings

    unpaired = pair_matrix_findings(axis, {"overlap": matrix}, "", "")  # coverage_pairs pairs no latents
    assert unpaired[0].startswith("overlap by arch: seed-vs-seed floor topk 0.900")


def test_pair_matrix_reads_the_runners_diagonal_lists_and_skips_an_sae_against_itself():
    rows = [_row("sae_pairs", {"sae.arch": pair}, "svcca", v, pairing="mutual", seed_a=a, seed_b=b)
            for pair, a, b, v in ((["topk", "topk"], 0, 1, 0.9), (["topk", "relu"], 0, 1, 0.5),
                                  (["relu", "relu"], 0, 0, 1.0))]
    config = {"axes": [{"axis": "sae.arch", "values": ["topk", "relu"]}]}
    from featgeom.report.experiment import pair_axis

    table = Table(rows, "repair", varying_axes(config, rows))
    matrix = pair_matrix(table, pair_axis(config, rows, "sae.arch"), "mutual", "svcca", table.conditions)
    assert matrix[0] == pytest.approx([0.9, 0.5]) and matrix[1, 0] == 0.5 and np.isnan(matrix[1, 1])


def test_recovery_of_the_base_stored_without_the_variant_axis_gets_its_own_part(tmp_path):
    axis = "variant.feature_overlap_ratio"
    rows = [_row("recovery", {axis: v}, m, x, seed_a=seed, member_a=f"overlap{v:g}")
            for v in (0.7, 0.85, 1.0) for seed in (0, 1)
            for m, x in (("mcc", v - 0.1 + 0.01 * seed), ("explained_variance", 0.9))]
    rows += [_row("recovery", {}, m, x, seed_a=seed) for seed in (0, 1) for m, x in (("mcc", 0.95), ("explained_variance", 0.9))]
    out = make_db(tmp_path, rows, [{"axis": axis, "values": [1.0, 0.85, 0.7]}], ["cross_member", "recovery"])
    page = html.unescape(write_experiment_report(out).read_text())
    assert "mcc rises from 0.605 to 0.905 (+50%) as feature_overlap_ratio goes 0.7 → 1" in page
    assert "Analysis recovery, conditions without feature_overlap_ratio (e.g. the base member)" in page
    assert "At the single condition (mean over seeds and replicates): mcc 0.950, explained_variance 0.900" in page
    assert images(page) == 2 and (out / "exp-tiny-recovery-recovery.png").exists()  # lines + Pareto


def test_pareto_front_and_specialists_are_named_from_the_data(tmp_path):
    # (explained variance, mcc): A, B, C on the front; D is dominated by B, E by C
    points = {"A": (0.95, 0.50), "B": (0.90, 0.70), "C": (0.80, 0.90), "D": (0.85, 0.60), "E": (0.70, 0.80)}
    rows = [_row("recovery", {"world.name": name}, metric, v, seed_a=seed)
            for name, (ev, mcc) in points.items() for seed in (0, 1)
            for metric, v in (("explained_variance", ev), ("mcc", mcc))]
    config = {"axes": [{"axis": "world.name", "values": list(points)}]}
    assert pareto_objectives({**config, "analyses": ["recovery"]}, "recovery", Table(rows)) == \
        ("explained_variance", "mcc")
    out = make_db(tmp_path, rows, config["axes"], ["recovery"])
    page = write_experiment_report(out).read_text()
    assert (out / "exp-tiny-recovery-pareto.png").stat().st_size > 1000
    assert ("3 of 5 conditions are non-dominated: name=C (explained_variance 0.800, mcc 0.900), name=B "
            "(explained_variance 0.900, mcc 0.700), name=A (explained_variance 0.950, mcc 0.500)") in page
    assert "The reconstruction specialist is name=A (explained_variance 0.950, mcc 0.500)" in page
    assert "the interpretability specialist is name=C (mcc 0.900, explained_variance 0.800)" in page


def test_precision_recall_front_per_architecture_over_l0(tmp_path):
    # (recall, precision) per (arch, L0): topk's L0 25 is dominated by its L0 9; every jumprelu
    # point dominates the topk point of the same L0, so the front of both is jumprelu's alone
    points = {("topk", 4): (0.30, 0.70), ("topk", 9): (0.50, 0.60), ("topk", 25): (0.45, 0.50),
              ("jumprelu", 4): (0.35, 0.80), ("jumprelu", 9): (0.55, 0.70), ("jumprelu", 25): (0.80, 0.50)}
    rows = [_row("recovery", {"sae.arch": arch, "sae.l0": l0}, metric, v + 0.002 * (2 * seed - 1), seed_a=seed)
            for (arch, l0), (recall, precision) in points.items() for seed in (0, 1)
            for metric, v in (("recall", recall), ("precision", precision), ("mcc", 0.7), ("explained_variance", 0.9))]
    axes = [{"axis": "sae.arch", "values": ["topk", "jumprelu"]}, {"axis": "sae.l0", "values": [4, 9, 25]}]
    out = make_db(tmp_path, rows, axes, ["recovery"])
    page = write_experiment_report(out).read_text()
    assert images(page) == 3  # heatmaps, the Pareto scatter, the trade-off per architecture
    assert (out / "exp-tiny-recovery-tradeoff.png").stat().st_size > 1000
    assert ("arch=topk: 2 of 3 conditions on its precision-recall front, from l0=4 (recall 0.300, precision "
            "0.700) to l0=9 (recall 0.500, precision 0.600).") in page
    assert ("arch=jumprelu: 3 of 3 conditions on its precision-recall front, from l0=4 (recall 0.350, precision "
            "0.800) to l0=25 (recall 0.800, precision 0.500).") in page
    assert "The precision-recall front of all arch values together has 3 conditions: jumprelu 3, topk 0." in page
    from featgeom.report.experiment import tradeoff_groups

    one_axis = [r for r in rows if json.loads(r["condition_json"])["sae.l0"] == 9]
    table = Table(one_axis, "repair", varying_axes({"axes": axes}, one_axis))
    assert tradeoff_groups(table, ("recall", "precision")) is None  # only the architecture varies: no trade-off to draw


def test_pareto_falls_back_to_one_minus_normalized_mse():
    rows = [_row("recovery", {"sae.arch": a}, m, v) for a, nmse, mcc in (("topk", 0.1, 0.6), ("relu", 0.3, 0.8))
            for m, v in (("normalized_mse", nmse), ("mcc", mcc))]
    assert pareto_objectives({"analyses": ["recovery"]}, "recovery", Table(rows)) == ("1 - normalized_mse", "mcc")
    assert pareto_objectives({"analyses": ["recovery"]}, "recovery", Table(rows[1::2])) is None  # mcc only


def test_no_axes_gives_a_table_only_and_an_empty_run_still_renders(tmp_path):
    rows = [_row("cross_member", {}, "svcca", 0.7 + 0.01 * s, pairing="mutual", seed_a=s, member_b="v",
                 p=0.01, null_mean=0.1, null_std=0.01, null_kind="repair") for s in (0, 1)]
    out = make_db(tmp_path, rows, [], ["cross_member"], name="flat")
    make_db(tmp_path, [], [{"axis": "sae.l0", "values": [8, 16]}], ["recovery"], name="empty", config_hash="c0ffee13")
    page = write_experiment_report(out).read_text()
    assert images(page) == 0
    assert "At the single condition (mean over seeds and replicates): SVCCA (mutual) 0.705" in page
    assert "No grid axes (one condition)" in page and "<td>svcca</td>" in page
    assert "Experiment empty (tiny preset)" in page and "No results stored yet." in page
    assert "featgeom experiments: flat, empty" in page


def test_zipped_axes_plot_as_one(tmp_path):
    axes = [{"axis": "variant.feature_overlap_ratio", "values": [0.7, 1.0]},
            {"axis": "variant.basis_rotation_angle", "values": [0.0, 45.0]}]
    rows = [_row("cross_member", {"variant.feature_overlap_ratio": o, "variant.basis_rotation_angle": r}, "cka", v,
                 pairing="mutual", member_b=f"v{o}", p=0.01, null_mean=0.1, null_std=0.01, null_kind="repair")
            for o, r, v in ((0.7, 0.0, 0.4), (1.0, 45.0, 0.6))]
    (axis,) = varying_axes({"axes": axes, "zip": [[a["axis"] for a in axes]]}, rows)
    assert axis.name == "variant.feature_overlap_ratio" and axis.zipped == ("variant.basis_rotation_angle",)
    assert len(varying_axes({"axes": axes, "zip": []}, rows)) == 2  # the config says they are not zipped
    page = write_experiment_report(make_db(tmp_path, rows, axes, ["cross_member"],
                                           zip=[[a["axis"] for a in axes]])).read_text()
    assert images(page) == 1  # similarity lines over the first axis of the zip group
    assert "cka (mutual pairing) rises from 0.400 to 0.600" in page


# --- the real pipeline in a browser ---------------------------------------------------------------


@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium (.ci/run installs it)")
def test_report_renders_in_headless_chromium(tiny_run, tmp_path):
    report = write_experiment_report(tiny_run.out)
    n = images(report.read_text())
    assert n >= 1
    cmd = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp_path / 'profile'}",
           "--virtual-time-budget=10000", "--dump-dom", report.as_uri()]
    dom = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=True).stdout
    body = re.search(r"<body([^>]*)>", dom).group(1)
    assert f'data-figures="{n}"' in body and f'data-figures-rendered="{n}"' in body, body
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
