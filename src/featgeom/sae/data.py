"""Training data streams with a resumable random state: one family member's activations
(:class:`MemberStream`), or rows of a real model's stored activations (:class:`ArrayStream`, with
the fixed held-out split of :func:`split_rows`).

A member's samples are drawn by :class:`featgeom.family.family.UniverseStream` (the family's one
sampling implementation): only the universe blocks this member reads, with the same per-block
seeds as ``family.iter_batches(seed=..., salt=...)``, so for equal batch sizes and salt the batches
equal that method's.  Training draws with TRAIN_SALT (the default here), evaluation with EVAL_SALT,
comparisons (``iter_batches`` / ``sample``'s default) with COMPARE_SALT: the sampling salts of
:mod:`featgeom.family.family`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from featgeom.errors import DataError, ShapeError
from featgeom.family.family import TRAIN_SALT, Member, SyntheticModelFamily, UniverseStream


class MemberStream:
    """Batches of (hidden (n, d_m) float32, true feature acts CSR (n, N_m)) for one member: a
    :class:`~featgeom.family.family.UniverseStream` of that member alone."""

    def __init__(self, family: SyntheticModelFamily, member: str | int, seed: int, salt: int = TRAIN_SALT) -> None:
        self.member: Member = family.member(member)
        self.stream = UniverseStream(family, seed, [self.member.name], salt)

    def next(self, n: int) -> tuple[np.ndarray, sp.csr_matrix]:
        """Next n samples: hidden (n, d_m) float32 and the member's feature activations (n, N_m)."""
        return self.stream.next(n)[self.member.name]

    def next_hidden(self, n: int) -> torch.Tensor:
        """Next n hidden vectors as a float32 tensor (training input)."""
        return torch.from_numpy(self.next(n)[0])

    def state(self) -> dict[str, Any]:
        """The position of every sampler (JSON-ready), for checkpoints."""
        return self.stream.state()

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore a state from :meth:`state`."""
        self.stream.set_state(state)


# ---------------------------------------------------------------------------------------------
# Stored activations of a real model: a fixed held-out split and a resumable, epoch-shuffled stream.

ARRAY_SALT = 0xAC75  # training order of ArrayStream: SeedSequence([seed, ARRAY_SALT, epoch])
SPLIT_SALT = 0x5B17  # held-out split: SeedSequence([SPLIT_SEED, SPLIT_SALT]), the same for every SAE seed
SPLIT_SEED = 0
EVAL_FRACTION = 0.1  # share of the rows held out for evaluation (at least MIN_EVAL_SAMPLES, at most the cap)
CHECK_CHUNK = 65_536  # rows per chunk when checking an array (bounded temporary memory)


def check_activations(acts: Any, name: str = "activations") -> np.ndarray:
    """``acts`` as a 2-D float32 array (n, d), checked: ShapeError unless 2-D with d >= 1 (and of a
    real floating dtype); DataError naming the first row with a NaN / inf, or when every row is the
    same vector (zero variance: explained variance is undefined).  No copy for float32 input."""
    arr = np.asarray(acts)
    if arr.ndim != 2 or arr.shape[1] < 1:
        raise ShapeError(f"{name}: expected a 2-D array (tokens, d_model), got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.floating):
        raise ShapeError(f"{name}: expected floating-point activations, got dtype {arr.dtype}")
    arr = arr.astype(np.float32, copy=False)
    spread = 0.0
    for start in range(0, arr.shape[0], CHECK_CHUNK):
        chunk = arr[start:start + CHECK_CHUNK]
        finite = np.isfinite(chunk).all(axis=1)
        if not finite.all():
            row = start + int(np.argmin(finite))
            raise DataError(f"{name}: row {row} has non-finite values (NaN or inf); "
                            f"activations must be finite")
        spread = max(spread, float(np.abs(chunk - arr[0]).max(initial=0.0)))
    if arr.shape[0] and spread == 0.0:
        raise DataError(f"{name}: all {arr.shape[0]} rows are the same vector (zero variance); nothing to learn")
    return arr


def eval_row_count(n_rows: int, cap: int) -> int:
    """Rows held out for evaluation: ceil(EVAL_FRACTION x n_rows), at least MIN_EVAL_SAMPLES, at most ``cap``."""
    from featgeom.sae.evaluate import MIN_EVAL_SAMPLES

    return min(cap, max(MIN_EVAL_SAMPLES, math.ceil(EVAL_FRACTION * n_rows)))


def split_rows(n_rows: int, n_eval: int) -> tuple[np.ndarray, np.ndarray]:
    """(training rows, held-out rows): sorted int64 row indices, disjoint, together 0..n_rows-1.

    The held-out rows are the first ``n_eval`` of a permutation seeded by (SPLIT_SEED, SPLIT_SALT),
    not by the SAE's seed, so every SAE on the same activations is evaluated on the same rows.
    """
    order = np.random.default_rng(np.random.SeedSequence([SPLIT_SEED, SPLIT_SALT])).permutation(n_rows)
    return np.sort(order[n_eval:]), np.sort(order[:n_eval])


class ArrayStream:
    """Training batches drawn from rows of a stored (n, d) float32 array, in epochs.

    Epoch e visits ``rows`` (default: all rows) once, in the order of a permutation seeded by
    SeedSequence([seed, salt, e]); a batch that crosses the end of an epoch continues with the
    next one.  The state is (epoch, position), so a checkpointed stream resumes exactly (the
    permutation is recomputed from seed + epoch).  ``epochs`` counts passes so far (float).
    """

    def __init__(self, acts: np.ndarray, seed: int, salt: int = ARRAY_SALT, rows: np.ndarray | None = None) -> None:
        self.acts = acts
        self.rows = np.arange(acts.shape[0], dtype=np.int64) if rows is None else np.asarray(rows, dtype=np.int64)
        if self.rows.size == 0:
            raise DataError("activations: no training rows to draw batches from")
        self.seed, self.salt = int(seed), int(salt)
        self.epoch, self.position = 0, 0
        self._order: tuple[int, np.ndarray] | None = None

    def _permutation(self, epoch: int) -> np.ndarray:
        """The row order of ``epoch`` (positions into ``rows``), cached for the current epoch."""
        if self._order is None or self._order[0] != epoch:
            rng = np.random.default_rng(np.random.SeedSequence([self.seed, self.salt, epoch]))
            self._order = (epoch, rng.permutation(self.rows.size))
        return self._order[1]

    def next_indices(self, n: int) -> np.ndarray:
        """Row indices (n,) of the next n samples, advancing the stream."""
        parts, need = [], n
        while need > 0:
            order = self._permutation(self.epoch)
            take = order[self.position:self.position + need]
            parts.append(take)
            need -= take.size
            self.position += take.size
            if self.position == order.size:
                self.epoch, self.position = self.epoch + 1, 0
        return self.rows[np.concatenate(parts)]

    def next_hidden(self, n: int) -> torch.Tensor:
        """The next n rows as a (n, d) float32 tensor (training input)."""
        return torch.from_numpy(np.ascontiguousarray(self.acts[self.next_indices(n)], dtype=np.float32))

    @property
    def epochs(self) -> float:
        """Passes over the training rows so far: epoch + position / #rows."""
        return self.epoch + self.position / self.rows.size

    def state(self) -> dict[str, Any]:
        """JSON-ready position of the stream, for checkpoints."""
        return {"epoch": self.epoch, "position": self.position}

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore a state from :meth:`state`."""
        self.epoch, self.position = int(state["epoch"]), int(state["position"])
