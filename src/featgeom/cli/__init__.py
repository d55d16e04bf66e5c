"""The ``featgeom`` command line (typer).

Exit codes (README "Exit codes"): 0 success; 2 bad input (a featgeom error, a usage error, an
unreadable input or unwritable output: one line on stderr); 130 interrupted (Ctrl-C / SIGINT:
"interrupted; rerun to resume"); 1 an internal error (a traceback and a request to report it).
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Sequence

import typer
from typer.exceptions import Abort, TyperException

import featgeom
from featgeom.cli.compare import compare_cmd, metrics_cmd
from featgeom.cli.family import family_app
from featgeom.cli.real import real_app
from featgeom.cli.run import analyses, experiments, export, run
from featgeom.cli.sae import sae_app
from featgeom.errors import FeatgeomError

EXIT_OK, EXIT_INTERNAL, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130

app = typer.Typer(help="featgeom: synthetic benchmarking of universal feature geometry.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
app.add_typer(family_app, name="family")
app.command("run")(run)
app.command("experiments")(experiments)
app.command("analyses")(analyses)
app.command("export")(export)
app.command("compare")(compare_cmd)
app.command("metrics")(metrics_cmd)
app.add_typer(sae_app, name="sae")
app.add_typer(real_app, name="real")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"featgeom {featgeom.__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit.")) -> None:
    """featgeom: synthetic benchmarking of universal feature geometry."""


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point: run the command line and exit with its code (see module docstring)."""
    sys.exit(exit_code(argv))


def exit_code(argv: Sequence[str] | None = None) -> int:
    """Run ``featgeom ARGV`` (default: sys.argv[1:]); report any failure on stderr; its exit code.
    A SIGINT is remembered (:mod:`featgeom.interrupts`), so one whose KeyboardInterrupt Python
    dropped still ends the command with 130."""
    from featgeom import interrupts

    interrupts.install()
    try:
        code = app(args=None if argv is None else list(argv), prog_name="featgeom", standalone_mode=False)
        if interrupts.interrupted():
            code = EXIT_INTERRUPTED
    except FeatgeomError as exc:
        return _fail(f"error: {exc}", EXIT_BAD_INPUT)
    except TyperException as exc:  # usage errors: typer raises its vendored click's exceptions
        exc.show()  # type: ignore[attr-defined]
        return EXIT_BAD_INPUT
    except (KeyboardInterrupt, Abort):
        code = EXIT_INTERRUPTED
    except OSError as exc:
        where = f": {exc.filename}" if exc.filename else ""
        return _fail(f"error: {exc.strerror or exc}{where}", EXIT_BAD_INPUT)
    except Exception:
        if interrupts.interrupted():  # a library turned the interrupt into its own error
            return _fail("interrupted; rerun the same command to resume (finished work is kept)", EXIT_INTERRUPTED)
        traceback.print_exc()
        return _fail(f"internal error: this is a bug in featgeom {featgeom.__version__}; please report it "
                     "to the featgeom issue tracker with the command and the traceback above", EXIT_INTERNAL)
    finally:
        interrupts.uninstall()
    if code == EXIT_INTERRUPTED:  # typer turns Ctrl-C inside a command into exit code 130
        return _fail("interrupted; rerun the same command to resume (finished work is kept)", EXIT_INTERRUPTED)
    return code if isinstance(code, int) else EXIT_OK


def _fail(message: str, code: int) -> int:
    print(message, file=sys.stderr)
    return code

