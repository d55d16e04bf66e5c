"""Task 3.2: the world.target_rho_mm axis in a spec, the feature_splitting analysis on planted
decoders, and the mp_exploitation finding on hand-made rows."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from featgeom.cli import exit_code
from featgeom.errors import ConfigError
from featgeom.experiments.analyses import (
    SPLIT_COS,
    chance_split_fraction,
    split_features,
)
from featgeom.experiments.findings import run_findings
from featgeom.experiments.spec import ExperimentSpec
from featgeom.metrics import latents_per_feature, superposition_exploitation
from featgeom.world.superposition import hidden_dim_for_rho_mm

TARGET = "world.target_rho_mm"


def spec_with(axes: list[dict]) -> ExperimentSpec:
    return ExperimentSpec.from_dict({"name": "x", "description": "d", "axes": axes, "analyses": ["recovery"],
                                     "preset": "tiny"})


# --- the axis ---------------------------------------------------------------------------------


def test_target_axis_sets_the_searched_hidden_dim_and_keeps_the_target_as_the_condition():
    from featgeom.world import preset

    spec = spec_with([{"axis": TARGET, "values": [0.3, 0.4]}])
    worlds = spec.world_points()
    assert [w.values for w in worlds] == [{TARGET: 0.3}, {TARGET: 0.4}]
    dims = [spec.family_config(w)["world"]["hidden_dim"] for w in worlds]
    assert dims == [hidden_dim_for_rho_mm(preset("tiny"), t).hidden_dim for t in (0.3, 0.4)]
    assert dims[0] > dims[1]  # more superposition, fewer dimensions
    assert "target_rho_mm" not in spec.family_config(worlds[0])["world"]  # not a WorldConfig field


def test_target_axis_follows_the_other_world_axes():
    """With world.num_features next to it, each world point searches with its own features."""
    spec = spec_with([{"axis": "world.num_features", "values": [96, 160]}, {"axis": TARGET, "values": [0.4]}])
    dims = [spec.family_config(w)["world"]["hidden_dim"] for w in spec.world_points()]
    assert dims[0] < dims[1]


@pytest.mark.parametrize("axes, match", [
    ([{"axis": TARGET, "values": [0.3, 0.05]}],
     r"axes\.world\.target_rho_mm\.values\[1\]: 0\.05 makes an invalid world \(target_rho_mm: 0\.05 is not reachable"),
    ([{"axis": TARGET, "values": [2]}], r"values\[0\]: 2 makes an invalid world \(target_rho_mm: must be a rho_mm"),
    ([{"axis": "world.hidden_dim", "values": [32]}, {"axis": TARGET, "values": [0.3]}],
     "axes.world.target_rho_mm: at hidden_dim=32, target_rho_mm=0.3: target_rho_mm: chooses the hidden dimension"),
])
def test_bad_targets_name_the_axis_and_the_value(axes, match):
    with pytest.raises(ConfigError, match=match):
        spec_with(axes)


def test_unreachable_target_is_one_error_line_exit_2_and_nothing_written(tmp_path, capsys):
    data = {"name": "x", "description": "d", "axes": [{"axis": TARGET, "values": [0.05]}], "analyses": ["recovery"]}
    path = tmp_path / "x.yaml"
    path.write_text(yaml.safe_dump(data))
    out = tmp_path / "out"
    code = exit_code(["run", str(path), "--preset", "tiny", "--out", str(out), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert err[0].startswith("error: ") and "axes.world.target_rho_mm.values[0]: 0.05" in err[0]
    assert "not reachable" in err[0]
    assert not out.exists()


# --- the analysis -----------------------------------------------------------------------------


def planted_split(d: int = 10, n_features: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Features e_0..e_7 in R^10; a decoder with e_1..e_7 exactly and feature 0 split over three
    latents e_0 + e_8, e_0 + e_9, e_0 - e_8 - e_9 (|cos| 0.71, 0.71, 0.58 with e_0; no two of them
    reach cos 0.9, the three span it)."""
    features = np.eye(d)[:n_features]
    split = np.zeros((3, d))
    split[:, 0] = 1.0
    split[0, 8], split[1, 9], split[2, 8:] = 1.0, 1.0, -1.0
    return np.vstack([np.eye(d)[1:n_features], split]), features


