"""SyntheticModelFamily: related synthetic models with a known feature correspondence.

Every member's feature activations are a fixed linear image of one "universe" draw:
universe = [base world draw | independent draw of the same world for each variant], so
``acts_m = universe @ S_m`` with S_m (U, N_m) sparse:
- a kept feature is the base's column (shared features have identical activations),
- a mixed feature is w * a_i + (1 - w) * a_j of two kept base features,
- a unique feature is the same slot of the variant's own independent draw (fires independently),
and ``hidden_m = acts_m @ feature_vectors_m + bias_m``.  The ground-truth correspondence of two
members is C = S_a^T S_b restricted to the base columns (1 for the same feature, mixture weights
for mixed ones, 0 for unique ones).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from featgeom.errors import ConfigError
from featgeom.family import construct
from featgeom.family.config import FamilyConfig, VariantSpec
from featgeom.world.build import World, build_world, hierarchy_depth
from featgeom.world.geometry import rho_mm
from featgeom.world.sampler import FastSampler, FeatureBatch

RHO_PROMISE = 0.01
# Sampling salts: a stream of a family's samples is seeded by SeedSequence([seed, salt]), so streams of
# equal seeds but different salts are independent and share no sample: training, evaluation and
# comparison stay apart whatever seeds and batch sizes they are given.
TRAIN_SALT = 0x5EED  # SAE training batches (featgeom.sae.data.MemberStream)
EVAL_SALT = 0xE7A1  # held-out evaluation batches (featgeom.sae.evaluate.heldout_batches)
COMPARE_SALT = 0xC03A  # paired samples of iter_batches / sample: the inputs of comparisons (featgeom.compare)


@dataclass(frozen=True, eq=False)
class Member:
    """One model of a family.

    feature_vectors (N_m, d_m) unit rows; bias (d_m,); source (U, N_m) sparse map from the
    universe draw to this member's features; firing_probability (N_m,) nominal marginal firing
    probability; parent (N_m,) index of the feature's parent inside this member (-1: none);
    category (N_m,) semantic label (by hierarchy subtree).
    """

    name: str
    feature_vectors: np.ndarray
    bias: np.ndarray
    source: sp.csr_matrix
    firing_probability: np.ndarray
    parent: np.ndarray
    category: np.ndarray
    rho_mm: float

    @property
    def num_features(self) -> int:
        return int(self.feature_vectors.shape[0])

    @property
    def hidden_dim(self) -> int:
        return int(self.feature_vectors.shape[1])

    def depth(self) -> np.ndarray:
        """Depth of each feature in this member's hierarchy (0: root or outside any tree)."""
        return hierarchy_depth(self.parent)


@dataclass(frozen=True)
class PairedBatch:
    """One batch of paired samples: hidden[name] (n, d_m); features[name] CSR (n, N_m) or None."""

    hidden: dict[str, np.ndarray]
    features: dict[str, sp.csr_matrix] | None


