"""Train one SAELens training SAE on one family member, fed by featgeom's fast sampler
(:func:`train`), or on a real model's stored activations (:func:`train_on_activations`): the
same run loop, recipes, checkpoints and artifact, only the data stream and the evaluation differ.

Each step: x = next batch of the member's hidden vectors (batch_size, d); SAELens's
``training_forward_pass`` gives loss = MSE + architecture losses (for TopK / BatchTopK the same
pass computed sparsely, :mod:`featgeom.sae.sparse`); Adam step after clipping the
gradient norm to 1 (as SAELens's trainer); lr schedule from SAELens's ``get_lr_scheduler``;
the L0 controller adapts the sparsity coefficient (standard / gated / jumprelu); latents that
have not fired for ``dead_window`` samples are "dead" (fed to the TopK aux / JumpReLU pre-act
loss, or resampled).  Everything runs on ``cfg.threads`` threads whatever the caller's setting
(:func:`featgeom.device.fixed_threads`), so the id determines the bits.  With a store,
the whole state is checkpointed every ``cfg.checkpoint_interval`` samples (10% by default) and
a rerun resumes from the newest checkpoint, ending bit-identical to an uninterrupted run.
``snapshots`` (fractions of the training) keep the inference SAE of the same run after
:func:`~featgeom.sae.checkpoint.snapshot_step` steps as an SAE artifact of its own
(:mod:`featgeom.sae.checkpoint`), evaluated on the held-out samples like the final SAE; taking
one changes no bit of the run.
A run that cannot fit in memory is refused before anything is allocated (ConfigError); a run
that diverges (non-finite loss or weights, every latent dead, explained variance < 0) raises
DataError "training diverged: ..." and stores nothing.
"""

from __future__ import annotations

import copy
import hashlib
import math
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from featgeom.device import device_memory, fixed_threads
from featgeom.errors import ConfigError, DataError, ResourceError, ShapeError
from featgeom.family.family import SyntheticModelFamily
from featgeom.interrupts import raise_if_interrupted
from featgeom.sae import arch as archs
from featgeom.sae.architectures import architecture
from featgeom.sae.artifact import GENERATOR, KIND, TrainedSAE, load, run_config, run_id, write_sae
from featgeom.sae.checkpoint import (checkpoint_root, latest_checkpoint, snapshot_config, snapshot_path, snapshot_step,
                                     write_checkpoint)
from featgeom.sae.config import CONTROLLED, SAETrainConfig
from featgeom.sae.control import L0Controller
from featgeom.sae.data import ArrayStream, MemberStream, check_activations, eval_row_count, split_rows
from featgeom.sae.evaluate import EVAL_BATCH, check_eval_samples, evaluate_on_member, evaluate_reconstruction
from featgeom.sae.progress import progress_reporter
from featgeom.sae.resources import check_memory, estimate_bytes, training_device
from featgeom.sae.sparse import sparse_forward_pass, supports_sparse
from featgeom.store.artifacts import artifact_id, canonical_json

EVAL_SAMPLES = 100_000
EVAL_SEED = 0  # seed of the held-out evaluation stream (with the evaluation salt) of every SAE
CALIBRATION_SAMPLES = 16_384
HASH_CHUNK = 65_536  # rows per chunk when hashing activations
HISTORY_KEYS = ("samples", "loss", "mse", "l0", "dead_fraction", "coefficient", "lr", "samples_per_s")


class TrainingStream(Protocol):
    """What the run loop draws training batches from (:class:`~featgeom.sae.data.MemberStream`,
    :class:`~featgeom.sae.data.ArrayStream`): the next n inputs (n, d) float32 on the host, and a
    JSON-ready state that resumes it exactly."""

    def next_hidden(self, n: int) -> torch.Tensor: ...

    def state(self) -> dict[str, Any]: ...

    def set_state(self, state: dict[str, Any]) -> None: ...


