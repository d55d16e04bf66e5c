"""Benchmark featgeom.match against the naive dense blocked correlation of Lan et al. (2024).

Both pair SAE latents of model A with latents of model B by Pearson correlation of their
activations over the same samples, on synthetic sparse SAE-like activations (positive values,
L0 of tens) where a subset of B's latents are noisy copies of A's latents:

* ours: ``activation_correlation(top_k=1)`` (sparse sufficient statistics, blockwise top-k),
  then ``pair(mode="many_to_one")`` and ``pair(mode="mutual")``.
* reference: dense float32 blocks of A's latents against all of B's latents over all samples
  (standardized columns, one matmul per block), row argmax for many-to-one, column argmax for
  mutual. With ``--ref-latents`` it runs on that many A latents only and its time is
  extrapolated linearly; the output says so.

It also times the full ``featgeom.experiments.compare.compare_latents`` on the same activations
(pairing many_to_one and mutual; SVCCA, legacy SVCCA, RSA, CKA and Procrustes of the paired
decoder rows, each with a 1,000-permutation shuffle null), with unit-norm decoder rows in
D_MODEL dims: B's planted copies are A's rows under one random rotation plus noise. It prints
the floor that the nulls' matrix products alone impose on this CPU (see ``product_floor``).

Why the full compare cannot take < 60 s on 2 cores with exact 1,000-permutation nulls: each
permutation of a pairing with n pairs needs C = Ux^T Uy[perm] (r x r, r = 768 here), 2 n r^2
flops that no rearrangement avoids (C is linear in the permutation matrix, and a uniformly random
permutation shares no structure with the previous one). SVCCA (kx, ky ~ 755 of 768 at variance
0.99), CKA and Procrustes all read it off that one product: 1,000 products per pairing mode,
2 * 1000 * (16,384 many-to-one + ~14,000 mutual pairs) * 768^2 ~ 36 TFLOP for the two modes,
i.e. ~170 s at the ~210 GFLOP/s float32 that OpenBLAS reaches on this machine's 2 cores
(OPENBLAS_CORETYPE=Haswell; AVX-512 kernels reach ~400, still ~90 s), before the 2 x 1,000
eigen-decompositions of 768 x 768 Gram matrices per mode. The benchmark measures and prints that floor on every run.

Usage: python benchmarks/bench_compare.py [--quick] [--ref-latents N] [--seed S]
Prints human-readable lines, then one JSON line (the last line).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
import tracemalloc
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from featgeom.experiments.compare import compare_latents
from featgeom.match import activation_correlation, pair

SIZES = {"quick": (10_000, 4_096, 8_192), "full": (30_000, 16_384, 32_768)}
D_MODEL = {"quick": 256, "full": 768}  # decoder dimension (GPT-2 small's residual stream: 768)
N_PERM = 1000
DEC_NOISE = 0.5  # planted B decoder row = rotated A row + noise of this norm, renormalised
COMPARE_TARGET_S = 60.0
L0_A, L0_B = 32, 48
PLANTED_FRACTION = 0.75  # share of A latents that have a noisy copy in B
COPY_KEEP = 0.85  # probability that a copy fires when its source fires
REF_BLOCK = 1024  # A latents per dense block in the reference


@dataclass(frozen=True)
class Data:
    """Activations acts_a (n, n_a), acts_b (n, n_b) (CSR) and planted pairs (src[k], dst[k])."""

    acts_a: sp.csr_array
    acts_b: sp.csr_array
    src: np.ndarray
    dst: np.ndarray


def synthetic(n: int, n_a: int, n_b: int, seed: int) -> Data:
    """Sparse positive activations; B = noisy copies of some A latents plus latents of its own."""
    rng = np.random.default_rng(seed)
    rows_a = np.repeat(np.arange(n), L0_A)
    cols_a = rng.choice(n_a, size=n * L0_A, p=_frequencies(rng, n_a))
    vals_a = rng.exponential(1.0, size=n * L0_A)
    src = np.sort(rng.choice(n_a, int(PLANTED_FRACTION * n_a), replace=False))
    dst = rng.choice(n_b, src.size, replace=False)
    copy_of = np.full(n_a, -1)
    copy_of[src] = dst
    fired = (copy_of[cols_a] >= 0) & (rng.random(cols_a.size) < COPY_KEEP)
    own = L0_B - round(L0_A * PLANTED_FRACTION * COPY_KEEP)
    rows_b = np.concatenate([rows_a[fired], np.repeat(np.arange(n), own)])
    cols_b = np.concatenate(
        [copy_of[cols_a[fired]], rng.choice(n_b, size=n * own, p=_frequencies(rng, n_b))]
    )
    vals_b = np.concatenate(
        [vals_a[fired] * rng.uniform(0.7, 1.3, fired.sum()), rng.exponential(1.0, n * own)]
    )
    acts_a = sp.csr_array((vals_a, (rows_a, cols_a)), shape=(n, n_a))
    acts_b = sp.csr_array((vals_b, (rows_b, cols_b)), shape=(n, n_b))
    return Data(acts_a, acts_b, src, dst)


def _frequencies(rng: np.random.Generator, n: int) -> np.ndarray:
    """Firing probabilities of n latents, spread log-normally as in trained SAEs."""
    w = rng.lognormal(0.0, 0.5, n)
    return w / w.sum()


def decoders(data: Data, d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit-norm decoder rows dec_a (n_a, d), dec_b (n_b, d) (float32, as SAEs store them).

    A's rows are random directions; B's planted copies dec_b[dst] are dec_a[src] Q plus noise of
    norm DEC_NOISE (Q one random rotation, as between two models' bases); B's other rows random.
    """
    rng = np.random.default_rng(seed + 2)
    n_a, n_b = data.acts_a.shape[1], data.acts_b.shape[1]
    dec_a = _unit(rng.standard_normal((n_a, d)))
    dec_b = _unit(rng.standard_normal((n_b, d)))
    rotation = np.linalg.qr(rng.standard_normal((d, d)))[0]
    noise = DEC_NOISE * _unit(rng.standard_normal((data.src.size, d)))
    dec_b[data.dst] = _unit(dec_a[data.src] @ rotation + noise)
    return dec_a.astype(np.float32), dec_b.astype(np.float32)


