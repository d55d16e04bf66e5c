"""The reference run of the experiment tests: ``tiny_spec()`` run once, serially, uninterrupted."""

from __future__ import annotations

import pytest

from featgeom.experiments.runner import RunSummary, run_experiment

from .helpers import tiny_spec


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> RunSummary:
    """A tiny quickstart (tiny preset, one SAE seed), run serially; shared by the module's tests."""
    return run_experiment(tiny_spec(), tmp_path_factory.mktemp("tiny-run"), workers=1, progress=False)
