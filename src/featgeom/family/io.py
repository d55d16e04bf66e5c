"""Saving and loading families as content-addressed artifacts (see :mod:`featgeom.store`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.sparse as sp

import featgeom
from featgeom.errors import ArtifactError
from featgeom.family.config import FamilyConfig
from featgeom.family.family import Member, SyntheticModelFamily
from featgeom.store.artifacts import read_artifact, write_artifact
from featgeom.world.build import World

KIND = "family"
GENERATOR = f"featgeom-{featgeom.__version__}/family-1"
MEMBER_ARRAYS = ("feature_vectors", "bias", "firing_probability", "parent", "category")


def save(family: SyntheticModelFamily, path: str | Path) -> str:
    """Write ``family`` to directory ``path`` atomically; return its content id."""
    arrays = {f"world.{k}": v for k, v in family.world.arrays().items()}
    for i, m in enumerate(family.members):
        arrays.update({f"member{i}.{k}": getattr(m, k) for k in MEMBER_ARRAYS})
        arrays[f"member{i}.source_indptr"] = m.source.indptr.astype(np.int64)
        arrays[f"member{i}.source_indices"] = m.source.indices.astype(np.int64)
        arrays[f"member{i}.source_data"] = m.source.data
    meta = {"summary": family.summary(), "members": [{"name": m.name, "rho_mm": m.rho_mm,
                                                     "source_shape": list(m.source.shape)} for m in family.members]}
    return write_artifact(path, KIND, family.config.to_dict(), meta, arrays, GENERATOR)


def load(path: str | Path) -> SyntheticModelFamily:
    """Load a family saved by :func:`save`, verifying its id and hashes (ArtifactError if not)."""
    art = read_artifact(path, kind=KIND)
    try:
        config = FamilyConfig.from_dict(art.config)
        world = World.from_arrays(config.world, {k[6:]: v for k, v in art.arrays.items() if k.startswith("world.")})
        members = [_member(art.arrays, i, info) for i, info in enumerate(art.meta["members"])]
    except (KeyError, ValueError, TypeError) as exc:
        raise ArtifactError(f"{path}: family artifact is incomplete ({exc})") from None
    return SyntheticModelFamily(config, world, members)


def _member(arrays: dict[str, np.ndarray], i: int, info: dict) -> Member:
    p = f"member{i}."
    source = sp.csr_matrix(
        (arrays[p + "source_data"], arrays[p + "source_indices"], arrays[p + "source_indptr"]),
        shape=tuple(info["source_shape"]),
    )
    return Member(name=info["name"], source=source, rho_mm=float(info["rho_mm"]),
                  **{k: arrays[p + k] for k in MEMBER_ARRAYS})
