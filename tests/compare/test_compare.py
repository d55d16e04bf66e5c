import json

import numpy as np
import pytest
import torch

from featgeom.errors import ConfigError, ShapeError
from featgeom.compare import GroundTruth, compare
from featgeom.family import FamilyConfig, build_family

FIVE = ("svcca", "svcca_legacy", "rsa", "cka", "procrustes")  # the metrics a 12-latent SAE's pairings can all run


class LinearSAE:
    """A minimal SAELens-style SAE: encode(x) = relu((x - b) W_dec^T - t), decoder rows W_dec."""

    def __init__(self, w_dec: np.ndarray, bias: np.ndarray, threshold: float = 1.0):
        self.W_dec = torch.from_numpy(np.asarray(w_dec, dtype=np.float32))
        self.b = torch.from_numpy(np.asarray(bias, dtype=np.float32))
        self.t = threshold

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu((x - self.b) @ self.W_dec.T - self.t)


@pytest.fixture(scope="module")
def fam(tiny_world):
    cfg = FamilyConfig.from_dict({"world": tiny_world.config.to_dict(),
                                  "variants": [{"name": "same"}, {"name": "rot", "basis_rotation_angle": 60}]})
    return build_family(cfg, world=tiny_world)


@pytest.fixture(scope="module")
def batch(fam):
    return fam.sample(6000, seed=5, with_features=True)


def oracle(fam, name):
    m = fam.member(name)
    return LinearSAE(m.feature_vectors, m.bias)


def test_identical_members_are_fully_universal(fam, batch):
    result = compare(oracle(fam, "base"), oracle(fam, "same"), batch.hidden["base"], batch.hidden["same"],
                     n_perm=99, ground_truth=GroundTruth.from_family(fam, "base", "same", batch.features))
    mutual = result.pairings["mutual"]
    assert result.nulls == ("repair",)
    assert mutual["svcca"]["observed"] == pytest.approx(1.0, abs=1e-6)
    assert mutual["svcca"]["nulls"]["repair"]["p_value"] == pytest.approx(1 / 100)
    assert mutual["svcca"]["nulls"]["repair"]["kind"] == "repair"
    assert mutual["mean_corr"] == pytest.approx(1.0, abs=1e-6)
    gt = result.ground_truth
    assert gt["gt_mcc"] == pytest.approx(1.0, abs=1e-6)
    assert gt["correspondence_accuracy"]["mutual"] == 1.0
    # one footing: identical members with identical (oracle) SAEs have no universality gap
    assert gt["empirical_mcc"] == pytest.approx(1.0, abs=1e-6)
    assert gt["universality_gap"] == pytest.approx(0.0, abs=1e-6)
    assert gt["universality_gap"] == pytest.approx(gt["gt_mcc"] - gt["empirical_mcc"])
    json.loads(result.to_json())


def test_rotation_keeps_activation_pairing_but_not_raw_cosines(fam, batch):
    result = compare(oracle(fam, "base"), oracle(fam, "rot"), batch.hidden["base"], batch.hidden["rot"],
                     n_perm=99, ground_truth=GroundTruth.from_family(fam, "base", "rot", batch.features))
    mutual = result.pairings["mutual"]
    assert result.ground_truth["correspondence_accuracy"]["mutual"] == 1.0
    assert mutual["svcca"]["observed"] == pytest.approx(1.0, abs=1e-5)  # rotation invariant
    assert set(compare(oracle(fam, "base"), oracle(fam, "rot"), batch.hidden["base"], batch.hidden["rot"],
                       n_perm=19, modes="mutual").pairings) == {"mutual"}  # a single name is one mode
    assert mutual["svcca"]["nulls"]["repair"]["p_value"] < 0.05
    assert result.ground_truth["mcc_a"] == pytest.approx(1.0, abs=1e-6)


def test_bad_inputs(fam, batch):
    sae = oracle(fam, "base")
    with pytest.raises(ShapeError, match="acts_a"):
        compare(sae, sae, batch.hidden["base"][:10], batch.hidden["base"][:9])
    with pytest.raises(ConfigError, match="modes"):
        compare(sae, sae, batch.hidden["base"], batch.hidden["base"], modes=("closest",))
    with pytest.raises(ConfigError, match="modes"):
        compare(sae, sae, batch.hidden["base"], batch.hidden["base"], modes=("mutual", "mutual"))
    with pytest.raises(ConfigError, match="nulls"):
        compare(sae, sae, batch.hidden["base"], batch.hidden["base"], nulls=("exact",))
    with pytest.raises(ShapeError, match="acts_a: has width 31"):
        compare(sae, sae, batch.hidden["base"][:, :31], batch.hidden["base"][:, :31])
    with pytest.raises(ConfigError, match="sae_b: expected an SAE"):
        compare(sae, None, batch.hidden["base"], batch.hidden["base"])


