"""The quickstart experiment (README's main job): is SAE universality measured correctly?

A 3-member family on a CPU preset — base, base rotated by 45°, and a variant sharing 70% of the
base's features — one TopK SAE per member (two seeds on the base), then ``compare`` of the base
SAE with (1) a second-seed SAE of the same model, (2) the rotated model's SAE, (3) the partial
model's SAE, with ground truth.  Writes results.json, results.csv and a self-contained
report.html; everything built is cached in OUT/store, so a re-run reuses it.
"""

from __future__ import annotations

import csv
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from featgeom.experiments.compare import SIMILARITY_METRICS, GroundTruth, compare

FAMILY = {"name": "quickstart", "variants": [{"name": "rotated", "basis_rotation_angle": 45.0},
                                             {"name": "partial", "feature_overlap_ratio": 0.7}]}


@dataclass(frozen=True)
class Condition:
    """One comparison: SAE (member_a, seed_a) vs SAE (member_b, seed_b)."""

    label: str
    member_a: str
    seed_a: int
    member_b: str
    seed_b: int
    shared_fraction: float


CONDITIONS = (
    Condition("same model, SAE seeds 0 vs 1", "base", 0, "base", 1, 1.0),
    Condition("rotated 45°", "base", 0, "rotated", 0, 1.0),
    Condition("70% shared features", "base", 0, "partial", 0, 0.7),
)


def run_quickstart(out: Path, preset: str = "small", sae_samples: int = 1_000_000, compare_samples: int = 20_000,
                   n_perm: int = 200, progress: bool = True) -> Path:
    """Run the quickstart into directory ``out``; return the report's path."""
    from featgeom.family import FamilyConfig, build_family, load, save
    from featgeom.sae import train
    from featgeom.sae.recipes import recipe

    started = time.perf_counter()
    store = out / "store"
    family_dir = store / f"family-{preset}"
    if family_dir.exists():
        family = load(family_dir)
    else:
        family = build_family(FamilyConfig.from_dict({**FAMILY, "world": preset}))
        save(family, family_dir)
    saes = {}
    for member, seed in sorted({(c.member_a, c.seed_a) for c in CONDITIONS} | {(c.member_b, c.seed_b) for c in CONDITIONS}):
        cfg = recipe("topk", family, member, samples=sae_samples, seed=seed)
        saes[member, seed] = train(family, member, cfg, store=store, progress=progress)
    batch = family.sample(compare_samples, seed=2024, with_features=True)
    rows = []
    for cond in CONDITIONS:
        a, b = saes[cond.member_a, cond.seed_a], saes[cond.member_b, cond.seed_b]
        result = compare(a.sae, b.sae, batch.hidden[cond.member_a], batch.hidden[cond.member_b], n_perm=n_perm,
                         ground_truth=GroundTruth.from_family(family, cond.member_a, cond.member_b, batch.features))
        rows.append({"condition": cond.label, "shared_fraction": cond.shared_fraction,
                     "sae_mcc_a": a.metrics["mcc"], "sae_mcc_b": b.metrics["mcc"], **result.to_dict()})
    minutes = (time.perf_counter() - started) / 60
    meta = {"preset": preset, "sae_samples": sae_samples, "compare_samples": compare_samples, "n_perm": n_perm,
            "family_summary": family.summary(), "minutes": minutes}
    (out / "results.json").write_text(json.dumps({"meta": meta, "results": rows}, indent=2, sort_keys=True))
    _write_csv(out / "results.csv", rows)
    return _write_report(out, rows, meta)


def flat_metrics(row: dict[str, Any]) -> dict[str, float]:
    """The headline numbers of one condition: similarity per mode, GT metrics."""
    flat: dict[str, float] = {}
    for mode, summary in row["pairings"].items():
        flat[f"{mode}.n_pairs"] = summary["n_pairs"]
        for metric in SIMILARITY_METRICS:
            flat[f"{mode}.{metric}"] = summary[metric]["observed"]
            flat[f"{mode}.{metric}.p"] = summary[metric]["p_value"]
            flat[f"{mode}.{metric}.null_mean"] = summary[metric]["null_mean"]
    gt = row["ground_truth"]
    for key in ("mcc_a", "mcc_b", "gt_mcc", "empirical_mcc", "universality_gap"):
        flat[key] = gt[key]
    for mode, acc in gt["correspondence_accuracy"].items():
        flat[f"{mode}.correspondence_accuracy"] = acc
    return flat


