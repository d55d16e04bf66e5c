"""Immutable, content-addressed artifacts: a directory of config JSON + safetensors + manifest.

Layout of an artifact directory::

    manifest.json        {"format", "kind", "id", "generator", "files": {name: sha256}}
    config.json          the canonical config the artifact was built from
    meta.json            small JSON metadata (names, summary numbers)
    arrays.safetensors   every array, by name
    ...                  any further files a kind needs (e.g. SAELens's cfg.json for SAEs)

The id is sha256(canonical JSON of kind + config + generator version)[:16], so the same config
built by the same generator gets the same id.  Writes go to a temporary sibling directory that is
renamed into place only when complete (a killed write leaves no half artifact); reads verify the
id and every file's sha256 and raise ArtifactError on any mismatch, missing or truncated file.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from featgeom.errors import ArtifactError

FORMAT = "featgeom-artifact/1"
FILES = ("config.json", "meta.json", "arrays.safetensors")


@dataclass(frozen=True)
class Artifact:
    """A loaded artifact: its id, kind, config and meta dicts, and arrays by name."""

    id: str
    kind: str
    config: dict[str, Any]
    meta: dict[str, Any]
    arrays: dict[str, np.ndarray]


def canonical_json(obj: Any) -> str:
    """Deterministic JSON text (sorted keys, no extra whitespace)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)


def artifact_id(kind: str, config: dict[str, Any], generator: str) -> str:
    """sha256 of the canonical JSON of (kind, config, generator), first 16 hex digits."""
    text = canonical_json({"kind": kind, "config": config, "generator": generator})
    return hashlib.sha256(text.encode()).hexdigest()[:16]


TMP_MARK = ".tmp-"


@contextmanager
def atomic_directory(path: Path) -> Iterator[Path]:
    """Yield a temporary sibling of ``path`` to fill; on success flush it and rename it to ``path``.

    Any exception (or a killed process) leaves no directory at ``path`` and removes the temporary;
    a temporary that a killed writer left behind is removed by the next write to the same
    directory (:func:`remove_stale_temporaries`).  The artifact's files and directory get the
    permissions the umask gives ordinary files (0644 / 0755 with the usual umask 022), so a store
    can be shared.  If another writer created ``path`` meanwhile, its copy is kept and ours is
    discarded (callers of content-addressed paths verify what is there).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path.parent)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}{TMP_MARK}{_writer_tag()}-", dir=path.parent))
    try:
        yield tmp
        _fsync_dir(tmp)
        _share(tmp)
        os.rename(tmp, path)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not path.is_dir():
            raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def remove_stale_temporaries(directory: Path) -> list[Path]:
    """Remove the temporaries in ``directory`` whose writer is gone; return them.

    A temporary is named ``.<name>.tmp-<host>-<pid>-<random>``; it is stale when ``host`` is this
    machine and no process ``pid`` runs here.  Temporaries of live writers and of other hosts (a
    store on shared storage) are left alone.
    """
    removed = []
    host = socket.gethostname()
    for entry in directory.glob(f".*{TMP_MARK}*"):
        tag = entry.name.split(TMP_MARK, 1)[1].rsplit("-", 1)[0]
        entry_host, _, pid = tag.rpartition("-")
        if entry_host == host and pid.isdigit() and not _process_alive(int(pid)) and entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


def _writer_tag() -> str:
    """``<host>-<pid>`` of this process (host with '-' kept; the pid is the last field)."""
    return f"{socket.gethostname()}-{os.getpid()}"


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def _share(tmp: Path) -> None:
    """Give ``tmp`` and everything in it the umask's default permissions (mkdtemp makes the
    directory 0700 and safetensors writes its file 0600)."""
    umask = _umask()
    os.chmod(tmp, 0o777 & ~umask)
    for root, dirs, files in os.walk(tmp):
        for name in dirs:
            os.chmod(os.path.join(root, name), 0o777 & ~umask)
        for name in files:
            os.chmod(os.path.join(root, name), 0o666 & ~umask)


@functools.cache
def _umask() -> int:
    """This process's umask (read once: reading it means setting it)."""
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


