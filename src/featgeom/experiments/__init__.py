"""Experiments: the one-call comparison of two SAEs, and declarative experiment runs."""

from featgeom.experiments.compare import CompareResult, GroundTruth, compare

__all__ = ["CompareResult", "GroundTruth", "compare"]