@dataclass
class _Run:
    """Everything that changes during training (all of it goes into a checkpoint)."""

    cfg: SAETrainConfig
    sae: Any
    optimizer: torch.optim.Optimizer
    scheduler: Any
    controller: L0Controller | None
    stream: TrainingStream
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
          on_step: Callable[[int], None] | None = None, snapshots: Sequence[float] = ()) -> TrainedSAE:
    """Train (or resume, or just load) the SAE ``cfg`` describes on ``member`` of ``family``.

    With ``store``: the result is the artifact ``STORE/sae-<id>`` (returned as is when it already
    exists); checkpoints go to ``STORE/checkpoints/<id>/`` and are removed once the artifact is
    written.  A failed run keeps them (for inspection; a rerun resumes and fails the same way).
    Without a store nothing is written and the returned TrainedSAE has path None.
    ``progress``: report on stderr (:mod:`featgeom.sae.progress`).  ``on_step(samples)`` is called
    after every step.  ConfigError, before any work, on bad ``eval_samples`` or a run too big for
    the memory available; DataError "training diverged: ..." when the result is unusable.

    ``snapshots``: fractions in (0, 1] of the training (needs ``store``); for each, the run also
    stores its SAE after :func:`~featgeom.sae.checkpoint.snapshot_step` steps at
    :func:`~featgeom.sae.checkpoint.snapshot_path` (1, or a fraction whose step is the last: the
    final SAE itself). A snapshot is made like the final SAE: controlled architectures (standard /
    jumprelu / gated) get the same L0 calibration (on a copy, with the next CALIBRATION_SAMPLES
    training inputs, the stream then rewound), so the L0 of a snapshot and of the final SAE are
    comparable; then the same held-out evaluation. The run itself is untouched (same weights,
    history and final SAE as without snapshots). When the final SAE is stored but a snapshot is
    not, the run is done again from the newest checkpoint before the earliest missing snapshot
    (from the start once the checkpoints are gone), up to the last missing one.
    """
    check_eval_samples(eval_samples)
    if snapshots and store is None:
        raise ConfigError("snapshots: need a store to keep them in")
    m = family.member(member)
    fid = family_id_of(family)
    rid = run_id(cfg, fid, m.name)
    final = Path(store) / f"sae-{rid}" if store is not None else None
    missing = _missing_snapshots(Path(store), cfg, fid, m.name, snapshots) if store is not None else {}
    if final is not None and final.exists() and not missing:
        return load(final)
    evaluate_sae = partial(evaluate_on_member, family=family, member=m.name, num_samples=eval_samples, seed=EVAL_SEED)
    meta = {"family_id": fid, "member": m.name, "architecture": cfg.arch}
    snap = _Snapshots(missing, partial(snapshot_config, cfg, fid, m.name), meta, evaluate_sae,
                      final is not None and final.exists()) if missing else None
    done = _train_run(cfg, rid, store, m.hidden_dim, m.num_features, lambda: MemberStream(family, m.name, cfg.seed),
                      evaluate_sae, progress, on_step, snap)
    if done is None:  # the final SAE was stored already; the run only made the missing snapshots
        return load(final)  # type: ignore[arg-type]
    meta = {"metrics": done.metrics, "family_id": fid, "member": m.name, "architecture": cfg.arch,
            "saelens_inference_architecture": done.sae.cfg.architecture(), "seconds": done.seconds}
    return _stored(done, rid, final, run_config(cfg, fid, m.name), meta, fid, m.name)


def _missing_snapshots(store: Path, cfg: SAETrainConfig, family_id: str, member: str,
                       fractions: Sequence[float]) -> dict[int, Path]:
    """step -> artifact directory of each snapshot asked for (``fractions``) that is not the final
    SAE and is not stored yet, in step order."""
    paths = {snapshot_step(cfg, f): snapshot_path(store, cfg, family_id, member, f) for f in fractions}
    return {step: path for step, path in sorted(paths.items()) if step < cfg.steps and not path.exists()}


