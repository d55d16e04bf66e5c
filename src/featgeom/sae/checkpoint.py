"""Training checkpoints: the full state of a run after some number of samples.

Layout: ``STORE/checkpoints/<run id>/<samples, 12 digits>/`` holding ``state.pt`` (SAE and
optimiser tensors, scheduler, controller, dead-latent counters, sampler and torch generator
states, history) and ``manifest.json`` (run id, samples, sha256 of state.pt).  Each is written
to a temporary sibling and renamed into place, so a killed process leaves only whole checkpoints.

Snapshots are different: the *inference* SAE of a run after some of its steps, kept after the
run ends (a checkpoint is removed once the final SAE is stored). A snapshot is an ordinary SAE
artifact (:func:`featgeom.sae.artifact.write_sae`, hash-verified by
:func:`featgeom.sae.artifact.load`) at ``STORE/sae-<id>``, where the id hashes the run config
plus ``snapshot_step`` (:func:`snapshot_config`): content-addressed by (run, step), so the same
run asked for the same fraction finds the same snapshot.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from featgeom.config import field_error
from featgeom.sae.artifact import GENERATOR, KIND, run_config
from featgeom.sae.config import SAETrainConfig
from featgeom.store.artifacts import artifact_id, atomic_directory, sha256


def checkpoint_root(store: Path, run_id: str) -> Path:
    """Directory of a run's checkpoints inside a store."""
    return Path(store) / "checkpoints" / run_id


def write_checkpoint(root: Path, run_id: str, samples: int, state: dict[str, Any]) -> Path:
    """Write ``state`` as the checkpoint at ``samples``; return its directory."""
    path = root / f"{samples:012d}"
    if path.exists():
        return path
    with atomic_directory(path) as tmp:
        torch.save(state, tmp / "state.pt")
        manifest = {"run_id": run_id, "samples": samples, "sha256": sha256(tmp / "state.pt")}
        (tmp / "manifest.json").write_text(json.dumps(manifest, sort_keys=True))
    return path


def latest_checkpoint(root: Path, run_id: str, device: Any = None,
                      at_most: int | None = None) -> tuple[Path, dict[str, Any]] | None:
    """The newest whole, hash-verified checkpoint of ``run_id`` under ``root`` (at most ``at_most``
    samples when given) and its state (tensors on ``device``; None: where they were saved), or None."""
    if not root.is_dir():
        return None
    found = (p for p in root.iterdir() if p.name.isdigit() and (at_most is None or int(p.name) <= at_most))
    for path in sorted(found, reverse=True):
        try:
            manifest = json.loads((path / "manifest.json").read_text())
            if manifest.get("run_id") != run_id or sha256(path / "state.pt") != manifest.get("sha256"):
                continue
            return path, torch.load(path / "state.pt", weights_only=False, map_location=device)
        except (OSError, ValueError, RuntimeError):
            continue
    return None


def checkpoint_samples(root: Path) -> list[int]:
    """Sample counts of the checkpoints present under ``root`` (ascending)."""
    if not root.is_dir():
        return []
    return sorted(int(p.name) for p in root.iterdir() if p.name.isdigit())


def snapshot_step(cfg: SAETrainConfig, fraction: float) -> int:
    """Optimiser steps after which the snapshot at ``fraction`` in (0, 1] of the training is taken:
    max(1, round(fraction x cfg.steps)), the whole step nearest to fraction x cfg.samples (its
    samples: that x batch_size); cfg.steps (the final SAE) for 1. ConfigError naming 'checkpoint'
    outside (0, 1]."""
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction <= 1:
        raise field_error("checkpoint", f"must be a fraction of the training samples in (0, 1], got {fraction!r}")
    return max(1, round(fraction * cfg.steps))


def snapshot_config(cfg: SAETrainConfig, family_id: str, member: str, step: int) -> dict[str, Any]:
    """The content-addressed config of the snapshot after ``step`` steps: the run's config
    (:func:`featgeom.sae.artifact.run_config`) plus ``snapshot_step``."""
    return {**run_config(cfg, family_id, member), "snapshot_step": int(step)}


def snapshot_path(store: str | Path, cfg: SAETrainConfig, family_id: str, member: str, fraction: float) -> Path:
    """Where the SAE at ``fraction`` of run ``cfg`` on ``member`` lives in ``store``: the snapshot
    artifact ``STORE/sae-<id of snapshot_config>``, or the final SAE ``STORE/sae-<run id>`` when
    the fraction's step is the last one."""
    step = snapshot_step(cfg, fraction)
    config = run_config(cfg, family_id, member) if step == cfg.steps else snapshot_config(cfg, family_id, member, step)
    return Path(store) / f"sae-{artifact_id(KIND, config, GENERATOR)}"
