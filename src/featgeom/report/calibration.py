"""The null-calibration part of an experiment report: false-positive rates, p-value QQ plots, power.

Shown for any run with comparisons of independent members (shared_fraction 0: models that
share nothing, so every null hypothesis holds). For each null, pairing mode and similarity
metric: the false-positive rate FPR = #{p <= alpha} / n over those comparisons with its exact
(Clopper-Pearson) 95% binomial interval, a QQ plot of the p-values against the uniform
distribution, and the power #{p <= alpha} / n at every condition (grouped by ``condition_json``; the
independent-members condition is the one whose 'shared_fraction' row is 0).
"""

from __future__ import annotations

import html
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from featgeom.report.html import figure_block, html_table

ALPHA = 0.05
CALIBRATED = (0.03, 0.07)  # the band a calibrated test's FPR at alpha = 0.05 must fall in
NULL_LABELS = {
    "repair": "re-pairing null (B's samples permuted, pairing recomputed)",
    "shuffle": "shuffled pairing (the paper's Test 1)",
}


def p_values(rows: list[dict[str, Any]]) -> dict[tuple[str, str, str], dict[str, np.ndarray]]:
    """(null, pairing, metric) -> condition (its condition_json) -> p-values of every comparison there."""
    out: dict[tuple[str, str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        if r["null_kind"] and r["p_value"] is not None:
            out[r["null_kind"], r["pairing"], r["metric"]][r["condition_json"]].append(r["p_value"])
    return {k: {c: np.asarray(p) for c, p in cells.items()} for k, cells in out.items()}


def independent_conditions(rows: list[dict[str, Any]]) -> list[str]:
    """Conditions (condition_json) whose comparisons are between members that share no feature
    (a 'shared_fraction' row of 0 there), in the rows' order."""
    return list(dict.fromkeys(r["condition_json"] for r in rows if r["metric"] == "shared_fraction" and r["value"] == 0))


def condition_labels(rows: list[dict[str, Any]]) -> dict[str, str]:
    """condition_json -> its label (the rows' 'condition'; the JSON itself where that is empty)."""
    labels: dict[str, str] = {}
    for r in rows:
        labels.setdefault(r["condition_json"], r["condition"] or r["condition_json"])
    return labels


def binomial_interval(k: int, n: int) -> tuple[float, float]:
    """Exact (Clopper-Pearson) 95% interval of a binomial proportion k / n."""
    from scipy.stats import binomtest

    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
    return float(ci.low), float(ci.high)


def calibration_rows(pvals: dict[tuple[str, str, str], dict[str, np.ndarray]], condition: str) -> list[list[Any]]:
    """Table rows (null, pairing, metric, n, FPR, 95% interval, within band) at ``condition`` (its condition_json)."""
    rows = []
    for (null, pairing, metric), cells in sorted(pvals.items()):
        p = cells.get(condition)
        if p is None or p.size == 0:
            continue
        k = int(np.count_nonzero(p <= ALPHA))
        lo, hi = binomial_interval(k, p.size)
        ok = CALIBRATED[0] <= k / p.size <= CALIBRATED[1]
        rows.append([null, pairing, metric, p.size, k / p.size, f"[{lo:.3f}, {hi:.3f}]", "yes" if ok else "no"])
    return rows


def calibration_findings(rows: list[list[Any]]) -> list[str]:
    """One sentence per null: how many (pairing, metric) cells are calibrated, and the worst one."""
    out = []
    for null in sorted({r[0] for r in rows}):
        mine = [r for r in rows if r[0] == null]
        ok = sum(r[6] == "yes" for r in mine)
        worst = max(mine, key=lambda r: abs(r[4] - ALPHA))
        out.append(f"{NULL_LABELS.get(null, null)}: false-positive rate at α = {ALPHA} within "
                   f"[{CALIBRATED[0]}, {CALIBRATED[1]}] for {ok} of {len(mine)} (pairing, metric) cells over "
                   f"{mine[0][3]} independent comparisons each; farthest from {ALPHA}: {worst[1]} {worst[2]} "
                   f"{worst[4]:.3f} (95% interval {worst[5]}).")
    return out


def calibration_section(out: Path, stem: str, rows: list[dict[str, Any]], label: str) -> str:
    """HTML of the calibration part (empty when the rows have no independent members); ``label``:
    the power figure's x-axis title when the conditions differ in one numeric axis."""
    independent = independent_conditions(rows)
    pvals = p_values(rows)
    if not independent or not pvals:
        return ""
    condition = independent[0]
    labels = condition_labels(rows)
    table = calibration_rows(pvals, condition)
    items = "".join(f"<li>{html.escape(s)}</li>" for s in calibration_findings(table))
    figures = [_qq_figure(out, stem, pvals, condition), _power_figure(out, stem, pvals, labels, label)]
    return (f"<h3>Null calibration and power</h3><p>Comparisons of members that share no feature "
            f"(condition {html.escape(labels[condition])}) hold every null hypothesis, so a calibrated test gives "
            f"p ≤ {ALPHA} in about {ALPHA:.0%} of them. Interval: exact binomial 95%.</p>"
            f"<ul class='findings'>{items}</ul>"
            + "".join(figures)
            + html_table(["null", "pairing", "metric", "comparisons", f"FPR (p ≤ {ALPHA})", "95% interval",
                          f"in [{CALIBRATED[0]}, {CALIBRATED[1]}]"], table))


def power_positions(conditions: list[str]) -> tuple[list[float], list[str] | None]:
    """x of each condition in the power figure: the value of the one numeric axis the conditions
    differ in (ticks None), else 0, 1, ... in the given order (ticks: the labels are needed)."""
    parsed = [json.loads(c) if c else {} for c in conditions]
    keys = {k for p in parsed for k in p}
    varying = [k for k in sorted(keys) if len({json.dumps(p.get(k)) for p in parsed}) > 1]
    if len(varying) == 1:
        values = [p.get(varying[0]) for p in parsed]
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            return [float(v) for v in values], None
    return [float(i) for i in range(len(conditions))], conditions


def _panels(pvals: dict[tuple[str, str, str], dict[str, np.ndarray]]) -> tuple[list[tuple[str, str]], int]:
    """(null, metric) panels, a row per metric and a column per null; and the column count."""
    nulls = sorted({null for null, _, _ in pvals})
    metrics = sorted({metric for _, _, metric in pvals})
    return [(null, metric) for metric in metrics for null in nulls], len(nulls)


def _grid(n_panels: int, cols: int) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = -(-n_panels // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False)
    for ax in axes.flat[n_panels:]:
        ax.remove()
    return fig, axes.flat


def _save(fig: Any, out: Path, stem: str, kind: str) -> str:
    """The figure embedded, also written as OUT/STEM-KIND.png and .svg; closes it."""
    import matplotlib.pyplot as plt

    tag = figure_block(fig, out / f"{stem}-{kind}", f"{stem}: {kind}")
    plt.close(fig)
    return tag


def _qq_figure(out: Path, stem: str, pvals: dict[tuple[str, str, str], dict[str, np.ndarray]], condition: str) -> str:
    """Sorted p-values against uniform quantiles i / (n + 1), a panel per (null, metric)."""
    panels, cols = _panels(pvals)
    fig, axes = _grid(len(panels), cols)
    for ax, (null, metric) in zip(axes, panels):
        for (n_, pairing, m_), cells in sorted(pvals.items()):
            if (n_, m_) != (null, metric) or condition not in cells:
                continue
            p = np.sort(cells[condition])
            ax.plot(np.arange(1, p.size + 1) / (p.size + 1), p, lw=1, label=pairing)
        ax.plot([0, 1], [0, 1], color="0.4", ls="--", lw=0.8)
        ax.set_title(f"{metric}: {null} null", fontsize=9)
        ax.set_xlabel("uniform quantile", fontsize=8)
        ax.set_ylabel("p-value", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6)
    fig.suptitle("QQ plots of p-values on independent members (on the diagonal = calibrated; below = too many "
                 "small p-values)", fontsize=8)
    fig.tight_layout(rect=(0, 0, 1, 0.98))
    return _save(fig, out, stem, "null-qq")


def _power_figure(out: Path, stem: str, pvals: dict[tuple[str, str, str], dict[str, np.ndarray]],
                  labels: dict[str, str], label: str) -> str:
    """Share of comparisons with p <= alpha at every condition, a panel per (null, metric): against
    the one numeric axis the conditions differ in, else one tick per condition label."""
    panels, cols = _panels(pvals)
    fig, axes = _grid(len(panels), cols)
    order = [c for c in labels if any(c in cells for cells in pvals.values())]
    x, ticks = power_positions(order)
    position = dict(zip(order, x))
    for ax, (null, metric) in zip(axes, panels):
        for (n_, pairing, m_), cells in sorted(pvals.items()):
            if (n_, m_) != (null, metric):
                continue
            found = sorted(cells, key=position.__getitem__)
            ax.plot([position[c] for c in found], [np.mean(cells[c] <= ALPHA) for c in found], marker="o", ms=3,
                    label=pairing)
        ax.axhline(ALPHA, color="0.4", ls="--", lw=0.8)
        ax.set_ylim(-0.02, 1.02)
        if ticks is not None:
            ax.set_xticks(x, [labels[c] for c in ticks], rotation=30, ha="right")
        ax.set_title(f"{metric}: {null} null", fontsize=9)
        ax.set_xlabel(label if ticks is None else "condition", fontsize=8)
        ax.set_ylabel(f"share with p ≤ {ALPHA}", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6)
    fig.suptitle(f"rejection rate at α = {ALPHA}: false positives where nothing is shared, power elsewhere",
                 fontsize=8)
    fig.tight_layout(rect=(0, 0, 1, 0.98))
    return _save(fig, out, stem, "null-power")