def _unit(a: np.ndarray) -> np.ndarray:
    """Rows of a scaled to unit norm."""
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def run_compare(data: Data, dec: tuple[np.ndarray, np.ndarray]) -> tuple[float, dict[str, dict]]:
    """Seconds of compare_latents (default modes, N_PERM permutations) and its pairings."""
    start = time.perf_counter()
    result = compare_latents(data.acts_a, data.acts_b, *dec, n_perm=N_PERM, seed=0)
    return time.perf_counter() - start, result.pairings


def product_floor(pairings: dict[str, dict], d: int) -> tuple[float, float]:
    """(TFLOP, float32 GFLOP/s of this CPU) of the nulls' per-permutation matrix products.

    Every exact shuffle null of SVCCA / CKA / Procrustes needs C = Ux^T Uy[perm] (r x r, r =
    min(d, n_pairs - 1)), 2 n_pairs r^2 flops per permutation, once per pairing mode (featgeom
    shares it between the three metrics). The rate is the best of 5 float32 products of that shape.
    """
    flops = sum(2.0 * N_PERM * p["n_pairs"] * min(d, p["n_pairs"] - 1) ** 2 for p in pairings.values())
    n = max(p["n_pairs"] for p in pairings.values())
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((n, min(d, n - 1)), dtype=np.float32) for _ in range(2))
    best = np.inf
    for _ in range(5):
        start = time.perf_counter()
        a.T @ b
        best = min(best, time.perf_counter() - start)
    return flops / 1e12, 2.0 * n * a.shape[1] ** 2 / best / 1e9