@dataclass(frozen=True)
class _Snapshots:
    """The snapshots a run still has to store: step -> artifact directory (``missing``), the
    config of the one after a step (``config(step)``), the meta they share, how to evaluate one
    (``evaluate(sae on the device)``, the final SAE's evaluation), and whether the final SAE is
    stored already (then the run stops after the last missing snapshot)."""

    missing: dict[int, Path]
    config: Callable[[int], dict[str, Any]]
    meta: dict[str, Any]
    evaluate: Callable[[Any], dict[str, float]]
    final_stored: bool

    def until(self, steps: int) -> int:
        """The step the run has to reach: the last missing snapshot's when the final SAE is stored."""
        return max(self.missing) if self.final_stored else steps

    def resume_before(self, batch_size: int) -> int:
        """The most samples a checkpoint to resume from may hold: before the earliest missing snapshot."""
        return (min(self.missing) - 1) * batch_size


@dataclass
class _Done:
    """A finished, checked run: its config, inference SAE (on the CPU), metrics, history, seconds
    and checkpoint directory."""

    cfg: SAETrainConfig
    sae: Any
    metrics: dict[str, float]
    history: dict[str, np.ndarray]
    seconds: float
    root: Path | None


def _train_run(cfg: SAETrainConfig, rid: str, store: str | Path | None, d_in: int, num_features: int,
               make_stream: Callable[[], Any], evaluate_sae: Callable[[Any], dict[str, float]], progress: bool,
               on_step: Callable[[int], None] | None, snapshots: _Snapshots | None = None) -> _Done | None:
    """The run loop shared by every data source: check memory, resume from the newest checkpoint,
    fit (storing ``snapshots`` on the way), calibrate L0, check the weights, evaluate
    (``evaluate_sae(sae on the device)``), check the metrics.  ``make_stream()`` gives the
    training data (next_hidden / state / set_state).  None (checkpoints removed) when the final
    SAE is stored already and the run stopped after the last missing snapshot."""
    calibration = CALIBRATION_SAMPLES if _calibrates(cfg) else 0
    check_memory(cfg, d_in, num_features, calibration)
    start = time.perf_counter()
    root = checkpoint_root(Path(store), rid) if store is not None else None
    with fixed_threads(cfg.threads), training_device(cfg) as device:
        at_most = snapshots.resume_before(cfg.batch_size) if snapshots else None
        run = _resumed_run(cfg, d_in, make_stream(), rid, root, device, at_most)
        with _out_of_memory(run, estimate_bytes(cfg, d_in, num_features, calibration)):
            _fit(run, rid, root, progress, on_step, snapshots)
            if snapshots is not None and snapshots.final_stored:
                if root is not None:
                    shutil.rmtree(root, ignore_errors=True)
                return None
            sae = _final_sae(run)
            _check_weights(run, sae)
            metrics = evaluate_sae(sae.to(device))
        sae.to("cpu")  # stored (cfg.json included) as a CPU SAE, loadable anywhere
    _check_metrics(run, metrics)
    return _Done(cfg, sae, metrics, _history_arrays(run), time.perf_counter() - start, root)


def _stored(done: _Done, rid: str, final: Path | None, config: dict[str, Any], meta: dict[str, Any],
            family_id: Any, member: Any) -> TrainedSAE:
    """The TrainedSAE of a finished run: written to ``final`` (then its checkpoints removed) and
    loaded back, or, without a store, in memory with path None."""
    if final is None:
        return TrainedSAE(rid, None, done.sae, done.cfg, family_id, member,  # type: ignore[arg-type]
                          done.metrics, done.history, done.seconds)
    write_sae(final, config, meta, done.history, done.sae)
    if done.root is not None:
        shutil.rmtree(done.root, ignore_errors=True)
    return load(final)


