"""``featgeom run NAME``: run a registered experiment and print the report's path."""

from __future__ import annotations

from pathlib import Path

import typer

from featgeom.errors import ConfigError

EXPERIMENTS = {"quickstart": "3-member family (rotation, 70% overlap), TopK SAEs, compare with ground truth"}


def run(name: str = typer.Argument(..., help=f"Experiment: {', '.join(EXPERIMENTS)}"),
        out: Path = typer.Option(Path("runs/quickstart"), "--out", help="Output directory."),
        preset: str = typer.Option("small", "--preset", help="World preset (tiny | small | medium)."),
        quiet: bool = typer.Option(False, "--quiet", help="No progress bars.")) -> None:
    """Run experiment NAME into OUT and print the path of its report."""
    if name not in EXPERIMENTS:
        raise ConfigError(f"name: unknown experiment {name!r} (one of {', '.join(EXPERIMENTS)})")
    from featgeom.experiments.quickstart import run_quickstart

    report = run_quickstart(out, preset=preset, progress=not quiet)
    typer.echo(f"report: {report}")
