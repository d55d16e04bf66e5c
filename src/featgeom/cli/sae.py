"""``featgeom sae train|eval|table``."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from featgeom.errors import ConfigError

sae_app = typer.Typer(help="Train and evaluate SAEs on family members.", no_args_is_help=True)

METRIC_KEYS = ("mcc", "f1", "explained_variance", "l0", "dead_fraction", "precision", "recall", "shrinkage",
               "uniqueness", "dead_latents", "true_l0")


def _metrics(metrics: dict) -> dict:
    return {k: metrics[k] for k in METRIC_KEYS if k in metrics}


DEVICE_HELP = "Where torch runs: cpu | cuda | cuda:N (checked before any work)."


@sae_app.command("train")
def train_cmd(
    family: Path | None = typer.Option(None, "--family", help="Family artifact directory (or --preset)."),
    preset: str | None = typer.Option(None, "--preset", help="Instead of --family: a world preset (tiny, small, "
                                      "medium, synthsaebench-16k), stored in OUT once; synthsaebench-16k defaults "
                                      "to the published SAE settings (width 4096, L0 25, 200M samples)."),
    member: str = typer.Option("base", "--member", help="Member name."),
    arch: str = typer.Option(..., "--arch", help="standard|topk|batchtopk|matryoshka_batchtopk|jumprelu|gated|matching_pursuit"),
    l0: float | None = typer.Option(None, "--l0", help="Target L0 (default: the recipe's)."),
    width: int | None = typer.Option(None, "--width", help="Number of latents (default: the recipe's)."),
    samples: int | None = typer.Option(None, "--samples", help="Training samples (default: the recipe's)."),
    seed: int = typer.Option(0, "--seed"),
    lr: float | None = typer.Option(None, "--lr", help="Learning rate (default: the recipe's)."),
    batch_size: int | None = typer.Option(None, "--batch-size"),
    threads: int = typer.Option(1, "--threads", help="Torch threads; part of the SAE's id. 1: the robust choice "
                                "on 2-core CPUs (2 is ~1.3x faster on an idle machine, ~12x slower on a busy one)."),
    checkpoint_every: int | None = typer.Option(None, "--checkpoint-every", help="Samples between checkpoints "
                                                "(default: every 10% of the samples; 0: none). Not part of the id."),
    eval_samples: int = typer.Option(100_000, "--eval-samples", help="Held-out samples for the metrics (>= 512)."),
    out: Path = typer.Option(..., "--out", help="Store directory (the SAE goes to OUT/sae-<id>)."),
    device: str = typer.Option("cpu", "--device", help=DEVICE_HELP + " Its type is part of the SAE's id."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Progress on stderr: a bar on a "
                                  "terminal, else a plain line every 10% of the samples."),
) -> None:
    """Train an SAE; a rerun after a kill resumes from OUT's newest checkpoint.  Last line: JSON
    with its path and metrics.  Exit 2, nothing stored, if training diverges."""
    from featgeom.device import check_device
    from featgeom.sae import train
    from featgeom.sae.evaluate import check_eval_samples
    from featgeom.sae.recipes import published_settings, recipe
    from featgeom.store.paths import writable_destination

    device = check_device(device, "--device")
    out = writable_destination(out, "--out")
    check_eval_samples(eval_samples)
    fam = _family(family, preset, out)
    m = fam.member(member)
    given = {"width": width, "l0": l0, "samples": samples, "lr": lr, "batch_size": batch_size}
    overrides = {**published_settings(preset), **{k: v for k, v in given.items() if v is not None}}
    cfg = recipe(arch, fam, m.name, seed=seed, threads=threads, checkpoint_every=checkpoint_every, device=device,
                 **overrides)
    result = train(fam, m.name, cfg, out, eval_samples=eval_samples, progress=progress)
    typer.echo(json.dumps({"path": str(result.path), "id": result.id, "arch": cfg.arch,
                           "member": m.name, **_metrics(result.metrics)}))


def _family(family: Path | None, preset: str | None, out: Path):
    """The family of --family, or of --preset (a one-member family of that world, built once and
    kept in OUT as ``family-<id>``); ConfigError unless exactly one of the two is given."""
    from featgeom.family import FamilyConfig, build_family, save
    from featgeom.family import load as load_family
    from featgeom.family.io import GENERATOR, KIND
    from featgeom.store import artifact_id

    if (family is None) == (preset is None):
        raise ConfigError("--family, --preset: give exactly one (a stored family, or a world preset to build)")
    if family is not None:
        return load_family(family)
    cfg = FamilyConfig.from_dict({"world": preset, "name": f"{preset}-world"})
    path = out / f"family-{artifact_id(KIND, cfg.to_dict(), GENERATOR)}"
    if path.exists():
        return load_family(path)
    built = build_family(cfg)
    save(built, path)
    return built


@sae_app.command("eval")
def eval_cmd(
    sae: Path = typer.Argument(..., help="SAE artifact directory."),
    family: Path = typer.Option(..., "--family", help="Family artifact directory."),
    member: str = typer.Option("base", "--member", help="Member name."),
    eval_samples: int = typer.Option(100_000, "--eval-samples", help="Held-out samples (>= 512)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the held-out stream."),
    cross_member: bool = typer.Option(False, "--cross-member", help="Allow a member other than the one the SAE "
                                      "was trained on (a transfer evaluation)."),
    device: str = typer.Option("cpu", "--device", help=DEVICE_HELP),
) -> None:
    """Evaluate a stored SAE on held-out samples of the member it was trained on (or, with
    --cross-member, of another); print its metrics (JSON)."""
    from featgeom.config import check_seed
    from featgeom.device import check_device
    from featgeom.family import load as load_family
    from featgeom.sae import load
    from featgeom.sae.evaluate import check_eval_samples, evaluate_trained

    device = check_device(device, "--device")
    check_eval_samples(eval_samples)
    check_seed("seed", seed)
    trained = load(sae)
    fam = load_family(family)
    metrics = evaluate_trained(trained, fam, member, eval_samples, seed=seed, cross_member=cross_member,
                               device=device)
    typer.echo(json.dumps({"path": str(sae), "id": trained.id, "member": fam.member(member).name,
                           **_metrics(metrics)}))


@sae_app.command("table")
def table_cmd(
    preset: str = typer.Option("small", "--preset", help="World preset of the family (base member)."),
    out: Path = typer.Option(Path("sae-table"), "--out", help="Store for the trained SAEs."),
    arch: list[str] | None = typer.Option(None, "--arch", help="Only these architectures (repeatable)."),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Train every architecture's recipe on PRESET and print the recipe table (markdown + JSON)."""
    from featgeom.sae.recipes import markdown_table, recipe_table
    from featgeom.store.paths import writable_destination

    out = writable_destination(out, "--out")
    rows = recipe_table(preset, out, archs=arch or None, seed=seed)
    typer.echo(markdown_table(rows))
    typer.echo(json.dumps({"preset": preset, "rows": rows}))