def train_on_activations(acts: np.ndarray, cfg: SAETrainConfig, store: str | Path | None = None, *,
                         source: dict[str, Any], eval_samples: int = EVAL_SAMPLES, progress: bool = False,
                         on_step: Callable[[int], None] | None = None) -> TrainedSAE:
    """Train (or resume, or just load) the SAE ``cfg`` describes on stored activations ``acts``
    (n_tokens, d_model) float32 (e.g. one layer of a real model's :class:`ActivationSet`).

    Rows are split once (:func:`~featgeom.sae.data.split_rows`, the same split for every SAE seed):
    ceil(10%) of them, at least 512 and at most ``eval_samples``, are held out; training draws the
    rest in seeded, reshuffled epochs (:class:`~featgeom.sae.data.ArrayStream`; cfg.samples may
    exceed the rows: meta records the epochs), and so do L0 calibration and the L0 controller.
    The metrics are those that need no ground truth (explained variance, MSE, L0, dead latents,
    shrinkage) on the held-out rows.  ``source``: a JSON-ready identity of the activations (e.g.
    {"activations": acts_set.id, "layer": 3}); the run config is (cfg, source, shape and sha256 of
    ``acts``, held-out rows), so the SAE id is content-addressed, and the artifact (same writer and
    loader as for families; family_id and member None) records ``source`` in its config and meta.
    Store, checkpoints, resume, ``progress``, ``on_step``, device and memory checks: as :func:`train`.

    ShapeError unless ``acts`` is 2-D floating point (or when ``source["d_model"]`` is given and
    differs); DataError on non-finite values, constant rows, or fewer rows than the held-out split
    plus one batch; ConfigError on bad ``eval_samples`` or a ``source`` that is not a JSON-ready dict.
    """
    check_eval_samples(eval_samples)
    x = check_activations(acts)
    n, d = x.shape
    source = _checked_source(source, d)
    n_eval = eval_row_count(n, eval_samples)
    if n - n_eval < cfg.batch_size:
        raise DataError(f"activations: {n:,} rows are too few: {n_eval:,} are held out for evaluation and "
                        f"training needs at least batch_size={cfg.batch_size:,} more (give at least "
                        f"{n_eval + cfg.batch_size:,} rows, or a smaller batch_size)")
    config = activation_run_config(cfg, source, x, n_eval)
    rid = artifact_id(KIND, config, GENERATOR)
    final = Path(store) / f"sae-{rid}" if store is not None else None
    if final is not None and final.exists():
        return load(final)
    train_rows, eval_rows = split_rows(n, n_eval)
    done = _train_run(cfg, rid, store, d, 0, lambda: ArrayStream(x, cfg.seed, rows=train_rows),
                      lambda sae: evaluate_reconstruction(sae, _row_batches(x, eval_rows)), progress, on_step)
    meta = {"metrics": done.metrics, "family_id": None, "member": None, "source": source,
            "architecture": cfg.arch, "saelens_inference_architecture": done.sae.cfg.architecture(),
            "train_rows": int(train_rows.size), "eval_rows": int(eval_rows.size),
            "epochs": cfg.steps * cfg.batch_size / train_rows.size, "seconds": done.seconds}
    return _stored(done, rid, final, config, meta, None, None)


def train_on_activation_set(acts_set: Any, layer: int, cfg: SAETrainConfig, store: str | Path | None = None,
                            **kwargs: Any) -> TrainedSAE:
    """:func:`train_on_activations` on layer ``layer`` of an ActivationSet
    (:mod:`featgeom.real.activations`), with source {"activations": its id, "layer", "d_model"};
    ConfigError naming ``layer`` when the set does not hold it."""
    layers = tuple(int(v) for v in acts_set.layers)
    if isinstance(layer, bool) or not isinstance(layer, int) or layer not in layers:
        raise ConfigError(f"layer: the activations {acts_set.id} hold layers {list(layers)}, not {layer!r}")
    source = {"activations": acts_set.id, "layer": layer, "d_model": int(acts_set.d_model)}
    return train_on_activations(acts_set.layer(layer), cfg, store, source=source, **kwargs)


def activation_run_config(cfg: SAETrainConfig, source: dict[str, Any], acts: np.ndarray, n_eval: int) -> dict[str, Any]:
    """The content-addressed config of a run on activations: the training config (as for families,
    family_id and member None), ``source``, and the data actually used: shape, sha256 of the
    float32 rows and the number of held-out rows (which fixes the split)."""
    data = {"rows": int(acts.shape[0]), "d": int(acts.shape[1]), "sha256": array_sha256(acts), "eval_rows": n_eval}
    return {**run_config(cfg, None, None), "source": source, "data": data}  # type: ignore[arg-type]


