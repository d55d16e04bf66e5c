"""A world's hidden dimension for a target superposition level rho_mm (the ``world.target_rho_mm`` axis).

For fixed features (number, seed, orthogonalization) rho_mm = mean_i max_{j != i} |cos(v_i, v_j)|
falls as the hidden dimension d grows: the same N directions overlap less in more dimensions
(rho_mm(1) = 1). :func:`hidden_dim_for_rho_mm` searches the integer d in [1, max_hidden_dim]
(default: num_features, where N features no longer need to share dimensions): from the world's
own hidden_dim it doubles d while rho_mm(d) >= target, or halves it while rho_mm(d) < target
(:func:`bracket`), which gives lo < hi with rho_mm(lo) >= target > rho_mm(hi); it then bisects
[lo, hi] until hi = lo + 1 and takes whichever of lo, hi reaches the value nearer the target (the
smaller d on a tie). Starting from the world's dimension keeps every step near it: a search never
computes a dimension more than twice the answer (the largest ones cost the most). Each step
computes the world's feature dictionary only (:func:`featgeom.world.build.feature_dictionary`:
the seeded directions and their orthogonalization steps, without the firing, hierarchy and
correlation generators) and its rho_mm, on one thread; on the small preset (512 features,
hidden_dim 128) a search takes 8-9 steps of 0.03 s (d = 48) to 0.3 s (d = 256) on one idle core,
1-2 s in all. Each (geometry, d) is computed once per process (:func:`geometry_rho_mm` is
cached), so the same target on the same world gives the same d without building it again. A
target the reached value misses by more than ``tolerance`` (below what max_hidden_dim reaches, in
a gap between neighbouring dimensions, or not a rho_mm in (0, 1]) is a ConfigError naming the
field.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from featgeom.config import field_error
from featgeom.world.config import WorldConfig

FIELD = "target_rho_mm"  # the world axis's field: not a WorldConfig field, removed before the world is built
TOLERANCE = 0.01  # largest |reached - target| rho_mm accepted (as for variant.superposition_delta)


@dataclass(frozen=True)
class DimensionSearch:
    """Result of :func:`hidden_dim_for_rho_mm`: the ``target``, the chosen ``hidden_dim``, the
    ``rho_mm`` it reaches and ``steps``, the distinct hidden dimensions whose geometry was computed."""

    target: float
    hidden_dim: int
    rho_mm: float
    steps: int


def geometry_rho_mm(config: WorldConfig) -> float:
    """rho_mm of ``config``'s feature directions (:func:`featgeom.world.geometry.rho_mm` of the
    (N, d) rows :func:`~featgeom.world.build.build_world` would give), without building the world;
    cached on the fields the directions depend on (N, d, seed, orthogonalization, bias)."""
    steps_lr = None if config.orthogonalization is None else (config.orthogonalization.steps,
                                                               config.orthogonalization.lr)
    return _cached_rho_mm(config.num_features, config.hidden_dim, config.seed, steps_lr, config.bias)


@lru_cache(maxsize=4096)
def _cached_rho_mm(num_features: int, hidden_dim: int, seed: int, steps_lr: tuple[int, float] | None,
                   bias: float) -> float:
    """rho_mm of the feature dictionary of a world with these geometry fields (see geometry_rho_mm),
    computed on one torch / BLAS thread so that the value does not depend on the machine's cores."""
    from featgeom.device import fixed_threads
    from featgeom.world.build import feature_dictionary
    from featgeom.world.config import OrthogonalizationSpec
    from featgeom.world.geometry import rho_mm

    spec = None if steps_lr is None else OrthogonalizationSpec(*steps_lr)
    config = WorldConfig(num_features=num_features, hidden_dim=hidden_dim, seed=seed, orthogonalization=spec,
                         bias=bias)
    with fixed_threads(1):
        return rho_mm(feature_dictionary(config).feature_vectors.detach().numpy())


def hidden_dim_for_rho_mm(config: WorldConfig, target: float, tolerance: float = TOLERANCE,
                          max_hidden_dim: int | None = None) -> DimensionSearch:
    """The hidden dimension d in [1, max_hidden_dim] (default num_features) whose rho_mm is
    nearest ``target`` for ``config``'s features (its own hidden_dim is only where the search
    starts), found by doubling or halving, then bisection (module docstring). ConfigError
    "target_rho_mm: ..." when ``target`` is not a number in (0, 1] or the nearest reachable rho_mm
    misses it by more than ``tolerance``."""
    if isinstance(target, bool) or not isinstance(target, (int, float)) or not 0 < target <= 1:
        raise field_error(FIELD, f"must be a rho_mm in (0, 1], got {target!r}")
    cap = config.num_features if max_hidden_dim is None else max_hidden_dim
    if isinstance(cap, bool) or not isinstance(cap, int) or cap < 1:
        raise field_error("max_hidden_dim", f"must be an integer >= 1, got {cap!r}")
    seen: dict[int, float] = {}

    def rho(d: int) -> float:
        if d not in seen:
            seen[d] = geometry_rho_mm(config.with_changes(hidden_dim=d))
        return seen[d]

    lo, hi = bracket(rho, target, min(config.hidden_dim, cap), cap)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if rho(mid) >= target else (lo, mid)
    best = min((lo, hi), key=lambda d: (abs(rho(d) - target), d))
    if abs(rho(best) - target) > tolerance:
        raise field_error(FIELD, f"{target:g} is not reachable within {tolerance:g}: the nearest rho_mm of these "
                                 f"{config.num_features} features in hidden_dim 1-{cap} is {rho(best):.3f} "
                                 f"(hidden_dim {best})")
    return DimensionSearch(float(target), best, rho(best), len(seen))


def bracket(rho: Callable[[int], float], target: float, start: int, cap: int) -> tuple[int, int]:
    """(lo, hi) with rho(lo) >= target > rho(hi) and lo < hi, or lo = hi = cap when even rho(cap)
    >= target: from ``start`` double the dimension (up to ``cap``) while rho >= target, else halve
    it (down to 1, where rho = 1 >= target) while rho < target."""
    if rho(start) >= target:
        lo = start
        while lo < cap:
            step = min(2 * lo, cap)
            if rho(step) < target:
                return lo, step
            lo = step
        return cap, cap
    hi = start
    while True:
        step = max(hi // 2, 1)
        if rho(step) >= target:
            return step, hi
        hi = step
