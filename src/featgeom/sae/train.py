"""Train one SAELens training SAE on one family member, fed by featgeom's fast sampler.

Each step: x = next batch of the member's hidden vectors (batch_size, d); SAELens's
``training_forward_pass`` gives loss = MSE + architecture losses (for TopK / BatchTopK the same
pass computed sparsely, :mod:`featgeom.sae.sparse`); Adam step after clipping the
gradient norm to 1 (as SAELens's trainer); lr schedule from SAELens's ``get_lr_scheduler``;
the L0 controller adapts the sparsity coefficient (standard / gated / jumprelu); latents that
have not fired for ``dead_window`` samples are "dead" (fed to the TopK aux / JumpReLU pre-act
loss, or resampled).  Everything runs on ``cfg.threads`` threads whatever the caller's setting
(:func:`featgeom.sae.resources.fixed_threads`), so the id determines the bits.  With a store,
the whole state is checkpointed every ``cfg.checkpoint_interval`` samples (10% by default) and
a rerun resumes from the newest checkpoint, ending bit-identical to an uninterrupted run.
A run that cannot fit in memory is refused before anything is allocated (ConfigError); a run
that diverges (non-finite loss or weights, every latent dead, explained variance < 0) raises
DataError "training diverged: ..." and stores nothing.
"""

from __future__ import annotations

import math
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from featgeom.device import device_memory
from featgeom.errors import DataError, ResourceError
from featgeom.family.family import SyntheticModelFamily
from featgeom.sae import arch as archs
from featgeom.sae.artifact import TrainedSAE, load, run_config, run_id, write_sae
from featgeom.sae.checkpoint import checkpoint_root, latest_checkpoint, write_checkpoint
from featgeom.sae.config import CONTROLLED, SAETrainConfig
from featgeom.sae.control import L0Controller
from featgeom.sae.data import MemberStream
from featgeom.sae.evaluate import check_eval_samples, evaluate_on_member
from featgeom.sae.progress import progress_reporter
from featgeom.sae.resources import check_memory, estimate_bytes, fixed_threads, training_device
from featgeom.sae.sparse import sparse_forward_pass, supports_sparse

EVAL_SAMPLES = 100_000
CALIBRATION_SAMPLES = 16_384
GATE = {"standard": "b_enc", "gated": "b_gate", "jumprelu": "threshold"}
HISTORY_KEYS = ("samples", "loss", "mse", "l0", "dead_fraction", "coefficient", "lr", "samples_per_s")


