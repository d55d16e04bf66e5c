"""Shared, session-scoped fixtures: worlds and families are deterministic, so build them once."""

from __future__ import annotations

import sys

import pytest

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
