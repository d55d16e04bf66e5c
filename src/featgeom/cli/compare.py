"""``featgeom compare SAE_A SAE_B --family DIR`` and ``featgeom metrics`` (the similarity metrics)."""

from __future__ import annotations

from pathlib import Path

import typer

from featgeom.errors import ConfigError
from featgeom.match.correlation import MIN_SAMPLES
from featgeom.stats.null import MIN_N_PERM


def compare_cmd(
    sae_a: Path = typer.Argument(..., help="First SAE artifact directory."),
    sae_b: Path = typer.Argument(..., help="Second SAE artifact directory."),
    family: Path = typer.Option(..., "--family", help="Family artifact both SAEs were trained on."),
    samples: int = typer.Option(20_000, "--samples", min=MIN_SAMPLES, help="Shared inputs to compare on."),
    n_perm: int = typer.Option(1000, "--n-perm", min=MIN_N_PERM, help="Draws per null."),
    null: list[str] = typer.Option(["repair"], "--null", help="Null(s): 'repair' (valid: permuted samples, "
                                   "pairing recomputed) and/or 'shuffle' (the paper's Test 1). Repeatable."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of the inputs and of the nulls."),
    as_json: bool = typer.Option(False, "--json", help="Print the full result as JSON (last line)."),
    device: str = typer.Option("cpu", "--device", help="Where encoding, correlation and nulls run: cpu (the "
                               "NumPy path) | cuda | cuda:N (the torch path; same pairs and p-values)."),
    metrics: str | None = typer.Option(None, "--metrics", help="Similarity metrics to measure, comma-separated "
                                       "(see `featgeom metrics`; default: all)."),
) -> None:
    """Compare two stored SAEs of one family on the same inputs, with ground truth."""
    from featgeom.device import compute_device
    from featgeom.compare import GroundTruth, compare
    from featgeom.family import load as load_family
    from featgeom.sae import load as load_sae
    from featgeom.sae.train import family_id_of

    chosen = metrics_option(metrics)
    where = compute_device(device, "--device")
    fam = load_family(family)
    a, b = load_sae(sae_a), load_sae(sae_b)
    for path, sae in ((sae_a, a), (sae_b, b)):
        if sae.family_id != family_id_of(fam):
            raise ConfigError(f"{path}: trained on family {sae.family_id}, not on {family} ({family_id_of(fam)})")
    batch = fam.sample(samples, seed=seed, with_features=True, members=[a.member, b.member])
    result = compare(a.sae, b.sae, batch.hidden[a.member], batch.hidden[b.member], n_perm=n_perm, seed=seed,
                     nulls=null, ground_truth=GroundTruth.from_family(fam, a.member, b.member, batch.features),
                     device=where, metrics=chosen)
    if as_json:
        typer.echo(result.to_json())
        return
    for mode, summary in result.pairings.items():
        typer.echo(f"{mode}: {summary['n_pairs']} pairs, mean corr {summary['mean_corr']:.3f}, "
                   + ", ".join(f"{m} {summary[m]['observed']:.3f} ("
                               + ", ".join(f"p {t['p_value']:.3g} {name}" for name, t in summary[m]["nulls"].items())
                               + ")" for m in chosen))
    gt = result.ground_truth
    typer.echo(f"ground truth: GT-MCC {gt['gt_mcc']:.3f}, empirical MCC {gt['empirical_mcc']:.3f}, "
               f"gap {gt['universality_gap']:.3f}, accuracy {gt['correspondence_accuracy']}")


def metrics_option(text: str | None) -> tuple[str, ...]:
    """The metrics ``--metrics`` names (comma-separated; None: every registered metric, in registry
    order); ConfigError naming ``--metrics`` for an empty, unknown or repeated name."""
    from featgeom.compare import checked_metrics

    names = None if text is None else [part.strip() for part in text.split(",")]
    if names is not None and not all(names):
        raise ConfigError(f"--metrics: empty name in {text!r}; give comma-separated names (see `featgeom metrics`)")
    try:
        return checked_metrics(names)
    except ConfigError as exc:
        raise ConfigError(f"--metrics: {str(exc).removeprefix('metrics: ')}") from None


def metrics_cmd() -> None:
    """List the similarity metrics (name, label, description), in the order compare measures them."""
    from featgeom.similarity.registry import SIMILARITY, similarity_metric

    entries = [similarity_metric(name) for name in SIMILARITY]
    name_width, label_width = max(len(m.name) for m in entries), max(len(m.label) for m in entries)
    for m in entries:
        typer.echo(f"{m.name:{name_width}s}  {m.label:{label_width}s}  {m.description}")
