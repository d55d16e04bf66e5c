"""Sampler throughput on the SynthSAEBench-16k world: SAELens's sampler vs featgeom's, one run.

    python benchmarks/bench_sampler.py [--quick] [--device cuda]

Measures samples/s of (a) feature activations — SAELens ``ActivationGenerator.sample`` (Gaussian
copula + hierarchy modifier) vs ``FastSampler.sample_features`` — the headline ratio, and (b)
hidden activations — ``SyntheticModel.sample`` vs ``FastSampler.sample``.  SAELens runs torch on
both cores (intra-op threads); featgeom uses ``--workers`` processes (default 2, one per core).
Both run on the same world (SAELens's model is built from our world's arrays).  A sanity check compares per-feature
firing rates of the two samples (max |z|).  The two sides are timed alternately (5 pairs with
--quick, 9 without; each timing >= 2 s / 5 s), so a drift in machine speed hits both; reported:
median rates and the median and range of the per-pair ratios.  --quick also skips the world's
100 orthogonalization steps (directions do not change the sampling cost).  (c) hidden activations
delivered on ``--device`` (default: cuda when present, else cpu), what training consumes:
featgeom samples on the host and copies each batch to the device (pinned memory), SAELens's
model samples on the device itself; on CPU (c) equals (b).  The output names the device.
Last line: JSON.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np
import torch

from _timing import interleaved  # benchmarks/ is on sys.path when run as a script


def throughput(draw, batch: int, min_seconds: float, kept: list, keep: int = 6) -> float:
    """Samples/s of ``draw(batch)`` repeated for at least ``min_seconds``; the first ``keep``
    outputs (over all calls) are appended to ``kept`` for the agreement check."""
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < min_seconds or count == 0:
        out = draw(batch)
        if len(kept) < keep:
            kept.append(out)
        count += 1
    return batch * count / (time.perf_counter() - start)


def delivered(hidden: np.ndarray, device: torch.device) -> torch.Tensor:
    """A host batch on the device, as training receives it (pinned, non-blocking copy, then waited for)."""
    return synchronized(torch.from_numpy(hidden).pin_memory().to(device, non_blocking=True), device)


def synchronized(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``x`` once the device's queued work is done (CUDA runs asynchronously)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return x


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip orthogonalization; shorter timings")
    parser.add_argument("--workers", type=int, default=2, help="featgeom sampler worker processes (2 = both cores)")
    parser.add_argument("--device", default=None, help="cpu | cuda | cuda:N (default: cuda when present)")
    args = parser.parse_args()
    from featgeom.device import describe, torch_device
    from featgeom.world import build_world, preset

    device = torch_device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"), "--device")
    print(f"device: {describe(device)}")

    config = preset("synthsaebench-16k")
    if args.quick:
        config = config.with_changes(orthogonalization=None)
    t0 = time.perf_counter()
    world = build_world(config)
    print(f"built world: {world.num_features} features, {world.hidden_dim} dims in {time.perf_counter() - t0:.1f}s"
          f"{' (orthogonalization skipped: --quick)' if args.quick else ''}")
    model = world.to_saelens()
    sampler = world.sampler(seed=0, workers=args.workers)
    torch.manual_seed(0)

    reps, seconds = (5, 2.0) if args.quick else (9, 5.0)
    ref_batches, our_batches = [], []
    model.activation_generator.sample(1024)  # warm-up of both sides
    sampler.sample_features(16384)
    feat = interleaved(lambda: throughput(sampler.sample_features, 16384, seconds, our_batches),
                       lambda: throughput(model.activation_generator.sample, 1024, seconds, ref_batches), reps)
    hidden = interleaved(lambda: throughput(sampler.sample, 16384, seconds / 2, []),
                         lambda: throughput(model.sample, 1024, seconds / 2, []), max(3, reps // 2))
    on_device = hidden
    if device.type == "cuda":
        model_on_device = world.to_saelens().to(device)
        on_device = interleaved(
            lambda: throughput(lambda n: delivered(sampler.sample(n)[0], device), 16384, seconds / 2, []),
            lambda: throughput(lambda n: synchronized(model_on_device.sample(n), device), 1024, seconds / 2, []),
            max(3, reps // 2))

    ref_on = np.concatenate([(b > 0).numpy() for b in ref_batches])
    ours_rate = np.mean([np.bincount(b.indices, minlength=world.num_features) / b.shape[0] for b in our_batches], 0)
    n_ours = sum(b.shape[0] for b in our_batches)
    ref_rate, n_ref = ref_on.mean(0), len(ref_on)
    pooled = (ref_rate * n_ref + ours_rate * n_ours) / (n_ref + n_ours)
    testable = pooled * min(n_ref, n_ours) >= 20  # normal approximation needs ~20 expected firings
    se = np.sqrt(pooled * (1 - pooled) * (1 / n_ref + 1 / n_ours))[testable]
    z = np.abs(ref_rate - ours_rate)[testable] / se
    l0_ref = ref_on.sum(1).mean()
    l0_ours = np.mean([b.values.size / b.shape[0] for b in our_batches])

    for name, r in (("feature sampling", feat), ("hidden sampling ", hidden), (f"hidden on {device.type:<6}", on_device)):
        print(f"{name}  SAELens {r['reference']:10.0f} samples/s   featgeom {r['ours']:10.0f} samples/s   "
              f"ratio {r['ratio']:.1f}x (median of {len(r['pairs'])} interleaved pairs; "
              f"range {r['ratio_range'][0]:.1f}-{r['ratio_range'][1]:.1f}x)")
    sampler.close()
    print(f"agreement: mean L0 SAELens {l0_ref:.2f} vs featgeom {l0_ours:.2f}; "
          f"max per-feature firing-rate |z| {z.max():.2f} over {z.size} features ({n_ref} vs {n_ours} samples)")
    print(json.dumps({
        "benchmark": "sampler", "world": "synthsaebench-16k", "quick": args.quick, "unit": "samples/s",
        "ours": round(feat["ours"]), "reference": round(feat["reference"]), "ratio": round(feat["ratio"], 2),
        "ratio_range": [round(x, 2) for x in feat["ratio_range"]], "pairs": [[round(x) for x in p] for p in feat["pairs"]],
        "hidden_ours": round(hidden["ours"]), "hidden_reference": round(hidden["reference"]),
        "hidden_ratio": round(hidden["ratio"], 2), "device": describe(device),
        "device_hidden_ours": round(on_device["ours"]), "device_hidden_reference": round(on_device["reference"]),
        "device_hidden_ratio": round(on_device["ratio"], 2), "l0_reference": round(float(l0_ref), 3),
        "l0_ours": round(float(l0_ours), 3), "max_rate_z": round(float(z.max()), 2),
        "threads": torch.get_num_threads(), "workers": args.workers, "machine": platform.processor() or platform.machine(),
    }))


if __name__ == "__main__":
    main()
