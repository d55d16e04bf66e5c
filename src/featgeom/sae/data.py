"""Fast sampling of ONE family member's activations, with a resumable random state.

The member's feature activations are universe @ S_m (see :mod:`featgeom.family.family`); only the
universe blocks this member reads are drawn, with the same per-block seeds as
``family.iter_batches(seed=...)``, so for equal batch sizes the batches equal that method's.
The base member (S = identity on block 0) skips the sparse product.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from featgeom.family.family import UNIVERSE_SALT, Member, SyntheticModelFamily, draw_universe, member_hidden

TRAIN_SALT = UNIVERSE_SALT  # training batches equal family.iter_batches(seed=...)


class MemberStream:
    """Batches of (hidden (n, d_m) float32, true feature acts CSR (n, N_m)) for one member."""

    def __init__(self, family: SyntheticModelFamily, member: str | int, seed: int, salt: int = TRAIN_SALT) -> None:
        self.member: Member = family.member(member)
        self.samplers = family.universe_samplers(seed, [member], salt)
        self.n_world = family.world.num_features
        self.is_identity = _is_identity(self.member.source, self.n_world)

    def next(self, n: int) -> tuple[np.ndarray, sp.csr_matrix]:
        """Next n samples: hidden (n, d_m) float32 and the member's feature activations (n, N_m)."""
        if self.is_identity:
            batch = self.samplers[0].sample_features(n)
            return batch.hidden(self.member.feature_vectors, self.member.bias), batch.to_scipy()
        acts = (draw_universe(self.samplers, n, self.n_world) @ self.member.source).tocsr()
        acts.sort_indices()
        return member_hidden(acts, self.member), acts

    def next_hidden(self, n: int) -> torch.Tensor:
        """Next n hidden vectors as a float32 tensor (training input)."""
        return torch.from_numpy(self.next(n)[0])

    def state(self) -> dict[str, Any]:
        """The position of every sampler (JSON-ready), for checkpoints."""
        return {str(b): s.state() for b, s in enumerate(self.samplers) if s is not None}

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore a state from :meth:`state`."""
        for b, s in enumerate(self.samplers):
            if s is not None:
                s.set_state(state[str(b)])


def _is_identity(source: sp.csr_matrix, n: int) -> bool:
    """True when S maps universe column i (< n) to member feature i with weight 1 and nothing else."""
    coo = source.tocoo()
    return (source.shape[1] == n and coo.nnz == n and np.array_equal(np.sort(coo.row), np.arange(n))
            and np.array_equal(coo.row, coo.col) and np.all(coo.data == 1))

