"""Benchmark featgeom.match and featgeom.compare on synthetic SAE-like latents.

Everything runs in one process on the CPU, on synthetic sparse SAE-like activations (positive
values, L0 of tens) where a subset of B's latents are noisy copies of A's latents, with
unit-norm decoder rows in D_MODEL dims (B's planted copies are A's rows under one random
rotation plus noise). Sizes: --quick 4,096 x 8,192 latents over 10,000 samples (256-dim
decoders); default (full) 16,384 x 32,768 latents over 30,000 samples (768-dim decoders).

1. Pairing (the JSON's ``ours`` / ``reference`` / ``ratio``):

   * ours: ``activation_correlation(top_k=1)`` (sparse sufficient statistics, blockwise top-k),
     then ``pair(mode="many_to_one")`` and ``pair(mode="mutual")``.
   * reference: dense float32 blocks of A's latents against all of B's latents over all samples
     (standardized columns, one matmul per block), row argmax for many-to-one, column argmax for
     mutual. With ``--ref-latents`` it runs on that many A latents only and its time is
     extrapolated linearly; the output says so.

2. The paper-style compare (``compare_*`` keys): ``compare_latents(..., nulls=("shuffle",))``,
   pairing many_to_one and mutual, SVCCA, legacy SVCCA, RSA, CKA and Procrustes of the paired
   decoder rows, each with a 1,000-permutation shuffle null (the observed pairing's rows
   shuffled; not a valid null after activation pairing, kept to reproduce published numbers).
   It prints the floor that the nulls' matrix products alone impose on this CPU
   (``product_floor``). Why it cannot take < 60 s on 2 cores with exact 1,000-permutation
   nulls: each permutation of a pairing with n pairs needs C = Ux^T Uy[perm] (r x r, r = 768
   here), 2 n r^2 flops that no rearrangement avoids (C is linear in the permutation matrix, and
   a uniformly random permutation shares no structure with the previous one). SVCCA (kx, ky ~ 755
   of 768 at variance 0.99), CKA and Procrustes all read it off that one product: 1,000 products
   per pairing mode, 2 * 1000 * (16,384 many-to-one + ~14,000 mutual pairs) * 768^2 ~ 36 TFLOP for
   the two modes, i.e. ~170 s at the ~210 GFLOP/s float32 that OpenBLAS reaches on this
   machine's 2 cores, before the 2 x 1,000 eigen-decompositions of 768 x 768 Gram matrices per
   mode. The benchmark measures and prints that floor on every run.

3. The valid re-pairing null (``repair_*`` keys): ``compare_latents(..., nulls=("repair",),
   n_perm=P)`` (:func:`featgeom.stats.repair_tests`: B's samples permuted, correlation and pairing
   recomputed, metrics rescored per permutation). P = ``--repair-perms`` (default and
   minimum 19, the fewest permutations a null test accepts; 1,000 would take hours on 2 cores): it prints the
   measured total for P, the seconds per permutation, and the time for 1,000 permutations
   EXTRAPOLATED as total(P) + (1000 - P) x steady per-permutation time. The steady time and its
   parts (cross product A^T B[perm], partner extraction / finish of the correlation, pairing,
   metrics: spectral (one thin SVD per side per mode) and RSA) come from a loop that repeats
   exactly repair_tests' per-permutation steps on the first ``--naive-perms`` of its
   permutations, alternating with the **naive loop** (everything recomputed per permutation:
   ``activation_correlation(lat_a, lat_b[perm], top_k=...)`` + ``pair`` per mode + each metric
   function of featgeom.similarity called on its own), so that a drift in machine speed hits
   both (``--naive-perms`` K, default 3 with --quick, 2 at full size; times are medians);
   ``repair_ratio`` = the median over those K permutations of naive / repair seconds. Both loops' null scores are
   compared (max abs difference printed). Peak memory of the repair compare is the peak traced
   by tracemalloc (numpy and Python allocations; BLAS/LAPACK work buffers are not traced)
   during that call, beyond what was allocated before it; the process peak RSS (ru_maxrss) is
   printed too (it includes earlier stages).

Usage (last line is one JSON object: ours, reference, ratio, then every measured quantity):

    python benchmarks/bench_compare.py --quick                    # a few minutes on 2 cores
    python benchmarks/bench_compare.py --repair-perms 19          # full size, ~15-20 min
    python benchmarks/bench_compare.py --device cuda              # featgeom's side on a GPU
    options: [--ref-latents N] [--seed S] [--repair-perms P] [--naive-perms K] [--skip-shuffle]
             [--device cpu|cuda|cuda:N] [--torch]

``--device`` (default: cuda when present, else cpu = the NumPy path) runs featgeom's side on that
device: the correlation and partners (``activation_correlation(device=...)``: the finish on the
device), the shuffle- and repair-null compares (``compare_latents(device=...)``) and the steady
per-permutation loop (``PermutedCorrelation(device=...)``, ``paired_scores(device=...)``; its
cross product and finish are then timed together as ``correlation``). The references (the dense
float32 pairing, the naive loop) stay the NumPy code on the CPU, and the product floor is the
CPU's. Peak memory figures are host memory. ``--torch`` runs the torch path even on the CPU. The
output names the device it measured.
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
import torch

from featgeom.device import compute_device, describe, torch_device
from featgeom.compare import (
    SIMILARITY_METRICS,
    compare_latents,
    partners_kept,
)
from featgeom.match import PermutedCorrelation, activation_correlation, pair
from featgeom.match.correlation import _cross_product, finish_correlation
from featgeom.similarity import linear_cka, procrustes, rsa, svcca
from featgeom.stats import MIN_N_PERM, PairingProcedure
from featgeom.stats.kernels import paired_scores

SIZES = {"quick": (10_000, 4_096, 8_192), "full": (30_000, 16_384, 32_768)}
D_MODEL = {"quick": 256, "full": 768}  # decoder dimension (GPT-2 small's residual stream: 768)
N_PERM = 1000
DEC_NOISE = 0.5  # planted B decoder row = rotated A row + noise of this norm, renormalised
COMPARE_TARGET_S = 60.0
L0_A, L0_B = 32, 48
PLANTED_FRACTION = 0.75  # share of A latents that have a noisy copy in B
COPY_KEEP = 0.85  # probability that a copy fires when its source fires
REF_BLOCK = 1024  # A latents per dense block in the reference
MODES = ("many_to_one", "mutual")  # compare_latents' default pairing modes
RSA_MAX_ITEMS = 2000  # compare_latents' default
REPAIR_PERMS = {"quick": 19, "full": 19}  # permutations of the measured repair compare (the fewest a null accepts)
NAIVE_PERMS = {"quick": 3, "full": 2}  # permutations timed for the naive loop (and the breakdown)


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


def run_compare(data: Data, dec: tuple[np.ndarray, np.ndarray], device: object) -> tuple[float, dict[str, dict]]:
    """Seconds of the shuffle-null compare_latents (default modes, N_PERM permutations), pairings."""
    start = time.perf_counter()
    result = compare_latents(data.acts_a, data.acts_b, *dec, n_perm=N_PERM, seed=0, nulls=("shuffle",),
                             device=device)
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


def run_ours(data: Data, device: object) -> tuple[float, np.ndarray, np.ndarray]:
    """Seconds, best B per A latent (-1 if dead), best A per B latent (-1 unless mutual)."""
    start = time.perf_counter()
    result = activation_correlation(data.acts_a, data.acts_b, top_k=1, device=device)
    many = pair(result, mode="many_to_one")
    mutual = pair(result, mode="mutual")
    seconds = time.perf_counter() - start
    best_b = np.full(data.acts_a.shape[1], -1)
    best_b[many.idx_a] = many.idx_b
    mutual_a = np.full(data.acts_b.shape[1], -1)
    mutual_a[mutual.idx_b] = mutual.idx_a
    return seconds, best_b, mutual_a


def peak_memory_mb(data: Data, device: object) -> float:
    """Peak traced host allocation (MiB) of our path, beyond the inputs."""
    tracemalloc.start()
    run_ours(data, device)
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


def _scores_line(p: dict, null: str) -> str:
    """'svcca 0.123 (null 0.045, p 0.0010), ...' for one pairing summary of compare_latents."""
    return ", ".join(
        f"{m} {p[m]['observed']:.3f} (null {p[m]['nulls'][null]['null_mean']:.3f}, "
        f"p {p[m]['nulls'][null]['p_value']:.4f})"
        for m in SIMILARITY_METRICS
    )


def report_compare(data: Data, size: str, seed: int, device: object) -> dict[str, object]:
    """Time the shuffle-null compare, print it against the 60 s target and the product floor."""
    d = D_MODEL[size]
    load = os.getloadavg()[0]
    seconds, pairings = run_compare(data, decoders(data, d, seed), device)
    tflop, gflops = product_floor(pairings, d)
    floor = tflop * 1e3 / gflops
    for mode, p in pairings.items():
        print(f"  {mode}: {p['n_pairs']:,} pairs; {_scores_line(p, 'shuffle')}")
    under = seconds < COMPARE_TARGET_S
    verdict = (
        f"{'meets' if under else 'MISSES'} the {COMPARE_TARGET_S:.0f} s target"
        if size == "full"
        else f"the {COMPARE_TARGET_S:.0f} s target is for the full size"
    )
    print(
        f"shuffle-null compare (pairing + 5 similarity metrics x {N_PERM} permutations of the "
        f"observed pairing, 2 modes, d={d}): "
        f"{seconds:.1f} s, {verdict}; 1-min load average {load:.1f} before it (2 cores)"
    )
    print(
        f"  floor: the nulls' products alone are {tflop:.1f} TFLOP; at this CPU's measured "
        f"{gflops:.0f} GFLOP/s (float32) that is {floor:.1f} s before any decomposition"
    )
    return {
        "compare_null": "shuffle",
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


@dataclass(frozen=True)
class Procedure:
    """What compare_latents does per permutation: pairing procedure and metric requests."""

    procedure: PairingProcedure
    requests: list[tuple[str, dict]]
    spectral: list[tuple[str, dict]]
    rsa: list[tuple[str, dict]]


def compare_procedure(data: Data) -> Procedure:
    """compare_latents' pairing procedure (top_k from partners_kept) and its metric requests."""
    top_k = partners_kept(data.acts_a.shape[1], data.acts_b.shape[1], MODES)
    requests = [(m, {"max_items": RSA_MAX_ITEMS} if m == "rsa" else {}) for m in SIMILARITY_METRICS]
    return Procedure(
        PairingProcedure(MODES, top_k=top_k),
        requests,
        [r for r in requests if r[0] != "rsa"],
        [r for r in requests if r[0] == "rsa"],
    )


