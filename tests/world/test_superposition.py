"""The hidden-dimension search behind the world.target_rho_mm axis (featgeom.world.superposition)."""

from __future__ import annotations

from itertools import pairwise

import pytest

from featgeom.device import fixed_threads
from featgeom.errors import ConfigError
from featgeom.world import build_world, preset
from featgeom.world.superposition import (
    TOLERANCE,
    _cached_rho_mm,
    geometry_rho_mm,
    hidden_dim_for_rho_mm,
)


@pytest.fixture(scope="module")
def tiny():
    return preset("tiny")


def built_rho_mm(config) -> float:
    """rho_mm of the world build_world gives for ``config``, built on one torch / BLAS thread as the
    search computes it (the orthogonalisation's float rounding depends on the thread count, and
    earlier tests in the same process may have left torch at another one)."""
    with fixed_threads(1):
        return build_world(config).rho_mm()


def test_geometry_rho_mm_is_the_built_worlds(tiny):
    """The geometry-only rho_mm equals the fully built world's (same directions, same number)."""
    for d in (24, 48):
        config = tiny.with_changes(hidden_dim=d)
        assert geometry_rho_mm(config) == built_rho_mm(config)


def test_rho_mm_falls_as_the_dimension_grows(tiny):
    """The search's premise on tiny's 128 features: rho_mm decreases over a spread of dimensions."""
    values = [geometry_rho_mm(tiny.with_changes(hidden_dim=d)) for d in (1, 4, 8, 16, 32, 64, 96, 128)]
    assert values[0] == pytest.approx(1.0)
    assert all(a > b for a, b in pairwise(values))


@pytest.mark.parametrize("target", [0.2, 0.3, 0.45, 0.7])
def test_bisection_lands_within_tolerance(tiny, target):
    """The chosen dimension reaches the target within TOLERANCE, is nearer it than either
    neighbour, its reached value is the built world's, and it took few steps."""
    found = hidden_dim_for_rho_mm(tiny, target)
    assert abs(found.rho_mm - target) <= TOLERANCE
    assert found.rho_mm == built_rho_mm(tiny.with_changes(hidden_dim=found.hidden_dim))
    for neighbour in (found.hidden_dim - 1, found.hidden_dim + 1):
        if 1 <= neighbour <= tiny.num_features:
            assert abs(geometry_rho_mm(tiny.with_changes(hidden_dim=neighbour)) - target) >= abs(found.rho_mm - target)
    assert found.steps <= 2 * 7  # doubling or halving from 32, then bisection: at most 2 log2(128)


def test_search_is_deterministic_and_cached(tiny):
    """The same target and world give the same dimension; a second search computes nothing new."""
    first = hidden_dim_for_rho_mm(tiny, 0.35)
    misses = _cached_rho_mm.cache_info().misses
    assert hidden_dim_for_rho_mm(tiny, 0.35) == first
    assert _cached_rho_mm.cache_info().misses == misses
    _cached_rho_mm.cache_clear()
    assert hidden_dim_for_rho_mm(tiny, 0.35) == first  # recomputed from scratch: the same
    # the world's own hidden_dim only sets where the search starts, not where it lands
    other = hidden_dim_for_rho_mm(tiny.with_changes(hidden_dim=17), 0.35)
    assert (other.hidden_dim, other.rho_mm) == (first.hidden_dim, first.rho_mm)


@pytest.mark.parametrize("target, match", [(0.05, "is not reachable within 0.01"), (0.0, r"must be a rho_mm in \(0, 1\]"),
                                           (1.5, r"must be a rho_mm in \(0, 1\]"), ("high", "must be a rho_mm")])
def test_unreachable_or_invalid_targets_are_one_line_errors(tiny, target, match):
    with pytest.raises(ConfigError, match=match) as err:
        hidden_dim_for_rho_mm(tiny, target)
    assert str(err.value).startswith("target_rho_mm: ") and "\n" not in str(err.value)


def test_a_lower_cap_makes_a_low_target_unreachable(tiny):
    """With hidden_dim at most 32 (rho_mm 0.45 on tiny) a target of 0.3 cannot be reached."""
    with pytest.raises(ConfigError, match="hidden_dim 1-32"):
        hidden_dim_for_rho_mm(tiny, 0.3, max_hidden_dim=32)
