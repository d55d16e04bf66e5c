"""The sparse TopK / BatchTopK training pass equals SAELens's own training_forward_pass:
same loss terms, outputs, activations and BatchTopK threshold, and the same gradients."""

import copy
import importlib

import pytest
import torch

from featgeom.sae import SAETrainConfig
from featgeom.sae.arch import build_training_sae
from featgeom.sae.sparse import sparse_forward_pass, supports_sparse


train_module = importlib.import_module("featgeom.sae.train")  # the package re-exports train(), not the module


def step_input(x, dead):
    from sae_lens.saes.sae import TrainStepInput

    return TrainStepInput(sae_in=x, coefficients={}, dead_neuron_mask=dead, n_training_steps=0, is_logging_step=False)


def both_passes(arch: str, n_dead: int, rescale: bool = True, seed: int = 0):
    """(SAELens's output, ours, SAELens's SAE, our SAE) after one backward pass each, on equal copies."""
    torch.manual_seed(seed)
    cfg = SAETrainConfig(arch=arch, width=96, l0=5, batch_size=64, samples=64 * 10, seed=seed)
    ref = build_training_sae(cfg, 32)
    ref.cfg.rescale_acts_by_decoder_norm = rescale
    with torch.no_grad():  # move away from the symmetric initialisation
        ref.b_dec.normal_()
        ref.b_enc.normal_(0, 0.2)
        ref.W_dec.mul_(1 + torch.rand(96, 1))
    ours = copy.deepcopy(ref)
    x = torch.randn(64, 32) * 2
    dead = torch.zeros(96, dtype=torch.bool)
    dead[torch.randperm(96)[:n_dead]] = True
    out_ref = ref.training_forward_pass(step_input(x, dead))
    out_ref.loss.backward()
    assert supports_sparse(ours)
    out = sparse_forward_pass(ours, step_input(x, dead))
    out.loss.backward()
    return out_ref, out, ref, ours


@pytest.mark.parametrize("arch", ["topk", "batchtopk"])
@pytest.mark.parametrize("n_dead", [0, 7, 60])  # none; fewer than d/2 = 16; more
@pytest.mark.parametrize("rescale", [True, False])
def test_sparse_pass_equals_saelens(arch, n_dead, rescale):
    out_ref, out, ref, ours = both_passes(arch, n_dead, rescale)
    assert torch.equal(out.feature_acts, out_ref.feature_acts)
    torch.testing.assert_close(out.sae_out, out_ref.sae_out, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out.loss, out_ref.loss, rtol=1e-5, atol=1e-5)
    for key, value in out_ref.losses.items():
        torch.testing.assert_close(out.losses[key], value, rtol=1e-5, atol=1e-5)
    if n_dead:
        assert out.losses["auxiliary_reconstruction_loss"] > 0
    for (name, p_ref), p in zip(ref.named_parameters(), ours.parameters()):
        torch.testing.assert_close(p.grad, p_ref.grad, rtol=1e-4, atol=1e-5, msg=name)
    if arch == "batchtopk":
        assert ours.topk_threshold == ref.topk_threshold


def test_comparison_catches_a_wrong_gradient():
    """The gradient check is not vacuous: dropping the decoder-norm rescaling shows up."""
    out_ref, out, ref, ours = both_passes("topk", 0, rescale=True)
    ours.zero_grad()
    ours.cfg.rescale_acts_by_decoder_norm = False  # a different pass than SAELens's
    sparse_forward_pass(ours, step_input(out_ref.sae_in, None)).loss.backward()
    with pytest.raises(AssertionError):
        torch.testing.assert_close(ours.W_enc.grad, ref.W_enc.grad, rtol=1e-4, atol=1e-5)


def test_only_supported_configurations_take_the_sparse_path():
    for arch in ("standard", "jumprelu", "gated", "matryoshka_batchtopk", "matching_pursuit"):
        assert not supports_sparse(build_training_sae(SAETrainConfig(arch=arch, width=16, l0=2, revival="resample"), 8))
    sae = build_training_sae(SAETrainConfig(arch="topk", width=16, l0=2), 8)
    assert supports_sparse(sae)
    handle = sae.hook_sae_recons.register_forward_hook(lambda module, inputs, output: output)
    assert not supports_sparse(sae)  # hooks see dense tensors only on SAELens's path
    handle.remove()


@pytest.mark.parametrize("arch", ["topk", "batchtopk"])
def test_training_with_the_sparse_pass_matches_the_dense_pass(family, quick, arch, monkeypatch):
    cfg = quick(arch)
    sparse = train_module.train(family, "base", cfg, eval_samples=2_000)
    monkeypatch.setattr(train_module, "supports_sparse", lambda sae: False)
    dense = train_module.train(family, "base", cfg, eval_samples=2_000)
    for name, value in dense.sae.state_dict().items():
        torch.testing.assert_close(sparse.sae.state_dict()[name], value, rtol=1e-3, atol=1e-4, msg=name)
