"""Artifacts (content-addressed, hash-verified) and results storage."""

from featgeom.store.artifacts import Artifact, artifact_id, read_artifact, write_artifact

__all__ = ["Artifact", "artifact_id", "read_artifact", "write_artifact"]