class SyntheticModelFamily:
    """A base world and its variants, sampled on shared inputs (see module docstring)."""

    def __init__(self, config: FamilyConfig, world: World, members: list[Member]) -> None:
        self.config = config
        self.world = world
        self.members = members
        self._index = {m.name: i for i, m in enumerate(members)}

    # ----------------------------------------------------------------- access
    @property
    def names(self) -> list[str]:
        return [m.name for m in self.members]

    def member(self, key: str | int) -> Member:
        """A member by name or position; unknown keys raise ConfigError listing the names."""
        if isinstance(key, (int, np.integer)) and 0 <= key < len(self.members):
            return self.members[int(key)]
        if key in self._index:
            return self.members[self._index[key]]
        raise ConfigError(f"member: unknown member {key!r} (members: {', '.join(self.names)})")

    def correspondence(self, a: str | int, b: str | int) -> sp.csr_matrix:
        """Ground-truth correspondence C (N_a, N_b): C_ij = sum_u S_a[u, i] S_b[u, j].

        1 where feature i of a is feature j of b; the mixture weight where one is a mixture of
        the other; 0 for unrelated (e.g. variant-unique) features.
        """
        ma, mb = self.member(a), self.member(b)
        c = (ma.source.T @ mb.source).tocsr()
        c.eliminate_zeros()
        return c

    def shared_with_base(self, key: str | int) -> int:
        """Number of features of member ``key`` that are exactly (weight 1) base features."""
        c = self.correspondence(0, key)
        return int(np.count_nonzero(np.isclose(c.data, 1.0)))

    # --------------------------------------------------------------- sampling
    def iter_batches(
        self, n: int, seed: int = 0, batch_size: int = 4096, with_features: bool = False,
        members: Sequence[str | int] | None = None, salt: int = COMPARE_SALT,
    ) -> Iterator[PairedBatch]:
        """Stream n paired samples in batches of a :class:`UniverseStream`: one universe draw per
        batch feeds every member (or only ``members``, drawing only the universe blocks they read:
        their samples are the same as in a draw for every member).

        Same (seed, batch_size, salt) -> same batches.  Memory is O(batch_size), so n can exceed
        RAM.  The default salt is the comparisons' (COMPARE_SALT), not training's or evaluation's.
        """
        if n < 1:
            raise ConfigError(f"n: number of samples must be >= 1, got {n}")
        if batch_size < 1:
            raise ConfigError(f"batch_size: must be >= 1, got {batch_size}")
        stream = UniverseStream(self, seed, members, salt)
        done = 0
        while done < n:
            size = min(batch_size, n - done)
            drawn = stream.next(size)
            features = {name: acts for name, (_, acts) in drawn.items()} if with_features else None
            yield PairedBatch({name: hidden for name, (hidden, _) in drawn.items()}, features)
            done += size

    def sample(self, n: int, seed: int = 0, batch_size: int = 4096, with_features: bool = False,
               members: Sequence[str | int] | None = None, salt: int = COMPARE_SALT) -> PairedBatch:
        """n paired samples (of every member, or of ``members``) from :meth:`iter_batches`, in one batch."""
        batches = list(self.iter_batches(n, seed, batch_size, with_features, members, salt))
        names = list(batches[0].hidden)
        hidden = {name: np.concatenate([b.hidden[name] for b in batches]) for name in names}
        features = None
        if with_features:
            features = {name: sp.vstack([b.features[name] for b in batches], format="csr") for name in names}
        return PairedBatch(hidden, features)

    def universe_samplers(self, seed: int, members: Sequence[str | int] | None = None,
                          salt: int = TRAIN_SALT) -> list[FastSampler | None]:
        """One sampler per universe block (block b: the base draw for b = 0, variant b's own draw
        otherwise), seeded from (seed, salt, b); None for blocks no member (of ``members``) reads."""
        n = self.world.num_features
        members = self.members if members is None else [self.member(m) for m in members]
        rows_used = np.unique(np.concatenate([m.source.tocoo().row for m in members]))
        streams = np.random.SeedSequence([seed, salt]).spawn(len(self.members))
        return [FastSampler(self.world, seed=s) if np.any((rows_used >= b * n) & (rows_used < (b + 1) * n)) else None
                for b, s in enumerate(streams)]

    # ---------------------------------------------------------------- summary
    def summary(self) -> dict:
        """JSON-ready description: per member name, sizes, rho_mm, shared fraction with the base."""
        return {
            "name": self.config.name,
            "members": [
                {
                    "name": m.name,
                    "num_features": m.num_features,
                    "hidden_dim": m.hidden_dim,
                    "rho_mm": round(m.rho_mm, 6),
                    "shared_fraction_with_base": self.shared_with_base(m.name) / m.num_features,
                }
                for m in self.members
            ],
        }


