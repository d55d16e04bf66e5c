"""Training checkpoints: the full state of a run after some number of samples.

Layout: ``STORE/checkpoints/<run id>/<samples, 12 digits>/`` holding ``state.pt`` (SAE and
optimiser tensors, scheduler, controller, dead-latent counters, sampler and torch generator
states, history) and ``manifest.json`` (run id, samples, sha256 of state.pt).  Each is written
to a temporary sibling and renamed into place, so a killed process leaves only whole checkpoints.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from featgeom.store.artifacts import atomic_directory, sha256


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


def latest_checkpoint(root: Path, run_id: str, device: Any = None) -> tuple[Path, dict[str, Any]] | None:
    """The newest whole, hash-verified checkpoint of ``run_id`` under ``root`` and its state (tensors
    on ``device``; None: where they were saved), or None."""
    if not root.is_dir():
        return None
    for path in sorted((p for p in root.iterdir() if p.name.isdigit()), reverse=True):
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