def write_artifact(
    path: str | Path, kind: str, config: dict[str, Any], meta: dict[str, Any],
    arrays: dict[str, np.ndarray], generator: str, extra: Callable[[Path], None] | None = None,
) -> str:
    """Write an artifact atomically to directory ``path``; return its id.

    ``extra(tmp_dir)`` may add further files (e.g. SAELens's own files); the manifest hashes every
    file.  If ``path`` already holds a valid artifact with the same id, nothing is written; if it
    holds anything else, ArtifactError (artifacts are immutable).
    """
    from safetensors.numpy import save_file

    path = Path(path)
    aid = artifact_id(kind, config, generator)
    if path.exists():
        existing = read_artifact(path)
        if existing.id != aid:
            raise ArtifactError(f"{path}: already holds artifact {existing.id}, refusing to overwrite with {aid}")
        return aid
    with atomic_directory(path) as tmp:
        (tmp / "config.json").write_text(json.dumps(config, sort_keys=True, indent=2))
        (tmp / "meta.json").write_text(json.dumps(meta, sort_keys=True, indent=2))
        save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(tmp / "arrays.safetensors"))
        if extra is not None:
            extra(tmp)
        files = {f.name: sha256(f) for f in sorted(tmp.iterdir()) if f.is_file()}
        manifest = {"format": FORMAT, "kind": kind, "id": aid, "generator": generator, "files": files}
        (tmp / "manifest.json").write_text(json.dumps(manifest, sort_keys=True, indent=2))
    if read_artifact(path).id != aid:  # a concurrent writer got there first with something else
        raise ArtifactError(f"{path}: another writer stored a different artifact there")
    return aid


def read_artifact(path: str | Path, kind: str | None = None) -> Artifact:
    """Load and verify an artifact directory (ids, hashes, kind); ArtifactError on any problem."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    path = Path(path)
    manifest = _read_json(path / "manifest.json", path)
    if manifest.get("format") != FORMAT:
        raise ArtifactError(f"{path}: not a featgeom artifact (format {manifest.get('format')!r})")
    if kind is not None and manifest.get("kind") != kind:
        raise ArtifactError(f"{path}: holds a {manifest.get('kind')!r} artifact, expected {kind!r}")
    listed = manifest.get("files", {})
    for name in sorted(set(FILES) | set(listed)):
        if not (path / name).is_file():
            raise ArtifactError(f"{path}: missing {name}")
        if sha256(path / name) != listed.get(name):
            raise ArtifactError(f"{path}: {name} is corrupted or truncated (sha256 mismatch)")
    config = _read_json(path / "config.json", path)
    if artifact_id(manifest["kind"], config, manifest["generator"]) != manifest["id"]:
        raise ArtifactError(f"{path}: config does not match artifact id {manifest['id']}")
    try:
        arrays = load_file(str(path / "arrays.safetensors"))
    except (SafetensorError, OSError) as exc:
        raise ArtifactError(f"{path}: arrays.safetensors unreadable ({exc})") from None
    return Artifact(manifest["id"], manifest["kind"], config, _read_json(path / "meta.json", path), arrays)


def _read_json(file: Path, root: Path) -> Any:
    try:
        return json.loads(file.read_text())
    except FileNotFoundError:
        if not root.exists():
            raise ArtifactError(f"{root}: no such artifact directory") from None
        if not root.is_dir():
            raise ArtifactError(f"{root}: is a file, not an artifact directory") from None
        raise ArtifactError(f"{root}: missing {file.name} (not an artifact directory?)") from None
    except NotADirectoryError:
        raise ArtifactError(f"{root}: is a file, not an artifact directory") from None
    except (PermissionError, IsADirectoryError) as exc:
        raise ArtifactError(f"{root}: {file.name} unreadable ({exc.strerror})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{root}: {file.name} is corrupted ({exc})") from None


def _fsync_dir(path: Path) -> None:
    """Flush every file of ``path`` to disk before the directory is renamed into place."""
    for name in os.listdir(path):
        with open(path / name, "rb") as fh:
            os.fsync(fh.fileno())


def sha256(file: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(file, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
