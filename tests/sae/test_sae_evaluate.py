"""Our evaluation agrees with SAELens's eval_sae_on_synthetic_data on the same SAE and samples."""

import numpy as np
import pytest
import torch

from featgeom.errors import ShapeError
from featgeom.sae import evaluate, evaluate_on_member, train
from featgeom.sae.evaluate import heldout_batches


class _Replay:
    """An activation generator for SAELens that hands out pre-drawn feature activations in order."""

    def __init__(self, acts: np.ndarray) -> None:
        self.acts = torch.from_numpy(acts)
        self.pos = 0

    def sample(self, n: int) -> torch.Tensor:
        out = self.acts[self.pos:self.pos + n]
        self.pos += n
        return out


def _saelens_eval(sae, member, acts: np.ndarray, batch_size: int):
    from sae_lens.synthetic import FeatureDictionary
    from sae_lens.synthetic.evals import eval_sae_on_synthetic_data

    fd = FeatureDictionary(member.num_features, member.hidden_dim, bias=True, initializer=None)
    fd.feature_vectors.data = torch.from_numpy(member.feature_vectors.copy())
    fd.bias.data = torch.from_numpy(member.bias.copy())
    return eval_sae_on_synthetic_data(sae, fd, _Replay(acts), num_samples=acts.shape[0], batch_size=batch_size)


@pytest.mark.parametrize(("arch", "member"), [("batchtopk", "rot"), ("standard", "narrow"), ("matching_pursuit", "base")])
def test_metrics_agree_with_saelens(family, quick, arch, member):
    trained = train(family, member, quick(arch, seed=5), eval_samples=2048)
    batches = list(heldout_batches(family, member, 6000, seed=11))
    ours = evaluate(trained.sae, family.member(member).feature_vectors, batches)
    acts = np.concatenate([a.toarray() for _, a in batches])
    ref = _saelens_eval(trained.sae, family.member(member), acts, batch_size=4096)
    pairs = {"mcc": ref.mcc, "uniqueness": ref.uniqueness, "l0": ref.sae_l0, "true_l0": ref.true_l0,
             "dead_latents": ref.dead_latents, "shrinkage": ref.shrinkage,
             "explained_variance": ref.explained_variance, "precision": ref.classification.precision,
             "recall": ref.classification.recall, "f1": ref.classification.f1_score,
             "accuracy": ref.classification.accuracy}
    for name, value in pairs.items():
        assert ours[name] == pytest.approx(value, abs=1e-4), name
    assert 0 < ours["mcc"] <= 1 and ours["l0"] > 0


def test_planted_decoder_scores_perfect_mcc(family):
    """An SAE whose decoder rows ARE the true directions has MCC 1 and uniqueness 1."""
    from sae_lens import StandardSAE, StandardSAEConfig

    m = family.member("base")
    sae = StandardSAE(StandardSAEConfig(d_in=m.hidden_dim, d_sae=m.num_features))
    with torch.no_grad():
        sae.W_dec.copy_(torch.from_numpy(m.feature_vectors))
    metrics = evaluate(sae, m.feature_vectors, heldout_batches(family, "base", 1000, seed=0))
    assert metrics["mcc"] == pytest.approx(1.0, abs=1e-6)
    assert metrics["uniqueness"] == 1.0


def test_input_dim_mismatch_is_a_shape_error(family, quick):
    trained = train(family, "base", quick("topk"), eval_samples=512)
    with pytest.raises(ShapeError, match="input dim 32 differs from member 'narrow'"):
        evaluate_on_member(trained.sae, family, "narrow", 512)


def test_f_beta_by_hand():
    """P = 0.5, R = 1: F1 = 2/3, F0.5 = 1.25 * 0.5 / (0.125 + 1) = 5/9, F2 = 5 * 0.5 / (2 + 1) = 5/6;
    P = R = 0 gives 0, not NaN; beta 1 is exactly the F1 the evaluation reports."""
    import torch

    from featgeom.sae.evaluate import f_beta

    p, r = torch.tensor([0.5, 0.0], dtype=torch.float64), torch.tensor([1.0, 0.0], dtype=torch.float64)
    assert f_beta(p, r, 1.0).tolist() == pytest.approx([2 / 3, 0.0])
    assert f_beta(p, r, 0.5).tolist() == pytest.approx([5 / 9, 0.0])
    assert f_beta(p, r, 2.0).tolist() == pytest.approx([5 / 6, 0.0])