def array_sha256(acts: np.ndarray) -> str:
    """sha256 of a float32 array's C-order bytes, hashed in chunks of rows (no full copy)."""
    digest = hashlib.sha256()
    for start in range(0, acts.shape[0], HASH_CHUNK):
        digest.update(np.ascontiguousarray(acts[start:start + HASH_CHUNK], dtype=np.float32).data)
    return digest.hexdigest()


def _checked_source(source: Any, d_model: int) -> dict[str, Any]:
    """``source`` when it is a non-empty JSON-ready dict (ConfigError otherwise) whose "d_model",
    if present, equals the activations' width (ShapeError otherwise)."""
    try:
        canonical_json(source)
    except (TypeError, ValueError):
        source = None
    if not isinstance(source, dict) or not source:
        raise ConfigError("source: must be a non-empty JSON-ready dict identifying the activations "
                          "(e.g. {'activations': <id>, 'layer': 3})")
    if "d_model" in source and source["d_model"] != d_model:
        raise ShapeError(f"activations: rows have width {d_model} but the source says d_model={source['d_model']}")
    return source


def _row_batches(acts: np.ndarray, rows: np.ndarray) -> Iterator[np.ndarray]:
    """acts[rows] in batches of EVAL_BATCH rows, in row order."""
    for start in range(0, rows.size, EVAL_BATCH):
        yield acts[rows[start:start + EVAL_BATCH]]


ACTIVATION_WIDTH_FACTOR = 8  # default width on activations: 8 x d_model (a common expansion factor)
ACTIVATION_L0 = 32  # default target L0 on activations (no true L0 to take it from)