class UniverseStream:
    """Resumable paired samples of ``members`` (None: all): the one implementation of drawing a
    family's samples (:meth:`SyntheticModelFamily.iter_batches` and the SAE stage's
    ``MemberStream`` are loops over it).

    Each :meth:`next` is one universe draw (n, U), its block b drawn by the sampler seeded from
    SeedSequence([seed, salt]).spawn(#members)[b] (``salt``: one of the sampling salts above;
    blocks no chosen member reads are not drawn), and gives every chosen member acts_m = universe @
    S_m (n, N_m) CSR with sorted column indices and hidden_m = acts_m @ feature_vectors_m + bias_m
    (n, d_m) float32.  A member whose S_m is the identity on block 0 (the base) reads that block
    without the product.
    """

    def __init__(self, family: SyntheticModelFamily, seed: int, members: Sequence[str | int] | None,
                 salt: int) -> None:
        self.members = family.members if members is None else [family.member(m) for m in members]
        self.samplers = family.universe_samplers(seed, [m.name for m in self.members], salt)
        self.n_world = family.world.num_features
        self.reads_base_block = [is_identity(m.source, self.n_world) for m in self.members]

    def next(self, n: int) -> dict[str, tuple[np.ndarray, sp.csr_matrix]]:
        """The next n samples: {member name: (hidden (n, d_m) float32, acts CSR (n, N_m))}."""
        blocks = [s.sample_features(n).to_scipy() if s else None for s in self.samplers]
        universe = None
        out = {}
        for member, direct in zip(self.members, self.reads_base_block):
            if direct:
                acts = blocks[0]
            else:
                universe = universe if universe is not None else stack_blocks(blocks, n, self.n_world)
                acts = (universe @ member.source).tocsr()
                acts.sort_indices()
            out[member.name] = (member_hidden(acts, member), acts)
        return out

    def state(self) -> dict[str, Any]:
        """The position of every sampler (JSON-ready), for checkpoints."""
        return {str(b): s.state() for b, s in enumerate(self.samplers) if s is not None}

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore a state from :meth:`state`."""
        for b, s in enumerate(self.samplers):
            if s is not None:
                s.set_state(state[str(b)])


def stack_blocks(blocks: list[sp.csr_matrix | None], size: int, n_world: int) -> sp.csr_matrix:
    """The universe (size, n_world * len(blocks)) from its drawn blocks (size, n_world); undrawn
    (None) blocks are empty."""
    return sp.hstack([b if b is not None else sp.csr_matrix((size, n_world), dtype=np.float32) for b in blocks],
                     format="csr")


def is_identity(source: sp.csr_matrix, n: int) -> bool:
    """True when S maps universe column i (< n) to member feature i with weight 1 and nothing else."""
    coo = source.tocoo()
    return (source.shape[1] == n and coo.nnz == n and np.array_equal(np.sort(coo.row), np.arange(n))
            and np.array_equal(coo.row, coo.col) and np.all(coo.data == 1))


def member_hidden(acts: sp.csr_matrix, member: Member) -> np.ndarray:
    """acts (n, N_m) sparse @ feature_vectors (N_m, d_m) + bias, float32 (torch sparse product)."""
    batch = FeatureBatch(acts.indptr, acts.indices, acts.data.astype(np.float32), acts.shape)
    return batch.hidden(member.feature_vectors, member.bias)


# ------------------------------------------------------------------ building
def build_family(config: FamilyConfig, world: World | None = None) -> SyntheticModelFamily:
    """Build the base world (unless given) and every variant member of ``config``."""
    world = world if world is not None else build_world(config.world)
    n = world.num_features
    universe = n * (1 + len(config.variants))
    categories = feature_categories(world.parent, config.num_categories)
    nominal = nominal_probabilities(world)
    base = Member(
        name="base",
        feature_vectors=world.feature_vectors,
        bias=world.bias,
        source=sp.eye(universe, n, format="csr", dtype=np.float32),
        firing_probability=nominal,
        parent=world.parent.copy(),
        category=categories,
        rho_mm=world.rho_mm(),
    )
    members = [base]
    for k, spec in enumerate(config.variants):
        rng = np.random.default_rng([config.seed, k])
        members.append(_build_variant(world, base, spec, k, universe, rng))
    return SyntheticModelFamily(config, world, members)


def _build_variant(
    world: World, base: Member, spec: VariantSpec, k: int, universe: int, rng: np.random.Generator
) -> Member:
    n = world.num_features
    where = f"variants[{k}]"
    replaced = construct.choose_replaced(world.parent, n - round(spec.feature_overlap_ratio * n), rng)
    pairs = construct.choose_mixing_pairs(~replaced, spec.mixing_pairs, rng)
    source = _source_matrix(n, universe, k, replaced, pairs, spec.mixing_weight)
    vectors = _mix_directions(world.feature_vectors, pairs, spec.mixing_weight)
    vectors, bias = construct.change_dimension(vectors, world.bias, spec.hidden_dim or world.hidden_dim, rng)
    ortho = world.config.orthogonalization
    vectors = construct.unique_directions(
        vectors, replaced, ortho.steps if ortho else 0, ortho.lr if ortho else 1.0, rng
    )
    achieved = rho_mm(vectors)
    if spec.superposition_delta is not None:
        target = base.rho_mm + spec.superposition_delta
        vectors, achieved = construct.adjust_superposition(vectors, target, rng, f"{where}.superposition_delta")
        if abs(achieved - target) > RHO_PROMISE:
            raise ConfigError(f"{where}.superposition_delta: reached rho_mm {achieved:.4f}, target {target:.4f}")
    if spec.basis_rotation_angle > 0:
        q = construct.rotation_matrix(vectors.shape[1], spec.basis_rotation_angle, rng)
        vectors, bias = (vectors @ q.T).astype(np.float32), (bias @ q.T).astype(np.float32)
    mixed = np.zeros(n, dtype=bool)
    mixed[pairs.ravel()] = True
    return Member(
        name=spec.name,
        feature_vectors=np.ascontiguousarray(vectors, dtype=np.float32),
        bias=np.asarray(bias, dtype=np.float32),
        source=source,
        firing_probability=_mixed_probability(base.firing_probability, pairs),
        parent=_member_parent(world.parent, replaced, mixed),
        category=base.category.copy(),
        rho_mm=achieved,
    )


def _source_matrix(n: int, universe: int, k: int, replaced: np.ndarray, pairs: np.ndarray, w: float) -> sp.csr_matrix:
    """S (universe, n): kept -> base column, replaced -> column of draw k+1, pairs -> mixtures."""
    slots = np.arange(n)
    rows = np.where(replaced, (k + 1) * n + slots, slots)
    cols, vals = slots.copy(), np.ones(n)
    keep = np.ones(n, dtype=bool)
    keep[pairs.ravel()] = False
    rows, cols, vals = list(rows[keep]), list(cols[keep]), list(vals[keep])
    for i, j in pairs:
        rows += [i, j, i, j]
        cols += [i, i, j, j]
        vals += [w, 1 - w, 1 - w, w]
    return sp.csr_matrix((np.asarray(vals, dtype=np.float32), (rows, cols)), shape=(universe, n))


def _mix_directions(vectors: np.ndarray, pairs: np.ndarray, w: float) -> np.ndarray:
    """Mixed feature directions: normalise(w e_i + (1-w) e_j) and normalise((1-w) e_i + w e_j)."""
    out = vectors.copy()
    for i, j in pairs:
        for slot, (wi, wj) in ((i, (w, 1 - w)), (j, (1 - w, w))):
            v = wi * vectors[i] + wj * vectors[j]
            out[slot] = v / np.linalg.norm(v)
    return out


def _mixed_probability(prob: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """A mixture fires when either source fires: 1 - (1 - p_i)(1 - p_j) (sources taken independent)."""
    out = prob.copy()
    for i, j in pairs:
        out[i] = out[j] = 1 - (1 - prob[i]) * (1 - prob[j])
    return out


def _member_parent(parent: np.ndarray, replaced: np.ndarray, mixed: np.ndarray) -> np.ndarray:
    """Parent inside the member: kept only when parent and child come from the same draw, unmixed."""
    out = parent.copy()
    has = out >= 0
    same_draw = replaced[np.where(has, out, 0)] == replaced
    out[has & (~same_draw | mixed | mixed[np.where(has, out, 0)])] = -1
    return out


def feature_categories(parent: np.ndarray, num_categories: int) -> np.ndarray:
    """Semantic category per feature: each hierarchy tree gets one (roots round-robin, in index
    order) and all its descendants share it; features outside any tree cycle through categories."""
    n = parent.size
    root = np.arange(n)
    while np.any(parent[root] >= 0):
        up = parent[root] >= 0
        root[up] = parent[root[up]]
    in_tree = (parent >= 0) | np.isin(np.arange(n), parent)
    tree_roots = np.unique(root[in_tree])
    category = np.arange(n) % num_categories
    rank = np.searchsorted(tree_roots, root[in_tree])
    category[in_tree] = rank % num_categories
    return category.astype(np.int64)


def nominal_probabilities(world: World) -> np.ndarray:
    """The Zipf firing probabilities the world targets as marginals (before hierarchy compensation)."""
    from sae_lens.synthetic import ZipfianFiringProbabilityConfig

    f = world.config.firing
    cfg = ZipfianFiringProbabilityConfig(exponent=f.exponent, max_prob=f.max_prob, min_prob=f.min_prob)
    return cfg.generate(world.num_features).numpy().astype(np.float64)