def repair_step(
    pc: PermutedCorrelation, proc: Procedure, dec: tuple[np.ndarray, np.ndarray], perm: np.ndarray,
    device: object,
) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """One permutation of repair_tests, part by part: (seconds per part, scores per mode).

    The same steps as ``PermutedCorrelation.result`` + ``PairingProcedure.pairings`` +
    ``paired_scores`` inside :func:`featgeom.stats.repair_tests`; the metrics are split into the
    spectral ones (sharing one thin SVD per side) and RSA, in SIMILARITY_METRICS order. On a
    device the correlation (cross product and finish) is one part.
    """
    times: dict[str, float] = {}
    if device is None:
        start = time.perf_counter()
        cross = _cross_product(pc._a, pc._b[perm])
        times["cross_product"] = time.perf_counter() - start
        start = time.perf_counter()
        if pc.top_k == 1 and sp.issparse(cross):
            corr = pc._sparse_top1(cross)
        else:
            corr = finish_correlation(cross, pc._sides, pc._counts, pc.n_samples, pc.top_k, pc._block_bytes)
        times["partners"] = time.perf_counter() - start
        del cross
    else:
        start = time.perf_counter()
        corr = pc.result(perm)
        times["correlation"] = time.perf_counter() - start
    start = time.perf_counter()
    pairings = proc.procedure.pairings(corr)
    times["pairing"] = time.perf_counter() - start
    scores, spectral_s, rsa_s = {}, 0.0, 0.0
    for mode, pairing in pairings.items():
        x, y = dec[0][pairing.idx_a], dec[1][pairing.idx_b]
        start = time.perf_counter()
        spectral = paired_scores(proc.spectral, x, y, device=device)
        middle = time.perf_counter()
        rsa_value = paired_scores(proc.rsa, x, y, device=device)
        spectral_s, rsa_s = spectral_s + middle - start, rsa_s + time.perf_counter() - middle
        scores[mode] = np.insert(spectral, SIMILARITY_METRICS.index("rsa"), rsa_value)
    times["metrics_spectral"], times["metrics_rsa"] = spectral_s, rsa_s
    return times, scores


