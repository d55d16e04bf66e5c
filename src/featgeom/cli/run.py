"""``featgeom run NAME|FILE`` and ``featgeom experiments``: declarative experiments."""

from __future__ import annotations

import os
from pathlib import Path

import typer


def run(name: str = typer.Argument(..., help="A registered experiment (see `featgeom experiments`) or a YAML file."),
        preset: str = typer.Option("small", "--preset", help="World preset: tiny | small | medium | synthsaebench-16k (full scale, for a GPU)."),
        out: Path | None = typer.Option(None, "--out", help="Output directory (default: runs/NAME-PRESET)."),
        workers: int = typer.Option(os.cpu_count() or 1, "--workers", min=1, help="Local worker processes."),
        ray: bool = typer.Option(False, "--ray", help="Run the jobs as Ray tasks (local instance unless --ray-address)."),
        ray_address: str | None = typer.Option(None, "--ray-address", help="Address of an existing Ray cluster."),
        device: str | None = typer.Option(None, "--device", help="Where torch work runs: cpu | cuda | cuda:N "
                                          "(default: the experiment's `device:`, else cpu)."),
        quiet: bool = typer.Option(False, "--quiet", help="No progress bar.")) -> None:
    """Run (or resume) an experiment into OUT, write OUT/report.html and print its path."""
    from featgeom.device import check_device
    from featgeom.experiments.runner import run_experiment
    from featgeom.experiments.spec import load_spec
    from featgeom.report.experiment import write_experiment_report
    from featgeom.store import writable_destination

    if device is not None and ray_address is None:  # on a cluster the device is checked against the cluster
        check_device(device, "--device")
    spec = load_spec(name).at_preset(preset)
    out = writable_destination(out if out is not None else Path("runs") / f"{spec.name}-{preset}", "--out")
    summary = run_experiment(spec, out, workers=workers, ray=ray or ray_address is not None, ray_address=ray_address,
                             progress=not quiet, device=device)
    report = write_experiment_report(out)
    typer.echo(f"results: {summary.db} ({summary.jobs_run} of {summary.jobs_total} jobs run now, "
               f"{summary.seconds / 60:.1f} min); csv: {out / 'results.csv'}")
    typer.echo(f"report: {report}")


def experiments() -> None:
    """List the registered experiments with a one-line description each."""
    from featgeom.experiments.spec import load_spec, registry

    names = sorted(registry())
    width = max(map(len, names))
    for name in names:
        typer.echo(f"{name:{width}s}  {load_spec(name).description}")