def test_top_k_path_reports_missing_empirical_mcc_explicitly(fam, batch, monkeypatch):
    import sys

    monkeypatch.setattr(sys.modules["featgeom.compare"], "FULL_MATRIX_LIMIT", 1)
    result = compare(oracle(fam, "base"), oracle(fam, "same"), batch.hidden["base"], batch.hidden["same"],
                     n_perm=19, ground_truth=GroundTruth.from_family(fam, "base", "same", batch.features))
    gt = result.ground_truth
    assert gt["empirical_mcc"] is None and gt["universality_gap"] is None
    assert "top-k" in gt["empirical_mcc_unavailable"]
    assert gt["correspondence_accuracy"]["mutual"] == 1.0
    json.loads(result.to_json())


def _planted_latents(seed: int = 3):
    """Sparse latents of two SAEs (B's first 40 latents copy A's), 16-dim decoders (B's rotated)."""
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    lat_a = sp.random(3000, 50, density=0.1, format="csr", random_state=seed, data_rvs=rng.random)
    own = sp.random(3000, 20, density=0.1, format="csr", random_state=seed + 1, data_rvs=rng.random)
    lat_b = sp.hstack([lat_a[:, :40], own], format="csr")
    dec_a = rng.standard_normal((50, 16))
    rotation = np.linalg.qr(rng.standard_normal((16, 16)))[0]
    dec_b = np.vstack([dec_a[:40] @ rotation, rng.standard_normal((20, 16))])
    return lat_a, lat_b, dec_a, dec_b


def test_compare_latents_finds_the_planted_pairs_with_both_nulls():
    from featgeom.compare import compare_latents

    lat_a, lat_b, dec_a, dec_b = _planted_latents()
    single = compare_latents(lat_a, lat_b, dec_a, dec_b, n_perm=199, nulls=("repair", "shuffle"))
    double = compare_latents(lat_a, lat_b, dec_a, dec_b, n_perm=199, precision="float64", nulls=("shuffle",))
    pairs = single.pairs["mutual"]
    assert set(range(40)) <= {a for a, b in zip(pairs.idx_a, pairs.idx_b) if a == b}
    mutual = single.pairings["mutual"]
    assert mutual["svcca"]["observed"] > 0.9
    for name in ("repair", "shuffle"):
        assert mutual["svcca"]["nulls"][name]["p_value"] == pytest.approx(1 / 200)
    assert mutual["svcca"]["nulls"]["shuffle"]["precision"] == "float32"
    for mode, summary in double.pairings.items():
        for metric in ("svcca", "svcca_legacy", "rsa", "cka", "procrustes"):
            got, want = single.pairings[mode][metric], summary[metric]
            assert got["observed"] == pytest.approx(want["observed"], abs=1e-12)
            got, want = got["nulls"]["shuffle"], want["nulls"]["shuffle"]
            assert got["p_value"] == want["p_value"]
            assert got["null_mean"] == pytest.approx(want["null_mean"], abs=1e-5)


def test_compare_latents_rejects_decoders_that_do_not_match_the_latents():
    from featgeom.compare import compare_latents

    lat_a, lat_b, dec_a, dec_b = _planted_latents()
    with pytest.raises(ShapeError, match="dec_b: has 59 rows but lat_b has 60 latents"):
        compare_latents(lat_a, lat_b, dec_a, dec_b[:59], n_perm=19)
    with pytest.raises(ConfigError, match="precision"):
        compare_latents(lat_a, lat_b, dec_a, dec_b, n_perm=19, precision="half")


def test_keep_masks_and_threshold_shape_the_pairing_and_its_null():
    from featgeom.compare import compare_latents

    lat_a, lat_b, dec_a, dec_b = _planted_latents()
    keep_a = np.zeros(50, dtype=bool)
    keep_a[:30] = True
    result = compare_latents(lat_a, lat_b, dec_a, dec_b, n_perm=19, modes=("mutual",), keep_a=keep_a, min_corr=0.0)
    pairs = result.pairs["mutual"]
    assert pairs.idx_a.max() < 30 and np.all(pairs.score >= 0.0)
    assert result.pairings["mutual"]["svcca"]["nulls"]["repair"]["p_value"] == pytest.approx(1 / 20)
    with pytest.raises(ShapeError, match="keep_b"):
        compare_latents(lat_a, lat_b, dec_a, dec_b, n_perm=19, keep_b=np.ones(3, dtype=bool))


def _small_sae(seed: int = 0, n_latents: int = 24, d: int = 12) -> LinearSAE:
    rng = np.random.default_rng(seed)
    return LinearSAE(rng.standard_normal((n_latents, d)), np.zeros(d), threshold=0.5)


class _RefusesToEncode(LinearSAE):
    def encode(self, x):
        raise AssertionError("encode() must not run before the options are checked")


