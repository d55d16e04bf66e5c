"""Building blocks of variant members: which features to replace, mixing, directions, rotation.

Every function is deterministic given its ``rng`` (a ``numpy.random.Generator``).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from featgeom.errors import ConfigError
from featgeom.world.build import hierarchy_depth
from featgeom.world.geometry import orthogonalize, reduce_coherence, rho_mm, unit_rows

RHO_TOLERANCE = 2e-3  # bisection target; the promise to users is 0.01


def subtree_sizes(parent: np.ndarray) -> np.ndarray:
    """Number of nodes in each node's subtree (itself included).  parent (N,) -> (N,) int64."""
    depth = hierarchy_depth(parent)
    size = np.ones(parent.size, dtype=np.int64)
    for level in range(int(depth.max()), 0, -1):
        nodes = np.flatnonzero(depth == level)
        np.add.at(size, parent[nodes], size[nodes])
    return size


def choose_replaced(parent: np.ndarray, n_replace: int, rng: np.random.Generator) -> np.ndarray:
    """Boolean mask of exactly ``n_replace`` features to replace, taken as whole subtrees.

    Subtrees are visited largest first (ties in random order) and taken while they fit, so a
    variant loses whole topics (trees) before single leaves; features outside the hierarchy are
    subtrees of size 1.  If only partial subtrees are left, single nodes complete the count.
    """
    n = parent.size
    size = subtree_sizes(parent)
    order = np.lexsort((rng.random(n), -size))
    replaced = np.zeros(n, dtype=bool)
    covered = np.zeros(n, dtype=bool)
    descendants = _descendant_lists(parent)
    remaining = n_replace
    for node in order:
        if remaining == 0:
            break
        if covered[node] or size[node] > remaining:
            continue
        members = descendants[node]
        replaced[members] = True
        covered[members] = True
        remaining -= members.size
    if remaining:
        free = np.flatnonzero(~replaced)
        replaced[rng.choice(free, size=remaining, replace=False)] = True
    return replaced


def _descendant_lists(parent: np.ndarray) -> list[np.ndarray]:
    """For each node, the array of nodes in its subtree (itself first)."""
    children: list[list[int]] = [[] for _ in range(parent.size)]
    for child in np.flatnonzero(parent >= 0):
        children[parent[child]].append(int(child))
    depth = hierarchy_depth(parent)
    result: list[np.ndarray] = [np.empty(0, dtype=np.int64)] * parent.size
    for node in sorted(range(parent.size), key=lambda i: -depth[i]):
        parts = [np.array([node], dtype=np.int64)] + [result[c] for c in children[node]]
        result[node] = np.concatenate(parts)
    return result


def choose_mixing_pairs(kept: np.ndarray, n_pairs: int, rng: np.random.Generator) -> np.ndarray:
    """``n_pairs`` disjoint random pairs of kept feature indices, shape (n_pairs, 2)."""
    chosen = rng.choice(np.flatnonzero(kept), size=2 * n_pairs, replace=False)
    return np.sort(chosen.reshape(n_pairs, 2), axis=1)


def random_orthonormal(rows: int, cols: int, rng: np.random.Generator) -> np.ndarray:
    """A (rows, cols) matrix with orthonormal columns (rows >= cols), Haar-distributed."""
    q, r = np.linalg.qr(rng.standard_normal((rows, cols)))
    return q * np.sign(np.diag(r))


def change_dimension(vectors: np.ndarray, bias: np.ndarray, dim: int, rng: np.random.Generator):
    """Map directions (N, d) and bias (d,) into R^dim.

    dim > d: isometric embedding x -> Q x (Q (dim, d) orthonormal columns), cosines preserved.
    dim < d: projection onto a random dim-dimensional subspace, rows re-normalised to unit length
    (superposition rises); the bias keeps its norm.
    """
    d = vectors.shape[1]
    if dim == d:
        return vectors, bias
    if dim > d:
        q = random_orthonormal(dim, d, rng)
        return (vectors @ q.T).astype(np.float32), (bias @ q.T).astype(np.float32)
    q = random_orthonormal(d, dim, rng)
    projected = unit_rows(vectors @ q, "projected directions").astype(np.float32)
    b = bias @ q
    norm = np.linalg.norm(b)
    b = b * (np.linalg.norm(bias) / norm) if norm > 0 else b
    return projected, b.astype(np.float32)


