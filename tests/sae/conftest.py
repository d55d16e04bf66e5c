"""Fixtures for SAE tests: a small family on the tiny world (saved once), a fast config, the CLI."""

from __future__ import annotations

import warnings

import pytest

from featgeom.family import FamilyConfig, build_family, save
from featgeom.sae import SAETrainConfig


@pytest.fixture(autouse=True)
def _quiet():
    """SAELens and torch's beta sparse tensors warn on every import/call; the tests don't care."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


@pytest.fixture(scope="session")
def family(tiny_world):
    """tiny base (128 features, 32 dims), a rotated variant, a partial variant in 24 dims."""
    cfg = FamilyConfig.from_dict({"world": tiny_world.config.to_dict(), "variants": [
        {"name": "rot", "basis_rotation_angle": 30},
        {"name": "narrow", "feature_overlap_ratio": 0.75, "hidden_dim": 24},
    ]})
    return build_family(cfg, world=tiny_world)


@pytest.fixture(scope="session")
def family_dir(family, tmp_path_factory):
    path = tmp_path_factory.mktemp("fam") / "family"
    save(family, path)
    return path


@pytest.fixture(scope="session")
def quick():
    """Factory of few-second training configs on the tiny world: quick(arch, **changes)."""
    return _quick


def _quick(arch: str = "topk", **changes) -> SAETrainConfig:
    base = {"arch": arch, "width": 64, "l0": 4, "samples": 16_384, "batch_size": 512, "log_every": 4096,
            "dead_window": 4096, "resample_every": 4096, "lr": 3e-3,
            "revival": "aux" if arch in ("topk", "batchtopk", "matryoshka_batchtopk", "jumprelu") else "resample"}
    return SAETrainConfig.from_dict({**base, **changes})
