"""SAE training throughput on the SynthSAEBench-16k world: featgeom's path vs SAELens's runner.

    python benchmarks/bench_train.py [--quick] [--archs topk,batchtopk] [--width 4096] [--k 25]

End-to-end samples/s (sampling + SAE step) of (a) featgeom: ``MemberStream`` batches into the
SAELens training SAE's ``training_forward_pass`` + Adam (``featgeom.sae.train``), and (b) SAELens's
``SyntheticSAERunner`` (its own ``ActivationGenerator`` + ``SAETrainer``) with the same SAE config,
batch size and world (SAELens's model is built from our world's arrays), no wandb, no output, no
evals.  Both use torch's default threads.  --quick skips the world's 100 orthogonalization steps
(directions do not change the cost) and trains fewer batches.  Last line: JSON with ``ours``,
``reference`` and ``ratio`` (for the first architecture) and ``per_arch`` (all of them).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
import warnings


def ours(family, cfg, batches: int) -> float:
    """Samples/s of featgeom's training loop (one warm-up step, then ``batches`` steps)."""
    from featgeom.sae.train import _new_run, _step

    run = _new_run(cfg, family, "base")
    _step(run)
    start = time.perf_counter()
    for _ in range(batches):
        _step(run)
    return batches * cfg.batch_size / (time.perf_counter() - start)


def reference(world, cfg, batches: int) -> float:
    """Samples/s of SAELens's SyntheticSAERunner.run() on ``batches`` batches (same SAE config)."""
    from sae_lens import LoggingConfig
    from sae_lens.synthetic.synthetic_sae_runner import SyntheticSAERunner, SyntheticSAERunnerConfig

    from featgeom.sae.arch import sae_config
    from featgeom.world.build import to_saelens_config

    model = world.to_saelens()
    runner_cfg = SyntheticSAERunnerConfig(
        synthetic_model=to_saelens_config(world.config), sae=sae_config(cfg, world.hidden_dim),
        training_samples=batches * cfg.batch_size, batch_size=cfg.batch_size, lr=cfg.lr,
        output_path=None, checkpoint_path=None, eval_samples=0, run_final_eval=False,
        logger=LoggingConfig(log_to_wandb=False),
    )
    runner = SyntheticSAERunner(runner_cfg, override_synthetic_model=model)
    start = time.perf_counter()
    runner.run()
    return batches * cfg.batch_size / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip orthogonalization; fewer batches")
    parser.add_argument("--archs", default="topk,batchtopk")
    parser.add_argument("--width", type=int, default=4096)
    parser.add_argument("--k", type=float, default=25)
    parser.add_argument("--batch-size", type=int, default=1024)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")

    import torch

    from featgeom.family import FamilyConfig, build_family
    from featgeom.sae import SAETrainConfig
    from featgeom.world import build_world, preset

    world_cfg = preset("synthsaebench-16k")
    if args.quick:
        world_cfg = world_cfg.with_changes(orthogonalization=None)
    t0 = time.perf_counter()
    world = build_world(world_cfg)
    family = build_family(FamilyConfig(world=world_cfg), world=world)
    print(f"world: {world.num_features} features, {world.hidden_dim} dims, built in {time.perf_counter() - t0:.1f}s")
    ours_batches, ref_batches = (30, 6) if args.quick else (200, 40)
    per_arch = {}
    for arch in args.archs.split(","):
        cfg = SAETrainConfig(arch=arch, width=args.width, l0=args.k, batch_size=args.batch_size, lr=3e-4,
                             samples=10 * args.batch_size, revival="aux")
        a = ours(family, cfg, ours_batches)
        b = reference(world, cfg, ref_batches)
        per_arch[arch] = {"ours": a, "reference": b, "ratio": a / b}
        print(f"{arch:>10}: featgeom {a:10,.0f} samples/s   SAELens runner {b:10,.0f} samples/s   ratio {a / b:5.1f}x")
    first = per_arch[args.archs.split(",")[0]]
    print(json.dumps({**first, "per_arch": per_arch, "width": args.width, "k": args.k, "batch_size": args.batch_size,
                      "quick": args.quick, "torch_threads": torch.get_num_threads(), "machine": platform.machine()}))


if __name__ == "__main__":
    main()
