"""Evaluation of an SAE against a member's planted features (SynthSAEBench metrics).

For held-out samples x (n, d) with true feature activations a (n, N) and the SAE's latents
z = encode(x) (n, W), reconstructions x̂ = decode(z) and decoder rows D (W, d):

- l0 = mean_s #{j : z_sj != 0};  dead = #{j : z_sj = 0 for all s};  true_l0 likewise for a
- explained_variance = 1 - sum_s |x_s - x̂_s|^2 / (sum_s |x_s|^2 - n |mean x|^2)
- shrinkage = mean over |x_s| > 1e-6 of |x̂_s| / |x_s|
- mcc = mean |cos| over the optimal one-to-one matching of D and the true directions F (Hungarian)
- uniqueness = #distinct argmax_i |cos(D_j, F_i)| / W
- precision / recall / f1 (and f0_5, f2: F_beta, :func:`f_beta`) / accuracy: each latent j as a
  detector of its best-matching feature
  (fires: z_sj != 0 vs a_s,best(j) > 0), averaged over latents (0 where undefined)

These are the definitions of SAELens's ``eval_sae_on_synthetic_data`` (a test checks agreement);
mcc, uniqueness, precision / recall and F_beta are :mod:`featgeom.formulas`'s, which
:mod:`featgeom.metrics` computes too (here on torch tensors, there on NumPy arrays).
:func:`evaluate_reconstruction` gives the ground-truth-free ones (explained variance, MSE, L0, dead
latents, shrinkage) for activations with no planted features (a real model's).
:func:`evaluate_on_member` refuses fewer than MIN_EVAL_SAMPLES held-out samples and invalid
seeds; :func:`evaluate_trained` also refuses a member the SAE was not trained on unless asked
for a cross-member (transfer) evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from featgeom.config import check_seed, field_error
from featgeom.errors import ConfigError, DataError, ShapeError
from featgeom.family.family import EVAL_SALT
from featgeom.formulas import best_features, f_beta, mcc, precision_recall, uniqueness

EVAL_BATCH = 4096
# Fewer held-out samples make the metrics noise: a latent firing on 1% of inputs is counted dead
# with probability 0.6% at 512 samples but 37% at 100.
MIN_EVAL_SAMPLES = 512


@dataclass
class _Counts:
    """Running sums over evaluation batches."""

    width: int
    device: torch.device = torch.device("cpu")
    n: int = 0
    valid: int = 0
    sae_active: float = 0.0
    true_active: float = 0.0
    shrink: float = 0.0
    sq_norm: float = 0.0
    sq_resid: float = 0.0

    def __post_init__(self) -> None:
        where = {"device": self.device}
        self.sum_x = torch.zeros(0, dtype=torch.float64, **where)
        self.fired = torch.zeros(self.width, dtype=torch.bool, **where)
        self.tp = torch.zeros(self.width, dtype=torch.float64, **where)
        self.fp = torch.zeros(self.width, dtype=torch.float64, **where)
        self.fn = torch.zeros(self.width, dtype=torch.float64, **where)


def check_input_dim(sae: Any, hidden_dim: int, member: str) -> None:
    """ShapeError unless the SAE's input dim equals the member's hidden dim."""
    if int(sae.cfg.d_in) != int(hidden_dim):
        raise ShapeError(f"sae: input dim {sae.cfg.d_in} differs from member {member!r}'s hidden dim {hidden_dim}")


def cosine_matrix(decoder: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    """|cos| between decoder rows (W, d) and feature directions (N, d) -> (W, N)."""
    a = decoder / decoder.norm(dim=1, keepdim=True).clamp(min=1e-8)
    b = features / features.norm(dim=1, keepdim=True).clamp(min=1e-8)
    return (a @ b.T).abs()


@torch.no_grad()
def evaluate(sae: Any, feature_vectors: np.ndarray, batches: Any, member: str = "member") -> dict[str, float]:
    """Metrics of ``sae`` (see module docstring) over ``batches`` of (hidden (n, d), acts CSR (n, N)).

    The batches are encoded on the SAE's device (where ``sae.W_dec`` is); the decoder-feature
    cosines and the matching run on the host.
    """
    sae.eval()
    decoder = sae.W_dec.detach().float()
    check_input_dim(sae, feature_vectors.shape[1], member)
    cos = cosine_matrix(decoder.cpu(), torch.from_numpy(np.asarray(feature_vectors, dtype=np.float32)))
    best = best_features(cos)
    counts = _Counts(width=decoder.shape[0], device=decoder.device)
    for hidden, acts in batches:
        x = torch.from_numpy(np.asarray(hidden, dtype=np.float32)).to(decoder.device)
        _add_batch(counts, sae, x, sp.csr_matrix(acts), best)
    return _finish(counts, cos)


def _add_batch(c: _Counts, sae: Any, x: torch.Tensor, acts: sp.csr_matrix, best: np.ndarray) -> None:
    """Accumulate one batch: x (n, d), acts (n, N), best (W,) best-matching feature per latent."""
    fires = _add_reconstruction(c, sae, x)
    c.true_active += float(acts.getnnz())
    truth = torch.from_numpy((acts[:, best] > 0).toarray()).to(x.device)
    c.tp += (fires & truth).sum(dim=0).double()
    c.fp += (fires & ~truth).sum(dim=0).double()
    c.fn += (~fires & truth).sum(dim=0).double()


def _add_reconstruction(c: _Counts, sae: Any, x: torch.Tensor) -> torch.Tensor:
    """Accumulate the ground-truth-free sums of one batch x (n, d); return where latents fire (n, W)."""
    z = sae.encode(x)
    x_hat = sae.decode(z)
    fires = z != 0
    c.n += x.shape[0]
    c.sae_active += fires.float().sum().item()
    c.fired |= fires.any(dim=0)
    norms = x.norm(dim=-1)
    ok = norms > 1e-6
    c.valid += int(ok.sum())
    c.shrink += (x_hat.norm(dim=-1)[ok] / norms[ok]).sum().item()
    batch_sum = x.sum(dim=0).double()
    c.sum_x = batch_sum if c.sum_x.numel() == 0 else c.sum_x + batch_sum
    c.sq_norm += x.pow(2).sum().item()
    c.sq_resid += (x - x_hat).pow(2).sum().item()
    return fires


def _finish(c: _Counts, cos: torch.Tensor) -> dict[str, float]:
    """Turn running sums into the metric dict (DataError when there were no samples)."""
    if c.n == 0:
        raise DataError("evaluate: no samples in the batches")
    precision, recall = precision_recall(c.tp, c.fp, c.fn)
    f1 = f_beta(precision, recall, 1.0)
    accuracy = (c.n - c.fp - c.fn) / max(c.n, 1)
    recon = _reconstruction_metrics(c)
    return {
        "mcc": mcc(cos),
        "f1": float(f1.mean()),
        "f0_5": float(f_beta(precision, recall, 0.5).mean()),
        "f2": float(f_beta(precision, recall, 2.0).mean()),
        "precision": float(precision.mean()),
        "recall": float(recall.mean()),
        "accuracy": float(accuracy.mean()),
        "explained_variance": recon["explained_variance"],
        "l0": recon["l0"],
        "true_l0": c.true_active / c.n,
        "dead_latents": recon["dead_latents"],
        "dead_fraction": recon["dead_fraction"],
        "shrinkage": recon["shrinkage"],
        "uniqueness": uniqueness(cos),
        "num_samples": c.n,
    }


def _total_variance(c: _Counts) -> float:
    """sum_s |x_s|^2 / n - |mean x|^2: the inputs' total variance per sample."""
    return c.sq_norm / c.n - (c.sum_x / c.n).pow(2).sum().item()


