"""The report of declarative experiment runs: ``OUT/report.html`` from ``OUT/results.sqlite``.

One section per run stored in the database, and in it one part per analysis found in its rows
('cross_member', 'sae_pairs', 'recovery', ...). The figures of a part follow from the grid axes
that vary among its rows' conditions (``condition_json``; the run config's ``axes`` give their
order):

* one numeric axis: every metric against the axis value (lines: mean over SAE seeds and
  replicates; coloured band: their min-max; grey band: the run's primary null's mean ± 2 null
  std; for 'cross_member': similarity, ground truth against the empirical MCC, pairs kept, the
  SAEs' own recovery and the members), and findings (flat / monotone trend / no trend);
* one categorical axis: grouped bars, one group per axis value, one bar per pairing or metric,
  error bars = std over seeds and replicates;
* two or more axes: a heatmap of the mean of each main metric over the first two (one figure per
  combination of the others);
* a pair axis (an 'sae_pairs' condition whose axis is a 2-list [value_a, value_b]): a symmetric
  value x value matrix per similarity metric, the diagonal being the seed-vs-seed floor;
* 'recovery' also gets a Pareto scatter of its objectives (explained variance against MCC), one
  point per condition, with the non-dominated ones joined, and the reconstruction and
  interpretability specialists named in the findings; with a categorical axis and another one
  (architecture x L0), also the front of its trade-off (precision against recall) per value of the
  categorical axis, and which values make up the front of all of them;
* no varying axis: the values table only.

Every part has findings computed from the numbers and a table of all values (columns = the
conditions' labels); a part with independent members also gets the nulls' calibration
(:mod:`featgeom.report.calibration`). Then the config, seeds and versions. Figures are embedded
(no network) and also written as PNG and SVG: ``OUT/NAME-PRESET-ANALYSIS-KIND.png``.
"""

from __future__ import annotations

import html
import itertools
import json
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from featgeom.compare import SIMILARITY_METRICS as SIMILARITY
from featgeom.report.calibration import NULL_LABELS, calibration_section
from featgeom.report.html import figure_block, html_table, write_html
from featgeom.store.results import ResultsDB

# axis -> (axis title, the value at which a variant is identical to the base, or None)
KNOWN_AXES: dict[str, tuple[str, float | None]] = {
    "variant.basis_rotation_angle": ("rotation angle (degrees)", 0.0),
    "variant.feature_overlap_ratio": ("shared fraction of features", 1.0),
    "variant.superposition_delta": ("rho_mm(variant) - rho_mm(base)", 0.0),
    "sae.arch": ("SAE architecture", None),
    "sae.l0": ("SAE target L0", None),
    "world.hidden_dim": ("hidden dimension", None),
    "world.target_rho_mm": ("target rho_mm (the hidden dimension is searched for it)", None),
}
ANALYSIS_TITLES = {
    "cross_member": "SAE of the base member against the SAE of each variant",
    "sae_pairs": "two SAEs of the same member that differ in one setting",
    "recovery": "each SAE against its member's true features",
    "feature_splitting": "how many latents each SAE uses per true feature, and the features it splits",
    "layers": "pairs of layers of a real model",
}
GROUND_TRUTH = ("gt_mcc", "empirical_mcc", "universality_gap")
FLAT = 0.05  # range over conditions below which a metric counts as flat across the sweep
MONOTONE = 0.8  # |Spearman rho| with the swept value above which a moving metric counts as a trend
FIGURES = ("similarity", "ground_truth", "pairs", "saes")  # a cross-member part's figures
RECOVERY_PANELS = (("recovery of true features", ("mcc", "f1", "precision", "recall")),
                   ("reconstruction", ("explained_variance",)),
                   ("reconstruction error", ("mse", "normalized_mse")),
                   ("active latents per input (L0)", ("l0", "true_l0")),
                   ("dead latents", ("dead_fraction",)))
RELATIVE = ("n_pairs", "l0", "true_l0", "mse", "normalized_mse")  # metrics whose flatness is judged relative
SPECIALISTS = {"explained_variance": "reconstruction specialist", "1 - normalized_mse": "reconstruction specialist",
               "mcc": "interpretability specialist"}
# After the page has loaded, count the figures the browser decoded (checked by the browser test).
RENDER_CHECK = ("<script>window.addEventListener('load',()=>{const i=[...document.images];"
                "document.body.dataset.figuresRendered=i.filter(x=>x.complete&&x.naturalWidth>0).length;"
                "document.body.dataset.figures=i.length;});</script>")
Curve = tuple[str, str]  # (pairing, metric)
Panel = tuple[str, list[Curve]]  # (title, curves)


@lru_cache(maxsize=4096)
def condition_of(condition_json: str) -> dict[str, Any]:
    """A row's condition (axis -> value; a 2-list for the axis a pair of SAEs differs in). Shared: do not modify."""
    return json.loads(condition_json) if condition_json else {}


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


@dataclass(frozen=True)
class Axis:
    """A grid axis varying among a part's conditions: its name and values (numeric ones ascending,
    categorical ones in grid order); ``zipped``: axes that advance together with it."""

    name: str
    values: tuple[Any, ...]
    zipped: tuple[str, ...] = ()

    @property
    def numeric(self) -> bool:
        return all(_is_number(v) for v in self.values)

    @property
    def short(self) -> str:
        return self.name.rsplit(".", 1)[-1]

    @property
    def title(self) -> str:
        title = KNOWN_AXES.get(self.name, (self.name, None))[0]
        return title + (f" (with {', '.join(self.zipped)})" if self.zipped else "")

    @property
    def identity(self) -> float | None:
        return KNOWN_AXES.get(self.name, ("", None))[1]

    def position(self, value: Any) -> int:
        return self.values.index(value) if value in self.values else len(self.values)

    def text(self, value: Any) -> str:
        return f"{value:g}" if _is_number(value) else str(value)


def varying_axes(config: dict[str, Any], rows: list[dict[str, Any]]) -> list[Axis]:
    """The axes whose scalar value differs between the rows' conditions, in grid order (the
    config's ``axes`` first, then others as found); an axis that only ever changes together with
    an earlier one (a zip) is folded into it."""
    grid = {a["axis"]: list(a.get("values", [])) for a in config.get("axes", []) or []
            if isinstance(a, dict) and "axis" in a}
    conditions = [condition_of(c) for c in dict.fromkeys(r["condition_json"] for r in rows)]
    found: dict[str, list[Any]] = {}
    for cond in conditions:
        for name, value in cond.items():
            if not isinstance(value, list) and value not in found.setdefault(name, []):
                found[name].append(value)
    axes = []
    for name in [n for n in grid if n in found] + [n for n in found if n not in grid]:
        values = found[name]
        if len(values) < 2:
            continue
        if all(_is_number(v) for v in values):
            values = sorted(values)
        else:
            order = grid.get(name, [])
            values = [v for v in order if v in values] + [v for v in values if v not in order]
        axes.append(Axis(name, tuple(values)))
    return _fold_zipped(axes, conditions, config.get("zip"))


def _fold_zipped(axes: list[Axis], conditions: list[dict[str, Any]], groups: list[list[str]] | None) -> list[Axis]:
    """Fold each axis that advances together with an earlier kept one into it (naming it in the
    kept axis's ``zipped``): axes of one of the config's ``zip`` groups when the config has them,
    else axes whose values are in one-to-one correspondence over the conditions."""
    kept: list[Axis] = []
    for axis in axes:
        for i, first in enumerate(kept):
            if groups is not None:
                if any(first.name in g and axis.name in g for g in groups):
                    kept[i] = Axis(first.name, first.values, first.zipped + (axis.name,))
                    break
                continue
            pairs = {(c[first.name], c[axis.name]) for c in conditions if first.name in c and axis.name in c
                     and not isinstance(c[first.name], list) and not isinstance(c[axis.name], list)}
            if len({a for a, _ in pairs}) == len(pairs) == len({b for _, b in pairs}):
                kept[i] = Axis(first.name, first.values, first.zipped + (axis.name,))
                break
        else:
            kept.append(axis)
    return kept