def naive_step(
    data: Data, proc: Procedure, dec: tuple[np.ndarray, np.ndarray], perm: np.ndarray
) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """One permutation recomputed from scratch: correlation, pairing, each metric on its own."""
    times: dict[str, float] = {}
    start = time.perf_counter()
    corr = activation_correlation(data.acts_a, data.acts_b[perm], top_k=proc.procedure.top_k)
    times["correlation"] = time.perf_counter() - start
    start = time.perf_counter()
    pairings = {mode: pair(corr, mode=mode) for mode in MODES}
    times["pairing"] = time.perf_counter() - start
    start = time.perf_counter()
    scores = {}
    for mode, pairing in pairings.items():
        x, y = dec[0][pairing.idx_a], dec[1][pairing.idx_b]
        scores[mode] = np.array([
            svcca(x, y), svcca(x, y, legacy_top1=True), rsa(x, y, max_items=RSA_MAX_ITEMS),
            linear_cka(x, y), procrustes(x, y),
        ])
    times["metrics"] = time.perf_counter() - start
    return times, scores


def run_repair_compare(data: Data, dec: tuple[np.ndarray, np.ndarray], n_perm: int,
                       device: object) -> tuple[float, float, dict]:
    """(seconds, traced peak MiB, pairings) of compare_latents with the re-pairing null only."""
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    start = time.perf_counter()
    result = compare_latents(data.acts_a, data.acts_b, *dec, n_perm=n_perm, seed=0, nulls=("repair",),
                             device=device)
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    return seconds, peak / 2**20, result.pairings