def test_a_feature_split_over_three_latents_scores_three_and_is_the_most_split():
    decoder, features = planted_split()
    counts = latents_per_feature(decoder, features, target=0.9)
    assert counts.tolist() == [3, 1, 1, 1, 1, 1, 1, 1]
    assert superposition_exploitation(decoder, features, target=0.9) == pytest.approx((3 + 7) / 8)
    found = split_features(decoder, features)
    assert found.split.tolist() == [True] + [False] * 7
    assert found.most_split == 0 and found.own[0] == 3 and found.joint[0] == pytest.approx(1.0)
    assert sorted(found.latents.tolist()) == [7, 8, 9]
    assert np.allclose(sorted(found.cos), sorted([1 / np.sqrt(2), 1 / np.sqrt(2), 1 / np.sqrt(3)]))
    # the residual direction is where the latents' parts off the feature spread most, here -(e_8 + e_9):
    # the third latent lies in the plane (length 1), the others reach it with half their residual
    length = found.cos ** 2 + found.perp ** 2
    assert np.allclose(length, [0.75, 0.75, 1.0]) and found.perp[0] >= 0


def test_a_decoder_equal_to_the_features_splits_nothing():
    _, features = planted_split()
    found = split_features(features, features)
    assert superposition_exploitation(features, features, target=0.9) == 1.0
    assert not found.split.any() and found.most_split == -1 and found.latents.size == 0


def test_two_near_copies_of_a_feature_are_not_a_split_unless_they_reconstruct_it_better():
    """Two latents both equal to feature 0 own it but span nothing more than one of them: no split."""
    _, features = planted_split()
    decoder = np.vstack([features, features[:1]])
    found = split_features(decoder, features)
    assert found.own[0] == 2 and not found.split.any()


def test_a_feature_one_latent_already_reconstructs_is_not_split_by_its_partial_copies():
    """Feature 0 = latent e_0 exactly, plus two latents at cos 0.7 with it that add to the span
    (joint > best, as a run on `small` had: 18 latents owned by a feature one latent matched at cos
    1.00): not a split, since one latent alone reaches the target."""
    _, features = planted_split()
    partial = np.zeros((2, 10))
    partial[:, 0], partial[0, 8], partial[1, 9] = 0.7, np.sqrt(1 - 0.49), np.sqrt(1 - 0.49)
    found = split_features(np.vstack([features, partial]), features)
    assert found.own[0] == 3 and not found.split.any() and found.most_split == -1


def test_latents_below_the_cosine_threshold_are_not_owned():
    """A latent at |cos| just below SPLIT_COS with its best feature belongs to no feature."""
    _, features = planted_split()
    weak = np.zeros((1, 10))
    weak[0, 0], weak[0, 9] = SPLIT_COS * 0.99, np.sqrt(1 - (SPLIT_COS * 0.99) ** 2)
    found = split_features(np.vstack([features, weak]), features)
    assert found.own.tolist() == [1] * 8


def test_chance_split_fraction_is_deterministic_and_small_in_many_dimensions():
    features = np.eye(64)[:32]
    assert chance_split_fraction(40, features, 3) == chance_split_fraction(40, features, 3)
    assert chance_split_fraction(40, features, 3) == 0.0  # random directions in R^64 rarely reach |cos| 0.5


# --- the finding ------------------------------------------------------------------------------


def row(analysis: str, target: float, arch: str, seed: int, metric: str, value: float | None) -> dict:
    cond = {TARGET: target, "sae.arch": arch}
    return {"analysis": analysis, "condition_json": json.dumps(cond, sort_keys=True), "seed_a": seed, "seed_b": seed,
            "replicate": 0, "metric": metric, "value": value}


def sae_rows(target: float, arch: str, ev: float, mcc: float, exploitation: float | None, chance: float = 0.3,
             rho: float | None = None) -> list[dict]:
    """Two seeds of one SAE cell (seed 1 offset by +0.01 on every number)."""
    out = []
    for seed in (0, 1):
        e = 0.01 * seed
        out += [row("recovery", target, arch, seed, "explained_variance", ev + e),
                row("recovery", target, arch, seed, "mcc", mcc + e),
                row("recovery", target, arch, seed, "mcc_chance", chance),
                row("recovery", target, arch, seed, "rho_mm", rho or target),
                row("feature_splitting", target, arch, seed, "exploitation",
                    None if exploitation is None else exploitation + e),
                row("feature_splitting", target, arch, seed, "hidden_dim", 60.0),
                row("feature_splitting", target, arch, seed, "split_fraction", 0.1)]
    return out


