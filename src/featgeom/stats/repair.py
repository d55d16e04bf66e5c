"""Permutation nulls that repeat the whole procedure, pairing included ("re-pairing" nulls).

The universality paper's Test 1 (:func:`featgeom.stats.null_test`, ``kind="shuffle"``) keeps the
rows the observed pairing chose and shuffles which B row goes with which A row. That answers
"does this pairing matter?", not "do the two SAEs share structure?": when latents are paired by
activation correlation, A latents that co-fire tend to share a B partner, and in trained SAEs
co-firing goes with decoder geometry, so the paired rows carry each SAE's own geometry, which
the shuffle destroys. Its null is too low, and SAEs of models that share nothing look similar
(``tests/stats/test_repair_calibration.py`` measures it).

**Null hypothesis** H0: model A's latent activations are independent of model B's across
samples, and the samples are exchangeable (i.i.d. synthetic draws; for text, whole blocks of
``block_size`` rows, e.g. fixed-length windows, are exchangeable). Under H0, permuting B's
samples leaves the joint law of (acts_a, acts_b) unchanged, so the whole procedure

    corr = pearson(acts_a, acts_b[perm])                 (n_a, n_b), B's samples permuted
    (ia, ib) = pair(corr, mode, min_corr, keep_a, keep_b)
    T = metric(dec_a[ia], dec_b[ib])

has the same law for every permutation, and with T_0 the observed value (identity permutation)
and T_1..T_m those of m random permutations,

    p = (1 + #{j >= 1: T_j >= T_0}) / (1 + m)

is a valid one-sided p-value (P(p <= alpha) <= alpha for every alpha, exactly = alpha when
alpha (1 + m) is an integer and ties have probability 0). Decoders are fixed: SAEs are trained on
data independent of the comparison samples.

**Test 2 re-paired** (``kind="subset"``): is the chosen subset of latents (``subset_a``,
``subset_b``, e.g. a semantic category) more similar than random subsets of the same sizes? The
observed pairing is formed inside the subsets; null draw j picks uniformly random subsets of the
same sizes among the pairable latents (alive and in ``keep_*``) and pairs *inside them* again, so
the null repeats the whole procedure. Valid when, under H0, the chosen subset is exchangeable with
random ones.

Cost per permutation: one sparse cross product A^T B[perm] (about n L0_a L0_b updates; the
per-latent means and stds do not change under a row permutation and are computed once, see
:class:`featgeom.match.PermutedCorrelation`), the finish of the correlation (full matrix or top-k
partners), the pairing of each mode from that one correlation, and one thin SVD per side shared
by every spectral metric (:func:`featgeom.stats.kernels.paired_scores`).

**Device.** ``device=None`` runs everything in NumPy / SciPy. With a torch device (``"cpu"``,
``"cuda"``, ``"cuda:N"`` or a ``torch.device``) the correlations (cross product and finish, of
the observed samples and of every permutation) run there in float64
(``PermutedCorrelation(..., device=device)``), and so do the scores
(``paired_scores(..., device=device)``); the permutations and subsets are still drawn on the host
by the same NumPy generator, and the pairing and p-values are computed exactly as without one, so
a device changes the null values only by rounding (the pairing only where two partners tie to
within it).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from featgeom.checks import as_matrix
from featgeom.device import optional_device
from featgeom.errors import ConfigError, DataError, FeatgeomError, ShapeError
from featgeom.match import MODES, CorrelationResult, Pairing, PermutedCorrelation, pair
from featgeom.match._validate import bool_mask
from featgeom.similarity.base import is_integer
from featgeom.stats.kernels import METRIC_NAMES, metric_label, metric_names, paired_scores
from featgeom.stats.null import NullTestResult, check_permutations, summarize_null

REPAIR_KINDS = ("permute", "subset")
MIN_PAIRS = 3  # the fewest pairs every similarity metric accepts (RSA needs 3 items)


@dataclass(frozen=True)
class PairingProcedure:
    """How latents are paired, exactly as for the observed value.

    modes: pairing modes (featgeom.match.MODES; a single name is one mode), all read off one
    correlation; min_corr: drop pairs below it (None: keep all); keep_a (n_a,) / keep_b (n_b,):
    boolean masks of latents allowed in pairs (None: all); top_k: keep only each latent's top_k
    partners instead of the full correlation matrix (None: full; 'hungarian' needs the full
    matrix).
    """

    modes: tuple[str, ...] = ("many_to_one",)
    min_corr: float | None = None
    keep_a: np.ndarray | None = None
    keep_b: np.ndarray | None = None
    top_k: int | None = None

    def __post_init__(self) -> None:
        modes = (self.modes,) if isinstance(self.modes, str) else tuple(self.modes)
        unknown = [m for m in modes if m not in MODES]
        if not modes or unknown or len(set(modes)) < len(modes):
            raise ConfigError(f"modes: need distinct pairing modes from {', '.join(MODES)}, got {list(modes)}")
        object.__setattr__(self, "modes", modes)

    def pairings(
        self, corr: CorrelationResult, extra_a: np.ndarray | None = None, extra_b: np.ndarray | None = None
    ) -> dict[str, Pairing]:
        """Each mode's pairing of ``corr`` (keep masks intersected with ``extra_*`` if given)."""
        keep_a = _both(self.keep_a, extra_a)
        keep_b = _both(self.keep_b, extra_b)
        return {m: pair(corr, mode=m, min_corr=self.min_corr, keep_a=keep_a, keep_b=keep_b) for m in self.modes}