def report_repair(data: Data, size: str, seed: int, n_perm: int, n_naive: int, device: object) -> dict[str, object]:
    """Time the repair-null compare for n_perm permutations, its parts, and the naive loop."""
    d = D_MODEL[size]
    dec = decoders(data, d, seed)
    proc = compare_procedure(data)
    load = os.getloadavg()[0]
    total, peak_mb, pairings = run_repair_compare(data, dec, n_perm, device)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"repair-null compare (correlation + pairing recomputed per permutation, 5 metrics, "
        f"2 modes, top_k={proc.procedure.top_k}, d={d}): {total:.1f} s for {n_perm} permutation(s) "
        f"(incl. set-up and the observed pairing); peak traced memory {peak_mb:.0f} MiB "
        f"(tracemalloc), process peak RSS so far {rss_mb:.0f} MiB; 1-min load average {load:.1f} "
        "before it"
    )
    for mode, p in pairings.items():
        print(f"  {mode}: {p['n_pairs']:,} pairs; {_scores_line(p, 'repair')}")

    # The same permutations repair_tests drew (rng = default_rng(seed=0), one permutation each).
    rng = np.random.default_rng(0)
    perms = [rng.permutation(data.acts_a.shape[0]) for _ in range(n_naive)]
    pc = PermutedCorrelation(data.acts_a, data.acts_b, top_k=proc.procedure.top_k, device=device)
    dec = tuple(d.astype(np.float64) for d in dec)  # as compare_latents reads them (as_matrix)
    fast_parts, naive_parts, gap = [], [], 0.0
    for perm in perms:  # alternate, so that a drift in machine speed hits both
        fast_t, fast_scores = repair_step(pc, proc, dec, perm, device)
        naive_t, naive_scores = naive_step(data, proc, dec, perm)
        fast_parts.append(fast_t)
        naive_parts.append(naive_t)
        gap = max(gap, max(float(np.max(np.abs(fast_scores[m] - naive_scores[m]))) for m in MODES))
    parts = {k: float(np.median([t[k] for t in fast_parts])) for k in fast_parts[0]}
    naive_split = {k: float(np.median([t[k] for t in naive_parts])) for k in naive_parts[0]}
    fast_totals = [sum(t.values()) for t in fast_parts]
    naive_totals = [sum(t.values()) for t in naive_parts]
    steady, naive = float(np.median(fast_totals)), float(np.median(naive_totals))
    ratios = [b / a for a, b in zip(fast_totals, naive_totals)]
    extrapolated = total + (1000 - n_perm) * steady if n_perm < 1000 else total
    ratio = float(np.median(ratios))
    print(
        f"  per permutation (steady, median of {n_naive}): {steady:.2f} s = "
        + ", ".join(f"{k} {v:.2f} s ({v / steady:.0%})" for k, v in parts.items())
    )
    nnz = float(np.dot(np.diff(data.acts_a.indptr), np.diff(data.acts_b.indptr)))
    product = parts.get("cross_product", parts.get("correlation"))  # on a device: cross product + finish
    print(
        f"  {'cross product' if 'cross_product' in parts else 'correlation'}: {nnz / 1e6:.0f}M products "
        f"(n L0_a L0_b), {product / nnz * 1e9:.1f} ns each; dominant part: {max(parts, key=parts.get)}"
    )
    print(
        f"  naive loop (activation_correlation + pair + each metric function, recomputed per "
        f"permutation): {naive:.2f} s per permutation ("
        + ", ".join(f"{k} {v:.2f} s" for k, v in naive_split.items())
        + f"); naive / repair {ratio:.2f}x (median of the {n_naive} alternated pairs, range "
        f"{min(ratios):.2f}-{max(ratios):.2f}); max |score difference| {gap:.1e}"
    )
    label = "EXTRAPOLATED" if n_perm < 1000 else "measured"
    print(
        f"  1,000 permutations: {extrapolated:.0f} s {label} (measured {total:.1f} s for {n_perm} "
        f"+ {1000 - n_perm} x {steady:.2f} s); naive loop: {naive * 1000:.0f} s extrapolated"
    )
    return {
        "repair_perms_measured": n_perm,
        "repair_total_s": round(total, 2),
        "repair_seconds_per_perm": round(steady, 3),
        "repair_seconds_per_perm_incl_setup": round(total / n_perm, 3),
        "repair_parts_s": {k: round(v, 3) for k, v in parts.items()},
        "repair_naive_seconds_per_perm": round(naive, 3),
        "repair_naive_parts_s": {k: round(v, 3) for k, v in naive_split.items()},
        "repair_naive_perms": n_naive,
        "repair_ratio": round(ratio, 2),
        "repair_ratio_range": [round(min(ratios), 2), round(max(ratios), 2)],
        "repair_score_max_abs_diff": float(f"{gap:.3g}"),
        "repair_peak_mb": round(peak_mb, 1),
        "repair_peak_kind": "tracemalloc peak during compare_latents(nulls=('repair',))",
        "repair_rss_peak_mb": round(rss_mb, 1),
        "repair_extrapolated_1000_s": round(extrapolated, 1),
        "repair_extrapolated": n_perm < 1000,
        "repair_top_k": proc.procedure.top_k,
        "repair_pairs": {mode: p["n_pairs"] for mode, p in pairings.items()},
        "load_avg_before_repair": round(load, 2),
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
    parser.add_argument(
        "--repair-perms",
        type=int,
        default=None,
        help="permutations of the measured repair-null compare (default 10 with --quick, else 3)",
    )
    parser.add_argument(
        "--naive-perms",
        type=int,
        default=None,
        help="permutations timed for the naive loop and the per-part breakdown (default 3 / 2)",
    )
    parser.add_argument(
        "--skip-shuffle", action="store_true", help="skip the 1,000-permutation shuffle-null compare"
    )
    parser.add_argument("--device", default=None, help="cpu | cuda | cuda:N (default: cuda when present)")
    parser.add_argument("--torch", action="store_true", help="the torch path even on the cpu (a check of "
                        "the device code where no GPU is)")
    args = parser.parse_args()
    spec = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    device = torch_device(spec, "--device") if args.torch else compute_device(spec, "--device")
    print(f"device of featgeom's side: {describe(device)}")
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
    peak_mb = peak_memory_mb(data, device)  # also the warm-up run: first-touch page faults are paid here
    ours, best_b, mutual_a = run_ours(data, device)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"ours: {ours:.2f} s (activation_correlation top_k=1 + many_to_one + mutual; timed after "
        f"a warm-up run); peak traced memory {peak_mb:.0f} MiB beyond the inputs, "
        f"process peak RSS {rss_mb:.0f} MiB"
    )
    compare_summary = {} if args.skip_shuffle else report_compare(data, size, args.seed, device)
    repair_perms = max(MIN_N_PERM, args.repair_perms or REPAIR_PERMS[size])
    naive_perms = max(1, args.naive_perms or NAIVE_PERMS[size])
    repair_summary = report_repair(data, size, args.seed, repair_perms, naive_perms, device)

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
                **repair_summary,
                "device": describe(device),
                "cpu_count": os.cpu_count(),
            }
        )
    )


if __name__ == "__main__":
    main()
