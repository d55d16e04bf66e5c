"""``featgeom sae train|eval|table``."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from featgeom.errors import ConfigError

sae_app = typer.Typer(help="Train and evaluate SAEs on family members (and train them on real models' stored "
                       "activations).", no_args_is_help=True)

METRIC_KEYS = ("mcc", "f1", "explained_variance", "l0", "dead_fraction", "precision", "recall", "shrinkage",
               "uniqueness", "dead_latents", "true_l0", "mse")


def _metrics(metrics: dict) -> dict:
    return {k: metrics[k] for k in METRIC_KEYS if k in metrics}


DEVICE_HELP = "Where torch runs: cpu | cuda | cuda:N (checked before any work)."


@sae_app.command("train")
def train_cmd(
    family: Path | None = typer.Option(None, "--family", help="Family artifact directory (or --preset, or "
                                       "--activations)."),
    preset: str | None = typer.Option(None, "--preset", help="Instead of --family: a world preset (tiny, small, "
                                      "medium, synthsaebench-16k), stored in OUT once; synthsaebench-16k defaults "
                                      "to the published SAE settings (width 4096, L0 25, 200M samples)."),
    activations: Path | None = typer.Option(None, "--activations", help="Instead of --family: a real model's "
                                            "stored activations (featgeom activations artifact); needs --layer."),
    layer: int | None = typer.Option(None, "--layer", help="With --activations: the layer to train on."),
    member: str | None = typer.Option(None, "--member", help="Member name (families only; default base)."),
    arch: str = typer.Option(..., "--arch", help="standard|topk|batchtopk|matryoshka_batchtopk|jumprelu|gated|matching_pursuit"),
    l0: float | None = typer.Option(None, "--l0", help="Target L0 (default: the recipe's; on activations "
                                    "min(32, width))."),
    width: int | None = typer.Option(None, "--width", help="Number of latents (default: the recipe's; on "
                                     "activations 8 x d_model)."),
    samples: int | None = typer.Option(None, "--samples", help="Training samples (default: the recipe's)."),
    seed: int = typer.Option(0, "--seed"),
    lr: float | None = typer.Option(None, "--lr", help="Learning rate (default: the recipe's)."),
    batch_size: int | None = typer.Option(None, "--batch-size"),
    threads: int = typer.Option(1, "--threads", help="Torch threads; part of the SAE's id. 1: the robust choice "
                                "on 2-core CPUs (2 is ~1.3x faster on an idle machine, ~12x slower on a busy one)."),
    checkpoint_every: int | None = typer.Option(None, "--checkpoint-every", help="Samples between checkpoints "
                                                "(default: every 10% of the samples; 0: none). Not part of the id."),
    eval_samples: int = typer.Option(100_000, "--eval-samples", help="Held-out samples for the metrics (>= 512); "
                                     "on activations the cap on held-out rows (10% of the rows, at least 512)."),
    out: Path = typer.Option(..., "--out", help="Store directory (the SAE goes to OUT/sae-<id>)."),
    device: str = typer.Option("cpu", "--device", help=DEVICE_HELP + " Its type is part of the SAE's id."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Progress on stderr: a bar on a "
                                  "terminal, else a plain line every 10% of the samples."),
) -> None:
    """Train an SAE on a family member or on a real model's stored activations (one layer); a rerun
    after a kill resumes from OUT's newest checkpoint.  Last line: JSON with its path and metrics
    (on activations: those that need no ground truth, on held-out rows).  Exit 2, nothing stored,
    if training diverges."""
    from featgeom.device import check_device
    from featgeom.sae import train
    from featgeom.sae.evaluate import check_eval_samples
    from featgeom.sae.recipes import published_settings, recipe
    from featgeom.store.paths import writable_destination

    _check_sources(family, preset, activations, layer, member)
    device = check_device(device, "--device")
    out = writable_destination(out, "--out")
    check_eval_samples(eval_samples)
    given = {"width": width, "l0": l0, "samples": samples, "lr": lr, "batch_size": batch_size}
    if activations is not None:
        _train_on_activations(activations, layer, arch, given, out,  # type: ignore[arg-type]
                              seed=seed, threads=threads, checkpoint_every=checkpoint_every, device=device,
                              eval_samples=eval_samples, progress=progress)
        return
    fam = _family(family, preset, out)
    m = fam.member(member or "base")
    overrides = {**published_settings(preset), **{k: v for k, v in given.items() if v is not None}}
    cfg = recipe(arch, fam, m.name, seed=seed, threads=threads, checkpoint_every=checkpoint_every, device=device,
                 **overrides)
    result = train(fam, m.name, cfg, out, eval_samples=eval_samples, progress=progress)
    typer.echo(json.dumps({"path": str(result.path), "id": result.id, "arch": cfg.arch,
                           "member": m.name, **_metrics(result.metrics)}))


def _check_sources(family: Path | None, preset: str | None, activations: Path | None, layer: int | None,
                   member: str | None) -> None:
    """ConfigError unless exactly one of --family, --preset, --activations is given, --layer comes
    with (and only with) --activations, and --member is not combined with --activations."""
    given = [name for name, value in (("--family", family), ("--preset", preset), ("--activations", activations))
             if value is not None]
    if len(given) != 1:
        what = f" (got {', '.join(given)})" if given else ""
        raise ConfigError(f"--family, --preset: give exactly one of --family, --preset, --activations (a stored "
                          f"family, a world preset to build, or a real model's stored activations){what}")
    if activations is not None and layer is None:
        raise ConfigError("--layer: required with --activations (which layer's activations to train on)")
    if activations is None and layer is not None:
        raise ConfigError("--layer: only with --activations (a family member has no layers; use --member)")
    if activations is not None and member is not None:
        raise ConfigError("--member: only with --family or --preset (activations have layers; use --layer)")


def _train_on_activations(path: Path, layer: int, arch: str, given: dict, out: Path, *, eval_samples: int,
                          progress: bool, **settings) -> None:
    """Train on layer ``layer`` of the activations artifact at ``path``; print the JSON line."""
    from featgeom.real.activations import load_activations
    from featgeom.sae.train import activation_recipe, train_on_activation_set

    acts = load_activations(path)
    if layer not in tuple(acts.layers):
        raise ConfigError(f"--layer: the activations {acts.id} hold layers {list(acts.layers)}, not {layer}")
    overrides = {k: v for k, v in given.items() if v is not None}
    cfg = activation_recipe(arch, acts.d_model, **settings, **overrides)
    result = train_on_activation_set(acts, layer, cfg, out, eval_samples=eval_samples, progress=progress)
    typer.echo(json.dumps({"path": str(result.path), "id": result.id, "arch": cfg.arch, "activations": acts.id,
                           "layer": layer, **_metrics(result.metrics)}))


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


@sae_app.command("architectures")
def architectures_cmd() -> None:
    """List the registered architectures: name, how the target L0 is reached (controlled
    coefficient and the gate calibrated after training, or set directly), revival, sparse pass, and
    the description (featgeom.sae.architectures)."""
    from featgeom.sae.architectures import REGISTRY

    width = max(len(name) for name in REGISTRY)
    for a in REGISTRY.values():
        l0 = f"controller on '{a.coefficient}', calibrates {a.gate}" if a.controlled else "set directly"
        revival = "aux or resample" if a.aux_revival else "resample"
        typer.echo(f"{a.name:{width}s}  L0: {l0:40s}  revival: {revival:15s}  "
                   f"sparse pass: {'yes' if a.sparse_pass else 'no ':3s}  {a.description}")
