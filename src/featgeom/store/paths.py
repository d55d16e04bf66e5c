"""Checks of output destinations, made before any work so a bad ``--out`` fails in a second.

``writable_destination(path, name)`` accepts a directory that exists and can be written, or a
path that does not exist yet whose nearest existing ancestor is a directory that can be written.
Writability is tested by creating (and removing) a probe directory, not with ``os.access``: that
also catches read-only file systems, ACLs and root on read-only mounts.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from featgeom.errors import ArtifactError, ConfigError


def writable_destination(path: str | Path, name: str) -> Path:
    """``path`` (as a Path) if a directory can be created or written there; ConfigError naming
    ``name`` (e.g. '--out') otherwise.  Nothing is left behind."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{name}: {path} exists and is not a directory")
    ancestor = _nearest_existing(path)
    if not ancestor.is_dir():
        raise ConfigError(f"{name}: {path} cannot be created ({ancestor} is not a directory)")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".featgeom-probe-", dir=ancestor))
    except OSError as exc:
        raise ConfigError(f"{name}: cannot write to {ancestor} ({exc.strerror or exc})") from None
    return path


def _nearest_existing(path: Path) -> Path:
    """``path`` or its closest ancestor that exists (the current directory for a relative path)."""
    current = path.absolute()
    while not current.exists():
        current = current.parent
    return current


def artifact_destination(path: str | Path, artifact_id: str, name: str) -> Path:
    """Like :func:`writable_destination` for an artifact with id ``artifact_id`` about to be
    written at ``path``: an existing non-empty ``path`` must already hold that artifact (artifacts
    are immutable), else ConfigError naming ``name`` — checked before the artifact is computed."""
    from featgeom.store.artifacts import read_artifact

    path = writable_destination(path, name)
    if path.is_dir() and any(path.iterdir()):
        try:
            held = read_artifact(path).id
        except ArtifactError as exc:
            raise ConfigError(f"{name}: {path} is not empty and holds no valid artifact ({exc})") from None
        if held != artifact_id:
            raise ConfigError(f"{name}: {path} already holds another artifact ({held}, not {artifact_id}); "
                              "artifacts are immutable, choose a new directory")
    return path
