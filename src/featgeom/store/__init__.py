"""Artifacts (content-addressed, hash-verified) and results storage."""

from featgeom.store.artifacts import (
    Artifact,
    artifact_id,
    atomic_directory,
    canonical_json,
    read_artifact,
    sha256,
    write_artifact,
)

__all__ = ["Artifact", "artifact_id", "atomic_directory", "canonical_json", "read_artifact", "sha256", "write_artifact"]