def test_mp_exploitation_held_where_the_planted_numbers_say_so():
    rows = (sae_rows(0.3, "matching_pursuit", ev=0.95, mcc=0.50, exploitation=3.0)
            + sae_rows(0.3, "standard", ev=0.80, mcc=0.60, exploitation=1.5))
    (finding,) = run_findings(["mp_exploitation"], rows)
    claims = finding.numbers["target_rho_mm=0.3"]["claims"]
    assert claims == {"explained_variance": "held in every seed", "mcc": "held in every seed",
                      "exploitation": "held in every seed"}
    text = " ".join(finding.sentences)
    assert "explained variance 0.955 vs 0.805" in text and "MCC 0.505 vs 0.605" in text
    assert "held at 1 of 1 testable worlds" in text


def test_mp_exploitation_not_held_and_not_testable_against_an_l1_sae_at_chance():
    rows = (sae_rows(0.3, "matching_pursuit", ev=0.70, mcc=0.70, exploitation=1.2)   # L1 learned: claims fail
            + sae_rows(0.3, "standard", ev=0.80, mcc=0.60, exploitation=1.5)
            + sae_rows(0.4, "matching_pursuit", ev=0.95, mcc=0.50, exploitation=3.0)  # L1 at chance there
            + sae_rows(0.4, "standard", ev=0.30, mcc=0.42, exploitation=None, chance=0.41))
    (finding,) = run_findings(["mp_exploitation"], rows)
    low, high = finding.numbers["target_rho_mm=0.3"]["claims"], finding.numbers["target_rho_mm=0.4"]["claims"]
    assert low == {"explained_variance": "not held", "mcc": "not held", "exploitation": "not held"}
    assert high == {"explained_variance": "held in every seed", "mcc": "not testable", "exploitation": "not testable"}
    text = " ".join(finding.sentences)
    assert "standard L1 is at chance (random decoder 0.410" in text and "the MCC claim is not testable here" in text
    assert "lower MCC than standard L1 (where L1 learned): held at 0 of 1 testable worlds (2 in all)" in text


def test_mp_exploitation_held_on_the_means_only():
    """MP above L1 on average but not in every seed pair: 'held', not 'held in every seed'."""
    rows = (sae_rows(0.3, "matching_pursuit", ev=0.805, mcc=0.5, exploitation=2.0)
            + sae_rows(0.3, "standard", ev=0.80, mcc=0.6, exploitation=1.0))
    (finding,) = run_findings(["mp_exploitation"], rows)
    assert finding.numbers["target_rho_mm=0.3"]["claims"]["explained_variance"] == "held"


def test_mp_exploitation_without_both_architectures_says_why():
    (finding,) = run_findings(["mp_exploitation"], sae_rows(0.3, "matching_pursuit", 0.9, 0.5, 2.0))
    assert finding.sentences == [("not computed: mp_exploitation: no world with recovery rows of both "
                                  "matching_pursuit and standard")]


def test_the_figure_draws_the_stored_latents_of_a_feature_split_over_more_than_ten(tmp_path):
    """The rows keep the first 10 latents of the most-split feature; one owning 12 is drawn with
    those 10 (a run on `small` owned 12 and the report failed on the 11th)."""
    from featgeom.report.experiment import splitting_figure

    metrics = {"most_split_latents": 12, "most_split_feature": 3, "rho_mm": 0.4, "hidden_dim": 57,
               "split_fraction": 0.2, **{f"split_cos_{i}": 0.9 - 0.05 * i for i in range(1, 11)},
               **{f"split_perp_{i}": 0.1 * (-1) ** i for i in range(1, 11)}}
    rows = [{"analysis": "feature_splitting", "metric": m, "value": v, "replicate": 0, "seed_a": 0,
             "condition_json": json.dumps({"world.target_rho_mm": 0.4, "sae.arch": "matching_pursuit"})}
            for m, v in metrics.items()]
    (figure,) = splitting_figure(tmp_path, "mp", rows)
    assert "the 10 latents most aligned with it are drawn" in figure and list(tmp_path.glob("mp-splitting*.png"))