def run_ours(data: Data) -> tuple[float, np.ndarray, np.ndarray]:
    """Seconds, best B per A latent (-1 if dead), best A per B latent (-1 unless mutual)."""
    start = time.perf_counter()
    result = activation_correlation(data.acts_a, data.acts_b, top_k=1)
    many = pair(result, mode="many_to_one")
    mutual = pair(result, mode="mutual")
    seconds = time.perf_counter() - start
    best_b = np.full(data.acts_a.shape[1], -1)
    best_b[many.idx_a] = many.idx_b
    mutual_a = np.full(data.acts_b.shape[1], -1)
    mutual_a[mutual.idx_b] = mutual.idx_a
    return seconds, best_b, mutual_a


def peak_memory_mb(data: Data) -> float:
    """Peak traced allocation (MiB) of our path, beyond the inputs."""
    tracemalloc.start()
    run_ours(data)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


def _standardized(x: sp.csr_array, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Column mean and 1/std (0 for zero-variance columns) of x (n, m)."""
    mean = np.asarray(x.sum(axis=0)).ravel() / n
    var = np.asarray(x.multiply(x).sum(axis=0)).ravel() / n - mean**2
    sd = np.sqrt(np.maximum(var, 0.0))
    return mean, np.divide(1.0, sd, out=np.zeros_like(sd), where=sd > 0)


@dataclass(frozen=True)
class Reference:
    """What the reference prepares once: standardized dense float32 B, statistics of A."""

    dense_b: np.ndarray  # (n, n_b) float32, columns standardized (zero-variance ones all 0)
    alive_b: np.ndarray  # (n_b,) bool
    acts_a: sp.csc_array
    mean_a: np.ndarray
    inv_sd_a: np.ndarray


def reference_setup(data: Data) -> Reference:
    """Densify B as float32 and standardize its columns (as the paper's code does)."""
    n = data.acts_a.shape[0]
    mean_b, inv_b = _standardized(data.acts_b, n)
    dense_b = data.acts_b.astype(np.float32).toarray()
    dense_b -= mean_b.astype(np.float32)
    dense_b *= inv_b.astype(np.float32)
    mean_a, inv_a = _standardized(data.acts_a, n)
    return Reference(dense_b, inv_b > 0, sp.csc_array(data.acts_a), mean_a, inv_a)


def reference_blocks(ref: Reference, latents: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dense float32 correlations of blocks of A latents against all of B over all samples.

    Returns the best B per listed A latent (-1 if it has zero variance) and the best listed A
    latent per B latent (-1 if none).
    """
    n = ref.dense_b.shape[0]
    best_b = np.full(latents.size, -1)
    col_best = np.full(ref.dense_b.shape[1], -np.inf, dtype=np.float32)
    col_arg = np.full(ref.dense_b.shape[1], -1)
    for lo in range(0, latents.size, REF_BLOCK):
        ids = latents[lo : lo + REF_BLOCK]
        block = ref.acts_a[:, ids].astype(np.float32).toarray() - ref.mean_a[ids].astype(np.float32)
        block *= ref.inv_sd_a[ids].astype(np.float32)
        corr = block.T @ ref.dense_b / np.float32(n)
        alive = ref.inv_sd_a[ids] > 0
        corr[:, ~ref.alive_b] = -np.inf
        corr[~alive, :] = -np.inf
        best_b[lo : lo + ids.size][alive] = corr[alive].argmax(axis=1)
        better = np.flatnonzero(corr.max(axis=0) > col_best)
        col_arg[better] = ids[corr[:, better].argmax(axis=0)]
        col_best[better] = corr[:, better].max(axis=0)
    return best_b, col_arg


def reference_mutual(best_b: np.ndarray, col_arg: np.ndarray) -> np.ndarray:
    """Mutual A partner per B latent (-1 if none) from best B of every A and best A of every B."""
    cols = np.flatnonzero(col_arg >= 0)
    cols = cols[best_b[col_arg[cols]] == cols]
    mutual_a = np.full(col_arg.size, -1)
    mutual_a[cols] = col_arg[cols]
    return mutual_a


def exact_corr(data: Data, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Float64 Pearson correlation of A latent i[k] with B latent j[k], from sparse columns."""
    n = data.acts_a.shape[0]
    a = sp.csc_array(data.acts_a)[:, i].toarray()
    b = sp.csc_array(data.acts_b)[:, j].toarray()
    a -= a.mean(axis=0)
    b -= b.mean(axis=0)
    return (a * b).sum(axis=0) / (n * a.std(axis=0) * b.std(axis=0))


def run_reference(
    data: Data, latents: np.ndarray
) -> tuple[float, float, np.ndarray, np.ndarray | None]:
    """Setup and block seconds, best B per listed A latent, mutual A per B (None unless all A)."""
    start = time.perf_counter()
    ref = reference_setup(data)
    setup = time.perf_counter() - start
    start = time.perf_counter()
    best_b, col_arg = reference_blocks(ref, latents)
    blocks = time.perf_counter() - start
    everything = latents.size == data.acts_a.shape[1]
    return setup, blocks, best_b, reference_mutual(best_b, col_arg) if everything else None


def compare(
    data: Data,
    ours: tuple[np.ndarray, np.ndarray],
    ref: tuple[np.ndarray, np.ndarray | None],
    latents: np.ndarray,
) -> dict[str, object]:
    """Pair agreement: many-to-one on the reference's A latents, mutual when it ran on all."""
    (best_b, mutual_a), (ref_best, ref_mutual) = ours, ref
    mismatch = np.flatnonzero(best_b[latents] != ref_best)
    print(
        f"many_to_one: {latents.size - mismatch.size:,} / {latents.size:,} A latents get the "
        "same partner"
    )
    if mismatch.size:
        ids, theirs = latents[mismatch], ref_best[mismatch]
        ok = (best_b[ids] >= 0) & (theirs >= 0)
        gap = np.abs(
            exact_corr(data, ids[ok], best_b[ids][ok]) - exact_corr(data, ids[ok], theirs[ok])
        )
        print(
            f"  {int(np.sum(gap < 1e-5))} of the {mismatch.size} differences are float32 "
            "near-ties (|corr gap| < 1e-5)"
        )
    mutual_mismatch = 0
    partial = ref_mutual is None
    if partial:
        print("mutual: not compared (the reference ran on a subset of A latents; mutual needs all)")
    else:
        mutual_mismatch = int(np.sum(mutual_a != ref_mutual))
        print(f"mutual: {int(np.sum(mutual_a >= 0)):,} pairs, {mutual_mismatch} B latents differ")
    recovered = float(np.mean(mutual_a[data.dst] == data.src))
    print(f"planted pairs recovered by ours (mutual): {recovered:.1%}")
    return {
        "same_pairs": bool(mismatch.size == 0 and mutual_mismatch == 0),
        "many_to_one_mismatches": int(mismatch.size),
        "mutual_compared": not partial,
        "planted_recovered": round(recovered, 4),
    }


def report_compare(data: Data, size: str, seed: int) -> dict[str, object]:
    """Time the full compare, print it against the 60 s target and the product floor."""
    d = D_MODEL[size]
    load = os.getloadavg()[0]
    seconds, pairings = run_compare(data, decoders(data, d, seed))
    tflop, gflops = product_floor(pairings, d)
    floor = tflop * 1e3 / gflops
    for mode, p in pairings.items():
        scores = ", ".join(
            f"{m} {p[m]['observed']:.3f} (null {p[m]['null_mean']:.3f}, p {p[m]['p_value']:.4f})"
            for m in ("svcca", "svcca_legacy", "rsa", "cka", "procrustes")
        )
        print(f"  {mode}: {p['n_pairs']:,} pairs; {scores}")
    under = seconds < COMPARE_TARGET_S
    verdict = (
        f"{'meets' if under else 'MISSES'} the {COMPARE_TARGET_S:.0f} s target"
        if size == "full"
        else f"the {COMPARE_TARGET_S:.0f} s target is for the full size"
    )
    print(
        f"compare (pairing + 5 similarity metrics x {N_PERM} permutations, 2 modes, d={d}): "
        f"{seconds:.1f} s, {verdict}; 1-min load average {load:.1f} before it (2 cores)"
    )
    print(
        f"  floor: the nulls' products alone are {tflop:.1f} TFLOP; at this CPU's measured "
        f"{gflops:.0f} GFLOP/s (float32) that is {floor:.1f} s before any decomposition"
    )
    return {
        "compare_s": round(seconds, 2),
        "compare_under_60s": under if size == "full" else None,
        "compare_n_perm": N_PERM,
        "compare_d_model": d,
        "compare_pairs": {mode: p["n_pairs"] for mode, p in pairings.items()},
        "compare_svcca": {mode: round(p["svcca"]["observed"], 4) for mode, p in pairings.items()},
        "compare_product_tflop": round(tflop, 2),
        "gemm_f32_gflops": round(gflops, 1),
        "compare_product_floor_s": round(floor, 1),
        "load_avg_before_compare": round(load, 2),
        "compare_rss_peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="4,096 x 8,192 latents, 10,000 samples, 256-dim decoders"
    )
    parser.add_argument(
        "--ref-latents",
        type=int,
        default=None,
        help="A latents the reference runs on (default: all with --quick, else 1,024)",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    size = "quick" if args.quick else "full"
    n, n_a, n_b = SIZES[size]
    ref_latents = min(args.ref_latents or (n_a if args.quick else 1024), n_a)
    partial = ref_latents < n_a

    data = synthetic(n, n_a, n_b, args.seed)
    l0_b = data.acts_b.nnz / n
    print(
        f"{size}: {n:,} samples, A {n_a:,} latents (L0 {L0_A}), B {n_b:,} latents (L0 ~{l0_b:.0f});"
        f" {data.src.size:,} B latents planted as noisy copies of A latents"
    )
    peak_mb = peak_memory_mb(data)  # also the warm-up run: first-touch page faults are paid here
    ours, best_b, mutual_a = run_ours(data)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"ours: {ours:.2f} s (activation_correlation top_k=1 + many_to_one + mutual; timed after "
        f"a warm-up run); peak traced memory {peak_mb:.0f} MiB beyond the inputs, "
        f"process peak RSS {rss_mb:.0f} MiB"
    )
    compare_summary = report_compare(data, size, args.seed)

    rng = np.random.default_rng(args.seed + 1)
    latents = np.sort(rng.choice(n_a, ref_latents, replace=False)) if partial else np.arange(n_a)
    setup, blocks, ref_best, ref_mutual = run_reference(data, latents)
    reference = setup + blocks * n_a / ref_latents
    if partial:
        print(
            f"reference: measured {setup + blocks:.1f} s on {ref_latents:,} of {n_a:,} A latents "
            f"(setup {setup:.1f} s + blocks {blocks:.1f} s); EXTRAPOLATED to all A latents: "
            f"{reference:.1f} s"
        )
    else:
        print(f"reference: {reference:.2f} s (setup {setup:.1f} s + dense blocks {blocks:.1f} s)")
    agreement = compare(data, (best_b, mutual_a), (ref_best, ref_mutual), latents)
    print(f"speed-up: {reference / ours:.1f}x{' (reference extrapolated)' if partial else ''}")
    print(
        json.dumps(
            {
                "size": size,
                "n_samples": n,
                "n_latents_a": n_a,
                "n_latents_b": n_b,
                "l0_a": L0_A,
                "l0_b": round(l0_b, 1),
                "ours": round(ours, 3),
                "reference": round(reference, 3),
                "reference_extrapolated": partial,
                "reference_latents": int(ref_latents),
                "ratio": round(reference / ours, 2),
                "peak_mb": round(peak_mb, 1),
                "rss_peak_mb": round(rss_mb, 1),
                **agreement,
                **compare_summary,
            }
        )
    )


if __name__ == "__main__":
    main()
