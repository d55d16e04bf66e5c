"""Sparse training step for SAELens's TopK and BatchTopK training SAEs (same numbers, less work).

SAELens's ``training_forward_pass`` decodes the dense (B, W) activation matrix and back-propagates
through dense (B, d) x (d, W) products, although only the selected (row, latent) pairs E (k per
row on average) carry activations or gradients.  :func:`sparse_forward_pass` returns the same
``TrainStepOutput`` (loss, losses, feature_acts, sae_out) and leaves the same gradients:

* selection: the SAE's own ``encode_with_hidden_pre`` under ``no_grad`` (one dense GEMM + top-k);
* pre_e = sae_in[r_e] . W_enc[:, j_e] + b_enc[j_e] re-enters autograd through :class:`SelectedPre`,
  whose backward is O(|E| d): dW_enc[:, j] = sum_{e: j_e = j} g_e sae_in[r_e],
  db_enc[j] = sum_{e: j_e = j} g_e, db_dec = -W_enc db_enc (sae_in = x - b_dec);
* decode: x_hat_r = sum_{e in row r} relu(pre_e n_j) / n_j W_dec[j_e] + b_dec (n = decoder row norms
  when ``rescale_acts_by_decoder_norm``) via ``embedding_bag`` (gathers |E| rows, not W);
* the TopK auxiliary loss on dead latents runs on the (B, n_dead) sub-matrix of dead columns.

Tests compare loss, outputs and every gradient with SAELens's own pass
(``tests/sae/test_sae_sparse.py``).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from featgeom.sae.architectures import REGISTRY

SPARSE_ARCHS = tuple(a.name for a in REGISTRY.values() if a.sparse_pass)  # topk, batchtopk


def supports_sparse(sae: Any) -> bool:
    """True when :func:`sparse_forward_pass` reproduces ``sae.training_forward_pass`` exactly:
    a TopK / BatchTopK training SAE on float32 with no activation normalisation, reshaping,
    error term, sparse activations or hooks."""
    cfg = sae.cfg
    return (cfg.architecture() in SPARSE_ARCHS and cfg.normalize_activations == "none"
            and cfg.reshape_activations == "none" and cfg.dtype == "float32"
            and not getattr(cfg, "use_sparse_activations", False) and not sae.use_error_term
            and not any(m._forward_hooks or m._backward_hooks for m in sae.modules()))


class SelectedPre(torch.autograd.Function):
    """pre_e = sae_in[r_e] . W_enc[:, j_e] + b_enc[j_e] at the selected pairs; the forward value is
    given (the dense no-grad pass computed it), the backward is sparse (module docstring)."""

    @staticmethod
    def forward(ctx: Any, value: torch.Tensor, w_enc: torch.Tensor, b_enc: torch.Tensor, b_dec: torch.Tensor,
                sae_in: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, b_dec_in: float) -> torch.Tensor:
        ctx.save_for_backward(w_enc, sae_in, rows, cols)
        ctx.b_dec_in = b_dec_in
        return value.clone()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor):
        w_enc, sae_in, rows, cols = ctx.saved_tensors
        by_latent = torch.argsort(cols, stable=True)
        counts = torch.bincount(cols, minlength=w_enc.shape[1])
        offsets = torch.cumsum(counts, 0) - counts
        # (W, d): row j = sum over pairs of latent j of g_e sae_in[r_e]
        g_w = F.embedding_bag(rows[by_latent], sae_in, offsets, mode="sum", per_sample_weights=grad[by_latent])
        g_b = torch.zeros(w_enc.shape[1], dtype=grad.dtype, device=grad.device).index_add_(0, cols, grad)
        g_dec = -ctx.b_dec_in * (w_enc @ g_b)
        return None, g_w.T, g_b, g_dec, None, None, None, None


def sparse_forward_pass(sae: Any, step: Any) -> Any:
    """``sae.training_forward_pass(step)`` for a TopK / BatchTopK SAE (see :func:`supports_sparse`),
    computed sparsely; same TrainStepOutput, same gradients (to float rounding)."""
    from sae_lens.saes.sae import TrainStepOutput

    x, cfg = step.sae_in, sae.cfg
    with torch.no_grad():
        feature_acts, hidden_pre = sae.encode_with_hidden_pre(x)
    rows, cols = feature_acts.nonzero(as_tuple=True)  # row-major: rows sorted
    norms = sae.W_dec.norm(dim=-1) if cfg.rescale_acts_by_decoder_norm else None
    sae_in = sae.process_sae_in(x)
    with torch.no_grad():
        value = hidden_pre[rows, cols] / norms[cols] if norms is not None else hidden_pre[rows, cols]
    pre = SelectedPre.apply(value, sae.W_enc, sae.b_enc, sae.b_dec, sae_in.detach(), rows, cols,
                            float(cfg.apply_b_dec_to_input))
    acts = (pre * norms[cols]).relu() * (1 / norms)[cols] if norms is not None else pre.relu()
    offsets = torch.searchsorted(rows, torch.arange(x.shape[0], device=rows.device))
    sae_out = F.embedding_bag(cols, sae.W_dec, offsets, mode="sum", per_sample_weights=acts) + sae.b_dec
    mse_loss = sae.mse_loss_fn(sae_out, x).sum(dim=-1).mean()
    aux = _topk_aux_loss(sae, sae_in, sae_out, x, step.dead_neuron_mask, norms)
    out = TrainStepOutput(sae_in=x, sae_out=sae_out, feature_acts=feature_acts, hidden_pre=hidden_pre,
                          loss=mse_loss + aux, losses={"mse_loss": mse_loss, "auxiliary_reconstruction_loss": aux})
    if cfg.architecture() == "batchtopk":
        sae.update_topk_threshold(feature_acts)
        out.metrics["topk_threshold"] = sae.topk_threshold
    return out


def _topk_aux_loss(sae: Any, sae_in: torch.Tensor, sae_out: torch.Tensor, x: torch.Tensor,
                   dead: torch.Tensor | None, norms: torch.Tensor | None) -> torch.Tensor:
    """SAELens's TopK auxiliary loss on the dead columns only: the top k_aux = min(d/2, n_dead) dead
    pre-activations per row reconstruct the residual x - x_hat (no b_dec); scaled by
    aux_coefficient * min(n_dead / (d/2), 1)."""
    n_dead = 0 if dead is None else int(dead.sum())
    if n_dead == 0:
        return sae_out.new_tensor(0.0)
    half = x.shape[-1] // 2
    k_aux, scale = min(half, n_dead), min(n_dead / half, 1.0)
    idx = dead.nonzero().squeeze(1)
    hidden = sae_in @ sae.W_enc[:, idx] + sae.b_enc[idx]
    if norms is not None:
        hidden = hidden * norms[idx]
    top = hidden.topk(k_aux, sorted=False)
    acts = torch.zeros_like(hidden).scatter(-1, top.indices, top.values)
    if norms is not None:
        acts = acts * (1 / norms[idx])
    residual = (x - sae_out).detach()
    return sae.cfg.aux_loss_coefficient * scale * (acts @ sae.W_dec[idx] - residual).pow(2).sum(dim=-1).mean()