@dataclass
class _Run:
    """Everything that changes during training (all of it goes into a checkpoint)."""

    cfg: SAETrainConfig
    sae: Any
    optimizer: torch.optim.Optimizer
    scheduler: Any
    controller: L0Controller | None
    stream: MemberStream
    generator: torch.Generator
    since_fired: torch.Tensor
    samples: int = 0
    step: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    window: dict[str, float] = field(default_factory=lambda: dict.fromkeys(("steps", "loss", "mse", "l0"), 0.0))
    clock: float = field(default_factory=time.perf_counter)
    clock_samples: int = 0
    last_checkpoint: Path | None = None

    def state(self) -> dict[str, Any]:
        return {
            "sae": self.sae.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "controller": self.controller.state() if self.controller else None,
            "stream": self.stream.state(), "generator": self.generator.get_state(),
            "since_fired": self.since_fired, "samples": self.samples, "step": self.step,
            "history": self.history, "window": self.window,
        }

    def set_state(self, state: dict[str, Any]) -> None:
        self.sae.load_state_dict(state["sae"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.controller is not None:
            self.controller.set_state(state["controller"])
        self.stream.set_state(state["stream"])
        self.generator.set_state(state["generator"].cpu())  # a CPU generator, whatever the device
        self.since_fired = state["since_fired"]
        self.samples, self.step = state["samples"], state["step"]
        self.history, self.window = state["history"], state["window"]
        self.clock_samples = self.samples


def family_id_of(family: SyntheticModelFamily) -> str:
    """The content id the family has (or would have) in the store."""
    from featgeom.family.io import GENERATOR, KIND
    from featgeom.store import artifact_id

    return artifact_id(KIND, family.config.to_dict(), GENERATOR)


def train(family: SyntheticModelFamily, member: str | int, cfg: SAETrainConfig, store: str | Path | None = None,
          *, eval_samples: int = EVAL_SAMPLES, progress: bool = False,
          on_step: Callable[[int], None] | None = None) -> TrainedSAE:
    """Train (or resume, or just load) the SAE ``cfg`` describes on ``member`` of ``family``.

    With ``store``: the result is the artifact ``STORE/sae-<id>`` (returned as is when it already
    exists); checkpoints go to ``STORE/checkpoints/<id>/`` and are removed once the artifact is
    written.  A failed run keeps them (for inspection; a rerun resumes and fails the same way).
    Without a store nothing is written and the returned TrainedSAE has path None.
    ``progress``: report on stderr (:mod:`featgeom.sae.progress`).  ``on_step(samples)`` is called
    after every step.  ConfigError, before any work, on bad ``eval_samples`` or a run too big for
    the memory available; DataError "training diverged: ..." when the result is unusable.
    """
    check_eval_samples(eval_samples)
    m = family.member(member)
    fid = family_id_of(family)
    rid = run_id(cfg, fid, m.name)
    final = Path(store) / f"sae-{rid}" if store is not None else None
    if final is not None and final.exists():
        return load(final)
    calibration = CALIBRATION_SAMPLES if _calibrates(cfg) else 0
    check_memory(cfg, m.hidden_dim, m.num_features, calibration)
    start = time.perf_counter()
    root = checkpoint_root(Path(store), rid) if store is not None else None
    with fixed_threads(cfg.threads), training_device(cfg) as device:
        run = _resumed_run(cfg, family, m.name, rid, root, device)
        with _out_of_memory(run, estimate_bytes(cfg, m.hidden_dim, m.num_features, calibration)):
            _fit(run, rid, root, progress, on_step)
            sae = _final_sae(run)
            _check_weights(run, sae)
            metrics = evaluate_on_member(sae.to(device), family, m.name, eval_samples, seed=0)
        sae.to("cpu")  # stored (cfg.json included) as a CPU SAE, loadable anywhere
    _check_metrics(run, metrics)
    history = {k: np.asarray([row[k] for row in run.history], dtype=np.float64) for k in HISTORY_KEYS}
    meta = {"metrics": metrics, "family_id": fid, "member": m.name, "architecture": cfg.arch,
            "saelens_inference_architecture": sae.cfg.architecture(), "seconds": time.perf_counter() - start}
    if final is None:
        return TrainedSAE(rid, None, sae, cfg, fid, m.name, metrics, history, meta["seconds"])  # type: ignore[arg-type]
    write_sae(final, run_config(cfg, fid, m.name), meta, history, sae)
    if root is not None:
        shutil.rmtree(root, ignore_errors=True)
    return load(final)


def _calibrates(cfg: SAETrainConfig) -> bool:
    """Whether the run ends with :func:`calibrate_l0`."""
    return cfg.arch in CONTROLLED and cfg.calibrate_l0


@contextmanager
def _out_of_memory(run: _Run, needed: int) -> Iterator[None]:
    """Running out of device memory becomes one ResourceError with the estimated need and where the
    last good checkpoint is (a rerun with the same settings, on a device with more memory, resumes
    from it)."""
    try:
        with device_memory(f"training {run.cfg.arch} (width {run.cfg.width:,}) on {run.cfg.device}", needed):
            yield
    except ResourceError as exc:
        where = (f"last good checkpoint kept at {run.last_checkpoint} (a rerun with the same settings resumes "
                 "from it)" if run.last_checkpoint else "no checkpoint was written yet")
        raise ResourceError(f"{exc}; {where}") from None


def _resumed_run(cfg: SAETrainConfig, family: SyntheticModelFamily, member: str, rid: str,
                 root: Path | None, device: torch.device) -> _Run:
    """A fresh run on ``device``, set to the newest valid checkpoint under ``root`` when there is one."""
    run = _new_run(cfg, family, member, device)
    if root is not None and (found := latest_checkpoint(root, rid, device)) is not None:
        run.last_checkpoint, state = found
        run.set_state(state)
    return run


def _final_sae(run: _Run) -> Any:
    """The inference SAE of a finished run, after L0 calibration where the config asks for it."""
    if _calibrates(run.cfg):
        calibrate_l0(run.sae, _to_device(run.stream.next_hidden(CALIBRATION_SAMPLES), run.since_fired.device),
                     run.cfg.l0)
    return _inference_sae(run.sae)


def _kept(run: _Run) -> str:
    """Where the failed run's checkpoints are, for error messages."""
    if run.last_checkpoint is None:
        return "no checkpoint"
    return f"checkpoints kept in {run.last_checkpoint.parent} for inspection (a rerun fails the same way)"


def _check_weights(run: _Run, sae: Any) -> None:
    """DataError "training diverged" when a weight of the inference SAE is not finite."""
    bad = [name for name, value in sae.state_dict().items() if not bool(torch.isfinite(value).all())]
    if bad:
        raise DataError(f"training diverged: non-finite values in {bad[0]} after {run.samples} samples; "
                        f"nothing stored, {_kept(run)}; try a lower lr (was {run.cfg.lr:g})")


def _check_metrics(run: _Run, metrics: dict[str, float]) -> None:
    """DataError "training diverged" when every latent is dead on the held-out samples or the
    explained variance is below 0 (worse than predicting the mean input)."""
    n, ev = int(metrics["num_samples"]), metrics["explained_variance"]
    if metrics["dead_fraction"] == 1.0:
        reason = f"all {run.cfg.width} latents are dead on {n} held-out samples"
    elif not ev >= 0.0:
        reason = f"explained variance {ev:.3g} < 0 on {n} held-out samples (worse than the mean input)"
    else:
        return
    raise DataError(f"training diverged: {reason}; nothing stored, {_kept(run)}; "
                    f"try a lower lr (was {run.cfg.lr:g})")


def _new_run(cfg: SAETrainConfig, family: SyntheticModelFamily, member: str, device: torch.device) -> _Run:
    """Fresh SAE (initialised on the CPU from cfg.seed, then moved to ``device``, so every device
    starts from the same weights), optimiser, schedule, controller and data stream for ``cfg``."""
    from sae_lens.training.optim import get_lr_scheduler

    d_in = family.member(member).hidden_dim
    sae = archs.build_training_sae(cfg, d_in).to(device)
    optimizer = torch.optim.Adam(sae.parameters(), lr=cfg.lr, betas=(0.9, 0.999))
    warmup = int(cfg.warmup_fraction * cfg.steps)
    decay = int(cfg.decay_fraction * cfg.steps) if cfg.schedule == "linear_decay" else 0
    name = "cosineannealing" if cfg.schedule == "cosine" else "constant"
    scheduler = get_lr_scheduler(name, optimizer=optimizer, training_steps=cfg.steps, lr=cfg.lr,
                                 warm_up_steps=warmup, decay_steps=decay, lr_end=cfg.lr / 10, num_cycles=1)
    controller = (L0Controller(cfg.l0, cfg.sparsity_coefficient, cfg.controller_gain, cfg.controller_proportional)
                  if cfg.arch in CONTROLLED else None)
    generator = torch.Generator().manual_seed(cfg.seed)
    return _Run(cfg, sae, optimizer, scheduler, controller, MemberStream(family, member, cfg.seed), generator,
                torch.zeros(cfg.width, dtype=torch.int64, device=device))


def _fit(run: _Run, rid: str, root: Path | None, progress: bool, on_step: Callable[[int], None] | None) -> None:
    """Run steps until cfg.steps, logging history and writing checkpoints."""
    cfg, every = run.cfg, run.cfg.checkpoint_interval
    bar = progress_reporter(cfg, run.samples) if progress else None
    try:
        while run.step < cfg.steps:
            _step(run)
            if run.samples % cfg.log_every < cfg.batch_size or run.step == cfg.steps:
                _log(run)
                if bar is not None:
                    bar.update(run.samples, run.history[-1])
            if root is not None and every and run.samples // every > (run.samples - cfg.batch_size) // every:
                run.last_checkpoint = write_checkpoint(root, rid, run.samples, run.state())
            if on_step is not None:
                on_step(run.samples)
    finally:
        if bar is not None:
            bar.close()


def _step(run: _Run) -> None:
    """One optimiser step (see module docstring)."""
    from sae_lens.saes.sae import TrainStepInput

    cfg, sae = run.cfg, run.sae
    x = _to_device(run.stream.next_hidden(cfg.batch_size), run.since_fired.device)
    if run.step == 0:
        with torch.no_grad():
            sae.b_dec.copy_(x.mean(dim=0))
    dead = run.since_fired >= cfg.dead_window
    coefficients = {archs.COEFFICIENT[cfg.arch]: run.controller.coefficient} if run.controller else {}
    sae.train()
    step = TrainStepInput(sae_in=x, coefficients=coefficients, dead_neuron_mask=dead, n_training_steps=run.step,
                          is_logging_step=False)
    out = sparse_forward_pass(sae, step) if supports_sparse(sae) else sae.training_forward_pass(step)
    loss = out.loss.item()
    if not math.isfinite(loss):
        where = f"last good checkpoint kept at {run.last_checkpoint}" if run.last_checkpoint else "no checkpoint"
        raise DataError(f"training diverged: loss became {loss} at step {run.step} (after {run.samples} samples); "
                        f"stopped, {where}; try a lower lr")
    out.loss.backward()
    torch.nn.utils.clip_grad_norm_(sae.parameters(), 1.0)
    run.optimizer.step()
    run.optimizer.zero_grad(set_to_none=True)
    run.scheduler.step()
    run.samples += cfg.batch_size
    run.step += 1
    with torch.no_grad():
        fires = out.feature_acts != 0
        l0 = fires.sum().item() / cfg.batch_size
        run.since_fired += cfg.batch_size
        run.since_fired[fires.any(dim=0)] = 0
        if run.controller is not None:
            run.controller.update(l0)
        if cfg.revival == "resample" and run.samples % cfg.resample_every < cfg.batch_size:
            _resample(run, x, (x - out.sae_out).detach())
    w = run.window
    w["steps"] += 1
    w["loss"] += loss
    w["mse"] += out.losses["mse_loss"].item()
    w["l0"] += l0


def _to_device(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A batch sampled on the host, on the training device: on CUDA copied from pinned memory without
    blocking (the next batch is drawn while this one trains); on the CPU, as it is."""
    if device.type == "cpu":
        return x
    return x.pin_memory().to(device, non_blocking=True)


@torch.no_grad()
def _resample(run: _Run, x: torch.Tensor, residual: torch.Tensor) -> None:
    """Re-initialise dead latents towards inputs drawn with probability ∝ |residual|^2:
    decoder row = unit residual direction (alive decoder norm), encoder column = 0.2 x that
    (alive encoder norm), per-latent biases 0, their Adam moments reset."""
    dead = torch.nonzero(run.since_fired >= run.cfg.dead_window).flatten()
    if dead.numel() == 0:
        return
    weights = residual.pow(2).sum(dim=1) + 1e-12
    # drawn on the host with the run's CPU generator, so every device draws the same rows
    rows = torch.multinomial(weights.cpu(), dead.numel(), replacement=True, generator=run.generator)
    rows = rows.to(residual.device)
    direction = residual[rows] / residual[rows].norm(dim=1, keepdim=True).clamp(min=1e-8)
    alive = run.since_fired < run.cfg.dead_window
    sae = run.sae
    one = torch.tensor(1.0, device=residual.device)
    dec_norm = sae.W_dec[alive].norm(dim=1).mean() if alive.any() else one
    for param, axis in archs.encoder_rows(sae):
        if param is sae.W_dec:
            param[dead] = direction * dec_norm
        elif param is getattr(sae, "W_enc", None) and isinstance(param, torch.nn.Parameter):
            enc_norm = param[:, alive].norm(dim=0).mean() if alive.any() else one
            param[:, dead] = (direction * enc_norm * 0.2).T
        elif param.ndim == 1 and axis == 0 and param is not getattr(sae, "threshold", None):
            param[dead] = 0.0
        _reset_moments(run.optimizer, param, dead, axis)
    run.since_fired[dead] = 0


def _reset_moments(optimizer: torch.optim.Optimizer, param: torch.Tensor, index: torch.Tensor, axis: int) -> None:
    """Zero Adam's first and second moments of ``param`` at ``index`` along ``axis``."""
    state = optimizer.state.get(param, {})
    for key in ("exp_avg", "exp_avg_sq"):
        if key in state:
            state[key].index_fill_(axis, index, 0.0)


def _log(run: _Run) -> None:
    """Append one history row (window means) and reset the window."""
    w = run.window
    steps = max(w["steps"], 1.0)
    now = time.perf_counter()
    rate = (run.samples - run.clock_samples) / max(now - run.clock, 1e-9)
    run.history.append({
        "samples": float(run.samples), "loss": w["loss"] / steps, "mse": w["mse"] / steps, "l0": w["l0"] / steps,
        "dead_fraction": float((run.since_fired >= run.cfg.dead_window).float().mean()),
        "coefficient": run.controller.coefficient if run.controller else float("nan"),
        "lr": float(run.optimizer.param_groups[0]["lr"]), "samples_per_s": rate,
    })
    run.window = dict.fromkeys(w, 0.0)
    run.clock, run.clock_samples = now, run.samples


@torch.no_grad()
def calibrate_l0(sae: Any, x: torch.Tensor, target: float, iterations: int = 30) -> float:
    """Shift the gate of a controlled SAE uniformly so that its mean L0 on ``x`` is ``target``.

    The gate is b_enc (standard), b_gate (gated) or the threshold (jumprelu, shift kept >= 0);
    L0(shift) is monotone, so bisection on shift in [-s, s] finds it.  Returns the shift applied.
    """
    name = GATE[sae.cfg.architecture()]
    gate = getattr(sae, name)
    original = gate.detach().clone()
    sign = 1.0 if name == "threshold" else -1.0  # raising the threshold / lowering a bias sparsifies

    def l0_at(shift: float) -> float:
        gate.copy_(original + sign * shift)
        if name == "threshold":
            gate.clamp_(min=0.0)
        return float((sae.encode(x) != 0).float().sum(dim=1).mean())

    span = float(original.abs().max()) + 10.0 * float(x.norm(dim=1).mean())
    low, high = -span, span  # l0_at(low) >= target >= l0_at(high)
    for _ in range(iterations):
        mid = (low + high) / 2
        low, high = (mid, high) if l0_at(mid) > target else (low, mid)
    shift = high if abs(l0_at(high) - target) <= abs(l0_at(low) - target) else low
    l0_at(shift)
    return shift


def _inference_sae(training_sae: Any) -> Any:
    """SAELens's inference SAE of a training SAE (BatchTopK-family SAEs become JumpReLU), via its
    own save/load path so it is exactly what ``SAE.load_from_disk`` will give."""
    from sae_lens import SAE

    tmp = Path(tempfile.mkdtemp(prefix="featgeom-sae-"))
    try:
        training_sae.save_inference_model(tmp)
        return SAE.load_from_disk(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