@dataclass(frozen=True, eq=False)
class ProcedureTests:
    """Outcome of :func:`repair_tests`.

    corr: the observed CorrelationResult; pairings[mode]: the observed Pairing;
    tests[mode][metric]: the NullTestResult (kind 'repair' or 'subset_repair'); block_size: rows
    permuted together (1: single samples), or the tuple of block lengths when they differ.
    """

    corr: CorrelationResult
    pairings: dict[str, Pairing]
    tests: dict[str, dict[str, NullTestResult]]
    kind: str
    block_size: int | tuple[int, ...]


def repair_tests(
    acts_a: object,
    acts_b: object,
    dec_a: object,
    dec_b: object,
    *,
    procedure: PairingProcedure | None = None,
    metrics: Sequence[str] = METRIC_NAMES,
    metric_kwargs: Mapping[str, Mapping[str, Any]] | None = None,
    n_perm: int = 1000,
    seed: int = 0,
    kind: str = "permute",
    block_size: int | Sequence[int] = 1,
    subset_a: object = None,
    subset_b: object = None,
    device: object = None,
) -> ProcedureTests:
    """Similarity of paired decoder rows with a null that re-derives the pairing (module docstring).

    acts_a (n, n_a), acts_b (n, n_b): latent activations of the two SAEs on the same n samples
    (dense or scipy.sparse); dec_a (n_a, d_a), dec_b (n_b, d_b): their decoder rows. procedure:
    how latents are paired (default: many_to_one on the full matrix). metrics: names of the
    similarity registry (featgeom.similarity.SIMILARITY; default featgeom.stats.METRIC_NAMES, all of
    them), with ``metric_kwargs[name]`` passed on (e.g. RSA's max_items).

    kind="permute": null draw j scores the procedure on acts_b with its samples permuted by
    ``rng.permutation`` (rng = numpy.random.default_rng(seed)); with ``block_size`` b > 1 the
    n / b contiguous blocks of b rows (e.g. fixed-length token windows) are permuted whole; a
    sequence of block lengths (summing to n; e.g. windows that keep different numbers of tokens
    once special positions are masked) permutes those contiguous blocks whole, B's rows being
    the blocks concatenated in the permuted order.
    kind="subset": null draw j pairs inside random subsets of the sizes of ``subset_a`` /
    ``subset_b`` (boolean masks (n_a,) / (n_b,); None: that side is not restricted), drawn with
    ``rng.choice`` among the pairable latents.

    p-values: (1 + #{null >= observed}) / (1 + n_perm), ties within 1e-12 (relative) counted;
    n_perm >= 19 so that they can reach 0.05 (:func:`featgeom.stats.null.check_permutations`).
    Errors (one featgeom error each): ConfigError for bad options (n_perm below 19, or too many
    for the null scores to fit 2 GiB); ShapeError for mismatched shapes or masks, or fewer than
    featgeom.match.MIN_SAMPLES (100) samples; DataError when the samples (or blocks) have fewer
    distinct permutations than n_perm needs, or a pairing (observed or of a null draw) has
    fewer than 3 pairs (e.g. min_corr too high) or fewer than a metric needs (mutual_knn: k + 2),
    naming the draw, the pairing and the metric.

    device: None (NumPy / SciPy) or a torch device for the correlations and scores (module
    docstring); ConfigError naming ``device`` for an unknown or absent device, checked before any
    work; ResourceError when the device runs out of memory.
    """
    device = optional_device(device)
    procedure = procedure or PairingProcedure()
    names, kwargs = _checked_metrics(metrics, metric_kwargs)
    check_permutations(n_perm, seed, n_scores=len(names) * len(procedure.modes))
    if kind not in REPAIR_KINDS:
        raise ConfigError(f"kind: unknown re-pairing null {kind!r} (allowed: {', '.join(REPAIR_KINDS)})")
    if kind == "permute" and (subset_a is not None or subset_b is not None):
        raise ConfigError("subset_a, subset_b: only used by kind='subset'")
    permuted = PermutedCorrelation(acts_a, acts_b, top_k=procedure.top_k, device=device)
    corr = permuted.result()
    dec_a, dec_b = _decoders(dec_a, dec_b, corr)
    requests = [(name, kwargs.get(name, {})) for name in names]
    rng = np.random.default_rng(seed)
    if kind == "permute":
        lengths = _check_blocks(block_size, permuted.n_samples, n_perm)
        pairings = procedure.pairings(corr)

        def draw() -> dict[str, Pairing]:
            return procedure.pairings(permuted.result(_block_permutation(rng, lengths)))
    else:
        pools = _pools(corr, procedure)
        masks = _subset_masks(subset_a, subset_b, corr, pools)
        pairings = procedure.pairings(corr, *masks)
        # as many pairable latents as the chosen subsets hold (dead or unkept ones never pair)
        sizes = [None if m is None else int(m[pool].sum()) for m, pool in zip(masks, pools)]
        counts = corr.n_latents_a, corr.n_latents_b

        def draw() -> dict[str, Pairing]:
            return procedure.pairings(corr, *_random_subsets(rng, pools, sizes, counts))
    observed = {m: _scores(p, dec_a, dec_b, requests, "the observed pairing", device) for m, p in pairings.items()}
    null = {m: np.empty((len(names), n_perm)) for m in procedure.modes}
    for j in range(n_perm):
        for mode, pairing in _drawn(draw, j, kind).items():
            null[mode][:, j] = _scores(pairing, dec_a, dec_b, requests, f"null draw {j}", device)
    label = "repair" if kind == "permute" else "subset_repair"
    tests = {
        mode: {name: summarize_null(name, label, float(observed[mode][i]), null[mode][i].copy(), seed, "float64")
               for i, name in enumerate(names)}
        for mode in procedure.modes
    }
    return ProcedureTests(corr, pairings, tests, label, _block_label(lengths) if kind == "permute" else 1)


