"""Bad inputs raise featgeom errors that name the offending argument."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from featgeom.errors import DataError, FeatgeomError, ShapeError
from featgeom.metrics import (
    abs_cosine,
    angular_tolerance,
    coverage_fraction,
    gt_mcc,
    hierarchy_recovery,
    latents_per_feature,
    match_to_features,
    mcc,
    soft_mcc,
    subspace_coherence,
    uniqueness,
)

GOOD = np.eye(4)
NAN = np.where(np.eye(4) == 1, np.nan, 0.0)

DECODER_FEATURE_FUNCTIONS = [mcc, uniqueness, match_to_features, abs_cosine, coverage_fraction,
                             latents_per_feature]


@pytest.mark.parametrize("fn", DECODER_FEATURE_FUNCTIONS, ids=lambda f: f.__name__)
@pytest.mark.parametrize(
    ("decoder", "features", "error", "name"),
    [
        (GOOD[:, :3], GOOD, ShapeError, "decoder"),  # dimensions differ
        (NAN, GOOD, DataError, "decoder"),
        (GOOD, NAN, DataError, "features"),
        (np.zeros((0, 4)), GOOD, ShapeError, "decoder"),
        (GOOD, np.ones(4), ShapeError, "features"),  # 1-D
        ([["a"]], GOOD, DataError, "decoder"),
    ],
    ids=["dims", "nan-decoder", "nan-features", "empty", "1-d", "not-numeric"],
)
def test_decoder_feature_errors(fn, decoder, features, error, name) -> None:
    with pytest.raises(error, match=name):
        fn(decoder, features)


@pytest.mark.parametrize(
    "call",
    [
        lambda: soft_mcc(NAN, GOOD),
        lambda: angular_tolerance(NAN, GOOD),
        lambda: subspace_coherence(NAN, np.array([0, 0, 1, 1])),
        lambda: hierarchy_recovery(GOOD, NAN, np.array([-1, 0, 0, 0])),
        lambda: gt_mcc(NAN, GOOD, GOOD),
    ],
    ids=["soft_mcc", "angular_tolerance", "subspace_coherence", "hierarchy_recovery", "gt_mcc"],
)
def test_nan_inputs_raise_data_errors(call) -> None:
    with pytest.raises(DataError):
        call()


def test_errors_are_featgeom_errors_not_numpy_ones() -> None:
    with pytest.raises(FeatgeomError):
        mcc(None, GOOD)
    with pytest.raises(FeatgeomError):
        gt_mcc(GOOD, GOOD, "C")


def test_importing_metrics_does_not_import_saelens_or_torch() -> None:
    code = ("import sys, featgeom.metrics; "
            "heavy = [m for m in ('sae_lens', 'torch') if m in sys.modules]; "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)
