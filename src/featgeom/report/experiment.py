"""The report of declarative experiment runs: ``OUT/report.html`` from ``OUT/results.sqlite``.

One section per run stored in the database: every metric against the swept variable (mean over
SAE seeds and replicates, the spread as a band, the run's primary null (by default the
re-pairing null; the report names it) as a grey band of null mean ± 2 null std), the ground-truth ceiling against the empirical MCC, pairing accuracy and
pairs kept, the SAEs' own recovery and dead latents, the members' rho_mm and shared fraction, a
table of all values, findings computed from the numbers, the nulls' calibration where the run
has independent members (:mod:`featgeom.report.calibration`), and the config, seeds and
versions.  Figures are embedded (no network) and also written as PNG and SVG.
"""

from __future__ import annotations

import html
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from featgeom.compare import SIMILARITY_METRICS as SIMILARITY
from featgeom.experiments.spec import SWEEPABLE
from featgeom.report.calibration import NULL_LABELS, calibration_section
from featgeom.report.html import figure_tag, html_table, write_html
from featgeom.store.results import ResultsDB

GROUND_TRUTH = ("gt_mcc", "empirical_mcc", "universality_gap")
FLAT = 0.05  # range over conditions below which a metric counts as flat across the sweep
MONOTONE = 0.8  # |Spearman rho| with the swept value above which a moving metric counts as a trend
FIGURES = ("similarity", "ground_truth", "pairs", "saes")
# After the page has loaded, count the figures the browser decoded (checked by the browser test).
RENDER_CHECK = ("<script>window.addEventListener('load',()=>{const i=[...document.images];"
                "document.body.dataset.figuresRendered=i.filter(x=>x.complete&&x.naturalWidth>0).length;"
                "document.body.dataset.figures=i.length;});</script>")


