"""``featgeom real compare|presets|convert-sparsify``: the universality pipeline on real models."""

from __future__ import annotations

from pathlib import Path

import typer

real_app = typer.Typer(help="Compare SAEs of two real language models layer by layer (featgeom.real).",
                       no_args_is_help=True)


def _layers(text: str | None, name: str) -> list[int] | None:
    """'0,2,4' -> [0, 2, 4]; 'all' or None -> None."""
    from featgeom.errors import ConfigError

    if text is None or text.strip().lower() == "all":
        return None
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ConfigError(f"{name}: expected comma-separated block indices like 0,2,4 or 'all', got {text!r}") from None


@real_app.command("compare")
def compare_cmd(
    preset: str | None = typer.Option(None, "--preset", help="minilm (offline demo) | minilm-tiny | pythia-70m-160m "
                                      "(the paper's run; needs the hub). See `featgeom real presets`."),
    config: Path | None = typer.Option(None, "--config", help="A YAML / JSON file of RealConfig fields (on top of "
                                       "--preset)."),
    out: Path | None = typer.Option(None, "--out", help="Output directory (default: runs/real-PRESET)."),
    model_a: str | None = typer.Option(None, "--model-a", help="A model: an offline name, a local directory or a hub id."),
    model_b: str | None = typer.Option(None, "--model-b"),
    layers_a: str | None = typer.Option(None, "--layers-a", help="Blocks of A to hook: 0,2,4 or all."),
    layers_b: str | None = typer.Option(None, "--layers-b"),
    sae_a: str | None = typer.Option(None, "--sae-a", help="SAE spec with {layer} (a folder, RELEASE/ID, "
                                     "sparsify:REPO/layers.{layer}); default: featgeom trains one per layer."),
    sae_b: str | None = typer.Option(None, "--sae-b"),
    corpus: str | None = typer.Option(None, "--corpus", help="wiki | news | pydoc | a text file | a directory | "
                                      "hf:NAME[:SPLIT[:COLUMN]]."),
    n_perm: int | None = typer.Option(None, "--n-perm", help="Permutations of each null."),
    device: str | None = typer.Option(None, "--device", help="cpu | cuda | cuda:N (checked before any work)."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress lines."),
) -> None:
    """Run (or resume) a layer-pair comparison into OUT; print the report's path."""
    from featgeom.config import read_config_file
    from featgeom.device import check_device
    from featgeom.real.config import real_config
    from featgeom.real.sweep import run_sweep
    from featgeom.store import writable_destination

    overrides = read_config_file(config) if config is not None else {}
    flags = {"model_a": model_a, "model_b": model_b, "sae_a": sae_a, "sae_b": sae_b, "corpus": corpus,
             "n_perm": n_perm, "device": device, "layers_a": _layers(layers_a, "--layers-a"),
             "layers_b": _layers(layers_b, "--layers-b")}
    overrides.update({k: v for k, v in flags.items() if v is not None})
    if preset is None and not {"model_a", "model_b"} <= set(overrides):
        from featgeom.errors import ConfigError

        raise ConfigError("--preset: give a preset, or both --model-a and --model-b (or a --config naming them)")
    cfg = real_config(preset, overrides)
    check_device(cfg.device, "--device")
    out = writable_destination(out if out is not None else Path("runs") / f"real-{preset or 'custom'}", "--out")
    say = None if quiet else (lambda msg: typer.echo(msg, err=True))
    result = run_sweep(cfg, out, progress=say)
    typer.echo(f"results: {out / 'results.sqlite'} ({len(result.rows)} values); csv: {out / 'results.csv'}")
    if result.viewer is not None:
        typer.echo(f"viewer: {result.viewer}")
    typer.echo(f"report: {result.report}")


@real_app.command("presets")
def presets_cmd() -> None:
    """List the real-model presets with their models and corpus."""
    from featgeom.real.config import preset_summaries

    for line in preset_summaries():
        typer.echo(line)


@real_app.command("convert-sparsify")
def convert_cmd(src: Path = typer.Argument(..., help="An EleutherAI sparsify SAE folder (cfg.json + sae.safetensors)."),
                dst: Path = typer.Argument(..., help="Where to write the SAELens SAE folder.")) -> None:
    """Convert an EleutherAI sparsify SAE to a SAELens folder (SAELens's own loader mis-reads W_dec)."""
    from featgeom.real.saes import convert_sparsify
    from featgeom.store import writable_destination

    typer.echo(str(convert_sparsify(src, writable_destination(dst, "DST"))))