def _both(mask: np.ndarray | None, extra: np.ndarray | None) -> np.ndarray | None:
    """The intersection of two optional masks (None = keep all)."""
    if mask is None or extra is None:
        return extra if mask is None else mask
    return np.asarray(mask) & extra


def _checked_metrics(
    metrics: Sequence[str], metric_kwargs: Mapping[str, Mapping[str, Any]] | None
) -> tuple[list[str], dict[str, dict[str, Any]]]:
    """Distinct named metrics and their kwargs; ConfigError otherwise."""
    names = [metrics] if isinstance(metrics, str) else list(metrics)
    registered = metric_names()  # the similarity registry now, metrics registered after import included
    unknown = [m for m in names if not isinstance(m, str) or m not in registered]
    if not names or unknown or len(set(names)) < len(names):
        shown = [metric_label(m) for m in names]
        raise ConfigError(f"metrics: need distinct names from {', '.join(registered)}, got {shown}")
    kwargs = {k: dict(v) for k, v in (metric_kwargs or {}).items()}
    if not set(kwargs) <= set(names):
        raise ConfigError(f"metric_kwargs: for metrics not listed: {sorted(set(kwargs) - set(names))}")
    return names, kwargs


def _check_blocks(block_size: object, n: int, n_perm: int) -> np.ndarray:
    """The block lengths (n_blocks,) that ``block_size`` describes: an int dividing n (equal
    blocks) or a sequence of positive ints summing to n; with enough distinct block orders for
    n_perm draws."""
    if is_integer(block_size):
        if block_size < 1:
            raise ConfigError(f"block_size: must be a positive integer, got {block_size!r}")
        if n % block_size:
            raise ShapeError(f"block_size: {block_size} does not divide the {n} samples into whole blocks")
        lengths = np.full(n // int(block_size), int(block_size), dtype=np.int64)
    else:
        lengths = _block_lengths(block_size, n)
    blocks = lengths.size
    if blocks < 2 or math.lgamma(blocks + 1) < math.log(n_perm + 1):
        size = f"{int(lengths[0])} sample(s)" if np.all(lengths == lengths[0]) else "unequal sizes"
        raise DataError(
            f"n_perm: {blocks} exchangeable block(s) of {size} have "
            f"{math.factorial(min(blocks, 20))} orders, too few for {n_perm} distinct permutations; "
            "use more samples (or shorter blocks) or fewer permutations"
        )
    return lengths


def _block_lengths(block_size: object, n: int) -> np.ndarray:
    """A sequence of block lengths as an int64 array; ConfigError / ShapeError unless they are
    positive integers summing to n."""
    try:
        lengths = np.asarray(block_size)
    except (TypeError, ValueError):
        lengths = np.asarray([])
    if lengths.ndim != 1 or lengths.size == 0 or not np.issubdtype(lengths.dtype, np.integer) or lengths.min() < 1:
        raise ConfigError(f"block_size: must be a positive integer or a sequence of positive block lengths, "
                          f"got {block_size!r}")
    if int(lengths.sum()) != n:
        raise ShapeError(f"block_size: block lengths sum to {int(lengths.sum())}, not the {n} samples")
    return lengths.astype(np.int64)


def _block_label(lengths: np.ndarray) -> int | tuple[int, ...]:
    """One int when every block has the same length, else the tuple of lengths."""
    return int(lengths[0]) if np.all(lengths == lengths[0]) else tuple(int(x) for x in lengths)


def _block_permutation(rng: np.random.Generator, lengths: np.ndarray) -> np.ndarray:
    """A random permutation of range(sum(lengths)) moving whole contiguous blocks of the given
    lengths: the blocks concatenated in the order ``rng.permutation(n_blocks)``. Equal blocks draw
    the same permutations as before lengths could differ (single rows: rng.permutation(n))."""
    if np.all(lengths == 1):
        return rng.permutation(lengths.size)
    order = rng.permutation(lengths.size)
    if np.all(lengths == lengths[0]):
        b = int(lengths[0])
        return (order[:, None] * b + np.arange(b)).ravel()
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    return np.concatenate([np.arange(starts[i], starts[i] + lengths[i]) for i in order])


def _decoders(dec_a: object, dec_b: object, corr: CorrelationResult) -> tuple[np.ndarray, np.ndarray]:
    """Checked decoder rows with one row per latent of each side."""
    da, db = as_matrix(dec_a, "dec_a"), as_matrix(dec_b, "dec_b")
    for dec, count, side in ((da, corr.n_latents_a, "a"), (db, corr.n_latents_b, "b")):
        if dec.shape[0] != count:
            raise ShapeError(f"dec_{side}: has {dec.shape[0]} rows but acts_{side} has {count} latents")
    return da, db


def _subset_masks(
    subset_a: object, subset_b: object, corr: CorrelationResult, pools: tuple[np.ndarray, np.ndarray]
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The chosen subsets as boolean masks; ConfigError if neither side is restricted."""
    if subset_a is None and subset_b is None:
        raise ConfigError("subset_a, subset_b: kind='subset' needs the chosen latents of at least one side")
    masks = (
        None if subset_a is None else bool_mask(subset_a, corr.n_latents_a, "subset_a"),
        None if subset_b is None else bool_mask(subset_b, corr.n_latents_b, "subset_b"),
    )
    for mask, pool, side in zip(masks, pools, "ab"):
        if mask is not None and not mask[pool].any():
            raise DataError(f"subset_{side}: contains none of the {pool.size} pairable latents")
    return masks


def _pools(corr: CorrelationResult, procedure: PairingProcedure) -> tuple[np.ndarray, np.ndarray]:
    """Ids of the pairable latents of each side: alive and kept."""
    pools = []
    for alive, keep, count, name in ((corr.alive_a, procedure.keep_a, corr.n_latents_a, "keep_a"),
                                     (corr.alive_b, procedure.keep_b, corr.n_latents_b, "keep_b")):
        pools.append(alive[bool_mask(keep, count, name)[alive]])
    return pools[0], pools[1]


def _random_subsets(
    rng: np.random.Generator, pools: tuple[np.ndarray, np.ndarray], sizes: list[int | None], counts: tuple[int, int]
) -> list[np.ndarray | None]:
    """Uniformly random masks (counts[side],) holding ``sizes[side]`` latents drawn from each side's
    pool of pairable latents (None: that side unrestricted)."""
    out: list[np.ndarray | None] = []
    for pool, size, count in zip(pools, sizes, counts):
        if size is None:
            out.append(None)
            continue
        mask = np.zeros(count, dtype=bool)
        mask[rng.choice(pool, size=size, replace=False)] = True
        out.append(mask)
    return out


def _drawn(draw: Callable[[], dict[str, Pairing]], j: int, kind: str) -> dict[str, Pairing]:
    """Null draw j's pairings; a pairing that cannot be formed becomes one DataError naming the draw."""
    try:
        return draw()
    except DataError as exc:
        what = "permutation of B's samples" if kind == "permute" else "random subset"
        raise DataError(
            f"null draw {j} ({what}): the pairing cannot be formed ({exc}); the null must repeat "
            "the observed procedure, so lower min_corr / widen the keep masks, or use more samples"
        ) from None


def _scores(
    pairing: Pairing, dec_a: np.ndarray, dec_b: np.ndarray, requests: list[tuple[str, dict[str, Any]]], where: str,
    device: object,
) -> np.ndarray:
    """Scores (n_metrics,) of the paired decoder rows, computed on ``device`` (None: NumPy);
    DataError naming ``where`` on failure."""
    if len(pairing) < MIN_PAIRS:
        raise DataError(
            f"{where}: pairing '{pairing.mode}' has {len(pairing)} pair(s); the similarity metrics "
            f"need at least {MIN_PAIRS} (lower min_corr or widen the keep masks)"
        )
    try:
        return paired_scores(requests, dec_a[pairing.idx_a], dec_b[pairing.idx_b], device=device)
    except FeatgeomError as exc:
        raise type(exc)(f"{where}, pairing '{pairing.mode}': {exc}") from None
