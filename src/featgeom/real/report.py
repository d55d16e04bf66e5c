"""The HTML report of a real-model comparison: layer-pair heatmaps with p-values (the paper's
figures 2, 5 and 6), the values table, semantic subspaces, the superposition proxy, timings.

Every sentence under "Findings" is computed from the stored rows.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import numpy as np

from featgeom.report.html import figure_tag, html_table, write_html

HEATMAPS = (("svcca", "SVCCA"), ("svcca_legacy", "SVCCA, paper's top-1 (legacy)"), ("rsa", "RSA"),
            ("cka", "linear CKA"), ("mean_corr", "mean activation correlation"), ("n_pairs", "pairs kept"))
PIPELINE_CHECK = ("minilm-l6", "minilm-l3")  # offline test models: numbers from them check the pipeline only


def write_real_report(result: Any, cfg: Any, a: Any, b: Any) -> Path:
    """Write ``result.out / report.html`` (figures also saved as PNG under figures/); its path."""
    out = Path(result.out)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    parts = [_caveat(cfg), _setup(cfg, a, b), "<h2>Findings</h2><ul class='findings'>"
             + "".join(f"<li>{html.escape(f)}</li>" for f in findings(result.rows, cfg, a, b)) + "</ul>"]
    null = cfg.nulls[0]
    for mode in cfg.modes:
        parts.append(f"<h2>Layer pairs, {html.escape(mode)} pairing</h2><p>Rows: layers of {html.escape(b.model.name)};"
                     f" columns: layers of {html.escape(a.model.name)}. Cells: value, and the p-value of the "
                     f"{html.escape(null)} null ({cfg.n_perm} permutations) where one applies.</p>")
        for metric, label in HEATMAPS:
            parts.append(_heatmap(out, result.rows, a, b, mode, metric, label, null))
    parts.append(_semantic(result.semantic, result.best, a, b))
    if result.viewer is not None:
        parts.append(f"<h2>Viewer</h2><p><a href='{html.escape(Path(result.viewer).name)}'>viewer.html</a>: the "
                     f"decoder directions of the most similar pair side by side ({cfg.viewer_projection.upper()}), paired "
                     "latents linked.</p>")
    parts.append(_spectra(out, result.spectra))
    parts.append("<h2>Time</h2>" + html_table(["step", "seconds"], [[k, v] for k, v in result.seconds.items()]))
    parts.append(f"<p>Every value is a row of <code>results.sqlite</code> / <code>results.csv</code> "
                 f"(config hash {html.escape(result.config_hash)}).</p>")
    return write_html(out / "report.html", f"featgeom real: {a.model.name} vs {b.model.name}", "".join(parts))


def _caveat(cfg: Any) -> str:
    if cfg.model_a in PIPELINE_CHECK or cfg.model_b in PIPELINE_CHECK:
        return ("<p><strong>Pipeline check.</strong> all-MiniLM-L6-v2 and paraphrase-MiniLM-L3-v2 are small "
                "sentence encoders of one lineage that ship in pip packages; they exercise every step offline. "
                "Their numbers are not a finding about language models.</p>")
    return ""


def _setup(cfg: Any, a: Any, b: Any) -> str:
    rows = [["corpus", cfg.corpus], ["windows x tokens", f"{cfg.n_windows} x {cfg.window}"],
            ["tokens compared (special positions masked)", f"{a.acts.n_tokens:,}"],
            ["pairing modes", ", ".join(cfg.modes)], ["nulls", ", ".join(cfg.nulls)],
            ["null permutes", "whole windows" if cfg.null_blocks == "window" else "single tokens"],
            ["non-concept filter", "on" if cfg.non_concept_filter else "off"], ["device", cfg.device]]
    saes = [[side.member(layer), info.get("source", ""), _num(info.get("explained_variance")), _num(info.get("l0")),
             _num(info.get("dead_fraction")), int(side.keep[layer].sum()), side.decoders[layer].shape[0]]
            for side in (a, b) for layer, info in side.sae_info.items()]
    return ("<h2>Setup</h2>" + html_table(["setting", "value"], rows) + "<h3>SAEs</h3>"
            + html_table(["layer", "SAE", "explained variance", "L0", "dead fraction", "kept latents", "latents"], saes))


def _num(v: Any) -> Any:
    return "" if v is None else float(v)


def findings(rows: list[dict[str, Any]], cfg: Any, a: Any, b: Any) -> list[str]:
    """Sentences computed from the rows: the best pair per metric, how many pairs beat the null,
    legacy against correct SVCCA."""
    from featgeom.real.sweep import layer_grid

    notes = []
    null = cfg.nulls[0]
    total = len(a.layers) * len(b.layers)
    for mode in cfg.modes:
        svcca = layer_grid(rows, a, b, mode, "svcca", null_kind=null)
        if np.all(np.isnan(svcca)):
            continue
        j, i = np.unravel_index(np.nanargmax(svcca), svcca.shape)
        p = layer_grid(rows, a, b, mode, "svcca", "p_value", null_kind=null)
        legacy = layer_grid(rows, a, b, mode, "svcca_legacy", null_kind=null)
        notes.append(f"{mode}: the most similar layer pair by SVCCA is {a.member(a.layers[i])} vs "
                     f"{b.member(b.layers[j])} ({svcca[j, i]:.3f}, p = {p[j, i]:.3g}).")
        significant = int(np.sum(p < 0.05))
        notes.append(f"{mode}: {significant} of {total} layer pairs have SVCCA p < 0.05 under the {null} null.")
        if not np.all(np.isnan(legacy)):
            notes.append(f"{mode}: the paper's top-1 SVCCA averages {np.nanmean(legacy):.3f} against "
                         f"{np.nanmean(svcca):.3f} for SVCCA over the 0.99-variance subspace.")
        n_pairs = layer_grid(rows, a, b, mode, "n_pairs")
        d = min(a.model.d_model, b.model.d_model)
        if np.nanmin(n_pairs) < 2 * d:
            notes.append(f"{mode}: some layer pairs keep fewer than 2 d = {2 * d} pairs (as few as "
                         f"{np.nanmin(n_pairs):.0f}); with so few rows per dimension SVCCA sits near 1 whatever the "
                         "models share, so read it against its null, not on its own.")
        rsa = layer_grid(rows, a, b, mode, "rsa", null_kind=null)
        if not np.all(np.isnan(rsa)):
            notes.append(f"{mode}: RSA ranges {np.nanmin(rsa):.3f} to {np.nanmax(rsa):.3f}.")
    return notes


def _heatmap(out: Path, rows: list[dict[str, Any]], a: Any, b: Any, mode: str, metric: str, label: str,
             null: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from featgeom.real.sweep import layer_grid

    values = layer_grid(rows, a, b, mode, metric, null_kind=null)
    if np.all(np.isnan(values)):
        return ""
    pvals = layer_grid(rows, a, b, mode, metric, "p_value", null_kind=null)
    fig, ax = plt.subplots(figsize=(1.0 + 0.9 * len(a.layers), 0.8 + 0.6 * len(b.layers)))
    im = ax.imshow(values, origin="lower", cmap="viridis", aspect="auto")
    fig.colorbar(im, ax=ax, label=label)
    for j in range(values.shape[0]):
        for i in range(values.shape[1]):
            text = f"{values[j, i]:.3g}" if metric != "n_pairs" else f"{values[j, i]:.0f}"
            if not np.isnan(pvals[j, i]):
                text += f"\np={pvals[j, i]:.2g}"
            ax.text(i, j, text, ha="center", va="center", fontsize=7, color="white")
    ax.set_xticks(range(len(a.layers)), [str(layer) for layer in a.layers])
    ax.set_yticks(range(len(b.layers)), [str(layer) for layer in b.layers])
    ax.set_xlabel(f"{a.model.name} layer")
    ax.set_ylabel(f"{b.model.name} layer")
    ax.set_title(f"{label} ({mode})")
    tag = figure_tag(fig, f"{label} {mode}", out / "figures" / f"{mode}-{metric}.png")
    plt.close(fig)
    return tag


def _semantic(rows: list[dict[str, Any]], best: tuple[int, int] | None, a: Any, b: Any) -> str:
    if not rows or best is None:
        return ""
    metrics = sorted({m for r in rows for m in (r.get("metrics") or {})})
    headers = ["category", "pairs", "latents A / B", "shared keywords"]
    for m in metrics:
        headers += [m, f"{m} Test 1 p", f"{m} Test 2 p", f"{m} random-subspace mean"]
    body = []
    for r in rows:
        row = [r["category"], r["n_pairs"], f"{r['n_latents_a']} / {r['n_latents_b']}",
               ", ".join(r.get("keywords") or []) or ""]
        for m in metrics:
            got = (r.get("metrics") or {}).get(m, {})
            if r["status"] != "ok" or "observed" not in got:
                row += [got.get("skipped") or r.get("reason") or "skipped", "", "", ""]
            else:
                row += [got["observed"], got["test1_p"], got["test2_p"], got["test2_null_mean"]]
        body.append(row)
    return (f"<h2>Semantic subspaces ({html.escape(a.member(best[0]))} vs {html.escape(b.member(best[1]))})</h2>"
            "<p>Pairs whose two latents both have a category keyword among their top tokens (whole-token match) "
            "and share one; Test 1 shuffles the pairing inside the category, Test 2 draws same-size random "
            "subsets of all pairs (its mean is the random-subspace baseline).</p>" + html_table(headers, body))


def _spectra(out: Path, rows: list[dict[str, Any]]) -> str:
    if not rows:
        return ""
    headers = list(dict.fromkeys(k for r in rows for k, v in r.items() if not isinstance(v, (list, dict, np.ndarray))))
    body = [[r.get(k) if r.get(k) is not None else "" for k in headers] for r in rows]
    return ("<h2>Superposition proxy</h2><p>Eigenvalue decay of each layer's activation covariance "
            "(participation ratio PR = (sum l)^2 / sum l^2, PR / d, effective rank, decay exponent alpha), beside "
            "synthetic family members whose superposition (rho_mm) is known, on the same statistic. Read with care: "
            "on synthetic worlds PR / d rises with more features per dimension, but falls when rho_mm is raised at "
            "a fixed feature count, so it is a proxy of how many features share the dimensions, not an estimate of "
            "rho_mm (tests/real/test_proxy.py).</p>" + html_table(headers, body))
