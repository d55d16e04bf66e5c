"""Per-architecture training recipes for 2-core CPUs, and the recipe table.

``recipe(arch, family, member)`` is the tuned default config (width = the member's number of
features times the recipe's ``width_factor``, default 1; target L0 = the member's true L0
rounded; settings from RECIPES); explicit keyword overrides win.  ``recipe_table(preset, store)`` trains every recipe on the preset's base world
and returns one row per architecture (``featgeom sae table --preset small``); docs/sae_recipes.md
records the measured table and how the recipes were found.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from featgeom.errors import ConfigError
from featgeom.sae.architectures import REGISTRY
from featgeom.sae.config import ARCHITECTURES, SAETrainConfig

# Settings found on the `small` preset (512 features, 128 dims) within 5 minutes on 2 cores, one
# torch thread (docs/sae_recipes.md has the measurements); each architecture's registry entry holds its own.
RECIPES: dict[str, dict[str, Any]] = {name: dict(a.recipe) for name, a in REGISTRY.items()}
# The SAE settings SynthSAEBench publishes for its 16k world (width 4096, L0 25, 200M training
# samples; ../shared/notes/anchors.md), the defaults of `featgeom sae train --preset synthsaebench-16k`.
PUBLISHED: dict[str, dict[str, Any]] = {"synthsaebench-16k": {"width": 4096, "l0": 25, "samples": 200_000_000}}
TABLE_COLUMNS = ("arch", "mcc", "f1", "explained_variance", "l0", "dead_fraction", "minutes")


def true_l0(family: Any, member: str | int, num_samples: int = 16_384) -> float:
    """Mean number of active true features per sample of ``member`` (fixed held-out draw)."""
    from featgeom.sae.data import MemberStream
    from featgeom.sae.evaluate import EVAL_SALT

    _, acts = MemberStream(family, member, seed=0, salt=EVAL_SALT).next(num_samples)
    return float(acts.getnnz() / num_samples)


def published_settings(preset: str | None) -> dict[str, Any]:
    """The published SAE settings of a world preset (PUBLISHED), or {} for featgeom's own presets."""
    return dict(PUBLISHED.get(preset or "", {}))


def recipe(arch: str, family: Any, member: str | int = "base", **overrides: Any) -> SAETrainConfig:
    """The default config of ``arch`` for ``member`` (see module docstring); ConfigError on bad values."""
    if arch not in RECIPES:
        raise ConfigError(f"arch: unknown architecture {arch!r} (one of {', '.join(ARCHITECTURES)})")
    m = family.member(member)
    settings = dict(RECIPES[arch])
    factor = settings.pop("width_factor", 1.0)
    data: dict[str, Any] = {"arch": arch, "width": max(1, round(factor * m.num_features)), **settings}
    if "l0" not in overrides:
        data["l0"] = max(1, round(true_l0(family, member)))
    data.update(overrides)
    data["log_every"] = overrides.get("log_every", max(data["samples"] // 50, data.get("batch_size", 1024)))
    return SAETrainConfig.from_dict(data)


def recipe_table(preset: str, store: str | Path, archs: list[str] | None = None, seed: int = 0,
                 eval_samples: int = 100_000, progress: bool = True) -> list[dict[str, Any]]:
    """Train every (or the given) architecture's recipe on the preset's base world; one row each.

    Each run uses the config's ``threads`` (1 by default, see :class:`SAETrainConfig`).
    """
    from featgeom.family import FamilyConfig, build_family

    family = build_family(FamilyConfig.from_dict({"world": preset, "name": f"{preset}-world"}))
    return _recipe_rows(preset, store, archs, seed, eval_samples, progress, family)


def _recipe_rows(preset: str, store: str | Path, archs: list[str] | None, seed: int, eval_samples: int,
                 progress: bool, family: Any) -> list[dict[str, Any]]:
    from featgeom.sae.train import train

    rows = []
    for arch in archs or list(ARCHITECTURES):
        cfg = recipe(arch, family, "base", seed=seed)
        trained = train(family, "base", cfg, store, eval_samples=eval_samples, progress=progress)
        minutes = trained.seconds / 60
        rows.append({"arch": arch, **{k: trained.metrics[k] for k in TABLE_COLUMNS[1:-1]},
                     "minutes": minutes, "samples": cfg.samples, "width": cfg.width, "target_l0": cfg.l0,
                     "train_samples_per_s": float(np.median(trained.history["samples_per_s"])),
                     "path": str(trained.path)})
    return rows


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """The table as markdown (architecture × MCC, F1, EV, L0, dead fraction, minutes)."""
    head = "| architecture | MCC | F1 | explained variance | L0 | dead fraction | minutes |"
    lines = [head, "|" + "---|" * len(TABLE_COLUMNS)]
    for r in rows:
        lines.append(f"| {r['arch']} | {r['mcc']:.3f} | {r['f1']:.3f} | {r['explained_variance']:.3f} | "
                     f"{r['l0']:.1f} | {r['dead_fraction']:.3f} | {r['minutes']:.1f} |")
    return "\n".join(lines)