class Table:
    """Values of one part of a run indexed by (pairing, metric) -> condition_json -> per-seed rows.

    Conditions are in grid order of ``axes``. Of similarity values tested with several nulls, only
    the rows of ``null`` (the run's primary null) are kept, so each comparison appears once.
    """

    def __init__(self, rows: list[dict[str, Any]], null: str = "repair", axes: Sequence[Axis] = ()) -> None:
        rows = [r for r in rows if r["null_kind"] in ("", null)]
        self.rows, self.null, self.axes = rows, null, tuple(axes)
        self.labels: dict[str, str] = {}
        for r in rows:
            self.labels.setdefault(r["condition_json"], r["condition"])
        self.conditions = sorted(self.labels, key=self._grid_position)
        self.cells: dict[Curve, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
        for r in rows:
            self.cells[r["pairing"], r["metric"]][r["condition_json"]].append(r)

    def _grid_position(self, condition_json: str) -> tuple[Any, ...]:
        cond = condition_of(condition_json)
        return tuple(a.position(cond.get(a.name)) for a in self.axes), condition_json

    @property
    def modes(self) -> list[str]:
        return sorted({p for p, _ in self.cells if p})

    @property
    def main_mode(self) -> str:
        """'mutual' when measured, else the first pairing mode ('' when there is none)."""
        return "mutual" if "mutual" in self.modes else (self.modes[0] if self.modes else "")

    def has(self, pairing: str, metric: str) -> bool:
        return (pairing, metric) in self.cells

    def coords(self, axis: Axis) -> list[Any]:
        """The value of ``axis`` at each condition."""
        return [condition_of(c).get(axis.name) for c in self.conditions]

    def name(self, i: int) -> str:
        """Short name of condition ``i``: its varying axes 'k=v, ...', else its stored label."""
        cond = condition_of(self.conditions[i])
        if self.axes and not any(isinstance(v, list) for v in cond.values()):
            return ", ".join(f"{a.short}={a.text(cond.get(a.name))}" for a in self.axes)
        return self.labels[self.conditions[i]] or "the single condition"

    def series(self, pairing: str, metric: str, column: str = "value") -> np.ndarray:
        """(n_conditions, n_seeds) array of ``column`` (NaN where a value is missing or undefined)."""
        cell = self.cells.get((pairing, metric), {})
        width = max((len(cell.get(c, [])) for c in self.conditions), default=0)
        out = np.full((len(self.conditions), max(width, 1)), np.nan)
        for i, c in enumerate(self.conditions):
            for j, r in enumerate(cell.get(c, [])):
                out[i, j] = np.nan if r[column] is None else r[column]
        return out

    def mean(self, pairing: str, metric: str, column: str = "value") -> np.ndarray:
        """Mean over seeds and replicates of each condition (NaN where there is no value)."""
        return _row_stat(self.series(pairing, metric, column), np.nanmean)

    def std(self, pairing: str, metric: str) -> np.ndarray:
        """Std over seeds and replicates of each condition (0 with one value, NaN with none)."""
        return _row_stat(self.series(pairing, metric), np.nanstd)


def _row_stat(values: np.ndarray, stat: Callable[[np.ndarray], float]) -> np.ndarray:
    return np.array([stat(row) if np.isfinite(row).any() else np.nan for row in values])


def similarity_metrics(table: Table) -> list[str]:
    """The similarity metrics measured in ``table``: the registered ones in registry order, then
    any other metric that has p-values."""
    present = {m for _, m in table.cells}
    tested = sorted({r["metric"] for r in table.rows if r["p_value"] is not None} - set(SIMILARITY))
    return [m for m in SIMILARITY if m in present] + tested


def metric_label(metric: str) -> str:
    """A similarity metric's label from :data:`featgeom.similarity.registry.SIMILARITY`, else its name."""
    from featgeom.similarity.registry import SIMILARITY as REGISTRY

    return REGISTRY[metric].label if metric in REGISTRY else metric


# --- the page ---------------------------------------------------------------------------------


def write_experiment_report(out: str | Path) -> Path:
    """Write ``OUT/report.html`` (and figures, PNG + SVG) for every run in ``OUT/results.sqlite``."""
    out = Path(out)
    db = ResultsDB(out / "results.sqlite")
    runs = db.runs()
    sections = [_section(out, run, db.results(run["config_hash"])) for run in runs]
    names = ", ".join(run["experiment"] for run in runs)
    body = "".join(sections) + RENDER_CHECK
    return write_html(out / "report.html", f"featgeom experiments: {names}", body)


def _section(out: Path, run: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    """One run: summary, one part per analysis in its rows, config and versions."""
    config = run["config"]
    head = f"<h2>Experiment {html.escape(run['experiment'])} ({html.escape(run['preset'])} preset)</h2>"
    if not rows:
        return f"{head}<p>No results stored yet.</p>{_config_block(run)}"
    null = primary_null(config, rows)
    stem = f"{run['experiment']}-{run['preset']}"
    parts = [_analysis_part(out, f"{stem}-{analysis}", config, analysis,
                            [r for r in rows if r["analysis"] == analysis], null)
             for analysis in analyses_in(config, rows)]
    note = f"<p><i>{html.escape(config['note'])}</i></p>" if config.get("note") else ""
    return f"{head}{_summary(run, rows, null)}{note}{_study_findings(config, rows)}{''.join(parts)}{_config_block(run)}"


def _study_findings(config: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    """The experiment's registered study findings (``findings:``; :mod:`featgeom.experiments.findings`),
    each computed from the rows: one list of sentences per finding."""
    from featgeom.experiments.findings import run_findings

    names = config.get("findings") or []
    if not names:
        return ""
    items = "".join(f"<li><b>{html.escape(f.name)}</b>: {html.escape(' '.join(f.sentences))}</li>"
                    for f in run_findings(names, rows))
    return f"<h3>Study findings (the plan's hypotheses, tested on these numbers)</h3><ul>{items}</ul>"


def primary_null(config: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    """The null the bands and p-values show: the config's first (``compare.nulls``), else 'repair'
    when the rows have it, else the first found."""
    nulls = (config.get("compare") or {}).get("nulls") or []
    if nulls:
        return nulls[0]
    found = sorted({r["null_kind"] for r in rows if r["null_kind"]})
    return "repair" if "repair" in found or not found else found[0]


def analyses_in(config: dict[str, Any], rows: list[dict[str, Any]]) -> list[str]:
    """The analyses present in the rows, in the config's order (``analyses``: names or mappings
    with a 'name'), then any others alphabetically."""
    declared = [a if isinstance(a, str) else a.get("name", "") for a in config.get("analyses", []) or []]
    present = {r["analysis"] for r in rows}
    return [a for a in dict.fromkeys(declared) if a in present] + sorted(present - set(declared))


def _summary(run: dict[str, Any], rows: list[dict[str, Any]], null: str) -> str:
    """The run in one paragraph: description, grid, SAEs, comparisons, nulls, seeds, wall time."""
    config = run["config"]
    sae, compare = config.get("sae") or {}, config.get("compare") or {}
    axes = [f"{html.escape(Axis(a['axis'], ()).title)}"
            + (f" ({html.escape(a['axis'])})" if a["axis"] in KNOWN_AXES else "")
            + f" = {html.escape(', '.join(Axis(a['axis'], ()).text(v) for v in a.get('values', [])))}"
            for a in config.get("axes", []) or [] if isinstance(a, dict) and "axis" in a]
    parts = [html.escape(config.get("description", "")).rstrip(".") or html.escape(run["experiment"])]
    parts.append("Grid: " + "; ".join(axes) if axes else "No grid axes (one condition)")
    seeds = sorted({r["seed_a"] for r in rows} | {r["seed_b"] for r in rows})
    sae_text = f"SAE seeds {seeds}"
    if sae.get("arch"):
        sae_text += f"; {html.escape(str(sae['arch']))} SAEs (unless an axis sets the architecture)"
    if sae.get("samples"):
        sae_text += f", {sae['samples']:,} training samples each"
    parts.append(sae_text)
    if compare.get("samples"):
        parts.append(f"comparisons on {compare['samples']:,} shared inputs")
    if any(r["null_kind"] for r in rows):
        draws = f", {compare['n_perm']} draws per null" if compare.get("n_perm") else ""
        parts.append(f"p-values and grey bands from the {html.escape(NULL_LABELS.get(null, null))}{draws}")
    replicates = len({r["replicate"] for r in rows})
    parts.append(f"{replicates} independent replicate famil{'y' if replicates == 1 else 'ies'}")
    parts.append(f"{run['seconds'] / 60:.1f} minutes of wall time")
    return f"<p>{'; '.join(parts)}.</p>"


def _config_block(run: dict[str, Any]) -> str:
    return (f"<h3>Configuration</h3><pre>{html.escape(json.dumps(run['config'], indent=2, sort_keys=True))}</pre>"
            f"<p>Config hash {run['config_hash']}; versions "
            f"{html.escape(', '.join(f'{k} {v}' for k, v in sorted(run['versions'].items())))}.</p>")


def _analysis_part(out: Path, stem: str, config: dict[str, Any], analysis: str, rows: list[dict[str, Any]],
                   null: str, where: str = "") -> str:
    """One analysis of a run: findings, figures (picked from its varying axes), calibration, values.
    Conditions without one of the varying axes (e.g. the recovery of the base member's SAEs, stored
    at the point without its variant axes) make a part of their own after it."""
    axes = varying_axes(config, rows)
    lacking = [r for r in rows if any(a.name not in condition_of(r["condition_json"]) for a in axes)]
    if lacking and len(lacking) < len(rows):
        names = sorted({a.short for r in lacking for a in axes if a.name not in condition_of(r["condition_json"])})
        ids = {id(r) for r in lacking}
        return (_analysis_part(out, stem, config, analysis, [r for r in rows if id(r) not in ids], null, where)
                + _analysis_part(out, f"{stem}-without-{'-'.join(names)}", config, analysis, lacking, null,
                                 f"conditions without {', '.join(names)} (e.g. the base member)"))
    table = Table(rows, null, axes)
    if analysis == "recovery":
        figures, items = recovery_view(out, stem, config, table)
    elif pair_axes(table.rows):
        figures, items = pairs_view(out, stem, config, table)
    else:
        figures, items = similarity_view(out, stem, table)
    if analysis == "feature_splitting":
        figures += splitting_figure(out, stem, table.rows)
    title = ANALYSIS_TITLES.get(analysis, "")
    numeric = len(axes) == 1 and axes[0].numeric
    counts = (f"<p>{_distinct_pairs(table)}.</p>" if table.modes
              else f"<p>{_distinct_saes(table)}.</p>")
    findings_html = "".join(f"<li>{html.escape(s)}</li>" for s in items)
    heading = f"{analysis}, {where}" if where else analysis
    return (f"<h3>Analysis {html.escape(heading)}{': ' + html.escape(title) if title else ''}</h3>{counts}"
            f"<h4>Findings</h4><ul class='findings'>{findings_html}</ul>"
            + (f"<h4>Figures</h4>{''.join(figures)}" if figures else "")
            + calibration_section(out, stem, table.rows, axes[0].title if numeric else "condition")
            + "<h4>All values</h4><p>Mean over seeds and replicates (± std where there are several); "
              f"p = largest p-value over them.</p>{_values_table(table)}")


def _distinct_pairs(table: Table) -> str:
    """How many pairs of SAEs each condition's band is made of ('2', or '20-200'), and whether they
    are independent (no SAE in two pairs of one condition)."""
    pairs: dict[tuple[str, int], set[Any]] = defaultdict(set)
    for r in table.rows:
        pairs[(r["condition_json"], r["replicate"])].add(((r["member_a"], r["seed_a"]), (r["member_b"], r["seed_b"])))
    per_condition: dict[str, int] = defaultdict(int)
    shared = False
    for (condition, _), found in pairs.items():
        per_condition[condition] += len(found)
        saes = [sae for pair in found for sae in pair]
        shared |= len(saes) != len(set(saes))
    counts = sorted(set(per_condition.values()))
    span = str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
    kind = "SAE pair(s) sharing SAEs (not independent)" if shared else "independent SAE pair(s) (no SAE in two)"
    return f"{span} {kind} per condition"


def _distinct_saes(table: Table) -> str:
    """How many SAEs (member, seed, replicate) each condition's values come from."""
    saes: dict[str, set[Any]] = defaultdict(set)
    for r in table.rows:
        saes[r["condition_json"]].add((r["member_a"], r["seed_a"], r["replicate"]))
    counts = sorted({len(s) for s in saes.values()})
    span = str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
    return f"{span} SAE(s) per condition (seeds and replicates)"


# --- views: which figures and findings a part gets --------------------------------------------


def similarity_view(out: Path, stem: str, table: Table) -> tuple[list[str], list[str]]:
    """Figures and findings of a comparison part (cross_member, layers, seed-only sae_pairs)."""
    axes, mode = table.axes, table.main_mode
    if not axes:
        return [], level_findings(table, main_curves(table)) + _null_findings(table, mode)
    if len(axes) == 1:
        axis = axes[0]
        draw = line_figure if axis.numeric else bar_figure
        figures = [draw(out, stem, kind, table, panels, axis) for kind, panels in similarity_panels(table).items()]
        if axis.numeric:
            return figures, findings(table, axis)
        return figures, extreme_findings(table, main_curves(table)) + _null_findings(table, mode)
    figures = heatmap_figures(out, stem, table, main_curves(table))
    return figures, extreme_findings(table, main_curves(table)) + _null_findings(table, mode)


def recovery_view(out: Path, stem: str, config: dict[str, Any], table: Table) -> tuple[list[str], list[str]]:
    """Figures and findings of a 'recovery' part: the SAEs' own metrics by the axes, and the Pareto
    front of the analysis's objectives."""
    curves = [c for _, cs in recovery_panels(table) for c in cs]
    axes = table.axes
    if not axes:
        figures, items = [], level_findings(table, curves)
    elif len(axes) == 1:
        axis = axes[0]
        draw = line_figure if axis.numeric else bar_figure
        figures = [draw(out, stem, "recovery", table, recovery_panels(table), axis)]
        items = (trend_findings(table, "", [m for _, m in curves], axis) if axis.numeric
                 else extreme_findings(table, curves))
    else:
        figures, items = heatmap_figures(out, stem, table, curves), extreme_findings(table, curves)
    objectives = pareto_objectives(config, "recovery", table)
    if objectives and len(table.conditions) >= 2:
        points, names = pareto_points(table, objectives)
        if len(names) >= 2:
            front = pareto_indices(points)
            figures.append(pareto_figure(out, stem, points, names, front, objectives))
            items += pareto_findings(points, names, front, objectives)
    tradeoff = tradeoff_groups(table, _registered("recovery", "tradeoff"))
    if tradeoff is not None:
        figures.append(tradeoff_figure(out, stem, *tradeoff))
        items += tradeoff_findings(*tradeoff)
    return figures, items


def pairs_view(out: Path, stem: str, config: dict[str, Any], table: Table) -> tuple[list[str], list[str]]:
    """Figures and findings of an 'sae_pairs' part with a pair axis: a value x value matrix per
    similarity metric and pair axis (one figure per combination of the other varying axes)."""
    figures, items = [], []
    metrics = similarity_metrics(table)
    mode = table.main_mode if metrics else ""
    if not metrics:  # a pair analysis without similarities (e.g. coverage_pairs): its own values
        metrics = sorted({m for p, m in table.cells if p == ""})
    if not metrics:
        return figures, items
    for name in pair_axes(table.rows):
        axis = pair_axis(config, table.rows, name)
        others = [a for a in table.axes if a.name != name]
        for k, (rest, conditions) in enumerate(_rest_groups(table, others)):
            matrices = {m: pair_matrix(table, axis, mode, m, conditions) for m in metrics}
            suffix = f" at {rest}" if rest else ""
            kind = f"matrix-{axis.short}" + (f"-{k + 1}" if others else "")
            figures.append(matrix_figure(out, stem, kind, axis, matrices, mode, suffix))
            items += pair_matrix_findings(axis, matrices, mode, suffix)
    return figures, items + _null_findings(table, mode)


# --- panels -------------------------------------------------------------------------------------


def _present(table: Table, panels: list[Panel]) -> list[Panel]:
    """The panels with at least one measured curve, each keeping only its measured curves."""
    kept = [(title, [c for c in curves if table.has(*c)]) for title, curves in panels]
    return [(title, curves) for title, curves in kept if curves]


def similarity_panels(table: Table) -> dict[str, list[Panel]]:
    """Figure kind -> panels of a comparison part: 'similarity' (each metric, a curve per pairing
    mode), 'ground_truth' (GT-MCC, empirical MCC, universality gap; correspondence accuracy),
    'pairs' (pairs kept, their mean correlation), 'saes' (the SAEs' recovery of true features,
    dead latents, the members' rho_mm and shared fraction); figures without data are left out."""
    modes = table.modes
    kinds = {
        "similarity": [(metric_label(m), [(mode, m) for mode in modes]) for m in similarity_metrics(table)],
        "ground_truth": [("ground truth vs empirical MCC", [("", m) for m in GROUND_TRUTH]),
                         ("correspondence accuracy", [(mode, "correspondence_accuracy") for mode in modes])],
        "pairs": [("pairs kept", [(mode, "n_pairs") for mode in modes]),
                  ("mean correlation of pairs", [(mode, "mean_corr") for mode in modes])],
        "saes": [("SAE recovery of true features (a = base, b = variant)",
                  [("", m) for m in ("mcc_a", "mcc_b", "f1_a", "f1_b")]),
                 ("dead latents", [("", "dead_rate_a"), ("", "dead_rate_b")]),
                 ("members", [("", "rho_mm_a"), ("", "rho_mm_b"), ("", "shared_fraction")])],
    }
    found = {kind: _present(table, panels) for kind, panels in kinds.items()}
    return {kind: panels for kind, panels in found.items() if panels}


def recovery_panels(table: Table) -> list[Panel]:
    """Panels of a recovery part: RECOVERY_PANELS' groups, then one panel per other metric."""
    known = {m for _, ms in RECOVERY_PANELS for m in ms}
    others = sorted({m for _, m in table.cells} - known)
    panels = [(title, [("", m) for m in ms]) for title, ms in RECOVERY_PANELS] + [(m, [("", m)]) for m in others]
    return _present(table, panels)


def main_curves(table: Table) -> list[Curve]:
    """The curves of a comparison part's heatmaps and findings: each similarity metric in the main
    pairing mode, correspondence accuracy, GT-MCC and the empirical MCC."""
    mode = table.main_mode
    curves = [(mode, m) for m in similarity_metrics(table)]
    curves += [(mode, "correspondence_accuracy"), ("", "gt_mcc"), ("", "empirical_mcc")]
    return [c for c in curves if table.has(*c)]


def _curve_label(curve: Curve, curves: list[Curve]) -> str:
    """A curve's legend entry: its pairing when the panel shows one metric in several pairings, else its metric."""
    pairing, metric = curve
    if pairing and len({m for _, m in curves}) == 1:
        return pairing
    return metric + (f" ({pairing})" if pairing else "")


def _title(curve: Curve) -> str:
    pairing, metric = curve
    return metric_label(metric) + (f" ({pairing})" if pairing else "")


# --- figures ------------------------------------------------------------------------------------


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _panel_grid(n: int, cols: int = 3, size: tuple[float, float] = (4.2, 3.3)) -> tuple[Any, list[Any]]:
    """A figure with ``n`` panels on a grid of at most ``cols`` columns (unused cells removed)."""
    plt = _plt()
    cols = max(1, min(cols, n))
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(size[0] * cols, size[1] * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.remove()
    return fig, list(axes.flat[:n])


def _save(fig: Any, out: Path, stem: str, kind: str, caption: str) -> str:
    """The figure embedded with its caption, also written as OUT/STEM-KIND.png and .svg; closes it."""
    tag = figure_block(fig, out / f"{stem}-{kind}", f"{stem}: {kind}", caption)
    _plt().close(fig)
    return tag


def _style(ax: Any, title: str, xlabel: str) -> None:
    ax.set_title(title, fontsize=9)
    ax.set_xlabel(xlabel, fontsize=8)
    ax.tick_params(labelsize=7)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=6)


def line_figure(out: Path, stem: str, kind: str, table: Table, panels: list[Panel], axis: Axis) -> str:
    """Each panel's curves against a numeric axis: the mean over SAE seeds and replicates, their
    min-max as a coloured band, and the primary null's mean ± 2 std as a grey band."""
    fig, axes = _panel_grid(len(panels))
    x = np.asarray(table.coords(axis), dtype=float)
    for ax, (title, curves) in zip(axes, panels):
        for curve in curves:
            _curve(ax, x, table, curve, _curve_label(curve, curves))
        _style(ax, title, axis.title)
    caption = "Lines: mean over SAE seeds and replicates; coloured bands: their min-max" + _null_caption(table, "bands")
    fig.suptitle(caption, fontsize=8)
    fig.tight_layout()
    return _save(fig, out, stem, kind, caption)


def _null_caption(table: Table, shape: str) -> str:
    """'; grey SHAPE: <the primary null> mean ± 2 std.' where a null was measured, else '.'."""
    if not any(r["null_mean"] is not None for r in table.rows):
        return "."
    return f"; grey {shape}: {NULL_LABELS.get(table.null, table.null)} mean ± 2 std."


def _curve(ax: Any, x: np.ndarray, table: Table, curve: Curve, label: str) -> None:
    """Mean over seeds, min–max band over seeds, and the null mean ± 2 std band if there is one."""
    values = table.series(*curve)
    mean = table.mean(*curve)
    (line,) = ax.plot(x, mean, marker="o", ms=3, label=label)
    if values.shape[1] > 1:
        lo, hi = _row_stat(values, np.nanmin), _row_stat(values, np.nanmax)
        ax.fill_between(x, lo, hi, color=line.get_color(), alpha=0.2, lw=0)
    null_mean = table.mean(*curve, "null_mean")
    if np.isfinite(null_mean).any():
        null_std = table.mean(*curve, "null_std")
        ax.fill_between(x, null_mean - 2 * null_std, null_mean + 2 * null_std, color="0.5", alpha=0.25, lw=0)
        ax.plot(x, null_mean, color=line.get_color(), ls=":", lw=1, label=f"{label} null")


def bar_figure(out: Path, stem: str, kind: str, table: Table, panels: list[Panel], axis: Axis) -> str:
    """Each panel's curves as grouped bars over a categorical axis: one group per axis value, one
    bar per pairing or metric (height: mean over SAE seeds and replicates; error bar: their std),
    the primary null's mean ± 2 std as a grey bar on each."""
    fig, axes = _panel_grid(len(panels))
    groups = np.arange(len(table.conditions))
    for ax, (title, curves) in zip(axes, panels):
        width = 0.8 / len(curves)
        for k, curve in enumerate(curves):
            at = groups - 0.4 + width * (k + 0.5)
            ax.bar(at, table.mean(*curve), width, yerr=np.nan_to_num(table.std(*curve)), capsize=2,
                   label=_curve_label(curve, curves))
            null_mean = table.mean(*curve, "null_mean")
            if np.isfinite(null_mean).any():
                ax.errorbar(at, null_mean, yerr=2 * table.mean(*curve, "null_std"), fmt="_", color="0.35", lw=2,
                            label="null ± 2 std" if k == 0 else None)
        ax.set_xticks(groups, [axis.text(v) for v in table.coords(axis)], rotation=30, ha="right")
        _style(ax, title, axis.title)
    caption = "Bars: mean over SAE seeds and replicates, error bars: their std" + _null_caption(table, "marks")
    fig.suptitle(caption, fontsize=8)
    fig.tight_layout()
    return _save(fig, out, stem, kind, caption)


def _rest_groups(table: Table, others: Sequence[Axis]) -> list[tuple[str, list[str]]]:
    """The conditions grouped by their values of ``others`` (grid order): ('k=v, ...', conditions)."""
    groups: dict[tuple[Any, ...], list[str]] = {}
    for c in table.conditions:
        cond = condition_of(c)
        groups.setdefault(tuple(cond.get(a.name) for a in others), []).append(c)
    ordered = sorted(groups.items(), key=lambda kv: tuple(a.position(v) for a, v in zip(others, kv[0])))
    return [(", ".join(f"{a.short}={a.text(v)}" for a, v in zip(others, key)), conds) for key, conds in ordered]


def grid_means(table: Table, curve: Curve, rows: Axis, cols: Axis, conditions: Sequence[str]) -> np.ndarray:
    """(len(rows.values), len(cols.values)) means of ``curve`` over the two axes (NaN where not measured)."""
    out = np.full((len(rows.values), len(cols.values)), np.nan)
    means = dict(zip(table.conditions, table.mean(*curve)))
    for c in conditions:
        cond = condition_of(c)
        i, j = rows.position(cond.get(rows.name)), cols.position(cond.get(cols.name))
        if i < len(rows.values) and j < len(cols.values):
            out[i, j] = means[c]
    return out


def heatmap_figures(out: Path, stem: str, table: Table, curves: list[Curve]) -> list[str]:
    """One heatmap per curve of its mean over SAE seeds and replicates, first axis down, second
    across; one figure per combination of the values of any further axes (none without curves)."""
    if not curves:
        return []
    first, second, others = table.axes[0], table.axes[1], table.axes[2:]
    figures = []
    for k, (rest, conditions) in enumerate(_rest_groups(table, others)):
        fig, axes = _panel_grid(len(curves), size=(4.4, 3.6))
        for ax, curve in zip(axes, curves):
            _heatmap(ax, grid_means(table, curve, first, second, conditions), first, second, _title(curve))
        caption = (f"Mean over SAE seeds and replicates of each metric by {first.title} (rows) and "
                   f"{second.title} (columns){' at ' + rest if rest else ''}; blank: not measured.")
        fig.suptitle(caption, fontsize=8)
        fig.tight_layout()
        figures.append(_save(fig, out, stem, "heatmaps" + (f"-{k + 1}" if others else ""), caption))
    return figures


def _heatmap(ax: Any, matrix: np.ndarray, rows: Axis, cols: Axis, title: str) -> None:
    """A heatmap with its axes labelled with the values and each cell annotated (up to 12 x 12)."""
    image = ax.imshow(np.ma.masked_invalid(matrix), cmap="viridis", aspect="auto")
    ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(len(cols.values)), [cols.text(v) for v in cols.values], rotation=30, ha="right")
    ax.set_yticks(range(len(rows.values)), [rows.text(v) for v in rows.values])
    ax.set_ylabel(rows.title, fontsize=8)
    if max(matrix.shape) <= 12:
        finite = matrix[np.isfinite(matrix)]
        middle = (finite.min() + finite.max()) / 2 if finite.size else 0.0
        for (i, j), v in np.ndenumerate(matrix):
            if np.isfinite(v):
                ax.text(j, i, _fmt(v), ha="center", va="center", fontsize=6, color="k" if v > middle else "w")
    _style(ax, title, cols.title)


# --- sae_pairs: value x value matrices ------------------------------------------------------------


def pair_axes(rows: list[dict[str, Any]]) -> list[str]:
    """Axes that appear as a 2-list [value_a, value_b] in some row's condition (first seen first)."""
    found: dict[str, None] = {}
    for c in dict.fromkeys(r["condition_json"] for r in rows):
        for name, value in condition_of(c).items():
            if isinstance(value, list):
                found[name] = None
    return list(found)


def pair_axis(config: dict[str, Any], rows: list[dict[str, Any]], name: str) -> Axis:
    """The pair axis ``name`` with every value found in the rows (in pairs or alone), in grid order."""
    grid = next((list(a.get("values", [])) for a in config.get("axes", []) or []
                 if isinstance(a, dict) and a.get("axis") == name), [])
    found: list[Any] = []
    for c in dict.fromkeys(r["condition_json"] for r in rows):
        value = condition_of(c).get(name)
        for v in (value if isinstance(value, list) else [] if value is None else [value]):
            if v not in found:
                found.append(v)
    if found and all(_is_number(v) for v in found):
        return Axis(name, tuple(sorted(found)))
    return Axis(name, tuple([v for v in grid if v in found] + [v for v in found if v not in grid]))


def pair_matrix(table: Table, axis: Axis, pairing: str, metric: str, conditions: Sequence[str]) -> np.ndarray:
    """Symmetric (n, n) matrix over ``axis``'s values: cell (a, b) and (b, a) = mean over seed pairs
    and replicates of the unordered pair {a, b} (conditions [a, b] and [b, a]); the diagonal (a, a)
    = the mean of pairs of SAEs with equal settings a and different seeds (conditions [a, a], or a
    alone), the seed-vs-seed floor. NaN where not measured."""
    n = len(axis.values)
    cells: dict[tuple[int, int], list[float]] = defaultdict(list)
    by_condition = table.cells.get((pairing, metric), {})
    for c in conditions:
        value = condition_of(c).get(axis.name)
        if value is None:
            continue
        for r in by_condition.get(c, []):
            i, j = sorted(axis.position(v) for v in (value if isinstance(value, list) else [value, value]))
            if i == j and r["seed_a"] == r["seed_b"] and r["member_a"] == r["member_b"]:
                continue  # an SAE against itself
            if j < n and r["value"] is not None:
                cells[i, j].append(r["value"])
    out = np.full((n, n), np.nan)
    for (i, j), values in cells.items():
        out[i, j] = out[j, i] = float(np.mean(values))
    return out


def matrix_figure(out: Path, stem: str, kind: str, axis: Axis, matrices: dict[str, np.ndarray], mode: str,
                  suffix: str) -> str:
    """One value x value heatmap per similarity metric (``mode`` pairing)."""
    fig, axes = _panel_grid(len(matrices), size=(4.4, 3.8))
    for ax, (metric, matrix) in zip(axes, matrices.items()):
        _heatmap(ax, matrix, axis, axis, _title((mode, metric)))
    caption = (f"Similarity of two SAEs of the same member by their {axis.title}{suffix}, {mode or 'no'} pairing: "
               f"off-diagonal cells = mean over seed pairs and replicates of the unordered pair (the matrix is "
               f"symmetric); the diagonal = SAEs of equal settings and different seeds, the seed-vs-seed floor "
               f"any difference must exceed; blank: not measured.")
    fig.suptitle(caption, fontsize=7, wrap=True)
    fig.tight_layout()
    return _save(fig, out, stem, kind, caption)


def pair_matrix_findings(axis: Axis, matrices: dict[str, np.ndarray], mode: str, suffix: str) -> list[str]:
    """Per metric: the seed-vs-seed floor of each value, and the most and least similar pair of values."""
    out = []
    for metric, matrix in matrices.items():
        diagonal = [f"{axis.text(v)} {matrix[i, i]:.3f}" for i, v in enumerate(axis.values) if np.isfinite(matrix[i, i])]
        upper = [(matrix[i, j], i, j) for i in range(len(axis.values)) for j in range(i + 1, len(axis.values))
                 if np.isfinite(matrix[i, j])]
        parts = []
        if diagonal:
            parts.append(f"seed-vs-seed floor {', '.join(diagonal)}")
        if upper:
            (lo, i0, j0), (hi, i1, j1) = min(upper), max(upper)
            parts.append(f"between different {axis.short} values from {lo:.3f} ({axis.text(axis.values[i0])} vs "
                         f"{axis.text(axis.values[j0])}) to {hi:.3f} ({axis.text(axis.values[i1])} vs "
                         f"{axis.text(axis.values[j1])})")
            if diagonal:
                floor = np.nanmin(np.diag(matrix))
                below = sum(v < floor for v, _, _ in upper)
                parts.append(f"{below} of {len(upper)} pairs below the lowest floor {floor:.3f}")
        if parts:
            where = f" ({mode} pairing)" if mode else ""
            out.append(f"{metric}{where} by {axis.short}{suffix}: " + "; ".join(parts) + ".")
    return out


# --- Pareto front -------------------------------------------------------------------------------


def pareto_objectives(config: dict[str, Any], analysis: str, table: Table) -> tuple[str, str] | None:
    """(x metric, y metric) the analysis declares as objectives (both maximised): the config entry's
    'objectives', else the analysis registry's; 'explained_variance' falls
    back to '1 - normalized_mse' when only that is measured. None without two measured objectives."""
    entry = next((a for a in config.get("analyses", []) or [] if isinstance(a, dict) and a.get("name") == analysis), {})
    declared = tuple(entry.get("objectives") or _registered(analysis, "objectives"))
    if len(declared) < 2:
        return None
    chosen = []
    for metric in declared[:2]:
        if metric == "explained_variance" and not table.has("", metric) and table.has("", "normalized_mse"):
            metric = "1 - normalized_mse"
        chosen.append(metric)
    if not all(_objective_values(table, m) is not None for m in chosen):
        return None
    return chosen[0], chosen[1]


def _registered(analysis: str, declaration: str) -> tuple[str, ...]:
    """What the analysis registry declares for ``analysis`` ('objectives' or 'tradeoff'); () for an
    analysis it does not hold."""
    from featgeom.experiments.analyses import ANALYSES

    found = ANALYSES.get(analysis)
    return getattr(found, declaration) if found is not None else ()


def _objective_values(table: Table, metric: str) -> np.ndarray | None:
    """Mean of an objective at each condition ('1 - normalized_mse' derived), None when not measured."""
    if metric == "1 - normalized_mse":
        return 1 - table.mean("", "normalized_mse") if table.has("", "normalized_mse") else None
    return table.mean("", metric) if table.has("", metric) else None


def pareto_points(table: Table, objectives: tuple[str, str]) -> tuple[np.ndarray, list[str]]:
    """(n, 2) objective means of the conditions where both are defined, and their names."""
    xs, ys = (_objective_values(table, m) for m in objectives)
    keep = [i for i in range(len(table.conditions)) if np.isfinite(xs[i]) and np.isfinite(ys[i])]
    return np.array([[xs[i], ys[i]] for i in keep]).reshape(-1, 2), [table.name(i) for i in keep]


def pareto_indices(points: np.ndarray) -> np.ndarray:
    """Indices of the non-dominated points, both objectives maximised (featgeom.metrics.pareto_front)."""
    from featgeom.metrics.pareto import pareto_front

    return pareto_front(points, maximize=True)


def pareto_figure(out: Path, stem: str, points: np.ndarray, names: list[str], front: np.ndarray,
                  objectives: tuple[str, str]) -> str:
    """Scatter of the conditions' objective means; the non-dominated ones marked and joined."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.0, 4.6))
    ax.scatter(points[:, 0], points[:, 1], color="0.55", s=18, label="dominated")
    on_front = points[front][np.argsort(points[front][:, 0])]
    ax.plot(on_front[:, 0], on_front[:, 1], color="C3", marker="o", ms=6, lw=1.2, label="Pareto front")
    for (x, y), name in zip(points, names):
        ax.annotate(name, (x, y), fontsize=6, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel(f"{objectives[0]} (higher is better)", fontsize=8)
    ax.set_ylabel(f"{objectives[1]} (higher is better)", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7)
    caption = (f"{objectives[1]} against {objectives[0]}, one point per condition (mean over SAE seeds and "
               f"replicates); red: the non-dominated conditions (no other is at least as good on both and "
               f"better on one), joined in order of {objectives[0]}.")
    ax.set_title("Pareto front", fontsize=9)
    fig.tight_layout()
    return _save(fig, out, stem, "pareto", caption)


def pareto_findings(points: np.ndarray, names: list[str], front: np.ndarray,
                    objectives: tuple[str, str]) -> list[str]:
    """The front, and the conditions best on each objective (the specialists), from the means."""
    x_name, y_name = objectives
    ordered = sorted(front, key=lambda i: points[i, 0])
    on_front = ", ".join(f"{names[i]} ({x_name} {points[i, 0]:.3f}, {y_name} {points[i, 1]:.3f})" for i in ordered)
    out = [f"Pareto front of {x_name} and {y_name} (means over seeds): {len(front)} of {len(names)} conditions "
           f"are non-dominated: {on_front}."]
    # the best on one objective, ties broken by the other
    best_x, best_y = int(np.lexsort((points[:, 1], points[:, 0]))[-1]), int(np.lexsort((points[:, 0], points[:, 1]))[-1])
    label_x = SPECIALISTS.get(x_name, f"best {x_name}")
    label_y = SPECIALISTS.get(y_name, f"best {y_name}")
    if best_x == best_y:
        out.append(f"{names[best_x]} is best on both objectives ({x_name} {points[best_x, 0]:.3f}, {y_name} "
                   f"{points[best_x, 1]:.3f}): no trade-off between {label_x} and {label_y} here.")
    else:
        out.append(f"The {label_x} is {names[best_x]} ({x_name} {points[best_x, 0]:.3f}, {y_name} "
                   f"{points[best_x, 1]:.3f}); the {label_y} is {names[best_y]} ({y_name} {points[best_y, 1]:.3f}, "
                   f"{x_name} {points[best_y, 0]:.3f}).")
    return out


@dataclass(frozen=True)
class TradeoffGroup:
    """The conditions of one value of the grouping axis: their labels by the other axes and the
    (n, 2) means of the two trade-off metrics, in grid order; ``front``: indices of its non-dominated points."""

    value: str
    labels: list[str]
    points: np.ndarray
    front: np.ndarray


def tradeoff_groups(table: Table, metrics: Sequence[str]) -> tuple[Axis, tuple[str, str], list[TradeoffGroup]] | None:
    """(grouping axis, (x, y) metrics, groups) for a per-group trade-off front: the part's first
    categorical axis groups the conditions, the other varying axes label them; None unless both
    metrics are measured, there is a categorical axis and another one, and some group has >= 2 points."""
    if len(metrics) != 2 or not all(table.has("", m) for m in metrics):
        return None
    by = next((a for a in table.axes if not a.numeric), None)
    if by is None or len(table.axes) < 2:
        return None
    others = [a for a in table.axes if a is not by]
    xs, ys = table.mean("", metrics[0]), table.mean("", metrics[1])
    groups = []
    for value in by.values:
        keep = [i for i, c in enumerate(table.conditions) if condition_of(c).get(by.name) == value
                and np.isfinite(xs[i]) and np.isfinite(ys[i])]
        if not keep:
            continue
        labels = [", ".join(f"{a.short}={a.text(condition_of(table.conditions[i]).get(a.name))}" for a in others)
                  for i in keep]
        points = np.array([[xs[i], ys[i]] for i in keep])
        groups.append(TradeoffGroup(by.text(value), labels, points, pareto_indices(points)))
    if not any(len(g.labels) >= 2 for g in groups):
        return None
    return by, (metrics[0], metrics[1]), groups


def tradeoff_figure(out: Path, stem: str, by: Axis, metrics: tuple[str, str], groups: list[TradeoffGroup]) -> str:
    """One colour per value of ``by``: its conditions in grid order (thin line) and its front (markers
    joined in order of the x metric), each point labelled with the other axes' values."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    for k, g in enumerate(groups):
        colour = f"C{k % 10}"
        ax.plot(g.points[:, 0], g.points[:, 1], color=colour, lw=0.6, alpha=0.5, marker=".", ms=4)
        on_front = g.points[g.front][np.argsort(g.points[g.front][:, 0])]
        ax.plot(on_front[:, 0], on_front[:, 1], color=colour, marker="o", ms=6, lw=1.4, label=g.value)
        for (x, y), label in zip(g.points, g.labels):
            ax.annotate(label, (x, y), fontsize=5.5, color=colour, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel(f"{metrics[0]} (higher is better)", fontsize=8)
    ax.set_ylabel(f"{metrics[1]} (higher is better)", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7, title=by.title, title_fontsize=7)
    caption = (f"{metrics[1]} against {metrics[0]} per {by.title}: each point one condition (mean over SAE seeds "
               f"and replicates), labelled with its other axes; thick line and large markers: that "
               f"{by.short}'s non-dominated conditions (its trade-off front), thin line: all its conditions in grid order.")
    ax.set_title(f"{metrics[1]}-{metrics[0]} trade-off per {by.short}", fontsize=9)
    fig.tight_layout()
    return _save(fig, out, stem, "tradeoff", caption)


def tradeoff_findings(by: Axis, metrics: tuple[str, str], groups: list[TradeoffGroup]) -> list[str]:
    """Per value of ``by``: its front's size and ends; then which values the front of all groups is made of."""
    x_name, y_name = metrics
    out = []
    for g in groups:
        ordered = sorted(g.front, key=lambda i: g.points[i, 0])
        lo, hi = ordered[0], ordered[-1]
        ends = (f"from {g.labels[lo]} ({x_name} {g.points[lo, 0]:.3f}, {y_name} {g.points[lo, 1]:.3f}) to "
                f"{g.labels[hi]} ({x_name} {g.points[hi, 0]:.3f}, {y_name} {g.points[hi, 1]:.3f})"
                if lo != hi else f"{g.labels[lo]} ({x_name} {g.points[lo, 0]:.3f}, {y_name} {g.points[lo, 1]:.3f})")
        out.append(f"{by.short}={g.value}: {len(g.front)} of {len(g.labels)} conditions on its {y_name}-{x_name} "
                   f"front, {ends}.")
    everything = np.vstack([g.points for g in groups])
    owners = [g.value for g in groups for _ in g.labels]
    joint = pareto_indices(everything)
    counts = {v: sum(owners[i] == v for i in joint) for v in dict.fromkeys(owners)}
    share = ", ".join(f"{v} {n}" for v, n in sorted(counts.items(), key=lambda kv: -kv[1]))
    out.append(f"The {y_name}-{x_name} front of all {by.short} values together has {len(joint)} conditions: {share}.")
    return out


# --- findings -------------------------------------------------------------------------------------


def findings(table: Table, axis: Axis) -> list[str]:
    """Sentences computed from the measured numbers of a comparison part over one numeric axis
    (no canned conclusions): the identical-members values, flat / trending / noisy metrics, the
    achieved superposition, where each metric beats its null, and the ground truth."""
    mode = table.main_mode
    x = np.asarray(table.coords(axis), dtype=float)
    out = []
    if axis.identity is not None and axis.identity in x:
        i = int(np.flatnonzero(x == axis.identity)[0])
        parts = [f"{m} {table.mean(mode, m)[i]:.3f}" for m in similarity_metrics(table) if table.has(mode, m)]
        if table.has(mode, "correspondence_accuracy"):
            parts.append(f"correspondence accuracy {table.mean(mode, 'correspondence_accuracy')[i]:.3f}")
        seeds = "SAEs of different seeds" if any(r["seed_a"] != r["seed_b"] for r in table.rows) else "SAEs of equal seeds"
        out.append(f"On identical members ({axis.short} = {axis.identity:g}; {seeds}), {mode} pairing gives "
                   f"{', '.join(parts)}.")
    out += trend_findings(table, mode, similarity_metrics(table) + ["correspondence_accuracy", "n_pairs"], axis)
    if axis.short == "superposition_delta" and table.has("", "rho_mm_b"):
        rho_a, rho_b = table.mean("", "rho_mm_a"), table.mean("", "rho_mm_b")
        if np.nanmax(rho_b) - np.nanmin(rho_b) > 1e-3:
            out.append(f"Achieved superposition: the variant's rho_mm goes {rho_b[0]:.3f} → {rho_b[-1]:.3f} "
                       f"(base {rho_a[0]:.3f}).")
    out += _null_findings(table, mode)
    out += _truth_findings(table, mode)
    return out


def trend_findings(table: Table, pairing: str, metrics: Sequence[str], axis: Axis) -> list[str]:
    """Each metric over a numeric axis: flat (range over conditions < FLAT, relative for RELATIVE
    metrics), a trend (|Spearman ρ| >= MONOTONE, or fewer than 3 conditions), or no monotone trend."""
    x = np.asarray(table.coords(axis), dtype=float)
    where = f" ({pairing} pairing)" if pairing else ""
    flat, trends, noisy = [], [], []
    for m in metrics:
        if not table.has(pairing, m):
            continue
        means = table.mean(pairing, m)
        if not np.isfinite(means).any():
            continue
        rho = _spearman(x, means)
        if _spread(m, means) < FLAT:
            flat.append(f"{m} {_fmt(means[0])} → {_fmt(means[-1])}")
        elif len(means) < 3 or abs(rho) >= MONOTONE:
            d = means[-1] - means[0]
            rel = f" ({d / means[0]:+.0%})" if abs(means[0]) > 1e-12 else ""
            trends.append(f"{m}{where} {'falls' if d < 0 else 'rises'} from {_fmt(means[0])} to {_fmt(means[-1])}"
                          f"{rel} as {axis.short} goes {x[0]:g} → {x[-1]:g}"
                          + (f" (Spearman ρ = {rho:+.2f})." if np.isfinite(rho) else "."))
        else:
            noisy.append(f"{m}{where} varies between {_fmt(np.nanmin(means))} and {_fmt(np.nanmax(means))} "
                         f"across conditions with no monotone trend (Spearman ρ = {rho:+.2f}"
                         f"{_seed_spread(table, pairing, m)}).")
    out = []
    if flat:
        mode_text = f", {pairing} pairing" if pairing else ""
        out.append(f"Flat across the sweep ({axis.short} {x[0]:g} → {x[-1]:g}{mode_text}; "
                   f"range over conditions < {FLAT}, relative for counts and errors): " + ", ".join(flat) + ".")
    return out + trends + noisy


def extreme_findings(table: Table, curves: Sequence[Curve]) -> list[str]:
    """Each curve's highest and lowest condition mean, with the spread over seeds to judge it by;
    curves whose range over conditions is below FLAT (relative for RELATIVE metrics) in one sentence."""
    out, flat = [], []
    for pairing, metric in curves:
        means = table.mean(pairing, metric)
        if np.isfinite(means).sum() < 2:
            continue
        hi, lo = int(np.nanargmax(means)), int(np.nanargmin(means))
        where = f" ({pairing} pairing)" if pairing else ""
        if _spread(metric, means) < FLAT:
            flat.append(f"{metric}{where} {_fmt(means[lo])}–{_fmt(means[hi])}")
            continue
        out.append(f"{metric}{where}: highest {_fmt(means[hi])} at {table.name(hi)}, lowest {_fmt(means[lo])} at "
                   f"{table.name(lo)} (over {int(np.isfinite(means).sum())} conditions"
                   f"{_seed_spread(table, pairing, metric)}).")
    if flat:
        out.append(f"About equal at every condition (range < {FLAT}, relative for counts and errors): "
                   + ", ".join(flat) + ".")
    return out


def _spread(metric: str, means: np.ndarray) -> float:
    """Range of the condition means: absolute, or relative to the first finite one for RELATIVE metrics."""
    finite = means[np.isfinite(means)]
    scale = max(abs(finite[0]), 1e-12) if metric in RELATIVE else 1.0
    return float((finite.max() - finite.min()) / scale)


def level_findings(table: Table, curves: Sequence[Curve]) -> list[str]:
    """The values of a part with one condition (no grid axis varies)."""
    parts = [f"{_title(c)} {_fmt(table.mean(*c)[0])}" for c in curves if np.isfinite(table.mean(*c)).any()]
    if not parts or not table.conditions:
        return []
    return [f"At {table.name(0)} (mean over seeds and replicates): {', '.join(parts)}."]


def _null_findings(table: Table, mode: str) -> list[str]:
    """Where each similarity metric stops being distinguishable from the run's primary null."""
    out = []
    for m in similarity_metrics(table):
        if not table.has(mode, m):
            continue
        p = table.series(mode, m, "p_value")
        if not np.isfinite(p).any():
            continue
        worst_p = _row_stat(p, np.nanmax)
        margin = table.mean(mode, m) - table.mean(mode, m, "null_mean")
        failing = [table.name(i) for i, q in enumerate(worst_p) if np.isfinite(q) and not q < 0.05]
        if not failing:
            where = "at every condition"
        elif len(failing) == np.isfinite(worst_p).sum() and len(failing) > 1:
            where = f"at no condition (smallest p-value {np.nanmin(p):.3g})"
        else:
            where = f"except at {'; '.join(failing)}"
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
    if len(table.conditions) >= 3 and np.nanstd(gt) > 1e-3:
        tracks = []
        for m in similarity_metrics(table) + ["correspondence_accuracy"]:
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
    """Rank correlation of the condition means with the axis values (NaN if undefined)."""
    from scipy.stats import rankdata

    ok = np.isfinite(y)
    return _pearson(rankdata(x[ok]), rankdata(y[ok])) if ok.sum() >= 3 else float("nan")


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3 or np.std(x[ok]) == 0 or np.std(y[ok]) == 0:
        return float("nan")
    return float(np.corrcoef(x[ok], y[ok])[0, 1])


def _values_table(table: Table) -> str:
    """Every (pairing, metric) at every condition (columns: the conditions' labels)."""
    headers = ["pairing", "metric", *[table.labels[c] or "—" for c in table.conditions]]
    rows = []
    for (pairing, metric) in sorted(table.cells):
        values, p = table.series(pairing, metric), table.series(pairing, metric, "p_value")
        cells = []
        measured = table.cells[pairing, metric]
        for i, condition in enumerate(table.conditions):
            if condition not in measured:
                cells.append("—")
                continue
            row = values[i][np.isfinite(values[i])]
            text = "undefined" if row.size == 0 else f"{row.mean():.4g}" + (f" ± {row.std():.2g}" if row.size > 1 else "")
            if np.isfinite(p[i]).any():
                text += f" (p={np.nanmax(p[i]):.3g})"
            cells.append(text)
        rows.append([pairing or "—", metric, *cells])
    return f"<div class='scroll'>{html_table(headers, rows)}</div>"


# --- feature splitting: the decoder vectors that split one true feature (plan task 3.2) ---

SPLIT_ARCH = "matching_pursuit"  # the figure's SAE: this architecture's where the run has it


def split_example(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The 'feature_splitting' rows of the figure's SAE, as metric -> value plus its condition,
    seed and replicate: among SAEs with a split feature, those of SPLIT_ARCH when there are any,
    then the highest member rho_mm, then the lowest (replicate, seed, condition). None without one."""
    saes: dict[tuple[str, int, int], dict[str, Any]] = defaultdict(dict)
    for r in rows:
        if r["analysis"] == "feature_splitting" and r["value"] is not None:
            saes[r["condition_json"], r["replicate"], r["seed_a"]][r["metric"]] = r["value"]
    found = [(key, m) for key, m in saes.items() if "most_split_latents" in m and "rho_mm" in m]
    if not found:
        return None
    preferred = [(key, m) for key, m in found if condition_of(key[0]).get("sae.arch") == SPLIT_ARCH] or found
    (condition, replicate, seed), metrics = min(preferred, key=lambda km: (-km[1]["rho_mm"], km[0][1], km[0][2], km[0][0]))
    return {**metrics, "condition": condition_of(condition), "replicate": replicate, "seed": seed}


def splitting_figure(out: Path, stem: str, rows: list[dict[str, Any]]) -> list[str]:
    """The most-split true feature of one SAE (:func:`split_example`) and the k decoder vectors it
    is split over, as arrows in the plane of the feature (x) and the latents' residual direction
    (y): x = cos(latent, feature), y = the latent's part orthogonal to the feature along the
    direction those parts spread most (``featgeom.experiments.analyses.split_features``). Drawn
    from the analysis's stored rows, so the figure needs no SAE artifact."""
    from featgeom.experiments.analyses import SPLIT_TARGET

    ex = split_example(rows)
    if ex is None:
        return []
    k = int(ex["most_split_latents"])
    shown = next(i for i in itertools.count(1) if f"split_cos_{i}" not in ex) - 1  # the rows keep the first 10
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    circle = np.linspace(0, 2 * np.pi, 200)
    ax.plot(np.cos(circle), np.sin(circle), color="0.85", lw=0.8)
    ax.annotate("", xy=(1, 0), xytext=(0, 0), arrowprops={"arrowstyle": "-|>", "color": "black", "lw": 2})
    ax.text(1.02, -0.08, f"feature {int(ex['most_split_feature'])}", fontsize=7)
    colours = plt.get_cmap("tab10")
    for i in range(1, shown + 1):
        x, y = ex[f"split_cos_{i}"], ex[f"split_perp_{i}"]
        ax.annotate("", xy=(x, y), xytext=(0, 0), arrowprops={"arrowstyle": "-|>", "color": colours(i - 1), "lw": 1.4})
        ax.text(x * 1.05, y * 1.05, f"latent {i}: cos {x:.2f}", fontsize=7, color=colours(i - 1))
    ax.set_xlim(-1.15, 1.45)
    ax.set_ylim(-1.15, 1.15)
    ax.set_aspect("equal")
    label = ", ".join(f"{k_.rsplit('.', 1)[-1]}={v:g}" if _is_number(v) else f"{k_.rsplit('.', 1)[-1]}={v}"
                      for k_, v in ex["condition"].items())
    _style(ax, f"{label}, seed {ex['seed']}", "cos with the feature")
    ax.set_ylabel("along the latents' residual direction", fontsize=8)
    caption = (f"Decoder vectors splitting one true feature: the SAE ({label}, seed {ex['seed']}, hidden_dim "
               f"{ex.get('hidden_dim', float('nan')):g}, rho_mm {ex['rho_mm']:.3f}) reconstructs feature "
               f"{int(ex['most_split_feature'])} only with {k} latents together (joint cos "
               f"{ex.get('most_split_joint_cos', float('nan')):.2f}; no one of them alone reaches cos {SPLIT_TARGET}; its "
               "most-split feature, "
               f"{ex.get('split_fraction', float('nan')):.0%} of its features are split); arrows: the unit feature "
               "(black) and the unit decoder rows projected on the plane of the feature and the direction their "
               "parts orthogonal to it spread along (an arrow shorter than 1 points partly out of the plane)"
               + (f"; the {shown} latents most aligned with it are drawn." if shown < k else "."))
    fig.tight_layout()
    return [_save(fig, out, stem, "splitting", caption)]
