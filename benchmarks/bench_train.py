"""SAE training throughput on the SynthSAEBench-16k world: featgeom's path vs SAELens's runner.

    python benchmarks/bench_train.py [--quick] [--archs topk,batchtopk] [--width 4096] [--k 25] [--device cuda]

End-to-end samples/s (sampling + SAE step) of (a) featgeom: ``MemberStream`` batches into the
SAELens training SAE's ``training_forward_pass`` (computed sparsely for TopK / BatchTopK,
``featgeom.sae.sparse``) + Adam (``featgeom.sae.train``), and (b) SAELens's
``SyntheticSAERunner`` (its own ``ActivationGenerator`` + ``SAETrainer``) with the same SAE config,
batch size and world (SAELens's model is built from our world's arrays), no wandb, no output, no
evals.  Both use torch's default threads and exclude their setup and first step (ours: a warm-up
step; SAELens: the difference of a 1-batch and an n-batch run of a fresh runner).  The two sides
are timed alternately (``reps`` pairs: ours for a few batches, then SAELens, ...), so a drift in
machine speed hits both; reported: median rates and the median and range of the per-pair ratios.
--quick skips the world's 100 orthogonalization steps (directions do not change the cost) and
times fewer batches.  ``--device`` (default: cuda when present, else cpu) puts both sides on one
device: ours trains there from host-sampled batches (pinned, non-blocking copies), SAELens's runner
with its ``device`` setting (its sampler then runs there too); on CUDA each timing ends with a
synchronisation.  The output names the device it measured.  Last line: JSON with ``ours``,
``reference``, ``ratio``, ``ratio_range`` (first architecture), ``per_arch`` (all of them, with
every pair) and ``device``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
import warnings

from _timing import interleaved  # benchmarks/ is on sys.path when run as a script


class Ours:
    """featgeom's training loop on the base member; ``rate(batches)`` times that many steps."""

    def __init__(self, family, cfg, device) -> None:
        from featgeom.sae.train import _new_run, _step

        self.run, self.step, self.device = _new_run(cfg, family, "base", device), _step, device
        self.step(self.run)  # warm-up (b_dec init, allocations)

    def rate(self, batches: int) -> float:
        start = time.perf_counter()
        for _ in range(batches):
            self.step(self.run)
        synchronize(self.device)
        return batches * self.run.cfg.batch_size / (time.perf_counter() - start)


def synchronize(device) -> None:
    """Wait for the device's queued work (CUDA runs asynchronously), so a timing covers it."""
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reference(world, model, cfg, batches: int, device) -> float:
    """Steady-state samples/s of SAELens's SyntheticSAERunner (same SAE config): a fresh runner on
    1 batch and one on ``batches`` batches, rate = (batches - 1) x batch_size / (t_batches - t_1), so
    the runner's setup and first (warm-up) step are excluded, as our warm-up step is."""
    return (batches - 1) * cfg.batch_size / (_reference_seconds(world, model, cfg, batches, device)
                                             - _reference_seconds(world, model, cfg, 1, device))


def _reference_seconds(world, model, cfg, batches: int, device) -> float:
    """Wall seconds of a fresh SAELens SyntheticSAERunner.run() on ``batches`` batches."""
    from sae_lens import LoggingConfig
    from sae_lens.synthetic.synthetic_sae_runner import SyntheticSAERunner, SyntheticSAERunnerConfig

    from featgeom.sae.arch import sae_config
    from featgeom.world.build import to_saelens_config

    runner_cfg = SyntheticSAERunnerConfig(
        synthetic_model=to_saelens_config(world.config), sae=sae_config(cfg, world.hidden_dim),
        training_samples=batches * cfg.batch_size, batch_size=cfg.batch_size, lr=cfg.lr,
        output_path=None, checkpoint_path=None, eval_samples=0, run_final_eval=False,
        logger=LoggingConfig(log_to_wandb=False), device=str(device),
    )
    start = time.perf_counter()
    SyntheticSAERunner(runner_cfg, override_synthetic_model=model).run()
    synchronize(device)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip orthogonalization; fewer batches")
    parser.add_argument("--archs", default="topk,batchtopk")
    parser.add_argument("--width", type=int, default=4096)
    parser.add_argument("--k", type=float, default=25)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--device", default=None, help="cpu | cuda | cuda:N (default: cuda when present)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")

    import torch

    from featgeom.device import describe, torch_device
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
    device = torch_device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"), "--device")
    print(f"device: {describe(device)}")
    reps, ours_batches, ref_batches = (3, 10, 5) if args.quick else (6, 40, 12)
    model = world.to_saelens().to(device)
    per_arch = {}
    for arch in args.archs.split(","):
        cfg = SAETrainConfig(arch=arch, width=args.width, l0=args.k, batch_size=args.batch_size, lr=3e-4,
                             samples=1000 * args.batch_size, revival="aux", device=str(device))
        mine = Ours(family, cfg, device)
        r = interleaved(lambda: mine.rate(ours_batches),
                        lambda: reference(world, model, cfg, ref_batches, device), reps)
        per_arch[arch] = r
        print(f"{arch:>10}: featgeom {r['ours']:8,.0f} samples/s   SAELens runner {r['reference']:8,.0f} samples/s   "
              f"ratio {r['ratio']:5.1f}x (median of {reps} interleaved pairs; range "
              f"{r['ratio_range'][0]:.1f}-{r['ratio_range'][1]:.1f}x)")
    first = per_arch[args.archs.split(",")[0]]
    summary = {k: first[k] for k in ("ours", "reference", "ratio", "ratio_range")}
    print(json.dumps({**summary, "per_arch": per_arch, "width": args.width, "k": args.k, "batch_size": args.batch_size,
                      "quick": args.quick, "reps": reps, "torch_threads": torch.get_num_threads(),
                      "machine": platform.machine(), "device": describe(device)}))


if __name__ == "__main__":
    main()
