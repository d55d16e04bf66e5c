"""Significance tests for similarity scores of paired rows.

:func:`null_test` compares a similarity metric on the given pairing with a permutation null
(shuffled pairing, or random same-size subsets of candidate pools) and returns a
:class:`NullTestResult` with a +1-corrected one-sided p-value; :func:`null_tests` runs the
shuffle null of several metrics on the same permutations, sharing their per-permutation work.
"""

from featgeom.stats.kernels import METRIC_NAMES
from featgeom.stats.null import KINDS, PRECISIONS, NullTestResult, null_test, null_tests

__all__ = ["KINDS", "METRIC_NAMES", "PRECISIONS", "NullTestResult", "null_test", "null_tests"]
