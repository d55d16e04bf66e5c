"""Trained SAEs as store artifacts that SAELens can also load directly.

An SAE artifact directory holds the usual featgeom files (manifest.json, config.json with the
training config + family id + member, meta.json with metrics, arrays.safetensors with the
training history) *and* SAELens's own inference files at its root (cfg.json,
sae_weights.safetensors), so ``sae_lens.SAE.load_from_disk(path)`` works without featgeom.
The manifest hashes every file; the directory is written to a temporary sibling and renamed into
place only when complete, as :func:`featgeom.store.write_artifact` does.

The id is the hash of the training config (without ``checkpoint_every``, which changes no bit),
the family id, the member and GENERATOR: featgeom's version, TRAINER_VERSION (raised whenever the
trainer's code changes the bits it produces, so a store never returns an SAE an older trainer
made) and the versions of torch and SAELens.  Given the id, the weights are determined bit for
bit on one CPU instruction set; another CPU (e.g. AVX-512 instead of AVX2 kernels in MKL) may
differ in the last bits.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np

import featgeom
from featgeom.device import device_type
from featgeom.errors import ArtifactError
from featgeom.sae.config import SAETrainConfig
from featgeom.store.artifacts import artifact_id, read_artifact, write_artifact

KIND = "sae"
TRAINER_VERSION = 2  # 2: fixed thread count in the id, checkpoint interval out of it
GENERATOR = (f"featgeom-{featgeom.__version__}/sae-{TRAINER_VERSION}/torch-{version('torch')}"
             f"/sae-lens-{version('sae-lens')}")
NOT_IN_ID = ("checkpoint_every",)  # training settings that change no bit of the result
# Settings added after SAEs were first stored, left out of the id at these values (the behaviour
# before they existed), so every earlier SAE keeps its id; any other value enters it.
OMITTED_AT = {"device": "cpu", "jumprelu_sparsity_loss": "step", "threshold_lr_factor": 1.0}
SAELENS_FILES = ("cfg.json", "sae_weights.safetensors")


@dataclass(frozen=True)
class TrainedSAE:
    """A stored SAE: its id and path, the SAELens inference SAE, how it was trained, its metrics
    (held-out evaluation), its training history (arrays over log points) and the wall-clock
    seconds its training + evaluation took (informative only; not part of the id)."""

    id: str
    path: Path
    sae: Any
    config: SAETrainConfig
    family_id: str
    member: str
    metrics: dict[str, float]
    history: dict[str, np.ndarray]
    seconds: float = float("nan")


def run_config(cfg: SAETrainConfig, family_id: str, member: str) -> dict[str, Any]:
    """The content-addressed config of a run: training config (less NOT_IN_ID) + what it was trained on.

    The device enters as its type ('cuda'; the index only says which of alike GPUs ran it). Fields
    at their OMITTED_AT value ('cpu', JumpReLU's 'step' loss, threshold lr factor 1) are left out,
    so the ids are those of the trainer before these fields existed.
    """
    train = {k: v for k, v in cfg.to_dict().items() if k not in NOT_IN_ID}
    train["device"] = device_type(train["device"])
    return {"train": {k: v for k, v in train.items() if OMITTED_AT.get(k, object()) != v},
            "family_id": family_id, "member": member}


def run_id(cfg: SAETrainConfig, family_id: str, member: str) -> str:
    """Artifact id of the SAE a run produces (same config ⇒ same id)."""
    return artifact_id(KIND, run_config(cfg, family_id, member), GENERATOR)


def write_sae(path: str | Path, config: dict[str, Any], meta: dict[str, Any],
              history: dict[str, np.ndarray], sae: Any) -> str:
    """Write an SAE artifact atomically (see module docstring); return its id.

    An existing artifact with the same id is left as is; anything else at ``path`` raises.
    """
    return write_artifact(path, KIND, config, meta, history, GENERATOR, extra=sae.save_model)


def load(path: str | Path) -> TrainedSAE:
    """Load and verify an SAE artifact (hashes of every file, id); ArtifactError on any problem."""
    from sae_lens import SAE

    path = Path(path)
    art = read_artifact(path, kind=KIND)  # verifies every file the manifest lists, SAELens's too
    missing = [name for name in SAELENS_FILES if not (path / name).is_file()]
    if missing:
        raise ArtifactError(f"{path}: missing {missing[0]}")
    try:
        cfg = SAETrainConfig.from_dict(art.config["train"])
        family_id, member = art.config["family_id"], art.config["member"]
        sae = SAE.load_from_disk(path)
    except (KeyError, ValueError, TypeError) as exc:
        raise ArtifactError(f"{path}: SAE artifact is incomplete ({exc})") from None
    return TrainedSAE(art.id, path, sae, cfg, family_id, member, art.meta.get("metrics", {}), art.arrays,
                      float(art.meta.get("seconds", float("nan"))))