class Table:
    """Values of one run indexed by (pairing, metric) -> swept value -> per-seed rows.

    Of similarity values tested with several nulls, only the rows of ``null`` (the run's primary
    null) are kept, so each comparison appears once.
    """

    def __init__(self, rows: list[dict[str, Any]], null: str = "repair") -> None:
        rows = [r for r in rows if r["null_kind"] in ("", null)]
        self.rows, self.null = rows, null
        self.values = sorted({r["swept_value"] for r in rows})
        self.cells: dict[tuple[str, str], dict[float, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
        for r in rows:
            self.cells[r["pairing"], r["metric"]][r["swept_value"]].append(r)

    @property
    def modes(self) -> list[str]:
        return sorted({p for p, _ in self.cells if p})

    def has(self, pairing: str, metric: str) -> bool:
        return (pairing, metric) in self.cells

    def series(self, pairing: str, metric: str, column: str = "value") -> np.ndarray:
        """(n_values, n_seeds) array of ``column`` (NaN where a value is missing or undefined)."""
        cell = self.cells.get((pairing, metric), {})
        width = max((len(cell.get(v, [])) for v in self.values), default=0)
        out = np.full((len(self.values), max(width, 1)), np.nan)
        for i, v in enumerate(self.values):
            for j, r in enumerate(cell.get(v, [])):
                out[i, j] = np.nan if r[column] is None else r[column]
        return out

    def mean(self, pairing: str, metric: str, column: str = "value") -> np.ndarray:
        s = self.series(pairing, metric, column)
        return np.array([np.nanmean(row) if np.isfinite(row).any() else np.nan for row in s])


def write_experiment_report(out: str | Path) -> Path:
    """Write ``OUT/report.html`` (and figures, PNG + SVG) for every run in ``OUT/results.sqlite``."""
    out = Path(out)
    db = ResultsDB(out / "results.sqlite")
    sections = [_section(out, run, db.results(run["config_hash"])) for run in db.runs()]
    names = ", ".join(run["experiment"] for run in db.runs())
    body = "".join(sections) + RENDER_CHECK
    return write_html(out / "report.html", f"featgeom experiments: {names}", body)


def _section(out: Path, run: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    config = run["config"]
    name = run["experiment"]
    if not rows:
        return f"<h2>{html.escape(name)}</h2><p>No results stored yet.</p>"
    table = Table(rows, config["compare"]["nulls"][0])
    variable = config["sweep"]["variable"]
    label = SWEEPABLE[variable].label
    stem = f"{name}-{run['preset']}"
    figures = [_figure(out, stem, kind, table, label) for kind in FIGURES]
    null_label = NULL_LABELS.get(table.null, table.null)
    replicates = len({r["replicate"] for r in rows})
    pairs = _distinct_pairs(table)
    seeds = sorted({r["seed_a"] for r in table.rows})
    items = "".join(f"<li>{html.escape(s)}</li>" for s in findings(table, variable))
    note = f"<p><i>{html.escape(config['note'])}</i></p>" if config.get("note") else ""
    return (f"<h2>Experiment {html.escape(name)} ({html.escape(run['preset'])} preset)</h2>"
            f"<p>{html.escape(config['description'])}. Swept: {html.escape(label)} = "
            f"{', '.join(f'{v:g}' for v in table.values)}; SAE seeds {seeds}; {config['sae']['arch']} SAEs, "
            f"{config['sae']['samples']:,} training samples each; comparisons on {config['compare']['samples']:,} shared "
            f"inputs; p-values and grey bands from the {html.escape(null_label)}, {config['compare']['n_perm']} "
            f"draws per null; {replicates} independent replicate famil{'y' if replicates == 1 else 'ies'}, "
            f"{pairs}; {run['seconds'] / 60:.1f} minutes of wall time.</p>{note}"
            f"<h3>Findings</h3><ul class='findings'>{items}</ul><h3>Figures</h3>{''.join(figures)}"
            f"{calibration_section(out, stem, rows, label)}"
            f"<h3>All values</h3><p>Mean over seeds (± std where there are several); p = largest p-value over seeds."
            f"</p>{_values_table(table)}<h3>Configuration</h3>"
            f"<pre>{html.escape(json.dumps(config, indent=2, sort_keys=True))}</pre>"
            f"<p>Config hash {run['config_hash']}; versions "
            f"{html.escape(', '.join(f'{k} {v}' for k, v in sorted(run['versions'].items())))}.</p>")


def _distinct_pairs(table: Table) -> str:
    """How many pairs of SAEs each condition's band is made of ('2', or '20-200'), and whether they
    are independent (no SAE in two pairs of one condition)."""
    pairs: dict[tuple[float, int], set[Any]] = defaultdict(set)
    for r in table.rows:
        pairs[(r["swept_value"], r["replicate"])].add(((r["member_a"], r["seed_a"]), (r["member_b"], r["seed_b"])))
    per_condition: dict[float, int] = defaultdict(int)
    shared = False
    for (value, _), found in pairs.items():
        per_condition[value] += len(found)
        saes = [sae for pair in found for sae in pair]
        shared |= len(saes) != len(set(saes))
    counts = sorted(set(per_condition.values()))
    span = str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
    kind = "SAE pair(s) sharing SAEs (not independent)" if shared else "independent SAE pair(s) (no SAE in two)"
    return f"{span} {kind} per condition"


def findings(table: Table, variable: str) -> list[str]:
    """Sentences computed from the measured numbers of one run (no canned conclusions)."""
    v0, v1 = table.values[0], table.values[-1]
    mode = "mutual" if "mutual" in table.modes else table.modes[0]
    out = []
    identity = SWEEPABLE[variable].identity
    if identity in table.values:
        i = table.values.index(identity)
        parts = [f"{m} {table.mean(mode, m)[i]:.3f}" for m in SIMILARITY if table.has(mode, m)]
        if table.has(mode, "correspondence_accuracy"):
            parts.append(f"correspondence accuracy {table.mean(mode, 'correspondence_accuracy')[i]:.3f}")
        seeds = "SAEs of different seeds" if any(r["seed_a"] != r["seed_b"] for r in table.rows) else "SAEs of equal seeds"
        out.append(f"On identical members ({variable} = {identity:g}; {seeds}), {mode} pairing gives "
                   f"{', '.join(parts)}.")
    flat, trends, noisy = [], [], []
    for m in SIMILARITY + ("correspondence_accuracy", "n_pairs"):
        if not table.has(mode, m):
            continue
        means = table.mean(mode, m)
        scale = max(abs(means[0]), 1e-12) if m == "n_pairs" else 1.0  # pair counts: relative change
        spread = (np.nanmax(means) - np.nanmin(means)) / scale
        rho = _spearman(np.asarray(table.values), means)
        if spread < FLAT:
            flat.append(f"{m} {_fmt(means[0])} → {_fmt(means[-1])}")
        elif len(means) < 3 or abs(rho) >= MONOTONE:
            d = means[-1] - means[0]
            rel = f" ({d / means[0]:+.0%})" if abs(means[0]) > 1e-12 else ""
            trends.append(f"{m} ({mode} pairing) {'falls' if d < 0 else 'rises'} from {_fmt(means[0])} to "
                          f"{_fmt(means[-1])}{rel} as {variable} goes {v0:g} → {v1:g}"
                          + (f" (Spearman ρ = {rho:+.2f})." if np.isfinite(rho) else "."))
        else:
            noisy.append(f"{m} ({mode} pairing) varies between {_fmt(np.nanmin(means))} and {_fmt(np.nanmax(means))} "
                         f"across conditions with no monotone trend (Spearman ρ = {rho:+.2f}"
                         f"{_seed_spread(table, mode, m)}).")
    if flat:
        out.append(f"Flat across the sweep ({variable} {v0:g} → {v1:g}, {mode} pairing; range over conditions "
                   f"< {FLAT}, relative for pair counts): " + ", ".join(flat) + ".")
    out += trends + noisy
    if variable == "superposition_delta" and table.has("", "rho_mm_b"):
        rho_a, rho_b = table.mean("", "rho_mm_a"), table.mean("", "rho_mm_b")
        if np.nanmax(rho_b) - np.nanmin(rho_b) > 1e-3:
            out.append(f"Achieved superposition: the variant's rho_mm goes {rho_b[0]:.3f} → {rho_b[-1]:.3f} "
                       f"(base {rho_a[0]:.3f}).")
    out += _null_findings(table, mode)
    out += _truth_findings(table, mode)
    return out


def _null_findings(table: Table, mode: str) -> list[str]:
    """Where each similarity metric stops being distinguishable from the run's primary null."""
    out = []
    for m in SIMILARITY:
        if not table.has(mode, m):
            continue
        worst_p = np.nanmax(table.series(mode, m, "p_value"), axis=1)
        margin = table.mean(mode, m) - table.mean(mode, m, "null_mean")
        failing = [f"{v:g}" for v, p in zip(table.values, worst_p) if not p < 0.05]
        where = "at every condition" if not failing else f"except at {', '.join(failing)}"
        out.append(f"{m}: above its {table.null} null (p < 0.05 for every comparison) {where}; "
                   f"observed − null mean ranges {np.nanmin(margin):.3f} … {np.nanmax(margin):.3f}.")
    return out


def _truth_findings(table: Table, mode: str) -> list[str]:
    """Ground truth against the empirical numbers, and which metrics track it."""
    if not table.has("", "gt_mcc"):
        return []
    gt = table.mean("", "gt_mcc")
    emp = table.mean("", "empirical_mcc")
    gap = table.mean("", "universality_gap")
    out = [(f"Ground-truth ceiling GT-MCC {gt[0]:.3f} → {gt[-1]:.3f}; empirical cross-SAE MCC {emp[0]:.3f} → "
            f"{emp[-1]:.3f}; universality gap {gap[0]:.3f} → {gap[-1]:.3f} (mean gap {np.nanmean(gap):.3f}).")]
    if len(table.values) >= 3 and np.nanstd(gt) > 1e-3:
        tracks = []
        for m in SIMILARITY + ("correspondence_accuracy",):
            if table.has(mode, m):
                r = _pearson(table.mean(mode, m), gt)
                tracks.append((r, m))
        tracks.sort(reverse=True)
        out.append("Correlation with GT-MCC across conditions: "
                   + ", ".join(f"{m} r = {r:+.2f}" for r, m in tracks) + ".")
    elif np.nanstd(gt) <= 1e-3:
        out.append(f"GT-MCC is constant ({gt[0]:.3f}) across the sweep, so a faithful universality metric stays "
                   f"flat here; any trend above is an artefact of the swept variable.")
    return out


def _seed_spread(table: Table, pairing: str, metric: str) -> str:
    """'; mean std over seeds X' where conditions have several seeds, else ''."""
    values = table.series(pairing, metric)
    several = np.isfinite(values).sum(axis=1) >= 2
    if not several.any():
        return ""
    return f"; mean std over seeds {np.mean([np.nanstd(row) for row in values[several]]):.3g}"


def _fmt(v: float) -> str:
    return f"{v:.0f}" if abs(v) >= 100 else f"{v:.3f}"


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Rank correlation of the condition means with the swept values (NaN if undefined)."""
    from scipy.stats import rankdata

    ok = np.isfinite(y)
    return _pearson(rankdata(x[ok]), rankdata(y[ok])) if ok.sum() >= 3 else float("nan")


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3 or np.std(x[ok]) == 0 or np.std(y[ok]) == 0:
        return float("nan")
    return float(np.corrcoef(x[ok], y[ok])[0, 1])


def _figure(out: Path, stem: str, kind: str, table: Table, label: str) -> str:
    """One figure (``kind``) of a run, embedded; also written as OUT/STEM-KIND.png and .svg."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = {
        "similarity": [(m, [(mode, m) for mode in table.modes]) for m in SIMILARITY],
        "ground_truth": [("ground truth vs empirical MCC", [("", m) for m in GROUND_TRUTH]),
                         ("correspondence accuracy", [(mode, "correspondence_accuracy") for mode in table.modes])],
        "pairs": [("pairs kept", [(mode, "n_pairs") for mode in table.modes]),
                  ("mean correlation of pairs", [(mode, "mean_corr") for mode in table.modes])],
        "saes": [("SAE recovery of true features (a = base, b = variant)",
                  [("", m) for m in ("mcc_a", "mcc_b", "f1_a", "f1_b")]),
                 ("dead latents", [("", "dead_rate_a"), ("", "dead_rate_b")]),
                 ("members", [("", "rho_mm_a"), ("", "rho_mm_b"), ("", "shared_fraction")])],
    }[kind]
    cols = min(3, len(panels))
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.3 * rows), squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.remove()
    x = np.asarray(table.values)
    for ax, (title, curves) in zip(axes.flat, panels):
        for pairing, metric in curves:
            if not table.has(pairing, metric):
                continue
            _curve(ax, x, table, pairing, metric)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel(label, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6)
    fig.suptitle(f"lines: mean over SAE seeds and replicates; coloured bands: min-max; grey bands: "
                 f"{NULL_LABELS.get(table.null, table.null)} mean ± 2 std", fontsize=8)
    fig.tight_layout()
    path = out / f"{stem}-{kind}"
    tag = figure_tag(fig, f"{stem}: {kind}", save_as=path.with_suffix(".png"))
    fig.savefig(path.with_suffix(".svg"))
    plt.close(fig)
    return tag


def _curve(ax: Any, x: np.ndarray, table: Table, pairing: str, metric: str) -> None:
    """Mean over seeds, min–max band over seeds, and the null mean ± 2 std band if there is one."""
    values = table.series(pairing, metric)
    mean = table.mean(pairing, metric)
    (line,) = ax.plot(x, mean, marker="o", ms=3, label=pairing if pairing else metric)
    if values.shape[1] > 1:
        lo, hi = np.nanmin(values, axis=1), np.nanmax(values, axis=1)
        ax.fill_between(x, lo, hi, color=line.get_color(), alpha=0.2, lw=0)
    null_mean = table.mean(pairing, metric, "null_mean")
    if np.isfinite(null_mean).any():
        null_std = table.mean(pairing, metric, "null_std")
        ax.fill_between(x, null_mean - 2 * null_std, null_mean + 2 * null_std, color="0.5", alpha=0.25, lw=0)
        ax.plot(x, null_mean, color=line.get_color(), ls=":", lw=1, label=f"{pairing} null")


def _values_table(table: Table) -> str:
    headers = ["pairing", "metric", *[f"{v:g}" for v in table.values]]
    rows = []
    for (pairing, metric) in sorted(table.cells):
        values, p = table.series(pairing, metric), table.series(pairing, metric, "p_value")
        cells = []
        for i in range(len(table.values)):
            row = values[i][np.isfinite(values[i])]
            text = "undefined" if row.size == 0 else f"{row.mean():.4g}" + (f" ± {row.std():.2g}" if row.size > 1 else "")
            if np.isfinite(p[i]).any():
                text += f" (p={np.nanmax(p[i]):.3g})"
            cells.append(text)
        rows.append([pairing or "—", metric, *cells])
    return html_table(headers, rows)