def activation_recipe(arch: str, d_model: int, **overrides: Any) -> SAETrainConfig:
    """The default config of ``arch`` on activations of width ``d_model``: the architecture's
    recipe settings (:data:`featgeom.sae.recipes.RECIPES`), width ACTIVATION_WIDTH_FACTOR x
    d_model, target L0 min(ACTIVATION_L0, width), log_every samples / 50; explicit keyword
    overrides win.  ConfigError on bad values."""
    from featgeom.sae.recipes import RECIPES

    if arch not in RECIPES:
        raise ConfigError(f"arch: unknown architecture {arch!r} (one of {', '.join(RECIPES)})")
    settings = {k: v for k, v in RECIPES[arch].items() if k != "width_factor"}
    data: dict[str, Any] = {"arch": arch, "width": ACTIVATION_WIDTH_FACTOR * int(d_model), **settings}
    data.update(overrides)
    data.setdefault("l0", min(ACTIVATION_L0, data["width"]))
    data["log_every"] = overrides.get("log_every", max(data["samples"] // 50, data.get("batch_size", 1024)))
    return SAETrainConfig.from_dict(data)


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


def _resumed_run(cfg: SAETrainConfig, d_in: int, stream: Any, rid: str, root: Path | None,
                 device: torch.device, at_most: int | None = None) -> _Run:
    """A fresh run on ``device``, set to the newest valid checkpoint under ``root`` (of at most
    ``at_most`` samples when given) when there is one."""
    run = _new_run(cfg, d_in, stream, device)
    if root is not None and (found := latest_checkpoint(root, rid, device, at_most)) is not None:
        run.last_checkpoint, state = found
        run.set_state(state)
    return run


def _final_sae(run: _Run) -> Any:
    """The inference SAE of a finished run, after L0 calibration where the config asks for it."""
    if _calibrates(run.cfg):
        calibrate_l0(run.sae, _to_device(run.stream.next_hidden(CALIBRATION_SAMPLES), run.since_fired.device),
                     run.cfg.l0)
    return _inference_sae(run.sae)


def _snapshot_sae(run: _Run) -> Any:
    """The inference SAE the run would end with if it ended now (:func:`_final_sae` on a copy of
    the training SAE), leaving the run as it was: its training SAE untouched and its stream
    rewound past the calibration inputs."""
    training = copy.deepcopy(run.sae)
    if _calibrates(run.cfg):
        position = run.stream.state()
        x = _to_device(run.stream.next_hidden(CALIBRATION_SAMPLES), run.since_fired.device)
        run.stream.set_state(position)
        calibrate_l0(training, x, run.cfg.l0)
    return _inference_sae(training)


def _write_snapshot(run: _Run, snapshots: _Snapshots) -> None:
    """Store the run's SAE now (after ``run.step`` steps) as its snapshot: made as the final SAE
    is, evaluated on the held-out samples, with the history so far; torch's global random state
    is restored afterwards, so the run goes on exactly as without the snapshot."""
    device = run.since_fired.device
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        sae = _snapshot_sae(run)
        _check_weights(run, sae)
        metrics = snapshots.evaluate(sae.to(device))
    sae.to("cpu")
    meta = {**snapshots.meta, "metrics": metrics, "snapshot_step": run.step, "snapshot_samples": run.samples,
            "saelens_inference_architecture": sae.cfg.architecture()}
    write_sae(snapshots.missing[run.step], snapshots.config(run.step), meta, _history_arrays(run), sae)


def _history_arrays(run: _Run) -> dict[str, np.ndarray]:
    """The run's history so far: one float64 array (log points,) per HISTORY_KEYS entry."""
    return {k: np.asarray([row[k] for row in run.history], dtype=np.float64) for k in HISTORY_KEYS}


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


def _new_run(cfg: SAETrainConfig, d_in: int, stream: Any, device: torch.device) -> _Run:
    """Fresh SAE on ``d_in`` inputs (initialised on the CPU from cfg.seed, then moved to ``device``,
    so every device starts from the same weights), optimiser, schedule and controller for ``cfg``,
    fed by ``stream``."""
    from sae_lens.training.optim import get_lr_scheduler

    sae = archs.build_training_sae(cfg, d_in).to(device)
    optimizer = torch.optim.Adam(archs.parameter_groups(cfg, sae), lr=cfg.lr, betas=(0.9, 0.999))
    warmup = int(cfg.warmup_fraction * cfg.steps)
    decay = int(cfg.decay_fraction * cfg.steps) if cfg.schedule == "linear_decay" else 0
    name = "cosineannealing" if cfg.schedule == "cosine" else "constant"
    scheduler = get_lr_scheduler(name, optimizer=optimizer, training_steps=cfg.steps, lr=cfg.lr,
                                 warm_up_steps=warmup, decay_steps=decay, lr_end=cfg.lr / 10, num_cycles=1)
    controller = (L0Controller(cfg.l0, cfg.sparsity_coefficient, cfg.controller_gain, cfg.controller_proportional)
                  if cfg.arch in CONTROLLED else None)
    generator = torch.Generator().manual_seed(cfg.seed)
    return _Run(cfg, sae, optimizer, scheduler, controller, stream, generator,
                torch.zeros(cfg.width, dtype=torch.int64, device=device))


def _fit(run: _Run, rid: str, root: Path | None, progress: bool, on_step: Callable[[int], None] | None,
         snapshots: _Snapshots | None = None) -> None:
    """Run steps until cfg.steps (or ``snapshots.until``), logging history, storing the missing
    snapshots (before the checkpoint of the same step) and writing checkpoints."""
    cfg, every = run.cfg, run.cfg.checkpoint_interval
    until = snapshots.until(cfg.steps) if snapshots is not None else cfg.steps
    bar = progress_reporter(cfg, run.samples) if progress else None
    try:
        while run.step < until:
            raise_if_interrupted()  # a Ctrl-C whose KeyboardInterrupt Python dropped (featgeom.interrupts)
            _step(run)
            if run.samples % cfg.log_every < cfg.batch_size or run.step == cfg.steps:
                _log(run)
                if bar is not None:
                    bar.update(run.samples, run.history[-1])
            if snapshots is not None and run.step in snapshots.missing:
                _write_snapshot(run, snapshots)
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
    coefficients = {archs.coefficient_name(cfg.arch): run.controller.coefficient} if run.controller else {}
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
    name = architecture(sae.cfg.architecture()).gate
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
