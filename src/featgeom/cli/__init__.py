"""The ``featgeom`` command line (typer).  Every featgeom error becomes one line on stderr, exit 2."""

from __future__ import annotations

import sys

import typer

from featgeom.cli.compare import compare_cmd
from featgeom.cli.family import family_app
from featgeom.cli.run import experiments, run
from featgeom.cli.sae import sae_app
from featgeom.errors import FeatgeomError

app = typer.Typer(help="featgeom: synthetic benchmarking of universal feature geometry.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
app.add_typer(family_app, name="family")
app.command("run")(run)
app.command("experiments")(experiments)
app.command("compare")(compare_cmd)
app.add_typer(sae_app, name="sae")


def main() -> None:
    """Console entry point."""
    try:
        app(standalone_mode=False)
    except FeatgeomError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except (typer.Exit, SystemExit) as exc:
        sys.exit(getattr(exc, "exit_code", getattr(exc, "code", 0)))
    except Exception as exc:  # click usage errors (missing file, bad option)
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(2)
        raise