def unique_directions(
    vectors: np.ndarray, unique: np.ndarray, steps: int, lr: float, rng: np.random.Generator
) -> np.ndarray:
    """Fresh random unit directions for rows ``unique``, orthogonalised against all others (frozen).

    Uses the world's orthogonalization (steps, lr); with steps = 0 they stay random unit vectors.
    """
    out = vectors.copy()
    fresh = rng.standard_normal((int(unique.sum()), vectors.shape[1]))
    out[unique] = (fresh / np.linalg.norm(fresh, axis=1, keepdims=True)).astype(np.float32)
    if steps > 0:
        frozen = torch.from_numpy(~unique)
        out = orthogonalize(torch.from_numpy(out), steps, lr, frozen=frozen).numpy()
    return out


def rotation_matrix(dim: int, angle_deg: float, rng: np.random.Generator) -> np.ndarray:
    """Orthogonal Q = P R P^T, R block-diagonal 2x2 rotations by the angle, P Haar-random.

    For even dim every unit vector v satisfies v . Q v = cos(angle) exactly; for odd dim one
    direction (P's last column) is left fixed.
    """
    p = random_orthonormal(dim, dim, rng)
    theta = math.radians(angle_deg)
    r = np.eye(dim)
    c, s = math.cos(theta), math.sin(theta)
    for k in range(0, dim - 1, 2):
        r[k:k + 2, k:k + 2] = [[c, -s], [s, c]]
    return p @ r @ p.T


def adjust_superposition(
    vectors: np.ndarray, target: float, rng: np.random.Generator, where: str
) -> tuple[np.ndarray, float]:
    """Move rho_mm(vectors) to ``target`` (within RHO_TOLERANCE) along a continuous path.

    Raise: V(l) = normalise(V (I - l P)), P the projector on a random subspace of 3/4 of the
    dimensions (l = 1 leaves a quarter of the space).  Lower: V(l) = normalise((1 - l) V + l V*),
    V* = :func:`~featgeom.world.geometry.reduce_coherence` (V) (pushes the largest |cos| down).  rho_mm is
    continuous in l, so bisection finds the target whenever the endpoint passes it; otherwise
    ConfigError names ``where`` and the reachable range.  Returns (vectors, achieved rho_mm).
    """
    start = rho_mm(vectors)
    if abs(start - target) <= RHO_TOLERANCE:
        return vectors, start
    d = vectors.shape[1]
    if target > start:
        q = random_orthonormal(d, max(1, (3 * d) // 4), rng)
        projected = (vectors @ q) @ q.T

        def path(lam: float) -> np.ndarray:
            return unit_rows(vectors - lam * projected).astype(np.float32)
    else:
        end = reduce_coherence(vectors)

        def path(lam: float) -> np.ndarray:
            return unit_rows((1 - lam) * vectors + lam * end).astype(np.float32)

    far = rho_mm(path(1.0))
    if (target - start) * (target - far) > 0 and abs(far - target) > RHO_TOLERANCE:
        lo, hi = sorted((start, far))
        raise ConfigError(
            f"{where}: target rho_mm {target:.4f} is unreachable (this member reaches [{lo:.4f}, {hi:.4f}])"
        )
    lo, hi = 0.0, 1.0
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        value = rho_mm(path(mid))
        if abs(value - target) <= RHO_TOLERANCE:
            return path(mid), value
        if (value - target) * (far - target) > 0:
            hi = mid
        else:
            lo = mid
    result = path(hi)
    return result, rho_mm(result)
