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


def analyses() -> None:
    """List the registered analyses (what an experiment's ``analyses:`` may name)."""
    from featgeom.experiments.analyses import analysis_table

    table = analysis_table()
    width = max(len(name) for name, _, _ in table)
    for name, unit, description in table:
        typer.echo(f"{name:{width}s}  {unit:12s}  {description}")


def export(out: Path = typer.Argument(..., help="An experiment's output directory (holding results.sqlite)."),
           fmt: str = typer.Option("parquet", "--format", help="parquet | csv."),
           to: Path | None = typer.Option(None, "--to", help="File to write (default: OUT/results.FORMAT).")) -> None:
    """Export every results row of OUT (one typed measurement per row) as Parquet or CSV."""
    from featgeom.errors import ConfigError
    from featgeom.experiments.runner import DB_NAME
    from featgeom.store import writable_destination
    from featgeom.store.results import ResultsDB

    if fmt not in ("parquet", "csv"):
        raise ConfigError(f"--format: must be parquet or csv, got {fmt!r}")
    if not (out / DB_NAME).is_file():
        raise ConfigError(f"out: {out} holds no {DB_NAME} (run an experiment into it first)")
    target = to if to is not None else out / f"results.{fmt}"
    if target.is_dir():
        raise ConfigError(f"--to: {target} is a directory; name the file to write")
    writable_destination(target.parent, "--to")
    db = ResultsDB(out / DB_NAME)
    path = db.export_parquet(target) if fmt == "parquet" else db.export_csv(target)
    typer.echo(f"{fmt}: {path} ({len(db.results())} rows)")
