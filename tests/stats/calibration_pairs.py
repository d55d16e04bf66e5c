"""Independent pairs of trained SAEs on planted truth, compared as users compare them.

Replicate r: a `tiny` family drawn with seed r whose variant shares ``overlap`` of the base's
features (0: the two models share nothing, so every null hypothesis holds); one TopK SAE per
member (base seed r, variant seed r + 10_000: never the same initialisation); then
``featgeom.compare.compare`` (every pairing mode) on ``n_sets`` independent sets of ``samples`` shared inputs. Each replicate runs in a worker process with one torch and one BLAS thread.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np

TRAIN_SAMPLES = 30_000
COMPARE_SAMPLES = 3_000


@dataclass(frozen=True)
class Replicate:
    seed: int
    overlap: float
    n_sets: int
    n_perm: int
    nulls: tuple[str, ...]
    extra_nulls_sets: int = 1  # input sets (the first ones) on which nulls[1:] run too
    metrics: tuple[str, ...] | None = None  # similarity metrics scored (None: compare's default, all)
    samples: int = COMPARE_SAMPLES  # shared inputs per comparison


def p_values(rep: Replicate) -> dict[tuple[str, str, str], list[float]]:
    """(null, mode, metric) -> the p-values of the replicate's comparisons (one per input set;
    nulls after the first only on the first ``extra_nulls_sets`` sets)."""
    import torch
    from threadpoolctl import threadpool_limits

    from featgeom.compare import compare
    from featgeom.family import FamilyConfig, build_family
    from featgeom.match import MODES
    from featgeom.sae import train
    from featgeom.sae.recipes import recipe

    torch.set_num_threads(1)
    with threadpool_limits(1):
        fam = build_family(FamilyConfig.from_dict({
            "name": "calibration", "world": "tiny", "seed": rep.seed,
            "variants": [{"name": "other", "feature_overlap_ratio": rep.overlap}]}))
        saes = {m: train(fam, m, recipe("topk", fam, m, samples=TRAIN_SAMPLES, seed=seed), eval_samples=1024).sae
                for m, seed in (("base", rep.seed), ("other", rep.seed + 10_000))}
        out: dict[tuple[str, str, str], list[float]] = {}
        for k in range(rep.n_sets):
            batch = fam.sample(rep.samples, seed=50_000 + 97 * rep.seed + k, members=["base", "other"])
            nulls = rep.nulls if k < rep.extra_nulls_sets else rep.nulls[:1]
            result = compare(saes["base"], saes["other"], batch.hidden["base"], batch.hidden["other"],
                             modes=MODES, n_perm=rep.n_perm, seed=k, nulls=nulls, metrics=rep.metrics)
            for mode, summary in result.pairings.items():
                for metric, test in summary.items():
                    if isinstance(test, dict):
                        for null, t in test["nulls"].items():
                            out.setdefault((null, mode, metric), []).append(t["p_value"])
        return out


def collect(reps: list[Replicate], workers: int = 2) -> dict[tuple[str, str, str], np.ndarray]:
    """p-values of every replicate, (null, mode, metric) -> (len(reps), sets tested) array."""
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        results = list(pool.map(p_values, reps))
    return {key: np.array([r[key] for r in results]) for key in results[0]}


if __name__ == "__main__":  # timing / exploration: python tests/stats/calibration_pairs.py N OVERLAP N_SETS N_PERM
    import sys
    import time

    n, overlap, n_sets, n_perm = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    t = time.perf_counter()
    p = collect([Replicate(s, overlap, n_sets, n_perm, ("repair", "shuffle"), n_sets) for s in range(n)])
    print(f"{n} replicates x {n_sets} sets in {time.perf_counter() - t:.0f} s")
    for key, values in sorted(p.items()):
        print(key, f"P(p<=0.05) = {np.mean(values <= 0.05):.3f}", f"P(p<0.01) = {np.mean(values < 0.01):.3f}")