def findings(rows: list[dict[str, Any]]) -> list[str]:
    """Sentences computed from the measured numbers (no canned conclusions)."""
    flats = {r["condition"]: flat_metrics(r) for r in rows}
    same, rot, part = (flats[c.label] for c in CONDITIONS)
    out = [
        f"Two SAEs of the same model (different seeds): SVCCA of mutually paired decoders "
        f"{same['mutual.svcca']:.3f} (shuffled-null mean {same['mutual.svcca.null_mean']:.3f}, "
        f"p = {same['mutual.svcca.p']:.3g}); correspondence accuracy of the pairing {same['mutual.correspondence_accuracy']:.3f}.",
        f"Rotating the model by 45° changes SVCCA by {rot['mutual.svcca'] - same['mutual.svcca']:+.3f} "
        f"and correspondence accuracy by {rot['mutual.correspondence_accuracy'] - same['mutual.correspondence_accuracy']:+.3f}: "
        f"activation-correlation pairing and SVCCA are {'insensitive' if abs(rot['mutual.svcca'] - same['mutual.svcca']) < 0.05 else 'sensitive'} to the basis.",
        f"With 70% shared features the ground-truth ceiling GT-MCC is {part['gt_mcc']:.3f} (vs {same['gt_mcc']:.3f}); "
        f"the SAEs reach an empirical cross-model MCC of {part['empirical_mcc']:.3f} (universality gap {part['universality_gap']:.3f}); "
        f"many-to-one correspondence accuracy moves from {same['many_to_one.correspondence_accuracy']:.3f} to "
        f"{part['many_to_one.correspondence_accuracy']:.3f}.",
        f"The paper's legacy 'SVCCA' (top-1 direction) gives {same['mutual.svcca_legacy']:.3f} / {rot['mutual.svcca_legacy']:.3f} / "
        f"{part['mutual.svcca_legacy']:.3f} for the three conditions, against {same['mutual.svcca']:.3f} / "
        f"{rot['mutual.svcca']:.3f} / {part['mutual.svcca']:.3f} with the variance-threshold SVCCA.",
    ]
    return out


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    flats = [{"condition": r["condition"], **flat_metrics(r)} for r in rows]
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(flats[0]))
        writer.writeheader()
        writer.writerows(flats)


def _write_report(out: Path, rows: list[dict[str, Any]], meta: dict[str, Any]) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from featgeom.report import figure_tag, html_table, write_html

    flats = [flat_metrics(r) for r in rows]
    labels = [r["condition"] for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    x = np.arange(len(rows))
    for offset, metric in zip((-0.3, -0.1, 0.1, 0.3), ("svcca", "svcca_legacy", "cka", "rsa")):
        values = [f[f"mutual.{metric}"] for f in flats]
        nulls = [f[f"mutual.{metric}.null_mean"] for f in flats]
        axes[0].bar(x + offset, values, width=0.2, label=metric)
        axes[0].scatter(x + offset, nulls, color="k", marker="_", s=120, zorder=3)
    axes[0].set_xticks(x, labels, fontsize=8)
    axes[0].set_title("similarity of mutually paired decoders (— = shuffled null mean)")
    axes[0].legend(fontsize=8)
    for offset, key in zip((-0.2, 0.0, 0.2), ("gt_mcc", "empirical_mcc", "mutual.correspondence_accuracy")):
        axes[1].bar(x + offset, [f[key] for f in flats], width=0.2, label=key)
    axes[1].set_xticks(x, labels, fontsize=8)
    axes[1].set_title("ground truth: ceiling, empirical, pairing accuracy")
    axes[1].legend(fontsize=8)
    figure = figure_tag(fig, "quickstart metrics", save_as=out / "quickstart.png")
    fig.savefig(out / "quickstart.svg")
    plt.close(fig)
    keys = ["mutual.n_pairs", "mutual.svcca", "mutual.svcca.p", "mutual.svcca_legacy", "mutual.cka", "mutual.cka.p",
            "mutual.rsa", "mutual.rsa.p", "many_to_one.svcca", "gt_mcc", "empirical_mcc", "universality_gap",
            "mutual.correspondence_accuracy", "many_to_one.correspondence_accuracy", "mcc_a", "mcc_b"]
    table = html_table(["metric", *labels], [[k, *[f[k] for f in flats]] for k in keys])
    items = "".join(f"<li>{s}</li>" for s in findings(rows))
    body = (f"<p>Family on the <b>{meta['preset']}</b> preset; one TopK SAE per member ({meta['sae_samples']:,} "
            f"training samples), compared on {meta['compare_samples']:,} shared inputs with {meta['n_perm']} "
            f"shuffled pairings per null; {meta['minutes']:.1f} minutes in all.</p>"
            f"<h2>Findings</h2><ul class='findings'>{items}</ul><h2>Figures</h2>{figure}"
            f"<h2>All values</h2>{table}<h2>Configuration</h2><pre>{json.dumps(meta, indent=2)}</pre>")
    return write_html(out / "report.html", "featgeom quickstart: universality against ground truth", body)