def _reconstruction_metrics(c: _Counts) -> dict[str, float]:
    """The ground-truth-free metrics of the running sums (c.n > 0)."""
    dead = int((~c.fired).sum())
    return {
        "explained_variance": 1.0 - (c.sq_resid / c.n) / _total_variance(c),
        "l0": c.sae_active / c.n,
        "dead_latents": dead,
        "dead_fraction": dead / c.width,
        "shrinkage": c.shrink / max(c.valid, 1),
        "num_samples": c.n,
    }


@torch.no_grad()
def evaluate_reconstruction(sae: Any, batches: Any) -> dict[str, float]:
    """The metrics that need no ground truth, over ``batches`` of hidden vectors x (n, d) (arrays
    or tensors): explained_variance, l0, dead_latents, dead_fraction, shrinkage (module docstring),
    mse = sum_s |x_s - x̂_s|^2 / n (per-sample squared error summed over d, as SAELens's training
    MSE) and num_samples; the numbers equal :func:`evaluate`'s for the same inputs.  Encoded on the
    SAE's device; DataError when there are no samples or the inputs have zero variance."""
    sae.eval()
    decoder = sae.W_dec.detach().float()
    counts = _Counts(width=decoder.shape[0], device=decoder.device)
    for hidden in batches:
        x = torch.as_tensor(np.asarray(hidden, dtype=np.float32)).to(decoder.device)
        if x.ndim != 2 or x.shape[1] != int(sae.cfg.d_in):
            raise ShapeError(f"sae: input dim {sae.cfg.d_in} differs from the activations' width "
                             f"{tuple(x.shape)[1:]}")
        _add_reconstruction(counts, sae, x)
    if counts.n == 0:
        raise DataError("evaluate: no samples in the batches")
    if not _total_variance(counts) > 0.0:
        raise DataError(f"evaluate: the {counts.n} held-out samples have zero variance (explained variance "
                        "is undefined)")
    return {**_reconstruction_metrics(counts), "mse": counts.sq_resid / counts.n}


