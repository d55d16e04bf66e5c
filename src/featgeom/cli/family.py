"""``featgeom family create|show``."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from featgeom.config import read_config_file

family_app = typer.Typer(help="Build and inspect model families.", no_args_is_help=True)


@family_app.command("create")
def create(config: Path = typer.Argument(..., help="Family config (YAML)."),
           out: Path = typer.Option(..., "--out", help="Artifact directory to write.")) -> None:
    """Build a family from CONFIG and store it in OUT; print a JSON summary."""
    from featgeom.family import FamilyConfig, build_family, save
    from featgeom.family.io import GENERATOR, KIND
    from featgeom.store import artifact_destination, artifact_id

    cfg = FamilyConfig.from_dict(read_config_file(config))
    artifact_destination(out, artifact_id(KIND, cfg.to_dict(), GENERATOR), "--out")
    family = build_family(cfg)
    family_id = save(family, out)
    typer.echo(json.dumps({"id": family_id, "path": str(out), **family.summary()}))


@family_app.command("show")
def show(path: Path = typer.Argument(..., help="Family artifact directory.")) -> None:
    """Verify and describe a stored family (JSON)."""
    from featgeom.family import load
    from featgeom.store import read_artifact

    family = load(path)
    typer.echo(json.dumps({"id": read_artifact(path).id, "path": str(path), **family.summary()}))
