"""Shared, session-scoped fixtures: worlds and families are deterministic, so build them once."""

from __future__ import annotations

import os
import sys
from pathlib import Path

# Nothing may reach a hub at test time: set before anything imports huggingface_hub / transformers /
# datasets (they read these once, at import).
for _flag in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
    os.environ[_flag] = "1"
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import pytest  # noqa: E402

from featgeom.cli import main
from featgeom.world.build import World, build_world
from featgeom.world.config import CorrelationSpec, HierarchySpec, WorldConfig, preset


@pytest.fixture(scope="session")
def tiny_world() -> World:
    """The `tiny` preset: 128 features, 32 dims, correlated, 3-level exclusive hierarchy, scaling."""
    return build_world(preset("tiny"))


@pytest.fixture(scope="session")
def plain_world() -> World:
    """No correlation; half the parents exclusive; binary gating (no child scaling)."""
    return build_world(WorldConfig(
        num_features=96, hidden_dim=24,
        hierarchy=HierarchySpec(roots=4, branching=3, depth=2, mutually_exclusive_portion=0.5,
                                compensate_probabilities=True, scale_children_by_parent=False),
        correlation=None, seed=5,
    ))


@pytest.fixture(scope="session")
def flat_world() -> World:
    """Correlated but no hierarchy (all features top-level)."""
    return build_world(WorldConfig(num_features=200, hidden_dim=40, correlation=CorrelationSpec(rank=6, scale=0.2),
                                   seed=7))


@pytest.fixture
def run_cli(monkeypatch, capsys):
    """Run ``featgeom ARGS`` in-process; return (exit code, stdout, stderr)."""

    def run(*args: str) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["featgeom", *map(str, args)])
        code = 0
        try:
            main()
        except SystemExit as exc:
            code = exc.code or 0
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


@pytest.fixture
def unwritable(tmp_path) -> Path:
    """A directory path that cannot be created by this process (its parent refuses writes).

    Not root: a 0555 directory.  Root ignores permissions, so then a path under /sys (sysfs
    refuses mkdir even for root).  Skips where neither holds, after checking by trying.
    """
    if os.geteuid() != 0:
        parent = tmp_path / "read-only"
        parent.mkdir()
        parent.chmod(0o555)
        target = parent / "out"
    else:
        target = Path("/sys/featgeom-test-out")
    try:
        target.mkdir()
    except OSError:
        yield target
    else:
        target.rmdir()
        pytest.skip("no unwritable location on this machine")
    if os.geteuid() != 0:
        (tmp_path / "read-only").chmod(0o755)