def heldout_batches(family: Any, member: str | int, num_samples: int, seed: int) -> Any:
    """Held-out (hidden, acts) batches of one member, drawn with EVAL_SALT: a stream apart from
    training's (TRAIN_SALT) and the comparisons' (COMPARE_SALT) for every seed."""
    from featgeom.sae.data import MemberStream

    stream = MemberStream(family, member, seed, salt=EVAL_SALT)
    done = 0
    while done < num_samples:
        size = min(EVAL_BATCH, num_samples - done)
        yield stream.next(size)
        done += size


def check_eval_samples(num_samples: int) -> None:
    """ConfigError naming eval_samples unless it is an integer >= MIN_EVAL_SAMPLES."""
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < MIN_EVAL_SAMPLES:
        raise field_error("eval_samples", f"must be an integer >= {MIN_EVAL_SAMPLES} (fewer held-out samples "
                                          f"give metrics dominated by noise), got {num_samples!r}")


def evaluate_on_member(sae: Any, family: Any, member: str | int, num_samples: int = 100_000,
                       seed: int = 0) -> dict[str, float]:
    """:func:`evaluate` on ``num_samples`` held-out samples of ``member`` (ShapeError on a dim
    mismatch, ConfigError on too few ``num_samples`` or an invalid ``seed``)."""
    check_eval_samples(num_samples)
    check_seed("seed", seed)
    m = family.member(member)
    check_input_dim(sae, m.hidden_dim, m.name)
    return evaluate(sae, m.feature_vectors, heldout_batches(family, member, num_samples, seed), m.name)


def evaluate_trained(trained: Any, family: Any, member: str | int, num_samples: int = 100_000, seed: int = 0,
                     cross_member: bool = False, device: str = "cpu") -> dict[str, float]:
    """:func:`evaluate_on_member` of a stored SAE (a :class:`~featgeom.sae.artifact.TrainedSAE`), on
    the thread count it was trained and evaluated with, so its training metrics are reproduced exactly
    (on the device type it was trained on; ``device`` 'cpu', 'cuda' or 'cuda:N' says where the SAE
    is encoded, and it is moved back to the CPU afterwards).

    ConfigError when ``family`` is not the family it was trained on, or ``member`` is not its
    member and ``cross_member`` is False (a cross-member evaluation measures transfer, not the
    SAE's own quality, so it must be asked for).
    """
    from featgeom.device import fixed_threads, torch_device
    from featgeom.sae.train import family_id_of

    fid, name = family_id_of(family), family.member(member).name
    if trained.family_id != fid:
        raise ConfigError(f"family: the SAE was trained on family {trained.family_id}, not on this one ({fid})")
    if name != trained.member and not cross_member:
        raise ConfigError(f"member: the SAE was trained on member {trained.member!r}, not {name!r}; "
                          "pass --cross-member (cross_member=True) to evaluate its transfer to another member")
    with fixed_threads(trained.config.threads):
        try:
            return evaluate_on_member(trained.sae.to(torch_device(device)), family, name, num_samples, seed=seed)
        finally:
            trained.sae.to("cpu")
