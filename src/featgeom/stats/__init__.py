"""Significance tests for similarity scores of paired rows.

:func:`null_test` compares a similarity metric on the given pairing with a permutation null
(shuffled pairing, or random same-size subsets of candidate pools) and returns a
:class:`NullTestResult` with a +1-corrected one-sided p-value; :func:`null_tests` runs the
shuffle null of several metrics on the same permutations, sharing their per-permutation work.
Both keep the observed pairing fixed (the universality paper's Tests 1 and 2), which is not a
valid null when the pairing was chosen from activations. :func:`repair_tests` repeats the whole
procedure, pairing included, under the null (permuted samples, or random subsets re-paired):
the default of :func:`featgeom.compare.compare` and of every experiment.

Every test needs n_perm >= MIN_N_PERM = 19: p-values are at least 1 / (1 + n_perm), so with fewer
permutations none could reach 0.05. n_perm whose null scores would exceed 2 GiB is refused before
anything is allocated.
"""

from featgeom.stats.kernels import METRIC_NAMES
from featgeom.stats.null import KINDS, MIN_N_PERM, PRECISIONS, NullTestResult, null_test, null_tests
from featgeom.stats.repair import REPAIR_KINDS, PairingProcedure, ProcedureTests, repair_tests

__all__ = ["KINDS", "METRIC_NAMES", "MIN_N_PERM", "PRECISIONS", "REPAIR_KINDS", "NullTestResult",
           "PairingProcedure", "ProcedureTests", "null_test", "null_tests", "repair_tests"]
