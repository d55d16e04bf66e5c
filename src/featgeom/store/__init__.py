"""Artifacts (content-addressed, hash-verified) and results storage."""

from featgeom.store.artifacts import (
    Artifact,
    artifact_id,
    atomic_directory,
    canonical_json,
    read_artifact,
    remove_stale_temporaries,
    sha256,
    write_artifact,
)
from featgeom.store.paths import artifact_destination, writable_destination

__all__ = ["Artifact", "artifact_destination", "artifact_id", "atomic_directory", "canonical_json", "read_artifact", "remove_stale_temporaries", "sha256", "writable_destination", "write_artifact"]