def test_too_few_samples_are_refused_before_pairing():
    sae = _small_sae()
    acts = np.random.default_rng(1).standard_normal((300, 12))
    with pytest.raises(ShapeError, match=r"acts_a, acts_b: 5 samples \(rows\) are too few .* at least 100"):
        compare(sae, sae, acts[:5], acts[:5], n_perm=19)
    lat_a, lat_b, dec_a, dec_b = _planted_latents()
    from featgeom.compare import compare_latents

    with pytest.raises(ShapeError, match="lat_a, lat_b: 99 samples"):
        compare_latents(lat_a[:99], lat_b[:99], dec_a, dec_b, n_perm=19)
    with pytest.raises(ShapeError, match="lat_a has 99 rows but lat_b has 100"):
        compare_latents(lat_a[:99], lat_b[:100], dec_a, dec_b, n_perm=19)


@pytest.mark.parametrize(("n_perm", "message"), [
    (1, r"n_perm: must be an integer >= 19, got 1"),
    (18, r"n_perm: must be an integer >= 19, got 18"),
    (10**12, r"n_perm: 1,000,000,000,000 permutations x 7 score\(s\) need .* GiB .* use at most"),
])
def test_unusable_n_perm_is_refused_before_any_work(n_perm, message):
    from featgeom.compare import compare_latents

    sae = _RefusesToEncode(np.eye(12, dtype=np.float32), np.zeros(12, dtype=np.float32))
    acts = np.random.default_rng(1).standard_normal((300, 12))
    with pytest.raises(ConfigError, match=message):
        compare(sae, sae, acts, acts, n_perm=n_perm, modes="mutual")
    lat_a, lat_b, dec_a, dec_b = _planted_latents()
    with pytest.raises(ConfigError, match=message):
        compare_latents(lat_a, lat_b, dec_a, dec_b, n_perm=n_perm, modes="mutual")


def test_a_single_mode_name_is_one_mode():
    from featgeom.compare import compare_latents

    lat_a, lat_b, dec_a, dec_b = _planted_latents()
    result = compare_latents(lat_a, lat_b, dec_a, dec_b, n_perm=19, modes="mutual")
    assert set(result.pairings) == {"mutual"} and set(result.pairs) == {"mutual"}


def test_saes_whose_encode_does_not_fit_get_one_clear_error():
    # (acts narrower than the SAE and sae=None: test_bad_inputs)
    acts = np.random.default_rng(2).standard_normal((300, 12))
    sae = _small_sae()
    too_wide = _small_sae()
    too_wide.encode = lambda x: torch.zeros((x.shape[0], 25))  # 25 latents, but 24 decoder rows
    with pytest.raises(ShapeError, match=r"sae_b: encode\(\) returned Tensor of shape \(300, 25\) .* \(300, 24\)"):
        compare(sae, too_wide, acts, acts, n_perm=19)
    broken = _small_sae()
    broken.b = torch.zeros(5)  # encode() cannot broadcast its bias
    with pytest.raises(ConfigError, match=r"sae_a: encode\(\) failed on a \(300, 12\) batch of acts_a \(RuntimeError"):
        compare(broken, sae, acts, acts, n_perm=19)


class _Float64SAE:
    """A float64 SAE whose encode() goes through F.linear, which (like real SAE kernels) refuses
    float32 inputs."""

    def __init__(self, w_dec: torch.Tensor):
        self.W_dec = w_dec.double()

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(torch.nn.functional.linear(x, self.W_dec) - 0.5)


def test_a_float64_sae_gets_batches_in_its_own_dtype():
    acts = np.random.default_rng(3).standard_normal((300, 12))
    single = _small_sae()
    double = _Float64SAE(single.W_dec)
    # 12 latents: too few pairs for mutual_knn (k + 2 = 12 pairs in every null draw), so the five others
    want = compare(single, single, acts, acts, n_perm=19, modes="mutual", metrics=FIVE).pairings["mutual"]
    got = compare(double, double, acts, acts, n_perm=19, modes="mutual", metrics=FIVE).pairings["mutual"]
    assert got["n_pairs"] == want["n_pairs"]
    assert got["svcca"]["observed"] == pytest.approx(want["svcca"]["observed"], abs=1e-5)


def test_tensors_that_require_grad_are_accepted():
    from featgeom.compare import compare_latents

    acts = np.random.default_rng(4).standard_normal((300, 12))
    sae = _small_sae()
    sae.W_dec.requires_grad_(True)  # an SAE being trained
    want = compare(sae, sae, acts, acts, n_perm=19, modes="mutual", metrics=FIVE).pairings["mutual"]
    got = compare(sae, sae, torch.tensor(acts, requires_grad=True), torch.tensor(acts), n_perm=19,
                  modes="mutual", metrics=FIVE).pairings["mutual"]
    assert got == want
    lat_a, lat_b, dec_a, dec_b = _planted_latents()
    dense_a, dense_b = torch.tensor(lat_a.toarray(), requires_grad=True), torch.tensor(lat_b.toarray())
    got = compare_latents(dense_a, dense_b, torch.tensor(dec_a, requires_grad=True), dec_b, n_perm=19,
                          modes="mutual")
    assert got.pairings == compare_latents(lat_a, lat_b, dec_a, dec_b, n_perm=19, modes="mutual").pairings
