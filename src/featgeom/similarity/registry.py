"""The registry of similarity metrics: one place that names each metric featgeom can compare with.

Every similarity metric reachable by name (:mod:`featgeom.stats.kernels`, :func:`featgeom.stats.null_tests`,
:func:`featgeom.stats.repair_tests`, :func:`featgeom.compare.compare`, ``featgeom compare --metrics``,
``featgeom metrics``, the reports) is a :class:`SimilarityMetric` in :data:`SIMILARITY`, in this order:
svcca, svcca_legacy, rsa, cka, procrustes, debiased_cka, mutual_knn. Each entry's function takes
paired rows x (n, dim_x), y (n, dim_y) (row i of x paired with row i of y) and returns a float,
larger = more similar.

Adding a metric: write its function ``f(x, y, **kwargs) -> float`` in its own module of
:mod:`featgeom.similarity` (docstring: formula, shapes, range, invariances, chance level, errors), then
``register_similarity(SimilarityMetric("name", "label", f, "one line", chance=..., min_pairs=...))``:
in :data:`_BUILT_IN` below for a metric featgeom ships, or in user code before the name is used. The
per-permutation null then calls ``f`` once per permutation (the loop path of
:mod:`featgeom.stats.kernels`); only the built-in spectral metrics have a shared fast path.

Importing this module imports NumPy and SciPy only (no torch, no SAELens).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from featgeom.errors import ConfigError
from featgeom.similarity.base import is_integer
from featgeom.similarity.cka import debiased_linear_cka, linear_cka
from featgeom.similarity.knn import mutual_knn
from featgeom.similarity.procrustes import procrustes
from featgeom.similarity.rsa import rsa
from featgeom.similarity.svcca import svcca

# The metrics featgeom.stats.kernels reads off one shared cross product per permutation (it has a
# reader for each of these and for no other name), so only they may be registered as spectral.
SPECTRAL_READERS = ("svcca", "svcca_legacy", "cka", "procrustes")


def _no_rule(kwargs: Mapping[str, Any]) -> None:
    return None


@dataclass(frozen=True)
class SimilarityMetric:
    """One similarity metric of paired rows.

    name: its identifier (results rows, ``metrics=`` arguments, ``--metrics``); label: short
    human name for plot titles and tables; function: ``(x (n, dim_x), y (n, dim_y), **kwargs) ->
    float``, larger = more similar; description: one line (formula in words); chance: its expected
    value for independent sides when that is a constant (e.g. 0.0), else None (it depends on n or
    the dims; the description says how); spectral: read off the shared cross product of the
    sides' principal coordinates by :mod:`featgeom.stats.kernels` (only names in SPECTRAL_READERS);
    defaults: keyword arguments bound whenever the metric is used by name (before the caller's
    own ``metric_kwargs``); min_pairs: the fewest paired rows it accepts with its defaults;
    pairs_rule: for metrics whose minimum depends on a keyword (mutual_knn: k + 2), the minimum
    for the merged keyword arguments (it must give min_pairs for the defaults), or None when it
    cannot tell (then min_pairs, and the function's own check decides).
    """

    name: str
    label: str
    function: Callable[..., float]
    description: str
    chance: float | None = None
    spectral: bool = False
    defaults: Mapping[str, Any] = field(default_factory=dict)
    min_pairs: int = 2
    pairs_rule: Callable[[Mapping[str, Any]], int | None] = _no_rule

    def __post_init__(self) -> None:
        for key in ("name", "label", "description"):
            value = getattr(self, key)
            if not isinstance(value, str) or not value.strip() or "\n" in value:
                raise ConfigError(f"{key}: must be a non-empty one-line string, got {value!r}")
        if not self.name.isidentifier():
            raise ConfigError(f"name: must be an identifier (letters, digits, _), got {self.name!r}")
        if not callable(self.function):
            raise ConfigError(f"function: must be callable, got {type(self.function).__name__}")
        if self.chance is not None and (not isinstance(self.chance, (int, float)) or isinstance(self.chance, bool)):
            raise ConfigError(f"chance: must be a number or None, got {self.chance!r}")
        if not is_integer(self.min_pairs) or self.min_pairs < 2:
            raise ConfigError(f"min_pairs: must be an integer >= 2, got {self.min_pairs!r}")
        if not isinstance(self.defaults, Mapping):
            raise ConfigError(f"defaults: must be a mapping, got {type(self.defaults).__name__}")
        object.__setattr__(self, "defaults", MappingProxyType(dict(self.defaults)))
        ruled = self.pairs_rule(self.defaults)
        if ruled is not None and ruled != self.min_pairs:
            raise ConfigError(f"min_pairs: {self.min_pairs} disagrees with pairs_rule, which gives {ruled} "
                              "for the defaults")

    def __call__(self, x: object, y: object, **kwargs: Any) -> float:
        """``function(x, y, **{**defaults, **kwargs})``."""
        return self.function(x, y, **{**self.defaults, **kwargs})

    def pairs_needed(self, kwargs: Mapping[str, Any] | None = None) -> int:
        """The fewest paired rows the metric accepts with ``kwargs`` merged over its defaults."""
        rule = self.pairs_rule({**self.defaults, **(kwargs or {})})
        return self.min_pairs if rule is None else int(rule)


def _svcca_legacy(x: object, y: object) -> float:
    """SVCCA as the universality paper's code computed it: |corr(PC1_x, PC1_y)| (see
    :func:`featgeom.similarity.svcca_details`, ``legacy_top1=True``)."""
    return svcca(x, y, legacy_top1=True)


def _knn_pairs(kwargs: Mapping[str, Any]) -> int | None:
    """mutual_knn needs k <= n - 2, i.e. n >= k + 2 pairs (None for a k it will refuse anyway)."""
    k = kwargs.get("k")
    return int(k) + 2 if is_integer(k) and k >= 1 else None


_BUILT_IN = (
    SimilarityMetric(
        "svcca", "SVCCA", svcca,
        "mean canonical correlation of the SVD-reduced sides (99% variance kept per side)",
        chance=None, spectral=True, min_pairs=2,
    ),
    SimilarityMetric(
        "svcca_legacy", "SVCCA, paper's top-1 (legacy)", _svcca_legacy,
        "|corr(PC1_x, PC1_y)|: SVCCA as the universality paper's code computed it (one direction kept)",
        chance=None, spectral=True, min_pairs=2,
    ),
    SimilarityMetric(
        "rsa", "RSA", rsa,
        "Spearman correlation of the two Euclidean RDMs (item-by-item distance matrices)",
        chance=0.0, min_pairs=3,
    ),
    SimilarityMetric(
        "cka", "linear CKA", linear_cka,
        "linear centered kernel alignment ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F)",
        chance=None, spectral=True, min_pairs=2,
    ),
    SimilarityMetric(
        "procrustes", "Procrustes", procrustes,
        "orthogonal Procrustes similarity ||X^T Y||_* of the centered, unit-norm sides",
        chance=None, spectral=True, min_pairs=2,
    ),
    SimilarityMetric(
        "debiased_cka", "debiased linear CKA", debiased_linear_cka,
        "linear CKA with unbiased HSIC estimates (Song et al. 2012): near 0 for independent sides",
        chance=0.0, min_pairs=4,
    ),
    SimilarityMetric(
        "mutual_knn", "mutual k-NN (k = 10)", mutual_knn,
        "share of each item's k = 10 cosine nearest neighbours common to both sides (chance k / (n - 1))",
        chance=None, defaults={"k": 10, "metric": "cosine"}, min_pairs=12, pairs_rule=_knn_pairs,
    ),
)

SIMILARITY: dict[str, SimilarityMetric] = {}


def register_similarity(metric: SimilarityMetric) -> SimilarityMetric:
    """Add ``metric`` to SIMILARITY (after the ones already there) and return it.

    ConfigError for something that is not a SimilarityMetric, a name already registered, or
    ``spectral=True`` for a name featgeom.stats.kernels has no reader for (SPECTRAL_READERS).
    """
    if not isinstance(metric, SimilarityMetric):
        raise ConfigError(f"metric: expected a SimilarityMetric, got {type(metric).__name__}")
    if metric.name in SIMILARITY:
        raise ConfigError(f"metric: a similarity metric named {metric.name!r} is already registered")
    if metric.spectral and metric.name not in SPECTRAL_READERS:
        raise ConfigError(f"spectral: featgeom.stats.kernels has spectral readers only for "
                          f"{', '.join(SPECTRAL_READERS)}, not {metric.name!r}; register it with spectral=False")
    SIMILARITY[metric.name] = metric
    return metric


def similarity_metric(name: str) -> SimilarityMetric:
    """The registered metric called ``name``; ConfigError naming the registered names otherwise."""
    if not isinstance(name, str) or name not in SIMILARITY:
        raise ConfigError(f"metric: unknown similarity metric {name!r} (one of {', '.join(SIMILARITY)})")
    return SIMILARITY[name]


for _metric in _BUILT_IN:
    register_similarity(_metric)
